"""Which partition a message goes to, and which partitions a group member owns.

Pure functions: no I/O, no clocks. Both are part of the delivery contract, so they
must stay stable across versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import crc32c


def partition_for_key(key: str, partitions: int) -> int:
    """The partition of a message key: CRC-32C of its UTF-8 bytes modulo the count.

    Stable across processes and versions (unlike ``hash()``), so all messages with
    one key land in one partition and keep their order.
    """
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, got {partitions}")
    return crc32c.crc32c(key.encode()) % partitions


QueuePartition = tuple[str, int]


def assign_averagely(
    member_id: str, members: Sequence[str], partitions: Sequence[QueuePartition]
) -> list[QueuePartition]:
    """The partitions ``member_id`` owns when ``members`` share ``partitions``.

    RocketMQ's AllocateMessageQueueAveragely: members and partitions are sorted,
    each member gets a contiguous run, the first ``len(partitions) % len(members)``
    members one extra. Every member computes the same split from the same inputs,
    so no coordinator is needed; every partition has exactly one owner. A member
    absent from ``members`` owns nothing.
    """
    ordered_members = sorted(set(members))
    if member_id not in ordered_members:
        return []
    ordered = sorted(set(partitions))
    index = ordered_members.index(member_id)
    count = len(ordered_members)
    base, extra = divmod(len(ordered), count)
    start = index * base + min(index, extra)
    size = base + (1 if index < extra else 0)
    return ordered[start : start + size]
