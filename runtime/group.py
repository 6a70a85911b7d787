"""A distributed worker's place in its group: membership and leadership leases.

Keys, all under ``connect/<group>/`` in the access point's KV store::

    workers/<id>            `Member` record, TTL = session.timeout.ms
    leader                  {"worker_id": id, "incarnation": n}, TTL = session.timeout.ms
    assignment              `omconnect.runtime.rebalance.Published`
    restarts/<connector>/<n> a restart request (TTL one minute)

A lease is a TTL key created with compare-and-set (expected revision 0) and renewed
with compare-and-set on its own last revision, so a lease that expired can never be
renewed: its holder learns it lost it. `GroupMember` renews both leases every
``heartbeat.interval.ms`` on one thread and runs a watchdog on another: when the
member lease has not been renewed for `fence_after_ms` (or a renewal finds it gone)
the watchdog *fences* this worker — calls ``on_lost`` (which stops all its work)
under `fence_lock` — before the lease can have expired on the store. Then it joins
again as a new incarnation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from omconnect.access_point import KeyValueStore
from omconnect.broker.api import BrokerApi, KeyValue
from omconnect.errors import CompactedError, CorruptDataError, OmConnectError
from omconnect.runtime.rebalance import Member, fence_after_ms

log = logging.getLogger(__name__)

RESTART_TTL_MS = 60_000


@dataclass(frozen=True, slots=True)
class GroupKeys:
    """Where one group's coordination records live."""

    prefix: str

    @classmethod
    def of(cls, group: str) -> GroupKeys:
        return cls(f"connect/{group}/")

    @property
    def members(self) -> str:
        return self.prefix + "workers/"

    @property
    def leader(self) -> str:
        return self.prefix + "leader"

    @property
    def assignment(self) -> str:
        return self.prefix + "assignment"

    @property
    def restarts(self) -> str:
        return self.prefix + "restarts/"

    def member(self, worker_id: str) -> str:
        return self.members + worker_id


