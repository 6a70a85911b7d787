"""The connector API contract, driven by the test the way the runtime drives plugins:
default hooks exist and do nothing, abstract methods are enforced, ``pre_commit``
flushes by default, contexts are plain protocols a runtime (or a test) implements."""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any

import pytest
from pydantic import Field

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import (
    Connector,
    ConnectorContext,
    ErrantRecordReporter,
    OffsetReader,
    RecordMetadata,
    SinkConnector,
    SinkTask,
    SinkTaskContext,
    SourceConnector,
    SourceTask,
    SourceTaskContext,
    TopicPartition,
)
from omconnect.connect.records import (
    PartitionKey,
    SinkRecord,
    SourceOffset,
    SourcePartition,
    SourceRecord,
    partition_key,
)

# --- a tiny counter source: each task counts up in its own partition -----------------


class CounterConfig(PluginConfig):
    topic: str = Field(description="Where to write.")
    partitions: int = Field(2, gt=0, description="How many counters.")


class CounterConnector(SourceConnector):
    config_model = CounterConfig

    def start(self, config: Mapping[str, str]) -> None:
        self.config = parse_config(CounterConfig, config)

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        count = min(max_tasks, self.config.partitions)
        return [{"topic": self.config.topic, "counter": str(i)} for i in range(count)]

    def stop(self) -> None:
        self.stopped = True

    def task_class(self) -> type[SourceTask]:
        return CounterTask


class CounterTask(SourceTask):
    def start(self, config: Mapping[str, str]) -> None:
        self.topic = config["topic"]
        self.partition: SourcePartition = {"counter": int(config["counter"])}
        stored = self.context.offset_reader.offset(self.partition)
        self.next = 0 if stored is None else int(stored["n"] or 0) + 1
        self.stopping = threading.Event()

    def poll(self) -> list[SourceRecord] | None:
        if self.stopping.wait(0.01):
            return None
        n = self.next
        self.next += 1
        return [
            SourceRecord(
                self.topic, None, None, None, None, n,
                source_partition=self.partition, source_offset={"n": n},
            )
        ]  # fmt: skip

    def stop(self) -> None:
        self.stopping.set()


class FakeConnectorContext:
    def __init__(self) -> None:
        self.reconfigurations = 0
        self.errors: list[Exception] = []

    def request_task_reconfiguration(self) -> None:
        self.reconfigurations += 1

    def raise_error(self, exc: Exception) -> None:
        self.errors.append(exc)


class FakeOffsetReader:
    def __init__(self, stored: Mapping[PartitionKey, SourceOffset]) -> None:
        self.stored = dict(stored)

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        return self.stored.get(partition_key(partition))

    def offsets(self, partitions: Iterable[SourcePartition]) -> dict[PartitionKey, SourceOffset]:
        keys = [partition_key(p) for p in partitions]
        return {k: self.stored[k] for k in keys if k in self.stored}


class FakeSourceTaskContext:
    def __init__(self, config: Mapping[str, str], reader: OffsetReader) -> None:
        self._config = config
        self._reader = reader

    @property
    def config(self) -> Mapping[str, str]:
        return self._config

    @property
    def offset_reader(self) -> OffsetReader:
        return self._reader


def test_source_connector_plans_tasks_and_tasks_resume_from_stored_offsets() -> None:
    connector = CounterConnector()
    connector_context: ConnectorContext = FakeConnectorContext()
    connector.initialize(connector_context)
    assert connector.context is connector_context
    config = {"topic": "numbers", "partitions": "3", "name": "counter"}
    assert connector.validate(config) == []
    connector.start(config)
    task_configs = connector.task_configs(max_tasks=2)
    assert task_configs == [
        {"topic": "numbers", "counter": "0"},
        {"topic": "numbers", "counter": "1"},
    ]
    assert connector.task_class() is CounterTask

    reader = FakeOffsetReader({partition_key({"counter": 1}): {"n": 41}})
    polled: list[int] = []
    for task_config in task_configs:
        task = connector.task_class()()
        context: SourceTaskContext = FakeSourceTaskContext(task_config, reader)
        task.initialize(context)
        task.start(task_config)
        records = task.poll()
        assert records is not None
        polled.extend(r.value for r in records)
        task.commit_record(records[0], RecordMetadata("numbers", 0, 7, 1000))
        task.commit_record(records[0], None)  # dropped by a transform
        task.commit()
        task.stop()
        assert task.poll() is None
    assert polled == [0, 42]
    connector.stop()


