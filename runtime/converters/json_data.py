"""Kafka Connect's JSON forms: schemas as JSON objects, values as JSON trees.

`schema_to_json` / `schema_from_json` follow Kafka's ``JsonConverter.asJsonSchema``
and ``asConnectSchema`` key for key (``type`` with Kafka's type names, so FLOAT32 and
FLOAT64 are ``float`` and ``double``; ``optional``, ``name``, ``version``, ``doc``,
``parameters``, ``default``; ``fields`` with ``field``; ``items``; ``keys`` and
``values``). `value_to_json` / `value_from_json` follow ``convertToJson`` and
``convertToConnect``: bytes and BASE64 decimals as base64 text, Date/Time/Timestamp
as integers, maps with STRING keys as objects and other maps as ``[key, value]``
pairs. Reading is stricter than Kafka: a JSON type that does not fit the schema is
a `ConversionError` naming the place, not a silent zero.

A JSON tree here is dict/list/str/int/float/bool/None, plus `decimal.Decimal` for
numbers that must keep every digit (NUMERIC decimals; `dumps_exact` writes them
plainly, and `loads` with ``exact`` reads non-integral numbers as `decimal.Decimal`).
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from omconnect.connect.schema import (
    DECIMAL,
    INT_RANGES,
    Field,
    Schema,
    SchemaError,
    Struct,
    Type,
)
from omconnect.runtime.converters import logical
from omconnect.runtime.converters.base import ConversionError, same_struct_schema

# Kafka's JSON names: Connect's own except FLOAT32/FLOAT64, which are "float"/"double".
JSON_TYPE_NAMES = {t: t.value for t in Type} | {Type.FLOAT32: "float", Type.FLOAT64: "double"}
_TYPE_NAMES = {name: t for t, name in JSON_TYPE_NAMES.items()}
_TYPE_NAMES.update({"float32": Type.FLOAT32, "float64": Type.FLOAT64})  # lenient reading


def _at(path: str) -> str:
    return f"at {path!r}" if path else "at the top level"


def _fail(path: str, reason: str) -> ConversionError:
    return ConversionError(f"{reason} {_at(path)}")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- schemas ---------------------------------------------------------------------------


def schema_to_json(schema: Schema) -> dict[str, Any]:
    """Kafka's JSON form of ``schema`` (key order as Kafka writes it)."""
    node: dict[str, Any] = {"type": JSON_TYPE_NAMES[schema.type]}
    if schema.type is Type.ARRAY:
        node["items"] = schema_to_json(_part(schema.value_schema, "items"))
    elif schema.type is Type.MAP:
        node["keys"] = schema_to_json(_part(schema.key_schema, "keys"))
        node["values"] = schema_to_json(_part(schema.value_schema, "values"))
    elif schema.type is Type.STRUCT:
        node["fields"] = [{**schema_to_json(f.schema), "field": f.name} for f in schema.fields]
    node["optional"] = schema.optional
    if schema.name is not None:
        node["name"] = schema.name
    if schema.version is not None:
        node["version"] = schema.version
    if schema.doc is not None:
        node["doc"] = schema.doc
    if schema.parameters:
        node["parameters"] = dict(schema.parameters)
    if schema.default is not None:
        node["default"] = value_to_json(schema, schema.default, numeric_decimals=False)
    return node


def _part(schema: Schema | None, what: str) -> Schema:
    if schema is None:
        raise ConversionError(f"schema has no {what} schema")
    return schema


