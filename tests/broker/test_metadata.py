"""The namespace/queue catalog: validation, queue ids, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omconnect.broker.api import QueueInfo
from omconnect.broker.metadata import (
    FIRST_USER_QUEUE_ID,
    Catalog,
    MetadataStore,
    validate_name,
    validate_namespace,
)
from omconnect.errors import AlreadyExistsError, ConfigError, CorruptDataError, NotFoundError


@pytest.mark.parametrize("name", ["a", "orders", "A.b_c-d", "%RETRY%group", "x" * 200, "0"])
def test_valid_names(name: str) -> None:
    assert validate_name("queue", name) == name


@pytest.mark.parametrize("name", ["", "x" * 201, "a b", "a/b", "é", "a:b", "a\n", None, 3])
def test_invalid_names(name: object) -> None:
    with pytest.raises(ConfigError) as info:
        validate_name("queue", name)
    assert info.value.key == "queue"


def test_namespaces_starting_with_percent_are_reserved() -> None:
    with pytest.raises(ConfigError):
        validate_namespace("%sys")
    with pytest.raises(ConfigError):
        Catalog().create_queue("%sys", "q", 1)


def test_create_queue_assigns_increasing_ids_and_creates_namespace() -> None:
    catalog = Catalog()
    a, changed_a = catalog.create_queue("ns", "a", 2)
    b, changed_b = catalog.create_queue("ns", "b", 1)
    assert changed_a and changed_b
    assert a.queue_id == FIRST_USER_QUEUE_ID
    assert b.queue_id == FIRST_USER_QUEUE_ID + 1
    assert catalog.namespaces() == ["ns"]
    assert [q.name for q in catalog.queues("ns")] == ["a", "b"]
    assert catalog.by_id(a.queue_id) == a
    assert a.info() == QueueInfo("ns", "a", 2)


def test_create_queue_is_idempotent_grows_and_never_shrinks() -> None:
    catalog = Catalog()
    first, _ = catalog.create_queue("ns", "q", 2)
    same, changed = catalog.create_queue("ns", "q", 2)
    assert same == first and not changed
    grown, changed = catalog.create_queue("ns", "q", 5)
    assert changed and grown.partitions == 5 and grown.queue_id == first.queue_id
    with pytest.raises(AlreadyExistsError):
        catalog.create_queue("ns", "q", 4)
    assert catalog.queue("ns", "q").partitions == 5


@pytest.mark.parametrize("partitions", [0, -1, 1025, True, 1.5])
def test_bad_partition_counts(partitions: object) -> None:
    with pytest.raises(ConfigError) as info:
        Catalog().create_queue("ns", "q", partitions)  # type: ignore[arg-type]
    assert info.value.key == "partitions"


def test_queue_ids_are_never_reused() -> None:
    catalog = Catalog()
    old, _ = catalog.create_queue("ns", "q", 1)
    catalog.delete_queue("ns", "q")
    assert catalog.by_id(old.queue_id) is None
    new, _ = catalog.create_queue("ns", "q", 1)
    assert new.queue_id > old.queue_id


def test_unknown_namespace_and_queue_are_not_found() -> None:
    catalog = Catalog()
    with pytest.raises(NotFoundError):
        catalog.queue("nope", "q")
    with pytest.raises(NotFoundError):
        catalog.queues("nope")
    with pytest.raises(NotFoundError):
        catalog.delete_namespace("nope")
    catalog.create_namespace("ns")
    with pytest.raises(NotFoundError):
        catalog.queue("ns", "q")
    with pytest.raises(NotFoundError):
        catalog.delete_queue("ns", "q")


def test_delete_namespace_returns_its_queues() -> None:
    catalog = Catalog()
    catalog.create_queue("ns", "b", 1)
    catalog.create_queue("ns", "a", 1)
    catalog.create_queue("other", "c", 1)
    removed = catalog.delete_namespace("ns")
    assert [q.name for q in removed] == ["a", "b"]
    assert catalog.namespaces() == ["other"]
    assert all(catalog.by_id(q.queue_id) is None for q in removed)


def test_json_round_trip() -> None:
    catalog = Catalog()
    catalog.create_queue("ns", "a", 3)
    catalog.create_queue("ns", "gone", 1)
    catalog.delete_queue("ns", "gone")
    catalog.create_namespace("empty")
    copy = Catalog.from_json(json.loads(json.dumps(catalog.to_json())))
    assert copy.namespaces() == ["empty", "ns"]
    assert copy.queues("ns") == catalog.queues("ns")
    assert copy.next_queue_id == catalog.next_queue_id


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"version": 2},
        {"version": 1, "namespaces": {}},
        {"version": 1, "next_queue_id": 64, "namespaces": {"n": {"q": {}}}},
    ],
)
def test_from_json_rejects_garbage(data: object) -> None:
    with pytest.raises(CorruptDataError):
        Catalog.from_json(data)


def test_store_persists_every_change(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.create_queue("ns", "q", 2)
    store.create_namespace("other")
    reopened = MetadataStore(tmp_path)
    assert reopened.namespaces() == ["ns", "other"]
    assert reopened.queue("ns", "q").partitions == 2
    store.delete_queue("ns", "q")
    store.delete_namespace("other")
    reopened = MetadataStore(tmp_path)
    assert reopened.namespaces() == ["ns"]
    assert reopened.queues("ns") == []
    assert not list(tmp_path.glob("*.tmp"))


def test_store_rejects_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / MetadataStore.FILE_NAME).write_text("{not json")
    with pytest.raises(CorruptDataError):
        MetadataStore(tmp_path)
