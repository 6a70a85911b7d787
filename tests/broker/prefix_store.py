"""`PrefixStore`: the relays' view of `MessageStore`, in memory, cut at any record.

Crash recovery of the commit log keeps a prefix of the records written; ``cut(n)``
is the store after a crash that kept the first ``n``. The relay tests use it to try
every crash point, which the real store cannot be made to do record by record.
"""

from __future__ import annotations

from dataclasses import dataclass

from omconnect.broker.api import StoredMessage


@dataclass(frozen=True)
class Appended:
    first_offset: int
    end_position: int


class PrefixStore:
    """Partitions of payloads plus the global order of every record appended."""

    def __init__(self, records: list[tuple[int, int, bytes]] | None = None) -> None:
        self.records: list[tuple[int, int, bytes]] = []
        self._queues: dict[tuple[int, int], list[bytes]] = {}
        for queue_id, partition, payload in records or []:
            self.append(queue_id, partition, [payload])

    def append(self, queue_id: int, partition: int, payloads: list[bytes]) -> Appended:
        queue = self._queues.setdefault((queue_id, partition), [])
        first = len(queue)
        for payload in payloads:
            queue.append(payload)
            self.records.append((queue_id, partition, payload))
        return Appended(first, len(self.records))

    def read(
        self, queue_id: int, partition: int, offset: int, max_messages: int, max_bytes: int
    ) -> list[StoredMessage]:
        queue = self._queues.get((queue_id, partition), [])
        end = min(len(queue), offset + max_messages)
        return [StoredMessage(partition, i, 0, queue[i]) for i in range(offset, end)]

    def offset_range(self, queue_id: int, partition: int) -> tuple[int, int]:
        return 0, len(self._queues.get((queue_id, partition), []))

    def messages(self, queue_id: int, partition: int) -> list[bytes]:
        return list(self._queues.get((queue_id, partition), []))

    def cut(self, n: int) -> PrefixStore:
        """The store after a crash that kept the first ``n`` records."""
        return PrefixStore(self.records[:n])
