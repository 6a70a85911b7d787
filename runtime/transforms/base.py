"""The contracts of single message transforms (SMTs) and predicates.

A `Transformation` turns one record into one record, or into None to drop it. A
`Predicate` answers yes or no about one record; the chain (`omconnect.runtime.
transforms.chain`) uses it to decide whether a transform applies. Both are configured
once, with the flat map of their own keys (``transforms.<alias>.`` stripped), before
the first record; `configure` raises `ConfigError` naming the key, so a bad connector
config is rejected at submit time. A transform that cannot handle one record raises a
`RecordError` (usually `DataError`); the chain wraps it in `TransformError` so the
runtime sends that record, and only that record, to the dead-letter queue.

Instances are not shared between threads: the runtime builds one chain per task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.records import ConnectRecord
from omconnect.errors import ConfigError, RecordError

R = TypeVar("R", bound=ConnectRecord)
C = TypeVar("C", bound=PluginConfig)


class DataError(RecordError):
    """A record's data does not fit what a transform needs (Kafka's ``DataException``):
    a schemaless value that is not a map, a missing schema, a field of the wrong type."""


class TransformError(RecordError):
    """A transform or predicate failed on one record; names the alias and the class.

    The original error is ``__cause__``; the runtime routes the record to the
    dead-letter queue (or fails the task, per ``errors.tolerance``).
    """

    def __init__(self, alias: str, plugin: str, cause: BaseException) -> None:
        self.alias = alias
        self.plugin = plugin
        super().__init__(f"transform {alias!r} ({plugin}) failed: {cause}")


class Configurable(ABC, Generic[C]):
    """Shared by transforms and predicates: a typed config model parsed in `configure`.

    Subclasses set ``config_model`` and may override `setup` for checks that span
    several keys or for precomputing; ``self.config`` is the parsed, frozen model.
    """

    config_model: ClassVar[type[PluginConfig]] = PluginConfig
    config: C

    def configure(self, config: Mapping[str, Any]) -> None:
        """Validate ``config`` (this plugin's keys only) and prepare for records.

        Raises `ConfigError` naming the key (without the ``transforms.<alias>.``
        prefix, which the chain adds) and the reason.
        """
        self.config = cast(C, parse_config(self.config_model, config))
        self.setup()

    def setup(self) -> None:
        """Called at the end of `configure`; raise `ConfigError` for invalid combinations."""

    def close(self) -> None:
        """Release what `configure` built; called once when the task stops."""


class Transformation(Configurable[C]):
    """One single message transform.

    `apply` must not modify its argument (records and structs are shared with the
    caller); it returns a new record, the same record when nothing changes, or None
    to drop the record from the rest of the chain and from the pipeline.
    """

    @abstractmethod
    def apply(self, record: R) -> R | None:
        """The transformed record, or None to drop it; `RecordError` when it cannot
        be transformed."""


class Predicate(Configurable[C]):
    """A condition on a record that decides whether a transform applies to it."""

    @abstractmethod
    def test(self, record: ConnectRecord) -> bool:
        """True when the record matches; must not modify the record."""


def require_config(condition: bool, key: str, reason: str) -> None:
    """Raise `ConfigError` on ``key`` with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, reason)