def schema_from_json(node: Any, path: str = "") -> Schema | None:
    """The `Schema` of Kafka's JSON form ``node``; None for JSON null (schemaless)."""
    if node is None:
        return None
    if not isinstance(node, dict):
        raise _fail(path, f"a schema must be a JSON object, not {_json_type(node)}")
    type_name = node.get("type")
    schema_type = _TYPE_NAMES.get(type_name) if isinstance(type_name, str) else None
    if schema_type is None:
        raise _fail(path, f"schema has no valid 'type' (got {type_name!r})")
    parts: dict[str, Any] = {}
    if schema_type is Type.ARRAY:
        parts["value_schema"] = _sub_schema(node, "items", path)
    elif schema_type is Type.MAP:
        parts["key_schema"] = _sub_schema(node, "keys", path)
        parts["value_schema"] = _sub_schema(node, "values", path)
    elif schema_type is Type.STRUCT:
        parts["fields"] = _fields_from_json(node.get("fields"), path)
    try:
        schema = Schema(
            schema_type,
            optional=node.get("optional") is True,
            name=_typed(node, "name", str, path),
            version=_typed(node, "version", int, path),
            doc=_typed(node, "doc", str, path),
            parameters=_parameters_from_json(node.get("parameters"), path),
            **parts,
        )
        if node.get("default") is not None:
            default = value_from_json(schema, node["default"], _child(path, "default"))
            schema = replace(schema, default=default)
    except SchemaError as exc:
        raise _fail(path, f"invalid schema: {exc}") from None
    return schema


def _sub_schema(node: dict[str, Any], key: str, path: str) -> Schema:
    sub = schema_from_json(node.get(key), _child(path, key))
    if sub is None:
        raise _fail(path, f"{node['type']} schema has no {key!r} schema")
    return sub


def _fields_from_json(fields: Any, path: str) -> tuple[Field, ...]:
    if not isinstance(fields, list):
        raise _fail(path, "struct schema's 'fields' is not an array")
    out: list[Field] = []
    for i, item in enumerate(fields):
        name = item.get("field") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise _fail(f"{path}.fields[{i}]", "struct field has no 'field' name")
        if any(f.name == name for f in out):
            raise _fail(path, f"struct has two fields named {name!r}")
        sub = schema_from_json(item, _child(path, name))
        if sub is None:  # unreachable: item is a dict
            raise _fail(path, f"field {name!r} has no schema")
        out.append(Field(name, i, sub))
    return tuple(out)


def _typed(node: dict[str, Any], key: str, kind: type, path: str) -> Any:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _fail(path, f"schema {key!r} must be a {kind.__name__}, not {_json_type(value)}")
    return value


def _parameters_from_json(params: Any, path: str) -> tuple[tuple[str, str], ...]:
    if params is None:
        return ()
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise _fail(path, "schema 'parameters' must be an object of strings")
    return tuple(params.items())


# -- values to JSON --------------------------------------------------------------------


def value_to_json(
    schema: Schema | None,
    value: Any,
    path: str = "",
    *,
    numeric_decimals: bool = False,
    replace_null_with_default: bool = True,
) -> Any:
    """The JSON tree of ``value`` under ``schema`` (schemaless when None)."""
    return _ToJson(numeric_decimals, replace_null_with_default).convert(schema, value, path)


