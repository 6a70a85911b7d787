"""Forwarding a request to the leader: any worker answers, writes reach the leader.

When the herder raises `NotLeaderError(leader_url)`, the REST layer sends the same
request (method, path, query, body, content type and credentials) to the leader with
``forward=false`` added, and relays the leader's status and body. A request that
already carries ``forward=false`` and still meets a non-leader is answered 409, as in
Kafka Connect: the leadership is moving, so the client should retry shortly.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from omconnect.runtime.rest.client import HttpAnswer, http_request

FORWARD_PARAM = "forward"
FORWARDED_HEADERS = ("content-type", "authorization", "accept")


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """The request to send to the leader."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


Forwarder = Callable[[ForwardRequest], HttpAnswer]
"""Sends a `ForwardRequest` and returns the leader's answer, whatever its status;
raises `ConnectionLostError` (or any `OSError`) if the leader cannot be reached."""


def http_forward(request: ForwardRequest) -> HttpAnswer:
    """The default `Forwarder`: one HTTP request, 30 s timeout."""
    return http_request(request.method, request.url, request.body or None, request.headers)


def leader_url_for(leader_url: str, raw_path: str, query: str) -> str:
    """The URL at the leader for a request's percent-encoded ``raw_path`` and raw
    ``query`` string, with ``forward=false`` replacing any ``forward`` parameter."""
    pairs = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True)
        if key != FORWARD_PARAM
    ]
    pairs.append((FORWARD_PARAM, "false"))
    base = leader_url.rstrip("/")
    return f"{base}{raw_path}?{urllib.parse.urlencode(pairs)}"


def may_forward(query: str) -> bool:
    """False if the request was itself forwarded (``forward=false``)."""
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == FORWARD_PARAM and value.lower() == "false":
            return False
    return True
