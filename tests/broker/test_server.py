"""The TCP server and both clients, over real sockets on 127.0.0.1 with free ports."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from omconnect import codec
from omconnect.broker.aio_client import AsyncBrokerClient
from omconnect.broker.api import KvEvent, QueueInfo
from omconnect.broker.broker import Broker
from omconnect.broker.client import BrokerClient
from omconnect.broker.config import BrokerConfig
from omconnect.broker.protocol import (
    FLAG_RESPONSE,
    HEADER,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    BrokerInternalError,
    ErrorCode,
    Op,
    encode_frame,
)
from omconnect.broker.server import BrokerServer, ServerThread
from omconnect.errors import (
    AlreadyExistsError,
    CompactedError,
    ConfigError,
    ConnectionLostError,
    CorruptDataError,
    MessageTooLargeError,
    NotFoundError,
    ProtocolError,
    TimeoutError_,
)
from omconnect.message import Message

NS = "ns"


def msg(body: bytes) -> bytes:
    return codec.encode(Message(body, destination="q"))


def make_broker(data_dir: Path) -> Broker:
    return FaultyBroker(BrokerConfig(data_dir=data_dir, transaction_check_interval_ms=1))


class FaultyBroker(Broker):
    """The real broker, plus failures that are hard to provoke on demand."""

    def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        if prefix == "compacted/":
            raise CompactedError("revision 1 was compacted")
        if prefix == "bug/":
            raise RuntimeError("a bug")
        return super().kv_watch(namespace, prefix, from_revision, max_wait_ms)

    def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        if queue == "slow":
            time.sleep(0.5)
        return super().offset_range(namespace, queue, partition)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = make_broker(tmp_path / "broker")
    yield b
    b.close()


@pytest.fixture
def server(broker: Broker) -> Iterator[ServerThread]:
    thread = ServerThread(BrokerServer(broker, port=0, max_frame_bytes=8 << 20)).start()
    yield thread
    thread.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[BrokerClient]:
    c = BrokerClient(server.address, request_timeout=5.0)
    yield c
    c.close()


def test_binds_loopback_and_a_free_port(server: ServerThread) -> None:
    assert server.server.host == "127.0.0.1"
    assert server.port > 0


def test_every_method_round_trips(client: BrokerClient) -> None:
    client.ping()
    client.create_namespace(NS)
    client.create_namespace("other")
    assert client.list_namespaces() == [NS, "other"]
    client.delete_namespace("other")
    assert client.create_queue(NS, "q", 2) == QueueInfo(NS, "q", 2)
    client.create_queue(NS, "gone", 1)
    client.delete_queue(NS, "gone")
    assert client.list_queues(NS) == [QueueInfo(NS, "q", 2)]
    assert client.queue_info(NS, "q") == QueueInfo(NS, "q", 2)

    batch = [msg(b"a"), msg(b"b" * 1000), msg(b"")]
    assert client.append(NS, "q", 1, batch) == [0, 1, 2]
    assert client.append_async(NS, "q", 1, (msg(b"d"),)).result(5) == [3]
    client.append_delayed(NS, "q", 0, [msg(b"later")], [int(time.time() * 1000) + 60_000])
    result = client.read(NS, "q", 1, 1, 10, 0)
    assert [m.offset for m in result.messages] == [1, 2, 3]
    assert [codec.decode(m.encoded).body for m in result.messages] == [b"b" * 1000, b"", b"d"]
    assert result.next_offset == 4
    assert client.offset_range(NS, "q", 1) == (0, 4)

    client.prepare(NS, "pg", "tx1", "q", 0, [msg(b"half")])
    checks = client.transaction_checks(NS, "pg", 2000)
    assert [(h.transaction_id, h.queue, h.partition) for h in checks] == [("tx1", "q", 0)]
    client.end_transaction(NS, "tx1", True)
    assert client.transaction_checks(NS, "pg", 0) == []
    assert client.offset_range(NS, "q", 0) == (0, 1)  # the delayed message is not due

    client.commit_offsets(NS, "g", "q", {0: 2, 1: 4})
    assert client.committed_offsets(NS, "g", "q") == {0: 2, 1: 4}

    assert client.kv_get(NS, "k") is None
    rev = client.kv_put(NS, "k", b"\x00v1")
    kv = client.kv_get(NS, "k")
    assert kv is not None and (kv.value, kv.revision) == (b"\x00v1", rev)
    assert client.kv_cas(NS, "k", b"v2", rev + 100) is None
    rev2 = client.kv_cas(NS, "k", b"v2", rev, ttl_ms=60_000)
    assert rev2 == rev + 1
    assert [k.key for k in client.kv_list(NS, "")] == ["k"]
    events, next_rev = client.kv_watch(NS, "k", rev, 0)
    assert [(e.kind, e.value) for e in events] == [("put", b"\x00v1"), ("put", b"v2")]
    assert next_rev == rev2 + 1
    assert client.kv_delete(NS, "k", expected_revision=rev) is False
    assert client.kv_delete(NS, "k") is True


def test_errors_arrive_as_the_same_classes(client: BrokerClient) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        client.queue_info(NS, "missing")
    with pytest.raises(ConfigError) as config_error:
        client.create_queue(NS, "q", 0)
    assert config_error.value.key == "partitions"
    client.create_queue(NS, "q", 2)
    with pytest.raises(AlreadyExistsError):
        client.create_queue(NS, "q", 1)
    with pytest.raises(CorruptDataError):
        client.append(NS, "q", 0, [b"not an encoding at all"])
    with pytest.raises(MessageTooLargeError):
        client.append(NS, "q", 0, [b"x" * (5 << 20)])  # the client's own limit is 64 MiB
    with pytest.raises(CompactedError):
        client.kv_watch(NS, "compacted/", 1, 0)
    with pytest.raises(BrokerInternalError, match="RuntimeError: a bug"):
        client.kv_watch(NS, "bug/", 1, 0)
    client.ping()  # errors leave the connection usable


def test_long_poll_does_not_block_an_append(client: BrokerClient) -> None:
    client.create_queue(NS, "q", 1)
    polled: list[object] = []
    poller = threading.Thread(target=lambda: polled.append(client.read(NS, "q", 0, 0, 10, 5000)))
    poller.start()
    time.sleep(0.1)  # let the poll park on the server
    started = time.monotonic()
    assert client.append(NS, "q", 0, [msg(b"wake")]) == [0]
    assert time.monotonic() - started < 1.0
    poller.join(5)
    (result,) = polled
    assert [m.offset for m in result.messages] == [0]  # type: ignore[attr-defined]


def test_pipelined_appends_keep_their_order(client: BrokerClient) -> None:
    client.create_queue(NS, "q", 2)
    futures = [client.append_async(NS, "q", i % 2, [msg(b"%d" % i)]) for i in range(400)]
    offsets = [f.result(10) for f in futures]
    assert [o[0] for o in offsets[0::2]] == list(range(200))
    assert [o[0] for o in offsets[1::2]] == list(range(200))
    bodies = [codec.decode(m.encoded).body for m in client.read(NS, "q", 0, 0, 500, 0).messages]
    assert bodies == [b"%d" % i for i in range(0, 400, 2)]


def test_concurrent_threads_share_one_client(client: BrokerClient) -> None:
    client.create_queue(NS, "q", 8)
    errors: list[BaseException] = []

    def work(partition: int) -> None:
        try:
            for i in range(50):
                assert client.append(NS, "q", partition, [msg(b"x")]) == [i]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []


def test_request_timeout_is_a_clear_error(server: ServerThread) -> None:
    with BrokerClientContext(server.address, request_timeout=0.1) as c:
        c.create_queue(NS, "slow", 1)
        with pytest.raises(TimeoutError_, match=r"within 0\.1 s"):
            c.offset_range(NS, "slow", 0)
        time.sleep(0.5)
        c.ping()  # the late answer is dropped; the connection still works


def test_request_over_the_clients_frame_limit_is_refused_locally(server: ServerThread) -> None:
    with BrokerClientContext(server.address, max_frame_bytes=4096) as c:
        c.create_queue(NS, "q", 1)
        with pytest.raises(ProtocolError, match="exceeds max_frame_bytes"):
            c.append(NS, "q", 0, [msg(b"x" * 5000)])
        c.ping()


# -- misbehaving clients ---------------------------------------------------------------


def raw_exchange(port: int, data: bytes) -> tuple[list[tuple[int, int, int, Any]], bool]:
    """Send ``data`` on a fresh socket; return the frames received and whether the server
    closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        closed = False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except TimeoutError:
            pass
    frames = []
    pos = 0
    while pos + HEADER_SIZE <= len(received):
        length, _, opcode, flags, request_id = HEADER.unpack_from(received, pos)
        body = msgpack.unpackb(received[pos + HEADER_SIZE : pos + 4 + length])
        frames.append((opcode, flags, request_id, body))
        pos += 4 + length
    return frames, closed


