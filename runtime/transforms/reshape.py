"""ExtractField, HoistField and ValueToKey: move data into or out of a field.

Schemaless values are dicts; values with a schema are Structs, and the schema of the
result is derived from the input schema (and cached per input schema).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator, Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import Field as SchemaField
from omconnect.connect.schema import Schema, Struct, struct_schema
from omconnect.runtime.transforms.base import DataError, Transformation
from omconnect.runtime.transforms.util import (
    NonEmptyList,
    PartTransformation,
    ReplaceNullConfig,
    SchemaCache,
    field_value,
    key_and_value,
    parse_field_path,
    require_map,
    require_struct,
)

R = TypeVar("R", bound=ConnectRecord)

SYNTAX_DOC = (
    "Defines the version of the syntax to access fields. V1: the field name is used as "
    "is, at the root of the struct or map. V2: dotted paths reach nested fields; wrap a "
    "name containing dots in backticks, e.g. `foo.bar`.baz."
)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class ExtractFieldConfig(ReplaceNullConfig):
    """Kafka's ExtractField keys."""

    field: str = Field(description="Field name (V2: path) to extract.")
    field_syntax_version: Annotated[Literal["V1", "V2"], BeforeValidator(_upper)] = Field(
        "V1", alias="field.syntax.version", description=SYNTAX_DOC
    )


class ExtractField(PartTransformation[ExtractFieldConfig]):
    """Replace the key or value with one of its fields (a nested one with
    ``field.syntax.version=V2``). A null key/value, or a null on the way, gives null;
    with a schema, a path the schema lacks is an error."""

    config_model = ExtractFieldConfig

    def setup(self) -> None:
        """Split the path per the syntax version."""
        self._steps = parse_field_path(self.config.field, self.config.field_syntax_version)

    def _from_map(self, value: Any) -> Any:
        current = value
        for step in self._steps:
            if current is None:
                return None
            current = require_map(current, "field extraction").get(step)
        return current

    def _field_from(self, schema: Schema) -> SchemaField | None:
        current: SchemaField | None = None
        for step in self._steps:
            current = schema.field(step)
            if current is None:
                return None
            schema = current.schema
        return current

    def _from_struct(self, value: Struct) -> Any:
        current: Any = value
        for step in self._steps[:-1]:
            if current.schema.field(step) is None:
                return None
            current = current.get(step)
            if current is None:
                return None
            current = require_struct(current, "nested field access")
        if current.schema.field(self._steps[-1]) is None:
            return None
        return field_value(current, self._steps[-1], self.config.replace_null_with_default)

    def apply(self, record: R) -> R | None:
        """The record with the key/value replaced by the extracted field."""
        value = self.part.value(record)
        schema = self.part.schema(record)
        if schema is None:
            return self.part.updated(record, None, self._from_map(value))
        struct = None if value is None else require_struct(value, "field extraction")
        found = self._field_from(schema)
        if found is None:
            raise DataError(f"unknown field: {self.config.field}")
        return self.part.updated(
            record, found.schema, None if struct is None else self._from_struct(struct)
        )


ExtractFieldKey, ExtractFieldValue = key_and_value(ExtractField)


class HoistFieldConfig(PluginConfig):
    """Kafka's HoistField keys."""

    field: str = Field(
        description="Field name for the single field of the resulting Struct or map."
    )


class HoistField(PartTransformation[HoistFieldConfig]):
    """Wrap the key or value in a Struct (with a schema) or a map (schemaless) with one
    field. A null is wrapped too; with a schema, the field is as optional as the input."""

    config_model = HoistFieldConfig

    def setup(self) -> None:
        """Prepare the schema cache."""
        self._cache = SchemaCache(lambda schema: struct_schema([(self.config.field, schema)]))

    def apply(self, record: R) -> R | None:
        """The record with the key/value wrapped."""
        value = self.part.value(record)
        schema = self.part.schema(record)
        if schema is None:
            return self.part.updated(record, None, {self.config.field: value})
        new_schema = self._cache.get(schema)
        return self.part.updated(record, new_schema, Struct(new_schema, {self.config.field: value}))


HoistFieldKey, HoistFieldValue = key_and_value(HoistField)


class ValueToKeyConfig(ReplaceNullConfig):
    """Kafka's ValueToKey keys."""

    fields: NonEmptyList = Field(
        description="Field names on the record value to extract as the record key."
    )


class ValueToKey(Transformation[ValueToKeyConfig]):
    """Replace the key with a Struct (or map) of some fields of the value.

    Schemaless, absent fields become null entries; with a schema, a field the value
    schema lacks is an error. A null value is an error, as in Kafka: route tombstones
    around this transform with a RecordIsTombstone predicate.
    """

    config_model = ValueToKeyConfig

    def setup(self) -> None:
        """Prepare the key schema cache."""
        self._cache = SchemaCache(self._key_schema)

    def _key_schema(self, value_schema: Schema) -> Schema:
        fields = []
        for name in self.config.fields:
            found = value_schema.field(name)
            if found is None:
                raise DataError(f"field does not exist: {name}")
            fields.append((name, found.schema))
        return struct_schema(fields)

    def apply(self, record: R) -> R | None:
        """The record with its new key."""
        purpose = "copying fields from value to key"
        if record.value_schema is None:
            value = require_map(record.value, purpose)
            key = {name: value.get(name) for name in self.config.fields}
            return record.new_record(key_schema=None, key=key)
        struct = require_struct(record.value, purpose)
        key_schema = self._cache.get(struct.schema)
        keep_default = self.config.replace_null_with_default
        values = {name: field_value(struct, name, keep_default) for name in self.config.fields}
        return record.new_record(key_schema=key_schema, key=Struct(key_schema, values))
