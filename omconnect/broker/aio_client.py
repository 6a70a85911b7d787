"""`AsyncBrokerClient`: the `BrokerApi` operations as coroutines, over asyncio streams.

Same protocol and lifecycle as the sync `omconnect.broker.client.BrokerClient`: one
connection multiplexed by request id (concurrent coroutines pipeline their requests;
a long poll does not hold up an append), connected on the first call to the first
address that accepts, and again on the next call after it drops. Calls in flight
when it drops fail with `ConnectionLostError`. Use it from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Sequence
from typing import Any

from omconnect.broker.api import HalfMessage, KeyValue, KvEvent, QueueInfo, ReadResult
from omconnect.broker.client import parse_addresses
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
from omconnect.errors import ConnectionLostError, OmConnectError, ProtocolError, TimeoutError_

logger = logging.getLogger(__name__)


class _Connection:
    """One stream pair, its reader task and the calls waiting on it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: str,
        max_frame_bytes: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.address = address
        self.max_frame_bytes = max_frame_bytes
        self.pending: dict[int, tuple[asyncio.Future[Any], Op]] = {}
        self.closed = False
        self._reason: OmConnectError | None = None
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    def close(self, reason: OmConnectError) -> None:
        """Close the streams and fail every pending call with ``reason``. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.writer.close()
        pending, self.pending = self.pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(reason)

    async def _read_loop(self) -> None:
        detail = ""
        try:
            while True:
                header_bytes = await self.reader.readexactly(HEADER_SIZE)
                header = decode_header(header_bytes, self.max_frame_bytes)
                body = await self.reader.readexactly(header.body_length)
                self._complete(header.opcode, header.flags, header.request_id, body)
        except ProtocolError as exc:
            logger.warning("broker %s: %s; closing the connection", self.address, exc)
            detail = f": {exc}"
        except (asyncio.IncompleteReadError, OSError) as exc:
            detail = f": {exc}" if isinstance(exc, OSError) else ""
        finally:
            lost = ConnectionLostError(f"connection to broker {self.address} lost{detail}")
            self.close(self._reason or lost)

    def _complete(self, opcode: int, flags: int, request_id: int, body: bytes) -> None:
        if request_id == CONNECTION_REQUEST_ID:
            self._reason = ConnectionLostError(
                f"broker {self.address} closed the connection: {decode_error(body)}"
            )
            return
        entry = self.pending.pop(request_id, None)
        if entry is None or entry[0].done():
            return  # the caller timed out or was cancelled
        future, op = entry
        try:
            future.set_result(decode_response(opcode, flags, body, op))
        except OmConnectError as exc:
            future.set_exception(exc)


class AsyncBrokerClient:
    """The `BrokerApi` operations as coroutines, to ``addresses`` (``"host:port"``,
    ``"h1:p1,h2:p2"`` or a list). ``request_timeout`` (s) bounds each call beyond its
    own ``max_wait_ms``: past it the call raises `TimeoutError_`."""

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
        self._connect_lock: asyncio.Lock | None = None
        self._ids = itertools.count()

    async def __aenter__(self) -> AsyncBrokerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(self, op: Op, *args: Any, max_wait_ms: int = 0) -> Any:
        """Send one request and wait for its result, or raise the broker's error,
        `ConnectionLostError`, `TimeoutError_` or `ProtocolError`. Never retried."""
        request_id = next(self._ids) % MAX_REQUEST_ID + 1
        frame = request_frame(op, request_id, args)
        if len(frame) > self.max_frame_bytes:
            raise ProtocolError(
                f"request of {len(frame)} bytes exceeds max_frame_bytes={self.max_frame_bytes}"
            )
        connection = await self._connected()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        connection.pending[request_id] = (future, op)
        try:
            connection.writer.write(frame)
            await connection.writer.drain()
        except OSError as exc:
            connection.close(ConnectionLostError(f"sending to broker {connection.address}: {exc}"))
        timeout = self.request_timeout + max(max_wait_ms, 0) / 1000.0
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            connection.pending.pop(request_id, None)
            raise TimeoutError_(f"no answer from the broker within {timeout:.1f} s") from None

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            connection = self._connection
            if connection is not None and not connection.closed:
                return connection
            self._connection = connection = await self._open()
            return connection

    async def _open(self) -> _Connection:
        errors: list[str] = []
        for host, port in self.addresses:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.connect_timeout
                )
            except OSError as exc:  # TimeoutError included
                errors.append(f"{host}:{port}: {str(exc) or 'timed out'}")
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _Connection(reader, writer, f"{host}:{port}", self.max_frame_bytes)
        raise ConnectionLostError("cannot connect to the broker: " + "; ".join(errors))

    async def close(self) -> None:
        """Close the connection; calls in flight fail with `ConnectionLostError`."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(ConnectionLostError("the broker client was closed"))
            connection.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await connection.task
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()

    # -- the BrokerApi operations -------------------------------------------------

    async def ping(self) -> None:
        """A round trip that checks the broker answers."""
        await self.call(Op.PING)

    async def create_namespace(self, namespace: str) -> None:
        await self.call(Op.CREATE_NAMESPACE, namespace)

    async def delete_namespace(self, namespace: str) -> None:
        await self.call(Op.DELETE_NAMESPACE, namespace)

    async def list_namespaces(self) -> list[str]:
        return await self.call(Op.LIST_NAMESPACES)

    async def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueInfo:
        return await self.call(Op.CREATE_QUEUE, namespace, queue, partitions)

    async def delete_queue(self, namespace: str, queue: str) -> None:
        await self.call(Op.DELETE_QUEUE, namespace, queue)

    async def list_queues(self, namespace: str) -> list[QueueInfo]:
        return await self.call(Op.LIST_QUEUES, namespace)

    async def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        return await self.call(Op.QUEUE_INFO, namespace, queue)

    async def append(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> list[int]:
        return await self.call(Op.APPEND, namespace, queue, partition, list(messages))

    async def append_batch(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> int:
        return await self.call(Op.APPEND_BATCH, namespace, queue, partition, batch)

    async def append_delayed(
        self,
        namespace: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
        deliver_at: Sequence[int],
    ) -> None:
        await self.call(
            Op.APPEND_DELAYED, namespace, queue, partition, list(messages), list(deliver_at)
        )

    async def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
    ) -> None:
        await self.call(
            Op.PREPARE, namespace, producer_group, transaction_id, queue, partition, list(messages)
        )

    async def end_transaction(self, namespace: str, transaction_id: str, commit: bool) -> None:
        await self.call(Op.END_TRANSACTION, namespace, transaction_id, commit)

    async def transaction_checks(
        self, namespace: str, producer_group: str, max_wait_ms: int
    ) -> list[HalfMessage]:
        return await self.call(
            Op.TRANSACTION_CHECKS, namespace, producer_group, max_wait_ms, max_wait_ms=max_wait_ms
        )

    async def read(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return await self.call(
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

    async def read_batches(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return await self.call(
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

    async def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        return await self.call(Op.OFFSET_RANGE, namespace, queue, partition)

    async def commit_offsets(
        self, namespace: str, group: str, queue: str, offsets: dict[int, int]
    ) -> None:
        await self.call(Op.COMMIT_OFFSETS, namespace, group, queue, offsets)

    async def committed_offsets(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        return await self.call(Op.COMMITTED_OFFSETS, namespace, group, queue)

    async def kv_get(self, namespace: str, key: str) -> KeyValue | None:
        return await self.call(Op.KV_GET, namespace, key)

    async def kv_put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        return await self.call(Op.KV_PUT, namespace, key, value, ttl_ms)

    async def kv_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        return await self.call(Op.KV_CAS, namespace, key, value, expected_revision, ttl_ms)

    async def kv_delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        return await self.call(Op.KV_DELETE, namespace, key, expected_revision)

    async def kv_list(self, namespace: str, prefix: str) -> list[KeyValue]:
        return await self.call(Op.KV_LIST, namespace, prefix)

    async def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        return await self.call(
            Op.KV_WATCH, namespace, prefix, from_revision, max_wait_ms, max_wait_ms=max_wait_ms
        )
