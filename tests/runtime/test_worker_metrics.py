"""Worker metrics: the file pipeline runs in-process (standalone, and distributed with
one and two workers) and a real Prometheus scrapes the workers; the counts it stores
are what the pipeline did. The pure parts (latency buckets, commit windows,
rebalance timing) are tested with a fake clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from omconnect.message import Message
from omconnect.runtime.distributed_main import DistributedProcess
from omconnect.runtime.metrics import (
    LATENCY_BUCKETS_MS,
    CommitStats,
    LatencyHistogram,
    RebalanceStats,
)
from omconnect.runtime.standalone import Standalone
from omconnect.testing.services import PrometheusServer, free_port

StartPrometheus = Callable[[Sequence[str]], PrometheusServer]
WAIT_S = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the pipeline, scraped -----------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def start_pipeline(
    tmp_path: Path, metrics_port: int, source_extra: dict[str, str], sink_extra: dict[str, str]
) -> Standalone:
    """The examples/file-pipeline configs with absolute paths, a fast commit interval
    and ``metrics.port``."""
    worker = write_json(
        tmp_path / "worker.json",
        {
            "data.dir": str(tmp_path / "data"),
            "value.converter.schemas.enable": "false",
            "offset.flush.interval.ms": "200",
            "metrics.port": str(metrics_port),
        },
    )
    source = {"connector.class": "file-source", "file": str(tmp_path / "input.txt")}
    sink = {"connector.class": "file-sink", "file": str(tmp_path / "output.txt")}
    source_path = write_json(
        tmp_path / "file-source.json",
        {"name": "lines-in", "config": {**source, "topic": "lines", **source_extra}},
    )
    sink_path = write_json(
        tmp_path / "file-sink.json",
        {"name": "lines-out", "config": {**sink, "topics": "lines", **sink_extra}},
    )
    return Standalone(worker, [source_path, sink_path])


def wait_for_lines(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + WAIT_S
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"{path.name} has {len(lines)} lines, expected {count}")


def scraped(prometheus: PrometheusServer, expr: str, expected: float) -> float:
    """The value Prometheus has for ``expr`` once it equals ``expected`` (scrapes lag
    behind the pipeline), else the last value seen, for the caller's assert."""
    deadline = time.monotonic() + WAIT_S
    value = float("nan")
    while time.monotonic() < deadline:
        result = prometheus.query(expr)
        if result:
            value = float(result[0]["value"][1])
            if value == expected:
                return value
        time.sleep(0.3)
    return value


def test_prometheus_sees_what_the_file_pipeline_did(
    tmp_path: Path, prometheus_server: StartPrometheus
) -> None:
    port = free_port()
    (tmp_path / "input.txt").write_text("".join(f"line {i}\n" for i in range(500)))
    standalone = start_pipeline(tmp_path, port, {}, {})
    try:
        if standalone.metrics_server is None or standalone.metrics_server.port != port:
            raise AssertionError("metrics.port did not start the metrics server")
        assert len(wait_for_lines(tmp_path / "output.txt", 500)) == 500
        prometheus = prometheus_server([f"127.0.0.1:{port}"])
        source = '{connector="lines-in",task="0"}'
        sink = '{connector="lines-out",task="0"}'

        def metric(name: str, labels: str, expected: float) -> float:
            return scraped(prometheus, f"omconnect_connect_{name}{labels}", expected)

        assert metric("source_record_poll_total", source, 500) == 500
        assert metric("source_record_write_total", source, 500) == 500
        assert metric("source_record_active_count", source, 0) == 0
        assert metric("sink_record_read_total", sink, 500) == 500
        assert metric("sink_record_send_total", sink, 500) == 500
        assert metric("sink_record_active_count", sink, 0) == 0
        assert metric("sink_record_lag_max", sink, 0) == 0
        latency = '{connector="lines-out"}'
        assert metric("end_to_end_latency_seconds_count", latency, 500) == 500
        running = 'sum(omconnect_connect_task_count{state="RUNNING"})'
        assert scraped(prometheus, running, 2) == 2
        assert metric("task_count", '{connector="lines-in",state="FAILED"}', 0) == 0
        assert metric("connector_count", '{state="RUNNING"}', 2) == 2
        assert metric("completed_rebalances_total", "", 0) == 0
        assert metric("deadletterqueue_produce_requests_total", sink, 0) == 0
        commits = "omconnect_connect_offset_commit_completion_total"
        assert scraped(prometheus, f"count({commits} > 0)", 2) == 2  # both tasks committed

        # Lag: with the sink paused, new lines pile up uncommitted in the queue.
        standalone.worker.pause("lines-out")
        time.sleep(1.0)  # let a fetch that began before the pause finish
        with (tmp_path / "input.txt").open("a") as f:
            f.writelines(f"line {i}\n" for i in range(500, 700))
        assert metric("source_record_write_total", source, 700) == 700
        assert metric("sink_record_read_total", sink, 500) == 500
        assert metric("sink_record_lag_max", sink, 200) == 200
        assert metric("task_count", '{connector="lines-out",state="PAUSED"}', 1) == 1
        standalone.worker.resume("lines-out")
        assert len(wait_for_lines(tmp_path / "output.txt", 700)) == 700
        assert metric("sink_record_lag_max", sink, 0) == 0
        assert metric("sink_record_send_total", sink, 700) == 700
    finally:
        standalone.stop()