class _ToJson:
    __slots__ = ("numeric", "replace_null")

    def __init__(self, numeric: bool, replace_null: bool) -> None:
        self.numeric = numeric
        self.replace_null = replace_null

    def convert(self, schema: Schema | None, value: Any, path: str) -> Any:
        if schema is None:
            return self.schemaless(value, path)
        if value is None:
            if schema.default is not None and self.replace_null:
                return self.convert(schema, schema.default, path)
            if schema.optional or schema.default is not None:
                return None
            raise _fail(path, f"null for a required {schema.type.value}")
        if schema.name in logical.LOGICAL_NAMES:
            return self.logical(schema, value, path)
        t = schema.type
        if t in INT_RANGES:
            return _checked_int(t, value, path)
        if t is Type.FLOAT32 or t is Type.FLOAT64:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(path, f"{t.value} takes float, not {type(value).__name__}")
            return float(value)
        if t is Type.BOOLEAN:
            if not isinstance(value, bool):
                raise _fail(path, f"boolean takes bool, not {type(value).__name__}")
            return value
        if t is Type.STRING:
            if not isinstance(value, str):
                raise _fail(path, f"string takes str, not {type(value).__name__}")
            return value
        if t is Type.BYTES:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise _fail(path, f"bytes takes bytes, not {type(value).__name__}")
            return base64.b64encode(value).decode("ascii")
        if t is Type.ARRAY:
            if not isinstance(value, list | tuple):
                raise _fail(path, f"array takes a list, not {type(value).__name__}")
            items = schema.value_schema
            return [self.convert(items, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if t is Type.MAP:
            return self.map(schema, value, path)
        return self.struct(schema, value, path)

    def logical(self, schema: Schema, value: Any, path: str) -> Any:
        try:
            if self.numeric and schema.name == DECIMAL:
                scale = logical.decimal_scale(schema)
                return logical.scaled(logical.unscaled(value, scale), scale)
            wire = logical.to_wire(schema, value)
        except ValueError as exc:
            raise _fail(path, str(exc)) from None
        return base64.b64encode(wire).decode("ascii") if isinstance(wire, bytes) else wire

    def map(self, schema: Schema, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise _fail(path, f"map takes a dict, not {type(value).__name__}")
        keys, values = schema.key_schema, schema.value_schema
        if keys is not None and keys.type is Type.STRING:
            out: dict[str, Any] = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise _fail(path, f"map key {k!r} is not a string")
                out[k] = self.convert(values, v, f"{path}[{k!r}]")
            return out
        return [
            [self.convert(keys, k, f"{path}.<key>"), self.convert(values, v, f"{path}[{k!r}]")]
            for k, v in value.items()
        ]

    def struct(self, schema: Schema, value: Any, path: str) -> Any:
        if not isinstance(value, Struct):
            raise _fail(path, f"struct takes a Struct, not {type(value).__name__}")
        if not same_struct_schema(value.schema, schema):
            raise _fail(path, "the Struct's schema is not the record's schema")
        return {
            f.name: self.convert(f.schema, value.get(f.name), _child(path, f.name))
            for f in schema.fields
        }

    def schemaless(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, list | tuple):
            return [self.schemaless(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value):
                return {k: self.schemaless(v, f"{path}[{k!r}]") for k, v in value.items()}
            return [
                [self.schemaless(k, f"{path}.<key>"), self.schemaless(v, f"{path}[{k!r}]")]
                for k, v in value.items()
            ]
        if isinstance(value, Struct):
            return self.struct(value.schema, value, path)
        raise _fail(
            path,
            f"schemaless JSON cannot hold {type(value).__name__}; give the record a schema",
        )


def _checked_int(t: Type, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"{t.value} takes int, not {type(value).__name__}")
    low, high = INT_RANGES[t]
    if not low <= value <= high:
        raise _fail(path, f"{value} is out of range for {t.value}")
    return value


# -- values from JSON ------------------------------------------------------------------


def value_from_json(
    schema: Schema | None, node: Any, path: str = "", *, replace_null_with_default: bool = True
) -> Any:
    """The Connect value of JSON tree ``node`` under ``schema`` (schemaless when None:
    objects become dicts, numbers int or float)."""
    if schema is None:
        return _plain(node)
    return _FromJson(replace_null_with_default).convert(schema, node, path)


def _plain(node: Any) -> Any:
    if isinstance(node, decimal.Decimal):
        return float(node)
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    return node


class _FromJson:
    __slots__ = ("replace_null",)

    def __init__(self, replace_null: bool) -> None:
        self.replace_null = replace_null

    def convert(self, schema: Schema, node: Any, path: str) -> Any:
        if node is None:
            if schema.default is not None and self.replace_null:
                return schema.default
            if schema.optional or schema.default is not None:
                return None
            raise _fail(path, f"null for a required {schema.type.value}")
        if schema.name in logical.LOGICAL_NAMES:
            return self.logical(schema, node, path)
        t = schema.type
        if t in INT_RANGES:
            return _checked_int(t, node, path)
        if t is Type.FLOAT32 or t is Type.FLOAT64:
            if isinstance(node, bool) or not isinstance(node, int | float | decimal.Decimal):
                raise _fail(path, f"{t.value} needs a JSON number, not {_json_type(node)}")
            return float(node)
        if t is Type.BOOLEAN:
            if not isinstance(node, bool):
                raise _fail(path, f"boolean needs true or false, not {_json_type(node)}")
            return node
        if t is Type.STRING:
            if not isinstance(node, str):
                raise _fail(path, f"string needs a JSON string, not {_json_type(node)}")
            return node
        if t is Type.BYTES:
            return _base64(node, path)
        if t is Type.ARRAY:
            if not isinstance(node, list):
                raise _fail(path, f"array needs a JSON array, not {_json_type(node)}")
            items = _part(schema.value_schema, "items")
            return [self.convert(items, v, f"{path}[{i}]") for i, v in enumerate(node)]
        if t is Type.MAP:
            return self.map(schema, node, path)
        return self.struct(schema, node, path)

    def logical(self, schema: Schema, node: Any, path: str) -> Any:
        try:
            if schema.name == DECIMAL:
                if isinstance(node, int | decimal.Decimal) and not isinstance(node, bool):
                    # NUMERIC: keep the digits, at the schema's scale when that is exact.
                    number = decimal.Decimal(node)
                    scale = logical.decimal_scale(schema)
                    return logical.scaled(logical.unscaled(number, scale), scale)
                return logical.from_wire(schema, _base64(node, path))
            return logical.from_wire(schema, node)
        except ValueError as exc:
            raise _fail(path, str(exc)) from None

    def map(self, schema: Schema, node: Any, path: str) -> dict[Any, Any]:
        keys = _part(schema.key_schema, "keys")
        values = _part(schema.value_schema, "values")
        if keys.type is Type.STRING:
            if not isinstance(node, dict):
                found = _json_type(node)
                raise _fail(path, f"map with string keys needs a JSON object, not {found}")
            return {k: self.convert(values, v, f"{path}[{k!r}]") for k, v in node.items()}
        if not isinstance(node, list):
            found = _json_type(node)
            raise _fail(path, f"map with non-string keys needs an array of pairs, not {found}")
        out: dict[Any, Any] = {}
        for i, pair in enumerate(node):
            if not isinstance(pair, list) or len(pair) != 2:
                raise _fail(f"{path}[{i}]", "map entry is not a [key, value] pair")
            key = self.convert(keys, pair[0], f"{path}.<key>")
            try:
                out[key] = self.convert(values, pair[1], f"{path}[{key!r}]")
            except TypeError:
                raise _fail(path, f"map key {key!r} is not hashable") from None
        return out

    def struct(self, schema: Schema, node: Any, path: str) -> Struct:
        if not isinstance(node, dict):
            raise _fail(path, f"struct needs a JSON object, not {_json_type(node)}")
        values = {
            f.name: self.convert(f.schema, node.get(f.name), _child(path, f.name))
            for f in schema.fields
        }
        # Each value was just converted and checked against its field's schema.
        return Struct.of_checked(schema, values)


def _base64(node: Any, path: str) -> bytes:
    if not isinstance(node, str):
        raise _fail(path, f"bytes need a base64 JSON string, not {_json_type(node)}")
    try:
        return base64.b64decode(node, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(path, "bytes are not valid base64") from None


def _json_type(node: Any) -> str:
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float | decimal.Decimal):
        return "a number"
    if isinstance(node, str):
        return "a string"
    if isinstance(node, list):
        return "an array"
    if isinstance(node, dict):
        return "an object"
    return type(node).__name__


# -- text ------------------------------------------------------------------------------


def dumps(tree: Any) -> str:
    """Compact JSON text of ``tree`` (as Jackson writes it: no spaces, UTF-8 as is);
    `decimal.Decimal` numbers are written plainly with every digit."""
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False, default=_no_json)


def dumps_exact(tree: Any) -> str:
    """`dumps` for trees that may hold `decimal.Decimal` numbers."""
    parts: list[str] = []
    _write(tree, parts)
    return "".join(parts)


def _write(tree: Any, out: list[str]) -> None:
    if isinstance(tree, decimal.Decimal):
        out.append(format(tree, "f"))
    elif isinstance(tree, dict):
        out.append("{")
        for i, (k, v) in enumerate(tree.items()):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(tree, list):
        out.append("[")
        for i, v in enumerate(tree):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        out.append(json.dumps(tree, ensure_ascii=False))


def _no_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def loads(data: bytes, exact: bool) -> Any:
    """Parse JSON ``data``; with ``exact``, non-integral numbers are `decimal.Decimal`.
    `ConversionError` for text that is not JSON."""
    try:
        if exact:
            return json.loads(data, parse_float=decimal.Decimal)
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"the bytes are not JSON ({exc})") from None
    except RecursionError:
        raise ConversionError("the JSON is nested too deeply") from None
