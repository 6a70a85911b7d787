"""The REST API over real HTTP on 127.0.0.1: Kafka Connect's paths, status codes and
JSON shapes, error bodies, auth, forwarding to the leader, the OpenAPI document."""

from __future__ import annotations

import base64
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from openapi_spec_validator import validate
from rest_fakes import InMemoryHerder

from omconnect.errors import AlreadyExistsError, ConfigError, NotFoundError
from omconnect.runtime.herder import RebalanceInProgressError
from omconnect.runtime.rest import AuthConfig, LoggerAdmin, NotLeaderError, RestServer
from omconnect.runtime.rest.auth import parse_basic_users
from omconnect.runtime.rest.bodies import config_patch, string_config, with_url_name
from omconnect.runtime.rest.errors import RestError, status_for
from omconnect.runtime.rest.forwarding import leader_url_for, may_forward
from omconnect.runtime.rest.loggers import kafka_level_name, python_level

SOURCE = {"connector.class": "file-source", "file": "/tmp/in.txt", "topic": "lines"}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """One request; the answer whatever its status, its body parsed as JSON."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, text, got = error.code, error.read(), error.headers
    parsed = json.loads(text) if text else None
    return Answer(status, parsed, {k.lower(): v for k, v in got.items()})


def assert_error(answer: Answer, status: int, *words: str) -> None:
    assert answer.status == status, answer
    assert set(answer.body) == {"error_code", "message"}
    assert answer.body["error_code"] == status
    for word in words:
        assert word in answer.body["message"], answer.body


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[InMemoryHerder, RestServer]]:
    """One server for the module (starting one per test costs more than the test)."""
    herder = InMemoryHerder()
    with RestServer(herder, port=0, cluster_id="test-cluster") as running:
        yield herder, running


@pytest.fixture
def fake(shared: tuple[InMemoryHerder, RestServer]) -> InMemoryHerder:
    """The shared server's herder, emptied for this test."""
    herder = shared[0]
    herder.reset()
    return herder


@pytest.fixture
def url(shared: tuple[InMemoryHerder, RestServer], fake: InMemoryHerder) -> str:
    return shared[1].url


def create(url: str, name: str = "src", **extra: str) -> Answer:
    answer = call(url, "PUT", f"/connectors/{name}/config", {**SOURCE, **extra})
    assert answer.status in (200, 201), answer
    return answer


# --- root, health, server ------------------------------------------------------------


def test_root_shows_version_commit_and_cluster_id(url: str) -> None:
    answer = call(url, "GET", "/")
    assert answer.status == 200
    assert set(answer.body) == {"version", "commit", "kafka_cluster_id"}
    assert answer.body["kafka_cluster_id"] == "test-cluster"
    assert answer.body["version"] and answer.body["commit"]


def test_health_is_healthy(url: str) -> None:
    answer = call(url, "GET", "/health")
    assert answer.status == 200
    assert answer.body["status"] == "healthy"
    assert answer.body["message"]


def test_server_binds_loopback_on_a_free_port_and_stop_releases_it(fake: InMemoryHerder) -> None:
    server = RestServer(fake, port=0)
    assert server.host == "127.0.0.1"
    server.start()
    port = server.port
    assert port not in (0, 8083)
    assert call(server.url, "GET", "/health").status == 200
    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_unknown_path_and_method_answer_kafka_error_bodies(url: str) -> None:
    assert_error(call(url, "GET", "/no/such/path"), 404, "404")
    assert_error(call(url, "DELETE", "/connector-plugins"), 405, "405")


# --- connectors: create, read, update, delete -----------------------------------------


def test_post_creates_with_201_location_and_info(url: str, fake: InMemoryHerder) -> None:
    answer = call(url, "POST", "/connectors", {"name": "src", "config": SOURCE})
    assert answer.status == 201
    assert answer.headers["location"].endswith("/connectors/src")
    assert answer.body == {
        "name": "src",
        "config": {**SOURCE, "name": "src"},
        "tasks": [{"connector": "src", "task": 0}],
        "type": "source",
    }
    assert fake.configs["src"]["name"] == "src"


