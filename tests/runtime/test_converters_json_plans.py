"""Compiled JSON plans give exactly what the general conversion gives, or step aside."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from converter_strategies import SCHEMAS_AND_VALUES
from hypothesis import given, settings

from omconnect.connect.schema import INT8, OPTIONAL_STRING, Schema, Struct, struct_schema
from omconnect.runtime.converters import ConversionError
from omconnect.runtime.converters.json import JsonConverter
from omconnect.runtime.converters.json_data import loads, value_from_json, value_to_json
from omconnect.runtime.converters.json_plans import Fallback, from_json_plan, to_json_plan


def _to(schema: Schema, value: Any) -> Any:
    return value_to_json(schema, value)


def _from(schema: Schema, node: Any) -> Any:
    return value_from_json(schema, node)


@given(SCHEMAS_AND_VALUES)
@settings(max_examples=300)
def test_a_plan_converts_like_the_general_code_or_falls_back(case: tuple[Schema, Any]) -> None:
    schema, value = case
    expected_tree = value_to_json(schema, value)
    with contextlib.suppress(Fallback):
        assert to_json_plan(schema, _to)(value) == expected_tree
    # Read back the way the converter reads: non-integral numbers as exact Decimals.
    node = loads(JsonConverter().from_connect("t", schema, value) or b"null", exact=True)
    node = node["payload"]
    expected = value_from_json(schema, node)
    with contextlib.suppress(Fallback):
        assert from_json_plan(schema, _from)(node) == expected


ROW = struct_schema([("n", INT8), ("s", OPTIONAL_STRING)], name="row").as_optional()
OUTER = struct_schema([("after", ROW)], name="outer")


def test_wrong_values_get_the_general_error_with_its_path() -> None:
    conv = JsonConverter()
    conv.configure({}, is_key=False)
    bad = Struct.of_checked(OUTER, {"after": Struct.of_checked(ROW, {"n": 300, "s": None})})
    with pytest.raises(ConversionError, match=r"after\.n"):
        conv.from_connect("t", OUTER, bad)
    good = Struct(OUTER, {"after": Struct(ROW, {"n": 3, "s": "x"})})
    data = conv.from_connect("t", OUTER, good)
    assert conv.to_connect("t", data) == (OUTER, good)
    broken = data.replace(b'"n":3', b'"n":"3"')
    with pytest.raises(ConversionError, match=r"after\.n"):
        conv.to_connect("t", broken)


def test_numbers_read_as_decimals_become_floats() -> None:
    schema = struct_schema([("x", Schema(INT8.type).as_optional())], name="r")
    plan = from_json_plan(schema, _from)
    assert plan({"x": 5}) == Struct(schema, {"x": 5})
    with pytest.raises(Fallback):
        plan({"x": Decimal("1.5")})  # not an int8: the general code says why
