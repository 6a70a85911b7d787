"""Converters: record keys and values ↔ message bytes (JSON, string, bytes, Avro).

Pick one by name with `make_converter` (``json``, ``string``, ``bytes``, ``avro``,
Kafka Connect's class names, an ``omconnect.converters`` entry point, or a class
path). The classes live in their modules: `json.JsonConverter`,
`string.StringConverter`, `bytes.ByteArrayConverter`, `avro.AvroConverter` (which
keeps its schemas in a `schema_registry.SchemaRegistry`).
"""

from omconnect.runtime.converters.base import (
    CONVERTER_ALIASES,
    ConversionError,
    Converter,
    converter_class,
    converter_config,
    make_converter,
)

__all__ = [
    "CONVERTER_ALIASES",
    "ConversionError",
    "Converter",
    "converter_class",
    "converter_config",
    "make_converter",
]