def test_converter_failures_show_in_the_dead_letter_count(
    tmp_path: Path, prometheus_server: StartPrometheus
) -> None:
    """The source writes lines as plain strings; the sink reads JSON, so every line
    that is not a JSON value fails its value converter and goes to the DLQ."""
    port = free_port()
    lines = [str(i) if i % 4 else f"not json {i}" for i in range(200)]  # 50 bad
    (tmp_path / "input.txt").write_text("".join(line + "\n" for line in lines))
    tolerant = {
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": "lines-dlq",
        "errors.deadletterqueue.context.headers.enable": "true",
    }
    standalone = start_pipeline(tmp_path, port, {"value.converter": "string"}, tolerant)
    try:
        assert wait_for_lines(tmp_path / "output.txt", 150) == [x for x in lines if x.isdigit()]
        prometheus = prometheus_server([f"127.0.0.1:{port}"])
        sink = '{connector="lines-out",task="0"}'

        def metric(name: str, expected: float) -> float:
            return scraped(prometheus, f"omconnect_connect_{name}{sink}", expected)

        assert metric("deadletterqueue_produce_requests_total", 50) == 50
        assert metric("deadletterqueue_produce_failures_total", 0) == 0
        assert metric("records_skipped_total", 50) == 50
        assert metric("record_errors_total", 50) == 50
        assert metric("sink_record_read_total", 200) == 200
        assert metric("sink_record_send_total", 150) == 150
        running = '{connector="lines-out",state="RUNNING"}'
        assert scraped(prometheus, f"omconnect_connect_task_count{running}", 1) == 1
        # The count is what really reached the dead-letter queue.
        dlq = standalone.access_point.create_pull_consumer(
            "check", ["lines-dlq"], start_from="earliest"
        )
        letters: list[Message] = []
        deadline = time.monotonic() + WAIT_S
        while len(letters) < 50 and time.monotonic() < deadline:
            letters.extend(dlq.batch_receive(100, timeout_ms=500))
        assert sorted(m.body.decode() for m in letters) == sorted(
            x for x in lines if not x.isdigit()
        )
    finally:
        standalone.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_distributed_workers_each_report_their_own_share(
    tmp_path: Path, prometheus_server: StartPrometheus, workers: int
) -> None:
    """Summed over the workers, the counts are the pipeline's; every worker counted
    the rebalance that gave it its tasks."""
    ports = [free_port() for _ in range(workers)]
    processes: list[DistributedProcess] = []
    try:
        for number, port in enumerate(ports):
            config = {
                "access.point.url": f"oms:embedded://local/dist?data_dir={tmp_path / 'data'}",
                "worker.id": f"w{number}",
                "rest.port": "0",
                "metrics.port": str(port),
                "session.timeout.ms": "1000",
                "heartbeat.interval.ms": "200",
                "offset.flush.interval.ms": "200",
                "value.converter.schemas.enable": "false",
            }
            processes.append(DistributedProcess(config))
        (tmp_path / "input.txt").write_text("".join(f"line {i}\n" for i in range(300)))
        admin = processes[0].herder
        source = {"connector.class": "file-source", "file": str(tmp_path / "input.txt")}
        admin.put_connector_config("lines-in", {**source, "topic": "lines"})
        sink = {"connector.class": "file-sink", "file": str(tmp_path / "output.txt")}
        admin.put_connector_config("lines-out", {**sink, "topics": "lines"})
        assert len(wait_for_lines(tmp_path / "output.txt", 300)) == 300
        prometheus = prometheus_server([f"127.0.0.1:{port}" for port in ports])

        def total(expr: str, expected: float) -> float:
            return scraped(prometheus, f"sum({expr})", expected)

        assert total("omconnect_connect_source_record_write_total", 300) == 300
        assert total("omconnect_connect_sink_record_send_total", 300) == 300
        assert total('omconnect_connect_task_count{state="RUNNING"}', 2) == 2
        assert total('omconnect_connect_connector_count{state="RUNNING"}', 2) == 2
        rebalanced = "count(omconnect_connect_completed_rebalances_total > 0)"
        assert scraped(prometheus, rebalanced, workers) == workers
        assert scraped(prometheus, "sum(omconnect_connect_rebalancing)", 0) == 0
    finally:
        for process in reversed(processes):
            process.stop()


