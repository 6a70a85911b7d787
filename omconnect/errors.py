"""The error hierarchy.

Errors are grouped by what the caller should do about them, not by where they come
from: reject a config (`ConfigError`), back off and try again (`RetriableError`),
give up on a task (`FatalError`), or set one record aside (`RecordError`).
The CLI maps each class to a documented exit code (see `omconnect.cli`).
"""

from __future__ import annotations


class OmConnectError(Exception):
    """Root of every error omconnect raises on purpose."""


class ConfigError(OmConnectError, ValueError):
    """A configuration or argument is invalid; the message names the key and the reason.

    Raised at submit time; retrying with the same input fails the same way.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)


class RetriableError(OmConnectError):
    """A transient failure (lost connection, busy server): retry with backoff."""


class FatalError(OmConnectError):
    """An unrecoverable failure: stop the task and keep the reason in its status."""


class RecordError(OmConnectError):
    """One record cannot be processed; it goes to the dead-letter queue if one is set."""


class ConnectionLostError(RetriableError):
    """The connection to the broker (or another server) dropped or could not be opened."""


class TimeoutError_(RetriableError):
    """An operation did not complete in time. (Named so it does not shadow the builtin.)"""


class NotFoundError(OmConnectError, LookupError):
    """A namespace, queue, key or other named resource does not exist."""


class AlreadyExistsError(OmConnectError):
    """A resource with that name exists already, with different settings."""


class MessageTooLargeError(RecordError):
    """A message is bigger than the broker's `max_message_bytes`."""


class CorruptDataError(FatalError):
    """Stored or received bytes fail their CRC or do not parse."""


class ProtocolError(OmConnectError):
    """A peer sent a frame that does not follow `docs/protocol.md`."""


class CompactedError(OmConnectError):
    """A watch asked for revisions that compaction has already removed."""
