"""The driver conformance suite: what every ``oms:`` driver must do.

Subclass `DriverConformance` in a test module and give it an ``access_point_url``
fixture that yields a URL (and keeps its server running); every test opens its
own namespace there::

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        def access_point_url(self, my_server) -> str:
            return f"oms:mydriver://127.0.0.1:{my_server.port}/ns"

The tests are written as a user of the OpenMessaging layer would use it, through
`MessagingAccessPoint` only, so a driver passes by behaving, not by its internals.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from omconnect.access_point import MessagingAccessPoint
from omconnect.broker.api import KvEvent
from omconnect.consumer import PullConsumer, dead_letter_queue
from omconnect.errors import ConfigError, NotFoundError
from omconnect.message import Message
from omconnect.producer import TransactionResolution
from omconnect.url import parse_url

FAST = {"session_timeout_ms": 600, "auto_commit_interval_ms": 100}


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``check`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def receive_n(consumer: PullConsumer, n: int, timeout_s: float = 10.0) -> list[Message]:
    """Receive and ack ``n`` messages (fails the test if they do not come in time)."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        batch = consumer.batch_receive(n - len(out), timeout_ms=200)
        for m in batch:
            consumer.ack(m)
        out.extend(batch)
    assert len(out) == n, f"received {len(out)} of {n} messages"
    return out