@pytest.mark.parametrize(
    ("data", "request_id"),
    [
        (b"GET / HTTP/1", None),  # garbage: an absurd length
        (HEADER.pack(16 << 20, PROTOCOL_VERSION, Op.PING, 0, 99), 99),  # over the 8 MiB limit
        (encode_frame(200, 5, msgpack.packb([])), 5),  # unknown opcode
        (encode_frame(Op.QUEUE_INFO, 6, b"\xc1\xc1"), 6),  # body not msgpack
        (encode_frame(Op.QUEUE_INFO, 7, msgpack.packb([1, 2])), 7),  # wrong argument types
        (HEADER.pack(7, 3, Op.PING, 0, 8), 8),  # unknown version
    ],
    ids=["garbage", "oversize", "unknown-opcode", "bad-body", "bad-args", "bad-version"],
)
def test_bad_frames_get_an_error_and_the_server_keeps_serving(
    server: ServerThread, client: BrokerClient, data: bytes, request_id: int | None
) -> None:
    client.ping()
    frames, closed = raw_exchange(server.port, encode_frame(Op.PING, 1, b"\x90") + data)
    assert closed
    assert frames[0] == (Op.PING, FLAG_RESPONSE, 1, None)  # the good request before it
    opcode, flags, got_id, body = frames[1]
    assert (opcode, flags, body[0]) == (Op.ERROR, FLAG_RESPONSE, ErrorCode.PROTOCOL)
    if request_id is not None:
        assert got_id == request_id
    client.ping()  # other clients are unaffected
    with BrokerClientContext(server.address) as fresh:
        fresh.ping()


