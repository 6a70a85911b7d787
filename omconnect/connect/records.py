"""Connect records: what source tasks return and sink tasks receive.

Records are immutable; transforms make changed copies with `ConnectRecord.new_record`.
A `SourceRecord` carries its *source partition* (which stream of the source system
it came from, e.g. ``{"file": "/var/log/app.log"}``) and *source offset* (how far that
stream has been read, e.g. ``{"position": 1024}``). The runtime, never the task,
stores offsets: after a restart the task reads them back through its
`OffsetReader` and resumes. Both are flat maps of JSON scalars so every offset
store can keep them; a `SourceRecord` checks and copies them when it is built, so a
task may reuse and mutate its own dicts between records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from omconnect.connect.schema import Schema
from omconnect.errors import ConfigError

JsonScalar = str | int | float | bool | None
SourcePartition = Mapping[str, JsonScalar]
SourceOffset = Mapping[str, JsonScalar]
PartitionKey = tuple[tuple[str, JsonScalar], ...]
"""A source partition in hashable, canonical form (items sorted by key)."""


def partition_key(partition: SourcePartition) -> PartitionKey:
    """The hashable form of ``partition``: equal partitions give equal keys whatever
    their key order. Used as the dict key of `OffsetReader.offsets`."""
    if len(partition) == 1:  # the usual case, and already sorted
        return tuple(partition.items())
    return tuple(sorted(partition.items()))


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """One partition of a topic (queue), as assigned to a sink task."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def check_source_map(kind: str, value: Mapping[str, Any]) -> dict[str, JsonScalar]:
    """A copy of a source partition or offset; `ConfigError` unless it is a flat map of
    string keys to JSON scalars. (Runs for every source record: exact-type checks
    first, `isinstance` only for the rare subclass.)"""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ConfigError(kind, f"must be a mapping, not {type(value).__name__}")
    out: dict[str, JsonScalar] = dict(value)
    for key, item in out.items():
        if type(key) is not str or type(item) not in _SCALAR_TYPES:
            _check_entry(kind, key, item)
    return out


def _check_entry(kind: str, key: object, item: object) -> None:
    if not isinstance(key, str):
        raise ConfigError(kind, f"keys must be strings, got {key!r}")
    if item is not None and not isinstance(item, str | int | float | bool):
        raise ConfigError(kind, f"{key!r} must be a JSON scalar, not {type(item).__name__}")


@dataclass(frozen=True, slots=True)
class Header:
    """One record header: a key, a value and optionally its schema."""

    key: str
    value: Any
    schema: Schema | None = None


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered, immutable list of headers; a key may repeat (as in Kafka)."""

    items: tuple[Header, ...] = ()

    def __iter__(self) -> Iterator[Header]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def last(self, key: str) -> Header | None:
        """The last header with ``key``, or None."""
        for header in reversed(self.items):
            if header.key == key:
                return header
        return None

    def with_header(self, key: str, value: Any, schema: Schema | None = None) -> Headers:
        """A copy with one header appended."""
        return Headers((*self.items, Header(key, value, schema)))

    def without(self, *keys: str) -> Headers:
        """A copy without any header named in ``keys``."""
        return Headers(tuple(h for h in self.items if h.key not in keys))

    @classmethod
    def of(cls, mapping: Mapping[str, Any]) -> Headers:
        """Headers from a plain mapping (no schemas)."""
        return cls(tuple(Header(k, v) for k, v in mapping.items()))


@dataclass(frozen=True, slots=True)
class ConnectRecord:
    """A record in a topic (queue): key and value with optional schemas.

    ``partition`` None lets the producer choose (by key). ``timestamp`` is epoch ms.
    """

    topic: str
    partition: int | None
    key_schema: Schema | None
    key: Any
    value_schema: Schema | None
    value: Any
    timestamp: int | None = None
    headers: Headers = field(default_factory=Headers)

    def new_record(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (any field of the record)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class SourceRecord(ConnectRecord):
    """A record from a source task, with where in the source it came from."""

    source_partition: SourcePartition = field(default_factory=dict)
    source_offset: SourceOffset = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy: a task that mutates one offset dict between records must not change
        # the offsets of records already returned (they are committed later).
        partition = check_source_map("source_partition", self.source_partition)
        offset = check_source_map("source_offset", self.source_offset)
        object.__setattr__(self, "source_partition", partition)
        object.__setattr__(self, "source_offset", offset)


@dataclass(frozen=True, slots=True)
class SinkRecord(ConnectRecord):
    """A record handed to a sink task, with where in the queue it was read.

    ``offset`` is the record's offset in its partition. Transforms may change
    ``topic`` and ``partition``; ``original_*`` keep where the record was read, and the
    runtime commits consumer offsets by those (see `topic_partition`).
    """

    offset: int = -1
    original_topic: str = ""
    original_partition: int = -1
    original_offset: int = -1

    @property
    def topic_partition(self) -> TopicPartition:
        """Where the record was read: ``original_topic``/``original_partition`` when set
        (a transform may have renamed the topic), else ``topic``/``partition``."""
        if self.original_topic:
            return TopicPartition(self.original_topic, self.original_partition)
        return TopicPartition(self.topic, -1 if self.partition is None else self.partition)