class DriverConformance:
    """The shared tests. Subclasses provide the ``access_point_url`` fixture."""

    @pytest.fixture
    def access_point_url(self) -> str:
        raise NotImplementedError("subclasses provide access_point_url")

    @pytest.fixture
    def ap(self, access_point_url: str) -> Iterator[MessagingAccessPoint]:
        parsed = parse_url(access_point_url)
        namespace = f"t{uuid.uuid4().hex[:10]}"
        url = str(parsed).replace(f"/{parsed.namespace}", f"/{namespace}", 1)
        with MessagingAccessPoint.open(url) as access_point:
            yield access_point

    # -- resources ---------------------------------------------------------------
    def test_queues_are_created_listed_and_deleted(self, ap: MessagingAccessPoint) -> None:
        info = ap.resources.create_queue("orders", partitions=3)
        assert (info.name, info.partitions) == ("orders", 3)
        assert ap.resources.create_queue("orders", partitions=3).partitions == 3
        assert "orders" in [q.name for q in ap.resources.list_queues()]
        assert ap.namespace in ap.resources.list_namespaces()
        ap.resources.delete_queue("orders")
        with pytest.raises(NotFoundError):
            ap.resources.queue_info("orders")

    def test_sending_to_an_unknown_queue_is_a_clear_error(self, ap: MessagingAccessPoint) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            ap.create_producer().send(Message(b"x", destination="nope"))
        with pytest.raises(ConfigError, match="destination"):
            ap.create_producer().send(Message(b"x"))

    # -- produce and consume -----------------------------------------------------
    def test_headers_and_properties_round_trip(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 2)
        sent = Message(
            b"\x00body\xff",
            destination="q",
            message_key="k1",
            properties={"a": "1", "b": ""},
            trace_id="t-1",
            correlation_id="c-1",
            priority=3,
            compression="none",
        )
        result = ap.create_producer().send(sent)
        assert result.offset == 0 and result.message_id
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            (got,) = receive_n(consumer, 1)
        assert got.body == b"\x00body\xff"
        assert got.properties == {"a": "1", "b": ""}
        assert (got.message_id, got.partition, got.offset) == (
            result.message_id,
            result.partition,
            0,
        )
        assert (got.trace_id, got.correlation_id, got.priority) == ("t-1", "c-1", 3)
        assert got.born_timestamp > 0 and got.store_timestamp >= got.born_timestamp - 1000
        assert got.destination == "q" and got.message_key == "k1"

    def test_one_key_keeps_one_partition_and_its_order(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 4)
        producer = ap.create_producer()
        messages = [
            Message(str(i).encode(), destination="q", message_key=f"k{i % 3}") for i in range(60)
        ]
        results = producer.send_batch(messages)
        by_key: dict[str, set[int]] = {}
        for m, r in zip(messages, results, strict=True):
            by_key.setdefault(m.message_key, set()).add(r.partition)
        assert all(len(parts) == 1 for parts in by_key.values())
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            got = receive_n(consumer, 60)
        for key in by_key:
            bodies = [int(m.body) for m in got if m.message_key == key]
            assert bodies == sorted(bodies) and len(bodies) == 20

    def test_async_oneway_and_batch_sends(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 2)
        producer = ap.create_producer()
        futures = [producer.send_async(Message(b"a%d" % i, destination="q")) for i in range(50)]
        offsets = {(f.result(10).partition, f.result(10).offset) for f in futures}
        assert len(offsets) == 50
        for i in range(20):
            producer.send_oneway(Message(b"o%d" % i, destination="q"))
        producer.send_oneway_batch([Message(b"b", destination="q")] * 5)
        producer.flush()
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            got = receive_n(consumer, 75)
        assert sorted(m.body for m in got if m.body.startswith(b"a")) == sorted(
            b"a%d" % i for i in range(50)
        )

    def test_committed_offsets_resume_the_group(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 2)
        producer = ap.create_producer()
        producer.send_batch([Message(b"%d" % i, destination="q") for i in range(10)])
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            first = receive_n(consumer, 10)
        producer.send_batch([Message(b"%d" % i, destination="q") for i in range(10, 15)])
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            second = receive_n(consumer, 5)
            assert consumer.batch_receive(10, timeout_ms=300) == []
        assert sorted(int(m.body) for m in first + second) == list(range(15))

    def test_latest_start_skips_history(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        producer = ap.create_producer()
        producer.send(Message(b"old", destination="q"))
        with ap.create_pull_consumer("g", ["q"], start_from="latest", **FAST) as consumer:
            producer.send(Message(b"new", destination="q"))
            assert [m.body for m in receive_n(consumer, 1)] == [b"new"]

    def test_an_empty_receive_wakes_when_a_message_arrives(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as consumer:
            timer = threading.Timer(
                0.3, lambda: ap.create_producer().send(Message(b"late", destination="q"))
            )
            timer.start()
            started = time.monotonic()
            got = consumer.receive(timeout_ms=5000)
            waited = time.monotonic() - started
        assert got is not None and got.body == b"late"
        assert 0.2 < waited < 3.0

    # -- groups --------------------------------------------------------------------
    def test_group_members_share_partitions_and_take_over(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 4)
        first = ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST)
        wait_until(lambda: len([p for p in first.assignment if p[0] == "q"]) == 4)
        second = ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST)
        wait_until(
            lambda: (
                len([p for p in first.assignment if p[0] == "q"]) == 2
                and len([p for p in second.assignment if p[0] == "q"]) == 2
            )
        )
        assert not set(first.assignment) & set(second.assignment)
        ap.create_producer().send_batch([Message(b"%d" % i, destination="q") for i in range(40)])
        got: list[Message] = []

        def drained_all() -> bool:
            got.extend(_drain(first) + _drain(second))
            return len(got) >= 40

        wait_until(drained_all)
        second.close()
        wait_until(lambda: len([p for p in first.assignment if p[0] == "q"]) == 4)
        ap.create_producer().send_batch(
            [Message(b"x", destination="q", message_key=str(i)) for i in range(8)]
        )
        receive_n(first, 8)
        first.close()
        assert sorted(int(m.body) for m in got) == list(range(40))

    def test_a_member_that_stops_heartbeating_loses_its_partitions(
        self, ap: MessagingAccessPoint
    ) -> None:
        ap.resources.create_queue("q", 2)
        survivor = ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST)
        ghost_key = "%groups/g/members/ghost"
        ap.kv.put(ghost_key, b"{}", ttl_ms=600)  # a member that dies right after joining
        wait_until(lambda: len([p for p in survivor.assignment if p[0] == "q"]) < 2)
        wait_until(lambda: len([p for p in survivor.assignment if p[0] == "q"]) == 2, 5)
        survivor.close()

    # -- redelivery, dead letters, push --------------------------------------------
    def test_nack_redelivers_then_dead_letters(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        ap.create_producer().send(Message(b"poison", destination="q", properties={"p": "1"}))
        options = {**FAST, "max_deliveries": 3, "retry_backoff_ms": 50}
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **options) as c:
            counts: list[int] = []
            for _ in range(3):
                m = None
                deadline = time.monotonic() + 10
                while m is None and time.monotonic() < deadline:
                    m = c.receive(timeout_ms=200)
                assert m is not None, f"redelivery {len(counts)} did not come"
                counts.append(m.delivery_count)
                assert m.body == b"poison" and m.destination == "q"
                c.nack(m)
            assert counts == [0, 1, 2]
            assert c.batch_receive(5, timeout_ms=400) == []
        dlq = dead_letter_queue("g")
        with ap.create_pull_consumer("dlq-reader", [dlq], start_from="earliest", **FAST) as d:
            (dead,) = receive_n(d, 1)
        assert dead.body == b"poison" and dead.delivery_count == 3
        assert dead.properties["p"] == "1" and dead.properties["ORIGIN_QUEUE"] == "q"

    def test_unacked_messages_come_back_after_the_ack_timeout(
        self, ap: MessagingAccessPoint
    ) -> None:
        ap.resources.create_queue("q", 1)
        ap.create_producer().send(Message(b"slow", destination="q"))
        options = {**FAST, "ack_timeout_ms": 200, "retry_backoff_ms": 10}
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **options) as c:
            first = c.receive(timeout_ms=5000)
            assert first is not None and first.delivery_count == 0
            again = None
            deadline = time.monotonic() + 10
            while again is None and time.monotonic() < deadline:
                again = c.receive(timeout_ms=100)
            assert again is not None and again.body == b"slow" and again.delivery_count == 1

    def test_push_consumer_delivers_and_suspends(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 2)
        seen: list[bytes] = []
        consumer = ap.create_push_consumer(
            "g", ["q"], lambda m: seen.append(m.body), start_from="earliest", **FAST
        )
        producer = ap.create_producer()
        producer.send_batch([Message(b"%d" % i, destination="q") for i in range(10)])
        wait_until(lambda: len(seen) == 10)
        consumer.suspend()
        time.sleep(0.3)  # let the message in hand finish
        producer.send(Message(b"later", destination="q"))
        time.sleep(0.5)
        assert b"later" not in seen
        consumer.resume()
        wait_until(lambda: b"later" in seen)
        consumer.close()

    # -- delay, expiry, transactions ---------------------------------------------
    def test_delayed_messages_wait_their_time(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as c:
            sent_at = time.time()
            ap.create_producer().send(Message(b"later", destination="q", delay_time=700))
            ap.create_producer().send(Message(b"now", destination="q"))
            (first,) = receive_n(c, 1)
            assert first.body == b"now"
            (second,) = receive_n(c, 1)
            assert second.body == b"later" and time.time() - sent_at >= 0.69

    def test_expired_messages_are_not_delivered(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        past = int(time.time() * 1000) - 1
        ap.create_producer().send_batch(
            [
                Message(b"stale", destination="q", expire_time=past),
                Message(b"fresh", destination="q", expire_time=past + 3_600_000),
            ]
        )
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as c:
            assert [m.body for m in receive_n(c, 1)] == [b"fresh"]
            assert c.batch_receive(5, timeout_ms=300) == []

    def test_transactions_commit_and_roll_back(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        producer = ap.create_producer(producer_group="tx")
        kept = producer.prepare([Message(b"kept", destination="q")])
        dropped = producer.prepare([Message(b"dropped", destination="q")])
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as c:
            assert c.batch_receive(5, timeout_ms=300) == []
            dropped.rollback()
            kept.commit()
            assert [m.body for m in receive_n(c, 1)] == [b"kept"]
            assert c.batch_receive(5, timeout_ms=300) == []

    def test_check_back_decides_an_abandoned_transaction(self, ap: MessagingAccessPoint) -> None:
        ap.resources.create_queue("q", 1)
        ap.create_producer(producer_group="tx").prepare([Message(b"orphan", destination="q")])
        asked: list[bytes] = []

        def listener(m: Message) -> TransactionResolution:
            asked.append(m.body)
            return TransactionResolution.COMMIT

        ap.create_producer(producer_group="tx", check_listener=listener)
        with ap.create_pull_consumer("g", ["q"], start_from="earliest", **FAST) as c:
            (got,) = receive_n(c, 1, timeout_s=30)
        assert got.body == b"orphan" and asked == [b"orphan"]

    # -- key-value store -----------------------------------------------------------
    def test_kv_revisions_and_compare_and_set(self, ap: MessagingAccessPoint) -> None:
        kv = ap.kv
        assert kv.get("a") is None
        r1 = kv.put("a", b"1")
        assert kv.compare_and_set("a", b"2", expected_revision=r1 + 100) is None
        r2 = kv.compare_and_set("a", b"2", expected_revision=r1)
        assert r2 is not None and r2 > r1
        entry = kv.get("a")
        assert entry is not None and (entry.value, entry.revision) == (b"2", r2)
        assert entry.create_revision == r1
        assert kv.compare_and_set("b", b"x", expected_revision=0) is not None
        assert kv.compare_and_set("b", b"y", expected_revision=0) is None
        assert [e.key for e in kv.list("")] == ["a", "b"]
        assert kv.delete("a", expected_revision=r1) is False
        assert kv.delete("a") is True and kv.get("a") is None

    def test_kv_ttl_and_watch(self, ap: MessagingAccessPoint) -> None:
        kv = ap.kv
        start = kv.put("w/start", b"")
        kv.put("w/lease", b"alive", ttl_ms=300)
        kv.put("other", b"ignored")
        kv.put("w/x", b"1")
        kv.delete("w/x")
        events = kv.watch("w/", start + 1, poll_ms=200)
        seen = [(e.kind, e.key) for e in _take(events, 4)]
        assert seen == [
            ("put", "w/lease"),
            ("put", "w/x"),
            ("delete", "w/x"),
            ("delete", "w/lease"),
        ]
        assert kv.get("w/lease") is None


def _drain(consumer: PullConsumer) -> list[Message]:
    batch = consumer.batch_receive(100, timeout_ms=50)
    for m in batch:
        consumer.ack(m)
    return batch


def _take(events: Iterator[KvEvent], n: int, timeout_s: float = 10) -> list[KvEvent]:
    out: list[KvEvent] = []
    deadline = time.monotonic() + timeout_s
    for event in events:
        out.append(event)
        if len(out) == n or time.monotonic() > deadline:
            break
    return out
