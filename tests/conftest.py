"""Shared fixtures: private real servers on free loopback ports.

`redis_server` and `nats_server` are session-scoped: tests share one server each, so a
test must use its own key/stream names. `prometheus_server` is a factory, one server per
call, stopped at the end of the test. A missing server binary fails the test in CI
(with the install command) and skips it elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import pytest

from omconnect.testing.databases import (
    MariaDBServer,
    PostgresServer,
    start_mariadb,
    start_postgres,
)
from omconnect.testing.services import (
    NatsServer,
    PrometheusServer,
    RedisServer,
    ServiceNotInstalled,
    start_nats,
    start_prometheus,
    start_redis,
)


class _Server(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


def _start(start: Callable[[], S]) -> S:
    """``start()``, except that a missing server binary fails the test in CI (where
    .ci/run must have installed it) and skips it on a developer machine."""
    try:
        return start()
    except ServiceNotInstalled as error:
        message = f"{error.binary} is not installed: {error.install_hint}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _one(start: Callable[[], S]) -> Iterator[S]:
    """Body of a fixture of one server, stopped at the end."""
    server = _start(start)
    try:
        yield server
    finally:
        server.stop()


def _many(start: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """Body of a factory fixture: each call starts a server; all stop at the end."""
    started: list[S] = []

    def make(*args: Any, **kwargs: Any) -> S:
        server = _start(lambda: start(*args, **kwargs))
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (no persistence) shared by the whole session."""
    yield from _one(lambda: start_redis(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A private nats-server with JetStream, shared by the whole session."""
    yield from _one(lambda: start_nats(tmp_path_factory.mktemp("nats")))


StartPrometheus = Callable[[Sequence[str]], PrometheusServer]


@pytest.fixture
def prometheus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartPrometheus]:
    """Factory: `prometheus_server(["127.0.0.1:8000"])` starts a Prometheus scraping those
    targets every second and returns it once ready; all are stopped after the test."""
    yield from _many(
        lambda targets: start_prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    )


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A private mariadbd with binlog for CDC (ROW, FULL image, FULL metadata), shared by
    the session: a test uses its own database names. Tests that restart, kill or
    reconfigure the server use `mariadb_factory` instead."""
    yield from _one(lambda: start_mariadb(tmp_path_factory.mktemp("mariadb")))


StartMariaDB = Callable[..., MariaDBServer]


@pytest.fixture
def mariadb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartMariaDB]:
    """Factory: `mariadb_factory(options={...})` starts a fresh private mariadbd of the
    test's own (options override the CDC settings); all are stopped after the test."""
    yield from _many(lambda **kw: start_mariadb(tmp_path_factory.mktemp("mariadb"), **kw))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL shared by the session: a test uses its own tables/schemas."""
    yield from _one(lambda: start_postgres(tmp_path_factory.mktemp("postgres")))
