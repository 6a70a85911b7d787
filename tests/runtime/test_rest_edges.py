"""The REST API over HTTP against `InMemoryHerder`, for what a real worker reaches
only with difficulty: herder errors (rebalance, crash), forwarding to the leader,
auth, and a connector deleted while the list is expanded."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from rest_helpers import InMemoryHerder, assert_error, call

from omconnect.errors import AlreadyExistsError, ConfigError, NotFoundError
from omconnect.runtime.herder import RebalanceInProgressError
from omconnect.runtime.rest import AuthConfig, ForwardRequest, NotLeaderError, RestServer
from omconnect.runtime.rest.client import HttpAnswer

SOURCE = {"connector.class": "file-source", "file": "/tmp/in.txt", "topic": "lines"}


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[InMemoryHerder, RestServer]]:
    """One server for the module (starting one per test costs more than the test)."""
    herder = InMemoryHerder()
    with RestServer(herder, port=0) as running:
        yield herder, running


@pytest.fixture
def fake(shared: tuple[InMemoryHerder, RestServer]) -> InMemoryHerder:
    """The shared server's herder, emptied for this test."""
    shared[0].reset()
    return shared[0]


@pytest.fixture
def url(shared: tuple[InMemoryHerder, RestServer], fake: InMemoryHerder) -> str:
    return shared[1].url


def create(url: str, name: str = "src", **extra: str) -> None:
    answer = call(url, "PUT", f"/connectors/{name}/config", {**SOURCE, **extra})
    assert answer.status in (200, 201), answer


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
        bad = {**SOURCE, "tasks.max": "x", "db.password": "hunter2-secret"}
        assert_error(call(url, "PUT", "/connectors/src/config", bad), 400)
    assert "hunter2-secret" not in caplog.text


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


def test_restart_flags_reach_the_herder(url: str, fake: InMemoryHerder) -> None:
    create(url)
    assert call(url, "POST", "/connectors/src/restart").status == 204
    assert call(url, "POST", "/connectors/src/restart?includeTasks=true").status == 202
    assert call(url, "POST", "/connectors/src/restart?onlyFailed=true").status == 202
    assert call(url, "POST", "/connectors/src/tasks/0/restart").status == 204
    assert fake.restarts == [
        ("src", (False, False)),
        ("src", (True, False)),
        ("src", (False, True)),
        ("src", 0),
    ]


def test_server_binds_loopback_on_a_free_port_and_stop_releases_it() -> None:
    server = RestServer(InMemoryHerder(), port=0)
    assert server.host == "127.0.0.1"
    server.start()
    port = server.port
    assert port not in (0, 8083)
    assert call(server.url, "GET", "/health").status == 200
    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


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
        assert_error(answer, 401, "Credentials")
        assert "Bearer" in answer.headers["www-authenticate"]
    assert_error(call(auth_url, "GET", "/openapi.json"), 401)
    assert_error(call(auth_url, "PUT", "/connectors/x/config", SOURCE), 401)


def test_auth_accepts_the_token_or_a_basic_user(auth_url: str) -> None:
    bearer = {"Authorization": "Bearer tok-123"}
    assert call(auth_url, "GET", "/connectors", headers=bearer).status == 200
    assert (
        call(auth_url, "GET", "/connectors", headers=_basic("alice", "pw:with:colons")).status
        == 200
    )


def test_health_needs_no_credentials(auth_url: str) -> None:
    assert call(auth_url, "GET", "/health").status == 200


def test_no_auth_configured_serves_everyone(url: str) -> None:
    assert call(url, "GET", "/connectors").status == 200


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
        path = "/connectors/src/restart?includeTasks=true"
        assert call(server.url, "POST", path, headers=auth).status == 202
        assert leader_herder.restarts == [("src", (True, False))]
        assert_error(call(server.url, "GET", "/connectors/nope", headers=auth), 404, "nope")
        deleted = call(server.url, "DELETE", "/connectors/src", headers=auth)
        assert (deleted.status, deleted.body) == (204, None)
        assert leader_herder.configs == {}


def test_a_forwarded_request_is_not_forwarded_again(
    leader: tuple[InMemoryHerder, RestServer],
) -> None:
    follower = InMemoryHerder()
    follower.fail_with = NotLeaderError(leader[1].url)
    with RestServer(follower, port=0) as server:
        answer = call(server.url, "PUT", "/connectors/src/config?forward=false", SOURCE)
        assert_error(answer, 409, "rebalance")


def test_forwarding_to_a_leader_that_also_says_not_leader_ends_in_409() -> None:
    first, second = InMemoryHerder(), InMemoryHerder()
    with RestServer(first, port=0) as one, RestServer(second, port=0) as two:
        first.fail_with = NotLeaderError(two.url)
        second.fail_with = NotLeaderError(one.url)
        assert_error(call(one.url, "PUT", "/connectors/src/config", SOURCE), 409, "rebalance")


def test_an_unreachable_leader_is_409(fake: InMemoryHerder, url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
        fake.fail_with = NotLeaderError(dead)
        answer = call(url, "PUT", "/connectors/src/config", SOURCE)
    assert_error(answer, 409, dead)


def test_a_custom_forwarder_gets_method_url_body_and_credentials() -> None:
    seen: list[ForwardRequest] = []

    def forward(request: ForwardRequest) -> HttpAnswer:
        seen.append(request)
        return HttpAnswer(202, b"", "application/json")

    herder = InMemoryHerder()
    herder.fail_with = NotLeaderError("http://leader:8083/")
    with RestServer(herder, port=0, forward=forward) as server:
        headers = {"Authorization": "Bearer x"}
        answer = call(server.url, "PUT", "/connectors/a%20b/pause?forward=true", None, headers)
    assert answer.status == 202
    (request,) = seen
    assert request.method == "PUT"
    assert request.url == "http://leader:8083/connectors/a%20b/pause?forward=false"
    assert request.headers["authorization"] == "Bearer x"
