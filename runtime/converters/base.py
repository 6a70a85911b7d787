"""The converter contract, its error, and how a config names a converter.

A converter turns a record's key or value (a `Schema` and a Python value, see
`omconnect.connect.schema`) into the bytes a message carries, and back. One
instance serves either keys or values of every topic of a connector; the runtime
calls `Converter.configure` once before using it, then calls it from one task
thread at a time per instance.

Contract every converter keeps:

* ``None`` value ↔ ``None`` bytes: a tombstone stays a tombstone both ways.
* A value or byte string that cannot be converted raises `ConversionError` (a
  `RecordError`: the runtime sends that one record to the dead-letter queue); the
  message says which topic, key or value, and where in the value.
* Bad configuration raises `ConfigError` from ``configure``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.plugins import load_class
from omconnect.connect.schema import Schema
from omconnect.errors import ConfigError, RecordError

if TYPE_CHECKING:
    from omconnect.runtime.converters.schema_registry import SchemaRegistry

ENTRY_POINT_GROUP = "omconnect.converters"

_PACKAGE = "omconnect.runtime.converters"
CONVERTER_ALIASES: dict[str, str] = {
    "json": f"{_PACKAGE}.json:JsonConverter",
    "string": f"{_PACKAGE}.string:StringConverter",
    "bytes": f"{_PACKAGE}.bytes:ByteArrayConverter",
    "avro": f"{_PACKAGE}.avro:AvroConverter",
    "org.apache.kafka.connect.json.JsonConverter": f"{_PACKAGE}.json:JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter": f"{_PACKAGE}.string:StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter": (
        f"{_PACKAGE}.bytes:ByteArrayConverter"
    ),
    "io.confluent.connect.avro.AvroConverter": f"{_PACKAGE}.avro:AvroConverter",
}
"""Short and Kafka Connect names of the built-in converters → ``module:Class``."""


class ConversionError(RecordError):
    """One key or value cannot be converted (to bytes or back). The message names the
    topic, key or value, and the place in the value; the record goes to the DLQ."""


class Converter(ABC):
    """Turns a key or value with its schema into message bytes and back.

    Subclasses set ``config_model`` to their `PluginConfig` so that `describe` and
    validation work from one declaration, and may override `configure` to read it.
    """

    config_model: ClassVar[type[PluginConfig]] = PluginConfig
    needs_registry: ClassVar[bool] = False
    """True for converters that keep schemas in a `SchemaRegistry` (Avro):
    `make_converter` then hands them its ``registry``."""

    is_key: bool = False

    def configure(self, config: Mapping[str, Any], is_key: bool) -> None:
        """Read this converter's settings (prefix such as ``value.converter.`` already
        stripped). `ConfigError` names the bad key. Called once, before any use."""
        parse_config(self.config_model, config)
        self.is_key = is_key

    @abstractmethod
    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        """The bytes for ``value`` (with ``schema``, or schemaless when None) in
        ``topic``; None for a None value. `ConversionError` if it cannot be converted."""

    @abstractmethod
    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        """The schema and value that ``data`` from ``topic`` holds; a None value for
        None data. `ConversionError` for bytes this converter cannot read."""

    def use_registry(self, registry: SchemaRegistry) -> None:  # noqa: B027 (optional hook)
        """Hand over the schema registry (call before `configure`). Converters that
        keep no schemas ignore it."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources; the default has none."""

    @property
    def part(self) -> str:
        """``"key"`` or ``"value"``, for messages."""
        return "key" if self.is_key else "value"

    def error(self, topic: str, direction: str, reason: object) -> ConversionError:
        """A `ConversionError` saying what failed where: ``direction`` is e.g.
        ``"to JSON"``; ``reason`` the detail (often the inner exception)."""
        return ConversionError(
            f"{type(self).__name__}: cannot convert the {self.part} of a record of topic "
            f"{topic!r} {direction}: {reason}"
        )


def same_struct_schema(actual: Schema, expected: Schema) -> bool:
    """Whether a Struct built on ``actual`` may stand for a value of ``expected``: the
    same schema, or one differing only in optionality and default (a struct default
    is built on its schema before the default is set)."""
    if actual is expected or actual == expected:
        return True
    plain = replace(actual, optional=False, default=None)
    return plain == replace(expected, optional=False, default=None)


def converter_class(name: str, key: str = "converter") -> type[Converter]:
    """The converter class ``name`` refers to (alias, Kafka class name, entry point of
    ``omconnect.converters``, or class path); `ConfigError` on ``key`` otherwise."""
    cls = load_class(name, CONVERTER_ALIASES, ENTRY_POINT_GROUP, key=key)
    if not issubclass(cls, Converter):
        raise ConfigError(key, f"{name!r} is not a converter (a subclass of Converter)")
    return cls


def make_converter(
    name: str,
    config: Mapping[str, Any],
    is_key: bool,
    registry: SchemaRegistry | None = None,
) -> Converter:
    """A configured converter for keys (``is_key``) or values.

    ``config`` holds the converter's own keys without the ``key.converter.`` /
    ``value.converter.`` prefix (see `converter_config`). ``registry`` is the schema
    registry for converters that need one (`Converter.needs_registry`, e.g. Avro);
    `ConfigError` if such a converter gets none.
    """
    key = "key.converter" if is_key else "value.converter"
    cls = converter_class(name, key)
    converter = cls()
    if cls.needs_registry and registry is None:
        raise ConfigError(key, f"{name!r} needs a schema registry and none was given")
    if registry is not None:
        converter.use_registry(registry)
    converter.configure(config, is_key)
    return converter


def converter_config(config: Mapping[str, Any], is_key: bool) -> dict[str, Any]:
    """The settings for the key (``is_key``) or value converter in a worker or
    connector config: every ``key.converter.X`` (or ``value.converter.X``) as ``X``."""
    prefix = "key.converter." if is_key else "value.converter."
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
