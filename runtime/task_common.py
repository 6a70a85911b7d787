"""What source and sink task runners share: states, the task id, topic creation,
dead-letter sending and the conversion of failures into a status trace."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from omconnect.access_point import MessagingAccessPoint
from omconnect.errors import NotFoundError
from omconnect.message import Message
from omconnect.runtime.error_handling import DeadLetter
from omconnect.runtime.stores import State


@dataclass(frozen=True, slots=True, order=True)
class TaskId:
    """A task: its connector and its number."""

    connector: str
    task: int

    def __str__(self) -> str:
        return f"{self.connector}-{self.task}"


StateListener = Callable[[TaskId, State, str], None]
"""Called with (task, new state, trace) whenever a runner's state changes."""


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
