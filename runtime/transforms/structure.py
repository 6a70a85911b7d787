"""Flatten and SetSchemaMetadata: change the shape or the metadata of a schema.

A null key or value passes Flatten unchanged; SetSchemaMetadata needs a schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import Schema, Struct, Type
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError
from omconnect.runtime.transforms.util import (
    FieldsTransformation,
    PartTransformation,
    ReplaceNullConfig,
    SchemaCache,
    copy_struct,
    field_value,
    key_and_value,
    rebuild_struct_schema,
    require_map,
    require_schema,
    type_name,
)
from omconnect.runtime.transforms.values import infer_type

R = TypeVar("R", bound=ConnectRecord)


class FlattenConfig(PluginConfig):
    """Kafka's Flatten keys."""

    delimiter: str = Field(
        ".",
        description="Inserted between the field names of each level to name the flattened fields.",
    )


class Flatten(FieldsTransformation[FlattenConfig]):
    """Flatten nested Structs (with a schema) or maps (schemaless) into one level, the
    field names joined by ``delimiter``. Arrays and, with a schema, maps are kept as
    they are. A field becomes optional when any struct above it is optional, and takes
    its default from the parent struct's default when it has none of its own."""

    config_model = FlattenConfig
    purpose = "flattening"

    def setup(self) -> None:
        """Prepare the schema cache."""
        self._cache = SchemaCache(self._flat_schema)

    def _name(self, prefix: str, name: str) -> str:
        return f"{prefix}{self.config.delimiter}{name}" if prefix else name

    def _flat_schema(self, schema: Schema) -> Schema:
        fields: list[tuple[str, Schema]] = []
        default = schema.default if isinstance(schema.default, Struct) else None
        self._collect_fields(schema, "", fields, schema.optional, default)
        return rebuild_struct_schema(schema, fields)

    def _collect_fields(
        self,
        schema: Schema,
        prefix: str,
        out: list[tuple[str, Schema]],
        optional: bool,
        parent_default: Struct | None,
    ) -> None:
        for f in schema.fields:
            name = self._name(prefix, f.name)
            field_optional = optional or f.schema.optional
            default = f.schema.default
            if default is None and parent_default is not None:
                default = parent_default.get(f.name)
            if f.schema.type is Type.STRUCT:
                nested_default = default if isinstance(default, Struct) else None
                self._collect_fields(f.schema, name, out, field_optional, nested_default)
            else:
                out.append((name, replace(f.schema, optional=field_optional, default=default)))

    def _flatten_map(self, value: Any, prefix: str, out: dict[str, Any]) -> None:
        for key, item in require_map(value, "flattening").items():
            name = self._name(prefix, str(key))
            kind = infer_type(item)
            if item is not None and kind is None:
                raise DataError(
                    f"flatten was passed a value of type {type_name(item)} (field {name}), "
                    "which Connect's data API does not support"
                )
            if kind is Type.MAP:
                self._flatten_map(item, name, out)
            elif kind is Type.STRUCT:
                raise DataError(
                    f"flatten does not support Struct in records without schemas (field {name})"
                )
            else:
                out[name] = item

    def _flatten_struct(self, value: Struct, prefix: str, out: dict[str, Any]) -> None:
        for f in value.schema.fields:
            name = self._name(prefix, f.name)
            item = field_value(value, f.name)
            if f.schema.type is Type.STRUCT:
                if item is not None:
                    self._flatten_struct(item, name, out)
            else:
                out[name] = item

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with its map flattened."""
        flat: dict[str, Any] = {}
        self._flatten_map(value, "", flat)
        return self.part.updated(record, None, flat)

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with its struct and schema flattened."""
        new_schema = self._cache.get(value.schema)
        flat: dict[str, Any] = {}
        self._flatten_struct(value, "", flat)
        return self.part.updated(record, new_schema, Struct(new_schema, flat))


FlattenKey, FlattenValue = key_and_value(Flatten)


class SetSchemaMetadataConfig(ReplaceNullConfig):
    """Kafka's SetSchemaMetadata keys."""

    schema_name: str | None = Field(None, alias="schema.name", description="Schema name to set.")
    schema_version: int | None = Field(
        None, alias="schema.version", description="Schema version to set."
    )


class SetSchemaMetadata(PartTransformation[SetSchemaMetadataConfig]):
    """Set the name and/or version of the key or value schema; a Struct value is
    rebuilt on the renamed schema. Records without a schema are an error."""

    config_model = SetSchemaMetadataConfig

    def setup(self) -> None:
        """Reject a config that sets neither the name nor the version."""
        if self.config.schema_name is None and self.config.schema_version is None:
            raise ConfigError("", "neither schema.name nor schema.version configured")

    def apply(self, record: R) -> R | None:
        """The record with the schema metadata updated."""
        schema = require_schema(self.part.schema(record), "updating schema metadata")
        name = self.config.schema_name if self.config.schema_name is not None else schema.name
        version = (
            self.config.schema_version if self.config.schema_version is not None else schema.version
        )
        new_schema = replace(schema, name=name, version=version)
        value = self.part.value(record)
        if isinstance(value, Struct):
            value = copy_struct(value, new_schema, self.config.replace_null_with_default)
        return self.part.updated(record, new_schema, value)


SetSchemaMetadataKey, SetSchemaMetadataValue = key_and_value(SetSchemaMetadata)
