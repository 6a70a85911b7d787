"""`ByteArrayConverter`: bytes pass through unchanged, as Kafka's
``ByteArrayConverter``. Writing takes a BYTES schema (or none) and a bytes-like
value; reading gives ``(OPTIONAL_BYTES, data)``. None ↔ None.
"""

from __future__ import annotations

from typing import Any

from omconnect.connect.schema import OPTIONAL_BYTES, Schema, Type
from omconnect.runtime.converters.base import Converter


class ByteArrayConverter(Converter):
    """Kafka's ``org.apache.kafka.connect.converters.ByteArrayConverter``."""

    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        """``value`` as bytes; `ConversionError` for a non-BYTES schema or a value that
        is not bytes-like."""
        if schema is not None and schema.type is not Type.BYTES:
            raise self.error(topic, "to bytes", f"the schema is {schema.type.value}, not bytes")
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        raise self.error(topic, "to bytes", f"{type(value).__name__} is not bytes")

    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        """``(OPTIONAL_BYTES, data)``."""
        return OPTIONAL_BYTES, data
