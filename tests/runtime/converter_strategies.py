"""Hypothesis strategies for Connect schemas and values that fit them (shared by the
converter tests)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from omconnect.connect.schema import (
    INT_RANGES,
    Schema,
    Struct,
    Type,
    array_schema,
    date_schema,
    decimal_schema,
    map_schema,
    struct_schema,
    time_schema,
    timestamp_schema,
)

PRIMITIVES = [Schema(t) for t in Type if t.is_primitive]
LOGICAL = [decimal_schema(s) for s in (0, 2, 5)] + [
    date_schema(),
    time_schema(),
    timestamp_schema(),
]
FIELD_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _maybe_optional(schema: Schema) -> st.SearchStrategy[Schema]:
    return st.sampled_from([schema, schema.as_optional()])


LEAVES = st.sampled_from(PRIMITIVES + LOGICAL).flatmap(_maybe_optional)


def _containers(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    keys = st.sampled_from([Schema(Type.STRING), Schema(Type.INT32)])
    fields = st.lists(
        st.tuples(FIELD_NAMES, children), min_size=1, max_size=4, unique_by=lambda f: f[0]
    )
    return st.one_of(
        children.map(array_schema),
        st.builds(map_schema, keys, children),
        fields.map(struct_schema),
    ).flatmap(_maybe_optional)


SCHEMAS = st.recursive(LEAVES, _containers, max_leaves=8)


def values(schema: Schema) -> st.SearchStrategy[Any]:
    """Values that fit ``schema`` (FLOAT32 values are exact float32 numbers)."""
    strategy = _required_values(schema)
    return st.one_of(st.none(), strategy) if schema.optional else strategy


def _required_values(schema: Schema) -> st.SearchStrategy[Any]:
    if schema.name is not None and schema.name.endswith("Decimal"):
        scale = int(schema.params["scale"])
        return st.decimals(
            min_value=-(10**12),
            max_value=10**12,
            places=scale,
            allow_nan=False,
            allow_infinity=False,
        )
    if schema.name is not None and schema.name.endswith("Date"):
        return st.dates()
    if schema.name is not None and schema.name.endswith(".Time"):
        return st.times().map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
    if schema.name is not None and schema.name.endswith("Timestamp"):
        return st.datetimes(timezones=st.just(dt.UTC)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
        )
    t = schema.type
    if t in INT_RANGES:
        low, high = INT_RANGES[t]
        return st.integers(low, high)
    if t is Type.FLOAT32:
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if t is Type.FLOAT64:
        return st.floats(allow_nan=False, allow_infinity=False)
    if t is Type.BOOLEAN:
        return st.booleans()
    if t is Type.STRING:
        return st.text(max_size=10)
    if t is Type.BYTES:
        return st.binary(max_size=10)
    if t is Type.ARRAY:
        assert schema.value_schema is not None
        return st.lists(values(schema.value_schema), max_size=3)
    if t is Type.MAP:
        assert schema.key_schema is not None and schema.value_schema is not None
        return st.dictionaries(
            _required_values(schema.key_schema),
            values(schema.value_schema),
            max_size=3,
        )
    fields = {f.name: values(f.schema) for f in schema.fields}
    return st.fixed_dictionaries(fields).map(lambda d: Struct(schema, d))


SCHEMAS_AND_VALUES = SCHEMAS.flatmap(lambda s: st.tuples(st.just(s), values(s)))