def test_post_with_an_existing_name_is_409(url: str) -> None:
    create(url)
    answer = call(url, "POST", "/connectors", {"name": "src", "config": SOURCE})
    assert_error(answer, 409, "src", "already exists")


def test_post_without_name_or_with_a_mismatched_name_is_400(url: str) -> None:
    assert_error(call(url, "POST", "/connectors", {"config": SOURCE}), 400, "name")
    answer = call(url, "POST", "/connectors", {"name": "a", "config": {**SOURCE, "name": "b"}})
    assert_error(answer, 400, "(b)", "(a)")
    answer = call(url, "POST", "/connectors", {"name": "a", "config": SOURCE, "bogus": 1})
    assert_error(answer, 400, "bogus")


def test_put_config_creates_201_then_replaces_200(url: str) -> None:
    first = call(url, "PUT", "/connectors/src/config", SOURCE)
    assert first.status == 201
    assert first.headers["location"].endswith("/connectors/src")
    second = call(url, "PUT", "/connectors/src/config", {**SOURCE, "tasks.max": 2})
    assert second.status == 200
    assert second.body["config"]["tasks.max"] == "2"  # numbers are read as text
    assert second.body["tasks"] == [
        {"connector": "src", "task": 0},
        {"connector": "src", "task": 1},
    ]


def test_bad_configs_are_400_naming_the_key(url: str) -> None:
    assert_error(
        call(url, "PUT", "/connectors/src/config", {**SOURCE, "tasks.max": "0"}), 400, "tasks.max"
    )
    assert_error(
        call(url, "PUT", "/connectors/src/config", {**SOURCE, "connector.class": "nope.Nope"}),
        400,
        "connector.class",
    )
    assert_error(call(url, "PUT", "/connectors/src/config", {**SOURCE, "file": None}), 400, "file")
    assert_error(
        call(url, "PUT", "/connectors/src/config", {**SOURCE, "topic": ["a"]}), 400, "topic"
    )
    assert_error(call(url, "PUT", "/connectors/src/config", ["not", "a", "map"]), 400)
    assert_error(call(url, "PUT", "/connectors/src/config", raw=b"{not json"), 400)
    answer = call(url, "PUT", "/connectors/src/config", {**SOURCE, "name": "other"})
    assert_error(answer, 400, "(other)", "(src)")


def test_get_connector_and_config(url: str) -> None:
    create(url, **{"db.password": "s3cret"})
    info = call(url, "GET", "/connectors/src")
    assert info.status == 200
    assert set(info.body) == {"name", "config", "tasks", "type"}
    assert info.body["config"]["db.password"] == "[hidden]"
    config = call(url, "GET", "/connectors/src/config")
    assert config.status == 200
    assert config.body == {**SOURCE, "db.password": "[hidden]", "name": "src"}


def test_unknown_connector_is_404_everywhere(url: str) -> None:
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
        assert_error(call(url, method, path, body), 404, "nope")


def test_patch_config_sets_and_removes_keys(url: str) -> None:
    create(url, **{"batch.size": "10"})
    answer = call(url, "PATCH", "/connectors/src/config", {"tasks.max": 3, "batch.size": None})
    assert answer.status == 200
    assert answer.body["config"]["tasks.max"] == "3"
    assert "batch.size" not in answer.body["config"]
    assert len(answer.body["tasks"]) == 3
    assert_error(
        call(url, "PATCH", "/connectors/src/config", {"tasks.max": "-1"}), 400, "tasks.max"
    )


def test_delete_is_204_then_the_connector_is_gone(url: str) -> None:
    create(url)
    answer = call(url, "DELETE", "/connectors/src")
    assert answer.status == 204
    assert answer.body is None
    assert call(url, "GET", "/connectors").body == []
    assert_error(call(url, "GET", "/connectors/src"), 404)


