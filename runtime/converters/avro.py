"""`AvroConverter`: Avro binary in Confluent's wire format, schemas in a registry.

A message is ``0x00`` (magic byte), the schema id as 4 big-endian bytes, then the
value in Avro binary (fastavro's ``schemaless_writer``). The Avro schema is
`to_avro_schema` of the record's Connect schema, registered in a `SchemaRegistry`
under the subject ``<topic>-key`` or ``<topic>-value`` (Confluent's
TopicNameStrategy); reading looks the id up and rebuilds the Connect schema with
`from_avro_schema`. None ↔ None (tombstones).

The registry is injected, never found by itself: ``AvroConverter(registry)``, or
``make_converter("avro", config, is_key, registry=registry)``, or
`AvroConverter.use_registry` before `configure`. Build one over the access point's
key-value store: ``SchemaRegistry(access_point.kv)``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from pydantic import Field

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.schema import Schema, SchemaError
from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime.converters.avro_data import from_avro_datum, to_avro_datum
from omconnect.runtime.converters.avro_schema import from_avro_schema, to_avro_schema
from omconnect.runtime.converters.base import ConversionError, Converter
from omconnect.runtime.converters.schema_registry import SchemaRegistry, subject_name

__all__ = ["AvroConverter", "AvroConverterConfig", "from_avro_schema", "to_avro_schema"]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class AvroConverterConfig(PluginConfig):
    """Settings of `AvroConverter` (Confluent's names)."""

    auto_register_schemas: bool = Field(
        True,
        alias="auto.register.schemas",
        description="Register new schemas; when false a record whose schema is not "
        "registered yet is an error.",
    )


class _Writer:
    """What writing one Connect schema needs: its Avro schema, parsed, and its id."""

    __slots__ = ("avro", "parsed", "subject_ids")

    def __init__(self, avro: Any) -> None:
        self.avro = avro
        self.parsed = parse_schema(avro, named_schemas={})
        self.subject_ids: dict[str, int] = {}


class AvroConverter(Converter):
    """Confluent's ``io.confluent.connect.avro.AvroConverter`` on a `SchemaRegistry`."""

    config_model = AvroConverterConfig
    needs_registry = True

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry
        self.config = parse_config(AvroConverterConfig, {})
        self._writers: dict[Schema, _Writer] = {}
        self._readers: dict[int, tuple[Any, Schema]] = {}

    def use_registry(self, registry: SchemaRegistry) -> None:
        """Use ``registry`` for schemas (replaces one given to the constructor)."""
        self.registry = registry

    def configure(
        self, config: Mapping[str, Any], is_key: bool, registry: SchemaRegistry | None = None
    ) -> None:
        """Read ``auto.register.schemas``; ``registry`` may be given here too.
        `ConfigError` if there is no registry by now."""
        if registry is not None:
            self.registry = registry
        if self.registry is None:
            key = "key.converter" if is_key else "value.converter"
            raise ConfigError(key, "AvroConverter needs a schema registry (pass registry=)")
        self.config = parse_config(AvroConverterConfig, config)
        self.is_key = is_key

    def _registry(self) -> SchemaRegistry:
        if self.registry is None:
            raise ConfigError("converter", "AvroConverter used before configure()")
        return self.registry

    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        """Confluent wire-format Avro for ``value``; None for None. A schema is required."""
        if value is None:
            return None
        if schema is None:
            raise self.error(topic, "to Avro", "a schemaless value cannot be written as Avro")
        try:
            writer = self._writer(schema)
            datum = to_avro_datum(schema, value)
            schema_id = self._schema_id(topic, writer)
            out = io.BytesIO()
            out.write(_HEADER.pack(MAGIC_BYTE, schema_id))
            schemaless_writer(out, writer.parsed, datum)
        except (ConversionError, SchemaError) as exc:
            raise self.error(topic, "to Avro", exc) from None
        except (ValueError, TypeError, OverflowError) as exc:  # raised by fastavro
            raise self.error(topic, "to Avro", f"{type(exc).__name__}: {exc}") from None
        return out.getvalue()

    def _writer(self, schema: Schema) -> _Writer:
        try:
            return self._writers[schema]
        except KeyError:
            pass
        except TypeError:  # an unhashable default: convert every time
            return _Writer(to_avro_schema(schema))
        writer = _Writer(to_avro_schema(schema))
        if len(self._writers) >= 1000:
            self._writers.clear()
        self._writers[schema] = writer
        return writer

    def _schema_id(self, topic: str, writer: _Writer) -> int:
        subject = subject_name(topic, self.is_key)
        schema_id = writer.subject_ids.get(subject)
        if schema_id is None:
            registry = self._registry()
            if self.config.auto_register_schemas:
                schema_id = registry.register(subject, writer.avro)
            else:
                schema_id = registry.lookup(writer.avro)
                if schema_id is None:
                    raise ConversionError(
                        f"the schema is not registered and auto.register.schemas is false "
                        f"(subject {subject!r})"
                    )
            writer.subject_ids[subject] = schema_id
        return schema_id

    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        """The Connect schema and value of Confluent wire-format ``data``."""
        if data is None:
            return None, None
        try:
            if len(data) < _HEADER.size or data[0] != MAGIC_BYTE:
                raise ConversionError(
                    "not Confluent wire format (magic byte 0 and a 4-byte schema id)"
                )
            _, schema_id = _HEADER.unpack_from(data)
            parsed, schema = self._reader(schema_id)
            body = io.BytesIO(data)
            body.seek(_HEADER.size)
            datum = schemaless_reader(body, parsed, None)
            if body.tell() != len(data):
                raise ConversionError(f"{len(data) - body.tell()} bytes left after the value")
            return schema, from_avro_datum(schema, datum)
        except (ConversionError, SchemaError) as exc:
            raise self.error(topic, "from Avro", exc) from None
        except NotFoundError as exc:
            raise self.error(topic, "from Avro", exc) from None
        except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise self.error(topic, "from Avro", f"corrupt Avro data ({exc!r})") from None

    def _reader(self, schema_id: int) -> tuple[Any, Schema]:
        found = self._readers.get(schema_id)
        if found is None:
            avro = self._registry().schema(schema_id)
            found = parse_schema(avro, named_schemas={}), from_avro_schema(avro)
            if len(self._readers) >= 1000:
                self._readers.clear()
            self._readers[schema_id] = found
        return found
