"""`BrokerClient`: the `BrokerApi` over TCP, sync and thread-safe, on one multiplexed socket.

Every call sends one request frame and waits on a `concurrent.futures.Future` that a
reader thread completes when the response with its request id arrives. Calls from
many threads share the socket and are in flight together, so a long poll in one
thread never holds up an append in another, and `call_async` lets a producer
pipeline many appends without waiting for each.

Connection lifecycle: the client connects on its first call, to the first address
of its list that accepts. When the connection drops, every call in flight fails with
`ConnectionLostError` (its effect on the broker is unknown); the next call connects
again. Nothing is retried behind the caller's back.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from omconnect.broker.api import BrokerApi, HalfMessage, KeyValue, KvEvent, QueueInfo, ReadResult
from omconnect.broker.frame_parts import request_frame_parts
from omconnect.broker.protocol import (
    CONNECTION_REQUEST_ID,
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    MAX_REQUEST_ID,
    Op,
    decode_error,
    decode_header,
    decode_response,
    request_frame,
)
from omconnect.errors import (
    ConfigError,
    ConnectionLostError,
    OmConnectError,
    ProtocolError,
    TimeoutError_,
)

logger = logging.getLogger(__name__)

_RECV_SIZE = 1 << 18
_LARGE_BODY = 1 << 16  # bodies from this size on are read into a buffer of their own


def _recv_exactly(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``; False if the peer closed first."""
    while view:
        received = sock.recv_into(view)
        if not received:
            return False
        view = view[received:]
    return True


def parse_addresses(addresses: str | Sequence[str]) -> list[tuple[str, int]]:
    """``"host:port"``, ``"h1:p1,h2:p2"`` or a list of them → [(host, port), ...].

    Raises `ConfigError` for an empty list or an entry without a numeric port.
    """
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    result: list[tuple[str, int]] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("broker address", f"{item!r} is not host:port")
        result.append((host.strip("[]"), int(port)))
    if not result:
        raise ConfigError("broker address", "no address given")
    return result


def _as_list(values: Sequence[Any]) -> list[Any] | tuple[Any, ...]:
    return values if isinstance(values, list | tuple) else list(values)


