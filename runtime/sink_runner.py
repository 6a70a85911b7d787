"""`SinkTaskRunner`: runs one sink task on its own thread.

A pull consumer in the group ``connect-<connector>`` reads the task's topics;
each message → key/value converters → sink record → transforms → `SinkTask.put`.
Every ``offset.flush.interval.ms`` the runner asks `SinkTask.pre_commit` (which
flushes) what may be committed, acks the messages below those offsets and commits
the consumer's offsets: a crash redelivers what was not flushed, never loses it.
A message that fails a converter or a transform goes through the error handler
(skipped and dead-lettered, or failing the task). `put` raising `RetriableError`
is retried with the same records after a backoff; anything else fails the task.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from omconnect.access_point import MessagingAccessPoint
from omconnect.connect.connector import SinkTask, TopicPartition
from omconnect.connect.records import SinkRecord
from omconnect.consumer import PullConsumer
from omconnect.errors import RetriableError
from omconnect.message import Message
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.error_handling import (
    SKIPPED,
    OriginalRecord,
    RetryWithToleranceOperator,
    Stage,
)
from omconnect.runtime.metrics import CommitStats, LatencyHistogram
from omconnect.runtime.record_mapping import key_bytes, to_sink_record, value_bytes
from omconnect.runtime.task_common import StateListener, TaskId, TaskThread, TopicCreator

log = logging.getLogger(__name__)

_REGEX_REFRESH_S = 1.0
"""How often a ``topics.regex`` sink looks for new matching queues (Kafka: metadata
refresh)."""

Transform = Callable[[SinkRecord], SinkRecord | None]


class _Context:
    """The `SinkTaskContext` a task gets."""

    def __init__(self, runner: SinkTaskRunner) -> None:
        self._runner = runner

    @property
    def config(self) -> Mapping[str, str]:
        return self._runner.config

    def assignment(self) -> set[TopicPartition]:
        return set(self._runner.owned)

    def pause(self, *partitions: TopicPartition) -> None:
        self._runner.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._runner.paused.difference_update(partitions)

    def request_commit(self) -> None:
        self._runner.commit_requested = True

    def errant_record_reporter(self) -> _ErrantRecordReporter:
        return _ErrantRecordReporter(self._runner)


class _ErrantRecordReporter:
    """Kafka's ErrantRecordReporter: a record the task could not write is handled by
    the task's ``errors.*`` config (logged, sent to the dead-letter queue with the
    message as it was read, or the task fails with ``errors.tolerance=none``)."""

    def __init__(self, runner: SinkTaskRunner) -> None:
        self._runner = runner

    def report(self, record: SinkRecord, error: BaseException) -> Future[None]:
        self._runner.report_errant(record, error)
        done: Future[None] = Future()
        done.set_result(None)  # the dead letter was handed to the producer already
        return done


class SinkTaskRunner(TaskThread):
    """One sink task's thread; `stop` commits what was flushed and closes."""

    def __init__(
        self,
        task_id: TaskId,
        task: SinkTask,
        config: Mapping[str, str],
        *,
        access_point: MessagingAccessPoint,
        topics: Sequence[str],
        topics_regex: str = "",
        key_converter: Converter,
        value_converter: Converter,
        transform: Transform,
        errors: RetryWithToleranceOperator,
        on_state: StateListener,
        commit_interval_ms: int = 1000,
        batch_size: int = 500,
        session_timeout_ms: int = 3000,
    ) -> None:
        super().__init__(task_id, task, config, errors, on_state)
        self._ap = access_point
        self._topics = tuple(topics)
        self._pattern = re.compile(topics_regex) if topics_regex else None
        self._next_match = 0.0  # monotonic time of the next look for matching queues
        self._key_converter = key_converter
        self._value_converter = value_converter
        self._transform = transform
        self._commit_interval = commit_interval_ms / 1000
        self._batch_size = batch_size
        self._session_timeout_ms = session_timeout_ms
        self._consumer: PullConsumer | None = None
        self.owned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.commit_requested = False
        self._pending: dict[TopicPartition, list[Message]] = {}  # put, not yet committed
        self._next: dict[TopicPartition, int] = {}
        self._tps: dict[tuple[str, int], TopicPartition] = {}  # see `_tp`
        self.records_read = 0
        self.records_sent = 0
        self._active = 0  # read, not committed (changed by the task thread only)
        self.commit_stats = CommitStats()
        self.latency = LatencyHistogram()

    kind = "sink"

    def active_records(self) -> int:
        """Records read whose offsets are not committed yet."""
        return self._active

    def _prepare(self) -> None:
        if self._pattern is not None:
            self._topics = self._matching_topics()
        else:
            creator = TopicCreator(self._ap)  # like Kafka's auto.create.topics.enable
            for topic in self._topics:
                creator.ensure(topic)
        self._consumer = self._subscribe()

    def _subscribe(self) -> PullConsumer | None:
        """A consumer of the task's topics in the connector's group (None while a
        ``topics.regex`` matches no queue yet)."""
        if not self._topics:
            return None
        return self._ap.create_pull_consumer(
            f"connect-{self.task_id.connector}",
            self._topics,
            start_from="earliest",
            ack_timeout_ms=0,
            session_timeout_ms=self._session_timeout_ms,
            fetch_max_messages=self._batch_size,
        )

    def _matching_topics(self) -> tuple[str, ...]:
        """The queues whose whole name matches ``topics.regex``, sorted."""
        assert self._pattern is not None
        self._next_match = time.monotonic() + _REGEX_REFRESH_S
        names = (q.name for q in self._ap.resources.list_queues())
        return tuple(sorted(n for n in names if self._pattern.fullmatch(n)))

    def _follow_pattern(self) -> None:
        """With ``topics.regex``: once a second, subscribe anew when the set of
        matching queues changed (offsets of what was flushed are committed first)."""
        if self._pattern is None or time.monotonic() < self._next_match:
            return
        topics = self._matching_topics()
        if topics == self._topics:
            return
        log.info("sink task %s: topics.regex now matches %s", self.task_id, ", ".join(topics))
        if self._consumer is not None:
            self._commit(self._consumer)
            self._close_partitions(list(self.owned))
            self._consumer.close()
        self._topics = topics
        self._consumer = self._subscribe()

    def _context(self) -> _Context:
        return _Context(self)

    def _work(self) -> None:
        self._loop()
        if self._consumer is not None:
            self._commit(self._consumer)
        self._close_partitions(list(self.owned))

    def _release(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def _loop(self) -> None:
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            self._follow_pattern()
            consumer = self._consumer
            if consumer is None:  # topics.regex matches nothing yet
                self._stopping.wait(0.2)
                continue
            self._sync_assignment(consumer)
            if not self._running.is_set():
                self._running.wait(0.5)
                continue
            messages = consumer.batch_receive(self._batch_size, timeout_ms=200)
            if self.paused:
                messages = [m for m in messages if self._tp(m) not in self.paused]
            if messages:
                self.records_read += len(messages)
                self._deliver(messages)
            due = time.monotonic() - last_commit >= self._commit_interval
            if due or self.commit_requested:
                self._commit(consumer)
                last_commit = time.monotonic()
                self.commit_requested = False

    def _tp(self, message: Message) -> TopicPartition:
        """The partition ``message`` was read from (one shared object per partition)."""
        where = (message.destination, message.partition)
        tp = self._tps.get(where)
        if tp is None:
            tp = self._tps[where] = TopicPartition(*where)
        return tp

    def _sync_assignment(self, consumer: PullConsumer) -> None:
        now = {TopicPartition(q, p) for q, p in consumer.assignment if q in self._topics}
        lost = [tp for tp in self.owned if tp not in now]
        gained = sorted(tp for tp in now if tp not in self.owned)
        if lost:
            self._close_partitions(lost)
        if gained:
            self.owned.update(gained)
            self.task.open(gained)

    def _close_partitions(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.owned.discard(tp)
            self._active -= len(self._pending.pop(tp, ()))
            self._next.pop(tp, None)
        if partitions:
            self.task.close(sorted(partitions))

    def _deliver(self, messages: list[Message]) -> None:
        records: list[SinkRecord] = []
        born: list[int] = []  # of the messages that became records
        for message in messages:
            tp = self._tp(message)
            self._pending.setdefault(tp, []).append(message)
            self._active += 1
            self._next[tp] = message.offset + 1
            record = self._convert(message)
            if record is not None:
                records.append(record)
                born.append(message.born_timestamp)
        while records and not self._stopping.is_set():
            try:
                self.task.put(records)
                self.records_sent += len(records)
                self.latency.observe_born(born, time.time_ns() // 1_000_000)
                return
            except RetriableError as exc:
                log.warning("sink task %s: put failed, retrying: %s", self.task_id, exc)
                self._stopping.wait(1.0)
        if records:  # stopping while put kept failing: not flushed, so not committed
            for record in records:
                self._next.pop(
                    TopicPartition(record.original_topic, record.original_partition), None
                )

    def report_errant(self, record: SinkRecord, error: BaseException) -> None:
        """A record the task could not write: handled by ``errors.*`` with the message
        it came from (task thread, during `put`). Raises `ToleranceExceededError` when
        failures are not tolerated."""
        tp = TopicPartition(record.original_topic, record.original_partition)
        message = next(
            (m for m in self._pending.get(tp, ()) if m.offset == record.original_offset), None
        )
        original = self._original(message) if message is not None else None
        cause = error if isinstance(error, Exception) else RuntimeError(str(error))
        self._errors.fail(cause, Stage.TASK_PUT, type(self.task).__name__, original, errant=True)

    @staticmethod
    def _original(message: Message) -> OriginalRecord:
        return OriginalRecord(
            message.destination,
            message.partition,
            message.offset,
            key_bytes(message),
            value_bytes(message),
            dict(message.properties),
        )

    def _convert(self, message: Message) -> SinkRecord | None:
        """The sink record for ``message`` (converted, transformed); None if a stage
        failed and the failure was tolerated, or a transform dropped it.

        Each stage runs directly; only a stage that raises goes through the error
        handler (`_recover`), so a message that fails nothing costs no handler calls."""
        topic = message.destination
        key, value = key_bytes(message), value_bytes(message)
        key_converter, value_converter = self._key_converter, self._value_converter
        try:
            converted_key: Any = key_converter.to_connect(topic, key)
        except Exception as exc:
            converted_key = self._recover(
                exc,
                lambda: key_converter.to_connect(topic, key),
                Stage.KEY_CONVERTER,
                type(key_converter).__name__,
                message,
            )
        try:
            converted_value: Any = value_converter.to_connect(topic, value)
        except Exception as exc:
            converted_value = self._recover(
                exc,
                lambda: value_converter.to_connect(topic, value),
                Stage.VALUE_CONVERTER,
                type(value_converter).__name__,
                message,
            )
        if converted_key is SKIPPED or converted_value is SKIPPED:
            return None
        record = to_sink_record(message, *converted_key, *converted_value)
        try:
            transformed: Any = self._transform(record)
        except Exception as exc:
            transformed = self._recover(
                exc, lambda: self._transform(record), Stage.TRANSFORMATION, "transforms", message
            )
        return None if transformed is SKIPPED else transformed

    def _recover(
        self,
        error: Exception,
        operation: Callable[[], Any],
        stage: Stage,
        executing_class: str,
        message: Message,
    ) -> Any:
        """The error handler's verdict on a stage that raised ``error`` (retries, then
        the result, `SKIPPED`, or a raise); the `OriginalRecord` is built only here."""
        return self._errors.recover(
            error, operation, stage, executing_class, self._original(message)
        )

    def _commit(self, consumer: PullConsumer) -> None:
        if not self._next:
            return
        started = time.perf_counter()
        try:
            offsets = self.task.pre_commit(dict(self._next))
            for tp, committed in offsets.items():
                pending = self._pending.get(tp, [])
                done = [m for m in pending if m.offset < committed]
                for message in done:
                    consumer.ack(message)
                self._pending[tp] = pending[len(done) :]
                self._active -= len(done)
            consumer.commit()
        except BaseException:
            self.commit_stats.failed()
            raise
        self.commit_stats.record(time.perf_counter() - started)
