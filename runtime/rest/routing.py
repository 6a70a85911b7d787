"""Every route's errors become Kafka Connect's error answers, in one place.

`HerderRoute` wraps each endpoint: `NotLeaderError` forwards the request to the
leader, other errors become ``{"error_code", "message"}`` with the status from
`status_for`. A 500's stack trace goes to the log, never into the answer; request
bodies are never logged (they may hold secrets).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omconnect.errors import OmConnectError
from omconnect.runtime.rest.errors import NotLeaderError, error_body, status_for
from omconnect.runtime.rest.forwarding import (
    FORWARDED_HEADERS,
    Forwarder,
    ForwardRequest,
    leader_url_for,
    may_forward,
)

log = logging.getLogger("omconnect.runtime.rest")

REBALANCING = "Cannot complete request because of a conflicting operation (e.g. worker rebalance)"


class HerderRoute(APIRoute):
    """An `APIRoute` whose errors are answered as Kafka Connect answers them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                return await error_response(request, error)

        return handle


def error_json(status: int, message: str) -> JSONResponse:
    """An error answer."""
    return JSONResponse(error_body(status, message), status)


async def error_response(request: Request, error: Exception) -> Response:
    """The answer for an error raised while handling ``request``."""
    if isinstance(error, NotLeaderError):
        return await forward_to_leader(request, error.leader_url)
    if isinstance(error, RequestValidationError):
        return error_json(400, validation_message(error))
    status = status_for(error)
    if status >= 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return error_json(status, str(error) or type(error).__name__)


def validation_message(error: RequestValidationError) -> str:
    """One line for FastAPI's request validation errors: where and what."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def forward_to_leader(request: Request, leader_url: str) -> Response:
    """Send ``request`` to the leader and relay its answer; 409 if this request was
    already forwarded once or the leader cannot be reached."""
    query = request.url.query
    if not may_forward(query):
        return error_json(409, REBALANCING)
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else urllib.parse.quote(request.url.path)
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    forwarded = ForwardRequest(
        request.method, leader_url_for(leader_url, path, query), await request.body(), headers
    )
    forwarder: Forwarder = request.app.state.forwarder
    try:
        answer = await run_in_threadpool(forwarder, forwarded)
    except (OmConnectError, OSError) as error:
        log.warning("forwarding %s %s to %s failed: %s", request.method, path, leader_url, error)
        return error_json(
            409, f"Could not forward the request to the leader at {leader_url}: {error}"
        )
    extra = {"Location": answer.location} if answer.location else None
    return Response(
        answer.body, answer.status, headers=extra, media_type=answer.content_type or None
    )