def _send_all(sock: socket.socket, parts: list[bytes | bytearray]) -> None:
    """Send ``parts`` back to back, gathering them in one ``sendmsg`` call where the
    socket takes it all (no copy of a large part into a frame)."""
    if len(parts) == 1:
        sock.sendall(parts[0])
        return
    views = [memoryview(part) for part in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


class _Connection:
    """One socket, its reader thread and the calls waiting on it."""

    def __init__(self, sock: socket.socket, address: str, max_frame_bytes: int) -> None:
        self.sock = sock
        self.address = address
        self.max_frame_bytes = max_frame_bytes
        self.pending: dict[int, tuple[Future[Any], Op]] = {}
        self.lock = threading.Lock()
        self.closed = False
        self._reason: OmConnectError | None = None
        self._reader = threading.Thread(
            target=self._read_loop, name=f"broker-client-{address}", daemon=True
        )
        self._reader.start()

    def register(self, request_id: int, future: Future[Any], op: Op) -> None:
        with self.lock:
            if self.closed:
                raise ConnectionLostError(f"connection to broker {self.address} is closed")
            self.pending[request_id] = (future, op)

    def forget(self, request_id: int) -> None:
        with self.lock:
            self.pending.pop(request_id, None)

    def close(self, reason: OmConnectError) -> None:
        """Close the socket and fail every pending call with ``reason``. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            pending, self.pending = self.pending, {}
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        for future, _ in pending.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(reason)

    def _read_loop(self) -> None:
        detail = ""
        try:
            self._read_frames()
        except ProtocolError as exc:
            logger.warning("broker %s: %s; closing the connection", self.address, exc)
            detail = f": {exc}"
        except OSError as exc:
            detail = f": {exc}"
        finally:
            lost = ConnectionLostError(f"connection to broker {self.address} lost{detail}")
            self.close(self._reason or lost)

    def _read_frames(self) -> None:
        """Read frames until the peer closes; complete each call as its answer arrives.
        A large body still arriving is read straight into its own buffer (not
        gathered in ``buf`` first): a fetch of many messages is copied once."""
        buf = bytearray()
        recv = self.sock.recv
        while True:
            chunk = recv(_RECV_SIZE)
            if not chunk:
                return
            buf += chunk
            pos = 0
            size = len(buf)
            while size - pos >= HEADER_SIZE:
                header = decode_header(
                    memoryview(buf)[pos : pos + HEADER_SIZE], self.max_frame_bytes
                )
                start = pos + HEADER_SIZE
                end = start + header.body_length
                if end > size:
                    if header.body_length < _LARGE_BODY:
                        break
                    body = bytearray(header.body_length)
                    body[: size - start] = memoryview(buf)[start:size]
                    if not _recv_exactly(self.sock, memoryview(body)[size - start :]):
                        return
                    end = size
                else:
                    body = buf[start:end]
                self._complete(header.opcode, header.flags, header.request_id, body)
                pos = end
            if pos:
                del buf[:pos]

    def _complete(self, opcode: int, flags: int, request_id: int, body: bytearray) -> None:
        if request_id == CONNECTION_REQUEST_ID:
            # The broker says what is wrong with the connection, then closes it.
            self._reason = ConnectionLostError(
                f"broker {self.address} closed the connection: {decode_error(body)}"
            )
            return
        with self.lock:
            entry = self.pending.pop(request_id, None)
        if entry is None:
            return  # the caller timed out or cancelled
        future, op = entry
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = decode_response(opcode, flags, body, op)
        except OmConnectError as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


class BrokerClient(BrokerApi):
    """`BrokerApi` over TCP to ``addresses`` (``"host:port"``, ``"h1:p1,h2:p2"`` or a list).

    Thread-safe. ``request_timeout`` (s) bounds each call beyond its own
    ``max_wait_ms``; a call that exceeds it raises `TimeoutError_` (its effect on the
    broker is unknown). Callbacks added to `call_async` futures run in the reader
    thread: they must not block, nor make sync calls on this client.
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.addresses = parse_addresses(addresses)
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_frame_bytes = max_frame_bytes
        self._connection: _Connection | None = None
        self._connect_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False

    # -- plumbing ------------------------------------------------------------------

    def call_async(self, op: Op, *args: Any) -> Future[Any]:
        """Send one request now and return the future of its result.

        ``args`` are the `BrokerApi` method's arguments in order, lists or tuples for
        sequences. The future fails with the broker's error, `ConnectionLostError`,
        or `ProtocolError`; it is never retried. Raises at once (instead of returning)
        when the request cannot be sent: `ConnectionLostError` if no broker accepts a
        connection, `ProtocolError` for a frame over ``max_frame_bytes``.
        """
        return self._send(op, lambda request_id: [request_frame(op, request_id, args)])

    def _send(self, op: Op, frame_parts: Callable[[int], list[bytes | bytearray]]) -> Future[Any]:
        """Send the request frame ``frame_parts(request_id)`` gives (in parts sent
        back to back); return the future of its result."""
        future: Future[Any] = Future()
        request_id = next(self._ids) % MAX_REQUEST_ID + 1  # 1 .. 2**32-1; 0 is reserved
        parts = frame_parts(request_id)
        size = sum(map(len, parts))
        if size > self.max_frame_bytes:
            raise ProtocolError(
                f"request of {size} bytes exceeds max_frame_bytes={self.max_frame_bytes}"
            )
        connection = self._connected()
        try:
            connection.register(request_id, future, op)
        except ConnectionLostError:  # it dropped just now, before we sent anything: safe to redo
            connection = self._connected()
            connection.register(request_id, future, op)
        try:
            with self._send_lock:
                _send_all(connection.sock, parts)
        except OSError as exc:
            connection.close(ConnectionLostError(f"sending to broker {connection.address}: {exc}"))
        return future

    def call(self, op: Op, *args: Any, max_wait_ms: int = 0) -> Any:
        """Send one request and wait for its result (see `call_async`)."""
        return self._wait(self.call_async(op, *args), max_wait_ms)

    def _wait(self, future: Future[Any], max_wait_ms: int) -> Any:
        timeout = self.request_timeout + max(max_wait_ms, 0) / 1000.0
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError_(f"no answer from the broker within {timeout:.1f} s") from None

    def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        with self._connect_lock:
            if self._closed:
                raise ConnectionLostError("the broker client is closed")
            connection = self._connection
            if connection is not None and not connection.closed:
                return connection
            self._connection = connection = self._open()
            return connection

    def _open(self) -> _Connection:
        errors: list[str] = []
        for host, port in self.addresses:
            try:
                sock = socket.create_connection((host, port), timeout=self.connect_timeout)
            except OSError as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _Connection(sock, f"{host}:{port}", self.max_frame_bytes)
        raise ConnectionLostError("cannot connect to the broker: " + "; ".join(errors))

    def close(self) -> None:
        """Close the connection; calls in flight fail with `ConnectionLostError`."""
        with self._connect_lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(ConnectionLostError("the broker client was closed"))

    def ping(self) -> None:
        """A round trip that checks the broker answers."""
        self.call(Op.PING)

    def append_async(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> Future[list[int]]:
        """`append` without waiting: the future gets the offsets. Appends to one
        partition from one client are stored in the order they were sent."""
        return self.call_async(Op.APPEND, namespace, queue, partition, _as_list(messages))

    # -- BrokerApi -----------------------------------------------------------------

    def create_namespace(self, namespace: str) -> None:
        self.call(Op.CREATE_NAMESPACE, namespace)

    def delete_namespace(self, namespace: str) -> None:
        self.call(Op.DELETE_NAMESPACE, namespace)

    def list_namespaces(self) -> list[str]:
        return self.call(Op.LIST_NAMESPACES)

    def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueInfo:
        return self.call(Op.CREATE_QUEUE, namespace, queue, partitions)

    def delete_queue(self, namespace: str, queue: str) -> None:
        self.call(Op.DELETE_QUEUE, namespace, queue)

    def list_queues(self, namespace: str) -> list[QueueInfo]:
        return self.call(Op.LIST_QUEUES, namespace)

    def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        return self.call(Op.QUEUE_INFO, namespace, queue)

    def append(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> list[int]:
        return self._wait(self.append_async(namespace, queue, partition, messages), 0)

    def append_batch_async(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> Future[int]:
        """`append_batch` without waiting: the future gets the first offset. Ordered
        with this client's other appends to the partition, as `append_async`. The
        batch is sent as it is (not copied into the frame)."""
        args = [namespace, queue, partition]
        return self._send(
            Op.APPEND_BATCH, lambda rid: request_frame_parts(Op.APPEND_BATCH, rid, args, batch)
        )

    def append_batch(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> int:
        return self._wait(self.append_batch_async(namespace, queue, partition, batch), 0)

    def append_delayed(
        self,
        namespace: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
        deliver_at: Sequence[int],
    ) -> None:
        self.call(
            Op.APPEND_DELAYED, namespace, queue, partition, _as_list(messages), _as_list(deliver_at)
        )

    def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
    ) -> None:
        self.call(
            Op.PREPARE,
            namespace,
            producer_group,
            transaction_id,
            queue,
            partition,
            _as_list(messages),
        )

    def end_transaction(self, namespace: str, transaction_id: str, commit: bool) -> None:
        self.call(Op.END_TRANSACTION, namespace, transaction_id, commit)

    def transaction_checks(
        self, namespace: str, producer_group: str, max_wait_ms: int
    ) -> list[HalfMessage]:
        return self.call(
            Op.TRANSACTION_CHECKS, namespace, producer_group, max_wait_ms, max_wait_ms=max_wait_ms
        )

    def read(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return self.call(
            Op.READ,
            namespace,
            queue,
            partition,
            offset,
            max_messages,
            max_wait_ms,
            max_bytes,
            max_wait_ms=max_wait_ms,
        )

    def read_batches(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return self.call(
            Op.READ_BATCHES,
            namespace,
            queue,
            partition,
            offset,
            max_messages,
            max_wait_ms,
            max_bytes,
            max_wait_ms=max_wait_ms,
        )

    def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        return self.call(Op.OFFSET_RANGE, namespace, queue, partition)

    def commit_offsets(
        self, namespace: str, group: str, queue: str, offsets: dict[int, int]
    ) -> None:
        self.call(Op.COMMIT_OFFSETS, namespace, group, queue, offsets)

    def committed_offsets(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        return self.call(Op.COMMITTED_OFFSETS, namespace, group, queue)

    def kv_get(self, namespace: str, key: str) -> KeyValue | None:
        return self.call(Op.KV_GET, namespace, key)

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        return self.call(Op.KV_PUT, namespace, key, value, ttl_ms)

    def kv_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        return self.call(Op.KV_CAS, namespace, key, value, expected_revision, ttl_ms)

    def kv_delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        return self.call(Op.KV_DELETE, namespace, key, expected_revision)

    def kv_list(self, namespace: str, prefix: str) -> list[KeyValue]:
        return self.call(Op.KV_LIST, namespace, prefix)

    def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        return self.call(
            Op.KV_WATCH, namespace, prefix, from_revision, max_wait_ms, max_wait_ms=max_wait_ms
        )
