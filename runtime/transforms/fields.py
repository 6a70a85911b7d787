"""InsertField, ReplaceField and MaskField: change the fields of a key or value.

Each works on schemaless map values (dicts) and on Struct values with a schema; for
the latter the output schema is rebuilt once per input schema and cached. A null key
or value (a tombstone) passes through unchanged.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field

from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import (
    INT32,
    INT64,
    STRING,
    Schema,
    Struct,
    Type,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError
from omconnect.runtime.transforms.util import (
    CsvList,
    FieldsTransformation,
    NonEmptyList,
    ReplaceNullConfig,
    SchemaCache,
    copy_struct,
    field_value,
    key_and_value,
    rebuild_struct_schema,
    require_sink_record,
    split_list,
    type_name,
)
from omconnect.runtime.transforms.values import (
    EPOCH,
    INT_BITS,
    datetime_from_millis,
    parse_java_float,
    parse_java_int,
)

R = TypeVar("R", bound=ConnectRecord)

_OPTIONALITY = (
    " Suffix with ! to make this a required field, or ? to keep it optional (the default)."
)


class InsertFieldConfig(ReplaceNullConfig):
    """Kafka's InsertField keys."""

    topic_field: str | None = Field(
        None, alias="topic.field", description="Field name for the topic." + _OPTIONALITY
    )
    partition_field: str | None = Field(
        None, alias="partition.field", description="Field name for the partition." + _OPTIONALITY
    )
    offset_field: str | None = Field(
        None,
        alias="offset.field",
        description="Field name for the offset (sink connectors only)." + _OPTIONALITY,
    )
    timestamp_field: str | None = Field(
        None,
        alias="timestamp.field",
        description="Field name for the record timestamp." + _OPTIONALITY,
    )
    static_field: str | None = Field(
        None, alias="static.field", description="Field name for a static data field." + _OPTIONALITY
    )
    static_value: str | None = Field(
        None, alias="static.value", description="Static field value, if static.field is set."
    )


def _insertion(spec: str) -> tuple[str, bool]:
    """Field name and optionality of an InsertField spec (``name``, ``name?``, ``name!``)."""
    if spec.endswith("?"):
        return spec[:-1], True
    if spec.endswith("!"):
        return spec[:-1], False
    return spec, True


class InsertField(FieldsTransformation[InsertFieldConfig]):
    """Insert the topic, partition, offset (sink records), timestamp or a static
    string as fields. Schemaless, the timestamp is epoch milliseconds; with a schema
    it is a Timestamp. The partition and timestamp are skipped when the record has none."""

    config_model = InsertFieldConfig
    purpose = "field insertion"

    def setup(self) -> None:
        """Reject a config that inserts nothing, or a static field without a value."""
        c = self.config
        specs = {
            "topic": c.topic_field,
            "partition": c.partition_field,
            "offset": c.offset_field,
            "timestamp": c.timestamp_field,
            "static": c.static_field,
        }
        # what is inserted -> (field name, optional)
        self._fields = {kind: _insertion(spec) for kind, spec in specs.items() if spec is not None}
        if not self._fields:
            raise ConfigError(
                "",
                "no field insertion configured: set topic.field, partition.field, "
                "offset.field, timestamp.field or static.field",
            )
        if c.static_field is not None and c.static_value is None:
            raise ConfigError("static.value", f"no value given for static field {c.static_field!r}")
        schemas = {"partition": INT32, "offset": INT64, "timestamp": timestamp_schema()}
        self._schemas = [
            (
                name,
                schemas.get(kind, STRING).as_optional() if optional else schemas.get(kind, STRING),
            )
            for kind, (name, optional) in self._fields.items()
        ]
        self._cache = SchemaCache(self._updated_schema)

    def _updated_schema(self, schema: Schema) -> Schema:
        return rebuild_struct_schema(
            schema, [*((f.name, f.schema) for f in schema.fields), *self._schemas]
        )

    def _insertions(self, record: ConnectRecord, with_schema: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, (name, _) in self._fields.items():
            if kind == "offset":
                out[name] = require_sink_record(record, "field insertion").offset
            elif kind == "topic":
                out[name] = record.topic
            elif kind == "static":
                out[name] = self.config.static_value
            elif kind == "partition" and record.partition is not None:
                out[name] = record.partition
            elif kind == "timestamp" and record.timestamp is not None:
                stamp = record.timestamp
                out[name] = datetime_from_millis(stamp) if with_schema else stamp
        return out

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with the configured fields added to the map."""
        return self.part.updated(record, None, {**value, **self._insertions(record, False)})

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with the configured fields added to the struct and its schema."""
        new_schema = self._cache.get(value.schema)
        inserted = copy_struct(
            value,
            new_schema,
            self.config.replace_null_with_default,
            overrides=self._insertions(record, True),
        )
        return self.part.updated(record, new_schema, inserted)


InsertFieldKey, InsertFieldValue = key_and_value(InsertField)


def _renames(value: Any) -> Any:
    items = split_list(value)
    if not isinstance(items, tuple):
        return items
    pairs = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 2:
            raise ValueError(f"invalid rename mapping {item!r}: use old:new")
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


Renames = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_renames)]


