"""`BrokerServer`: serves any `BrokerApi` over the TCP wire protocol (``docs/protocol.md``).

One asyncio event loop accepts connections and reads their frames. Each request is
handled as soon as it is read, so one connection can have many requests in flight
and their responses go out in completion order, matched by request id:

* cheap calls (metadata, KV, offsets, and reads/watches with ``max_wait_ms`` 0) run
  inline on the event loop;
* ``read`` / ``kv_watch`` / ``transaction_checks`` with ``max_wait_ms`` > 0 run in
  the *poll* thread pool (sized for many parked long-pollers);
* a long poll first runs inline with no wait and answers at once if it found
  anything; only an empty one is parked in the pool;
* ``append`` / ``append_delayed`` / ``prepare`` / ``end_transaction``, which may wait
  for an fsync, run in the separate *write* pool (inline when the api's
  ``writes_wait_for_fsync`` is False: async flush never waits), so long-pollers filling their pool
  never hold up producers. Writes of one connection to the same (namespace, queue,
  partition) run one after another in arrival order, so a pipelining producer keeps
  its order; writes to different partitions run concurrently.

Responses are buffered and written once per loop iteration. A client that sends a
malformed frame gets an error response (when its request id can be read) and its
connection is closed; no other client notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from omconnect.broker.api import BrokerApi, ReadResult
from omconnect.broker.frame_parts import response_frame_parts
from omconnect.broker.protocol import (
    CONNECTION_REQUEST_ID,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_PORT,
    FLAG_RESPONSE,
    HEADER_SIZE,
    Op,
    OpSpec,
    decode_header,
    decode_request,
    error_frame,
    peek_request_id,
)
from omconnect.errors import OmConnectError, ProtocolError

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4096  # requests per connection waiting in a pool before reading pauses
_HIGH_WATER = 4 << 20  # unsent response bytes per connection before reading pauses
_DIRECT_WRITE = 1 << 16  # response parts from this size on are written without joining
# Bytes a connection buffers before reading pauses: a large request (a batch) is
# read without pausing and resuming the socket on the way.
_READ_BUFFER = 4 << 20

_Job = tuple[OpSpec, list[Any], int]


class BrokerServer:
    """Serves ``api`` on ``host:port`` (port 0 picks a free port; see `port`).

    The server never closes ``api``: its owner does, after `stop`. Use it from one
    event loop: ``await start()`` then ``await serve_forever()``, or `run` from a
    main thread (handles SIGTERM/SIGINT), or `ServerThread` from any thread.
    """

    def __init__(
        self,
        api: BrokerApi,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        poll_threads: int = 256,
        write_threads: int = 32,
    ) -> None:
        self.api = api
        self.host = host
        self.max_frame_bytes = max_frame_bytes
        # An api that says its writes never wait for an fsync (the in-process Broker
        # in async flush mode) gets them run on the event loop: no thread hop.
        self.inline_writes = not getattr(api, "writes_wait_for_fsync", True)
        self._requested_port = port
        self._poll_threads = poll_threads
        self._write_threads = write_threads
        self._port = 0
        self._server: asyncio.Server | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._connections: dict[_Connection, asyncio.Task[Any] | None] = {}
        self.poll_pool: ThreadPoolExecutor | None = None
        self.write_pool: ThreadPoolExecutor | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0); 0 before `start`."""
        return self._port

    async def start(self) -> None:
        """Bind and start accepting connections. Raises `OSError` if the address is taken."""
        self.poll_pool = ThreadPoolExecutor(self._poll_threads, thread_name_prefix="broker-poll")
        self.write_pool = ThreadPoolExecutor(self._write_threads, thread_name_prefix="broker-write")
        self._stopped = asyncio.Event()
        try:
            self._server = await asyncio.start_server(
                self._on_connect,
                self.host,
                self._requested_port,
                reuse_address=True,
                limit=_READ_BUFFER,
            )
        except BaseException:
            self.poll_pool.shutdown(wait=False)
            self.write_pool.shutdown(wait=False)
            raise
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("broker listening on %s:%d", self.host, self._port)

    async def serve_forever(self) -> None:
        """Serve until `stop` is called (starting first if needed)."""
        if self._server is None:
            await self.start()
        if self._stopped is not None:
            await self._stopped.wait()

    async def stop(self) -> None:
        """Stop accepting, close every connection, let running writes finish.

        Requests still queued are dropped (their clients see a lost connection);
        long polls already parked in a thread end at their own ``max_wait_ms``.
        Idempotent.
        """
        if self._server is None or self._stopped is None or self._stopping:
            return
        self._stopping = True
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        tasks = [t for t in self._connections.values() if t is not None]
        if tasks:  # let each connection see its end before the loop goes away
            await asyncio.wait(tasks, timeout=5)
        if self.poll_pool is not None:
            self.poll_pool.shutdown(wait=False, cancel_futures=True)
        if self.write_pool is not None:
            self.write_pool.shutdown(wait=False, cancel_futures=True)
            # Let appends already running reach the store before the owner closes it.
            await asyncio.get_running_loop().run_in_executor(None, self.write_pool.shutdown, True)
        self._stopped.set()
        logger.info("broker on %s:%d stopped", self.host, self._port)

    def run(self) -> None:
        """Serve in this (main) thread until SIGTERM or SIGINT, then stop gracefully."""
        asyncio.run(self._run_until_signal())

    async def _run_until_signal(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stopping.append(loop.create_task(self.stop())))
        await self.serve_forever()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self._connections[connection] = asyncio.current_task()
        try:
            await connection.serve()
        finally:
            self._connections.pop(connection, None)


