"""Which offset of a partition may be committed: the unbroken run of acknowledged ones.

A consumer commits "the next offset to read". It may only move past an offset once
that message and every message before it have been acknowledged; committing past
a message still in flight would lose it on a crash. `InFlight` is that rule as a
small pure class; the consumer feeds it and asks it what to commit.
"""

from __future__ import annotations


class InFlight:
    """Tracks delivered and acknowledged offsets of one partition.

    ``start`` is the offset the partition was resumed from (the committed one).
    Offsets must be delivered in increasing order, gaps allowed (the broker skips
    expired messages); an acked offset that was never delivered is an error.
    """

    __slots__ = ("_acked", "_committable", "_delivered")

    def __init__(self, start: int) -> None:
        self._committable = start
        self._delivered: dict[int, bool] = {}  # offset -> acked, in delivery order

    def delivered(self, offset: int) -> None:
        """Record that ``offset`` was handed out (increasing order, gaps allowed)."""
        if self._delivered and offset <= next(reversed(self._delivered)):
            raise ValueError(f"offset {offset} delivered out of order")
        if offset < self._committable:
            raise ValueError(f"offset {offset} is below the committed offset {self._committable}")
        self._delivered[offset] = False
        self._advance()

    def skipped_to(self, next_offset: int) -> None:
        """The broker skipped offsets (expired messages) up to ``next_offset``; if
        nothing is in flight, the commit point may move there."""
        if not self._delivered and next_offset > self._committable:
            self._committable = next_offset

    def acked(self, offset: int) -> None:
        """Record that ``offset`` was processed; a repeated ack is ignored."""
        if offset not in self._delivered:
            if offset < self._committable:
                return
            raise ValueError(f"offset {offset} acked but never delivered")
        self._delivered[offset] = True
        self._advance()

    def _advance(self) -> None:
        while self._delivered:
            first = next(iter(self._delivered))
            if not self._delivered[first]:
                self._committable = max(self._committable, first)
                return
            del self._delivered[first]
            self._committable = first + 1

    @property
    def committable(self) -> int:
        """The next offset to read, safe to commit: every offset below it is acked."""
        return self._committable

    @property
    def pending(self) -> int:
        """How many delivered offsets are not yet acknowledged."""
        return sum(1 for acked in self._delivered.values() if not acked)
