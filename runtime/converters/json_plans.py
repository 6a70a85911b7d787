"""Compiled JSON conversion plans for struct-heavy records (a CDC change event is a
struct of structs converted thousands of times per second with one schema).

`to_json_plan(schema, generic)` and `from_json_plan(schema, generic)` walk a schema
once and return a function converting one value of it with exact-type checks only:
struct fields resolved in advance, no error paths built. Logical types, bytes,
arrays, maps and fields with defaults are handed to ``generic`` (the converter's
general code). Anything the plan does not accept as is (a wrong type, a null in a
required field, a struct of another schema, a failure in ``generic``) raises
`Fallback`: the caller then converts the whole value with the general code, which
gives the same result or the precise error with its path. So a plan changes speed,
never results.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

from omconnect.connect.schema import INT_RANGES, Schema, Struct, Type
from omconnect.runtime.converters import logical
from omconnect.runtime.converters.base import ConversionError, same_struct_schema

Plan = Callable[[Any], Any]
Generic = Callable[[Schema, Any], Any]
"""The general conversion of one value under a schema (raises `ConversionError`)."""


class Fallback(Exception):
    """The plan cannot convert this value; convert it with the general code."""


def to_json_plan(schema: Schema, generic: Generic) -> Plan:
    """A function from a Connect value of ``schema`` to its JSON tree."""
    return _plan(schema, generic, to_json=True)


def from_json_plan(schema: Schema, generic: Generic) -> Plan:
    """A function from a JSON tree to the Connect value of ``schema``."""
    return _plan(schema, generic, to_json=False)


def _plan(schema: Schema, generic: Generic, to_json: bool) -> Plan:
    if schema.default is not None or schema.name in logical.LOGICAL_NAMES:
        return _generic(schema, generic)
    t = schema.type
    if t in INT_RANGES:
        return _int(schema, *INT_RANGES[t])
    if t is Type.STRING or t is Type.BOOLEAN:
        return _exact(schema, str if t is Type.STRING else bool)
    if t is Type.FLOAT32 or t is Type.FLOAT64:
        # JSON numbers are read as int or (exactly) Decimal; Connect floats are float.
        return _float(schema, (float, int) if to_json else (float, int, decimal.Decimal))
    if t is Type.STRUCT and not any(f.schema.default is not None for f in schema.fields):
        fields = tuple((f.name, _plan(f.schema, generic, to_json)) for f in schema.fields)
        return _struct_to_json(schema, fields) if to_json else _struct_from_json(schema, fields)
    return _generic(schema, generic)


def _null(schema: Schema) -> None:
    if not schema.optional:
        raise Fallback  # the general code names the required field
    return None


def _generic(schema: Schema, generic: Generic) -> Plan:
    def convert(value: Any) -> Any:
        try:
            return generic(schema, value)
        except ConversionError:
            raise Fallback from None

    return convert


def _int(schema: Schema, low: int, high: int) -> Plan:
    def convert(value: Any) -> Any:
        if type(value) is int and low <= value <= high:
            return value
        if value is None:
            return _null(schema)
        raise Fallback

    return convert


def _exact(schema: Schema, kind: type) -> Plan:
    def convert(value: Any) -> Any:
        if type(value) is kind:
            return value
        if value is None:
            return _null(schema)
        raise Fallback

    return convert


def _float(schema: Schema, kinds: tuple[type, ...]) -> Plan:
    def convert(value: Any) -> Any:
        if type(value) in kinds:
            return float(value)
        if value is None:
            return _null(schema)
        raise Fallback

    return convert


_MAX_ACCEPTED = 64


def _struct_to_json(schema: Schema, fields: tuple[tuple[str, Plan], ...]) -> Plan:
    # Schemas of Structs found to stand for ``schema`` (the same, or differing only in
    # optionality), by id; the dict holds each, so an id cannot be reused meanwhile.
    accepted: dict[int, Schema] = {id(schema): schema}

    def convert(value: Any) -> Any:
        if type(value) is Struct:
            actual = value.schema
            if accepted.get(id(actual)) is not actual:
                if not same_struct_schema(actual, schema):
                    raise Fallback
                if len(accepted) < _MAX_ACCEPTED:
                    accepted[id(actual)] = actual
            values = value._values
            return {name: plan(values.get(name)) for name, plan in fields}
        if value is None:
            return _null(schema)
        raise Fallback

    return convert


def _struct_from_json(schema: Schema, fields: tuple[tuple[str, Plan], ...]) -> Plan:
    def convert(node: Any) -> Any:
        if type(node) is dict:
            # Each value was built by its field's plan: no second check.
            return Struct.of_checked(schema, {name: plan(node.get(name)) for name, plan in fields})
        if node is None:
            return _null(schema)
        raise Fallback

    return convert