def encode_member(url: str, applied: int, left: bool) -> bytes:
    """A member key's value."""
    data = {"url": url, "applied": applied, "left": left}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def decode_member(keys: GroupKeys, entry: KeyValue) -> Member:
    """The `Member` a member key holds (its incarnation is the key's create revision)."""
    try:
        data = json.loads(entry.value)
        return Member(
            entry.key[len(keys.members) :],
            entry.create_revision,
            int(data.get("applied", 0)),
            bool(data.get("left", False)),
            str(data.get("url", "")),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptDataError(f"member record {entry.key!r} does not parse: {exc}") from None


def read_members(kv: KeyValueStore, keys: GroupKeys) -> dict[str, Member]:
    """Every live member by worker id."""
    members = (decode_member(keys, e) for e in kv.list(keys.members))
    return {m.worker_id: m for m in members}


class Lease:
    """One TTL key held by compare-and-set. Not thread-safe (`GroupMember` locks)."""

    def __init__(self, kv: KeyValueStore, key: str, ttl_ms: int) -> None:
        self._kv = kv
        self.key = key
        self._ttl_ms = ttl_ms
        self.revision = 0  # 0: not held
        self.incarnation = 0
        self.renewed_at = 0.0  # monotonic time the last successful write was *sent*

    @property
    def held(self) -> bool:
        return self.revision != 0

    def acquire(self, value: bytes) -> bool:
        """Create the key if it is absent; True if this call now holds it."""
        sent = time.monotonic()
        revision = self._kv.compare_and_set(self.key, value, 0, self._ttl_ms)
        if revision is None:
            return False
        self.revision = self.incarnation = revision
        self.renewed_at = sent
        return True

    def renew(self, value: bytes) -> bool:
        """Write the key again (TTL restarts) if still held; False if it was lost
        (the caller decides what losing it means)."""
        sent = time.monotonic()
        revision = self._kv.compare_and_set(self.key, value, self.revision, self._ttl_ms)
        if revision is None:
            return False
        self.revision = revision
        self.renewed_at = sent
        return True

    def release(self) -> None:
        """Delete the key if still ours."""
        if self.held:
            self._kv.delete(self.key, self.revision)
        self.revision = 0


class GroupMember:
    """This worker's member and leader leases, renewed in the background.

    ``on_lost`` runs on the watchdog thread, under `fence_lock`, when the member
    lease is lost (or may be): it must stop everything this worker runs. Code that
    starts work checks `holds` under `fence_lock`, so nothing starts after a fence.
    ``on_change`` is called after the membership or the leadership changed.
    """

    def __init__(
        self,
        kv: KeyValueStore,
        keys: GroupKeys,
        worker_id: str,
        url: str,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        on_lost: Callable[[], None],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.worker_id = worker_id
        self.url = url
        self.fence_lock = threading.RLock()
        self._kv = kv
        self._member = Lease(kv, keys.member(worker_id), session_timeout_ms)
        self._leader = Lease(kv, keys.leader, session_timeout_ms)
        self._heartbeat_s = heartbeat_interval_ms / 1000
        self._fence_s = fence_after_ms(session_timeout_ms, heartbeat_interval_ms) / 1000
        self._on_lost = on_lost
        self._on_change = on_change
        self._applied = 0
        self._left = False
        self._lock = threading.Lock()  # lease writes
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._heartbeats, daemon=True, name=f"heartbeat-{worker_id}"),
            threading.Thread(target=self._watchdog, daemon=True, name=f"watchdog-{worker_id}"),
        ]

    @property
    def held(self) -> bool:
        """True while the member lease is (as far as this worker knows) valid."""
        return self._member.held

    @property
    def incarnation(self) -> int:
        """The create revision of this worker's member key (0 while not a member)."""
        return self._member.incarnation if self._member.held else 0

    def holds(self, incarnation: int) -> bool:
        """True while the member lease of that incarnation is held. Check it under
        `fence_lock` right before starting work planned for that incarnation."""
        return self._member.held and self._member.incarnation == incarnation

    @property
    def is_leader(self) -> bool:
        return self._leader.held and self._member.held

    def start(self) -> None:
        """Join the group (the member key exists when this returns)."""
        self._join()
        self._threads[0].start()
        self._threads[1].start()

    def acknowledge(self, incarnation: int, generation: int) -> None:
        """Tell the leader this incarnation has carried out ``generation`` (nothing
        if the lease was lost or renewed as another incarnation meanwhile)."""
        with self._lock:
            if not self.holds(incarnation):
                return
            self._applied = generation
            lost = not self._member.renew(self._value())
        if lost:
            self._fence("its lease expired")

    def leave(self) -> None:
        """Graceful exit, after this worker stopped all its work: stop renewing and
        mark the member key as left, so the leader frees its units at once. Call
        `release` once the leader has published a generation without this worker."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        with self._lock:
            self._left = True
            try:
                if self._member.held and not self._member.renew(self._value()):
                    self._member.revision = 0
            except OmConnectError as exc:
                log.warning("worker %s: leaving: %s", self.worker_id, exc)

    def release(self) -> None:
        """Delete the leader and member keys if still ours (they expire anyway)."""
        with self._lock:
            for lease in (self._leader, self._member):
                try:
                    lease.release()
                except OmConnectError as exc:
                    log.warning("worker %s: deleting %s: %s", self.worker_id, lease.key, exc)

    def try_lead(self) -> None:
        """Take the leader lease now if it is free (called when its key goes away,
        so that a dead leader is replaced at once, not at the next heartbeat)."""
        with self._lock:
            if not self._member.held or self._leader.held or self._left:
                return
            if self._kv.get(self._leader.key) is not None:
                return
            acquired = self._leader.acquire(self._leader_value())
        if acquired:
            log.info("worker %s is leader: True", self.worker_id)
            self._on_change()

    def _value(self) -> bytes:
        return encode_member(self.url, self._applied, self._left)

    def _join(self) -> None:
        with self._lock:
            self._applied = 0
            if not self._member.acquire(self._value()):  # a previous process of this id
                stale = self._kv.get(self._member.key)
                if stale is not None:
                    self._kv.delete(self._member.key, stale.revision)
                if not self._member.acquire(self._value()):
                    raise OmConnectError(f"worker id {self.worker_id!r} is in use")
        log.info("worker %s joined (incarnation %d)", self.worker_id, self._member.incarnation)
        self._on_change()

    def _heartbeats(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            try:
                self._beat()
            except OmConnectError as exc:
                log.warning("worker %s: heartbeat failed: %s", self.worker_id, exc)

    def _beat(self) -> None:
        if not self._member.held:
            self._join()
            return
        with self._lock:
            lost = not self._member.renew(self._value())
            was_leader = self._leader.held
            if lost:
                pass
            elif was_leader:
                if not self._leader.renew(self._leader_value()):
                    self._leader.revision = 0
            elif self._kv.get(self._leader.key) is None:
                self._leader.acquire(self._leader_value())
            changed = was_leader != self._leader.held
        if lost:
            self._fence("its lease expired")
        elif changed:
            log.info("worker %s is leader: %s", self.worker_id, self._leader.held)
            self._on_change()

    def _leader_value(self) -> bytes:
        data = {"worker_id": self.worker_id, "incarnation": self._member.incarnation}
        return json.dumps(data, sort_keys=True).encode()

    def _watchdog(self) -> None:
        while not self._stop.wait(0.05):
            lease = self._member
            if lease.held and time.monotonic() - lease.renewed_at >= self._fence_s:
                self._fence(f"no lease renewal for {self._fence_s:.1f} s")

    def _fence(self, why: str) -> None:
        with self.fence_lock:
            if not self._member.held:
                return  # fenced already
            log.warning("worker %s: %s: stopping all its work", self.worker_id, why)
            self._member.revision = 0  # the next heartbeat joins as a new incarnation
            self._leader.revision = 0
            self._on_lost()
        self._on_change()


def watch_for(
    backend: BrokerApi,
    namespace: str,
    prefix: str,
    revision: int,
    timeout_s: float,
    relevant: Callable[[str], bool],
) -> tuple[bool, int]:
    """Wait up to ``timeout_s`` for a change under ``prefix`` whose key is
    ``relevant``; (True if one came, the revision to wait from next). Revision 0
    means "from now"; history lost to compaction counts as a change."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, revision
        try:
            events, revision = backend.kv_watch(
                namespace, prefix, revision, max(1, int(remaining * 1000))
            )
        except CompactedError:
            return True, 0
        if any(relevant(e.key) for e in events):
            return True, revision
