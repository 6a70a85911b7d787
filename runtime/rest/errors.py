"""How the REST layer turns errors into Kafka Connect's error answers.

Every error answer is ``{"error_code": <HTTP status>, "message": "..."}``, as in Kafka
Connect. `status_for` is the one table from error class to status; it is pure, so
the mapping is tested by itself.
"""

from __future__ import annotations

from typing import Any

from omconnect.errors import AlreadyExistsError, ConfigError, NotFoundError, OmConnectError
from omconnect.runtime.herder import RebalanceInProgressError


class NotLeaderError(OmConnectError):
    """A write reached a worker that is not the leader; ``leader_url`` is the leader's
    REST base URL (``http://host:port``). The REST layer forwards the request there
    and relays the answer, so a client may talk to any worker."""

    def __init__(self, leader_url: str) -> None:
        self.leader_url = leader_url
        super().__init__(f"this worker is not the leader; the leader is at {leader_url}")


class RestError(OmConnectError):
    """An error answer with an explicit status, for cases no error class names
    (a malformed body is 400, a failed forward is 409)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def status_for(error: BaseException) -> int:
    """The HTTP status for an error raised while answering a request: 400 for an
    invalid config, 404 for an unknown connector, task, plugin or logger, 409 for a
    name that exists or a rebalance in progress, 500 for anything else."""
    if isinstance(error, RestError):
        return error.status
    if isinstance(error, ConfigError):
        return 400
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, AlreadyExistsError | RebalanceInProgressError):
        return 409
    return 500


def error_body(status: int, message: str) -> dict[str, Any]:
    """Kafka Connect's error entity."""
    return {"error_code": status, "message": message}