def _has_data(result: Any) -> bool:
    """Whether a poll call's result (ReadResult, (events, revision) or a list) holds
    anything, so the long poll need not wait."""
    if result is None:
        return False
    if isinstance(result, ReadResult):
        return bool(result.messages)
    if isinstance(result, tuple):
        return bool(result[0])
    return bool(result)


class _Connection:
    """One client: reads its frames, dispatches them, and buffers its responses."""

    def __init__(
        self, server: BrokerServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._api = server.api
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._peer = writer.get_extra_info("peername")
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False
        self._lanes: dict[tuple[Any, ...], deque[_Job]] = {}  # writes waiting, per lane
        self._lane_lock = threading.Lock()
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()

    async def serve(self) -> None:
        """Read and dispatch frames until the client leaves or breaks the protocol."""
        logger.debug("client %s connected", self._peer)
        max_frame = self._server.max_frame_bytes
        try:
            while not self._closed:
                header = await self._reader.readexactly(HEADER_SIZE)
                try:
                    frame = decode_header(header, max_frame)
                except ProtocolError as exc:
                    self._reject(peek_request_id(header), exc)
                    return
                body = await self._reader.readexactly(frame.body_length)
                try:
                    if frame.flags & FLAG_RESPONSE:
                        raise ProtocolError("a request frame must not set the response flag")
                    spec, args = decode_request(frame.opcode, body)
                except ProtocolError as exc:
                    self._reject(frame.request_id, exc)
                    return
                self._dispatch(spec, args, frame.request_id)
                if self._in_flight >= MAX_IN_FLIGHT:
                    self._room.clear()
                    await self._room.wait()
                if self._writer.transport.get_write_buffer_size() > _HIGH_WATER:
                    await self._writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except Exception:
            logger.exception("closing connection from %s after an unexpected error", self._peer)
        finally:
            self.close()
            logger.debug("client %s disconnected", self._peer)

    def close(self) -> None:
        """Flush what is buffered and close; responses completing later are dropped."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        with self._lane_lock:
            self._lanes.clear()
        self._room.set()
        self._writer.close()

    # -- dispatch ------------------------------------------------------------------

    def _dispatch(self, spec: OpSpec, args: list[Any], request_id: int) -> None:
        execution = spec.execution
        if execution == "inline" or (execution == "write" and self._server.inline_writes):
            self._respond(self._execute(spec, args, request_id))
            return
        if execution == "poll":
            # Answer at once when there is something to return; park the long poll
            # in a pool thread only when there is not (a hop costs more than a read).
            wait = args[spec.wait_arg]
            args[spec.wait_arg] = 0
            try:
                result = getattr(self._api, spec.method)(*args)
            except Exception:
                result = None  # run it again below to report the error the usual way
            if wait <= 0 or _has_data(result):
                self._respond(self._execute(spec, args, request_id, result))
                return
            args[spec.wait_arg] = wait
        self._in_flight += 1
        job = (spec, args, request_id)
        if spec.lane:
            key = tuple(args[i] for i in spec.lane)
            with self._lane_lock:
                lane = self._lanes.get(key)
                if lane is not None:  # a worker is running this lane: it will take the job
                    lane.append(job)
                    return
                self._lanes[key] = deque()
            self._submit(self._server.write_pool, self._run_lane, key, job)
        elif execution == "write":
            self._submit(self._server.write_pool, self._run_one, job)
        else:
            self._submit(self._server.poll_pool, self._run_one, job)

    def _submit(self, pool: ThreadPoolExecutor | None, fn: Any, *args: Any) -> None:
        if pool is None:
            self.close()
            return
        try:
            pool.submit(fn, *args)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self.close()

    def _run_one(self, job: _Job) -> None:
        """In a pool thread: run one request, hand its response to the loop."""
        self._post(self._execute(*job))

    def _run_lane(self, key: tuple[Any, ...], job: _Job) -> None:
        """In a write-pool thread: run ``job``, then every job queued behind it on the
        same lane, in order; one thread hop for a whole pipelined run of appends."""
        while True:
            self._post(self._execute(*job))
            with self._lane_lock:
                lane = self._lanes.get(key)
                if not lane:
                    self._lanes.pop(key, None)
                    return
                job = lane.popleft()

    def _post(self, frame: list[bytes]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
            self._loop.call_soon_threadsafe(self._on_done, frame)

    def _on_done(self, frame: list[bytes]) -> None:
        self._in_flight -= 1
        if self._in_flight < MAX_IN_FLIGHT:
            self._room.set()
        self._respond(frame)

    def _execute(
        self, spec: OpSpec, args: list[Any], request_id: int, result: Any = None
    ) -> list[bytes]:
        """Run one request against the api (unless ``result`` is given); return its
        response (in parts, see `response_frame_parts`) or error frame."""
        try:
            if result is None and spec.op is not Op.PING:
                result = getattr(self._api, spec.method)(*args)
            return response_frame_parts(spec, request_id, result)
        except OmConnectError as exc:
            return [error_frame(request_id, exc)]
        except Exception as exc:
            logger.exception(
                "broker %s failed (request %d from %s)", spec.method, request_id, self._peer
            )
            return [error_frame(request_id, exc)]

    # -- responses -----------------------------------------------------------------

    def _respond(self, frame: list[bytes]) -> None:
        if self._closed:
            return
        self._out += frame
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is buffered: small parts joined, large ones (message
        encodings) passed on as they are, so they are not copied once more."""
        self._flush_scheduled = False
        if not self._out or self._closed:
            return
        out, self._out = self._out, []
        small: list[bytes] = []
        for part in out:
            if len(part) < _DIRECT_WRITE:
                small.append(part)
                continue
            if small:
                self._writer.write(b"".join(small))
                small = []
            self._writer.write(part)
        if small:
            self._writer.write(small[0] if len(small) == 1 else b"".join(small))

    def _reject(self, request_id: int, exc: ProtocolError) -> None:
        logger.warning("closing connection from %s: %s", self._peer, exc)
        self._respond([error_frame(request_id or CONNECTION_REQUEST_ID, exc)])
        self.close()


class ServerThread:
    """Runs a `BrokerServer` on its own event loop in a daemon thread.

    ``start()`` returns once the port is bound (raising what binding raised);
    ``stop()`` stops the server and joins the thread. For tests and in-process use.
    """

    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The server's bound port."""
        return self.server.port

    @property
    def address(self) -> str:
        """``host:port`` for `BrokerClient`."""
        return f"{self.server.host}:{self.server.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving; return once bound."""
        self._thread = threading.Thread(target=self._main, name="broker-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"broker server did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop finished meanwhile
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout)
        thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self.server.serve_forever()
