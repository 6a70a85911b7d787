"""``omconnect connectors ...`` run as a user runs it (a subprocess) against a
running REST server: output, the server's state afterwards, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rest_helpers import InMemoryHerder

from omconnect.runtime.herder import RebalanceInProgressError
from omconnect.runtime.rest import AuthConfig, RestServer

SOURCE = {"connector.class": "file-source", "file": "/tmp/in.txt", "topic": "lines"}


def omconnect(
    *args: str, url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OMCONNECT_REST")}
    environment["OMCONNECT_REST_URL"] = url
    environment.update(env or {})
    command = [sys.executable, "-m", "omconnect.cli", "connectors", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=environment, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[InMemoryHerder, RestServer]]:
    herder = InMemoryHerder()
    with RestServer(herder, port=0) as server:
        yield herder, server


@pytest.fixture
def herder(shared: tuple[InMemoryHerder, RestServer]) -> InMemoryHerder:
    shared[0].reset()
    return shared[0]


@pytest.fixture
def url(shared: tuple[InMemoryHerder, RestServer], herder: InMemoryHerder) -> str:
    return shared[1].url


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A directory with one Kafka-shaped and one flat connector file."""
    folder = tmp_path / "connectors"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"name": "a", "config": SOURCE}))
    (folder / "b.json").write_text(json.dumps({"name": "b", **SOURCE, "tasks.max": 2}))
    (folder / "notes.txt").write_text("not a connector")
    return folder


