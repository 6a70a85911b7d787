"""`JsonConverter`: Kafka Connect's JSON converter, byte for byte.

With ``schemas.enable`` (the default) every key or value is written in Kafka's
envelope ``{"schema":{...},"payload":...}`` so a reader rebuilds the `Schema` and
`Struct`; without it the value is plain JSON and reads back schemaless (dicts,
lists, str, int, float, bool, None; bytes are written as base64 text). Decimals
are base64 of the unscaled two's-complement bytes (``decimal.format=BASE64``, the
default) or plain JSON numbers (``NUMERIC``); Date, Time and Timestamp are integers
(days, ms since midnight, ms since the epoch).

A `Struct` given without a schema is written with its own schema. As in Kafka: a
None value with no schema is a tombstone (None bytes); a None value
with a schema is written as its default, or ``null`` if optional
(``replace.null.with.default=false`` writes ``null`` even when there is a default).
None bytes read back as ``(None, None)``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.schema import DECIMAL, Schema, Struct, Type
from omconnect.runtime.converters.base import ConversionError, Converter
from omconnect.runtime.converters.json_data import (
    dumps,
    dumps_exact,
    loads,
    schema_from_json,
    schema_to_json,
    value_from_json,
    value_to_json,
)
from omconnect.runtime.converters.json_plans import (
    Fallback,
    Generic,
    Plan,
    from_json_plan,
    to_json_plan,
)

ENVELOPE_HINT = (
    "JsonConverter with schemas.enable needs an object with exactly the fields "
    '"schema" and "payload"; to read plain JSON set schemas.enable=false'
)


class JsonConverterConfig(PluginConfig):
    """Settings of `JsonConverter` (Kafka's names and defaults)."""

    schemas_enable: bool = Field(
        True,
        alias="schemas.enable",
        description="Write and expect the {schema, payload} envelope.",
    )
    decimal_format: Literal["BASE64", "NUMERIC"] = Field(
        "BASE64",
        alias="decimal.format",
        description="Decimals as base64 of their unscaled bytes, or as JSON numbers.",
    )
    replace_null_with_default: bool = Field(
        True,
        alias="replace.null.with.default",
        description="Write a null field that has a default as its default.",
    )
    schemas_cache_size: int = Field(
        1000, alias="schemas.cache.size", ge=0, description="Schemas whose JSON is cached."
    )

    @field_validator("decimal_format", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class JsonConverter(Converter):
    """Kafka's ``org.apache.kafka.connect.json.JsonConverter``; see the module doc."""

    config_model = JsonConverterConfig

    def __init__(self) -> None:
        self.config = parse_config(JsonConverterConfig, {})
        self._schema_text: dict[Schema, str] = {}
        self._schema_by_id: dict[int, tuple[Schema, str]] = {}
        self._parsed: dict[bytes, Schema | None] = {}  # schema JSON text -> schema
        self._last: bytes | None = None  # the schema text found last
        self._to_plans: dict[int, tuple[Schema, Plan]] = {}
        self._from_plans: dict[int, tuple[Schema, Plan]] = {}

    def configure(self, config: Mapping[str, Any], is_key: bool) -> None:
        """Read ``schemas.enable``, ``decimal.format``, ``replace.null.with.default``
        and ``schemas.cache.size``."""
        self.config = parse_config(JsonConverterConfig, config)
        self.is_key = is_key
        self._schema_text.clear()
        self._schema_by_id.clear()
        self._parsed.clear()
        self._last = None
        self._to_plans.clear()
        self._from_plans.clear()

    @property
    def _numeric(self) -> bool:
        return self.config.decimal_format == "NUMERIC"

    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        """Kafka's JSON (envelope or plain) for ``value``; None for a tombstone."""
        if schema is None and value is None:
            return None
        if schema is None and isinstance(value, Struct):
            schema = value.schema  # a Struct carries its schema (Kafka would refuse)
        try:
            payload = self._to_json(schema, value)
            exact = self._numeric and schema is not None and _has_decimal(schema)
            text = dumps_exact(payload) if exact else dumps(payload)
            if self.config.schemas_enable:
                text = f'{{"schema":{self._schema_json(schema)},"payload":{text}}}'
        except (ConversionError, ValueError, TypeError) as exc:
            raise self.error(topic, "to JSON", exc) from None
        return text.encode("utf-8")

    def _schema_json(self, schema: Schema | None) -> str:
        """The JSON text of ``schema``, cached by identity first (hashing a deep schema
        costs more than the lookup), then by equality."""
        if schema is None:
            return "null"
        known = self._schema_by_id.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        try:
            text = self._schema_text.get(schema)
        except TypeError:  # a schema with an unhashable default (a map or list)
            return dumps(schema_to_json(schema))
        if text is None:
            text = dumps(schema_to_json(schema))
        if len(self._schema_text) >= self.config.schemas_cache_size:
            self._schema_text.clear()
            self._schema_by_id.clear()
        if self.config.schemas_cache_size:
            self._schema_text[schema] = text
            self._schema_by_id[id(schema)] = (schema, text)  # holds it: the id stays its
        return text

    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        """The schema and value of Kafka JSON ``data``; ``(None, None)`` for None."""
        if data is None:
            return None, None
        try:
            if not self.config.schemas_enable:
                return None, loads(data, exact=False)
            schema, payload = self._envelope(data)
            value = self._from_json(schema, payload)
        except ConversionError as exc:
            raise self.error(topic, "from JSON", exc) from None
        return schema, value

    def _to_json(self, schema: Schema | None, value: Any) -> Any:
        """`value_to_json` with this converter's options; structs by a compiled plan."""
        if schema is not None and schema.type is Type.STRUCT:
            try:
                plan = self._plan(self._to_plans, schema, to_json_plan, self._generic_to_json)
                return plan(value)
            except Fallback:
                pass
        return self._generic_to_json(schema, value)

    def _from_json(self, schema: Schema | None, node: Any) -> Any:
        """`value_from_json` with this converter's options; structs by a compiled plan."""
        if schema is not None and schema.type is Type.STRUCT:
            try:
                plan = self._plan(self._from_plans, schema, from_json_plan, self._generic_from_json)
                return plan(node)
            except Fallback:
                pass
        return self._generic_from_json(schema, node)

    def _generic_to_json(self, schema: Schema | None, value: Any) -> Any:
        return value_to_json(
            schema,
            value,
            numeric_decimals=self._numeric,
            replace_null_with_default=self.config.replace_null_with_default,
        )

    def _generic_from_json(self, schema: Schema | None, node: Any) -> Any:
        return value_from_json(
            schema, node, replace_null_with_default=self.config.replace_null_with_default
        )

    def _plan(
        self,
        plans: dict[int, tuple[Schema, Plan]],
        schema: Schema,
        make: Callable[[Schema, Generic], Plan],
        generic: Generic,
    ) -> Plan:
        """The plan of ``schema`` from ``plans`` (by identity), made once by ``make``
        with ``generic`` for what plans do not handle themselves."""
        known = plans.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        plan = make(schema, generic)
        if len(plans) >= max(1, self.config.schemas_cache_size):
            plans.clear()
        plans[id(schema)] = (schema, plan)  # holds the schema: its id stays its own
        return plan

    def _envelope(self, data: bytes) -> tuple[Schema | None, Any]:
        """The schema and the parsed payload of an envelope. The compact form this
        converter writes (``{"schema":S,"payload":P}``) parses a schema text S once
        and then finds it again by comparing bytes (Kafka's to-connect schema cache);
        any other JSON layout is parsed in full."""
        if data.startswith(_HEAD) and data.endswith(b"}"):
            last = (self._last,) if self._last is not None else ()
            for text in itertools.chain(last, self._parsed):  # the last one found first
                end = len(_HEAD) + len(text)
                if data.startswith(text, len(_HEAD)) and data.startswith(_SEPARATOR, end):
                    self._last = text
                    payload = loads(data[end + len(_SEPARATOR) : -1], exact=True)
                    return self._parsed[text], payload
        node = loads(data, exact=True)
        if not isinstance(node, dict) or node.keys() != {"schema", "payload"}:
            raise ConversionError(ENVELOPE_HINT)
        schema = schema_from_json(node["schema"])
        if data.startswith(_HEAD) and self.config.schemas_cache_size:
            self._remember(data, schema)
        return schema, node["payload"]

    def _remember(self, data: bytes, schema: Schema | None) -> None:
        """Cache the schema text of compact envelope ``data`` (already parsed whole)."""
        try:
            _, end = _DECODER.raw_decode(data.decode("utf-8"), len(_HEAD))
        except ValueError:
            return
        text = data.decode("utf-8")[len(_HEAD) : end].encode("utf-8")
        if not data.startswith(_SEPARATOR, len(_HEAD) + len(text)):
            return
        if len(self._parsed) >= self.config.schemas_cache_size:
            self._parsed.clear()
        self._parsed[text] = schema
        self._last = text


_HEAD = b'{"schema":'
_SEPARATOR = b',"payload":'
_DECODER = json.JSONDecoder()


def _has_decimal(schema: Schema) -> bool:
    if schema.name == DECIMAL:
        return True
    if schema.type is Type.STRUCT:
        return any(_has_decimal(f.schema) for f in schema.fields)
    return any(_has_decimal(s) for s in (schema.key_schema, schema.value_schema) if s)
