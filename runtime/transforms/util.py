"""Pieces every built-in transform shares.

- `Part`: which half of a record a ``$Key`` / ``$Value`` transform works on.
- The checks of Kafka's ``Requirements`` (`require_map`, `require_struct`, ...),
  raising `DataError` with the purpose in the message.
- Struct access that honours ``replace.null.with.default`` (`field_value`,
  `copy_struct`) and schema rebuilding (`rebuild_struct_schema`) with an LRU cache of
  rebuilt schemas per transform (`SchemaCache`, 16 entries like Kafka's).
- Config value types: comma-separated lists (`CsvList`, `NonEmptyList`) and the
  ``replace.null.with.default`` key (`ReplaceNullConfig`).
- Kafka's ``field.syntax.version`` paths (`parse_field_path`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, TypeVar, cast

from pydantic import AfterValidator, BeforeValidator, Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord, SinkRecord
from omconnect.connect.schema import Field as SchemaField
from omconnect.connect.schema import Schema, SchemaError, Struct, Type
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError, Transformation

R = TypeVar("R", bound=ConnectRecord)
C = TypeVar("C", bound=PluginConfig)


@dataclass(frozen=True, slots=True)
class Part:
    """The key or the value of a record, for transforms with ``$Key``/``$Value`` forms."""

    name: str

    def schema(self, record: ConnectRecord) -> Schema | None:
        """The schema of this part of ``record``."""
        return record.key_schema if self.name == "key" else record.value_schema

    def value(self, record: ConnectRecord) -> Any:
        """This part of ``record``."""
        return record.key if self.name == "key" else record.value

    def updated(self, record: R, schema: Schema | None, value: Any, **more: Any) -> R:
        """A copy of ``record`` with this part (and its schema) replaced, plus ``more``."""
        if self.name == "key":
            return record.new_record(key_schema=schema, key=value, **more)
        return record.new_record(value_schema=schema, value=value, **more)


KEY = Part("key")
VALUE = Part("value")


def type_name(value: Any) -> str:
    """A short name of ``value``'s type for error messages."""
    return "null" if value is None else type(value).__name__


def require_map(value: Any, purpose: str) -> Mapping[str, Any]:
    """``value`` as a map; `DataError` unless it is one (schemaless records)."""
    if not isinstance(value, Mapping):
        raise DataError(
            f"only map values are supported without a schema for {purpose}, "
            f"found {type_name(value)}"
        )
    return value


def require_struct(value: Any, purpose: str) -> Struct:
    """``value`` as a Struct; `DataError` unless it is one (records with a schema)."""
    if not isinstance(value, Struct):
        raise DataError(
            f"only Struct values are supported with a schema for {purpose}, "
            f"found {type_name(value)}"
        )
    return value


def require_schema(schema: Schema | None, purpose: str) -> Schema:
    """``schema``; `DataError` when the record has none."""
    if schema is None:
        raise DataError(f"a schema is required for {purpose}")
    return schema


def require_sink_record(record: ConnectRecord, purpose: str) -> SinkRecord:
    """``record`` as a SinkRecord; `DataError` for records of source connectors."""
    if not isinstance(record, SinkRecord):
        raise DataError(
            f"only sink records are supported for {purpose}, found {type(record).__name__}"
        )
    return record


def field_value(struct: Struct, name: str, replace_null_with_default: bool = True) -> Any:
    """Field ``name`` of ``struct``. A null field reads as its schema default when
    ``replace_null_with_default`` (Kafka's ``get``), as null otherwise
    (``getWithoutDefault``)."""
    if replace_null_with_default:
        value = struct.get(name)
        if value is None:
            found = struct.schema.field(name)
            return found.schema.default if found is not None else None
        return value
    if struct.schema.field(name) is None:
        raise SchemaError(f"{name!r} is not a field of struct {struct.schema.name or ''}")
    # Struct has no public accessor without the default (Kafka's getWithoutDefault).
    return struct._values.get(name)


def copy_struct(
    source: Struct,
    schema: Schema,
    replace_null_with_default: bool = True,
    renamed: Callable[[str], str] = lambda name: name,
    overrides: Mapping[str, Any] | None = None,
) -> Struct:
    """A Struct of ``schema`` holding, for each of its fields, ``overrides[name]`` if
    given, else the field of ``source`` whose name maps to it through ``renamed``."""
    updates = overrides or {}
    values: dict[str, Any] = {}
    for f in schema.fields:
        if f.name in updates:
            values[f.name] = updates[f.name]
            continue
        original = renamed(f.name)
        if source.schema.field(original) is not None:
            values[f.name] = field_value(source, original, replace_null_with_default)
    return Struct(schema, values)


def rebuild_struct_schema(basis: Schema, fields: Iterable[tuple[str, Schema]]) -> Schema:
    """A STRUCT schema with ``fields`` and the name, version, doc, parameters,
    optionality of ``basis`` (Kafka's ``copySchemaBasics``); `DataError` when two
    fields share a name."""
    items = list(fields)
    names = [name for name, _ in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"the updated schema would have duplicate fields: {duplicates}")
    built = tuple(SchemaField(name, i, schema) for i, (name, schema) in enumerate(items))
    return Schema(
        Type.STRUCT,
        basis.optional,
        name=basis.name,
        version=basis.version,
        doc=basis.doc,
        parameters=basis.parameters,
        fields=built,
    )


def with_optional(schema: Schema, optional: bool) -> Schema:
    """``schema`` made optional when ``optional``; unchanged otherwise."""
    return replace(schema, optional=True) if optional and not schema.optional else schema