def test_apply_creates_then_configures(url: str, herder: InMemoryHerder, configs: Path) -> None:
    first = omconnect("apply", "-f", str(configs), url=url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["a created", "b created"]
    assert herder.configs["a"] == {**SOURCE, "name": "a"}
    assert herder.configs["b"]["tasks.max"] == "2"
    again = omconnect("apply", "-f", str(configs / "a.json"), "-o", "json", url=url)
    assert again.returncode == 0, again.stderr
    assert [info["name"] for info in json.loads(again.stdout)] == ["a"]


def test_apply_reads_every_file_before_applying_any(
    url: str, herder: InMemoryHerder, configs: Path
) -> None:
    (configs / "c.json").write_text("{broken")
    result = omconnect("apply", "-f", str(configs), url=url)
    assert_one_line_error(result, 3, "c.json", "JSON")
    assert herder.configs == {}
    (configs / "c.json").write_text(json.dumps({"config": SOURCE}))
    assert_one_line_error(omconnect("apply", "-f", str(configs), url=url), 3, "name")
    missing = omconnect("apply", "-f", str(configs / "nope.json"), url=url)
    assert_one_line_error(missing, 3, "nope.json")


def test_apply_rejected_by_the_server_exits_3_with_its_message(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", **SOURCE, "tasks.max": "0"}))
    assert_one_line_error(omconnect("apply", "-f", str(bad), url=url), 3, "tasks.max")


def test_list_get_status_and_offsets(url: str, herder: InMemoryHerder, configs: Path) -> None:
    omconnect("apply", "-f", str(configs), url=url)
    listed = omconnect("list", url=url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["NAME", "TYPE", "STATE", "TASKS"],
        ["a", "source", "RUNNING", "1/1"],
        ["b", "source", "RUNNING", "2/2"],
    ]
    as_json = json.loads(omconnect("list", "-o", "json", url=url).stdout)
    assert as_json["b"]["status"]["tasks"][1]["state"] == "RUNNING"

    got = json.loads(omconnect("get", "a", url=url).stdout)
    assert got["config"]["topic"] == "lines"
    assert got["tasks"] == [{"connector": "a", "task": 0}]

    status = omconnect("status", "b", url=url)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "b (source)"
    assert lines[2].split() == ["connector", "RUNNING", "127.0.0.1:8083"]
    assert [line.split()[:3] for line in lines[3:]] == [
        ["task", "0", "RUNNING"],
        ["task", "1", "RUNNING"],
    ]
    assert json.loads(omconnect("status", "b", "-o", "json", url=url).stdout)["name"] == "b"

    herder.offsets["a"] = [{"partition": {"file": "/tmp/in.txt"}, "offset": {"position": 7}}]
    offsets = json.loads(omconnect("offsets", "a", url=url).stdout)
    assert offsets == {"offsets": herder.offsets["a"]}


def test_pause_resume_stop_restart_delete(url: str, herder: InMemoryHerder, configs: Path) -> None:
    omconnect("apply", "-f", str(configs / "a.json"), url=url)
    for verb, state, said in [
        ("pause", "PAUSED", "a paused"),
        ("resume", "RUNNING", "a resumed"),
        ("stop", "STOPPED", "a stopped"),
    ]:
        result = omconnect(verb, "a", url=url)
        assert (result.returncode, result.stdout.strip()) == (0, said), result.stderr
        assert herder.states["a"] == state
    omconnect("resume", "a", url=url)

    plain = omconnect("restart", "a", url=url)
    assert plain.stdout.strip() == "a restarted"
    with_tasks = omconnect("restart", "a", "--include-tasks", "--only-failed", url=url)
    assert with_tasks.returncode == 0, with_tasks.stderr
    assert with_tasks.stdout.startswith("a (source)")
    assert herder.restarts == [("a", (False, False)), ("a", (True, True))]

    deleted = omconnect("delete", "a", url=url)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "a deleted")
    assert herder.configs == {}


def test_exit_codes_for_http_errors(url: str, herder: InMemoryHerder) -> None:
    assert_one_line_error(omconnect("get", "nope", url=url), 4, "nope")
    assert_one_line_error(omconnect("pause", "nope", url=url), 4, "nope")
    herder.fail_with = RebalanceInProgressError("rebalance in progress")
    assert_one_line_error(omconnect("list", url=url), 5, "rebalance")
    herder.fail_with = RuntimeError("disk on fire")
    assert_one_line_error(omconnect("list", url=url), 6, "disk on fire")


def test_an_unreachable_worker_exits_5() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connection refused
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert_one_line_error(omconnect("list", url=dead), 5, "cannot reach")


def test_credentials_from_options_or_environment() -> None:
    herder = InMemoryHerder()
    auth = AuthConfig(bearer_token="tok", basic_users={"ops": "pw"})
    with RestServer(herder, port=0, auth=auth) as server:
        assert_one_line_error(omconnect("list", url=server.url), 3, "Credentials")
        assert omconnect("list", "--token", "tok", url=server.url).returncode == 0
        env = {"OMCONNECT_REST_USER": "ops:pw"}
        assert omconnect("list", url=server.url, env=env).returncode == 0


def test_bad_output_option_is_a_usage_error(url: str) -> None:
    assert_one_line_error(omconnect("list", "-o", "yaml", url=url), 3, "--output")


def test_apply_and_inspect_a_real_standalone_pipeline(tmp_path: Path) -> None:
    """The commands in front of a real worker: apply a file source and sink, see them
    RUNNING, the lines copied and the source offset at the end of the file."""
    from omconnect.runtime.standalone import Standalone

    folder = tmp_path / "pipeline"
    folder.mkdir()
    (tmp_path / "in.txt").write_text("one\ntwo\n")
    source = {
        "connector.class": "file-source",
        "file": str(tmp_path / "in.txt"),
        "topic": "cli-lines",
        "poll.interval.ms": "20",
    }
    sink = {
        "connector.class": "file-sink",
        "file": str(tmp_path / "out.txt"),
        "topics": "cli-lines",
    }
    (folder / "1-source.json").write_text(json.dumps({"name": "cli-src", "config": source}))
    (folder / "2-sink.json").write_text(json.dumps({"name": "cli-sink", **sink}))
    worker = Standalone(
        {
            "data.dir": str(tmp_path / "data"),
            "key.converter": "string",
            "value.converter": "string",
            "offset.flush.interval.ms": "100",
        }
    )
    try:
        with RestServer(worker, port=0) as server:
            applied = omconnect("apply", "-f", str(folder), url=server.url)
            assert applied.stdout.splitlines() == ["cli-src created", "cli-sink created"]
            out = tmp_path / "out.txt"
            deadline = time.monotonic() + 15
            while not (out.exists() and out.read_text() == "one\ntwo\n"):
                assert time.monotonic() < deadline, "the sink never wrote the lines"
                time.sleep(0.05)
            listed = omconnect("list", url=server.url).stdout.splitlines()
            assert [line.split() for line in listed[1:]] == [
                ["cli-sink", "sink", "RUNNING", "1/1"],
                ["cli-src", "source", "RUNNING", "1/1"],
            ]
            while True:  # the source commits its offset every 100 ms
                offsets = json.loads(omconnect("offsets", "cli-src", url=server.url).stdout)
                if offsets["offsets"] or time.monotonic() > deadline:
                    break
            assert [o["offset"] for o in offsets["offsets"]] == [{"position": 8}]
            assert omconnect("delete", "cli-sink", url=server.url).returncode == 0
            assert worker.connectors() == ["cli-src"]
    finally:
        worker.stop()


def test_connector_files_name_checks(tmp_path: Path) -> None:
    from omconnect.errors import ConfigError
    from omconnect.runtime.rest.commands import connector_from_json, load_connector_files

    assert connector_from_json('{"name": " a ", "x": 1}', "f") == ("a", {"x": 1})
    assert connector_from_json('{"name": "a", "config": {"name": "a", "x": "1"}}', "f") == (
        "a",
        {"x": "1"},
    )
    with pytest.raises(ConfigError, match="differs"):
        connector_from_json('{"name": "a", "config": {"name": "b"}}', "f")
    with pytest.raises(ConfigError, match="JSON object"):
        connector_from_json("[1]", "f")
    (tmp_path / "1.json").write_text('{"name": "same"}')
    (tmp_path / "2.json").write_text('{"name": "same"}')
    with pytest.raises(ConfigError, match="also defined"):
        load_connector_files(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no \.json"):
        load_connector_files(empty)


def test_status_table_shows_the_error_of_a_failed_task() -> None:
    from omconnect.runtime.rest.commands import status_table

    trace = "Traceback (most recent call last):\n  File x\nOSError: disk full"
    status = {
        "name": "c",
        "type": "sink",
        "connector": {"state": "RUNNING", "worker_id": "w1"},
        "tasks": [
            {"id": 0, "state": "FAILED", "worker_id": "w1", "trace": trace},
            {"id": 1, "state": "RUNNING", "worker_id": "w2"},
        ],
    }
    lines = status_table(status).splitlines()
    assert lines[0] == "c (sink)"
    assert lines[3].split() == ["task", "0", "FAILED", "w1"]
    assert lines[4].strip() == "OSError: disk full"
    assert lines[5].split() == ["task", "1", "RUNNING", "w2"]
