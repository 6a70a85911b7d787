"""Test harnesses for connector authors, and the connector conformance suite.

The harnesses run a task the way the runtime does, without a broker:

* `SourceHarness` starts a source task with an in-memory offset store, polls it,
  and "commits" offsets as the runtime would after the broker acknowledged them;
  `restart` makes a new task instance that must resume after the committed offset.
* `SinkHarness` feeds a sink task records, then runs `pre_commit` (flush).

`SourceConnectorConformance` and `SinkConnectorConformance` are pytest suites every
connector in ``connectors/`` passes: subclass one and provide the fixtures named in
its docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omconnect.connect.config import describe_config
from omconnect.connect.connector import (
    Connector,
    ErrantRecordReporter,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
)
from omconnect.connect.records import (
    PartitionKey,
    SinkRecord,
    SourceOffset,
    SourcePartition,
    SourceRecord,
    TopicPartition,
    partition_key,
)


class MemoryOffsetReader:
    """An `OffsetReader` over a dict (what the runtime's offset store would hold)."""

    def __init__(self) -> None:
        self.stored: dict[PartitionKey, tuple[SourcePartition, SourceOffset]] = {}

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        entry = self.stored.get(partition_key(partition))
        return None if entry is None else entry[1]

    def offsets(self, partitions: Iterable[SourcePartition]) -> dict[PartitionKey, SourceOffset]:
        keys = {partition_key(p) for p in partitions}
        return {k: v[1] for k, v in self.stored.items() if k in keys}


class _SourceContext:
    def __init__(self, config: Mapping[str, str], reader: MemoryOffsetReader) -> None:
        self._config = config
        self._reader = reader

    @property
    def config(self) -> Mapping[str, str]:
        return self._config

    @property
    def offset_reader(self) -> MemoryOffsetReader:
        return self._reader


class SourceHarness:
    """Runs one source task of ``connector_class`` with ``config``."""

    def __init__(self, connector_class: type[SourceConnector], config: Mapping[str, str]) -> None:
        self.connector_class = connector_class
        self.config = dict(config)
        self.offsets = MemoryOffsetReader()
        self.task: SourceTask = self._start()

    def _start(self) -> SourceTask:
        connector = self.connector_class()
        connector.start(self.config)
        task_config = {**self.config, **connector.task_configs(1)[0]}
        task = connector.task_class()()
        task.initialize(_SourceContext(task_config, self.offsets))
        task.start(task_config)
        return task

    def poll_until(self, count: int, timeout_s: float = 10.0) -> list[SourceRecord]:
        """Poll until ``count`` records came (or the timeout); commit their offsets as
        the runtime would once they were acknowledged."""
        records: list[SourceRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            records.extend(self.task.poll() or [])
        for record in records:
            self.offsets.stored[partition_key(record.source_partition)] = (
                record.source_partition,
                record.source_offset,
            )
            self.task.commit_record(record, None)
        self.task.commit()
        return records

    def restart(self) -> None:
        """Stop the task and start a new instance on the committed offsets."""
        self.task.stop()
        self.task = self._start()

    def stop(self) -> None:
        """Stop the task."""
        self.task.stop()


class _SinkContext:
    def __init__(self, config: Mapping[str, str], assigned: set[TopicPartition]) -> None:
        self._config = config
        self._assigned = assigned

    @property
    def config(self) -> Mapping[str, str]:
        return self._config

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    def request_commit(self) -> None:
        pass

    def errant_record_reporter(self) -> ErrantRecordReporter | None:
        return None


class SinkHarness:
    """Runs one sink task of ``connector_class`` with ``config`` on ``partitions``."""

    def __init__(
        self,
        connector_class: type[SinkConnector],
        config: Mapping[str, str],
        partitions: Iterable[TopicPartition],
    ) -> None:
        connector = connector_class()
        connector.start(config)
        task_config = {**config, **connector.task_configs(1)[0]}
        self.partitions = sorted(partitions)
        self.task: SinkTask = connector.task_class()()
        self.task.initialize(_SinkContext(task_config, set(self.partitions)))
        self.task.start(task_config)
        self.task.open(self.partitions)
        self._next: dict[TopicPartition, int] = {}

    def put(self, records: list[SinkRecord]) -> None:
        """Hand records to the task, as the runtime does after converting them."""
        self.task.put(records)
        for record in records:
            self._next[record.topic_partition] = record.offset + 1

    def commit(self) -> dict[TopicPartition, int]:
        """Run `pre_commit` (which flushes) and return the offsets it allows."""
        return self.task.pre_commit(dict(self._next))

    def stop(self) -> None:
        """Close the partitions and stop the task."""
        self.task.close(self.partitions)
        self.task.stop()


def _check_config_declaration(connector: Connector) -> None:
    keys = describe_config(type(connector).config_model)
    assert keys, "the connector declares no config keys"
    for key in keys:
        assert key.documentation, f"config key {key.name!r} has no description"
    errors = connector.validate({})
    required = {k.name for k in keys if k.required}
    assert required <= {e.key for e in errors}, "validate({}) must name every required key"
    assert connector.version(), "version() must not be empty"


class SourceConnectorConformance:
    """What every source connector must do. Fixtures to provide:

    * ``connector_class`` — the connector class;
    * ``source_config`` — a valid config (dict of strings) for one test;
    * ``write_source_data`` — a function writing ``n`` new items to the source.
    """

    def test_declares_its_config(self, connector_class: type[SourceConnector]) -> None:
        _check_config_declaration(connector_class())

    def test_task_configs_respect_max_tasks(
        self, connector_class: type[SourceConnector], source_config: dict[str, str]
    ) -> None:
        connector = connector_class()
        connector.start(source_config)
        for max_tasks in (1, 2, 5):
            configs = connector.task_configs(max_tasks)
            assert 1 <= len(configs) <= max_tasks
        connector.stop()

    def test_records_carry_source_partition_and_offset(
        self,
        connector_class: type[SourceConnector],
        source_config: dict[str, str],
        write_source_data: Callable[[int], None],
    ) -> None:
        write_source_data(5)
        harness = SourceHarness(connector_class, source_config)
        try:
            records = harness.poll_until(5)
        finally:
            harness.stop()
        assert len(records) == 5
        for record in records:
            assert record.source_partition and record.source_offset
            assert record.topic

    def test_resumes_after_the_committed_offset(
        self,
        connector_class: type[SourceConnector],
        source_config: dict[str, str],
        write_source_data: Callable[[int], None],
    ) -> None:
        write_source_data(3)
        harness = SourceHarness(connector_class, source_config)
        try:
            first = harness.poll_until(3)
            harness.restart()
            write_source_data(2)
            second = harness.poll_until(2)
            extra = harness.poll_until(1, timeout_s=0.5)
        finally:
            harness.stop()
        assert len(first) == 3 and len(second) == 2
        assert extra == [], "records before the committed offset came again"
        assert {repr(r.value) for r in first}.isdisjoint({repr(r.value) for r in second})


class SinkConnectorConformance:
    """What every sink connector must do. Fixtures to provide:

    * ``connector_class`` — the connector class;
    * ``sink_config`` — a valid config for one test;
    * ``sink_records`` — a function making ``n`` records for the sink's topic;
    * ``read_sink_data`` — a function returning what the sink system now holds, as a
      list of values comparable with the records' values.
    """

    def test_declares_its_config(self, connector_class: type[SinkConnector]) -> None:
        _check_config_declaration(connector_class())

    def test_flushed_records_are_in_the_target(
        self,
        connector_class: type[SinkConnector],
        sink_config: dict[str, str],
        sink_records: Callable[[int], list[SinkRecord]],
        read_sink_data: Callable[[], list[Any]],
    ) -> None:
        records = sink_records(10)
        harness = SinkHarness(connector_class, sink_config, {r.topic_partition for r in records})
        try:
            harness.put(records[:6])
            harness.put(records[6:])
            committed = harness.commit()
        finally:
            harness.stop()
        assert read_sink_data() == [r.value for r in records]
        for tp in {r.topic_partition for r in records}:
            last = max(r.offset for r in records if r.topic_partition == tp)
            assert committed.get(tp) == last + 1, "pre_commit must allow what was flushed"
