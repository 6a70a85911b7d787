"""`BrokerApi`: the operations of the bundled broker, the same in-process and over TCP.

`omconnect.broker.broker.Broker` implements it in-process; the sync TCP client
`omconnect.broker.client.BrokerClient` implements it over the wire protocol
(``docs/protocol.md``), one request per call. The embedded driver
(`omconnect.drivers.embedded`) is written against this interface only, so the
driver conformance suite covers both.

Messages cross this interface in their `omconnect.codec` encoding (``bytes``): the
producer encodes once, the broker stores the bytes unchanged, the consumer decodes.
The broker checks each encoding's CRC on arrival and again before serving it.

All blocking calls take ``max_wait_ms``: 0 answers at once; more waits up to that
long for something to return (long polling) and answers as soon as there is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue (topic) in a namespace and its partition count."""

    namespace: str
    name: str
    partitions: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the broker serves it: its encoding plus what the store assigned.

    ``count`` > 1 only where batches are served whole (`BrokerApi.read_batches`, the
    store's `read`): then ``encoded`` is an `omconnect.batch_codec` batch encoding of
    ``count`` messages at offsets ``offset`` .. ``offset + count - 1``."""

    partition: int
    offset: int
    store_timestamp: int
    encoded: bytes
    count: int = 1


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Messages from one partition. ``next_offset`` is where the next read starts;
    it moves past expired messages that were skipped, so it may exceed the last
    message's offset + 1."""

    messages: list[StoredMessage]
    next_offset: int


@dataclass(frozen=True, slots=True)
class HalfMessage:
    """A transactional message still waiting for commit or rollback."""

    transaction_id: str
    queue: str
    partition: int
    encoded: bytes
    prepared_at: int


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key's current value. ``revision`` is the store-wide revision of the last
    write to it; ``create_revision`` that of its creation. ``expires_at`` is epoch
    ms, or 0 for a key without a TTL."""

    key: str
    value: bytes
    revision: int
    create_revision: int
    expires_at: int = 0


@dataclass(frozen=True, slots=True)
class KvEvent:
    """One change to the store: ``kind`` is "put" or "delete" (a TTL expiry is a delete)."""

    kind: str
    key: str
    value: bytes
    revision: int


class BrokerApi(ABC):
    """Every operation of the bundled broker. Names are namespaces, queues and groups.

    Errors: `NotFoundError` for an unknown namespace or queue, `ConfigError` for a bad
    argument, `MessageTooLargeError`, `CorruptDataError` for a message whose CRC fails,
    `ConnectionLostError` (TCP only) when the broker cannot be reached.
    """

    # -- resources ---------------------------------------------------------------
    @abstractmethod
    def create_namespace(self, namespace: str) -> None:
        """Create a namespace; a no-op if it exists."""

    @abstractmethod
    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace with its queues, offsets and keys."""

    @abstractmethod
    def list_namespaces(self) -> list[str]:
        """All namespaces, sorted."""

    @abstractmethod
    def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueInfo:
        """Create a queue (creating the namespace too). Idempotent for the same
        partition count; more partitions than before adds partitions; fewer is an
        `AlreadyExistsError`."""

    @abstractmethod
    def delete_queue(self, namespace: str, queue: str) -> None:
        """Delete a queue; its data ages out of the commit log with retention."""

    @abstractmethod
    def list_queues(self, namespace: str) -> list[QueueInfo]:
        """The namespace's queues, sorted by name (internal queues included)."""

    @abstractmethod
    def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        """One queue; `NotFoundError` if it does not exist."""

    # -- produce -----------------------------------------------------------------
    @abstractmethod
    def append(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> list[int]:
        """Store encoded messages at the end of one partition, in order; return
        their offsets. Returns once they are durable as the broker's flush mode
        promises (sync: fsynced; async: in the page cache)."""

    def append_batch(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> int:
        """Store the messages of one `omconnect.batch_codec` batch encoding at
        consecutive offsets at the end of one partition, in order; return the first
        offset. Durable like `append`. `CorruptDataError` for a batch whose length,
        CRC or headers are wrong; nothing is stored then.

        This default stores the messages one by one with `append`; the bundled broker
        stores the batch as one record."""
        from omconnect import batch_codec

        batch_codec.check_batch(batch)
        return self.append(namespace, queue, partition, batch_codec.split_batch(batch))[0]

    @abstractmethod
    def append_delayed(
        self,
        namespace: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
        deliver_at: Sequence[int],
    ) -> None:
        """Store messages that become visible in ``queue`` at the epoch-ms times
        ``deliver_at`` (one per message). Durable like `append`."""

    # -- transactions ------------------------------------------------------------
    @abstractmethod
    def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
    ) -> None:
        """Store half messages: invisible until `end_transaction` commits them."""

    @abstractmethod
    def end_transaction(self, namespace: str, transaction_id: str, commit: bool) -> None:
        """Commit (append to their queue) or roll back a transaction's half
        messages. Ending an unknown or already ended transaction is a no-op."""

    @abstractmethod
    def transaction_checks(
        self, namespace: str, producer_group: str, max_wait_ms: int
    ) -> list[HalfMessage]:
        """Half messages of ``producer_group`` left undecided for longer than the
        broker's check interval: the producer's check-back listener decides them.
        Each is offered again after another interval until decided."""

    # -- consume -----------------------------------------------------------------
    @abstractmethod
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
        """Messages from ``offset`` on (at least one if any, even past
        ``max_bytes``). Expired messages are skipped. An offset below the
        partition's first retained offset reads from that first offset."""

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
        """`read`, except that messages stored as a batch may come as one
        `StoredMessage` holding the whole batch (``count`` > 1, a batch encoding),
        which may begin before ``offset`` and reach past ``max_messages``: the caller
        skips the messages below ``offset`` (Kafka's fetch of record batches).
        ``next_offset`` is past the last message returned. This default is `read`."""
        return self.read(namespace, queue, partition, offset, max_messages, max_wait_ms, max_bytes)

    @abstractmethod
    def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        """(first retained offset, next offset to be written) of one partition."""

    @abstractmethod
    def commit_offsets(
        self, namespace: str, group: str, queue: str, offsets: dict[int, int]
    ) -> None:
        """Store a consumer group's next-offset-to-read per partition."""

    @abstractmethod
    def committed_offsets(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        """A group's committed offsets for a queue (partitions never committed are absent)."""

    # -- key-value store ---------------------------------------------------------
    @abstractmethod
    def kv_get(self, namespace: str, key: str) -> KeyValue | None:
        """The key's value, or None."""

    @abstractmethod
    def kv_put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        """Set a key (with a TTL if ``ttl_ms`` > 0); return the new revision."""

    @abstractmethod
    def kv_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        """Set a key only if its revision is ``expected_revision`` (0: only if the key
        does not exist). Return the new revision, or None if the check failed."""

    @abstractmethod
    def kv_delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        """Delete a key (only at ``expected_revision`` unless it is -1). True if deleted."""

    @abstractmethod
    def kv_list(self, namespace: str, prefix: str) -> list[KeyValue]:
        """Live keys starting with ``prefix``, sorted by key."""

    @abstractmethod
    def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        """Changes to keys under ``prefix`` with revision >= ``from_revision``, and the
        revision to pass next time. `CompactedError` if that history is gone."""

    # -- lifecycle ---------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release resources. The in-process broker flushes and closes its store."""
