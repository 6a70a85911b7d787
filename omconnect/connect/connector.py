"""The connector API: the classes a connector author subclasses.

A plugin is a *connector* class plus its *task* class, as in Kafka Connect. The
runtime creates the connector with no arguments, calls `Connector.initialize`, then
`start` with the connector's raw config (string keys and values), asks it for
`task_configs`, and runs one task per config, each on its own thread. The connector
only plans the work; tasks move the data.

A source task returns `SourceRecord`s that carry their source partition and offset;
the runtime, never the task, stores those offsets, and only once the broker has
acknowledged every record up to them. A sink task receives `SinkRecord`s; the runtime
commits the consumer offsets that `SinkTask.pre_commit` returns.

Lifecycle hooks have empty default bodies; only what each plugin must provide is
abstract. Plugin constructors must be cheap and do no I/O: the runtime instantiates
classes to list them and to read their `version`.
"""

from __future__ import annotations

import functools
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from typing import ClassVar, Protocol

from omconnect.connect.config import KeyError_, PluginConfig, config_errors
from omconnect.connect.records import (
    PartitionKey,
    SinkRecord,
    SourceOffset,
    SourcePartition,
    SourceRecord,
    TopicPartition,
)

__all__ = [
    "Connector",
    "ConnectorContext",
    "ErrantRecordReporter",
    "OffsetReader",
    "RecordMetadata",
    "SinkConnector",
    "SinkTask",
    "SinkTaskContext",
    "SourceConnector",
    "SourceTask",
    "SourceTaskContext",
    "TaskProgress",
    "TopicPartition",
]

UNKNOWN_VERSION = "unknown"


# --- what the runtime hands to plugins -------------------------------------------------


class ConnectorContext(Protocol):
    """What the runtime offers a running connector. Both methods are thread-safe: a
    connector may call them from threads it started itself (e.g. one that watches the
    source system for new tables)."""

    def request_task_reconfiguration(self) -> None:
        """Ask the runtime to call `Connector.task_configs` again and restart the tasks
        whose configs changed (e.g. the source gained a table). Returns at once."""

    def raise_error(self, exc: Exception) -> None:
        """Report that the connector failed in the background; the runtime marks it
        FAILED with ``exc`` and its stack trace in the status. Returns at once."""


class OffsetReader(Protocol):
    """The offsets the runtime has committed for a source connector's partitions."""

    def offset(self, partition: SourcePartition) -> SourceOffset | None:
        """The last committed offset of ``partition``, or None if none was committed."""

    def offsets(self, partitions: Iterable[SourcePartition]) -> dict[PartitionKey, SourceOffset]:
        """The committed offsets of ``partitions`` keyed by `partition_key` (one store
        read); partitions without a committed offset are absent."""


class SourceTaskContext(Protocol):
    """What the runtime offers a source task."""

    @property
    def config(self) -> Mapping[str, str]:
        """The task's config, as returned by `Connector.task_configs`."""

    @property
    def offset_reader(self) -> OffsetReader:
        """Read the offsets committed for this connector (all of its tasks)."""


class ErrantRecordReporter(Protocol):
    """Sends a record a sink task could not write to the dead-letter queue."""

    def report(self, record: SinkRecord, error: BaseException) -> Future[None]:
        """Queue ``record`` for the dead-letter queue with ``error`` in its headers (or
        only log it, per ``errors.*`` config). The runtime does not commit the record's
        offset before the future is done. Raises the error back (failing the task) when
        ``errors.tolerance`` is ``none``."""


class SinkTaskContext(Protocol):
    """What the runtime offers a sink task. Call it from the task's own thread."""

    @property
    def config(self) -> Mapping[str, str]:
        """The task's config, as returned by `Connector.task_configs`."""

    def assignment(self) -> set[TopicPartition]:
        """The partitions currently assigned to this task."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop delivering records of ``partitions`` to `SinkTask.put` until `resume`
        (e.g. while the target system pushes back). Survives rebalances."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Deliver records of ``partitions`` again."""

    def request_commit(self) -> None:
        """Ask for an offset commit (`SinkTask.pre_commit`) as soon as possible rather
        than at the next commit interval."""

    def errant_record_reporter(self) -> ErrantRecordReporter | None:
        """The dead-letter reporter, or None if the connector has no ``errors.*``
        handling configured (then raise a `RecordError` to fail the task)."""


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where the broker stored a source record: topic, partition, offset, and the
    broker's timestamp in epoch ms (None if it gave none)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None = None


