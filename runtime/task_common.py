"""What source and sink task runners share: states, the task id, topic creation,
dead-letter sending and the conversion of failures into a status trace."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from omconnect.access_point import MessagingAccessPoint
from omconnect.connect.connector import TaskProgress
from omconnect.errors import NotFoundError
from omconnect.message import Message
from omconnect.runtime.error_handling import DeadLetter, ErrorCounts, RetryWithToleranceOperator
from omconnect.runtime.stores import State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class TaskId:
    """A task: its connector and its number."""

    connector: str
    task: int

    def __str__(self) -> str:
        return f"{self.connector}-{self.task}"


StateListener = Callable[[TaskId, State, str, TaskProgress | None], None]
"""Called with (task, new state, trace, progress) whenever a runner's state or its
task's reported progress changes."""


class TopicCreator:
    """Creates missing queues on first use (Kafka's ``topic.creation`` defaults):
    ``partitions`` each. Thread-safe; remembers what exists."""

    def __init__(self, access_point: MessagingAccessPoint, partitions: int = 1) -> None:
        self._ap = access_point
        self._partitions = partitions
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, topic: str) -> None:
        """Make sure ``topic`` exists."""
        if topic in self._known:
            return
        with self._lock:
            try:
                self._ap.resources.queue_info(topic)
            except NotFoundError:
                self._ap.resources.create_queue(topic, self._partitions)
            self._known.add(topic)


def dead_letter_sender(
    access_point: MessagingAccessPoint, topics: TopicCreator
) -> Callable[[DeadLetter], object]:
    """A `send` for the dead-letter reporter: one message to the DLQ queue, synchronously."""
    producer = access_point.create_producer()

    def send(letter: DeadLetter) -> object:
        topics.ensure(letter.topic)
        key = (letter.key or b"").decode("utf-8", errors="replace")
        return producer.send(
            Message(
                letter.value or b"",
                destination=letter.topic,
                message_key=key,
                properties=dict(letter.headers),
            )
        )

    return send


def trace_of(error: BaseException) -> str:
    """The stack trace kept in a FAILED task's status."""
    return "".join(traceback.format_exception(error))


class TaskRunner(Protocol):
    """What the worker needs of a source or sink task runner (a thread)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...
    def is_alive(self) -> bool: ...


class TaskThread(threading.Thread):
    """What source and sink runners share: the stop/pause/resume controls, the
    state reports, and the task's lifecycle (`run`): prepare, initialize, start,
    RUNNING, work, UNASSIGNED — or FAILED with the trace — then always stop the task
    if it started, and release. Subclasses provide the four hooks."""

    kind = "task"

    def __init__(
        self,
        task_id: TaskId,
        task: Any,
        config: Mapping[str, str],
        errors: RetryWithToleranceOperator,
        on_state: StateListener,
    ) -> None:
        super().__init__(daemon=True, name=f"omconnect-{self.kind}-{task_id}")
        self.task_id = task_id
        self.task = task
        self.config = config
        self._errors = errors
        self._on_state = on_state
        self._stopping = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._state = State.UNASSIGNED
        self._progress: TaskProgress | None = None

    @property
    def error_counts(self) -> ErrorCounts:
        """The task's error handling counts (Kafka's task-error-metrics)."""
        return self._errors.counts

    def stop(self) -> None:
        """Ask the task to finish; `join` waits for it."""
        self._stopping.set()
        self._running.set()
        self._errors.stop()

    def pause(self) -> None:
        """Stop taking new records until `resume` (in-flight ones still complete)."""
        self._running.clear()
        self._report(State.PAUSED)

    def resume(self) -> None:
        """Continue after `pause`."""
        self._running.set()
        self._report(State.RUNNING)

    def _report(self, state: State, trace: str = "") -> None:
        self._state = state
        self._on_state(self.task_id, state, trace, self._progress)

    @property
    def progress(self) -> TaskProgress | None:
        """The task's last reported progress (see `SourceTask.progress`)."""
        return self._progress

    def _report_progress(self) -> None:
        """Ask the task for its progress (`SourceTask.progress`) and report it when it
        changed. Task thread."""
        ask = getattr(self.task, "progress", None)
        progress = ask() if ask is not None else None
        if progress != self._progress:
            self._progress = progress
            self._on_state(self.task_id, self._state, "", progress)

    def run(self) -> None:
        started = False
        try:
            self._prepare()
            self.task.initialize(self._context())
            self.task.start(self.config)
            started = True
            self._report(State.RUNNING)
            self._work()
            self._report(State.UNASSIGNED)
        except BaseException as exc:
            log.error("%s task %s failed: %s", self.kind, self.task_id, exc)
            self._report(State.FAILED, trace_of(exc))
        finally:
            if started:
                try:
                    self.task.stop()
                except Exception:
                    log.exception("stopping %s task %s failed", self.kind, self.task_id)
            self._release()

    def _prepare(self) -> None:
        """Before the task starts (task thread)."""

    def _context(self) -> Any:
        """The context handed to ``task.initialize``."""
        raise NotImplementedError

    def _work(self) -> None:
        """Move records until stopped, then finish cleanly (task thread)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Always, last (task thread)."""
