"""The producer's sender thread: async sends go out in rounds without waiting for
each answer, and are settled in order, in the sender thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from omconnect import batch_codec, codec
from omconnect.broker.api import QueueInfo
from omconnect.errors import ConnectionLostError, TimeoutError_
from omconnect.message import Message
from omconnect.producer import Producer


class PipelinedBackend:
    """Answers ``append_batch_async`` with futures the test completes; ``append``
    (single messages) at once. Offsets count up per partition."""

    def __init__(self, partitions: int = 2) -> None:
        self.partitions = partitions
        self.sent: list[tuple[int, int, Future[int]]] = []  # (partition, count, future)
        self.next: dict[int, int] = {}
        self.lock = threading.Lock()

    def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        return QueueInfo(namespace, queue, self.partitions)

    def append_batch_async(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> Future[int]:
        future: Future[int] = Future()
        with self.lock:
            self.sent.append((partition, batch_codec.batch_count(batch), future))
        return future

    def append(
        self, namespace: str, queue: str, partition: int, messages: list[bytes]
    ) -> list[int]:
        for m in messages:
            codec.verify(m)
        return [self._take(partition, 1) + i for i in range(len(messages))]

    def _take(self, partition: int, count: int) -> int:
        with self.lock:
            first = self.next.get(partition, 0)
            self.next[partition] = first + count
        return first

    def answer_all(self, error: BaseException | None = None) -> None:
        """Complete every request sent so far, in order."""
        with self.lock:
            sent, self.sent = self.sent, []
        for partition, count, future in sent:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(self._take(partition, count))

    def wait_for_requests(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.sent) < count:
            assert time.monotonic() < deadline, "the sender did not send"
            time.sleep(0.01)


def batch(n: int, partition: int = 0) -> list[Message]:
    return [Message(b"m%d" % i, destination="q", partition=partition) for i in range(n)]


def test_rounds_go_out_before_earlier_ones_are_answered() -> None:
    backend = PipelinedBackend()
    producer = Producer(backend, "ns")  # type: ignore[arg-type]
    first = producer.send_batch_async(batch(3))
    backend.wait_for_requests(1)
    second = producer.send_batch_async(batch(2, partition=1))
    backend.wait_for_requests(2)  # sent although the first has no answer yet
    assert not first.done() and not second.done()
    settled_in: list[str] = []
    called = threading.Event()

    def callback(_: Future[object]) -> None:
        settled_in.append(threading.current_thread().name)
        called.set()

    first.add_done_callback(callback)
    backend.answer_all()  # this thread plays the client's reader thread
    assert [(r.partition, r.offset) for r in first.result(5)] == [(0, 0), (0, 1), (0, 2)]
    assert [(r.partition, r.offset) for r in second.result(5)] == [(1, 0), (1, 1)]
    assert called.wait(5)
    assert settled_in == ["omconnect-producer-sender"]  # never the completing thread
    producer.close()


def test_flush_returns_once_every_earlier_send_is_settled() -> None:
    backend = PipelinedBackend()
    producer = Producer(backend, "ns")  # type: ignore[arg-type]
    futures = [producer.send_batch_async(batch(2)) for _ in range(3)]
    single = producer.send_async(Message(b"alone", destination="q", partition=1))
    backend.wait_for_requests(1)
    answerer = threading.Thread(target=lambda: (time.sleep(0.2), backend.answer_all()))
    answerer.start()
    producer.flush()
    assert all(f.done() for f in futures) and single.done()
    answerer.join()
    offsets = [r.offset for f in futures for r in f.result()]
    assert offsets == list(range(6)) and single.result().offset == 0
    producer.close()


def test_a_failed_round_fails_its_waiters_only() -> None:
    backend = PipelinedBackend()
    producer = Producer(backend, "ns")  # type: ignore[arg-type]
    doomed = producer.send_batch_async(batch(2))
    backend.wait_for_requests(1)
    backend.answer_all(ConnectionLostError("gone"))
    with pytest.raises(ConnectionLostError):
        doomed.result(5)
    later = producer.send_batch_async(batch(2))
    backend.wait_for_requests(1)
    backend.answer_all()
    assert [r.offset for r in later.result(5)] == [0, 1]
    producer.close()


def test_a_cancelled_send_stays_cancelled() -> None:
    backend = PipelinedBackend()
    producer = Producer(backend, "ns")  # type: ignore[arg-type]
    first = producer.send_batch_async(batch(2))
    backend.wait_for_requests(1)
    assert first.cancel()
    later = producer.send_batch_async(batch(1))
    backend.answer_all()
    backend.wait_for_requests(1)
    backend.answer_all()
    assert first.cancelled() and [r.offset for r in later.result(5)] == [2]
    producer.close()


def test_a_round_without_an_answer_times_out() -> None:
    backend = PipelinedBackend()
    producer = Producer(backend, "ns")  # type: ignore[arg-type]
    producer._round_timeout_s = 0.2
    lost = producer.send_batch_async(batch(2))
    with pytest.raises(TimeoutError_):
        lost.result(10)
    producer.close()
