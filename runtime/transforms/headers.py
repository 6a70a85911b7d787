"""InsertHeader, DropHeaders and HeaderFrom: work on record headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import Schema, Struct
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError, Transformation
from omconnect.runtime.transforms.util import (
    FieldsTransformation,
    NonEmptyList,
    ReplaceNullConfig,
    SchemaCache,
    copy_struct,
    field_value,
    key_and_value,
    rebuild_struct_schema,
)
from omconnect.runtime.transforms.values import parse_literal

R = TypeVar("R", bound=ConnectRecord)


class InsertHeaderConfig(PluginConfig):
    """Kafka's InsertHeader keys."""

    header: str = Field(description="The name of the header.")
    value_literal: str = Field(
        alias="value.literal",
        description="The literal value to set as the header value on all records.",
    )


class InsertHeader(Transformation[InsertHeaderConfig]):
    """Append one header to every record. The value is ``value.literal`` with the type
    Kafka's ``Values.parseString`` infers: ``42`` is an int8, ``1.5`` a float32,
    ``true`` a boolean, ``2024-01-31`` a Date, anything else a string."""

    config_model = InsertHeaderConfig

    def setup(self) -> None:
        """Parse the literal once."""
        self._schema, self._value = parse_literal(self.config.value_literal)

    def apply(self, record: R) -> R | None:
        """The record with the header appended (existing ones with that key stay)."""
        return record.new_record(
            headers=record.headers.with_header(self.config.header, self._value, self._schema)
        )


class DropHeadersConfig(PluginConfig):
    """Kafka's DropHeaders keys."""

    headers: NonEmptyList = Field(description="The names of the headers to remove.")


class DropHeaders(Transformation[DropHeadersConfig]):
    """Remove every header whose key is listed in ``headers``."""

    config_model = DropHeadersConfig

    def apply(self, record: R) -> R | None:
        """The record without those headers."""
        return record.new_record(headers=record.headers.without(*self.config.headers))


class HeaderFromConfig(ReplaceNullConfig):
    """Kafka's HeaderFrom keys."""

    fields: NonEmptyList = Field(
        description="Field names whose values are copied or moved to headers."
    )
    headers: NonEmptyList = Field(
        description="Header names, in the same order as the field names in fields."
    )
    operation: Literal["move", "copy"] = Field(
        description="move: remove the fields from the key/value; copy: keep them."
    )


class HeaderFrom(FieldsTransformation[HeaderFromConfig]):
    """Copy or move fields of the key or value into headers (with the field's schema,
    when there is one). Schemaless, an absent field gives a null header; with a schema,
    an absent field is an error. A null key/value passes unchanged."""

    config_model = HeaderFromConfig
    purpose = "copying or moving fields to headers"

    def setup(self) -> None:
        """Pair fields with headers and prepare the schema cache."""
        if len(self.config.fields) != len(self.config.headers):
            raise ConfigError("headers", "must have the same number of elements as fields")
        self._pairs = list(zip(self.config.fields, self.config.headers, strict=True))
        self._move = self.config.operation == "move"
        self._cache = SchemaCache(self._moved_schema)

    def _moved_schema(self, schema: Schema) -> Schema:
        return rebuild_struct_schema(
            schema, [(f.name, f.schema) for f in schema.fields if f.name not in self.config.fields]
        )

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with the map fields copied (or moved) to headers."""
        headers = record.headers
        for field, header in self._pairs:
            headers = headers.with_header(header, value.get(field))
        kept = {k: v for k, v in value.items() if not (self._move and k in self.config.fields)}
        return self.part.updated(record, None, kept, headers=headers)

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with the struct fields copied (or moved) to headers."""
        headers = record.headers
        keep_default = self.config.replace_null_with_default
        for field, header in self._pairs:
            found = value.schema.field(field)
            if found is None:
                raise DataError(f"field {field!r} is not in the {self.part.name} schema")
            headers = headers.with_header(
                header, field_value(value, field, keep_default), found.schema
            )
        if not self._move:
            return record.new_record(headers=headers)
        new_schema = self._cache.get(value.schema)
        moved = copy_struct(value, new_schema, keep_default)
        return self.part.updated(record, new_schema, moved, headers=headers)


HeaderFromKey, HeaderFromValue = key_and_value(HeaderFrom)
