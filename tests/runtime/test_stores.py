"""The runtime's stores against a real key-value store: the bundled broker in-process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.access_point import MessagingAccessPoint
from omconnect.connect.records import JsonScalar, partition_key
from omconnect.errors import ConfigError, CorruptDataError, NotFoundError
from omconnect.runtime.stores import (
    ConnectStores,
    State,
    Status,
    TargetState,
    canonical_json,
)

FILE_CONFIG = {"connector.class": "FileStreamSource", "file": "/var/log/app.log", "tasks.max": "2"}


def open_ap(data_dir: Path) -> MessagingAccessPoint:
    return MessagingAccessPoint.open(f"oms:embedded://local/ns?data_dir={data_dir}")


@pytest.fixture
def ap(tmp_path: Path) -> Iterator[MessagingAccessPoint]:
    access_point = open_ap(tmp_path)
    yield access_point
    access_point.close()


@pytest.fixture
def stores(ap: MessagingAccessPoint) -> ConnectStores:
    return ConnectStores.open(ap.kv, "cluster-a")


# -- connector configs -------------------------------------------------------------


def test_config_round_trip_and_key_layout(ap: MessagingAccessPoint, stores: ConnectStores) -> None:
    stored = stores.configs.put("files", FILE_CONFIG)
    assert stored is not None and stored.revision > 0
    read = stores.configs.get("files")
    assert read == stored
    assert read.target_state is TargetState.RUNNING
    raw = ap.kv.get("connect/cluster-a/configs/files")
    assert raw is not None
    assert raw.value == canonical_json({"config": FILE_CONFIG, "target_state": "RUNNING"}).encode()


def test_missing_connector_reads_as_none(stores: ConnectStores) -> None:
    assert stores.configs.get("nope") is None
    assert stores.configs.get_tasks("nope") is None
    assert stores.configs.list() == []


def test_create_only_if_absent(stores: ConnectStores) -> None:
    assert stores.configs.put("files", FILE_CONFIG, expected_revision=0) is not None
    assert stores.configs.put("files", {"other": "x"}, expected_revision=0) is None
    current = stores.configs.get("files")
    assert current is not None and current.config == FILE_CONFIG


def test_racing_updates_only_one_wins(stores: ConnectStores) -> None:
    first = stores.configs.put("files", FILE_CONFIG)
    assert first is not None
    a = stores.configs.put(
        "files", {**FILE_CONFIG, "tasks.max": "3"}, expected_revision=first.revision
    )
    b = stores.configs.put(
        "files", {**FILE_CONFIG, "tasks.max": "4"}, expected_revision=first.revision
    )
    assert a is not None and b is None
    current = stores.configs.get("files")
    assert current is not None and current.config["tasks.max"] == "3"


def test_target_state_changes_keep_the_config(stores: ConnectStores) -> None:
    stores.configs.put("files", FILE_CONFIG)
    paused = stores.configs.set_target_state("files", TargetState.PAUSED)
    assert paused.target_state is TargetState.PAUSED and paused.config == FILE_CONFIG
    stopped = stores.configs.set_target_state("files", TargetState.STOPPED)
    assert stopped.revision > paused.revision
    current = stores.configs.get("files")
    assert current is not None and current.target_state is TargetState.STOPPED
    with pytest.raises(NotFoundError):
        stores.configs.set_target_state("ghost", TargetState.PAUSED)


def test_list_is_sorted_by_name(stores: ConnectStores) -> None:
    for name in ("zeta", "alpha", "mid"):
        stores.configs.put(name, {"n": name})
    assert [r.name for r in stores.configs.list()] == ["alpha", "mid", "zeta"]


def test_delete_removes_config_and_task_configs(stores: ConnectStores) -> None:
    stored = stores.configs.put("files", FILE_CONFIG)
    stores.configs.put_tasks("files", [{"task": "0"}])
    assert stored is not None
    assert not stores.configs.delete("files", expected_revision=stored.revision + 100)
    assert stores.configs.delete("files", expected_revision=stored.revision)
    assert stores.configs.get("files") is None and stores.configs.get_tasks("files") is None
    assert not stores.configs.delete("files")


@pytest.mark.parametrize("name", ["", "a/b", "tab\there"])
def test_bad_connector_names_are_rejected(stores: ConnectStores, name: str) -> None:
    with pytest.raises(ConfigError):
        stores.configs.put(name, {})


def test_bad_group_name_is_rejected(ap: MessagingAccessPoint) -> None:
    with pytest.raises(ConfigError, match="group"):
        ConnectStores.open(ap.kv, "a/b")


def test_groups_do_not_see_each_other(ap: MessagingAccessPoint) -> None:
    one, two = ConnectStores.open(ap.kv, "one"), ConnectStores.open(ap.kv, "two")
    one.configs.put("files", FILE_CONFIG)
    assert two.configs.get("files") is None and two.configs.list() == []


def test_unstorable_config_is_a_config_error(stores: ConnectStores) -> None:
    with pytest.raises(ConfigError):
        stores.configs.put("files", {"ratio": float("nan")})
    with pytest.raises(ConfigError):
        stores.configs.put("files", {"obj": object()})


def test_corrupt_value_is_reported(ap: MessagingAccessPoint, stores: ConnectStores) -> None:
    ap.kv.put("connect/cluster-a/configs/broken", b"{not json")
    with pytest.raises(CorruptDataError, match="broken"):
        stores.configs.get("broken")


def test_connector_of_watched_keys(stores: ConnectStores) -> None:
    assert stores.configs.connector_of("connect/cluster-a/configs/files") == "files"
    assert stores.configs.connector_of("connect/cluster-a/tasks/files") == "files"
    assert stores.configs.connector_of("connect/cluster-a/status/connectors/files") is None
    assert stores.configs.connector_of("connect/other/configs/files") is None


# -- task configs ------------------------------------------------------------------


def test_task_configs_generation_grows(stores: ConnectStores) -> None:
    first = stores.configs.put_tasks("files", [{"file": "a"}, {"file": "b"}])
    assert first is not None and first.generation == 1
    second = stores.configs.put_tasks("files", [{"file": "a"}])
    assert second is not None and second.generation == 2
    read = stores.configs.get_tasks("files")
    assert read == second
    assert read.tasks == ({"file": "a"},)


def test_task_configs_compare_and_set(stores: ConnectStores) -> None:
    assert stores.configs.put_tasks("files", [{"t": 1}], expected_revision=0) is not None
    assert stores.configs.put_tasks("files", [{"t": 2}], expected_revision=0) is None
    current = stores.configs.get_tasks("files")
    assert current is not None
    assert stores.configs.put_tasks("files", [{"t": 3}], expected_revision=current.revision)
    assert stores.configs.put_tasks("files", [{"t": 4}], expected_revision=current.revision) is None


def test_concurrent_task_config_writers_each_get_a_generation(stores: ConnectStores) -> None:
    generations: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(10):
            record = stores.configs.put_tasks("files", [{"writer": n, "i": i}])
            assert record is not None
            with lock:
                generations.append(record.generation)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(generations) == list(range(1, 41))  # no generation handed out twice
    final = stores.configs.get_tasks("files")
    assert final is not None and final.generation == 40


# -- offsets -------------------------------------------------------------------------


def test_offsets_round_trip_with_canonical_partition_keys(
    ap: MessagingAccessPoint, stores: ConnectStores
) -> None:
    stores.offsets.put("files", [({"file": "a.log", "host": "h1"}, {"position": 10})])
    stores.offsets.put("files", [({"host": "h1", "file": "a.log"}, {"position": 20})])
    assert stores.offsets.get("files", {"file": "a.log", "host": "h1"}) == {"position": 20}
    keys = [e.key for e in ap.kv.list("connect/cluster-a/offsets/")]
    assert keys == ['connect/cluster-a/offsets/files/{"file":"a.log","host":"h1"}']


def test_offsets_list_and_reader(stores: ConnectStores) -> None:
    stores.offsets.put(
        "files",
        [
            ({"file": "b.log"}, {"position": 2, "inode": 7}),
            ({"file": "a.log"}, {"position": 1}),
        ],
    )
    stores.offsets.put("other", [({"file": "a.log"}, {"position": 99})])
    assert stores.offsets.list("files") == [
        ({"file": "a.log"}, {"position": 1}),
        ({"file": "b.log"}, {"inode": 7, "position": 2}),
    ]
    reader = stores.offsets.reader("files")
    assert reader.offset({"file": "a.log"}) == {"position": 1}
    assert reader.offset({"file": "c.log"}) is None
    found = reader.offsets([{"file": "a.log"}, {"file": "c.log"}])
    assert found == {partition_key({"file": "a.log"}): {"position": 1}}


def test_none_offset_deletes_and_delete_all(stores: ConnectStores) -> None:
    stores.offsets.put("files", [({"f": "a"}, {"p": 1}), ({"f": "b"}, {"p": 2})])
    stores.offsets.put("files", [({"f": "a"}, None)])
    assert stores.offsets.get("files", {"f": "a"}) is None
    assert stores.offsets.delete_all("files") == 1
    assert stores.offsets.list("files") == []


def test_partition_with_slashes_and_unicode(stores: ConnectStores) -> None:
    partition: dict[str, JsonScalar] = {
        "file": "/var/log/ünï/app.log",
        "shard": 3,
        "live": True,
        "none": None,
    }
    stores.offsets.put("files", [(partition, {"pos": 1.5})])
    assert stores.offsets.list("files") == [(partition, {"pos": 1.5})]


def test_non_scalar_offsets_are_rejected(stores: ConnectStores) -> None:
    with pytest.raises(ConfigError):
        stores.offsets.put("files", [({"f": "a"}, {"p": [1, 2]})])  # type: ignore[dict-item]


# -- statuses ------------------------------------------------------------------------


def test_status_round_trip(stores: ConnectStores) -> None:
    assert stores.statuses.put_connector("files", Status(State.RUNNING, "w1", 3))
    status = stores.statuses.get_connector("files")
    assert status is not None
    assert (status.state, status.worker_id, status.generation) == (State.RUNNING, "w1", 3)
    assert stores.statuses.put_task("files", 0, Status(State.FAILED, "w2", 3, "Traceback ..."))
    task = stores.statuses.get_task("files", 0)
    assert task is not None and task.trace == "Traceback ..." and task.state is State.FAILED


def test_stale_generation_cannot_overwrite(stores: ConnectStores) -> None:
    assert stores.statuses.put_task("files", 1, Status(State.RUNNING, "w2", 5))
    assert not stores.statuses.put_task("files", 1, Status(State.FAILED, "w1", 4))
    assert stores.statuses.put_task("files", 1, Status(State.PAUSED, "w2", 5))  # same generation
    assert stores.statuses.put_task("files", 1, Status(State.RUNNING, "w3", 6))
    current = stores.statuses.get_task("files", 1)
    assert current is not None and (current.worker_id, current.generation) == ("w3", 6)
    assert stores.statuses.put_connector("files", Status(State.RUNNING, "w3", 6))
    assert not stores.statuses.put_connector("files", Status(State.FAILED, "w1", 5))
    connector = stores.statuses.get_connector("files")
    assert connector is not None and connector.worker_id == "w3"


def test_concurrent_status_writers_newest_generation_wins(stores: ConnectStores) -> None:
    barrier = threading.Barrier(6)

    def writer(generation: int) -> None:
        barrier.wait()
        for _ in range(5):
            stores.statuses.put_task(
                "files", 0, Status(State.RUNNING, f"w{generation}", generation)
            )

    threads = [threading.Thread(target=writer, args=(g,)) for g in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = stores.statuses.get_task("files", 0)
    assert final is not None and (final.generation, final.worker_id) == (6, "w6")


def test_task_statuses_list_in_task_order_and_delete(stores: ConnectStores) -> None:
    for task in (10, 2, 0):
        stores.statuses.put_task("files", task, Status(State.RUNNING, "w1", 1))
    stores.statuses.put_task("files-2", 0, Status(State.RUNNING, "w1", 1))
    stores.statuses.put_connector("files", Status(State.RUNNING, "w1", 1))
    assert list(stores.statuses.list_tasks("files")) == [0, 2, 10]
    stores.statuses.delete("files")
    assert stores.statuses.list_tasks("files") == {}
    assert stores.statuses.get_connector("files") is None
    assert list(stores.statuses.list_tasks("files-2")) == [0]  # a prefix-sharing name survives


def test_negative_task_number_is_rejected(stores: ConnectStores) -> None:
    with pytest.raises(ConfigError):
        stores.statuses.put_task("files", -1, Status(State.RUNNING, "w1", 1))


# -- durability ----------------------------------------------------------------------


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    first = open_ap(tmp_path)
    stores = ConnectStores.open(first.kv, "cluster-a")
    stores.configs.put("files", FILE_CONFIG, TargetState.PAUSED)
    stores.configs.put_tasks("files", [{"file": "a"}, {"file": "b"}])
    stores.configs.put_tasks("files", [{"file": "a"}])
    stores.offsets.put("files", [({"file": "a.log"}, {"position": 4096})])
    stores.statuses.put_task("files", 0, Status(State.FAILED, "w1", 2, "boom"))
    first.close()

    second = open_ap(tmp_path)
    try:
        again = ConnectStores.open(second.kv, "cluster-a")
        config = again.configs.get("files")
        assert config is not None
        assert config.config == FILE_CONFIG and config.target_state is TargetState.PAUSED
        tasks = again.configs.get_tasks("files")
        assert tasks is not None and tasks.generation == 2 and tasks.tasks == ({"file": "a"},)
        assert again.offsets.reader("files").offset({"file": "a.log"}) == {"position": 4096}
        status = again.statuses.get_task("files", 0)
        assert status is not None and (status.state, status.trace) == (State.FAILED, "boom")
        # fencing still holds after the restart
        assert not again.statuses.put_task("files", 0, Status(State.RUNNING, "w9", 1))
        # and compare-and-set still sees the stored revision
        assert again.configs.put("files", {}, expected_revision=0) is None
        assert again.configs.put("files", {}, expected_revision=config.revision) is not None
    finally:
        second.close()


def test_written_record_equals_what_is_read_back(stores: ConnectStores) -> None:
    written = stores.configs.put("files", {"ports": (1, 2), "n": 3})
    assert written == stores.configs.get("files")
    assert written is not None and written.config["ports"] == [1, 2]
    tasks = stores.configs.put_tasks("files", [{"ports": (1, 2)}])
    assert tasks == stores.configs.get_tasks("files")