# -- connection lifecycle --------------------------------------------------------------


class BrokerClientContext(BrokerClient):
    def __enter__(self) -> BrokerClientContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def test_client_reconnects_after_server_restart(broker: Broker) -> None:
    first = ServerThread(BrokerServer(broker, port=0)).start()
    port = first.port
    with BrokerClientContext(f"127.0.0.1:{port}", request_timeout=5) as c:
        c.create_queue(NS, "q", 1)
        polled: list[BaseException] = []

        def poll() -> None:
            try:
                c.read(NS, "q", 0, 0, 1, 5000)
            except BaseException as exc:
                polled.append(exc)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.1)
        first.stop()
        poller.join(5)
        assert len(polled) == 1 and isinstance(polled[0], ConnectionLostError)
        with pytest.raises(ConnectionLostError, match=f"127.0.0.1:{port}"):
            c.ping()
        second = ServerThread(BrokerServer(broker, port=port)).start()
        try:
            assert c.queue_info(NS, "q") == QueueInfo(NS, "q", 1)
        finally:
            second.stop()


def test_address_list_is_tried_in_order(server: ServerThread) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # nothing listens there
    with BrokerClientContext(f"127.0.0.1:{dead},{server.address}") as c:
        c.ping()
    with pytest.raises(ConnectionLostError, match=f"127.0.0.1:{dead}"):
        BrokerClient(f"127.0.0.1:{dead}").ping()
    with pytest.raises(ConfigError):
        BrokerClient("no-port")


# -- asyncio client --------------------------------------------------------------------


def test_async_client(server: ServerThread) -> None:
    async def main() -> None:
        async with AsyncBrokerClient(server.address, request_timeout=5) as c:
            await c.ping()
            assert await c.create_queue(NS, "q", 1) == QueueInfo(NS, "q", 1)
            poll = asyncio.ensure_future(c.read(NS, "q", 0, 0, 10, 5000))
            await asyncio.sleep(0.1)
            assert await c.append(NS, "q", 0, [msg(b"a"), msg(b"b")]) == [0, 1]
            result = await asyncio.wait_for(poll, 5)
            assert [m.offset for m in result.messages] == [0, 1]
            offsets = await asyncio.gather(*(c.append(NS, "q", 0, [msg(b"x")]) for _ in range(50)))
            assert sorted(o[0] for o in offsets) == list(range(2, 52))
            rev = await c.kv_put(NS, "k", b"v")
            assert (await c.kv_watch(NS, "", rev, 0))[0][0].value == b"v"
            with pytest.raises(NotFoundError):
                await c.queue_info(NS, "missing")
            with pytest.raises(CompactedError):
                await c.kv_watch(NS, "compacted/", 1, 0)
            assert await c.list_namespaces() == [NS]

    asyncio.run(main())


def test_async_client_reports_a_lost_connection(broker: Broker) -> None:
    thread = ServerThread(BrokerServer(broker, port=0)).start()

    async def main() -> None:
        c = AsyncBrokerClient(thread.address, request_timeout=5)
        await c.create_queue(NS, "q", 1)
        poll = asyncio.ensure_future(c.read(NS, "q", 0, 0, 1, 5000))
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, thread.stop)
        with pytest.raises(ConnectionLostError):
            await poll
        with pytest.raises(ConnectionLostError):
            await c.ping()
        await c.close()

    asyncio.run(main())


def test_broker_process_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    from omconnect.testing.broker_process import start_broker

    process = start_broker(tmp_path)
    try:
        with BrokerClientContext(f"{process.host}:{process.port}", request_timeout=5) as c:
            c.create_queue(NS, "q", 1)
            assert c.append(NS, "q", 0, [msg(b"kept")]) == [0]
            polled: list[BaseException] = []

            def poll() -> None:
                try:
                    c.read(NS, "q", 0, 1, 1, 5000)
                except BaseException as exc:
                    polled.append(exc)

            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.1)
            process.process.send_signal(signal.SIGTERM)
            assert process.process.wait(10) == 0, process.log_tail()
            poller.join(5)
            assert len(polled) == 1 and isinstance(polled[0], ConnectionLostError)
    finally:
        process.stop()


def test_a_taken_port_fails_start(server: ServerThread, broker: Broker) -> None:
    with pytest.raises(OSError):
        ServerThread(BrokerServer(broker, port=server.port)).start()