# --- listing and expand ------------------------------------------------------------------


def test_list_plain_and_expanded(url: str) -> None:
    create(url, "a")
    create(url, "b")
    assert call(url, "GET", "/connectors").body == ["a", "b"]
    assert call(url, "GET", "/connectors/").body == ["a", "b"]  # as Kafka: no redirect

    status = call(url, "GET", "/connectors?expand=status").body
    assert set(status) == {"a", "b"}
    assert set(status["a"]) == {"status"}
    assert status["a"]["status"]["connector"]["state"] == "RUNNING"
    assert set(status["a"]["status"]) == {"name", "connector", "tasks", "type"}

    info = call(url, "GET", "/connectors?expand=info").body
    assert set(info["b"]) == {"info"}
    assert info["b"]["info"]["name"] == "b"

    both = call(url, "GET", "/connectors?expand=status&expand=info").body
    assert set(both["a"]) == {"status", "info"}
    assert call(url, "GET", "/connectors?expand=status,info").body == both
    assert call(url, "GET", "/connectors?expand=unknown").body == {"a": {}, "b": {}}


def test_expanded_list_leaves_out_a_connector_deleted_meanwhile(
    url: str, fake: InMemoryHerder, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(url, "a")
    create(url, "b")
    real_status = fake.connector_status

    def status_raising_for_b(name: str) -> Any:
        if name == "b":
            raise NotFoundError("Connector b not found")
        return real_status(name)

    monkeypatch.setattr(fake, "connector_status", status_raising_for_b)
    assert set(call(url, "GET", "/connectors?expand=status").body) == {"a"}


# --- status, tasks, restart, pause/resume/stop -------------------------------------------


def test_status_tasks_and_task_status(url: str) -> None:
    create(url, **{"tasks.max": "2"})
    status = call(url, "GET", "/connectors/src/status")
    assert status.status == 200
    assert status.body == {
        "name": "src",
        "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
        "tasks": [
            {"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"},
            {"id": 1, "state": "RUNNING", "worker_id": "127.0.0.1:8083"},
        ],
        "type": "source",
    }
    tasks = call(url, "GET", "/connectors/src/tasks")
    assert tasks.status == 200
    assert [t["id"] for t in tasks.body] == [
        {"connector": "src", "task": 0},
        {"connector": "src", "task": 1},
    ]
    assert tasks.body[1]["config"]["task.id"] == "1"
    task = call(url, "GET", "/connectors/src/tasks/1/status")
    assert task.status == 200
    assert task.body == {"id": 1, "state": "RUNNING", "worker_id": "127.0.0.1:8083"}
    assert_error(call(url, "GET", "/connectors/src/tasks/7/status"), 404, "src-7")
    assert_error(call(url, "GET", "/connectors/src/tasks/x/status"), 400, "task")


def test_restart_plain_is_204_with_tasks_or_only_failed_202_with_status(
    url: str, fake: InMemoryHerder
) -> None:
    create(url)
    plain = call(url, "POST", "/connectors/src/restart")
    assert (plain.status, plain.body) == (204, None)
    with_tasks = call(url, "POST", "/connectors/src/restart?includeTasks=true")
    assert with_tasks.status == 202
    assert with_tasks.body["name"] == "src"
    assert with_tasks.body["connector"]["state"] == "RUNNING"
    only_failed = call(url, "POST", "/connectors/src/restart?includeTasks=true&onlyFailed=true")
    assert only_failed.status == 202
    assert fake.restarts == [
        ("src", (False, False)),
        ("src", (True, False)),
        ("src", (True, True)),
    ]


def test_task_restart_is_204(url: str, fake: InMemoryHerder) -> None:
    create(url)
    answer = call(url, "POST", "/connectors/src/tasks/0/restart")
    assert (answer.status, answer.body) == (204, None)
    assert fake.restarts == [("src", 0)]
    assert_error(call(url, "POST", "/connectors/src/tasks/5/restart"), 404)


def test_pause_resume_202_and_stop_204(url: str) -> None:
    create(url)
    assert call(url, "PUT", "/connectors/src/pause").status == 202
    assert call(url, "GET", "/connectors/src/status").body["connector"]["state"] == "PAUSED"
    assert call(url, "PUT", "/connectors/src/resume").status == 202
    assert call(url, "GET", "/connectors/src/status").body["connector"]["state"] == "RUNNING"
    stopped = call(url, "PUT", "/connectors/src/stop")
    assert (stopped.status, stopped.body) == (204, None)
    assert call(url, "GET", "/connectors/src/status").body["connector"]["state"] == "STOPPED"


# --- offsets ------------------------------------------------------------------------------


def test_offsets_read_alter_and_reset(url: str) -> None:
    create(url)
    assert call(url, "GET", "/connectors/src/offsets").body == {"offsets": []}
    offsets = [{"partition": {"file": "/tmp/in.txt"}, "offset": {"position": 42}}]
    assert_error(
        call(url, "PATCH", "/connectors/src/offsets", {"offsets": offsets}), 400, "STOPPED"
    )
    call(url, "PUT", "/connectors/src/stop")
    assert_error(call(url, "PATCH", "/connectors/src/offsets", {"offsets": []}), 400, "offsets")
    assert_error(call(url, "PATCH", "/connectors/src/offsets", {}), 400, "offsets")
    altered = call(url, "PATCH", "/connectors/src/offsets", {"offsets": offsets})
    assert altered.status == 200
    assert set(altered.body) == {"message"}
    assert call(url, "GET", "/connectors/src/offsets").body == {"offsets": offsets}
    reset = call(url, "DELETE", "/connectors/src/offsets")
    assert reset.status == 200
    assert "reset" in reset.body["message"]
    assert call(url, "GET", "/connectors/src/offsets").body == {"offsets": []}


# --- plugins ------------------------------------------------------------------------------


def test_connector_plugins_list(url: str) -> None:
    answer = call(url, "GET", "/connector-plugins")
    assert answer.status == 200
    classes = {p["class"]: p for p in answer.body}
    source = classes["omconnect.connectors.file.source.FileSourceConnector"]
    assert source["type"] == "source" and source["version"]
    assert {p["type"] for p in answer.body} == {"source", "sink"}
    everything = call(url, "GET", "/connector-plugins?connectorsOnly=false").body
    assert {"source", "sink", "transformation", "predicate", "converter"} == {
        p["type"] for p in everything
    }
    assert "omconnect.runtime.transforms.routing.RegexRouter" in {p["class"] for p in everything}


def test_plugin_config_definition(url: str) -> None:
    for name in ("file-source", "org.apache.kafka.connect.file.FileStreamSourceConnector"):
        answer = call(url, "GET", f"/connector-plugins/{name}/config")
        assert answer.status == 200
        keys = {k["name"]: k for k in answer.body}
        assert keys["file"]["required"] is True
        assert keys["file"]["type"] == "STRING"
        assert set(keys["file"]) >= {"name", "type", "required", "default_value", "documentation"}
    transform = call(url, "GET", "/connector-plugins/RegexRouter/config")
    assert transform.status == 200 and {k["name"] for k in transform.body} >= {"regex"}
    assert_error(call(url, "GET", "/connector-plugins/no.such.Plugin/config"), 404, "no.such")


def test_validate_answers_config_infos_and_checks_the_connector_class(url: str) -> None:
    answer = call(url, "PUT", "/connector-plugins/file-source/config/validate", SOURCE)
    assert answer.status == 200
    assert set(answer.body) == {"name", "error_count", "groups", "configs"}
    mismatch = call(
        url,
        "PUT",
        "/connector-plugins/file-sink/config/validate",
        {**SOURCE, "connector.class": "file-source"},
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


def test_loggers_list_get_and_set(url: str, scratch_logger: str) -> None:
    listed = call(url, "GET", "/admin/loggers")
    assert listed.status == 200
    assert set(listed.body["root"]) == {"level", "last_modified"}
    assert listed.body[scratch_logger + ".child"] == {"level": "ERROR", "last_modified": None}

    changed = call(url, "PUT", f"/admin/loggers/{scratch_logger}", {"level": "trace"})
    assert changed.status == 200
    assert changed.body == [scratch_logger, scratch_logger + ".child"]
    assert logging.getLogger(scratch_logger + ".child").level == 5
    got = call(url, "GET", f"/admin/loggers/{scratch_logger}.child")
    assert got.status == 200
    assert got.body["level"] == "TRACE"
    assert isinstance(got.body["last_modified"], int)

    call(url, "PUT", f"/admin/loggers/{scratch_logger}", {"level": "WARN"})
    assert logging.getLogger(scratch_logger).level == logging.WARNING


def test_logger_errors(url: str, scratch_logger: str) -> None:
    assert_error(call(url, "GET", "/admin/loggers/never.created.logger"), 404, "never.created")
    assert_error(
        call(url, "PUT", f"/admin/loggers/{scratch_logger}", {"level": "LOUD"}), 404, "LOUD"
    )
    assert_error(call(url, "PUT", f"/admin/loggers/{scratch_logger}", {}), 400, "level")


def test_level_names_map_both_ways() -> None:
    assert [
        python_level(n) for n in ("OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")
    ] == [
        60,
        50,
        40,
        30,
        20,
        10,
        5,
    ]
    assert python_level("warning") == python_level("Warn") == logging.WARNING
    assert [kafka_level_name(n) for n in (60, 50, 45, 40, 30, 20, 15, 10, 5, 1)] == [
        "OFF",
        "FATAL",
        "ERROR",
        "ERROR",
        "WARN",
        "INFO",
        "DEBUG",
        "DEBUG",
        "TRACE",
        "TRACE",
    ]
    with pytest.raises(NotFoundError):
        python_level("LOUD")


def test_logger_admin_records_when_the_api_set_a_level(scratch_logger: str) -> None:
    admin = LoggerAdmin(clock=lambda: 1234.5)
    admin.set_level(scratch_logger, "DEBUG")
    assert admin.level(scratch_logger) == {"level": "DEBUG", "last_modified": 1234500}
    assert admin.all_levels()[scratch_logger] == {"level": "DEBUG", "last_modified": 1234500}


# --- errors the herder raises -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RebalanceInProgressError("rebalance in progress, retry"), 409),
        (AlreadyExistsError("exists"), 409),
        (ConfigError("some.key", "is wrong"), 400),
        (NotFoundError("gone"), 404),
        (RuntimeError("disk on fire"), 500),
    ],
)
def test_herder_errors_become_error_bodies(
    url: str, fake: InMemoryHerder, error: Exception, status: int
) -> None:
    fake.fail_with = error
    for method, path in [("GET", "/connectors"), ("PUT", "/connectors/x/config")]:
        answer = call(url, method, path, SOURCE if method == "PUT" else None)
        assert_error(answer, status, str(error))


