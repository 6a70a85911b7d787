"""The standalone `Herder` on the real in-process broker: a file source and a file
sink writing real files, driven through the herder while they run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from omconnect.errors import ConfigError, NotFoundError
from omconnect.runtime.config_providers import EnvProvider, FileProvider
from omconnect.runtime.herder import ConnectorStatus, Herder, TaskState
from omconnect.runtime.herder_common import keep_hidden_secrets, restart_plan
from omconnect.runtime.standalone import Standalone

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout_s: float = 15) -> T:
    """The first truthy result of ``check``, polled until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as f:
        f.writelines(line + "\n" for line in lines)


def worker_config(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "data.dir": str(tmp_path / "data"),
        "key.converter": "string",
        "value.converter": "string",
        "offset.flush.interval.ms": "100",
        "task.restart.backoff.initial.ms": "100",
        "task.restart.backoff.max.ms": "300",
        **extra,
    }


def source(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "connector.class": "file-source",
        "file": str(tmp_path / "in.txt"),
        "topic": "lines",
        "poll.interval.ms": "20",
        **extra,
    }


def sink(out: Path, **extra: str) -> dict[str, str]:
    return {"connector.class": "file-sink", "topics": "lines", "file": str(out), **extra}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., Standalone]]:
    """Factory: a `Standalone` on ``tmp_path``'s data dir; all are stopped at the end."""
    running: list[Standalone] = []

    def start(**extra: Any) -> Standalone:
        providers = extra.pop("providers", None)
        standalone = Standalone(worker_config(tmp_path, **extra), providers=providers)
        running.append(standalone)
        # A sink task fails while its queue does not exist: create it up front so a
        # test sees only the failures it provokes.
        standalone.access_point.resources.create_queue("lines", 1)
        return standalone

    yield start
    for standalone in reversed(running):
        standalone.stop()


def states(status: ConnectorStatus) -> tuple[str, list[str]]:
    return status.state, [t.state for t in status.tasks]


def test_put_patch_delete_while_running(tmp_path: Path, started: Callable[..., Standalone]) -> None:
    herder: Herder = started()
    out, out2, data = tmp_path / "out.txt", tmp_path / "out2.txt", tmp_path / "in.txt"
    append(data, ["a", "b"])
    created, info = herder.put_connector_config("src", source(tmp_path))
    assert created and info.type == "source" and info.tasks == (0,)
    assert herder.put_connector_config("snk", sink(out))[0]
    wait_for(lambda: read_lines(out) == ["a", "b"], "the first lines")
    status = herder.connector_status("snk")
    assert states(status) == ("RUNNING", ["RUNNING"])
    assert status.worker_id == herder.worker_id and status.type == "sink"

    info = herder.patch_connector_config("snk", {"file": str(out2)})
    assert info.config["file"] == str(out2)
    append(data, ["c"])
    wait_for(lambda: read_lines(out2) == ["c"], "a line in the patched sink's file")
    assert read_lines(out) == ["a", "b"]

    herder.delete_connector("src")
    assert herder.connectors() == ["snk"]
    with pytest.raises(NotFoundError):
        herder.connector_status("src")
    append(data, ["d"])
    time.sleep(0.5)
    assert read_lines(out2) == ["c"]  # no source any more
    herder.put_connector_config("src", source(tmp_path))  # its offsets stayed: no "a" again
    wait_for(lambda: read_lines(out2) == ["c", "d"], "the line written while deleted")


