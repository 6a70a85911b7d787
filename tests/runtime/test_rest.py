"""The REST API over real HTTP on 127.0.0.1, in front of a real `Standalone` worker
running the file connectors on the in-process broker: every endpoint's status code
and JSON shape as Kafka Connect's, error bodies (400 naming the key, 404, 409),
secrets hidden, expand=status,info, plugins, loggers, the OpenAPI document.

Error paths that a real worker reaches only with difficulty are in
``test_rest_edges.py``."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from openapi_spec_validator import validate
from rest_helpers import Answer, assert_error, call

from omconnect.runtime.rest import RestServer
from omconnect.runtime.standalone import Standalone

T = TypeVar("T")
_numbers = itertools.count()


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


@dataclass
class Api:
    """The server's URL and a folder for this test's files; `name` makes connector
    names no other test uses (the worker is shared)."""

    url: str
    folder: Path
    worker: Standalone

    def name(self, base: str) -> str:
        return f"{base}-{next(_numbers)}"

    def source(self, name: str, **extra: str) -> dict[str, str]:
        return {
            "connector.class": "file-source",
            "file": str(self.folder / f"{name}.in"),
            "topic": f"{name}-lines",
            "poll.interval.ms": "20",
            **extra,
        }

    def sink(self, name: str, topic: str, **extra: str) -> dict[str, str]:
        return {
            "connector.class": "file-sink",
            "file": str(self.folder / f"{name}.out"),
            "topics": topic,
            **extra,
        }

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Answer:
        return call(self.url, method, path, body, raw=raw)

    def create(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        answer = self.call("PUT", f"/connectors/{name}/config", config)
        assert answer.status == 201, answer
        return dict(answer.body)

    def state(self, name: str) -> str:
        return str(self.call("GET", f"/connectors/{name}/status").body["connector"]["state"])

    def wait_running(self, name: str, tasks: int = 1) -> dict[str, Any]:
        def running() -> dict[str, Any] | None:
            body = self.call("GET", f"/connectors/{name}/status").body
            states = [t["state"] for t in body["tasks"]]
            ok = body["connector"]["state"] == "RUNNING" and states == ["RUNNING"] * tasks
            return body if ok else None

        return wait_for(running, f"{name} RUNNING with {tasks} tasks")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Standalone, RestServer]]:
    data = tmp_path_factory.mktemp("rest-worker")
    worker = Standalone(
        {
            "data.dir": str(data),
            "key.converter": "string",
            "value.converter": "string",
            "offset.flush.interval.ms": "100",
        }
    )
    try:
        with RestServer(worker, port=0, cluster_id="rest-tests") as server:
            yield worker, server
    finally:
        worker.stop()


@pytest.fixture
def api(served: tuple[Standalone, RestServer], tmp_path: Path) -> Iterator[Api]:
    worker, server = served
    yield Api(server.url, tmp_path, worker)
    for name in worker.connectors():  # leave the shared worker empty
        worker.delete_connector(name)


# --- root, health, unknown paths ----------------------------------------------------------


def test_root_shows_version_commit_and_cluster_id(api: Api) -> None:
    answer = api.call("GET", "/")
    assert answer.status == 200
    assert set(answer.body) == {"version", "commit", "kafka_cluster_id"}
    assert answer.body["kafka_cluster_id"] == "rest-tests"
    assert answer.body["version"] and answer.body["commit"]


def test_health_is_healthy(api: Api) -> None:
    answer = api.call("GET", "/health")
    assert answer.status == 200
    assert answer.body["status"] == "healthy"
    assert answer.body["message"]


def test_unknown_path_and_method_answer_kafka_error_bodies(api: Api) -> None:
    assert_error(api.call("GET", "/no/such/path"), 404, "404")
    assert_error(api.call("DELETE", "/connector-plugins"), 405, "405")


# --- create, read, update, delete ---------------------------------------------------------


def test_post_creates_with_201_location_and_info(api: Api) -> None:
    name = api.name("post")
    config = api.source(name)
    answer = api.call("POST", "/connectors", {"name": name, "config": config})
    assert answer.status == 201, answer
    assert answer.headers["location"].endswith(f"/connectors/{name}")
    assert answer.body == {
        "name": name,
        "config": {**config, "name": name},
        "tasks": [{"connector": name, "task": 0}],
        "type": "source",
    }
    api.wait_running(name)


def test_post_with_an_existing_name_is_409(api: Api) -> None:
    name = api.name("dup")
    api.create(name, api.source(name))
    answer = api.call("POST", "/connectors", {"name": name, "config": api.source(name)})
    assert_error(answer, 409, name, "already exists")


def test_post_without_name_or_with_a_mismatched_name_is_400(api: Api) -> None:
    config = api.source("x")
    assert_error(api.call("POST", "/connectors", {"config": config}), 400, "name")
    body = {"name": "a", "config": {**config, "name": "b"}}
    assert_error(api.call("POST", "/connectors", body), 400, "(b)", "(a)")
    assert_error(api.call("POST", "/connectors", {"name": "a", "config": config, "x": 1}), 400)
    assert api.call("GET", "/connectors").body == []


def test_put_config_creates_201_then_replaces_200(api: Api) -> None:
    name = api.name("put")
    first = api.call("PUT", f"/connectors/{name}/config", api.source(name))
    assert first.status == 201
    assert first.headers["location"].endswith(f"/connectors/{name}")
    second = api.call("PUT", f"/connectors/{name}/config", {**api.source(name), "tasks.max": 2})
    assert second.status == 200
    assert second.body["config"]["tasks.max"] == "2"  # numbers are read as text
    assert second.body["name"] == name


def test_bad_configs_are_400_naming_the_key(api: Api) -> None:
    name = api.name("bad")
    path = f"/connectors/{name}/config"
    source = api.source(name)
    without_file = {k: v for k, v in source.items() if k != "file"}
    assert_error(api.call("PUT", path, without_file), 400, "file")
    assert_error(api.call("PUT", path, {**source, "tasks.max": "0"}), 400, "tasks.max")
    assert_error(api.call("PUT", path, {**source, "batch.size": "many"}), 400, "batch.size")
    assert_error(
        api.call("PUT", path, {**source, "connector.class": "nope.Nope"}), 400, "connector.class"
    )
    assert_error(api.call("PUT", path, {**source, "topic": None}), 400, "topic")
    assert_error(api.call("PUT", path, {**source, "topic": ["a"]}), 400, "topic")
    assert_error(api.call("PUT", path, ["not", "a", "map"]), 400)
    assert_error(api.call("PUT", path, raw=b"{not json"), 400)
    assert_error(api.call("PUT", path, {**source, "name": "other"}), 400, "(other)")
    assert_error(api.call("GET", f"/connectors/{name}"), 404)  # nothing was stored


def test_get_connector_and_config_hide_secrets(api: Api) -> None:
    name = api.name("secret")
    config = api.source(name, **{"connection.password": "hunter2"})
    api.create(name, config)
    info = api.call("GET", f"/connectors/{name}")
    assert info.status == 200
    assert set(info.body) == {"name", "config", "tasks", "type"}
    assert info.body["type"] == "source"
    assert info.body["config"]["connection.password"] == "[hidden]"
    got = api.call("GET", f"/connectors/{name}/config")
    assert got.status == 200
    assert got.body == {**config, "name": name, "connection.password": "[hidden]"}
    for path in ("", "/tasks", "/status", "/config"):
        assert "hunter2" not in str(api.call("GET", f"/connectors/{name}{path}").body)
    assert "hunter2" not in str(api.call("GET", "/connectors?expand=info").body)


def test_unknown_connector_is_404_everywhere(api: Api) -> None:
    for method, path in [
        ("GET", "/connectors/nope"),
        ("DELETE", "/connectors/nope"),
        ("GET", "/connectors/nope/config"),
        ("PATCH", "/connectors/nope/config"),
        ("GET", "/connectors/nope/status"),
        ("GET", "/connectors/nope/tasks"),
        ("GET", "/connectors/nope/tasks/0/status"),
        ("POST", "/connectors/nope/restart"),
        ("POST", "/connectors/nope/tasks/0/restart"),
        ("PUT", "/connectors/nope/pause"),
        ("PUT", "/connectors/nope/resume"),
        ("PUT", "/connectors/nope/stop"),
        ("GET", "/connectors/nope/offsets"),
        ("DELETE", "/connectors/nope/offsets"),
    ]:
        body = {"tasks.max": "1"} if method == "PATCH" else None
        assert_error(api.call(method, path, body), 404, "nope")


def test_patch_config_sets_and_removes_keys(api: Api) -> None:
    name = api.name("patch")
    api.create(name, api.source(name, **{"batch.size": "10"}))
    path = f"/connectors/{name}/config"
    answer = api.call("PATCH", path, {"tasks.max": 1, "batch.size": None, "encoding": "ascii"})
    assert answer.status == 200
    assert answer.body["config"]["encoding"] == "ascii"
    assert "batch.size" not in answer.body["config"]
    assert api.call("GET", path).body["encoding"] == "ascii"
    assert_error(api.call("PATCH", path, {"tasks.max": "-1"}), 400, "tasks.max")


def test_delete_is_204_then_the_connector_is_gone(api: Api) -> None:
    name = api.name("delete")
    api.create(name, api.source(name))
    answer = api.call("DELETE", f"/connectors/{name}")
    assert (answer.status, answer.body) == (204, None)
    assert api.call("GET", "/connectors").body == []
    assert_error(api.call("GET", f"/connectors/{name}"), 404)


# --- listing and expand -------------------------------------------------------------------


def test_list_plain_and_expanded(api: Api) -> None:
    a, b = api.name("list-a"), api.name("list-b")
    api.create(a, api.source(a))
    api.create(b, api.source(b))
    api.wait_running(a)
    api.wait_running(b)
    assert api.call("GET", "/connectors").body == [a, b]
    assert api.call("GET", "/connectors/").body == [a, b]  # as Kafka: no redirect

    status = api.call("GET", "/connectors?expand=status").body
    assert set(status) == {a, b}
    assert set(status[a]) == {"status"}
    assert set(status[a]["status"]) == {"name", "connector", "tasks", "type"}
    assert status[a]["status"]["connector"]["state"] == "RUNNING"

    info = api.call("GET", "/connectors?expand=info").body
    assert set(info[b]) == {"info"}
    assert info[b]["info"]["name"] == b
    assert info[b]["info"]["tasks"] == [{"connector": b, "task": 0}]

    both = api.call("GET", "/connectors?expand=status&expand=info").body
    assert set(both[a]) == {"status", "info"}
    assert api.call("GET", "/connectors?expand=status,info").body == both
    assert api.call("GET", "/connectors?expand=unknown").body == {a: {}, b: {}}


# --- a running pipeline: status, tasks, offsets -------------------------------------------


def test_status_tasks_and_offsets_of_a_running_pipeline(api: Api) -> None:
    source, sink = api.name("src"), api.name("sink")
    lines = ["alpha", "beta", "gamma"]
    (api.folder / f"{source}.in").write_text("".join(line + "\n" for line in lines))
    api.create(source, api.source(source))
    api.create(sink, api.sink(sink, f"{source}-lines"))
    out = api.folder / f"{sink}.out"
    wait_for(lambda: out.exists() and out.read_text().splitlines() == lines, "the sink file")

    status = api.wait_running(source)
    assert status["name"] == source
    assert status["type"] == "source"
    assert set(status["connector"]) == {"state", "worker_id"}
    assert status["connector"]["worker_id"] == api.worker.worker_id
    assert status["tasks"] == [{"id": 0, "state": "RUNNING", "worker_id": api.worker.worker_id}]
    task = api.call("GET", f"/connectors/{source}/tasks/0/status")
    assert (task.status, task.body) == (200, status["tasks"][0])
    assert_error(api.call("GET", f"/connectors/{source}/tasks/7/status"), 404)
    assert_error(api.call("GET", f"/connectors/{source}/tasks/x/status"), 400, "task")

    tasks = api.call("GET", f"/connectors/{source}/tasks")
    assert tasks.status == 200
    assert [t["id"] for t in tasks.body] == [{"connector": source, "task": 0}]
    assert tasks.body[0]["config"]["file"] == str(api.folder / f"{source}.in")

    size = len("".join(line + "\n" for line in lines).encode())
    source_offsets = wait_for(
        lambda: api.call("GET", f"/connectors/{source}/offsets").body["offsets"],
        "committed source offsets",
    )
    assert [o["offset"] for o in source_offsets] == [{"position": size}]
    sink_offsets = wait_for(
        lambda: api.call("GET", f"/connectors/{sink}/offsets").body["offsets"],
        "committed sink offsets",
    )
    assert sink_offsets == [
        {
            "partition": {"kafka_topic": f"{source}-lines", "kafka_partition": 0},
            "offset": {"kafka_offset": 3},
        }
    ]
    assert api.call("GET", "/connectors?expand=status").body[sink]["status"]["type"] == "sink"


def test_offsets_alter_and_reset_need_a_stopped_connector(api: Api) -> None:
    name = api.name("offsets")
    (api.folder / f"{name}.in").write_text("one\ntwo\n")
    api.create(name, api.source(name))
    offsets = wait_for(
        lambda: api.call("GET", f"/connectors/{name}/offsets").body["offsets"], "offsets"
    )
    path = f"/connectors/{name}/offsets"
    moved = [{"partition": offsets[0]["partition"], "offset": {"position": 4}}]
    assert_error(api.call("PATCH", path, {"offsets": moved}), 400, "STOPPED")
    assert_error(api.call("DELETE", path), 400, "STOPPED")

    stopped = api.call("PUT", f"/connectors/{name}/stop")
    assert (stopped.status, stopped.body) == (204, None)
    wait_for(lambda: api.state(name) == "STOPPED", "STOPPED")
    assert_error(api.call("PATCH", path, {"offsets": []}), 400, "offsets")
    assert_error(api.call("PATCH", path, {}), 400, "offsets")
    altered = api.call("PATCH", path, {"offsets": moved})
    assert altered.status == 200
    assert set(altered.body) == {"message"}
    assert api.call("GET", path).body == {"offsets": moved}
    reset = api.call("DELETE", path)
    assert reset.status == 200
    assert "reset" in reset.body["message"]
    assert api.call("GET", path).body == {"offsets": []}


# --- restart, pause, resume, stop ---------------------------------------------------------


def test_restart_plain_is_204_with_tasks_or_only_failed_202_with_status(api: Api) -> None:
    name = api.name("restart")
    api.create(name, api.source(name))
    api.wait_running(name)
    plain = api.call("POST", f"/connectors/{name}/restart")
    assert (plain.status, plain.body) == (204, None)
    with_tasks = api.call("POST", f"/connectors/{name}/restart?includeTasks=true")
    assert with_tasks.status == 202
    assert with_tasks.body["name"] == name
    assert set(with_tasks.body) == {"name", "connector", "tasks", "type"}
    only_failed = api.call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true")
    assert only_failed.status == 202
    api.wait_running(name)
    task = api.call("POST", f"/connectors/{name}/tasks/0/restart")
    assert (task.status, task.body) == (204, None)
    api.wait_running(name)


def test_pause_resume_202_and_stop_204(api: Api) -> None:
    name = api.name("states")
    api.create(name, api.source(name))
    api.wait_running(name)
    paused = api.call("PUT", f"/connectors/{name}/pause")
    assert (paused.status, paused.body) == (202, None)
    wait_for(lambda: api.state(name) == "PAUSED", "PAUSED")
    assert api.call("PUT", f"/connectors/{name}/resume").status == 202
    api.wait_running(name)
    stopped = api.call("PUT", f"/connectors/{name}/stop")
    assert (stopped.status, stopped.body) == (204, None)
    wait_for(lambda: api.state(name) == "STOPPED", "STOPPED")
    assert api.call("PUT", f"/connectors/{name}/resume").status == 202
    api.wait_running(name)


# --- plugins ------------------------------------------------------------------------------


def test_connector_plugins_list(api: Api) -> None:
    answer = api.call("GET", "/connector-plugins")
    assert answer.status == 200
    classes = {p["class"]: p for p in answer.body}
    source = classes["omconnect.connectors.file.source.FileSourceConnector"]
    assert source["type"] == "source" and source["version"]
    assert set(source) == {"class", "type", "version"}
    assert {p["type"] for p in answer.body} == {"source", "sink"}
    everything = api.call("GET", "/connector-plugins?connectorsOnly=false").body
    kinds = {p["type"] for p in everything}
    assert kinds == {"source", "sink", "transformation", "predicate", "converter"}
    assert "omconnect.runtime.transforms.routing.RegexRouter" in {p["class"] for p in everything}


def test_plugin_config_definition(api: Api) -> None:
    for name in ("file-source", "org.apache.kafka.connect.file.FileStreamSourceConnector"):
        answer = api.call("GET", f"/connector-plugins/{name}/config")
        assert answer.status == 200
        keys = {k["name"]: k for k in answer.body}
        assert keys["file"]["required"] is True
        assert keys["file"]["type"] == "STRING"
        assert keys["batch.size"]["type"] == "INT"
        assert keys["batch.size"]["default_value"] == "2000"
        assert set(keys["file"]) == {
            "name",
            "type",
            "required",
            "default_value",
            "importance",
            "documentation",
            "group",
            "order_in_group",
            "width",
            "display_name",
            "dependents",
        }
    transform = api.call("GET", "/connector-plugins/RegexRouter/config")
    assert transform.status == 200
    assert {k["name"] for k in transform.body} >= {"regex", "replacement"}
    assert_error(api.call("GET", "/connector-plugins/no.such.Plugin/config"), 404, "no.such")


def test_validate_answers_config_infos_naming_the_failing_keys(api: Api) -> None:
    path = "/connector-plugins/file-source/config/validate"
    answer = api.call("PUT", path, {"connector.class": "file-source", "topic": "t"})
    assert answer.status == 200
    assert set(answer.body) == {"name", "error_count", "groups", "configs"}
    assert answer.body["error_count"] >= 1
    failing = {c["value"]["name"] for c in answer.body["configs"] if c["value"]["errors"]}
    assert "file" in failing and "topic" not in failing
    first = answer.body["configs"][0]
    assert set(first) == {"definition", "value"}
    assert set(first["value"]) == {"name", "value", "errors", "recommended_values", "visible"}
    mismatch = api.call(
        "PUT",
        "/connector-plugins/file-sink/config/validate",
        {"connector.class": "file-source"},
    )
    assert_error(mismatch, 400, "file-source", "file-sink")


# --- loggers ------------------------------------------------------------------------------


@pytest.fixture
def scratch_logger() -> Iterator[str]:
    name = "omconnect.test_rest_scratch"
    child = logging.getLogger(name + ".child")
    child.setLevel(logging.ERROR)
    yield name
    for logger in (logging.getLogger(name), child):
        logger.setLevel(logging.NOTSET)


def test_loggers_list_get_and_set(api: Api, scratch_logger: str) -> None:
    listed = api.call("GET", "/admin/loggers")
    assert listed.status == 200
    assert set(listed.body["root"]) == {"level", "last_modified"}
    assert listed.body[scratch_logger + ".child"] == {"level": "ERROR", "last_modified": None}

    changed = api.call("PUT", f"/admin/loggers/{scratch_logger}", {"level": "trace"})
    assert changed.status == 200
    assert changed.body == [scratch_logger, scratch_logger + ".child"]
    assert logging.getLogger(scratch_logger + ".child").level == 5
    got = api.call("GET", f"/admin/loggers/{scratch_logger}.child")
    assert got.status == 200
    assert got.body["level"] == "TRACE"
    assert isinstance(got.body["last_modified"], int)

    api.call("PUT", f"/admin/loggers/{scratch_logger}", {"level": "WARN"})
    assert logging.getLogger(scratch_logger).level == logging.WARNING


def test_logger_errors(api: Api, scratch_logger: str) -> None:
    assert_error(api.call("GET", "/admin/loggers/never.created.logger"), 404, "never.created")
    path = f"/admin/loggers/{scratch_logger}"
    assert_error(api.call("PUT", path, {"level": "LOUD"}), 404, "LOUD")  # as Kafka
    assert_error(api.call("PUT", path, {}), 400, "level")


# --- OpenAPI ------------------------------------------------------------------------------


KAFKA_PATHS = {
    "/": {"get"},
    "/health": {"get"},
    "/connectors": {"get", "post"},
    "/connectors/{name}": {"get", "delete"},
    "/connectors/{name}/config": {"get", "put", "patch"},
    "/connectors/{name}/status": {"get"},
    "/connectors/{name}/tasks": {"get"},
    "/connectors/{name}/tasks/{task}/status": {"get"},
    "/connectors/{name}/restart": {"post"},
    "/connectors/{name}/tasks/{task}/restart": {"post"},
    "/connectors/{name}/pause": {"put"},
    "/connectors/{name}/resume": {"put"},
    "/connectors/{name}/stop": {"put"},
    "/connectors/{name}/offsets": {"get", "patch", "delete"},
    "/connector-plugins": {"get"},
    "/connector-plugins/{plugin}/config": {"get"},
    "/connector-plugins/{plugin}/config/validate": {"put"},
    "/admin/loggers": {"get"},
    "/admin/loggers/{logger}": {"get", "put"},
}


def test_openapi_document_is_served_valid_and_complete(api: Api) -> None:
    answer = api.call("GET", "/openapi.json")
    assert answer.status == 200
    validate(answer.body)
    paths = {path: set(ops) for path, ops in answer.body["paths"].items()}
    assert paths == KAFKA_PATHS
    put_config = answer.body["paths"]["/connectors/{name}/config"]["put"]["responses"]
    assert {"200", "201", "400", "409"} <= set(put_config)
    restart = answer.body["paths"]["/connectors/{name}/restart"]["post"]["responses"]
    assert {"202", "204", "404"} <= set(restart)