def test_a_500_keeps_the_stack_trace_in_the_log_not_the_answer(
    url: str, fake: InMemoryHerder, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_with = RuntimeError("disk on fire")
    with caplog.at_level(logging.ERROR, logger="omconnect.runtime.rest"):
        answer = call(url, "GET", "/connectors")
    assert answer.body == {"error_code": 500, "message": "disk on fire"}
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)


def test_request_bodies_are_not_logged(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        create(url, **{"db.password": "hunter2-secret"})
        call(
            url,
            "PUT",
            "/connectors/src/config",
            {**SOURCE, "tasks.max": "x", "db.password": "hunter2-secret"},
        )
    assert "hunter2-secret" not in caplog.text


def test_error_status_table() -> None:
    assert status_for(ConfigError("k", "r")) == 400
    assert status_for(NotFoundError("x")) == 404
    assert status_for(AlreadyExistsError("x")) == 409
    assert status_for(RebalanceInProgressError("x")) == 409
    assert status_for(RestError(418, "teapot")) == 418
    assert status_for(ValueError("x")) == 500


# --- bodies -----------------------------------------------------------------------------


def test_config_bodies_are_string_maps() -> None:
    assert string_config({"a": 1, "b": True, "c": "x", "d": 1.5}) == {
        "a": "1",
        "b": "true",
        "c": "x",
        "d": "1.5",
    }
    with pytest.raises(ConfigError, match=r"^k:"):
        string_config({"k": None})
    with pytest.raises(ConfigError, match=r"^k:"):
        string_config({"k": {"nested": 1}})
    with pytest.raises(RestError):
        string_config([1, 2])
    assert config_patch({"a": None, "b": 2}) == {"a": None, "b": "2"}
    assert with_url_name("n", {"x": "1"}) == {"x": "1", "name": "n"}
    with pytest.raises(RestError):
        with_url_name("n", {"name": "m"})


# --- auth ---------------------------------------------------------------------------------


@pytest.fixture
def auth_url(fake: InMemoryHerder) -> Iterator[str]:
    auth = AuthConfig(bearer_token="tok-123", basic_users={"alice": "pw:with:colons"})
    with RestServer(fake, port=0, auth=auth) as running:
        yield running.url


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_auth_refuses_requests_without_valid_credentials(auth_url: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
        _basic("alice", "wrong"),
        _basic("mallory", "pw:with:colons"),
        {"Authorization": "Basic !!notbase64"},
        {"Authorization": "Digest abc"},
    ):
        answer = call(auth_url, "GET", "/connectors", headers=headers)
        assert_error(answer, 401)
        assert "Bearer" in answer.headers["www-authenticate"]
    assert_error(call(auth_url, "GET", "/openapi.json"), 401)


def test_auth_accepts_the_token_or_a_basic_user(auth_url: str) -> None:
    assert (
        call(auth_url, "GET", "/connectors", headers={"Authorization": "Bearer tok-123"}).status
        == 200
    )
    assert (
        call(auth_url, "GET", "/connectors", headers=_basic("alice", "pw:with:colons")).status
        == 200
    )


def test_health_needs_no_credentials(auth_url: str) -> None:
    assert call(auth_url, "GET", "/health").status == 200


def test_no_auth_configured_serves_everyone(url: str) -> None:
    assert call(url, "GET", "/connectors").status == 200


def test_auth_config_from_worker_config() -> None:
    assert AuthConfig.from_worker_config({}) is None
    config = AuthConfig.from_worker_config(
        {"rest.auth.bearer.token": "t", "rest.auth.basic.users": "a:1, b:2"}
    )
    assert config is not None
    assert config.bearer_token == "t"
    assert dict(config.basic_users) == {"a": "1", "b": "2"}
    assert "t" not in repr(config).replace("AuthConfig", "")
    assert parse_basic_users('{"a": "x"}') == {"a": "x"}
    with pytest.raises(ConfigError, match=r"rest\.auth\.basic\.users: entry 2"):
        parse_basic_users("a:1,nocolon")
    with pytest.raises(ConfigError, match=r"rest\.auth\.bearer\.token"):
        AuthConfig(bearer_token=" ")


# --- forwarding to the leader -------------------------------------------------------------


@pytest.fixture
def leader() -> Iterator[tuple[InMemoryHerder, RestServer]]:
    herder = InMemoryHerder()
    with RestServer(herder, port=0, auth=AuthConfig(bearer_token="tok")) as running:
        yield herder, running


def test_a_follower_forwards_writes_to_the_leader_and_relays_the_answer(
    leader: tuple[InMemoryHerder, RestServer],
) -> None:
    leader_herder, leader_server = leader
    follower = InMemoryHerder()
    follower.fail_with = NotLeaderError(leader_server.url)
    auth = {"Authorization": "Bearer tok"}
    with RestServer(follower, port=0, auth=AuthConfig(bearer_token="tok")) as server:
        created = call(server.url, "PUT", "/connectors/src/config", SOURCE, headers=auth)
        assert created.status == 201
        assert created.headers["location"].endswith("/connectors/src")
        assert created.body["name"] == "src"
        assert leader_herder.configs["src"]["topic"] == "lines"
        again = call(server.url, "PUT", "/connectors/src/config", SOURCE, headers=auth)
        assert again.status == 200
        restarted = call(
            server.url, "POST", "/connectors/src/restart?includeTasks=true", headers=auth
        )
        assert restarted.status == 202
        assert leader_herder.restarts == [("src", (True, False))]
        assert_error(call(server.url, "GET", "/connectors/nope", headers=auth), 404, "nope")
        deleted = call(server.url, "DELETE", "/connectors/src", headers=auth)
        assert (deleted.status, deleted.body) == (204, None)
        assert leader_herder.configs == {}


def test_a_forwarded_request_is_not_forwarded_again(
    leader: tuple[InMemoryHerder, RestServer],
) -> None:
    _, leader_server = leader
    follower = InMemoryHerder()
    follower.fail_with = NotLeaderError(leader_server.url)
    with RestServer(follower, port=0) as server:
        answer = call(server.url, "PUT", "/connectors/src/config?forward=false", SOURCE)
        assert_error(answer, 409, "rebalance")


def test_forwarding_to_a_leader_that_also_says_not_leader_ends_in_409() -> None:
    first, second = InMemoryHerder(), InMemoryHerder()
    with RestServer(first, port=0) as one, RestServer(second, port=0) as two:
        first.fail_with = NotLeaderError(two.url)
        second.fail_with = NotLeaderError(one.url)
        assert_error(call(one.url, "PUT", "/connectors/src/config", SOURCE), 409, "rebalance")


def test_an_unreachable_leader_is_409(fake: InMemoryHerder) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
        fake.fail_with = NotLeaderError(dead)
        with RestServer(fake, port=0) as server:
            answer = call(server.url, "PUT", "/connectors/src/config", SOURCE)
    assert_error(answer, 409, dead)


def test_a_custom_forwarder_gets_method_url_body_and_credentials(fake: InMemoryHerder) -> None:
    from omconnect.runtime.rest import ForwardRequest
    from omconnect.runtime.rest.client import HttpAnswer

    seen: list[ForwardRequest] = []

    def forward(request: ForwardRequest) -> HttpAnswer:
        seen.append(request)
        return HttpAnswer(202, b"", "application/json")

    fake.fail_with = NotLeaderError("http://leader:8083/")
    with RestServer(fake, port=0, forward=forward) as server:
        answer = call(
            server.url,
            "PUT",
            "/connectors/a%20b/pause?forward=true",
            None,
            {"Authorization": "Bearer x"},
        )
    assert answer.status == 202
    (request,) = seen
    assert request.method == "PUT"
    assert request.url == "http://leader:8083/connectors/a%20b/pause?forward=false"
    assert request.headers["authorization"] == "Bearer x"


def test_leader_url_and_forward_flag() -> None:
    assert leader_url_for("http://l:1/", "/connectors/x", "expand=status&forward=true") == (
        "http://l:1/connectors/x?expand=status&forward=false"
    )
    assert may_forward("") and may_forward("forward=true")
    assert not may_forward("a=1&forward=false")


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


def test_openapi_document_is_served_valid_and_complete(url: str) -> None:
    answer = call(url, "GET", "/openapi.json")
    assert answer.status == 200
    validate(answer.body)
    paths = {path: set(ops) for path, ops in answer.body["paths"].items()}
    assert paths == KAFKA_PATHS
    put_config = answer.body["paths"]["/connectors/{name}/config"]["put"]["responses"]
    assert {"200", "201", "400", "409"} <= set(put_config)