def test_invalid_config_is_rejected_and_nothing_changes(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    herder = started()
    with pytest.raises(ConfigError) as error:
        herder.put_connector_config("src", source(tmp_path, **{"tasks.max": "0"}))
    assert error.value.key == "tasks.max"
    assert herder.connectors() == []
    with pytest.raises(ConfigError, match="name"):
        herder.put_connector_config("src", {**source(tmp_path), "name": "other"})


def test_failed_task_is_restarted_automatically(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    herder = started()
    missing = tmp_path / "missing"
    append(tmp_path / "in.txt", ["x"])
    herder.put_connector_config("src", source(tmp_path))
    herder.put_connector_config("snk", sink(missing / "out.txt"))
    failed = wait_for(
        lambda: [t for t in herder.connector_status("snk").tasks if t.state == "FAILED"],
        "the sink task to fail",
    )
    assert "FileNotFoundError" in failed[0].trace
    missing.mkdir()
    wait_for(lambda: read_lines(missing / "out.txt") == ["x"], "the restarted task's output")
    assert states(herder.connector_status("snk")) == ("RUNNING", ["RUNNING"])


def test_failed_task_stays_failed_without_auto_restart(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    herder = started(**{"task.restart.enable": "false"})
    missing = tmp_path / "missing"
    append(tmp_path / "in.txt", ["x"])
    herder.put_connector_config("src", source(tmp_path))
    herder.put_connector_config("snk", sink(missing / "out.txt"))
    wait_for(lambda: states(herder.connector_status("snk"))[1] == ["FAILED"], "a failure")
    missing.mkdir()
    time.sleep(1.0)  # several backoffs long
    status = herder.connector_status("snk")
    assert (
        states(status) == ("RUNNING", ["FAILED"]) and "FileNotFoundError" in status.tasks[0].trace
    )
    assert not (missing / "out.txt").exists()
    herder.restart_connector("snk", include_tasks=True, only_failed=True)
    wait_for(lambda: read_lines(missing / "out.txt") == ["x"], "output after a manual restart")
    assert states(herder.connector_status("snk")) == ("RUNNING", ["RUNNING"])


def test_pause_stops_output_and_resume_continues(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    herder = started()
    out, data = tmp_path / "out.txt", tmp_path / "in.txt"
    herder.put_connector_config("src", source(tmp_path))
    herder.put_connector_config("snk", sink(out))
    append(data, ["1"])
    wait_for(lambda: read_lines(out) == ["1"], "the first line")
    herder.pause_connector("src")
    wait_for(lambda: states(herder.connector_status("src")) == ("PAUSED", ["PAUSED"]), "pause")
    append(data, ["2"])
    time.sleep(0.6)
    assert read_lines(out) == ["1"]
    herder.resume_connector("src")
    wait_for(lambda: read_lines(out) == ["1", "2"], "the line written while paused")
    assert states(herder.connector_status("src")) == ("RUNNING", ["RUNNING"])


def test_stop_alter_offsets_resume_rereads(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    herder = started()
    out, data = tmp_path / "out.txt", tmp_path / "in.txt"
    append(data, ["l0", "l1", "l2"])
    herder.put_connector_config("src", source(tmp_path))
    herder.put_connector_config("snk", sink(out))
    wait_for(lambda: read_lines(out) == ["l0", "l1", "l2"], "the first lines")
    partition = {"filename": str(data.resolve())}
    wait_for(
        lambda: (
            herder.connector_offsets("src") == [{"partition": partition, "offset": {"position": 9}}]
        ),
        "the source offset commit",
    )
    with pytest.raises(ConfigError, match="STOPPED"):
        herder.alter_connector_offsets("src", [{"partition": partition, "offset": None}])

    herder.stop_connector("src")
    assert states(herder.connector_status("src")) == ("STOPPED", [])
    assert herder.connector_info("src").tasks == ()
    herder.alter_connector_offsets("src", [{"partition": partition, "offset": {"position": 3}}])
    herder.resume_connector("src")  # re-reads from byte 3: l1 and l2 again
    wait_for(lambda: read_lines(out) == ["l0", "l1", "l2", "l1", "l2"], "the re-read lines")

    # The sink's consumer group offsets, as Kafka shows them.
    committed = {"kafka_topic": "lines", "kafka_partition": 0}
    wait_for(
        lambda: (
            herder.connector_offsets("snk")
            == [{"partition": committed, "offset": {"kafka_offset": 5}}]
        ),
        "the sink offset commit",
    )
    herder.stop_connector("snk")
    herder.alter_connector_offsets("snk", [{"partition": committed, "offset": {"kafka_offset": 4}}])
    assert herder.connector_offsets("snk")[0]["offset"] == {"kafka_offset": 4}
    herder.resume_connector("snk")
    wait_for(lambda: read_lines(out)[5:] == ["l2"], "the sink re-reading from offset 4")
    herder.stop_connector("snk")
    herder.reset_connector_offsets("snk")
    herder.resume_connector("snk")
    wait_for(lambda: len(read_lines(out)) == 11, "the sink re-reading everything")


def test_configs_and_target_states_survive_a_restart(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    first = started()
    out, data = tmp_path / "out.txt", tmp_path / "in.txt"
    first.put_connector_config("src", source(tmp_path))
    first.put_connector_config("snk", sink(out))
    append(data, ["one"])
    wait_for(lambda: read_lines(out) == ["one"], "the first line")
    first.pause_connector("src")
    first.stop()

    second = started()
    assert second.connectors() == ["snk", "src"]
    wait_for(lambda: states(second.connector_status("src")) == ("PAUSED", ["PAUSED"]), "pause")
    running = ("RUNNING", ["RUNNING"])
    wait_for(lambda: states(second.connector_status("snk")) == running, "the sink running")
    append(data, ["two"])
    time.sleep(0.5)
    assert read_lines(out) == ["one"]
    second.resume_connector("src")
    wait_for(lambda: read_lines(out) == ["one", "two"], "the line written while paused")


def test_secrets_are_hidden_and_never_stored_resolved(
    tmp_path: Path, started: Callable[..., Standalone]
) -> None:
    environ = {"DB_PASSWORD": "hunter2-resolved", "INPUT": str(tmp_path / "in.txt")}
    herder = started(providers={"env": EnvProvider(environ), "file": FileProvider()})
    out = tmp_path / "out.txt"
    config = source(tmp_path, file="${env:INPUT}", **{"db.password": "${env:DB_PASSWORD}"})
    herder.put_connector_config("src", config)
    herder.put_connector_config("snk", sink(out, **{"api.token": "plain-secret"}))
    append(tmp_path / "in.txt", ["resolved at start"])
    wait_for(lambda: read_lines(out) == ["resolved at start"], "the line")

    assert herder.connector_config("src")["file"] == "${env:INPUT}"  # as written
    assert herder.connector_config("src")["db.password"] == "[hidden]"
    assert herder.connector_info("snk").config["api.token"] == "[hidden]"
    assert herder.task_configs("src")[0]["file"] == "${env:INPUT}"
    prefix = herder.stores.configs.prefix
    entries = [*herder.access_point.kv.list(prefix + "configs/")]
    entries += herder.access_point.kv.list(prefix + "tasks/")
    stored = b"".join(e.value for e in entries)  # connector and task configs, as stored
    assert b"${env:DB_PASSWORD}" in stored and b"${env:INPUT}" in stored
    assert b"hunter2-resolved" not in stored and environ["INPUT"].encode() not in stored

    # GET then PUT keeps the stored secret instead of storing "[hidden]".
    herder.put_connector_config("snk", herder.connector_config("snk"))
    record = herder.stores.configs.get("snk")
    assert record is not None and record.config["api.token"] == "plain-secret"


@pytest.mark.parametrize(
    ("connector", "include_tasks", "only_failed", "expected"),
    [
        ("RUNNING", False, False, (True, ())),
        ("RUNNING", True, False, (True, (0, 1, 2))),
        ("RUNNING", True, True, (False, (1,))),
        ("FAILED", False, True, (True, ())),
        ("FAILED", True, True, (True, (1,))),
    ],
)
def test_restart_plan(
    connector: str, include_tasks: bool, only_failed: bool, expected: tuple[bool, tuple[int, ...]]
) -> None:
    tasks = tuple(TaskState(i, s, "w") for i, s in enumerate(["RUNNING", "FAILED", "PAUSED"]))
    status = ConnectorStatus("c", connector, "w", "sink", tasks)
    plan = restart_plan(status, include_tasks, only_failed)
    assert (plan.connector, plan.tasks) == expected


def test_hidden_values_sent_back_keep_only_secrets() -> None:
    stored = {"connector.class": "file-sink", "db.password": "pw", "file": "f"}
    sent = {"connector.class": "file-sink", "db.password": "[hidden]", "file": "[hidden]"}
    assert keep_hidden_secrets(sent, stored) == {**stored, "file": "[hidden]"}
