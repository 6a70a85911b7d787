"""Shared fixtures: private real servers on free loopback ports.

`redis_server` and `nats_server` are session-scoped: tests share one server each, so a
test must use its own key/stream names. `prometheus_server` is a factory, one server per
call, stopped at the end of the test. A missing server binary fails the test in CI
(with the install command) and skips it elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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


def _not_installed(error: ServiceNotInstalled) -> None:
    """Fail in CI (where .ci/run must have installed it), skip on a developer machine."""
    message = f"{error.binary} is not installed: {error.install_hint}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (no persistence) shared by the whole session."""
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except ServiceNotInstalled as error:
        _not_installed(error)
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A private nats-server with JetStream, shared by the whole session."""
    try:
        server = start_nats(tmp_path_factory.mktemp("nats"))
    except ServiceNotInstalled as error:
        _not_installed(error)
        raise
    try:
        yield server
    finally:
        server.stop()


StartPrometheus = Callable[[Sequence[str]], PrometheusServer]


@pytest.fixture
def prometheus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartPrometheus]:
    """Factory: `prometheus_server(["127.0.0.1:8000"])` starts a Prometheus scraping those
    targets every second and returns it once ready; all are stopped after the test."""
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str]) -> PrometheusServer:
        try:
            server = start_prometheus(tmp_path_factory.mktemp("prometheus"), targets)
        except ServiceNotInstalled as error:
            _not_installed(error)
            raise
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A private mariadbd with binlog for CDC (ROW, FULL image, FULL metadata), shared by
    the session: a test uses its own database names. Tests that restart, kill or
    reconfigure the server use `mariadb_factory` instead."""
    try:
        server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    except ServiceNotInstalled as error:
        _not_installed(error)
        raise
    try:
        yield server
    finally:
        server.stop()


StartMariaDB = Callable[..., MariaDBServer]


@pytest.fixture
def mariadb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartMariaDB]:
    """Factory: `mariadb_factory(options={...})` starts a fresh private mariadbd of the
    test's own (options override the CDC settings); all are stopped after the test."""
    started: list[MariaDBServer] = []

    def start(**kwargs: Any) -> MariaDBServer:
        try:
            server = start_mariadb(tmp_path_factory.mktemp("mariadb"), **kwargs)
        except ServiceNotInstalled as error:
            _not_installed(error)
            raise
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL shared by the session: a test uses its own tables/schemas."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except ServiceNotInstalled as error:
        _not_installed(error)
        raise
    try:
        yield server
    finally:
        server.stop()
