"""`MessagingAccessPoint`: the entry point of the OpenMessaging layer.

Open one from a URL, then create what you need from it::

    with MessagingAccessPoint.open("oms:embedded://local/demo", data_dir="data") as ap:
        ap.resources.create_queue("orders", partitions=4)
        ap.create_producer().send(Message(b"hi", destination="orders"))
        with ap.create_pull_consumer("billing", ["orders"], start_from="earliest") as c:
            m = c.receive(timeout_ms=1000)

Everything an access point creates works in its URL's namespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from omconnect.broker.api import BrokerApi, KeyValue, KvEvent, QueueInfo
from omconnect.consumer import ConsumerConfig, PullConsumer
from omconnect.drivers.registry import load_driver
from omconnect.producer import CheckListener, Producer
from omconnect.push_consumer import MessageListener, PushConsumer
from omconnect.url import AccessPointUrl, parse_url


class MessagingAccessPoint:
    """A connection to one namespace of one messaging backend."""

    def __init__(self, url: AccessPointUrl, backend: BrokerApi) -> None:
        self.url = url
        self.namespace = url.namespace
        self.backend = backend
        self.resources = ResourceManager(backend, url.namespace)
        self.kv = KeyValueStore(backend, url.namespace)
        self._closeables: list[Producer | PullConsumer | PushConsumer] = []

    @classmethod
    def open(cls, url: str, **attributes: str) -> MessagingAccessPoint:
        """Parse ``url``, load its driver and connect. ``attributes`` override the
        URL's query parameters. `ConfigError` for a malformed URL or unknown driver."""
        parsed = parse_url(url)
        if attributes:
            merged = {**parsed.attributes, **{k: str(v) for k, v in attributes.items()}}
            parsed = AccessPointUrl(
                parsed.driver, parsed.hosts, parsed.namespace, parsed.account, merged
            )
        backend = load_driver(parsed.driver).open(parsed)
        backend.create_namespace(parsed.namespace)
        return cls(parsed, backend)

    def create_producer(
        self, producer_group: str = "", check_listener: CheckListener | None = None
    ) -> Producer:
        """A producer; give a group and a check listener for transactional sends."""
        producer = Producer(
            self.backend,
            self.namespace,
            producer_group=producer_group,
            check_listener=check_listener,
        )
        self._closeables.append(producer)
        return producer

    def create_pull_consumer(
        self, group: str, queues: Sequence[str], **options: Any
    ) -> PullConsumer:
        """A pull consumer in ``group``; ``options`` are `ConsumerConfig` fields."""
        consumer = PullConsumer(
            self.backend, self.namespace, ConsumerConfig(group, tuple(queues), **options)
        )
        self._closeables.append(consumer)
        return consumer

    def create_push_consumer(
        self, group: str, queues: Sequence[str], listener: MessageListener, **options: Any
    ) -> PushConsumer:
        """A push consumer calling ``listener`` (True/None acks, False or raising nacks)."""
        consumer = PushConsumer(
            self.backend,
            self.namespace,
            ConsumerConfig(group, tuple(queues), **options),
            listener,
        )
        self._closeables.append(consumer)
        return consumer

    def close(self) -> None:
        """Close what this access point created, then the backend connection."""
        for item in reversed(self._closeables):
            item.close()
        self._closeables.clear()
        self.backend.close()

    def __enter__(self) -> MessagingAccessPoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResourceManager:
    """Create, list and delete namespaces and queues."""

    def __init__(self, backend: BrokerApi, namespace: str) -> None:
        self._backend = backend
        self.namespace = namespace

    def create_queue(self, name: str, partitions: int = 1) -> QueueInfo:
        """Create a queue in this namespace (idempotent; more partitions add some)."""
        return self._backend.create_queue(self.namespace, name, partitions)

    def delete_queue(self, name: str) -> None:
        """Delete a queue of this namespace."""
        self._backend.delete_queue(self.namespace, name)

    def list_queues(self) -> list[QueueInfo]:
        """This namespace's queues."""
        return self._backend.list_queues(self.namespace)

    def queue_info(self, name: str) -> QueueInfo:
        """One queue; `NotFoundError` if absent."""
        return self._backend.queue_info(self.namespace, name)

    def create_namespace(self, namespace: str) -> None:
        """Create another namespace."""
        self._backend.create_namespace(namespace)

    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace and everything in it."""
        self._backend.delete_namespace(namespace)

    def list_namespaces(self) -> list[str]:
        """Every namespace."""
        return self._backend.list_namespaces()


class KeyValueStore:
    """The namespace's key-value store: revisions, compare-and-set, TTL, watch."""

    def __init__(self, backend: BrokerApi, namespace: str) -> None:
        self._backend = backend
        self._ns = namespace

    def get(self, key: str) -> KeyValue | None:
        """The key's entry, or None."""
        return self._backend.kv_get(self._ns, key)

    def put(self, key: str, value: bytes, ttl_ms: int = 0) -> int:
        """Set a key; returns the new revision."""
        return self._backend.kv_put(self._ns, key, value, ttl_ms)

    def compare_and_set(
        self, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        """Set only if the key is at ``expected_revision`` (0: absent); None if not."""
        return self._backend.kv_cas(self._ns, key, value, expected_revision, ttl_ms)

    def delete(self, key: str, expected_revision: int = -1) -> bool:
        """Delete a key (at ``expected_revision`` unless -1); True if it was deleted."""
        return self._backend.kv_delete(self._ns, key, expected_revision)

    def list(self, prefix: str = "") -> list[KeyValue]:
        """Live entries under ``prefix``, sorted by key."""
        return self._backend.kv_list(self._ns, prefix)

    def watch(self, prefix: str, from_revision: int, poll_ms: int = 1000) -> Iterator[KvEvent]:
        """Changes under ``prefix`` from ``from_revision`` on, forever (stop iterating
        to stop). Raises `CompactedError` if that history is gone."""
        revision = from_revision
        while True:
            events, revision = self._backend.kv_watch(self._ns, prefix, revision, poll_ms)
            yield from events
