"""`create_app`: the ASGI app serving Kafka Connect's REST API over a `Herder`."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import omconnect
from omconnect.runtime.herder import Herder
from omconnect.runtime.rest.auth import AuthConfig, AuthMiddleware
from omconnect.runtime.rest.forwarding import Forwarder, http_forward
from omconnect.runtime.rest.loggers import LoggerAdmin
from omconnect.runtime.rest.routes_cluster import cluster_router
from omconnect.runtime.rest.routes_connectors import connectors_router
from omconnect.runtime.rest.routing import error_json, validation_message

DESCRIPTION = (
    "Kafka Connect's REST API (paths, status codes and JSON) for omconnect workers. "
    "Any worker answers; writes are forwarded to the leader. Errors are "
    '`{"error_code": <status>, "message": "..."}`.'
)


def create_app(
    herder: Herder,
    *,
    auth: AuthConfig | None,
    loggers: LoggerAdmin,
    forward: Forwarder | None = None,
    cluster_id: str = "",
) -> FastAPI:
    """The REST app for ``herder``. ``auth`` None serves without credentials;
    ``forward`` sends a request to the leader when the herder raises `NotLeaderError`
    (default: an HTTP request); ``cluster_id`` is shown as ``kafka_cluster_id``.
    The OpenAPI document is at ``/openapi.json``."""
    app = FastAPI(
        title="omconnect REST API",
        version=omconnect.__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # the Swagger UI would load scripts from a CDN
        redoc_url=None,
    )
    app.state.forwarder = forward or http_forward
    app.include_router(cluster_router(herder, loggers, cluster_id, build_commit()))
    app.include_router(connectors_router(herder))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(TrailingSlashMiddleware)
    if auth is not None:
        app.add_middleware(AuthMiddleware, config=auth)
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = error.detail if isinstance(error, HTTPException) else ""
    return error_json(status, f"HTTP {status} {detail}".strip())


async def _validation_error(request: Request, error: Exception) -> Response:
    if isinstance(error, RequestValidationError):
        return error_json(400, validation_message(error))
    return error_json(400, "invalid request")


class TrailingSlashMiddleware:
    """Serves ``/connectors/`` as ``/connectors``, as Kafka Connect does (no redirect)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/")
            raw_path = scope.get("raw_path")
            if raw_path:
                scope["raw_path"] = raw_path.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


@functools.cache
def build_commit() -> str:
    """The git commit this code came from, or ``"unknown"`` (an installed wheel)."""
    source = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"
