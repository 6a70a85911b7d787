"""Prometheus metrics of one broker, in a registry of its own (never the global one).

Counters (messages and bytes in/out per namespace and queue) are bumped as traffic
passes. Everything else is computed at scrape time from a `MetricsSource`: consumer
lag per (namespace, group, queue) as the sum over committed partitions of
``next offset - committed offset``, store size, fsync counts and latency from the
store's stats, KV key count, pending delayed and half messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omconnect.broker.store import StoreStats


@dataclass(frozen=True, slots=True)
class GroupLag:
    """How far one consumer group is behind on one queue, in messages."""

    namespace: str
    group: str
    queue: str
    lag: int


def group_lag(
    namespace: str, group: str, queue: str, committed: dict[int, int], ends: dict[int, int]
) -> GroupLag:
    """The lag over the partitions the group has committed (never negative per
    partition; a partition absent from ``ends`` counts as empty)."""
    lag = sum(max(0, ends.get(p, 0) - offset) for p, offset in committed.items())
    return GroupLag(namespace, group, queue, lag)


class MetricsSource(Protocol):
    """What the scrape-time collector asks the broker for."""

    def consumer_lags(self) -> list[GroupLag]: ...
    def store_size_bytes(self) -> int: ...
    def store_stats(self) -> StoreStats: ...
    def kv_key_count(self) -> int: ...
    def pending_delayed(self) -> int: ...
    def pending_half_messages(self) -> int: ...


class _ScrapeCollector(Collector):
    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        source = self._source
        lag = GaugeMetricFamily(
            "omconnect_broker_consumer_lag_messages",
            "Messages a consumer group has not committed yet, per queue.",
            labels=["namespace", "group", "queue"],
        )
        for entry in source.consumer_lags():
            lag.add_metric([entry.namespace, entry.group, entry.queue], entry.lag)
        yield lag
        yield GaugeMetricFamily(
            "omconnect_broker_store_size_bytes",
            "Bytes on disk of the commit log and consume queues.",
            value=source.store_size_bytes(),
        )
        stats = source.store_stats()
        yield CounterMetricFamily(
            "omconnect_broker_flushes", "Commit-log fsyncs.", value=stats.flush_count
        )
        yield CounterMetricFamily(
            "omconnect_broker_flush_seconds",
            "Time spent in commit-log fsyncs.",
            value=stats.flush_seconds_total,
        )
        recent = stats.recent_flush_seconds
        yield GaugeMetricFamily(
            "omconnect_broker_flush_latency_max_seconds",
            "The slowest of the recent commit-log fsyncs.",
            value=max(recent) if recent else 0.0,
        )
        yield GaugeMetricFamily(
            "omconnect_broker_unflushed_bytes",
            "Commit-log bytes written but not fsynced yet.",
            value=max(0, stats.end_position - stats.durable_position),
        )
        yield GaugeMetricFamily(
            "omconnect_broker_kv_keys", "Live keys in the KV store.", value=source.kv_key_count()
        )
        yield GaugeMetricFamily(
            "omconnect_broker_delayed_pending",
            "Delayed messages waiting for their time.",
            value=source.pending_delayed(),
        )
        yield GaugeMetricFamily(
            "omconnect_broker_half_messages_pending",
            "Transactional half messages not decided yet.",
            value=source.pending_half_messages(),
        )


class BrokerMetrics:
    """The broker's metrics; ``registry`` is what an exporter serves."""

    def __init__(self, source: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "queue"]
        self._messages_in = Counter(
            "omconnect_broker_messages_in", "Messages appended.", labels, registry=self.registry
        )
        self._bytes_in = Counter(
            "omconnect_broker_bytes_in",
            "Bytes of messages appended.",
            labels,
            registry=self.registry,
        )
        self._messages_out = Counter(
            "omconnect_broker_messages_out",
            "Messages served to readers.",
            labels,
            registry=self.registry,
        )
        self._bytes_out = Counter(
            "omconnect_broker_bytes_out",
            "Bytes of messages served to readers.",
            labels,
            registry=self.registry,
        )
        self.registry.register(_ScrapeCollector(source))

    def record_in(self, namespace: str, queue: str, payloads: Sequence[bytes]) -> None:
        """Count messages stored in a queue (appended, delivered when due, committed)."""
        if payloads:
            self._messages_in.labels(namespace, queue).inc(len(payloads))
            self._bytes_in.labels(namespace, queue).inc(sum(map(len, payloads)))

    def record_out(self, namespace: str, queue: str, payloads: Sequence[bytes]) -> None:
        """Count messages served by `read`."""
        if payloads:
            self._messages_out.labels(namespace, queue).inc(len(payloads))
            self._bytes_out.labels(namespace, queue).inc(sum(map(len, payloads)))

    def record_in_count(self, namespace: str, queue: str, messages: int, size: int) -> None:
        """Count ``messages`` of ``size`` bytes in all stored in a queue (a batch)."""
        if messages:
            self._messages_in.labels(namespace, queue).inc(messages)
            self._bytes_in.labels(namespace, queue).inc(size)

    def record_out_count(self, namespace: str, queue: str, messages: int, size: int) -> None:
        """Count ``messages`` of ``size`` bytes in all served by a read."""
        if messages:
            self._messages_out.labels(namespace, queue).inc(messages)
            self._bytes_out.labels(namespace, queue).inc(size)

    def forget_queue(self, namespace: str, queue: str) -> None:
        """Drop a deleted queue's series."""
        for counter in (self._messages_in, self._bytes_in, self._messages_out, self._bytes_out):
            with contextlib.suppress(KeyError):  # never recorded
                counter.remove(namespace, queue)
