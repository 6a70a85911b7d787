"""Kafka Connect's REST API for omconnect workers.

`create_app` builds the ASGI app over any `Herder` (standalone or distributed);
`RestServer` serves it from a background thread. `NotLeaderError` raised by a herder
makes the REST layer forward the request to the leader. `RestClient` (in
``omconnect.runtime.rest.client``, standard library only) is what the CLI uses.

Names are imported on first use, so that the CLI's client does not load the web
server packages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omconnect.runtime.rest.app import create_app
    from omconnect.runtime.rest.auth import AuthConfig
    from omconnect.runtime.rest.errors import NotLeaderError
    from omconnect.runtime.rest.forwarding import Forwarder, ForwardRequest, http_forward
    from omconnect.runtime.rest.loggers import LoggerAdmin
    from omconnect.runtime.rest.server import RestServer

_HOMES = {
    "AuthConfig": "auth",
    "ForwardRequest": "forwarding",
    "Forwarder": "forwarding",
    "LoggerAdmin": "loggers",
    "NotLeaderError": "errors",
    "RestServer": "server",
    "create_app": "app",
    "http_forward": "forwarding",
}

__all__ = [
    "AuthConfig",
    "ForwardRequest",
    "Forwarder",
    "LoggerAdmin",
    "NotLeaderError",
    "RestServer",
    "create_app",
    "http_forward",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
