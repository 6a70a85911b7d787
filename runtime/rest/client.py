"""A small blocking client for omconnect's (and Kafka Connect's) REST API.

Used by the ``omconnect connectors`` commands, by request forwarding to the leader,
and by tests. Standard library only, so the CLI starts fast and needs no server
packages.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.errors import ConnectionLostError, OmConnectError

DEFAULT_REST_URL = "http://127.0.0.1:8083"


class RestClientError(OmConnectError):
    """The server answered with an error status; ``message`` is its error message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One HTTP answer: status, raw body and content type."""

    status: int
    body: bytes
    content_type: str
    location: str = ""

    def json(self) -> Any:
        """The body parsed as JSON (None for an empty body)."""
        return json.loads(self.body) if self.body else None


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpAnswer:
    """Send one request and return the answer, whatever its status.
    `ConnectionLostError` if the server cannot be reached or does not answer."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    # Proxies from the environment apply to remote workers, never to this machine.
    host = urllib.parse.urlsplit(url).hostname or ""
    opener = _DIRECT if host in _LOOPBACK else _WITH_PROXIES
    try:
        with opener.open(request, timeout=timeout) as response:
            return HttpAnswer(
                response.status,
                response.read(),
                response.headers.get("content-type", ""),
                response.headers.get("location", ""),
            )
    except urllib.error.HTTPError as error:
        with error:
            return HttpAnswer(error.code, error.read(), error.headers.get("content-type", ""), "")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConnectionLostError(f"cannot reach {_origin(url)}: {reason}") from None


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_WITH_PROXIES = urllib.request.build_opener()


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class RestClient:
    """Calls one worker's REST API. Credentials: a bearer ``token`` or ``basic``
    ``"user:password"``. Every method raises `RestClientError` for an error answer
    and `ConnectionLostError` when the worker cannot be reached."""

    def __init__(
        self,
        base_url: str = DEFAULT_REST_URL,
        *,
        token: str | None = None,
        basic: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif basic:
            encoded = base64.b64encode(basic.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {encoded}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> HttpAnswer:
        """One request; ``body`` is sent as JSON when not None."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        answer = http_request(method, url, data, headers, self.timeout)
        if answer.status >= 400:
            raise RestClientError(answer.status, _error_message(answer))
        return answer

    def connectors(self, expand: Sequence[str] = ()) -> Any:
        """``GET /connectors``: names, or name → expansions when ``expand`` is given."""
        return self.call("GET", "/connectors", query=[("expand", e) for e in expand]).json()

    def connector(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}``."""
        return dict(self.call("GET", f"/connectors/{_quote(name)}").json())

    def status(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/status``."""
        return dict(self.call("GET", f"/connectors/{_quote(name)}/status").json())

    def put_config(self, name: str, config: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """``PUT /connectors/{name}/config``; True if the connector was created."""
        answer = self.call("PUT", f"/connectors/{_quote(name)}/config", dict(config))
        return answer.status == 201, dict(answer.json())

    def action(self, name: str, verb: str) -> None:
        """``PUT /connectors/{name}/{verb}`` for pause, resume and stop."""
        self.call("PUT", f"/connectors/{_quote(name)}/{verb}")

    def restart(self, name: str, include_tasks: bool, only_failed: bool) -> dict[str, Any] | None:
        """``POST /connectors/{name}/restart``: the status when tasks are included or
        only failed instances restart (202), else None (204)."""
        query = [
            ("includeTasks", str(include_tasks).lower()),
            ("onlyFailed", str(only_failed).lower()),
        ]
        answer = self.call("POST", f"/connectors/{_quote(name)}/restart", query=query)
        return dict(answer.json()) if answer.body else None

    def delete(self, name: str) -> None:
        """``DELETE /connectors/{name}``."""
        self.call("DELETE", f"/connectors/{_quote(name)}")

    def offsets(self, name: str) -> dict[str, Any]:
        """``GET /connectors/{name}/offsets``: ``{"offsets": [...]}``."""
        return dict(self.call("GET", f"/connectors/{_quote(name)}/offsets").json())


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_message(answer: HttpAnswer) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = answer.body.decode("utf-8", "replace").strip()
    return text[:200] or f"HTTP {answer.status}"