# -- the pure parts ----------------------------------------------------------------


def test_latency_histogram_buckets_are_upper_bounds() -> None:
    histogram = LatencyHistogram()
    for latency in (0, 1, 2, 3, LATENCY_BUCKETS_MS[-1], LATENCY_BUCKETS_MS[-1] + 1, -5):
        histogram.observe(latency)
    counts, total = histogram.snapshot()
    assert counts[0] == 3  # 0, 1 and the negative (clock skew) one: le 1 ms
    assert counts[1] == 1  # 2: le 2 ms
    assert counts[2] == 1  # 3: le 5 ms
    assert counts[-2] == 1 and counts[-1] == 1  # the last bound, and +Inf
    assert sum(counts) == 7
    assert total == 0 + 1 + 2 + 3 + 2 * LATENCY_BUCKETS_MS[-1] + 1


def test_latency_from_born_timestamps_skips_unknown_ones() -> None:
    histogram = LatencyHistogram()
    histogram.observe_born([1000, 0, 990, 1005], now_ms=1010)
    counts, total = histogram.snapshot()
    assert sum(counts) == 3
    assert total == 10 + 20 + 5


def test_commit_stats_average_and_max_cover_the_window_only() -> None:
    clock = FakeClock()
    stats = CommitStats(window_s=60, clock=clock)
    assert stats.snapshot().avg_ms == 0 and stats.snapshot().max_ms == 0
    stats.record(0.030)
    clock.now += 30
    stats.record(0.010)
    stats.failed()
    snap = stats.snapshot()
    assert (snap.count, snap.failures) == (2, 1)
    assert round(snap.avg_ms, 6) == 20 and round(snap.max_ms, 6) == 30
    clock.now += 31  # the 30 ms commit left the window
    snap = stats.snapshot()
    assert round(snap.avg_ms, 6) == 10 and round(snap.max_ms, 6) == 10
    assert snap.count == 2 and round(snap.total_seconds, 6) == 0.04  # totals stay


def test_rebalance_stats_time_begin_to_end() -> None:
    clock = FakeClock()
    stats = RebalanceStats(clock)
    assert stats.snapshot() == (0, 0.0, 0.0, False, -1.0)
    stats.end()  # no begin: nothing happened
    stats.begin()
    clock.now += 2
    stats.begin()  # still the same rebalance
    assert stats.snapshot()[3] is True
    clock.now += 1
    stats.end()
    stats.record(0.5)
    clock.now += 4
    count, total, longest, rebalancing, since = stats.snapshot()
    assert (count, total, longest, rebalancing, since) == (2, 3.5, 3.0, False, 4.0)
