"""The broker's batch operations: `append_batch` stores a producer batch as one
record; `read_batches` serves it whole, `read` message by message. In-process and
over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_broker import Harness, broker, harness

from omconnect import batch_codec, codec
from omconnect.broker.aio_client import AsyncBrokerClient
from omconnect.broker.api import BrokerApi, ReadResult
from omconnect.broker.broker import Broker
from omconnect.broker.client import BrokerClient
from omconnect.broker.server import BrokerServer, ServerThread
from omconnect.broker.store import StoreConfig
from omconnect.errors import CorruptDataError, MessageTooLargeError
from omconnect.message import Message

__all__ = ["broker", "harness"]  # fixtures, used by name


def batch(*bodies: bytes, **headers: object) -> bytes:
    return batch_codec.encode_batch([Message(b, **headers) for b in bodies])  # type: ignore[arg-type]


def bodies(result: ReadResult) -> list[bytes]:
    return [m.body for s in result.messages for m in batch_codec.decode_any(s.encoded)]


def test_a_batch_takes_consecutive_offsets(broker: Broker) -> None:
    broker.append("ns", "q", 0, [codec.encode(Message(b"single"))])
    assert broker.append_batch("ns", "q", 0, batch(b"a", b"b", b"c")) == 1
    assert broker.offset_range("ns", "q", 0) == (0, 4)
    whole = broker.read_batches("ns", "q", 0, 0, 100, 0)
    assert [(m.offset, m.count) for m in whole.messages] == [(0, 1), (1, 3)]
    assert bodies(whole) == [b"single", b"a", b"b", b"c"] and whole.next_offset == 4


def test_read_serves_a_batch_message_by_message(broker: Broker) -> None:
    broker.append_batch("ns", "q", 0, batch(b"a", b"b", b"c", b"d", message_key="k"))
    result = broker.read("ns", "q", 0, 1, 2, 0)  # from inside the batch, fewer than it holds
    assert [(m.offset, m.count) for m in result.messages] == [(1, 1), (2, 1)]
    decoded = [codec.decode(m.encoded) for m in result.messages]
    assert [(m.body, m.message_key) for m in decoded] == [(b"b", "k"), (b"c", "k")]
    assert result.next_offset == 3
    assert bodies(broker.read("ns", "q", 0, 3, 10, 0)) == [b"d"]


def test_read_batches_from_inside_a_batch_returns_it_whole(broker: Broker) -> None:
    broker.append_batch("ns", "q", 0, batch(b"a", b"b", b"c"))
    result = broker.read_batches("ns", "q", 0, 2, 1, 0)
    assert [(m.offset, m.count) for m in result.messages] == [(0, 3)]
    assert result.next_offset == 3


def test_expired_messages_of_a_batch_are_skipped(harness: Harness, broker: Broker) -> None:
    now = harness.clock.now
    messages = [
        Message(b"expired", expire_time=now - 1),
        Message(b"live"),
        Message(b"soon", expire_time=now + 100),
    ]
    broker.append_batch("ns", "q", 0, batch_codec.encode_batch(messages))
    for read in (broker.read, broker.read_batches):
        result = read("ns", "q", 0, 0, 10, 0)
        assert bodies(result) == [b"live", b"soon"] and result.next_offset == 3
    harness.clock.now += 101
    assert bodies(broker.read_batches("ns", "q", 0, 0, 10, 0)) == [b"live"]
    result = broker.read_batches("ns", "q", 0, 2, 10, 0)
    assert result.messages == [] and result.next_offset == 3


def test_a_batch_over_the_message_limit_is_stored_message_by_message(
    harness: Harness, broker: Broker
) -> None:
    limit = broker.config.max_message_bytes  # 64 KiB in the harness
    big = [b"x" * (limit // 2)] * 3
    assert broker.append_batch("ns", "q", 0, batch(*big)) == 0
    result = broker.read_batches("ns", "q", 0, 0, 10, 0)
    assert [(m.offset, m.count) for m in result.messages] == [(0, 1), (1, 1), (2, 1)]
    with pytest.raises(MessageTooLargeError):
        broker.append_batch("ns", "q", 0, batch(b"y" * (limit + 1), b"z"))
    assert broker.offset_range("ns", "q", 0) == (0, 3)


def test_a_corrupt_batch_is_refused_and_nothing_stored(broker: Broker) -> None:
    encoded = bytearray(batch(b"a", b"b"))
    encoded[-1] ^= 0x01
    with pytest.raises(CorruptDataError):
        broker.append_batch("ns", "q", 0, bytes(encoded))
    with pytest.raises(CorruptDataError):  # one message's encoding is not a batch
        broker.append_batch("ns", "q", 0, codec.encode(Message(b"a" * 20)))
    assert broker.offset_range("ns", "q", 0) == (0, 0)


def test_batches_survive_a_restart(harness: Harness, broker: Broker) -> None:
    broker.append_batch("ns", "q", 1, batch(b"a", b"b"))
    broker.append("ns", "q", 1, [codec.encode(Message(b"c"))])
    again = harness.reopen(broker)
    assert bodies(again.read_batches("ns", "q", 1, 0, 10, 0)) == [b"a", b"b", b"c"]
    assert again.append_batch("ns", "q", 1, batch(b"d", b"e")) == 3


def test_the_default_batch_operations_work_message_by_message(broker: Broker) -> None:
    defaults = BrokerApi.append_batch, BrokerApi.read_batches
    assert broker.append_batch("ns", "q", 0, batch(b"0")) == 0
    assert defaults[0](broker, "ns", "q", 0, batch(b"a", b"b")) == 1
    result = defaults[1](broker, "ns", "q", 0, 0, 10, 0)
    assert [(m.offset, m.count) for m in result.messages] == [(0, 1), (1, 1), (2, 1)]
    assert bodies(result) == [b"0", b"a", b"b"]


# -- over TCP ---------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    from omconnect.broker.config import BrokerConfig

    b = Broker(
        BrokerConfig(
            data_dir=tmp_path / "b",
            store=StoreConfig(segment_bytes=1 << 20, max_message_bytes=64 << 10),
        )
    )
    thread = ServerThread(BrokerServer(b, port=0)).start()
    yield thread
    thread.stop()
    b.close()


def test_batch_operations_over_tcp(server: ServerThread) -> None:
    client = BrokerClient(server.address, request_timeout=5.0)
    try:
        client.create_queue("ns", "q", 1)
        assert client.append_batch("ns", "q", 0, batch(b"a", b"b", b"c")) == 0
        assert client.append_batch_async("ns", "q", 0, batch(b"d", b"e")).result(5) == 3
        result = client.read_batches("ns", "q", 0, 4, 10, 0)
        assert [(m.offset, m.count) for m in result.messages] == [(3, 2)]
        assert bodies(client.read_batches("ns", "q", 0, 0, 10, 0)) == [b"a", b"b", b"c", b"d", b"e"]
        assert [m.offset for m in client.read("ns", "q", 0, 1, 3, 0).messages] == [1, 2, 3]
        with pytest.raises(CorruptDataError):
            client.append_batch("ns", "q", 0, b"not a batch at all")
        # A large batch: its answer arrives in many pieces and is read into one buffer.
        large = [bytes([i]) * 20_000 for i in range(30)]
        assert client.append_batch("ns", "q", 0, batch(*large)) == 5
        for _ in range(3):  # several large answers back to back on one connection
            result = client.read_batches("ns", "q", 0, 5, 100, 0)
            assert bodies(result) == large
    finally:
        client.close()


def test_batch_operations_over_the_async_client(server: ServerThread) -> None:
    async def main() -> None:
        async with AsyncBrokerClient(server.address, request_timeout=5) as c:
            await c.create_queue("ns", "q", 1)
            assert await c.append_batch("ns", "q", 0, batch(b"a", b"b")) == 0
            result = await c.read_batches("ns", "q", 0, 1, 10, 0)
            assert [(m.offset, m.count) for m in result.messages] == [(0, 2)]

    asyncio.run(main())


# -- producer and consumer --------------------------------------------------------------


def test_a_group_resumes_inside_a_batch(tmp_path: Path) -> None:
    from omconnect.access_point import MessagingAccessPoint
    from omconnect.testing.conformance import FAST, receive_n

    url = f"oms:embedded://local/ns?data_dir={tmp_path / 'data'}"
    with MessagingAccessPoint.open(url) as ap:
        ap.resources.create_queue("q", 1)
        sent = ap.create_producer().send_batch(
            [Message(b"%d" % i, destination="q", properties={"i": str(i)}) for i in range(10)]
        )
        assert [r.offset for r in sent] == list(range(10))
        assert ap.backend.read_batches("ns", "q", 0, 0, 100, 0).messages[0].count == 10
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            first = consumer.batch_receive(4, timeout_ms=5000)
            for message in first:
                consumer.ack(message)
        assert ap.backend.committed_offsets("ns", "g", "q") == {0: 4}
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            rest = receive_n(consumer, 6)
    assert [(m.offset, m.body, m.properties["i"]) for m in first + rest] == [
        (i, b"%d" % i, str(i)) for i in range(10)
    ]


def test_an_unacked_message_of_a_batch_comes_back_alone(tmp_path: Path) -> None:
    from omconnect.access_point import MessagingAccessPoint
    from omconnect.testing.conformance import FAST

    url = f"oms:embedded://local/ns?data_dir={tmp_path / 'data'}"
    with MessagingAccessPoint.open(url) as ap:
        ap.resources.create_queue("q", 1)
        ap.create_producer().send_batch([Message(b"%d" % i, destination="q") for i in range(3)])
        options = {**FAST, "ack_timeout_ms": 200, "retry_backoff_ms": 10}
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **options) as c:
            got = c.batch_receive(3, timeout_ms=5000)
            assert [m.body for m in got] == [b"0", b"1", b"2"]
            c.ack(got[0])
            c.ack(got[2])
            again = None
            for _ in range(100):
                again = c.receive(timeout_ms=100)
                if again is not None:
                    break
            assert again is not None and (again.body, again.delivery_count) == (b"1", 1)
            assert again.properties["ORIGIN_OFFSET"] == "1"


def test_a_send_callback_may_send_synchronously(server: ServerThread) -> None:
    """Callbacks on async sends never run on the client's reader thread: a sync send
    from one would wait for an answer only that thread can read."""
    import threading

    from omconnect.producer import Producer

    client = BrokerClient(server.address, request_timeout=5.0)
    try:
        client.create_queue("ns", "q", 1)
        producer = Producer(client, "ns")
        outcome: list[object] = []
        done = threading.Event()

        def callback(_: object) -> None:
            try:
                outcome.append(producer.send(Message(b"from a callback", destination="q")))
            except Exception as exc:
                outcome.append(exc)
            done.set()

        for _ in range(20):
            future = producer.send_batch_async([Message(b"a", destination="q")] * 3)
            future.add_done_callback(callback)
            assert done.wait(10)
            done.clear()
        producer.close()
        assert all(not isinstance(o, Exception) for o in outcome), outcome
        assert client.offset_range("ns", "q", 0) == (0, 20 * 4)
    finally:
        client.close()
