"""The embedded driver passes the driver conformance suite in-process and over TCP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.broker.broker import Broker
from omconnect.broker.config import BrokerConfig
from omconnect.broker.server import BrokerServer, ServerThread
from omconnect.testing.conformance import DriverConformance


class TestEmbeddedInProcess(DriverConformance):
    @pytest.fixture
    def access_point_url(self, tmp_path: Path) -> str:
        return f"oms:embedded://local/ns?data_dir={tmp_path / 'broker'}"


@pytest.fixture(scope="module")
def tcp_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    config = BrokerConfig(
        data_dir=tmp_path_factory.mktemp("tcp-broker"), transaction_check_interval_ms=500
    )
    broker = Broker(config)
    server = ServerThread(BrokerServer(broker, host="127.0.0.1", port=0))
    server.start()
    try:
        yield server.port
    finally:
        server.stop()
        broker.close()


class TestEmbeddedOverTcp(DriverConformance):
    @pytest.fixture
    def access_point_url(self, tcp_broker: int) -> str:
        return f"oms:embedded://127.0.0.1:{tcp_broker}/ns"