def test_offset_reader_batch_lookup_by_partition_key() -> None:
    reader = FakeOffsetReader({partition_key({"f": "a", "n": 1}): {"pos": 3}})
    found = reader.offsets([{"n": 1, "f": "a"}, {"f": "b"}])
    assert found == {partition_key({"f": "a", "n": 1}): {"pos": 3}}


class IdleTask(CounterTask):
    """A source with no data: poll blocks until stopped (the contract allows blocking
    only briefly; a long wait shows that stop() must interrupt it)."""

    def start(self, config: Mapping[str, str]) -> None:
        super().start(config)
        self.polling = threading.Event()

    def poll(self) -> list[SourceRecord] | None:
        self.polling.set()
        self.stopping.wait(30)
        return None


def test_source_task_stop_from_another_thread_unblocks_poll() -> None:
    task = IdleTask()
    task.initialize(FakeSourceTaskContext({}, FakeOffsetReader({})))
    task.start({"topic": "t", "counter": "0"})
    results: list[list[SourceRecord] | None] = []
    poller = threading.Thread(target=lambda: results.append(task.poll()))
    poller.start()
    assert task.polling.wait(5)
    task.stop()  # from the test's thread, as the runtime does
    poller.join(timeout=5)
    assert not poller.is_alive() and results == [None]


def test_connector_validate_defaults_to_the_config_model() -> None:
    errors = CounterConnector().validate({"partitions": "0"})
    assert {e.key for e in errors} == {"topic", "partitions"}


def test_connector_without_a_config_model_accepts_any_config() -> None:
    class Bare(SourceConnector):
        def start(self, config: Mapping[str, str]) -> None: ...
        def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
            return []

        def stop(self) -> None: ...
        def task_class(self) -> type[SourceTask]:
            return CounterTask

    assert Bare().validate({"anything": "goes"}) == []
    assert Bare.config_model is PluginConfig


def test_version_defaults_to_the_installed_distribution() -> None:
    assert CounterConnector().version() == "unknown"  # test modules are no distribution

    class Packaged(CounterConnector):
        pass

    Packaged.__module__ = "omconnect.connectors.example"
    assert Packaged().version() == importlib.metadata.version("omconnect")


# --- abstract methods are enforced, hooks are optional ---------------------------------


@pytest.mark.parametrize(
    ("base", "required"),
    [
        (SourceConnector, {"start", "task_configs", "stop", "task_class"}),
        (SinkConnector, {"start", "task_configs", "stop", "task_class"}),
        (Connector, {"start", "task_configs", "stop"}),
        (SourceTask, {"start", "poll", "stop"}),
        (SinkTask, {"start", "put", "stop"}),
    ],
)
def test_exactly_the_essential_methods_are_abstract(base: type, required: set[str]) -> None:
    assert getattr(base, "__abstractmethods__", None) == required
    with pytest.raises(TypeError, match="abstract"):
        base()


def test_a_task_missing_poll_cannot_be_created() -> None:
    class NoPoll(SourceTask):
        def start(self, config: Mapping[str, str]) -> None: ...
        def stop(self) -> None: ...

    with pytest.raises(TypeError, match="poll"):
        NoPoll()  # type: ignore[abstract]


# --- a tiny buffering sink ---------------------------------------------------------------


