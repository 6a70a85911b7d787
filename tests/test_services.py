"""The service fixtures start real, usable servers."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from omconnect.testing.databases import MariaDBServer, PostgresServer
from omconnect.testing.services import (
    NatsServer,
    PrometheusServer,
    RedisServer,
    ServiceNotInstalled,
    ServiceStartError,
    find_binary,
    free_port,
    start_server,
)


def test_redis_set_get(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("test_services:key", b"value")
        assert client.get("test_services:key") == b"value"
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


def test_nats_jetstream_round_trip(nats_server: NatsServer) -> None:
    nats = pytest.importorskip("nats")

    async def round_trip() -> list[bytes]:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="TEST_SERVICES", subjects=["test_services.>"])
            for i in range(3):
                ack = await js.publish("test_services.a", f"m{i}".encode())
                assert ack.stream == "TEST_SERVICES"
            sub = await js.pull_subscribe("test_services.>", durable="reader")
            msgs = await sub.fetch(3, timeout=5)
            for msg in msgs:
                await msg.ack()
            return [msg.data for msg in msgs]
        finally:
            await nc.close()

    assert asyncio.run(round_trip()) == [b"m0", b"m1", b"m2"]


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE omconnect_test_up gauge\nomconnect_test_up 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_prometheus_ready_and_scrapes(
    prometheus_server: Callable[[Sequence[str]], PrometheusServer],
) -> None:
    exporter = HTTPServer(("127.0.0.1", 0), _MetricsHandler)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    try:
        target = f"127.0.0.1:{exporter.server_address[1]}"
        prom = prometheus_server([target])
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 20
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not result:
            result = prom.query("omconnect_test_up")
            time.sleep(0.2)
        assert result, "prometheus did not scrape the target within 20 s"
        assert result[0]["value"][1] == "1"
    finally:
        exporter.shutdown()
        exporter.server_close()


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_binary_names_install_hint() -> None:
    with pytest.raises(ServiceNotInstalled, match="apt-get install no-such-server"):
        find_binary("no-such-server-omconnect", "apt-get install no-such-server")


def test_server_that_exits_reports_its_output(tmp_path: Path) -> None:
    def argv(port: int) -> list[str]:
        return ["sh", "-c", f"echo 'cannot bind {port}' >&2; exit 3"]

    with pytest.raises(ServiceStartError, match=r"exited with code 3[\s\S]*cannot bind"):
        start_server("failing", argv, tmp_path, timeout=5)


def test_mariadb_has_binlog_for_cdc(mariadb_server: MariaDBServer) -> None:
    connection = mariadb_server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT @@log_bin, @@binlog_format, @@binlog_row_image,"
                " @@binlog_row_metadata, @@character_set_server"
            )
            assert cursor.fetchone() == (1, "ROW", "FULL", "FULL", "utf8mb4")
    finally:
        connection.close()


def test_mariadb_restart_keeps_data_and_port(
    mariadb_factory: Callable[..., MariaDBServer],
) -> None:
    server = mariadb_factory(options={"binlog-row-metadata": "MINIMAL"})
    port = server.port
    server.execute("CREATE DATABASE t", "CREATE TABLE t.a (id INT PRIMARY KEY)")
    server.execute("INSERT INTO t.a VALUES (1)")
    server.kill()
    server.restart()
    assert server.port == port
    connection = server.connect("t")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, @@binlog_row_metadata FROM a")
            assert cursor.fetchall() == ((1, "MINIMAL"),)
    finally:
        connection.close()


def test_postgres_round_trip(postgres_server: PostgresServer) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_server.url())
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE test_services (v text)"))
            connection.execute(sqlalchemy.text("INSERT INTO test_services VALUES ('😀')"))
            value = connection.execute(sqlalchemy.text("SELECT v FROM test_services")).scalar()
        assert value == "😀"
    finally:
        engine.dispose()
