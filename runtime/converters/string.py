"""`StringConverter`: text in a chosen encoding, as Kafka's ``StringConverter``.

Writing encodes ``str(value)`` (any value, as Kafka's ``toString``); reading gives
``(OPTIONAL_STRING, text)``. None ↔ None.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.schema import OPTIONAL_STRING, Schema
from omconnect.runtime.converters.base import Converter


class StringConverterConfig(PluginConfig):
    """Settings of `StringConverter`."""

    encoding: str = Field(
        "utf-8",
        alias="converter.encoding",
        description="Character encoding of the bytes (any codec Python knows).",
    )

    @field_validator("encoding")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


class StringConverter(Converter):
    """Kafka's ``org.apache.kafka.connect.storage.StringConverter``."""

    config_model = StringConverterConfig

    def __init__(self) -> None:
        self.encoding = "utf-8"

    def configure(self, config: Mapping[str, Any], is_key: bool) -> None:
        """Read ``converter.encoding`` (default utf-8)."""
        self.encoding = parse_config(StringConverterConfig, config).encoding
        self.is_key = is_key

    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        """``str(value)`` encoded; None for None. The schema is not used."""
        if value is None:
            return None
        try:
            return (value if isinstance(value, str) else str(value)).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise self.error(topic, f"to {self.encoding}", exc) from None

    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        """``(OPTIONAL_STRING, text)``; the text is None for None data."""
        if data is None:
            return OPTIONAL_STRING, None
        try:
            return OPTIONAL_STRING, bytes(data).decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise self.error(topic, f"from {self.encoding}", exc) from None