# --- connectors ------------------------------------------------------------------------


class Connector(ABC):
    """Plans the work of one configured connector; see the module docstring.

    All methods are called from one runtime thread, one at a time: ``initialize``,
    ``validate`` (also on a fresh instance that is never started), ``start``,
    ``task_configs`` (again after each `ConnectorContext.request_task_reconfiguration`),
    and ``stop``. A connector is started at most once; a restart uses a new instance.
    """

    config_model: ClassVar[type[PluginConfig]] = PluginConfig
    """The connector's config declaration; override it. From it come validation, the
    REST ``config/validate`` answer and ``omconnect plugins describe``."""

    context: ConnectorContext
    """Set by `initialize`, before `start`."""

    def initialize(self, context: ConnectorContext) -> None:
        """Called once, before `start`. Overrides must call ``super().initialize``."""
        self.context = context

    def version(self) -> str:
        """The plugin's version; by default the version of the distribution that
        installed the connector's top-level package, or ``"unknown"``."""
        return _distribution_version(type(self).__module__)

    def validate(self, config: Mapping[str, str]) -> list[KeyError_]:
        """Every problem with ``config``, each naming its key; empty if it is valid.
        Never raises for a bad config and never connects anywhere by default; an
        override may add checks that span keys (call ``super().validate`` first)."""
        return config_errors(self.config_model, config)

    @abstractmethod
    def start(self, config: Mapping[str, str]) -> None:
        """Start with ``config`` (already validated, config providers resolved). Parse
        it with `parse_config`, set up what `task_configs` needs; raise `ConfigError`
        if it is unusable, `RetriableError` if the source system is unreachable."""

    @abstractmethod
    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        """One config per task to run, at most ``max_tasks`` (at least 1) of them.
        The runtime starts `task_class` once per dict, and stores the dicts, so they
        must be plain strings. Returning fewer is fine (e.g. one file, one task)."""

    @abstractmethod
    def stop(self) -> None:
        """Release what `start` acquired. Called once; the tasks are stopped already
        or are being stopped independently. Must not block for long."""


class SourceConnector(Connector):
    """A connector whose tasks read an external system and produce records."""

    @abstractmethod
    def task_class(self) -> type[SourceTask]:
        """The `SourceTask` subclass the runtime runs for each task config."""


class SinkConnector(Connector):
    """A connector whose tasks consume records and write an external system. The
    runtime subscribes the tasks to the topics of the ``topics`` (list) or
    ``topics.regex`` config keys, in consumer group ``connect-<connector name>``."""

    @abstractmethod
    def task_class(self) -> type[SinkTask]:
        """The `SinkTask` subclass the runtime runs for each task config."""


# --- tasks -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """How far a long phase of a source task has come, e.g. a CDC source's snapshot:
    ``done`` units (rows) of about ``total`` (an estimate; None when unknown).

    The runtime shows it in the task's REST status (``"progress"``), in the CLI and
    as metrics."""

    phase: str
    done: int
    total: int | None = None

    def as_json(self) -> dict[str, str | int | None]:
        """``{"phase": ..., "done": ..., "total": ...}``."""
        return {"phase": self.phase, "done": self.done, "total": self.total}


class SourceTask(ABC):
    """Reads one share of a source system. Runs on its own thread (the *task thread*).

    Order of calls: `initialize`, `start`, then `poll` repeatedly on the task thread;
    `commit_record` and `commit` as the broker acknowledges records and the runtime
    commits offsets; `stop` from another thread. A task instance is never restarted:
    after a failure or reconfiguration the runtime creates a new one.
    """

    context: SourceTaskContext
    """Set by `initialize`, before `start`."""

    def initialize(self, context: SourceTaskContext) -> None:
        """Called once, before `start`. Overrides must call ``super().initialize``."""
        self.context = context

    @abstractmethod
    def start(self, config: Mapping[str, str]) -> None:
        """Start with the task's config; read the committed offsets through
        ``self.context.offset_reader`` and resume just after them. Task thread."""

    @abstractmethod
    def poll(self) -> list[SourceRecord] | None:
        """The next records, or None or ``[]`` when there is nothing now. Task thread.

        May block briefly when there is no data (a second or so), but must return
        regularly so the runtime can pause, commit and stop the task. Each record's
        source offset must say how to resume *after* that record. Raise
        `RetriableError` for a transient failure (the runtime backs off and polls
        again; records returned before are not lost) and `FatalError` to fail the task.
        """

    def commit(self) -> None:  # noqa: B027 - optional hook
        """Called after the runtime committed the offsets of records acknowledged so far
        (e.g. to acknowledge messages in a source system that needs it). Called from
        the runtime's offset-commit thread, possibly while `poll` runs."""

    def commit_record(self, record: SourceRecord, metadata: RecordMetadata | None) -> None:  # noqa: B027 - optional hook
        """Called once per record after the broker acknowledged it, with where it was
        stored; ``metadata`` is None if a transform dropped the record. Called from the
        producer's callback thread, possibly while `poll` runs: keep it short and
        thread-safe. Not called for a record whose send failed."""

    def progress(self) -> TaskProgress | None:
        """The progress of a long phase the task is in (None: nothing to report, the
        default). Task thread, between polls, about once per offset commit interval:
        keep it cheap."""
        return None

    @abstractmethod
    def stop(self) -> None:
        """Signal the task to stop. Called from another thread, possibly while `poll`
        blocks: make `poll` return soon (e.g. set a `threading.Event` it waits on). No
        `poll` starts after `stop` was called; `commit_record` and `commit` may still
        arrive for records in flight, so release resources that they or a running
        `poll` use only when that `poll` returns or under a lock."""


