"""The broker's Prometheus metrics, scraped by a real Prometheus server."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from omconnect.access_point import MessagingAccessPoint
from omconnect.message import Message
from omconnect.testing.broker_process import start_broker
from omconnect.testing.services import PrometheusServer, free_port


def _value(prometheus: PrometheusServer, expr: str, timeout_s: float = 20.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        result = prometheus.query(expr)
        if result:
            return float(result[0]["value"][1])
        if time.monotonic() > deadline:
            raise AssertionError(f"prometheus has no value for {expr}")
        time.sleep(0.3)


def test_prometheus_scrapes_traffic_and_lag(
    tmp_path: Path, prometheus_server: Callable[[Sequence[str]], PrometheusServer]
) -> None:
    metrics_port = free_port()
    broker = start_broker(tmp_path, extra_args=("--metrics-port", str(metrics_port)))
    try:
        url = f"oms:embedded://127.0.0.1:{broker.port}/shop"
        with MessagingAccessPoint.open(url) as ap:
            ap.resources.create_queue("orders", 1)
            ap.create_producer().send_batch(
                [Message(b"x" * 100, destination="orders") for _ in range(10)]
            )
            consumer = ap.create_pull_consumer("billing", ["orders"], start_from="earliest")
            taken: list[Message] = []
            while len(taken) < 4:
                taken.extend(consumer.batch_receive(4 - len(taken), timeout_ms=500))
            for message in taken:
                consumer.ack(message)
            consumer.close()
        prometheus = prometheus_server([f"127.0.0.1:{metrics_port}"])
        messages_in = 'omconnect_broker_messages_in_total{namespace="shop",queue="orders"}'
        assert _value(prometheus, messages_in) == 10
        lag = 'omconnect_broker_consumer_lag_messages{group="billing",queue="orders"}'
        assert _value(prometheus, lag) == 6
        assert _value(prometheus, "omconnect_broker_store_size_bytes") > 1000
    finally:
        broker.stop()
