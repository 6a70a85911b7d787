"""Consumer-group membership through the key-value store.

Each member keeps a key ``%groups/<group>/members/<member_id>`` alive with a TTL
(its session timeout) and watches the group's prefix. Whenever the member list
changes it recomputes its own share with `assign_averagely`; every member computes
the same split from the same list, so the group needs no coordinator and works
on every driver that provides the key-value store. A member that dies stops
refreshing its key; the key expires after the session timeout and the others take
over its partitions. `leave` deletes the key at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from omconnect.broker.api import BrokerApi
from omconnect.errors import CompactedError, OmConnectError
from omconnect.partitioning import QueuePartition, assign_averagely

log = logging.getLogger(__name__)


def members_prefix(group: str) -> str:
    """The key prefix under which a group's members announce themselves."""
    return f"%groups/{group}/members/"


class GroupMembership:
    """Keeps this member in the group and reports its assignment as it changes.

    ``partitions`` returns the (queue, partition) pairs the group consumes (asked
    again at each change, so new partitions are picked up). ``on_assignment`` is
    called from the membership thread with the full new assignment whenever it
    differs from the previous one (first call: the initial assignment).
    """

    def __init__(
        self,
        backend: BrokerApi,
        namespace: str,
        group: str,
        member_id: str,
        partitions: Callable[[], Sequence[QueuePartition]],
        on_assignment: Callable[[list[QueuePartition]], None],
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._backend = backend
        self._namespace = namespace
        self._prefix = members_prefix(group)
        self._key = self._prefix + member_id
        self.member_id = member_id
        self._partitions = partitions
        self._on_assignment = on_assignment
        self._session_ms = session_timeout_ms
        self._heartbeat_ms = max(100, session_timeout_ms // 3)
        self._assignment: list[QueuePartition] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"omconnect-{group}")
        self._revision = 0
        self._value = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode()

    def start(self) -> None:
        """Join the group (first heartbeat and assignment happen before this returns)."""
        self._revision = self._heartbeat()
        self._rebalance()
        self._thread.start()

    def leave(self) -> None:
        """Leave the group at once so the others take over without waiting."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self._backend.kv_delete(self._namespace, self._key)
        except OmConnectError as exc:  # the TTL removes it anyway
            log.warning("could not delete member key %s: %s", self._key, exc)

    def _heartbeat(self) -> int:
        return self._backend.kv_put(self._namespace, self._key, self._value, self._session_ms)

    def _rebalance(self) -> None:
        members = [
            kv.key[len(self._prefix) :]
            for kv in self._backend.kv_list(self._namespace, self._prefix)
        ]
        if self.member_id not in members:  # our key expired (a long pause): rejoin
            self._heartbeat()
            members.append(self.member_id)
        assignment = assign_averagely(self.member_id, members, self._partitions())
        if assignment != self._assignment:
            self._assignment = assignment
            self._on_assignment(list(assignment))

    def _run(self) -> None:
        revision = self._revision
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() * 1000 >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() * 1000 + self._heartbeat_ms
                wait = max(0, int(next_beat - time.monotonic() * 1000))
                try:
                    _, revision = self._backend.kv_watch(
                        self._namespace, self._prefix, revision, min(wait, 1000)
                    )
                except CompactedError:
                    revision = self._heartbeat()
                if not self._stop.is_set():
                    self._rebalance()
            except OmConnectError as exc:
                log.warning("group membership of %s: %s; retrying", self.member_id, exc)
                self._stop.wait(self._heartbeat_ms / 1000)