class BufferSink(SinkTask):
    """Buffers puts; flush moves them to ``written``. Logs every call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.buffer: list[SinkRecord] = []
        self.written: list[Any] = []

    def start(self, config: Mapping[str, str]) -> None:
        self.calls.append(("start", dict(config)))

    def put(self, records: list[SinkRecord]) -> None:
        self.calls.append(("put", len(records)))
        self.buffer.extend(records)

    def flush(self, offsets: dict[TopicPartition, int]) -> None:
        self.calls.append(("flush", dict(offsets)))
        self.written.extend(r.value for r in self.buffer)
        self.buffer.clear()

    def stop(self) -> None:
        self.calls.append(("stop", None))


class MinimalSink(SinkTask):
    def start(self, config: Mapping[str, str]) -> None: ...
    def put(self, records: list[SinkRecord]) -> None:
        self.got = records

    def stop(self) -> None: ...


class FakeReporter:
    def __init__(self) -> None:
        self.reported: list[tuple[SinkRecord, BaseException]] = []

    def report(self, record: SinkRecord, error: BaseException) -> Future[None]:
        self.reported.append((record, error))
        done: Future[None] = Future()
        done.set_result(None)
        return done


class FakeSinkTaskContext:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.paused: set[TopicPartition] = set()
        self.commit_requests = 0
        self.reporter = FakeReporter()

    @property
    def config(self) -> Mapping[str, str]:
        return {"topics": "t"}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def request_commit(self) -> None:
        self.commit_requests += 1

    def errant_record_reporter(self) -> ErrantRecordReporter | None:
        return self.reporter


TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def _sink_records(tp: TopicPartition, offsets: range) -> list[SinkRecord]:
    return [
        SinkRecord(tp.topic, tp.partition, None, None, None, f"{tp}@{o}", offset=o) for o in offsets
    ]


def test_default_pre_commit_flushes_and_commits_the_given_offsets() -> None:
    task = BufferSink()
    context: SinkTaskContext = FakeSinkTaskContext({TP0, TP1})
    task.initialize(context)
    task.start({"topics": "t"})
    task.open([TP0, TP1])
    task.put(_sink_records(TP0, range(0, 3)) + _sink_records(TP1, range(10, 12)))
    offsets = {TP0: 3, TP1: 12}  # the next offsets to read
    committable = task.pre_commit(offsets)
    assert committable == offsets
    assert committable is not offsets  # the runtime may keep its own dict
    assert task.written == ["t-0@0", "t-0@1", "t-0@2", "t-1@10", "t-1@11"]
    task.close([TP0, TP1])
    task.stop()
    assert [name for name, _ in task.calls] == ["start", "put", "flush", "stop"]
    assert task.calls[2] == ("flush", {TP0: 3, TP1: 12})


def test_optional_sink_hooks_have_empty_defaults() -> None:
    task = MinimalSink()
    context = FakeSinkTaskContext({TP0})
    task.initialize(context)
    task.start({})
    task.open([TP0])
    task.put([])
    task.flush({TP0: 0})
    assert task.pre_commit({TP0: 5}) == {TP0: 5}
    task.close([TP0])
    task.stop()
    assert task.context is context


def test_sink_task_uses_its_context() -> None:
    task = MinimalSink()
    context = FakeSinkTaskContext({TP0, TP1})
    task.initialize(context)
    task.context.pause(TP1)
    assert context.paused == {TP1}
    task.context.resume(TP1)
    assert context.paused == set()
    task.context.request_commit()
    assert context.commit_requests == 1
    reporter = task.context.errant_record_reporter()
    assert reporter is not None
    bad = _sink_records(TP0, range(1))[0]
    assert reporter.report(bad, ValueError("bad row")).result(timeout=1) is None
    assert context.reporter.reported[0][0] is bad
    assert task.context.assignment() == {TP0, TP1}


def test_record_metadata_fields() -> None:
    meta = RecordMetadata("t", 1, 99)
    assert (meta.topic, meta.partition, meta.offset, meta.timestamp) == ("t", 1, 99, None)
