"""The transform chain: Kafka-style config parsing, predicates, negate, errors."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import pytest
from transform_helpers import record

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord, Headers
from omconnect.errors import ConfigError, RecordError
from omconnect.runtime.transforms import (
    DataError,
    Predicate,
    Transformation,
    TransformError,
    build_chain,
)
from omconnect.runtime.transforms.fields import InsertFieldValue, MaskFieldValue
from omconnect.runtime.transforms.registry import (
    PREDICATE_ALIASES,
    TRANSFORM_ALIASES,
    load_predicate,
    load_transformation,
)

R = TypeVar("R", bound=ConnectRecord)


class Recording(Transformation[PluginConfig]):
    """Appends its alias-free name to a class-level log; counts closes."""

    calls: ClassVar[list[str]] = []
    closed: ClassVar[int] = 0

    def apply(self, record: R) -> R | None:
        Recording.calls.append(record.topic)
        return record

    def close(self) -> None:
        Recording.closed += 1


class Exploding(Predicate[PluginConfig]):
    def test(self, record: ConnectRecord) -> bool:
        raise ValueError("boom")


@pytest.fixture(autouse=True)
def _reset_recording() -> None:
    Recording.calls = []
    Recording.closed = 0


def test_no_transforms_key_gives_an_empty_chain_that_returns_the_record() -> None:
    chain = build_chain({"name": "c", "connector.class": "file-source"})
    r = record({"a": 1})
    assert len(chain) == 0
    assert chain.apply(r) is r


def test_transforms_run_in_the_listed_order() -> None:
    chain = build_chain(
        {
            "transforms": "add, rename",
            "transforms.add.type": "InsertField$Value",
            "transforms.add.topic.field": "t",
            "transforms.rename.type": "ReplaceField$Value",
            "transforms.rename.renames": "t:source_topic",
        }
    )
    assert [stage.alias for stage in chain] == ["add", "rename"]
    assert chain.apply(record({"a": 1})).value == {"a": 1, "source_topic": "orders"}


def test_transforms_may_be_a_json_list() -> None:
    chain = build_chain(
        {"transforms": ["drop"], "transforms.drop.type": "Filter"},
    )
    assert chain.apply(record({"a": 1})) is None


@pytest.mark.parametrize(
    "name",
    [
        "MaskField$Value",
        "org.apache.kafka.connect.transforms.MaskField$Value",
        "omconnect.runtime.transforms.fields.MaskFieldValue",
        "omconnect.runtime.transforms.fields:MaskFieldValue",
    ],
)
def test_a_transform_is_named_by_alias_kafka_class_or_class_path(name: str) -> None:
    chain = build_chain(
        {"transforms": "m", "transforms.m.type": name, "transforms.m.fields": "ssn"}
    )
    assert isinstance(chain.stages[0].transform, MaskFieldValue)
    assert chain.apply(record({"ssn": "123", "n": 1})).value == {"ssn": "", "n": 1}


def test_every_alias_loads_a_concrete_class_of_the_right_kind() -> None:
    for name in TRANSFORM_ALIASES:
        assert issubclass(load_transformation(name), Transformation)
    for name in PREDICATE_ALIASES:
        assert issubclass(load_predicate(name), Predicate)
    assert "org.apache.kafka.connect.transforms.TimestampConverter$Key" in TRANSFORM_ALIASES
    assert "org.apache.kafka.connect.transforms.predicates.HasHeaderKey" in PREDICATE_ALIASES


def _masked_when(predicate: dict[str, Any], negate: Any = None) -> dict[str, Any]:
    config = {
        "transforms": "mask",
        "transforms.mask.type": "MaskField$Value",
        "transforms.mask.fields": "secret",
        "transforms.mask.predicate": "p",
        "predicates": "p",
        **{f"predicates.p.{k}": v for k, v in predicate.items()},
    }
    if negate is not None:
        config["transforms.mask.negate"] = negate
    return config


def test_a_predicate_limits_the_transform_to_matching_records() -> None:
    chain = build_chain(_masked_when({"type": "TopicNameMatches", "pattern": "people.*"}))
    assert chain.apply(record({"secret": "x"}, topic="people-eu")).value == {"secret": ""}
    assert chain.apply(record({"secret": "x"}, topic="orders")).value == {"secret": "x"}


@pytest.mark.parametrize("negate", [True, "true", "TRUE"])
def test_negate_inverts_the_predicate(negate: Any) -> None:
    chain = build_chain(
        _masked_when(
            {
                "type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                "pattern": "people.*",
            },
            negate,
        )
    )
    assert chain.apply(record({"secret": "x"}, topic="people-eu")).value == {"secret": "x"}
    assert chain.apply(record({"secret": "x"}, topic="orders")).value == {"secret": ""}


def test_negate_false_is_the_default_behaviour() -> None:
    chain = build_chain(_masked_when({"type": "HasHeaderKey", "name": "pii"}, "false"))
    flagged = record({"secret": "x"}, headers=Headers.of({"pii": "1"}))
    assert chain.apply(flagged).value == {"secret": ""}
    assert chain.apply(record({"secret": "x"})).value == {"secret": "x"}


def test_filter_with_tombstone_predicate_drops_only_tombstones() -> None:
    config = {
        "transforms": "dropTombstones",
        "transforms.dropTombstones.type": "Filter",
        "transforms.dropTombstones.predicate": "isTombstone",
        "predicates": "isTombstone",
        "predicates.isTombstone.type": "RecordIsTombstone",
    }
    chain = build_chain(config)
    assert chain.apply(record(None)) is None
    kept = record({"a": 1})
    assert chain.apply(kept) is kept
    keep_only_tombstones = build_chain({**config, "transforms.dropTombstones.negate": "true"})
    assert keep_only_tombstones.apply(record({"a": 1})) is None
    assert keep_only_tombstones.apply(record(None)) is not None


def test_one_predicate_serves_several_transforms() -> None:
    chain = build_chain(
        {
            "transforms": "a,b",
            "transforms.a.type": "InsertField$Value",
            "transforms.a.static.field": "a",
            "transforms.a.static.value": "1",
            "transforms.a.predicate": "eu",
            "transforms.b.type": "InsertField$Value",
            "transforms.b.static.field": "b",
            "transforms.b.static.value": "2",
            "transforms.b.predicate": "eu",
            "transforms.b.negate": True,
            "predicates": "eu",
            "predicates.eu.type": "TopicNameMatches",
            "predicates.eu.pattern": ".*-eu",
        }
    )
    assert chain.stages[0].predicate is chain.stages[1].predicate
    assert chain.apply(record({}, topic="x-eu")).value == {"a": "1"}
    assert chain.apply(record({}, topic="x-us")).value == {"b": "2"}


def test_a_drop_stops_the_chain() -> None:
    chain = build_chain(
        {
            "transforms": "drop,record",
            "transforms.drop.type": "Filter",
            "transforms.record.type": f"{__name__}:Recording",
        }
    )
    assert chain.apply(record({"a": 1})) is None
    assert Recording.calls == []


def test_a_failing_transform_raises_a_record_error_naming_the_alias() -> None:
    chain = build_chain(
        {"transforms": "key", "transforms.key.type": "ValueToKey", "transforms.key.fields": "id"}
    )
    with pytest.raises(TransformError) as caught:
        chain.apply(record("not a map"))
    assert isinstance(caught.value, RecordError)
    assert caught.value.alias == "key"
    assert "'key'" in str(caught.value) and "ValueToKey" in str(caught.value)
    assert isinstance(caught.value.__cause__, DataError)


def test_a_failing_predicate_raises_a_record_error_naming_it() -> None:
    chain = build_chain(
        {
            "transforms": "drop",
            "transforms.drop.type": "Filter",
            "transforms.drop.predicate": "bad",
            "predicates": "bad",
            "predicates.bad.type": f"{__name__}.Exploding",
        }
    )
    with pytest.raises(TransformError, match=r"predicate 'bad'.*boom"):
        chain.apply(record({}))


def test_close_closes_each_plugin_once() -> None:
    chain = build_chain(
        {
            "transforms": "r1,r2",
            "transforms.r1.type": f"{__name__}:Recording",
            "transforms.r2.type": f"{__name__}:Recording",
        }
    )
    chain.close()
    assert Recording.closed == 2


def test_plugins_built_before_a_config_error_are_closed() -> None:
    with pytest.raises(ConfigError):
        build_chain(
            {
                "transforms": "r,bad",
                "transforms.r.type": f"{__name__}:Recording",
                "transforms.bad.type": "Nope",
            }
        )
    assert Recording.closed == 1


BASE = {
    "transforms": "a",
    "transforms.a.type": "InsertField$Value",
    "transforms.a.topic.field": "t",
}


@pytest.mark.parametrize(
    ("config", "key", "reason"),
    [
        ({"transforms": "a"}, "transforms.a.type", "required"),
        ({**BASE, "transforms.a.type": "NoSuchTransform"}, "transforms.a.type", "NoSuchTransform"),
        ({**BASE, "transforms.a.type": "InsertField"}, "transforms.a.type", "InsertField$Key"),
        (
            {**BASE, "transforms.a.type": "org.apache.kafka.connect.transforms.Cast"},
            "transforms.a.type",
            "Cast$Value",
        ),
        (
            {**BASE, "transforms.a.type": "collections.OrderedDict"},
            "transforms.a.type",
            "not a transformation",
        ),
        ({**BASE, "transforms.a.type": "TopicNameMatches"}, "transforms.a.type", "unknown plugin"),
        (
            {**BASE, "transforms.a.type": "omconnect.runtime.transforms.fields:InsertField"},
            "transforms.a.type",
            "needs a side",
        ),
        (
            {"transforms": "m", "transforms.m.type": "MaskField$Value"},
            "transforms.m.fields",
            "required",
        ),
        (
            {"transforms": "m", "transforms.m.type": "MaskField$Value", "transforms.m.fields": ""},
            "transforms.m.fields",
            "at least one",
        ),
        (
            {"transforms": "c", "transforms.c.type": "Cast$Value", "transforms.c.spec": "a:uuid"},
            "transforms.c.spec",
            "uuid",
        ),
        (
            {"transforms": "i", "transforms.i.type": "InsertField$Key"},
            "transforms.i",
            "no field insertion",
        ),
        (
            {**BASE, "transforms.a.predicate": "p"},
            "transforms.a.predicate",
            "not listed in 'predicates'",
        ),
        ({**BASE, "transforms.a.negate": "true"}, "transforms.a.negate", "no effect without"),
        ({**BASE, "transforms.a.negate": "maybe"}, "transforms.a.negate", "true or false"),
        ({**BASE, "predicates": "p"}, "predicates.p.type", "required"),
        (
            {
                **BASE,
                "predicates": "p",
                "predicates.p.type": "TopicNameMatches",
                "predicates.p.pattern": "(",
            },
            "predicates.p.pattern",
            "invalid regular expression",
        ),
        (
            {
                **BASE,
                "predicates": "p",
                "predicates.p.type": "HasHeaderKey",
                "predicates.p.name": "",
            },
            "predicates.p.name",
            "non-empty",
        ),
        (
            {**BASE, "predicates": "p", "predicates.p.type": "Filter"},
            "predicates.p.type",
            "unknown plugin",
        ),
        ({**BASE, "transforms": "a,a"}, "transforms", "listed twice"),
        ({**BASE, "transforms": 5}, "transforms", "comma-separated list"),
    ],
)
def test_config_errors_name_the_full_key_and_the_reason(
    config: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_chain(config)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_plugin_keys_reach_the_plugin_without_the_prefix() -> None:
    chain = build_chain(
        {**BASE, "transforms.a.static.field": "s", "transforms.a.static.value": "v"}
    )
    transform = chain.stages[0].transform
    assert isinstance(transform, InsertFieldValue)
    assert transform.config.static_value == "v"
    assert chain.apply(record({})).value == {"t": "orders", "s": "v"}
