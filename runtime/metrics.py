"""Prometheus metrics of one worker, in a registry of its own (never the global one).

Task runners keep plain counters on their hot path (ints bumped by one thread, a
`LatencyHistogram` of fixed buckets); `WorkerMetrics` reads them, the tasks' error
counts, the status store and the consumer groups' offsets when Prometheus scrapes.
Names are Kafka Connect's (``source-record-poll-total`` becomes
``omconnect_connect_source_record_poll_total``), labelled ``connector`` and ``task``:

==========================================================  ================================
source_record_poll_total / source_record_write_total        records polled / acked by broker
source_record_active_count                                  sent, not acknowledged yet
sink_record_read_total / sink_record_send_total             records read / handed to ``put``
sink_record_active_count                                    read, offsets not committed yet
sink_record_lag_max                                         max over the task's partitions of
                                                            end offset - committed offset
offset_commit_completion_total / _failure_total / _seconds  commits done, failed, time spent
offset_commit_avg_time_ms / offset_commit_max_time_ms       over the last `WINDOW_S` seconds
record_failures_total ... deadletterqueue_produce_*_total   the task's `ErrorCounts`
end_to_end_latency_seconds (histogram, ``connector`` only)  sink: put time - bornTimestamp
connector_count{state} / task_count{connector,state}        statuses this worker reported
completed_rebalances_total, rebalance_* , rebalancing       the worker's `RebalanceStats`
==========================================================  ================================

Rates (Kafka's ``*-rate``) are what Prometheus computes from the ``*_total`` series.
A task's counters live in its runner, so they start again from 0 when the task is
restarted or moves to another worker (Prometheus treats that as a counter reset).
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from omconnect.connect.connector import TaskProgress, TopicPartition
from omconnect.errors import OmConnectError
from omconnect.runtime.error_handling import ErrorCounts
from omconnect.runtime.stores import State

if TYPE_CHECKING:
    from omconnect.runtime.worker import Worker

log = logging.getLogger(__name__)

PREFIX = "omconnect_connect_"
WINDOW_S = 60.0  # Kafka's default: two 30 s samples
# Upper bounds in ms of the end-to-end latency buckets (exported in seconds).
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
                      60_000, 300_000)  # fmt: skip


class LatencyHistogram:
    """Counts of millisecond latencies per `LATENCY_BUCKETS_MS` bucket (not cumulative;
    the last slot is +Inf). `observe` is cheap: a bisect and two int additions. One
    thread observes; a reader gets a consistent enough copy through `snapshot`."""

    __slots__ = ("counts", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.sum_ms = 0

    def observe(self, latency_ms: int) -> None:
        """Count one latency; a negative one (clock skew) counts as 0."""
        latency_ms = max(0, latency_ms)
        self.counts[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        self.sum_ms += latency_ms

    def observe_born(self, born_timestamps_ms: Iterable[int], now_ms: int) -> None:
        """Count ``now_ms - born`` for each non-zero born timestamp (0: unknown)."""
        for born in born_timestamps_ms:
            if born:
                self.observe(now_ms - born)

    def snapshot(self) -> tuple[list[int], int]:
        """(per-bucket counts, sum in ms), copied."""
        return list(self.counts), self.sum_ms


@dataclass(frozen=True, slots=True)
class TimingSnapshot:
    """Totals since start, and the average and maximum over the recent window."""

    count: int
    failures: int
    total_seconds: float
    avg_ms: float
    max_ms: float


class CommitStats:
    """Durations of offset commits (or rebalances): totals plus a sliding window of
    `WINDOW_S` seconds for Kafka's ``*-avg-time-ms`` / ``*-max-time-ms``. Thread-safe;
    meant for events that happen at most a few times a second."""

    def __init__(
        self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float]] = deque()  # (when, ms)
        self._count = 0
        self._failures = 0
        self._total_s = 0.0

    def record(self, seconds: float) -> None:
        """One completed event that took ``seconds``."""
        now = self._clock()
        with self._lock:
            self._count += 1
            self._total_s += seconds
            self._recent.append((now, seconds * 1000))
            self._prune(now)

    def failed(self) -> None:
        """One event that failed (not timed)."""
        with self._lock:
            self._failures += 1

    def snapshot(self) -> TimingSnapshot:
        """The counts, total time, and the window's average and max (0 when empty)."""
        with self._lock:
            self._prune(self._clock())
            recent = [ms for _, ms in self._recent]
            return TimingSnapshot(
                self._count,
                self._failures,
                self._total_s,
                sum(recent) / len(recent) if recent else 0.0,
                max(recent, default=0.0),
            )

    def _prune(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self._window_s:
            self._recent.popleft()


class RebalanceStats:
    """The worker's rebalances, for the herder to report: `begin` when one starts,
    `end` when its assignment runs (or `record` a measured duration). Standalone
    never rebalances, so everything stays 0. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last_end: float | None = None
        self._count = 0
        self._total_s = 0.0
        self._max_s = 0.0

    def begin(self) -> None:
        """A rebalance started (a second `begin` before `end` keeps the first start)."""
        with self._lock:
            if self._started is None:
                self._started = self._clock()

    def end(self) -> None:
        """The rebalance begun last completed; does nothing without a `begin`."""
        with self._lock:
            started, self._started = self._started, None
        if started is not None:
            self.record(self._clock() - started)

    def record(self, seconds: float) -> None:
        """One completed rebalance that took ``seconds``."""
        with self._lock:
            self._count += 1
            self._total_s += seconds
            self._max_s = max(self._max_s, seconds)
            self._last_end = self._clock()

    def snapshot(self) -> tuple[int, float, float, bool, float]:
        """(completed, total seconds, max seconds, rebalancing now, seconds since the
        last one ended or -1)."""
        with self._lock:
            since = -1.0 if self._last_end is None else self._clock() - self._last_end
            return self._count, self._total_s, self._max_s, self._started is not None, since


@runtime_checkable
class SourceRunnerStats(Protocol):
    """What a source task runner exposes to metrics."""

    records_polled: int
    records_written: int
    commit_stats: CommitStats

    @property
    def progress(self) -> TaskProgress | None: ...

    @property
    def error_counts(self) -> ErrorCounts: ...
    def active_records(self) -> int: ...


@runtime_checkable
class SinkRunnerStats(Protocol):
    """What a sink task runner exposes to metrics."""

    records_read: int
    records_sent: int
    commit_stats: CommitStats
    latency: LatencyHistogram
    owned: set[TopicPartition]

    @property
    def error_counts(self) -> ErrorCounts: ...
    def active_records(self) -> int: ...


def _copy(items: set[TopicPartition]) -> list[TopicPartition]:
    """A copy of a set another thread may be changing (retried if it changed)."""
    for _ in range(10):
        try:
            return list(items)
        except RuntimeError:  # "Set changed size during iteration"
            continue
    return []


_ERROR_COUNTERS = (  # (metric name, ErrorCounts field, help): Kafka's task-error-metrics
    ("record_failures", "record_failures", "Record processing attempts that failed."),
    ("record_errors", "record_errors", "Record operations that failed for good."),
    ("records_skipped", "records_skipped", "Records skipped by errors.tolerance=all."),
    ("retries", "retries", "Retries of failed operations."),
    ("errors_logged", "errors_logged", "Errors written to the log."),
    ("deadletterqueue_produce_requests", "dead_letter_requests", "Records sent to the DLQ."),
    ("deadletterqueue_produce_failures", "dead_letter_failures", "Failed sends to the DLQ."),
)


class _Families:
    """The metric families of one scrape, by short name."""

    def __init__(self) -> None:
        self.all: list[Metric] = []

    def counter(self, name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(PREFIX + name, doc, labels=labels)
        self.all.append(family)
        return family

    def gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(PREFIX + name, doc, labels=labels)
        self.all.append(family)
        return family


class _WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        self._collect_tasks(out)
        self._collect_statuses(out)
        self._collect_rebalances(out)
        yield from out.all

    def _collect_tasks(self, out: _Families) -> None:
        task = ["connector", "task"]
        poll = out.counter("source_record_poll", "Records polled from source tasks.", task)
        write = out.counter("source_record_write", "Source records the broker stored.", task)
        source_active = out.gauge(
            "source_record_active_count", "Source records sent, not acknowledged.", task
        )
        read = out.counter("sink_record_read", "Records read for sink tasks.", task)
        send = out.counter("sink_record_send", "Records handed to SinkTask.put.", task)
        sink_active = out.gauge(
            "sink_record_active_count", "Sink records read, offsets not committed.", task
        )
        lag = out.gauge(
            "sink_record_lag_max",
            "Largest end - committed offset over the task's partitions.",
            task,
        )
        commits = out.counter("offset_commit_completion", "Offset commits completed.", task)
        commit_failures = out.counter("offset_commit_failure", "Offset commits that failed.", task)
        commit_seconds = out.counter("offset_commit_seconds", "Time spent committing.", task)
        commit_avg = out.gauge(
            "offset_commit_avg_time_ms", f"Average commit time, last {WINDOW_S:.0f} s.", task
        )
        commit_max = out.gauge(
            "offset_commit_max_time_ms", f"Longest commit time, last {WINDOW_S:.0f} s.", task
        )
        phase = [*task, "phase"]
        progress_done = out.gauge(
            "source_task_progress_done", "Units done in the task's current long phase.", phase
        )
        progress_total = out.gauge(
            "source_task_progress_total",
            "Estimated units of the task's current long phase (when known).",
            phase,
        )
        errors = [(out.counter(name, doc, task), field) for name, field, doc in _ERROR_COUNTERS]
        latency: dict[str, tuple[list[int], int]] = {}
        for task_id in self._worker.tasks():
            runner = self._worker.runner(task_id.connector, task_id.task)
            labels = [task_id.connector, str(task_id.task)]
            if isinstance(runner, SourceRunnerStats):
                poll.add_metric(labels, runner.records_polled)
                write.add_metric(labels, runner.records_written)
                source_active.add_metric(labels, runner.active_records())
                progress = runner.progress
                if progress is not None:
                    progress_done.add_metric([*labels, progress.phase], progress.done)
                    if progress.total is not None:
                        progress_total.add_metric([*labels, progress.phase], progress.total)
            elif isinstance(runner, SinkRunnerStats):
                read.add_metric(labels, runner.records_read)
                send.add_metric(labels, runner.records_sent)
                sink_active.add_metric(labels, runner.active_records())
                lag.add_metric(labels, self._lag_max(task_id.connector, _copy(runner.owned)))
                _merge(latency, task_id.connector, runner.latency)
            else:
                continue
            timing = runner.commit_stats.snapshot()
            commits.add_metric(labels, timing.count)
            commit_failures.add_metric(labels, timing.failures)
            commit_seconds.add_metric(labels, timing.total_seconds)
            commit_avg.add_metric(labels, timing.avg_ms)
            commit_max.add_metric(labels, timing.max_ms)
            counts = runner.error_counts
            for family, field in errors:
                family.add_metric(labels, getattr(counts, field))
        histogram = HistogramMetricFamily(
            PREFIX + "end_to_end_latency_seconds",
            "Sink: time from a message's bornTimestamp until SinkTask.put returned.",
            labels=["connector"],
        )
        for connector, (counts, sum_ms) in sorted(latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS_MS, None), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound is None else str(bound / 1000), cumulative))
            histogram.add_metric([connector], buckets, sum_ms / 1000)
        out.all.append(histogram)

    def _lag_max(self, connector: str, partitions: list[TopicPartition]) -> int:
        """Max over ``partitions`` of end - committed offset (end - first offset when
        nothing is committed yet); 0 if the backend cannot be asked right now."""
        ap = self._worker.access_point
        group = f"connect-{connector}"
        worst = 0
        try:
            committed_by_queue: dict[str, dict[int, int]] = {}
            for tp in partitions:
                if tp.topic not in committed_by_queue:
                    committed_by_queue[tp.topic] = ap.backend.committed_offsets(
                        ap.namespace, group, tp.topic
                    )
                first, end = ap.backend.offset_range(ap.namespace, tp.topic, tp.partition)
                committed = committed_by_queue[tp.topic].get(tp.partition, first)
                worst = max(worst, end - max(committed, first))
        except OmConnectError as exc:  # a scrape must not fail because the broker is away
            log.debug("sink lag of %s unavailable: %s", connector, exc)
        return worst

    def _collect_statuses(self, out: _Families) -> None:
        worker = self._worker
        statuses = worker.stores.statuses
        names = set(worker.connectors()) | {t.connector for t in worker.tasks()}
        names |= {record.name for record in worker.stores.configs.list()}
        connector_counts = dict.fromkeys(State, 0)
        task_family = out.gauge(
            "task_count", "Tasks this worker reports, by state.", ["connector", "state"]
        )
        for name in sorted(names):
            status = statuses.get_connector(name)
            if status is not None and status.worker_id == worker.worker_id:
                connector_counts[status.state] += 1
            task_counts = dict.fromkeys(State, 0)
            for task_status in statuses.list_tasks(name).values():
                if task_status.worker_id == worker.worker_id:
                    task_counts[task_status.state] += 1
            for state, count in task_counts.items():
                task_family.add_metric([name, str(state)], count)
        connector_family = out.gauge(
            "connector_count", "Connectors this worker reports, by state.", ["state"]
        )
        for state, count in connector_counts.items():
            connector_family.add_metric([str(state)], count)

    def _collect_rebalances(self, out: _Families) -> None:
        count, total_s, max_s, rebalancing, since_s = self._worker.rebalances.snapshot()
        out.counter("completed_rebalances", "Rebalances this worker completed.", []).add_metric(
            [], count
        )
        out.counter("rebalance_seconds", "Time spent in completed rebalances.", []).add_metric(
            [], total_s
        )
        out.gauge("rebalance_avg_time_ms", "Average rebalance time.", []).add_metric(
            [], total_s / count * 1000 if count else 0.0
        )
        out.gauge("rebalance_max_time_ms", "Longest rebalance time.", []).add_metric(
            [], max_s * 1000
        )
        out.gauge("rebalancing", "1 while a rebalance is in progress.", []).add_metric(
            [], int(rebalancing)
        )
        out.gauge(
            "time_since_last_rebalance_ms", "Since the last rebalance ended; -1 if none.", []
        ).add_metric([], since_s * 1000 if since_s >= 0 else -1)


def _merge(into: dict[str, tuple[list[int], int]], key: str, histogram: LatencyHistogram) -> None:
    counts, sum_ms = histogram.snapshot()
    if key in into:
        previous, previous_sum = into[key]
        counts = [a + b for a, b in zip(previous, counts, strict=True)]
        sum_ms += previous_sum
    into[key] = (counts, sum_ms)


class WorkerMetrics:
    """The metrics of one worker; ``registry`` is what an exporter serves. Everything
    is read from ``worker`` at scrape time: nothing to update."""

    def __init__(self, worker: Worker) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_WorkerCollector(worker))


class MetricsServer:
    """prometheus_client's HTTP server for one registry, on a thread; `stop` ends it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(worker: Worker) -> MetricsServer | None:
    """Serve ``worker``'s metrics on ``metrics.port`` at ``rest.host`` (default
    127.0.0.1); None when ``metrics.port`` is 0 (off). `OSError` if the port is taken."""
    port = worker.config.metrics_port
    if not port:
        return None
    host = worker.config.rest_host
    server = MetricsServer(WorkerMetrics(worker).registry, host, port)
    log.info("serving worker metrics on http://%s:%d/metrics", host, server.port)
    return server