class SchemaCache:
    """Rebuilt schemas by input schema, least recently used out past ``size``.

    Schemas are compared by value (they are frozen dataclasses), so equal schemas
    from different records share one entry.
    """

    def __init__(self, build: Callable[[Schema], Schema], size: int = 16) -> None:
        self._build = build
        self._size = size
        self._entries: OrderedDict[Schema, Schema] = OrderedDict()

    def get(self, schema: Schema) -> Schema:
        """The rebuilt form of ``schema``, built on first use."""
        try:
            cached = self._entries.get(schema)
        except TypeError:  # an unhashable default value (a list or dict): no caching
            return self._build(schema)
        if cached is not None:
            self._entries.move_to_end(schema)
            return cached
        built = self._build(schema)
        self._entries[schema] = built
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return built


def split_list(value: Any) -> Any:
    """Kafka's LIST parsing: a comma-separated string (items trimmed, empty items
    dropped) or a JSON list; anything else is left for pydantic to reject."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return value


def _non_empty(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("must name at least one item")
    return value


CsvList = Annotated[tuple[str, ...], BeforeValidator(split_list)]
NonEmptyList = Annotated[tuple[str, ...], BeforeValidator(split_list), AfterValidator(_non_empty)]

REPLACE_NULL_DOC = (
    "Whether to replace fields that have a default value and that are null to the "
    "default value. When set to true, the default value is used, otherwise null is used."
)


class ReplaceNullConfig(PluginConfig):
    """Base of the configs with Kafka's ``replace.null.with.default`` key."""

    replace_null_with_default: bool = Field(
        True, alias="replace.null.with.default", description=REPLACE_NULL_DOC
    )


def parse_field_path(path: str, version: str, key: str = "field") -> tuple[str, ...]:
    """The steps of a field path. ``V1``: the whole text is one field name. ``V2``:
    dot-separated steps; a step in backticks may hold dots (``\\``` escapes a
    backtick inside). `ConfigError` on ``key`` for an unclosed backtick."""
    if version == "V1" or not path:
        return (path,)
    steps: list[str] = []
    i = 0
    while i < len(path):
        if path[i] != "`":
            end = path.find(".", i)
            if end < 0:
                steps.append(path[i:])
                i = len(path)
            else:
                steps.append(path[i:end])
                i = end + 1
            continue
        opened, i, step = i, i + 1, ""
        start = i
        while True:
            close = path.find("`", i)
            if close < 0:
                raise ConfigError(key, f"incomplete backtick pair in path {path!r} at {opened}")
            escaped = path[close - 1] == "\\"
            if close >= len(path) - 1:
                if escaped:
                    raise ConfigError(key, f"incomplete backtick pair in path {path!r} at {opened}")
                steps.append(step + path[start:close])
                i = close + 1
                break
            if path[close + 1] != ".":  # a backtick inside the name
                i = close + 1
                continue
            if escaped:  # \` followed by a dot: a literal backtick, keep looking
                step += path[start : close - 1] + "`"
                i = start = close + 1
                continue
            steps.append(step + path[start:close])
            i = close + 2
            break
    if path.endswith("."):
        steps.append("")
    return tuple(steps)


class PartTransformation(Transformation[C]):
    """A transform with Kafka's ``$Key`` and ``$Value`` forms: the concrete classes
    (``InsertFieldKey``, ``InsertFieldValue`` ...) set ``part``; the shared base
    class alone cannot be configured."""

    part: ClassVar[Part]

    def configure(self, config: Mapping[str, Any]) -> None:
        """As `Transformation.configure`; `ConfigError` on ``type`` for the base class."""
        if not hasattr(type(self), "part"):
            name = type(self).__name__
            raise ConfigError("type", f"{name} needs a side: use {name}$Key or {name}$Value")
        super().configure(config)


class FieldsTransformation(PartTransformation[C]):
    """A ``$Key``/``$Value`` transform of the fields of a map (schemaless records) or a
    Struct (records with a schema). A null key or value passes unchanged; anything
    else that is not a map, or not a Struct, is a `DataError` naming ``purpose``."""

    purpose: ClassVar[str] = "this transformation"

    def apply(self, record: R) -> R | None:
        """Dispatch to `apply_schemaless` or `apply_struct`."""
        value = self.part.value(record)
        if value is None:
            return record
        if self.part.schema(record) is None:
            return self.apply_schemaless(record, require_map(value, self.purpose))
        return self.apply_struct(record, require_struct(value, self.purpose))

    @abstractmethod
    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with its map key/value ``value`` transformed."""

    @abstractmethod
    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with its Struct key/value ``value`` transformed."""


T = TypeVar("T", bound=PartTransformation[Any])


def key_and_value(base: type[T]) -> tuple[type[T], type[T]]:
    """The ``$Key`` and ``$Value`` forms of ``base``, as classes named ``<Base>Key``
    and ``<Base>Value`` in ``base``'s module (so they load by class path too)."""
    forms = []
    for part, suffix in ((KEY, "Key"), (VALUE, "Value")):
        name = base.__name__ + suffix
        kafka_name = f"{base.__name__}${suffix}"
        namespace = {
            "part": part,
            "__doc__": f"{base.__name__} on the record {part.name} (Kafka's {kafka_name}).",
            "__module__": base.__module__,
            "__qualname__": name,
        }
        forms.append(cast(type[T], type(name, (base,), namespace)))
    return forms[0], forms[1]
