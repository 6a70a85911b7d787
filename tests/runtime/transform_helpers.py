"""Helpers for the transform tests: configured transforms and records in one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from omconnect.connect.records import Headers, SinkRecord, SourceRecord
from omconnect.connect.schema import Schema
from omconnect.runtime.transforms.base import Configurable

P = TypeVar("P", bound=Configurable[Any])


def configured(cls: type[P], config: Mapping[str, Any] | None = None, **keys: Any) -> P:
    """An instance of ``cls`` configured with ``config`` plus ``keys`` (for keys that
    are valid Python names)."""
    plugin = cls()
    plugin.configure({**(config or {}), **keys})
    return plugin


def record(
    value: Any = None,
    value_schema: Schema | None = None,
    key: Any = None,
    key_schema: Schema | None = None,
    topic: str = "orders",
    partition: int | None = 3,
    timestamp: int | None = 1_700_000_000_123,
    headers: Headers | None = None,
) -> SourceRecord:
    """A source record with the given parts."""
    return SourceRecord(
        topic, partition, key_schema, key, value_schema, value, timestamp, headers or Headers()
    )


def sink_record(
    value: Any = None, value_schema: Schema | None = None, offset: int = 42
) -> SinkRecord:
    """A sink record read at ``offset`` of partition 3 of "orders"."""
    return SinkRecord(
        "orders", 3, None, None, value_schema, value, 1_700_000_000_123, offset=offset
    )
