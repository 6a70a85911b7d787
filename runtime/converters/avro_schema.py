"""Connect schemas ↔ Avro schemas, the way Confluent's ``AvroData`` maps them.

=================  ==========================================================
Connect            Avro
=================  ==========================================================
INT8, INT16        ``int`` with ``"connect.type": "int8"`` / ``"int16"``
INT32, INT64       ``int``, ``long``
FLOAT32, FLOAT64   ``float``, ``double``
BOOLEAN, STRING    ``boolean``, ``string``
BYTES              ``bytes``
Decimal            ``bytes`` + ``logicalType: decimal``, ``scale``, ``precision``
                   (64 unless the ``connect.decimal.precision`` parameter says)
Date, Time         ``int`` + ``date`` / ``time-millis``
Timestamp          ``long`` + ``timestamp-millis``
ARRAY              ``array``
MAP, STRING keys   ``map``
MAP, other keys    ``array`` of ``io.confluent.connect.avro.MapEntry`` records
                   with fields ``key`` and ``value``
STRUCT             ``record`` named after the schema (``a.b.C`` → namespace
                   ``a.b``, name ``C``), else ``io.confluent.connect.avro.
                   ConnectDefault``; fields keep their order
optional           union with ``null``: ``["null", T]`` with default null, or
                   ``[T, "null"]`` when the field has a default of its own
=================  ==========================================================

Connect details Avro has no place for travel in ``connect.*`` properties
(``connect.name``, ``connect.version``, ``connect.doc``, ``connect.parameters``,
``connect.default``), so ``from_avro_schema(to_avro_schema(s)) == s``. Unnamed
structs and map entries are numbered (``ConnectDefault2``, ``MapEntry2`` ...)
because Avro names must be unique within a schema; a struct used twice is
defined once and then referenced by name. Reading also accepts ``enum`` (a STRING
with Confluent's enum parameters, written back as the enum) and ``fixed`` (BYTES).
Unions other than "T or null" and recursive records are not supported
(`SchemaError`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from omconnect.connect.schema import (
    DATE,
    DECIMAL,
    TIME,
    TIMESTAMP,
    Field,
    Schema,
    SchemaError,
    Struct,
    Type,
)
from omconnect.runtime.converters import logical
from omconnect.runtime.converters.avro_data import (
    datum_to_json,
    from_avro_datum,
    string_keyed,
    to_avro_datum,
)
from omconnect.runtime.converters.base import ConversionError

NAMESPACE = "io.confluent.connect.avro"
DEFAULT_RECORD = "ConnectDefault"
MAP_ENTRY = "MapEntry"
ENUM_PARAM = f"{NAMESPACE}.Enum"
DEFAULT_PRECISION = 64
_LOGICAL_AVRO = {DATE: "date", TIME: "time-millis", TIMESTAMP: "timestamp-millis"}
_AVRO_LOGICAL = {("int", "date"): DATE, ("int", "time-millis"): TIME}
_AVRO_LOGICAL[("long", "timestamp-millis")] = TIMESTAMP
_PRIMITIVES = {
    Type.INT8: "int",
    Type.INT16: "int",
    Type.INT32: "int",
    Type.INT64: "long",
    Type.FLOAT32: "float",
    Type.FLOAT64: "double",
    Type.BOOLEAN: "boolean",
    Type.STRING: "string",
    Type.BYTES: "bytes",
}
_FROM_PRIMITIVE = {
    "int": Type.INT32,
    "long": Type.INT64,
    "float": Type.FLOAT32,
    "double": Type.FLOAT64,
    "boolean": Type.BOOLEAN,
    "string": Type.STRING,
    "bytes": Type.BYTES,
}
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")
_GENERATED = re.compile(rf"^{re.escape(NAMESPACE)}\.(?:{DEFAULT_RECORD}|{MAP_ENTRY})\d*$")


def to_avro_schema(schema: Schema) -> Any:
    """The Avro schema (parsed JSON: a dict, a union list or a type name) of ``schema``.
    `SchemaError` if Avro cannot express it (two different structs with one name)."""
    return _ToAvro().convert(schema)


def from_avro_schema(avro: Any) -> Schema:
    """The Connect schema of an Avro schema (parsed JSON). `SchemaError` for Avro
    that Connect cannot express."""
    return _FromAvro().convert(avro, "")


def _avro_name(name: str) -> str:
    cleaned = _INVALID_NAME_CHARS.sub("_", name)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"_{cleaned}"


class _ToAvro:
    def __init__(self) -> None:
        self.defined: dict[str, Schema] = {}  # Avro full name -> struct it stands for
        self.anonymous: list[tuple[Schema, str]] = []  # a list: defaults may be unhashable
        self.counters: dict[str, int] = {}

    def convert(self, schema: Schema) -> Any:
        base = self.base(schema)
        if not schema.optional:
            return base
        return [base, "null"] if schema.default is not None else ["null", base]

    def base(self, schema: Schema) -> Any:
        t = schema.type
        if t is Type.STRUCT:
            return self.record(schema)
        node: dict[str, Any]
        if t is Type.ARRAY:
            node = {"type": "array", "items": self.convert(_sub(schema.value_schema))}
        elif t is Type.MAP:
            node = self.map(schema)
        elif t is Type.STRING and ENUM_PARAM in schema.params:
            node = _enum(schema)
        else:
            node = {"type": _PRIMITIVES[t]}
            if schema.name == DECIMAL:
                node["scale"] = logical.decimal_scale(schema)
                node["precision"] = _precision(schema)
        node.update(self.metadata(schema))
        self.add_logical_type(schema, node)
        return node["type"] if len(node) == 1 else node

    def metadata(self, schema: Schema) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if schema.doc is not None:
            props["connect.doc"] = schema.doc
        if schema.version is not None:
            props["connect.version"] = schema.version
        if schema.parameters:
            props["connect.parameters"] = dict(schema.parameters)
        if schema.default is not None:
            props["connect.default"] = _default_json(schema)
        if schema.name is not None:
            props["connect.name"] = schema.name
        if schema.type in (Type.INT8, Type.INT16):
            props["connect.type"] = schema.type.value
        return props

    @staticmethod
    def add_logical_type(schema: Schema, node: dict[str, Any]) -> None:
        if schema.name == DECIMAL:
            if 0 <= node["scale"] <= node["precision"]:
                node["logicalType"] = "decimal"
        elif schema.name in _LOGICAL_AVRO:
            node["logicalType"] = _LOGICAL_AVRO[schema.name]

    def map(self, schema: Schema) -> dict[str, Any]:
        if string_keyed(schema):
            return {"type": "map", "values": self.convert(_sub(schema.value_schema))}
        entry = {
            "type": "record",
            "name": self.numbered(MAP_ENTRY),
            "namespace": NAMESPACE,
            "fields": [
                self.field("key", _sub(schema.key_schema)),
                self.field("value", _sub(schema.value_schema)),
            ],
            "connect.internal.type": MAP_ENTRY,
        }
        return {"type": "array", "items": entry}

    def record(self, schema: Schema) -> Any:
        # Compared without optionality and default (building a copy that keeps a struct
        # default but changes optionality would fail the default's schema check).
        plain = replace(schema, optional=False, default=None)
        if schema.name is None:
            for known, known_name in self.anonymous:
                if known == plain:
                    return known_name
            namespace, name = NAMESPACE, self.numbered(DEFAULT_RECORD)
        else:
            space, _, last = schema.name.rpartition(".")
            namespace = ".".join(_avro_name(part) for part in space.split(".")) if space else ""
            name = _avro_name(last)
        full_name = f"{namespace}.{name}" if namespace else name
        if full_name in self.defined:
            if self.defined[full_name] == plain:
                return full_name
            raise SchemaError(f"two different structs are named {schema.name!r}")
        self.defined[full_name] = plain
        if schema.name is None:
            self.anonymous.append((plain, full_name))
        node: dict[str, Any] = {"type": "record", "name": name}
        if namespace:
            node["namespace"] = namespace
        node["fields"] = [self.field(f.name, f.schema) for f in schema.fields]
        node.update(self.metadata(schema))
        return node

    def field(self, name: str, schema: Schema) -> dict[str, Any]:
        node: dict[str, Any] = {"name": name, "type": self.convert(schema)}
        if schema.default is not None:
            node["default"] = _default_json(schema)
        elif schema.optional:
            node["default"] = None
        return node

    def numbered(self, base: str) -> str:
        count = self.counters.get(base, 0) + 1
        self.counters[base] = count
        return base if count == 1 else f"{base}{count}"


def _sub(schema: Schema | None) -> Schema:
    if schema is None:  # unreachable: Schema checks this when built
        raise SchemaError("array or map schema without its element schema")
    return schema


def _precision(schema: Schema) -> int:
    raw = schema.params.get("connect.decimal.precision")
    return int(raw) if raw is not None and raw.isdigit() else DEFAULT_PRECISION


def _enum(schema: Schema) -> dict[str, Any]:
    prefix = f"{ENUM_PARAM}."
    symbols = [v for k, v in schema.parameters if k.startswith(prefix)]
    full_name = schema.params[ENUM_PARAM]
    return {"type": "enum", "name": full_name, "symbols": symbols}


def _default_json(schema: Schema) -> Any:
    try:
        datum = to_avro_datum(replace(schema, default=None), schema.default)
    except ConversionError as exc:
        raise SchemaError(f"default does not fit its schema: {exc}") from None
    return datum_to_json(datum)


class _FromAvro:
    def __init__(self) -> None:
        self.named: dict[str, Schema] = {}

    def convert(self, node: Any, namespace: str) -> Schema:
        if isinstance(node, str):
            return self.reference(node, namespace)
        if isinstance(node, list):
            return self.union(node, namespace)
        if not isinstance(node, dict):
            raise SchemaError(f"not an Avro schema: {node!r}")
        kind = node.get("type")
        if isinstance(kind, list | dict):
            return self.convert(kind, namespace)
        full_name = ""
        if kind in ("record", "enum", "fixed"):
            full_name, namespace = _full_name(node, namespace)
        if kind == "record":
            schema = self.record(node, full_name, namespace)
        elif kind == "array":
            schema = self.array(node, namespace)
        elif kind == "map":
            values = self.convert(node.get("values"), namespace)
            schema = Schema(Type.MAP, key_schema=Schema(Type.STRING), value_schema=values)
        elif kind == "enum":
            symbols = node.get("symbols") or []
            params = ((ENUM_PARAM, full_name), *((f"{ENUM_PARAM}.{s}", s) for s in symbols))
            schema = Schema(Type.STRING, parameters=tuple(params))
        elif kind == "fixed":
            schema = Schema(Type.BYTES, parameters=(("connect.fixed.size", str(node.get("size"))),))
        elif kind in _FROM_PRIMITIVE:
            schema = Schema(self.primitive_type(node, kind))
        else:
            raise SchemaError(f"unsupported Avro type {kind!r}")
        schema = self.with_metadata(schema, node, kind)
        if full_name:
            self.named[full_name] = schema
        return schema

    def reference(self, name: str, namespace: str) -> Schema:
        if name in _FROM_PRIMITIVE:
            return Schema(_FROM_PRIMITIVE[name])
        if name == "null":
            raise SchemaError("a bare Avro null has no Connect schema")
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        found = self.named.get(full) or self.named.get(name)
        if found is None:
            raise SchemaError(f"unknown or recursive Avro type {name!r}")
        return found

    def union(self, branches: list[Any], namespace: str) -> Schema:
        others = [b for b in branches if b != "null" and b != {"type": "null"}]
        if len(others) != 1:
            raise SchemaError(f"only unions of one type with null are supported: {branches}")
        inner = self.convert(others[0], namespace)
        if len(branches) == 1:
            return inner
        if isinstance(inner.default, Struct):  # rebuild it on the optional schema
            target = replace(inner, optional=True, default=None)
            values = {f.name: inner.default.get(f.name) for f in target.fields}
            return replace(target, default=Struct(target, values))
        return replace(inner, optional=True)

    @staticmethod
    def primitive_type(node: dict[str, Any], kind: str) -> Type:
        connect_type = node.get("connect.type")
        if kind == "int" and connect_type in ("int8", "int16"):
            return Type(connect_type)
        return _FROM_PRIMITIVE[kind]

    def record(self, node: dict[str, Any], full_name: str, namespace: str) -> Schema:
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise SchemaError(f"Avro record {full_name!r} has no fields list")
        built: list[Field] = []
        for i, item in enumerate(fields):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise SchemaError(f"Avro record {full_name!r} has a field without a name")
            built.append(Field(item["name"], i, self.field(item, namespace)))
        name = None if _GENERATED.match(full_name) else full_name
        return Schema(Type.STRUCT, name=name, fields=tuple(built))

    def field(self, item: dict[str, Any], namespace: str) -> Schema:
        schema = self.convert(item.get("type"), namespace)
        default = item.get("default")
        if default is None or schema.default is not None:
            return schema
        try:
            value = from_avro_datum(schema, default)
            return replace(schema, default=value)
        except (ConversionError, SchemaError) as exc:
            raise SchemaError(f"field {item['name']!r} has a bad default: {exc}") from None

    def array(self, node: dict[str, Any], namespace: str) -> Schema:
        items = node.get("items")
        if isinstance(items, dict) and _is_map_entry(items):
            entry = self.convert(items, namespace)
            key, value = entry.field("key"), entry.field("value")
            if key is None or value is None:
                raise SchemaError("map entry record needs fields 'key' and 'value'")
            return Schema(Type.MAP, key_schema=key.schema, value_schema=value.schema)
        return Schema(Type.ARRAY, value_schema=self.convert(items, namespace))

    def with_metadata(self, schema: Schema, node: dict[str, Any], kind: str) -> Schema:
        changes: dict[str, Any] = {}
        logical_name = _logical_name(node, kind)
        if logical_name is not None:
            changes["name"] = logical_name
            changes["version"] = 1
            if logical_name == DECIMAL:
                params = [("scale", str(node.get("scale", 0)))]
                precision = node.get("precision")
                if isinstance(precision, int) and precision != DEFAULT_PRECISION:
                    params.append(("connect.decimal.precision", str(precision)))
                changes["parameters"] = tuple(params)
        if isinstance(node.get("connect.name"), str):
            changes["name"] = node["connect.name"]
        if isinstance(node.get("connect.version"), int):
            changes["version"] = node["connect.version"]
        if isinstance(node.get("connect.doc"), str):
            changes["doc"] = node["connect.doc"]
        connect_params = node.get("connect.parameters")
        if isinstance(connect_params, dict):
            changes["parameters"] = tuple((str(k), str(v)) for k, v in connect_params.items())
        if not changes and "connect.default" not in node:
            return schema
        try:
            result = replace(schema, **changes)
            if node.get("connect.default") is not None:
                default = from_avro_datum(result, node["connect.default"])
                result = replace(result, default=default)
        except (ConversionError, SchemaError) as exc:
            raise SchemaError(f"Avro {kind} schema has bad connect.* properties: {exc}") from None
        return result


def _full_name(node: dict[str, Any], namespace: str) -> tuple[str, str]:
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"Avro {node.get('type')} has no name")
    if "." in name:
        return name, name.rpartition(".")[0]
    space = node.get("namespace", namespace) or ""
    return (f"{space}.{name}" if space else name), space


def _is_map_entry(node: dict[str, Any]) -> bool:
    if node.get("type") != "record":
        return False
    if node.get("connect.internal.type") == MAP_ENTRY:
        return True
    name = node.get("name", "")
    full = name if "." in name else f"{node.get('namespace', '')}.{name}"
    return full.startswith(f"{NAMESPACE}.{MAP_ENTRY}")


def _logical_name(node: dict[str, Any], kind: str) -> str | None:
    logical_type = node.get("logicalType")
    if logical_type == "decimal" and kind in ("bytes", "fixed"):
        return DECIMAL
    return _AVRO_LOGICAL.get((kind, str(logical_type)))
