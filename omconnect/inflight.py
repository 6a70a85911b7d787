"""Which offset of a partition may be committed: the unbroken run of acknowledged ones.

A consumer commits "the next offset to read". It may only move past an offset once
that message and every message before it have been acknowledged; committing past
a message still in flight would lose it on a crash. `InFlight` is that rule as a
small pure class; the consumer feeds it and asks it what to commit.
"""

from __future__ import annotations

from collections import deque


class InFlight:
    """Tracks delivered and acknowledged offsets of one partition.

    ``start`` is the offset the partition was resumed from (the committed one).
    Offsets must be delivered in increasing order, gaps allowed (the broker skips
    expired messages). Acking an offset past the last delivered one is an error;
    acking an old or repeated one is ignored. Every operation is O(1) amortized.
    """

    __slots__ = ("_acked", "_committable", "_in_flight", "_last")

    def __init__(self, start: int) -> None:
        self._committable = start
        self._last = start - 1
        self._in_flight: deque[int] = deque()  # delivered, oldest first, front unacked
        self._acked: set[int] = set()  # delivered, acked, not yet at the front

    def delivered(self, offset: int) -> None:
        """Record that ``offset`` was handed out (increasing order, gaps allowed)."""
        if offset <= self._last:
            raise ValueError(f"offset {offset} delivered out of order (last {self._last})")
        self._last = offset
        if not self._in_flight:
            self._committable = offset
        self._in_flight.append(offset)

    def delivered_range(self, first: int, end: int) -> None:
        """`delivered` for every offset of ``first .. end - 1`` at once (a batch)."""
        if end <= first:
            return
        if first <= self._last:
            raise ValueError(f"offset {first} delivered out of order (last {self._last})")
        self._last = end - 1
        if not self._in_flight:
            self._committable = first
        self._in_flight.extend(range(first, end))

    def skipped_to(self, next_offset: int) -> None:
        """The broker skipped offsets (expired messages) up to ``next_offset``; if
        nothing is in flight, the commit point may move there."""
        if not self._in_flight and next_offset > self._committable:
            self._committable = next_offset
            self._last = max(self._last, next_offset - 1)

    def acked(self, offset: int) -> None:
        """Record that ``offset`` was processed; a repeated or old ack is ignored."""
        in_flight = self._in_flight
        if in_flight and offset == in_flight[0]:
            in_flight.popleft()
            acked = self._acked
            while in_flight and in_flight[0] in acked:
                acked.discard(in_flight.popleft())
            self._committable = in_flight[0] if in_flight else offset + 1
            if not in_flight:
                self._committable = max(self._committable, self._last + 1)
            return
        if offset < self._committable or offset in self._acked:
            return
        if offset > self._last:
            raise ValueError(f"offset {offset} acked but never delivered")
        self._acked.add(offset)

    @property
    def committable(self) -> int:
        """The next offset to read, safe to commit: every offset below it is acked."""
        return self._committable

    @property
    def pending(self) -> int:
        """How many delivered offsets are not yet acknowledged."""
        return len(self._in_flight) - len(self._acked)