class SinkTask(ABC):
    """Writes records to an external system. Runs on its own thread (the *task
    thread*); every method below is called on it, one at a time, never concurrently.

    Order of calls: `initialize`, `start`, `open` with the first partitions; then
    `put` repeatedly, `pre_commit` (by default `flush`) at each commit interval, and
    `close` plus `open` around each rebalance; at the end `close` with every assigned
    partition, then `stop`. A task instance is never restarted.
    """

    context: SinkTaskContext
    """Set by `initialize`, before `start`."""

    def initialize(self, context: SinkTaskContext) -> None:
        """Called once, before `start`. Overrides must call ``super().initialize``."""
        self.context = context

    @abstractmethod
    def start(self, config: Mapping[str, str]) -> None:
        """Start with the task's config (connect to the target system)."""

    def open(self, partitions: list[TopicPartition]) -> None:  # noqa: B027 - optional hook
        """``partitions`` were assigned to this task; `put` may now bring their records.
        Called before the first `put` containing any of them."""

    @abstractmethod
    def put(self, records: list[SinkRecord]) -> None:
        """Write ``records`` (in partition order; the list may be empty, so a task can
        time-out buffers). Writing may be asynchronous: the runtime commits offsets only
        through `pre_commit`. Raise `RetriableError` to have the same batch delivered
        again after a backoff; report single bad records through
        `SinkTaskContext.errant_record_reporter`."""

    def flush(self, offsets: dict[TopicPartition, int]) -> None:  # noqa: B027 - optional hook
        """Make everything `put` so far durable in the target system. ``offsets`` maps
        each assigned partition to the *next* offset to read (one past the last record
        `put`); after `flush` returns they are committed. Default: nothing to do."""

    def pre_commit(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The offsets the runtime may commit now, given ``offsets`` (as for `flush`).

        Default: `flush` then return ``offsets`` unchanged. Override to write
        asynchronously: return, per partition, the next offset whose records are
        *not* yet durable; the runtime never commits more than returned, and does not
        commit a partition left out. Return ``{}`` to commit nothing this time.
        """
        self.flush(offsets)
        return dict(offsets)

    def close(self, partitions: list[TopicPartition]) -> None:  # noqa: B027 - optional hook
        """``partitions`` were revoked (rebalance or shutdown), after their last
        `pre_commit`. Drop buffered records of those partitions: they will be delivered
        again to whichever task gets them next."""

    @abstractmethod
    def stop(self) -> None:
        """Release what `start` acquired. Called once, after `close`; no other method
        is called afterwards."""


# --- helpers ---------------------------------------------------------------------------


def _distribution_version(module: str) -> str:
    """The version of the distribution providing ``module``'s top-level package."""
    top = module.partition(".")[0]
    version_attr = getattr(sys.modules.get(top), "__version__", None)
    for dist in _top_level_distributions().get(top, ()):
        try:
            return version(dist)
        except PackageNotFoundError:  # pragma: no cover - metadata vanished meanwhile
            continue
    return str(version_attr) if version_attr else UNKNOWN_VERSION


@functools.cache
def _top_level_distributions() -> Mapping[str, list[str]]:
    # Scans every installed distribution once; only plugin listings need it.
    return packages_distributions()
