"""Making the commit log durable: interval flush (async) and group commit (sync).

`FlushService` owns one thread and the durable position: the commit-log position
below which every byte has been fsynced. In ``"async"`` mode the thread fsyncs every
``interval_ms`` and nobody waits for it. In ``"sync"`` mode appenders wait for the
position just past their batch (`wait_durable`, `on_durable`); the thread fsyncs once
for everything written while the previous fsync ran, then releases every waiter that
fsync covered: one fsync per group of concurrent appends, not one per append.

An fsync error is sticky: the data can no longer be trusted to be on disk (the page
cache may have dropped the dirty pages), so every later wait raises `FatalError`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from omconnect.errors import FatalError, TimeoutError_

log = logging.getLogger(__name__)

DurableCallback = Callable[[], None]
ErrorCallback = Callable[[BaseException], None]


@dataclass(frozen=True, slots=True)
class FlushStats:
    """Counters for metrics: flushes done, their total and recent durations (seconds)."""

    flush_count: int
    flush_seconds_total: float
    recent_flush_seconds: tuple[float, ...]
    durable_position: int


class FlushService:
    """Advances the durable position by calling ``sync_log`` (fsync, return the
    position it covers) from one background thread; ``written_position`` tells it
    whether anything new was written since the last flush."""

    def __init__(
        self,
        sync_log: Callable[[], int],
        written_position: Callable[[], int],
        durable_position: int,
        mode: Literal["async", "sync"],
        interval_ms: int,
        recent: int = 256,
    ) -> None:
        self._sync_log = sync_log
        self._written = written_position
        self._mode = mode
        self._interval_s = interval_ms / 1000
        self._durable = durable_position
        self._wanted = durable_position
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._callbacks: list[tuple[int, int, DurableCallback, ErrorCallback | None]] = []
        self._seq = itertools.count()
        self._error: BaseException | None = None
        self._closed = False
        self._count = 0
        self._seconds = 0.0
        self._recent: deque[float] = deque(maxlen=recent)
        self._thread = threading.Thread(target=self._run, name="omconnect-flush", daemon=True)
        self._thread.start()

    @property
    def durable_position(self) -> int:
        """Every commit-log byte below this position has been fsynced."""
        return self._durable

    @property
    def error(self) -> BaseException | None:
        """The fsync error that stopped durability, if any."""
        return self._error

    def wait_durable(self, position: int, timeout_s: float | None = None) -> None:
        """Sync mode: block until ``position`` is durable. Async mode: return at once.

        Raises `TimeoutError_` after ``timeout_s``, `FatalError` if fsync failed.
        """
        if self._mode == "async":
            return
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            if position > self._wanted:
                self._wanted = position
                self._cond.notify_all()
            while self._durable < position:
                self._raise_if_failed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError_(f"commit log not durable to {position} in {timeout_s}s")
                self._cond.wait(remaining)

    def on_durable(
        self, position: int, callback: DurableCallback, on_error: ErrorCallback | None = None
    ) -> None:
        """Call ``callback`` once ``position`` is durable (at once in async mode or if
        it already is), from the thread whose fsync made it durable (the flush thread,
        or a caller of `flush`). If fsync fails, ``on_error`` is called with the error
        instead (if given). Callbacks must be quick and must not block."""
        with self._cond:
            error = self._error
            pending = self._mode == "sync" and error is None and self._durable < position
            if pending:
                heapq.heappush(self._callbacks, (position, next(self._seq), callback, on_error))
                if position > self._wanted:
                    self._wanted = position
                    self._cond.notify_all()
        if pending:
            return
        if error is not None and self._mode == "sync":
            if on_error is not None:
                on_error(error)
            return
        callback()

    def flush(self) -> int:
        """fsync now; return the durable position. Raises `FatalError` if fsync fails."""
        with self._flush_lock:
            self._raise_if_failed()
            started = time.perf_counter()
            try:
                position = self._sync_log()
            except OSError as exc:
                self._fail(exc)
                raise FatalError(f"commit-log fsync failed: {exc}") from exc
            elapsed = time.perf_counter() - started
            ready: list[DurableCallback] = []
            with self._cond:
                self._count += 1
                self._seconds += elapsed
                self._recent.append(elapsed)
                self._durable = max(self._durable, position)
                while self._callbacks and self._callbacks[0][0] <= self._durable:
                    ready.append(heapq.heappop(self._callbacks)[2])
                self._cond.notify_all()
        for callback in ready:
            _call(callback)
        return position

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._error = exc
            failed = [on_error for _, _, _, on_error in self._callbacks if on_error]
            self._callbacks.clear()
            self._cond.notify_all()
        log.error("commit-log fsync failed; the store stops accepting writes: %s", exc)
        for on_error in failed:
            _call(functools.partial(on_error, exc))

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise FatalError(f"commit-log fsync failed earlier: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._mode == "sync":
                    while not self._closed and self._wanted <= self._durable:
                        self._cond.wait()
                else:
                    self._cond.wait_for(lambda: self._closed, self._interval_s)
                closed = self._closed
            if self._error is None and (closed or self._written() > self._durable):
                with contextlib.suppress(FatalError):  # recorded by flush(); waiters see it
                    self.flush()
            if closed:
                return

    def stats(self) -> FlushStats:
        """A snapshot of the flush counters."""
        with self._cond:
            return FlushStats(self._count, self._seconds, tuple(self._recent), self._durable)

    def close(self) -> None:
        """Flush once more, stop the thread and wait for it."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


def _call(callback: DurableCallback) -> None:
    try:
        callback()
    except Exception:  # a waiter's bug must not stop the flush thread
        log.exception("durability callback failed")


class PeriodicTask:
    """Runs ``task`` every ``interval_ms`` on its own thread until `close`."""

    def __init__(self, task: Callable[[], None], interval_ms: int, name: str) -> None:
        self._task = task
        self._interval_s = interval_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._task()
            except Exception:
                log.exception("periodic task %s failed", self._thread.name)

    def close(self) -> None:
        """Stop; waits for a running task to finish."""
        self._stop.set()
        self._thread.join()
