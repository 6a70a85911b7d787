"""Optional authentication of REST requests: a bearer token, basic auth, or both.

Worker config keys: ``rest.auth.bearer.token`` (one shared token) and
``rest.auth.basic.users`` (``"alice:pw1,bob:pw2"`` or a JSON object of user to
password; ``${file:...}`` references keep the passwords out of the config file).
A request without valid credentials gets 401 with Kafka's error body. ``GET /health``
stays open so that load balancers and probes need no credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from omconnect.errors import ConfigError

BEARER_TOKEN_KEY = "rest.auth.bearer.token"
BASIC_USERS_KEY = "rest.auth.basic.users"
OPEN_PATHS = frozenset({"/health"})


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Accepted credentials. Either kind suffices when both are set; the secrets are
    kept out of ``repr``."""

    bearer_token: str | None = field(default=None, repr=False)
    basic_users: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.bearer_token is not None and not self.bearer_token.strip():
            raise ConfigError(BEARER_TOKEN_KEY, "must not be empty")
        if self.bearer_token is None and not self.basic_users:
            raise ConfigError(BEARER_TOKEN_KEY, f"set it or {BASIC_USERS_KEY} to enable auth")

    @classmethod
    def from_worker_config(cls, values: Mapping[str, Any]) -> AuthConfig | None:
        """The auth settings of a worker config, or None when neither key is set."""
        token = values.get(BEARER_TOKEN_KEY)
        users = values.get(BASIC_USERS_KEY)
        if not token and not users:
            return None
        if token is not None and not isinstance(token, str):
            raise ConfigError(BEARER_TOKEN_KEY, "must be a string")
        return cls(bearer_token=token or None, basic_users=parse_basic_users(users or {}))

    def allows(self, authorization: str | None) -> bool:
        """True if an ``Authorization`` header value carries accepted credentials."""
        if not authorization:
            return False
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self.bearer_token is not None:
            return hmac.compare_digest(credentials.encode(), self.bearer_token.encode())
        if scheme == "basic" and self.basic_users:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = decoded.partition(":")
            expected = self.basic_users.get(user)
            if not sep or expected is None:
                return False
            return hmac.compare_digest(password.encode(), expected.encode())
        return False

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header of a 401 answer."""
        schemes = []
        if self.bearer_token is not None:
            schemes.append('Bearer realm="omconnect"')
        if self.basic_users:
            schemes.append('Basic realm="omconnect"')
        return ", ".join(schemes)


def parse_basic_users(value: str | Mapping[str, Any]) -> dict[str, str]:
    """``"alice:pw1,bob:pw2"``, a JSON object string, or a mapping → user → password.
    `ConfigError` on `BASIC_USERS_KEY` naming the malformed entry (never a password)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(BASIC_USERS_KEY, "is not valid JSON") from None
    if isinstance(value, Mapping):
        users = {str(user): password for user, password in value.items()}
        for user, password in users.items():
            if not isinstance(password, str) or not user:
                raise ConfigError(BASIC_USERS_KEY, f"user {user!r} needs a string password")
        return users
    if not isinstance(value, str):
        raise ConfigError(BASIC_USERS_KEY, "must be 'user:password,...' or a JSON object")
    users = {}
    for position, entry in enumerate(value.split(","), start=1):
        user, sep, password = entry.strip().partition(":")
        if not sep or not user or not password:
            raise ConfigError(BASIC_USERS_KEY, f"entry {position} is not 'user:password'")
        users[user] = password
    return users


class AuthMiddleware:
    """ASGI middleware: answers 401 unless the request carries accepted credentials."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if self.config.allows(authorization):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error_code": 401, "message": "Credentials are required to access this resource."}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", self.config.challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