class ReplaceFieldConfig(ReplaceNullConfig):
    """Kafka's ReplaceField keys (``blacklist``/``whitelist`` are the deprecated names)."""

    exclude: CsvList = Field(
        (), description="Fields to exclude. This takes precedence over include."
    )
    include: CsvList = Field(
        (), description="Fields to include. If specified, only these fields are kept."
    )
    renames: Renames = Field((), description="Field rename mappings, e.g. foo:bar,abc:xyz.")
    blacklist: CsvList = Field((), description="Deprecated. Use exclude instead.")
    whitelist: CsvList = Field((), description="Deprecated. Use include instead.")


class ReplaceField(FieldsTransformation[ReplaceFieldConfig]):
    """Drop fields (``exclude``), keep only some (``include``) and rename fields."""

    config_model = ReplaceFieldConfig
    purpose = "field replacement"

    def setup(self) -> None:
        """Resolve the deprecated names and index the renames both ways."""
        self._exclude = set(self.config.exclude or self.config.blacklist)
        self._include = set(self.config.include or self.config.whitelist)
        self._renames = dict(self.config.renames)
        self._reverse = {new: old for old, new in self.config.renames}
        self._cache = SchemaCache(self._updated_schema)

    def _keep(self, name: str) -> bool:
        return name not in self._exclude and (not self._include or name in self._include)

    def _updated_schema(self, schema: Schema) -> Schema:
        return rebuild_struct_schema(
            schema,
            [
                (self._renames.get(f.name, f.name), f.schema)
                for f in schema.fields
                if self._keep(f.name)
            ],
        )

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with the map's fields filtered and renamed."""
        updated = {self._renames.get(k, k): v for k, v in value.items() if self._keep(k)}
        return self.part.updated(record, None, updated)

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with the struct's fields (and schema) filtered and renamed."""
        new_schema = self._cache.get(value.schema)
        replaced = copy_struct(
            value,
            new_schema,
            self.config.replace_null_with_default,
            renamed=lambda name: self._reverse.get(name, name),
        )
        return self.part.updated(record, new_schema, replaced)


ReplaceFieldKey, ReplaceFieldValue = key_and_value(ReplaceField)


def _non_empty_text(value: str | None) -> str | None:
    if value is not None and not value:
        raise ValueError("must be a non-empty string")
    return value


class MaskFieldConfig(ReplaceNullConfig):
    """Kafka's MaskField keys."""

    fields: NonEmptyList = Field(description="Names of fields to mask.")
    replacement: Annotated[str | None, AfterValidator(_non_empty_text)] = Field(
        None,
        description="Custom replacement for numeric or string values, converted to the "
        "field's type.",
    )


def _null_equivalent(value: Any) -> Any:
    """The "null" of ``value``'s type: 0, false, empty string, epoch, empty list/map."""
    if isinstance(value, bool):
        return False
    for kind, empty in ((int, 0), (float, 0.0), (str, ""), (decimal.Decimal, decimal.Decimal(0))):
        if isinstance(value, kind):
            return empty
    if isinstance(value, dt.datetime):
        return EPOCH
    if isinstance(value, dt.date):
        return EPOCH.date()
    if isinstance(value, dt.time):
        return dt.time(0)
    if isinstance(value, list | tuple):
        return []
    if isinstance(value, dict):
        return {}
    raise DataError(f"cannot mask value of type {type_name(value)}")


def _replacement_parser(value: Any, schema: Schema | None) -> Callable[[str], Any]:
    schema_type = schema.type if schema is not None else None
    if isinstance(value, str):
        return str
    if isinstance(value, int) and not isinstance(value, bool):
        int_type = schema_type if schema_type in INT_BITS else Type.INT64
        return lambda text: parse_java_int(text, int_type)
    if isinstance(value, float):
        return lambda text: parse_java_float(text, schema_type is Type.FLOAT32)
    if isinstance(value, decimal.Decimal):
        return decimal.Decimal
    raise DataError(f"cannot mask value of type {type_name(value)} with a custom replacement")


class MaskField(FieldsTransformation[MaskFieldConfig]):
    """Replace the listed fields with the null value of their type, or with
    ``replacement`` converted to it. Schemaless, every listed field is set (to null
    when absent); with a schema, listed fields the schema lacks are ignored."""

    config_model = MaskFieldConfig
    purpose = "mask fields"

    def _masked(self, value: Any, schema: Schema | None) -> Any:
        if value is None:
            return None
        replacement = self.config.replacement
        if replacement is None:
            return _null_equivalent(value)
        try:
            return _replacement_parser(value, schema)(replacement)
        except (ValueError, decimal.InvalidOperation):
            raise DataError(f"unable to convert {replacement!r} to {type_name(value)}") from None

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with the listed map fields masked (absent ones set to null)."""
        masked = {name: self._masked(value.get(name), None) for name in self.config.fields}
        return self.part.updated(record, None, {**value, **masked})

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with the listed struct fields masked; the schema is unchanged."""
        keep_default = self.config.replace_null_with_default
        overrides = {
            f.name: self._masked(field_value(value, f.name, keep_default), f.schema)
            for f in value.schema.fields
            if f.name in self.config.fields
        }
        masked_struct = copy_struct(value, value.schema, keep_default, overrides=overrides)
        return self.part.updated(record, value.schema, masked_struct)


MaskFieldKey, MaskFieldValue = key_and_value(MaskField)
