"""Peer side of the broker benchmark: Redis Streams and NATS JetStream under one workload.

Modelled on the OpenMessaging Benchmark: a `Workload` says how many topics,
partitions, producers and consumers, the message size, the producer rate (0 = as fast
as possible), the batch size and the duration. A runner starts a private server
(omconnect.testing.services), sets up the topics, starts the consumers and producers
as separate processes (so they do not share a GIL), runs them for `duration_s`, lets
the consumers drain what was published, and returns a `Result`:

- publish_rate / consume_rate in messages per second;
- publish latency: per batch, from handing the batch to the client until the server
  acknowledged all of it (Redis: pipelined XADD round trip; NATS: all PubAcks);
- end-to-end latency: per message, from the producer's `time.time_ns()` stamped in
  the first 8 bytes of the body (little-endian) to the consumer receiving it.

Latencies are in microseconds. In fixed-rate mode (`producer_rate > 0`) the
producers pace their batches to that total rate; as fast as possible, e2e latency
mostly measures the backlog the consumer builds up.

`benchmarks/broker_bench.py` runs the same workloads against omconnect's broker and
compares. Run this file alone for the peers only:

    python benchmarks/peers.py --duration 5 --rates 0,20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from omconnect.testing.services import start_nats, start_redis

_TIMESTAMP = struct.Struct("<q")
_SETUP_TIMEOUT_S = 60.0
# After the producers stop, consumers get this long (at least) to receive the rest.
_MIN_DRAIN_S = 10.0


@dataclass(frozen=True)
class Workload:
    """What to run. `producer_rate` is the total over all producers, 0 = unpaced."""

    topics: int = 1
    partitions_per_topic: int = 1
    message_size: int = 1024
    producer_rate: int = 0
    producers: int = 1
    consumers: int = 1
    duration_s: float = 5.0
    batch_size: int = 100

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot be run."""
        for name in ("topics", "partitions_per_topic", "producers", "consumers", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.message_size < _TIMESTAMP.size:
            raise ValueError(f"message_size must be at least {_TIMESTAMP.size} bytes")
        if self.producer_rate < 0:
            raise ValueError("producer_rate must be 0 (unpaced) or positive")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")


class LatencyRecorder:
    """Collects latency samples in nanoseconds; summarises them in microseconds.

    Stores every sample (8 bytes each), so percentiles are exact, not estimated.
    """

    def __init__(self, samples: Iterable[int] = ()) -> None:
        self.samples = array("q", samples)

    def record(self, nanoseconds: int) -> None:
        self.samples.append(nanoseconds)

    def extend(self, other: LatencyRecorder) -> None:
        """Add all of `other`'s samples (to merge the recorders of several processes)."""
        self.samples.extend(other.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def summary(self) -> LatencySummary:
        """p50/p99/p99.9/max by the nearest-rank method; zeros when there are no samples."""
        ordered = sorted(self.samples)
        if not ordered:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0)

        def rank(percent: float) -> float:
            # Nearest rank ceil(p/100 * n) in integers (thousandths of a percent),
            # so that float rounding cannot move p99.9 of 1000 samples to the max.
            scaled = round(percent * 1000)
            index = max(0, -(-scaled * len(ordered) // 100_000) - 1)
            return ordered[index] / 1000.0

        return LatencySummary(len(ordered), rank(50), rank(99), rank(99.9), ordered[-1] / 1000.0)


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in microseconds over `count` samples."""

    count: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "p50": round(self.p50_us, 1),
            "p99": round(self.p99_us, 1),
            "p99.9": round(self.p999_us, 1),
            "max": round(self.max_us, 1),
        }


@dataclass(frozen=True)
class Result:
    """What one peer achieved on one workload. Rates are messages per second."""

    peer: str
    workload: Workload
    published: int
    consumed: int
    publish_rate: float
    consume_rate: float
    publish_latency: LatencySummary
    e2e_latency: LatencySummary

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; latencies under `*_latency_us` keyed p50, p99, p99.9, max."""
        return {
            "peer": self.peer,
            "workload": asdict(self.workload),
            "published": self.published,
            "consumed": self.consumed,
            "publish_rate": round(self.publish_rate),
            "consume_rate": round(self.consume_rate),
            "publish_latency_us": self.publish_latency.as_dict(),
            "e2e_latency_us": self.e2e_latency.as_dict(),
        }


# --- shared pieces of the producer and consumer loops ---------------------------------


@dataclass
class _Report:
    """What one producer or consumer process sends back to the parent."""

    role: str
    count: int
    start_ns: int
    end_ns: int  # producer: last ack; consumer: last receive
    latencies: array[int]
    error: str = ""


@dataclass
class _Control:
    """Cross-process coordination handed to every worker process."""

    barrier: Barrier
    producers_done: Event
    published_total: Any  # multiprocessing.Value("q")
    consumed_total: Any  # multiprocessing.Value("q")
    reports: Any  # multiprocessing.Queue[_Report]


def stamp(payload: bytes) -> bytes:
    """`payload` with its first 8 bytes replaced by the current time.time_ns()."""
    return _TIMESTAMP.pack(time.time_ns()) + payload[_TIMESTAMP.size :]


def sent_at_ns(body: bytes) -> int:
    """The time.time_ns() that `stamp` put in `body`."""
    return int(_TIMESTAMP.unpack_from(body)[0])


class _Pacer:
    """Schedules batches for a fixed per-producer rate (messages/s); 0 means no pacing."""

    def __init__(self, rate: float, batch_size: int) -> None:
        self.interval_s = batch_size / rate if rate > 0 else 0.0
        self.next_at = time.perf_counter()

    def delay(self) -> float:
        """Seconds to wait before the next batch (and advance the schedule)."""
        if self.interval_s == 0.0:
            return 0.0
        now = time.perf_counter()
        wait = self.next_at - now
        # Behind schedule: send at once and keep the schedule (catch up), as OMB does.
        self.next_at += self.interval_s
        return max(0.0, wait)


def _should_stop_consuming(control: _Control, done_at: list[float], drain_s: float) -> bool:
    """Consumers stop once the producers are done and everything published arrived,
    or the drain time after the producers finished has run out."""
    if not control.producers_done.is_set():
        return False
    if not done_at:
        done_at.append(time.monotonic())
    if control.consumed_total.value >= control.published_total.value:
        return True
    return time.monotonic() - done_at[0] > drain_s


def _add_consumed(control: _Control, count: int) -> None:
    with control.consumed_total.get_lock():
        control.consumed_total.value += count


def _worker(
    target: Callable[[str, Workload, int, _Control], _Report],
    url: str,
    workload: Workload,
    index: int,
    control: _Control,
) -> None:
    """Process entry point: run `target` and always send a report (with the error)."""
    try:
        report = target(url, workload, index, control)
    except BaseException as error:
        control.barrier.abort()
        report = _Report("error", 0, 0, 0, array("q"), error=f"{type(error).__name__}: {error}")
    control.reports.put(report)


def _run_processes(
    peer: str,
    url: str,
    workload: Workload,
    producer: Callable[[str, Workload, int, _Control], _Report],
    consumer: Callable[[str, Workload, int, _Control], _Report],
) -> Result:
    """Start consumers and producers as processes, wait for them, merge their reports."""
    ctx = multiprocessing.get_context("spawn")
    control = _Control(
        barrier=ctx.Barrier(workload.producers + workload.consumers),
        producers_done=ctx.Event(),
        published_total=ctx.Value("q", 0),
        consumed_total=ctx.Value("q", 0),
        reports=ctx.Queue(),
    )
    processes = [
        ctx.Process(target=_worker, args=(consumer, url, workload, i, control), daemon=True)
        for i in range(workload.consumers)
    ] + [
        ctx.Process(target=_worker, args=(producer, url, workload, i, control), daemon=True)
        for i in range(workload.producers)
    ]
    for process in processes:
        process.start()
    try:
        deadline = _SETUP_TIMEOUT_S + workload.duration_s
        producer_reports = _collect(control.reports, processes, workload.producers, deadline)
        published = sum(r.count for r in producer_reports)
        with control.published_total.get_lock():
            control.published_total.value = published
        control.producers_done.set()
        drain = max(_MIN_DRAIN_S, workload.duration_s) + _SETUP_TIMEOUT_S
        consumer_reports = _collect(control.reports, processes, workload.consumers, drain)
    finally:
        # On an error the consumers are still waiting for the producers: release them.
        control.producers_done.set()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return _merge(peer, workload, producer_reports, consumer_reports)


def _collect(reports: Any, processes: list[Any], expected: int, timeout_s: float) -> list[_Report]:
    """Take `expected` reports off the queue; raise RuntimeError on an error report,
    on a process that died without reporting, or after `timeout_s`."""
    collected: list[_Report] = []
    deadline = time.monotonic() + timeout_s
    while len(collected) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark processes did not report within {timeout_s:.0f}s")
        try:
            report: _Report = reports.get(timeout=1.0)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("a benchmark process died without a report") from None
            continue
        if report.error:
            raise RuntimeError(f"benchmark process failed: {report.error}")
        collected.append(report)
    return collected


def _merge(
    peer: str, workload: Workload, producers: list[_Report], consumers: list[_Report]
) -> Result:
    publish, e2e = LatencyRecorder(), LatencyRecorder()
    for report in producers:
        publish.extend(LatencyRecorder(report.latencies))
    for report in consumers:
        e2e.extend(LatencyRecorder(report.latencies))
    published = sum(r.count for r in producers)
    consumed = sum(r.count for r in consumers)
    start = min(r.start_ns for r in producers + consumers)
    publish_s = (max(r.end_ns for r in producers) - start) / 1e9
    consume_end = max(r.end_ns for r in consumers)
    consume_s = (consume_end - start) / 1e9 if consumed else 0.0
    return Result(
        peer=peer,
        workload=workload,
        published=published,
        consumed=consumed,
        publish_rate=published / publish_s if publish_s > 0 else 0.0,
        consume_rate=consumed / consume_s if consume_s > 0 else 0.0,
        publish_latency=publish.summary(),
        e2e_latency=e2e.summary(),
    )


def _partitions(workload: Workload) -> list[tuple[int, int]]:
    return [(t, p) for t in range(workload.topics) for p in range(workload.partitions_per_topic)]


def _payload(workload: Workload) -> bytes:
    return os.urandom(workload.message_size)


# --- Redis Streams -------------------------------------------------------------------

_REDIS_GROUP = "bench"
_REDIS_FIELD = b"d"


def _redis_stream(topic: int, partition: int) -> str:
    return f"bench:t{topic}:p{partition}"


def _redis_maxlen(workload: Workload) -> int:
    # Streams keep acknowledged entries; cap memory (~2 GiB of bodies in all) with
    # approximate trimming. A consumer lagging further than that loses messages,
    # which shows as consumed < published.
    streams = workload.topics * workload.partitions_per_topic
    return max(10_000, (2 << 30) // workload.message_size // streams)


def _redis_setup(url: str, workload: Workload) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for topic, partition in _partitions(workload):
            client.xgroup_create(_redis_stream(topic, partition), _REDIS_GROUP, "0", mkstream=True)
    finally:
        client.close()


def _redis_producer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """Pipelined XADD of `batch_size` messages per round trip, round-robin over streams."""
    import redis

    client = redis.Redis.from_url(url)
    streams = [_redis_stream(t, p) for t, p in _partitions(workload)]
    maxlen = _redis_maxlen(workload)
    payload = _payload(workload)
    latencies = LatencyRecorder()
    pacer = _Pacer(workload.producer_rate / workload.producers, workload.batch_size)
    sent = 0
    next_stream = index
    control.barrier.wait(_SETUP_TIMEOUT_S)
    start_ns = time.time_ns()
    end_at = time.perf_counter() + workload.duration_s
    pacer.next_at = time.perf_counter()
    while time.perf_counter() < end_at:
        delay = pacer.delay()
        if delay:
            time.sleep(delay)
        pipe = client.pipeline(transaction=False)
        started = time.perf_counter_ns()
        for _ in range(workload.batch_size):
            stream = streams[next_stream % len(streams)]
            next_stream += 1
            pipe.xadd(stream, {_REDIS_FIELD: stamp(payload)}, maxlen=maxlen, approximate=True)
        pipe.execute()
        latencies.record(time.perf_counter_ns() - started)
        sent += workload.batch_size
    end_ns = time.time_ns()
    client.close()
    return _Report("producer", sent, start_ns, end_ns, latencies.samples)


def _redis_consumer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """XREADGROUP (COUNT batch_size, BLOCK 100 ms) over all streams, then pipelined XACK."""
    import redis

    client = redis.Redis.from_url(url)
    wanted: dict[Any, Any] = {_redis_stream(t, p): ">" for t, p in _partitions(workload)}
    name = f"consumer-{index}"
    latencies = LatencyRecorder()
    received = 0
    last_receive_ns = 0
    done_at: list[float] = []
    drain_s = max(_MIN_DRAIN_S, workload.duration_s)
    control.barrier.wait(_SETUP_TIMEOUT_S)
    start_ns = time.time_ns()
    while not _should_stop_consuming(control, done_at, drain_s):
        response: Any = client.xreadgroup(
            _REDIS_GROUP, name, wanted, count=workload.batch_size, block=100
        )
        if not response:
            continue
        now = time.time_ns()
        last_receive_ns = now
        pipe = client.pipeline(transaction=False)
        count = 0
        for stream, entries in response:
            ids = []
            for entry_id, fields in entries:
                latencies.record(now - sent_at_ns(fields[_REDIS_FIELD]))
                ids.append(entry_id)
            pipe.xack(stream, _REDIS_GROUP, *ids)
            count += len(ids)
        pipe.execute()
        received += count
        _add_consumed(control, count)
    client.close()
    return _Report("consumer", received, start_ns, last_receive_ns, latencies.samples)


def run_redis(workload: Workload, url: str | None = None) -> Result:
    """Run `workload` on Redis Streams: at `url`, or on a private redis-server.

    One stream per (topic, partition), one consumer group for all consumers. The
    private server (no persistence) is stopped afterwards.
    """
    workload.validate()
    if url is not None:
        _redis_setup(url, workload)
        return _run_processes("redis-streams", url, workload, _redis_producer, _redis_consumer)
    with tempfile.TemporaryDirectory(prefix="omconnect-bench-redis-") as workdir:
        server = start_redis(Path(workdir))
        try:
            _redis_setup(server.url, workload)
            return _run_processes(
                "redis-streams", server.url, workload, _redis_producer, _redis_consumer
            )
        finally:
            server.stop()


# --- NATS JetStream ------------------------------------------------------------------


def _nats_stream(topic: int) -> str:
    return f"BENCH_T{topic}"


def _nats_subject(topic: int, partition: int) -> str:
    return f"bench.t{topic}.p{partition}"


_NATS_DURABLE = "bench"


async def _nats_setup_async(url: str, workload: Workload) -> None:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for topic in range(workload.topics):
            await js.add_stream(
                name=_nats_stream(topic),
                subjects=[f"bench.t{topic}.>"],
                storage=StorageType.FILE,
            )
            await js.add_consumer(
                _nats_stream(topic),
                ConsumerConfig(
                    durable_name=_NATS_DURABLE,
                    ack_policy=AckPolicy.EXPLICIT,
                    max_ack_pending=1_000_000,
                    max_waiting=max(512, workload.consumers * 4),
                ),
            )
    finally:
        await nc.close()


def _nats_producer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """Async publish of `batch_size` messages, then wait for all their PubAcks."""
    return asyncio.run(_nats_producer_async(url, workload, index, control))


class _AckedPublisher:
    """JetStream async publish: each message carries a reply subject; the server's
    PubAcks arrive on one callback subscription and are counted per batch.

    This is what nats-py's `js.publish_async()` sends; that method tops out near 23k
    msg/s on one core here (per-message future, semaphore and done-callback), about
    half of this, which would measure the client rather than the server.
    """

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.reply_prefix = nc.new_inbox() + "."
        self.sequence = 0
        self.outstanding = 0
        self.failures: list[bytes] = []
        self.all_acked = asyncio.Event()

    async def start(self) -> None:
        await self.nc.subscribe(self.reply_prefix + "*", cb=self._on_ack)

    async def _on_ack(self, msg: Any) -> None:
        # A PubAck is {"stream": ..., "seq": ...}; a failure is {"error": ...} or a
        # status message without a body (503: no stream listens on the subject).
        if (msg.headers and "Status" in msg.headers) or b'"error"' in msg.data:
            self.failures.append(bytes(msg.data) or str(msg.headers).encode())
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.all_acked.set()

    async def publish_batch(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish all `messages` (subject, body); return once all are acknowledged.

        Raises RuntimeError when the server rejects one or the acks take over 30 s.
        """
        self.all_acked.clear()
        self.outstanding += len(messages)
        for subject, body in messages:
            self.sequence += 1
            await self.nc.publish(subject, body, reply=f"{self.reply_prefix}{self.sequence}")
        try:
            await asyncio.wait_for(self.all_acked.wait(), timeout=30.0)
        except TimeoutError:
            raise RuntimeError(f"{self.outstanding} JetStream publishes not acked") from None
        if self.failures:
            raise RuntimeError(f"JetStream rejected a publish: {self.failures[0]!r}")


async def _nats_producer_async(
    url: str, workload: Workload, index: int, control: _Control
) -> _Report:
    import nats

    nc = await nats.connect(url)
    publisher = _AckedPublisher(nc)
    await publisher.start()
    subjects = [_nats_subject(t, p) for t, p in _partitions(workload)]
    payload = _payload(workload)
    latencies = LatencyRecorder()
    pacer = _Pacer(workload.producer_rate / workload.producers, workload.batch_size)
    sent = 0
    next_subject = index
    control.barrier.wait(_SETUP_TIMEOUT_S)
    start_ns = time.time_ns()
    end_at = time.perf_counter() + workload.duration_s
    pacer.next_at = time.perf_counter()
    while time.perf_counter() < end_at:
        delay = pacer.delay()
        if delay:
            await asyncio.sleep(delay)
        started = time.perf_counter_ns()
        batch = []
        for _ in range(workload.batch_size):
            batch.append((subjects[next_subject % len(subjects)], stamp(payload)))
            next_subject += 1
        await publisher.publish_batch(batch)
        latencies.record(time.perf_counter_ns() - started)
        sent += workload.batch_size
    end_ns = time.time_ns()
    await nc.close()
    return _Report("producer", sent, start_ns, end_ns, latencies.samples)


def _nats_consumer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """Pull consumer: fetch up to `batch_size` messages at a time, ack each one."""
    return asyncio.run(_nats_consumer_async(url, workload, index, control))


class _PullBatches:
    """Pull requests on one durable consumer, answered into a callback subscription.

    This is the protocol nats-py's `PullSubscription.fetch()` speaks (a request to
    `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` whose reply subject receives the
    messages, ended by a status message when it expires). fetch() itself awaits a new
    task per message and tops out near 19k msg/s on one core here, which would measure
    the client instead of the server; a callback subscription is about 3x faster.
    """

    def __init__(self, nc: Any, stream: str, durable: str) -> None:
        self.nc = nc
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self.received: list[Any] = []
        self.wanted = 0
        self.done = asyncio.Event()

    async def start(self) -> None:
        await self.nc.subscribe(self.inbox, cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        if msg.headers and "Status" in msg.headers:
            # 404/408/409: the request ended (expired, or nothing to wait for).
            self.done.set()
            return
        self.received.append(msg)
        if len(self.received) >= self.wanted:
            self.done.set()

    async def next_batch(self, batch: int, expires_s: float) -> list[Any]:
        """Up to `batch` messages as soon as at least one is there; none if `expires_s`
        passes first.

        First a no-wait request for `batch` (the server sends what it has and ends the
        request); when that finds nothing, a waiting request for one message, so that
        a quiet stream costs no batch-filling delay.
        """
        msgs = await self._request({"batch": batch, "no_wait": True}, batch, timeout_s=1.0)
        if msgs:
            return msgs
        request = {"batch": 1, "expires": int(expires_s * 1e9)}
        return await self._request(request, 1, timeout_s=expires_s + 1.0)

    async def _request(self, request: dict[str, Any], wanted: int, timeout_s: float) -> list[Any]:
        self.done.clear()
        self.wanted = wanted
        await self.nc.publish(self.next_subject, json.dumps(request).encode(), self.inbox)
        # A lost status message must not hang the consumer: take what arrived.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout=timeout_s)
        # No await between the wait and the swap: nothing can arrive in between.
        # Messages that arrive later (stragglers) go to the next batch.
        msgs, self.received = self.received, []
        return msgs


async def _nats_consumer_async(
    url: str, workload: Workload, index: int, control: _Control
) -> _Report:
    import nats

    nc = await nats.connect(url)
    pullers = [_PullBatches(nc, _nats_stream(t), _NATS_DURABLE) for t in range(workload.topics)]
    for puller in pullers:
        await puller.start()
    latencies = LatencyRecorder()
    received = 0
    last_receive_ns = 0
    done_at: list[float] = []
    drain_s = max(_MIN_DRAIN_S, workload.duration_s)
    control.barrier.wait(_SETUP_TIMEOUT_S)
    start_ns = time.time_ns()
    turn = 0
    while not _should_stop_consuming(control, done_at, drain_s):
        puller = pullers[turn % len(pullers)]
        turn += 1
        msgs = await puller.next_batch(workload.batch_size, expires_s=0.1)
        if not msgs:
            continue
        now = time.time_ns()
        last_receive_ns = now
        for msg in msgs:
            latencies.record(now - sent_at_ns(msg.data))
            await msg.ack()
        received += len(msgs)
        _add_consumed(control, len(msgs))
    await nc.close()
    return _Report("consumer", received, start_ns, last_receive_ns, latencies.samples)


def run_nats(workload: Workload, url: str | None = None) -> Result:
    """Run `workload` on NATS JetStream: at `url`, or on a private nats-server.

    One file-storage stream per topic with one subject per partition, one durable pull
    consumer per topic shared by all consumers, explicit acks. The private server is
    stopped and its store removed afterwards.
    """
    workload.validate()
    if url is not None:
        asyncio.run(_nats_setup_async(url, workload))
        return _run_processes("nats-jetstream", url, workload, _nats_producer, _nats_consumer)
    with tempfile.TemporaryDirectory(prefix="omconnect-bench-nats-") as workdir:
        server = start_nats(Path(workdir))
        try:
            asyncio.run(_nats_setup_async(server.url, workload))
            return _run_processes(
                "nats-jetstream", server.url, workload, _nats_producer, _nats_consumer
            )
        finally:
            server.stop()


PEERS: dict[str, Callable[[Workload], Result]] = {
    "redis": run_redis,
    "nats": run_nats,
}


# --- command line ----------------------------------------------------------------------


def format_table(results: list[Result]) -> str:
    """A fixed-width text table of the results, for people."""
    header = (
        f"{'peer':<16}{'rate':>8}{'pub msg/s':>11}{'con msg/s':>11}"
        f"{'pub p50':>10}{'pub p99':>10}{'e2e p50':>10}{'e2e p99':>10}{'e2e p99.9':>11}"
        f"{'e2e max':>10}"
    )
    lines = [header + "   (latencies in us)"]
    for r in results:
        lines.append(
            f"{r.peer:<16}{r.workload.producer_rate or 'max':>8}"
            f"{r.publish_rate:>11.0f}{r.consume_rate:>11.0f}"
            f"{r.publish_latency.p50_us:>10.0f}{r.publish_latency.p99_us:>10.0f}"
            f"{r.e2e_latency.p50_us:>10.0f}{r.e2e_latency.p99_us:>10.0f}"
            f"{r.e2e_latency.p999_us:>11.0f}{r.e2e_latency.max_us:>10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen peers at each rate; JSON list on stdout, a table on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--peers", default="redis,nats", help="comma list of: redis, nats")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument(
        "--rates", default="0", help="comma list of total producer rates, msg/s (0 = max)"
    )
    parser.add_argument("--message-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--topics", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--producers", type=int, default=1)
    parser.add_argument("--consumers", type=int, default=1)
    args = parser.parse_args(argv)

    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in peers if name not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {sorted(PEERS)}")
    results: list[Result] = []
    for rate in (int(r) for r in args.rates.split(",")):
        workload = Workload(
            topics=args.topics,
            partitions_per_topic=args.partitions,
            message_size=args.message_size,
            producer_rate=rate,
            producers=args.producers,
            consumers=args.consumers,
            duration_s=args.duration,
            batch_size=args.batch_size,
        )
        try:
            workload.validate()
        except ValueError as error:
            parser.error(str(error))
        for name in peers:
            results.append(PEERS[name](workload))
            print(format_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(format_table(results), file=sys.stderr)
    print(json.dumps([r.as_dict() for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
