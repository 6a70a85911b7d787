"""TimestampConverter, TimestampRouter and the SimpleDateFormat patterns they use."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from transform_helpers import configured, record

from omconnect.connect.schema import (
    INT32,
    INT64,
    OPTIONAL_INT64,
    OPTIONAL_STRING,
    STRING,
    Struct,
    date_schema,
    struct_schema,
    time_schema,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms import DataError
from omconnect.runtime.transforms.dateformat import DateFormat
from omconnect.runtime.transforms.routing import TimestampRouter
from omconnect.runtime.transforms.timestamps import (
    TimestampConverterKey,
    TimestampConverterValue,
)

UTC = dt.UTC
MILLIS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z
MOMENT = dt.datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)
DAY = dt.date(2023, 11, 14)
CLOCK = dt.time(22, 13, 20, 123_000)
ISO = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"


def convert(value: Any, **config: Any) -> Any:
    config = {k.replace("_", "."): v for k, v in config.items()}
    return configured(TimestampConverterValue, config).apply(record(value)).value


# TimestampConverter, schemaless whole values


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        (MILLIS, "Timestamp", MOMENT),
        (MILLIS, "Date", DAY),
        (MILLIS, "Time", CLOCK),
        (MILLIS, "unix", MILLIS),
        (MOMENT, "unix", MILLIS),
        (MOMENT, "Date", DAY),
        (DAY, "unix", 1_699_920_000_000),
        (DAY, "Timestamp", dt.datetime(2023, 11, 14, tzinfo=UTC)),
        (CLOCK, "unix", 80_000_123),
        (CLOCK, "Timestamp", dt.datetime(1970, 1, 1, 22, 13, 20, 123_000, tzinfo=UTC)),
        (-1, "Date", dt.date(1969, 12, 31)),
        (-1, "Time", dt.time(23, 59, 59, 999_000)),
        (dt.datetime(2023, 11, 14, 22, 13, 20, 123_000), "unix", MILLIS),  # naive means UTC
        (None, "Timestamp", None),
    ],
)
def test_converts_between_kinds(value: Any, target: str, expected: Any) -> None:
    assert convert(value, target_type=target) == expected


def test_converts_to_and_from_strings_with_a_format() -> None:
    assert convert(MILLIS, target_type="string", format=ISO) == "2023-11-14T22:13:20.123Z"
    assert convert("2023-11-14T23:13:20.123+01:00", target_type="unix", format=ISO) == MILLIS
    assert convert("14/11/2023", target_type="Date", format="dd/MM/yyyy") == DAY


@pytest.mark.parametrize(
    ("precision", "value", "millis"),
    [
        ("seconds", 1_700_000_000, 1_700_000_000_000),
        ("milliseconds", MILLIS, MILLIS),
        ("microseconds", 1_700_000_000_123_456, MILLIS),
        ("nanoseconds", 1_700_000_000_123_456_789, MILLIS),
        ("microseconds", -1_500, -1),  # Java truncates toward zero
    ],
)
def test_unix_precision_reads_input_numbers(precision: str, value: int, millis: int) -> None:
    expected = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=millis)
    assert convert(value, target_type="Timestamp", unix_precision=precision) == expected


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        ("seconds", 1_700_000_000),
        ("milliseconds", MILLIS),
        ("microseconds", MILLIS * 1000),
        ("nanoseconds", MILLIS * 1_000_000),
    ],
)
def test_unix_precision_writes_output_numbers(precision: str, expected: int) -> None:
    assert convert(MOMENT, target_type="unix", unix_precision=precision) == expected


def test_negative_seconds_truncate_toward_zero() -> None:
    before_epoch = dt.datetime(1969, 12, 31, 23, 59, 58, 500_000, tzinfo=UTC)  # -1500 ms
    assert convert(before_epoch, target_type="unix", unix_precision="seconds") == -1


def test_a_schemaless_field_is_converted_and_others_kept() -> None:
    out = convert({"ts": MILLIS, "id": 1}, target_type="Timestamp", field="ts")
    assert out == {"ts": MOMENT, "id": 1}
    assert convert({"id": 1}, target_type="Timestamp", field="ts") == {"id": 1, "ts": None}


def test_string_that_does_not_match_the_format_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"does not match pattern \(yyyy-MM-dd\)"):
        convert("14.11.2023", target_type="unix", format="yyyy-MM-dd")


@pytest.mark.parametrize("value", [1.5, True, [1], b"x"])
def test_values_that_are_not_timestamps_are_data_errors(value: Any) -> None:
    with pytest.raises(DataError):
        convert(value, target_type="Timestamp")


def test_a_string_input_needs_a_format() -> None:
    with pytest.raises(DataError, match="format"):
        convert("2023-11-14", target_type="unix")


# TimestampConverter with a schema

EVENT = struct_schema([("id", INT32), ("at", STRING), ("note", OPTIONAL_STRING)], name="Event")


def test_a_struct_field_changes_type_and_schema() -> None:
    transform = configured(
        TimestampConverterValue, {"target.type": "Timestamp", "field": "at", "format": "yyyy-MM-dd"}
    )
    value = Struct(EVENT, {"id": 1, "at": "2023-11-14"})
    out = transform.apply(record(value, EVENT))
    assert out.value_schema.field("at").schema == timestamp_schema()
    assert out.value_schema.name == "Event"
    assert out.value.as_dict() == {
        "id": 1,
        "at": dt.datetime(2023, 11, 14, tzinfo=UTC),
        "note": None,
    }
    assert transform.apply(record(value, EVENT)).value_schema is out.value_schema


def test_an_optional_field_stays_optional() -> None:
    schema = struct_schema([("at", OPTIONAL_INT64)])
    transform = configured(
        TimestampConverterValue, {"target.type": "string", "field": "at", "format": "yyyy"}
    )
    out = transform.apply(record(Struct(schema, {}), schema))
    assert out.value_schema.field("at").schema == OPTIONAL_STRING
    assert out.value.get("at") is None


@pytest.mark.parametrize(
    ("schema", "value", "target", "expected_schema", "expected"),
    [
        (INT64, MILLIS, "Date", date_schema(), DAY),
        (timestamp_schema(), MOMENT, "Time", time_schema(), CLOCK),
        (date_schema(True), DAY, "unix", OPTIONAL_INT64, 1_699_920_000_000),
        (time_schema(), CLOCK, "unix", INT64, 80_000_123),
        (timestamp_schema(True), None, "unix", OPTIONAL_INT64, None),
    ],
)
def test_a_whole_value_with_schema(
    schema: Any, value: Any, target: str, expected_schema: Any, expected: Any
) -> None:
    out = configured(TimestampConverterKey, {"target.type": target}).apply(
        record("v", key=value, key_schema=schema)
    )
    assert (out.key_schema, out.key, out.value) == (expected_schema, expected, "v")


def test_a_schema_that_is_no_timestamp_is_a_data_error() -> None:
    with pytest.raises(DataError, match="does not correspond"):
        configured(TimestampConverterValue, {"target.type": "unix"}).apply(record(5, INT32))


def test_a_null_struct_keeps_the_converted_schema() -> None:
    out = configured(TimestampConverterValue, {"target.type": "unix", "field": "at"}).apply(
        record(None, struct_schema([("at", timestamp_schema())], optional=True))
    )
    assert out.value is None
    assert out.value_schema.field("at").schema == INT64


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "target.type"),
        ({"target.type": "epoch"}, "target.type"),
        ({"target.type": "string"}, "format"),
        ({"target.type": "string", "format": "yyyy-ww"}, "format"),
        ({"target.type": "unix", "format": "yyyy-'MM"}, "format"),
        ({"target.type": "unix", "unix.precision": "minutes"}, "unix.precision"),
    ],
)
def test_converter_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(TimestampConverterValue, config)
    assert caught.value.key == key


# TimestampRouter


def test_router_default_formats() -> None:
    out = configured(TimestampRouter).apply(record({"a": 1}, topic="logs"))
    assert (out.topic, out.partition, out.value) == ("logs-20231114", 3, {"a": 1})


def test_router_custom_formats() -> None:
    router = configured(
        TimestampRouter, {"topic.format": "${timestamp}.${topic}", "timestamp.format": "yyyy-MM"}
    )
    assert router.apply(record(topic="logs")).topic == "2023-11.logs"


def test_router_needs_a_timestamp_and_a_valid_format() -> None:
    with pytest.raises(DataError, match="timestamp missing"):
        configured(TimestampRouter).apply(record(timestamp=None))
    with pytest.raises(ConfigError) as caught:
        configured(TimestampRouter, {"timestamp.format": "yyyyQ"})
    assert caught.value.key == "timestamp.format"


# SimpleDateFormat patterns


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("yyyyMMdd", "20231114"),
        ("yyyy-MM-dd HH:mm:ss.SSS", "2023-11-14 22:13:20.123"),
        ("yy/M/d H:m:s", "23/11/14 22:13:20"),
        ("dd MMM yyyy hh:mm a", "14 Nov 2023 10:13 PM"),
        ("EEEE, d MMMM yyyy", "Tuesday, 14 November 2023"),
        ("EEE yyyy DDD", "Tue 2023 318"),
        ("yyyy-MM-dd'T'HH:mm:ssZ", "2023-11-14T22:13:20+0000"),
        ("yyyy-MM-dd'T'HH:mm:ssX", "2023-11-14T22:13:20Z"),
        ("HH:mm z", "22:13 UTC"),
        ("kk:mm K", "22:13 10"),
        ("'at' HH 'o''clock' G", "at 22 o'clock AD"),
        ("u", "2"),
    ],
)
def test_date_format_formats_like_java(pattern: str, text: str) -> None:
    assert DateFormat(pattern).format(MILLIS) == text


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("yyyyMMdd", "20231114", dt.datetime(2023, 11, 14, tzinfo=UTC)),
        ("yyyyMMddHHmm", "202311142213", dt.datetime(2023, 11, 14, 22, 13, tzinfo=UTC)),
        (
            "dd MMM yyyy hh:mm a",
            "14 nov 2023 10:13 pm",
            dt.datetime(2023, 11, 14, 22, 13, tzinfo=UTC),
        ),
        ("hh:mm a", "12:05 AM", dt.datetime(1970, 1, 1, 0, 5, tzinfo=UTC)),
        ("hh:mm a", "12:05 PM", dt.datetime(1970, 1, 1, 12, 5, tzinfo=UTC)),
        (
            "yyyy-MM-dd HH:mm:ssXXX",
            "2023-11-14 23:13:20+01:00",
            dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (
            "yyyy-MM-dd HH:mm Z",
            "2023-11-14 17:13 -0500",
            dt.datetime(2023, 11, 14, 22, 13, tzinfo=UTC),
        ),
        ("yyyy DDD", "2024 60", dt.datetime(2024, 2, 29, tzinfo=UTC)),
        ("yyyy-MM-dd", "2023-11-14 and more", dt.datetime(2023, 11, 14, tzinfo=UTC)),
        ("HH:mm:ss.SSS", "00:00:00.5", dt.datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)),
        ("yyyy", "0099", dt.datetime(99, 1, 1, tzinfo=UTC)),
    ],
)
def test_date_format_parses_like_java(pattern: str, text: str, expected: dt.datetime) -> None:
    delta = expected - dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert DateFormat(pattern).parse(text) == delta // dt.timedelta(milliseconds=1)


def test_two_digit_years_fall_in_the_window_around_today() -> None:
    this_year = dt.date.today().year
    soon = (this_year + 5) % 100
    long_ago = (this_year - 50) % 100
    parsed_soon = dt.datetime.fromtimestamp(DateFormat("yy").parse(f"{soon:02d}") / 1000, UTC)
    parsed_ago = dt.datetime.fromtimestamp(DateFormat("yy").parse(f"{long_ago:02d}") / 1000, UTC)
    assert parsed_soon.year == this_year + 5
    assert parsed_ago.year == this_year - 50


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("yyyy-MM-dd", "2023/11/14"), ("yyyy-MM-dd", "2023-13-01"), ("MMM", "Foo"), ("HH", "")],
)
def test_date_format_rejects_text_that_does_not_fit(pattern: str, text: str) -> None:
    with pytest.raises(ValueError):
        DateFormat(pattern).parse(text)


@pytest.mark.parametrize("pattern", ["yyyy-ww", "YYYY", "yyyy'", "bb", "XXXX"])
def test_date_format_rejects_unsupported_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        DateFormat(pattern)
