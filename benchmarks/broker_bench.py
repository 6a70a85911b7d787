"""The broker benchmark: omconnect's bundled broker over TCP vs Redis Streams and NATS
JetStream, side by side in one run, on OpenMessaging-Benchmark-style workloads.

Each peer runs the same `Workload` (see benchmarks/peers.py) with one producer and one
consumer process. omconnect runs as ``omconnect broker`` in its own process on a fresh
data directory, once with async flush (page cache + interval) and once with sync flush
(group commit before the ack); the clients are the public `Producer.send_batch` and
`PullConsumer.batch_receive` + `ack`, the same work a user's code does.

    python benchmarks/broker_bench.py --duration 10 --rates 0,20000 --repeat 3

prints one table row per run, then the medians and the ratios the foundation issue
sets targets for (batched publish vs Redis XADD and JetStream async publish, consume
vs XREADGROUP, e2e p99 at 20k msg/s, sync vs async flush), and a JSON document with
every result on stdout. The machine is shared and noisy: compare ratios and medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (
    _MIN_DRAIN_S,
    _SETUP_TIMEOUT_S,
    LatencyRecorder,
    Result,
    Workload,
    _add_consumed,
    _Control,
    _Pacer,
    _partitions,
    _payload,
    _Report,
    _run_processes,
    _should_stop_consuming,
    format_table,
    run_nats,
    run_redis,
    sent_at_ns,
    stamp,
)

_NAMESPACE = "bench"
_WINDOW = 8


def _queue(topic: int) -> str:
    return f"bench-t{topic}"


def _omconnect_producer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """`Producer.send_batch_async` of ``batch_size`` messages per call, round-robin
    partitions, at most ``_WINDOW`` batches in flight (OMB's producers send async with a
    bound on pending sends). Publish latency: per batch, send call to acknowledgement."""
    from omconnect.access_point import MessagingAccessPoint
    from omconnect.message import Message

    targets = _partitions(workload)
    payload = _payload(workload)
    latencies = LatencyRecorder()
    pacer = _Pacer(workload.producer_rate / workload.producers, workload.batch_size)
    sent = 0
    turn = index
    window: deque[tuple[int, Future[Any]]] = deque()  # batches in flight, oldest first

    def settle(block: bool) -> None:
        while window and (block or window[0][1].done()):
            started, future = window.popleft()
            future.result()
            latencies.record(time.perf_counter_ns() - started)

    with MessagingAccessPoint.open(url) as ap:
        producer = ap.create_producer()
        control.barrier.wait(_SETUP_TIMEOUT_S)
        start_ns = time.time_ns()
        end_at = time.perf_counter() + workload.duration_s
        pacer.next_at = time.perf_counter()
        while time.perf_counter() < end_at:
            delay = pacer.delay()
            if delay:
                time.sleep(delay)
            topic, partition = targets[turn % len(targets)]
            turn += 1
            queue = _queue(topic)
            batch = [
                Message(stamp(payload), destination=queue, partition=partition)
                for _ in range(workload.batch_size)
            ]
            window.append((time.perf_counter_ns(), producer.send_batch_async(batch)))
            sent += workload.batch_size
            settle(block=len(window) >= _WINDOW)
        settle(block=True)
        end_ns = time.time_ns()
    return _Report("producer", sent, start_ns, end_ns, latencies.samples)


def _omconnect_consumer(url: str, workload: Workload, index: int, control: _Control) -> _Report:
    """`PullConsumer.batch_receive` in group "bench", acking every message."""
    from omconnect.access_point import MessagingAccessPoint

    latencies = LatencyRecorder()
    received = 0
    last_receive_ns = 0
    done_at: list[float] = []
    drain_s = max(_MIN_DRAIN_S, workload.duration_s)
    queues = [_queue(t) for t in range(workload.topics)]
    with MessagingAccessPoint.open(url) as ap:
        consumer = ap.create_pull_consumer(
            "bench", queues, start_from="earliest", fetch_max_messages=workload.batch_size * 5
        )
        control.barrier.wait(_SETUP_TIMEOUT_S)
        start_ns = time.time_ns()
        while not _should_stop_consuming(control, done_at, drain_s):
            messages = consumer.batch_receive(workload.batch_size, timeout_ms=100)
            if not messages:
                continue
            now = time.time_ns()
            last_receive_ns = now
            for message in messages:
                latencies.record(now - sent_at_ns(message.body))
                consumer.ack(message)
            received += len(messages)
            _add_consumed(control, len(messages))
        consumer.close()
    return _Report("consumer", received, start_ns, last_receive_ns, latencies.samples)


def run_omconnect(workload: Workload, flush_mode: str = "async") -> Result:
    """Run ``workload`` on a private ``omconnect broker`` process with ``flush_mode``."""
    from omconnect.access_point import MessagingAccessPoint
    from omconnect.testing.broker_process import start_broker

    workload.validate()
    with tempfile.TemporaryDirectory(prefix="omconnect-bench-") as workdir:
        server = start_broker(Path(workdir), flush_mode=flush_mode)
        url = f"oms:embedded://127.0.0.1:{server.port}/{_NAMESPACE}"
        try:
            with MessagingAccessPoint.open(url) as ap:
                for topic in range(workload.topics):
                    ap.resources.create_queue(_queue(topic), workload.partitions_per_topic)
            return _run_processes(
                f"omconnect-{flush_mode}",
                url,
                workload,
                _omconnect_producer,
                _omconnect_consumer,
            )
        finally:
            server.stop()


PEERS: dict[str, Callable[[Workload], Result]] = {
    "omconnect-async": lambda w: run_omconnect(w, "async"),
    "omconnect-sync": lambda w: run_omconnect(w, "sync"),
    "redis": run_redis,
    "nats": run_nats,
}


def _median(results: list[Result], peer: str, rate: int, field: Callable[[Result], float]) -> float:
    values = [
        field(r) for r in results if r.peer.startswith(peer) and r.workload.producer_rate == rate
    ]
    return statistics.median(values) if values else float("nan")


def summary(results: list[Result]) -> dict[str, float]:
    """Medians over the repeats and the ratios the targets are stated in."""
    pub = lambda r: r.publish_rate  # noqa: E731
    con = lambda r: r.consume_rate  # noqa: E731
    out = {
        "publish_omconnect_async": _median(results, "omconnect-async", 0, pub),
        "publish_omconnect_sync": _median(results, "omconnect-sync", 0, pub),
        "publish_redis": _median(results, "redis", 0, pub),
        "publish_nats": _median(results, "nats", 0, pub),
        "consume_omconnect_async": _median(results, "omconnect-async", 0, con),
        "consume_redis": _median(results, "redis", 0, con),
        "e2e_p99_us_omconnect_async_20k": _median(
            results, "omconnect-async", 20000, lambda r: r.e2e_latency.p99_us
        ),
        "e2e_p99_us_redis_20k": _median(results, "redis", 20000, lambda r: r.e2e_latency.p99_us),
    }
    out["ratio_publish_vs_redis (target >= 2)"] = (
        out["publish_omconnect_async"] / out["publish_redis"]
    )
    out["ratio_publish_vs_nats (target >= 5)"] = (
        out["publish_omconnect_async"] / out["publish_nats"]
    )
    out["ratio_consume_vs_redis (target >= 1)"] = (
        out["consume_omconnect_async"] / out["consume_redis"]
    )
    out["ratio_sync_vs_async_publish (target >= 0.5)"] = (
        out["publish_omconnect_sync"] / out["publish_omconnect_async"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every peer at every rate ``--repeat`` times, interleaved; print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma list of {list(PEERS)}")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rates", default="0,20000", help="total producer rates (0 = max)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per peer and rate")
    parser.add_argument("--message-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    results: list[Result] = []
    for _ in range(args.repeat):
        for rate in (int(r) for r in args.rates.split(",")):
            workload = Workload(
                partitions_per_topic=args.partitions,
                message_size=args.message_size,
                producer_rate=rate,
                duration_s=args.duration,
                batch_size=args.batch_size,
            )
            for peer in peers:
                results.append(PEERS[peer](workload))
                print(format_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(format_table(results), file=sys.stderr)
    medians = summary(results)
    for key, value in medians.items():
        print(f"{key:<48}{value:>14.2f}", file=sys.stderr)
    print(json.dumps({"results": [r.as_dict() for r in results], "summary": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
