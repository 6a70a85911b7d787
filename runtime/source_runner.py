"""`SourceTaskRunner`: runs one source task on its own thread.

poll → transforms → key/value converters → message → async send. Each record is
submitted to `SubmittedRecords` before it is sent and acknowledged when the broker
stored it; every ``offset.flush.interval.ms`` the committable offsets (never past a
record still in flight) go to the offset store, then `SourceTask.commit` runs.
A record that fails a transform or a converter goes through the error handler
(skipped and dead-lettered, or failing the task, per ``errors.tolerance``). A send
the broker refuses fails the task: its offset was never committed, so a restart
sends it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from omconnect.connect.connector import RecordMetadata, SourceTask
from omconnect.connect.records import SourceRecord
from omconnect.errors import RetriableError
from omconnect.message import Message
from omconnect.producer import Producer, SendResult
from omconnect.runtime.converters.base import Converter
from omconnect.runtime.error_handling import (
    SKIPPED,
    OriginalRecord,
    RetryWithToleranceOperator,
    Skipped,
    Stage,
)
from omconnect.runtime.metrics import CommitStats
from omconnect.runtime.record_mapping import to_message
from omconnect.runtime.source_offsets import SubmittedRecord, SubmittedRecords
from omconnect.runtime.stores import OffsetStore, StoredOffsetReader
from omconnect.runtime.task_common import StateListener, TaskId, TaskThread, TopicCreator

log = logging.getLogger(__name__)

Transform = Callable[[SourceRecord], SourceRecord | None]
_Outgoing = tuple[Message, SourceRecord, SubmittedRecord]


class _Context:
    """The `SourceTaskContext` a task gets."""

    def __init__(self, config: Mapping[str, str], reader: StoredOffsetReader) -> None:
        self._config = config
        self._reader = reader

    @property
    def config(self) -> Mapping[str, str]:
        return self._config

    @property
    def offset_reader(self) -> StoredOffsetReader:
        return self._reader


class SourceTaskRunner(TaskThread):
    """One source task's thread. `stop` asks it to finish: no new poll, in-flight
    records awaited (up to the graceful timeout), offsets committed, task stopped."""

    def __init__(
        self,
        task_id: TaskId,
        task: SourceTask,
        config: Mapping[str, str],
        *,
        producer: Producer,
        offsets: OffsetStore,
        topics: TopicCreator,
        key_converter: Converter,
        value_converter: Converter,
        transform: Transform,
        errors: RetryWithToleranceOperator,
        on_state: StateListener,
        commit_interval_ms: int = 1000,
        graceful_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(task_id, task, config, errors, on_state)
        self._producer = producer
        self._offsets = offsets
        self._topics = topics
        self._key_converter = key_converter
        self._value_converter = value_converter
        self._transform = transform
        self._commit_interval = commit_interval_ms / 1000
        self._graceful_timeout = graceful_timeout_ms / 1000
        self._submitted = SubmittedRecords()
        self._send_error: BaseException | None = None
        self.records_polled = 0
        self.records_written = 0
        self.commit_stats = CommitStats()
        # SourceTask.commit_record is an empty hook: skip the per-record call (and its
        # RecordMetadata) for a task that does not override it.
        hook = getattr(type(task), "commit_record", None)
        self._commits_records = hook is not SourceTask.commit_record

    kind = "source"

    def active_records(self) -> int:
        """Records sent and not acknowledged by the broker yet."""
        return self._submitted.pending

    # -- the task thread -------------------------------------------------------------
    def _context(self) -> _Context:
        return _Context(self.config, self._offsets.reader(self.task_id.connector))

    def _work(self) -> None:
        self._loop()
        self._finish()

    def _loop(self) -> None:
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            if self._send_error is not None:
                raise self._send_error
            if not self._running.is_set():
                self._running.wait(0.5)
                continue
            try:
                records = self.task.poll() or []
            except RetriableError as exc:
                log.warning("source task %s: poll failed, retrying: %s", self.task_id, exc)
                self._stopping.wait(1.0)
                continue
            self.records_polled += len(records)
            self._send([self._process(record) for record in records])
            if time.monotonic() - last_commit >= self._commit_interval:
                self._commit_offsets()
                self._report_progress()
                last_commit = time.monotonic()

    def _finish(self) -> None:
        self._producer.flush()
        if not self._submitted.await_all(self._graceful_timeout):
            log.warning("source task %s stopped with records in flight", self.task_id)
        if self._send_error is not None:
            raise self._send_error
        self._commit_offsets()
        self._report_progress()

    def _send(self, batch: list[_Outgoing | None]) -> None:
        """Send a poll's converted records in one async batch (one future, one
        callback): per-record futures cost more than the conversion itself."""
        outgoing = [item for item in batch if item is not None]
        if not outgoing:
            return
        future = self._producer.send_batch_async([message for message, _, _ in outgoing])
        future.add_done_callback(lambda f: self._sent(f, outgoing))

    def _process(self, record: SourceRecord) -> _Outgoing | None:
        """Transform and convert one record; None if it was skipped or dropped.

        Each stage runs directly; only a stage that raises goes through the error
        handler (`_recover`), so a record that fails nothing costs no handler calls."""
        try:
            transformed: Any = self._transform(record)
        except Exception as exc:
            transformed = self._recover(
                exc,
                lambda: self._transform(record),
                Stage.TRANSFORMATION,
                type(self.task).__name__,
                record,
            )
        handle = self._submitted.submit(record.source_partition, record.source_offset, checked=True)
        if transformed is SKIPPED or transformed is None:
            self._skip(record, handle)
            return None
        out: SourceRecord = transformed
        key = self._convert(
            record, Stage.KEY_CONVERTER, self._key_converter, out.topic, out.key_schema, out.key
        )
        value = self._convert(
            record,
            Stage.VALUE_CONVERTER,
            self._value_converter,
            out.topic,
            out.value_schema,
            out.value,
        )
        if key is SKIPPED or value is SKIPPED:
            self._skip(record, handle)
            return None
        self._topics.ensure(out.topic)
        return to_message(out, key, value), record, handle

    def _convert(
        self,
        record: SourceRecord,
        stage: Stage,
        converter: Converter,
        topic: str,
        schema: Any,
        data: Any,
    ) -> bytes | Skipped | None:
        """``converter.from_connect`` of the key or value of ``record`` (as transformed);
        `SKIPPED` if that failed and the failure is tolerated."""
        try:
            return converter.from_connect(topic, schema, data)
        except Exception as exc:
            return self._recover(
                exc,
                lambda: converter.from_connect(topic, schema, data),
                stage,
                type(converter).__name__,
                record,
            )

    def _recover(
        self,
        error: Exception,
        operation: Callable[[], Any],
        stage: Stage,
        executing_class: str,
        record: SourceRecord,
    ) -> Any:
        """The error handler's verdict on a stage that raised ``error`` (retries, then
        the result, `SKIPPED`, or a raise); the `OriginalRecord` is built only here."""
        original = OriginalRecord(topic=record.topic, partition=record.partition)
        return self._errors.recover(error, operation, stage, executing_class, original)

    def _skip(self, record: SourceRecord, handle: SubmittedRecord) -> None:
        handle.ack()  # nothing to wait for: its offset may be committed
        if self._commits_records:
            self.task.commit_record(record, None)

    def _sent(self, future: Future[list[SendResult]], outgoing: list[_Outgoing]) -> None:
        """Runs on the producer's sender thread once the broker stored the batch."""
        error = future.exception()
        if error is not None:
            self._send_error = error
            return
        results = future.result()
        if len(results) != len(outgoing):
            self._send_error = RuntimeError(
                f"the broker acknowledged {len(results)} of {len(outgoing)} records"
            )
            return
        self._submitted.ack_all([handle for _, _, handle in outgoing])
        self.records_written += len(outgoing)
        if not self._commits_records:
            return
        for result, (_, record, _) in zip(results, outgoing, strict=True):
            metadata = RecordMetadata(
                result.queue, result.partition, result.offset, record.timestamp
            )
            try:
                self.task.commit_record(record, metadata)
            except Exception:
                log.exception("commit_record of source task %s failed", self.task_id)

    def _commit_offsets(self) -> None:
        offsets = self._submitted.committable()
        if not offsets:
            return
        started = time.perf_counter()
        try:
            self._offsets.put(
                self.task_id.connector, [(item.partition, item.offset) for item in offsets.offsets]
            )
        except BaseException:
            self.commit_stats.failed()
            raise
        self.commit_stats.record(time.perf_counter() - started)
        self._submitted.committed(offsets)
        self.task.commit()
