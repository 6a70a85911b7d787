"""Kafka Connect's error handling: retries with backoff, ``errors.tolerance``, reporters.

A worker runs each step of a record's way (convert, transform, put, produce) through
`RetryWithToleranceOperator.execute`:

- a `RetriableError` is retried after `retry_delay_ms` (exponential from 300 ms,
  jittered, capped by ``errors.retry.delay.max.ms``) while ``errors.retry.timeout``
  allows (0: never retry, -1: retry forever);
- a `RecordError`, a retriable error whose retries ran out, and in the converter and
  transformation stages any other exception, is *tolerable*: with
  ``errors.tolerance=all`` the record is skipped (`SKIPPED` is returned) and the
  failure goes to the reporters (log, dead-letter queue); with ``none`` the task
  fails with `ToleranceExceededError`;
- a `FatalError`, and any other exception in the other stages, is raised as is.

Reporters do no I/O of their own: `DeadLetterReporter` builds the dead-letter message
(the original key, value and headers plus Kafka's ``__connect.errors.*`` headers) and
hands it to an injected ``send``. Every text a reporter emits goes through a
`Redactor` so configured secrets never reach a log or a header.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from pydantic import Field, field_validator

from omconnect.connect.config import HIDDEN, PluginConfig, parse_config, redact
from omconnect.errors import FatalError, RecordError, RetriableError

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRY_DELAY_MIN_MS = 300  # Kafka's first backoff
HEADER_PREFIX = "__connect.errors."


class ErrorHandlingConfig(PluginConfig):
    """The ``errors.*`` keys of a connector config, as Kafka Connect names them."""

    retry_timeout_ms: int = Field(
        0, alias="errors.retry.timeout", ge=-1,
        description="Total ms to retry a failed operation; 0 no retries, -1 forever.",
    )  # fmt: skip
    retry_delay_max_ms: int = Field(
        60_000, alias="errors.retry.delay.max.ms", ge=0,
        description="Longest wait between two retries, in ms.",
    )  # fmt: skip
    tolerance: Literal["none", "all"] = Field(
        "none", alias="errors.tolerance",
        description="none: an error fails the task; all: skip the failing record.",
    )  # fmt: skip
    log_enable: bool = Field(
        False, alias="errors.log.enable", description="Log each tolerated failure."
    )
    log_include_messages: bool = Field(
        False, alias="errors.log.include.messages",
        description="Include the record's key and value in those logs.",
    )  # fmt: skip
    dlq_topic: str = Field(
        "", alias="errors.deadletterqueue.topic.name",
        description="Queue receiving the records that failed (empty: none).",
    )  # fmt: skip
    dlq_context_headers: bool = Field(
        False, alias="errors.deadletterqueue.context.headers.enable",
        description="Add the failure's context as __connect.errors.* headers.",
    )  # fmt: skip

    @field_validator("tolerance", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


def retry_delay_ms(
    config: ErrorHandlingConfig, attempt: int, elapsed_ms: int, jitter: float
) -> int | None:
    """Milliseconds to wait before retry number ``attempt`` (1 = the first retry), or
    None when no retry is allowed any more (``elapsed_ms`` since the first try has
    reached ``errors.retry.timeout``, or the timeout is 0).

    The delay doubles from 300 ms up to ``errors.retry.delay.max.ms``; ``jitter`` in
    [0, 1) scales it down by up to half (so workers do not retry in lockstep), and it
    never runs past the timeout.
    """
    timeout = config.retry_timeout_ms
    if attempt < 1 or timeout == 0 or 0 < timeout <= elapsed_ms:
        return None
    base = min(config.retry_delay_max_ms, RETRY_DELAY_MIN_MS << min(attempt - 1, 32))
    delay = base - int(base / 2 * min(max(jitter, 0.0), 1.0))
    return min(delay, timeout - elapsed_ms) if timeout > 0 else delay


class Stage(enum.StrEnum):
    """Where a record failed; the values are Kafka's stage names (DLQ header)."""

    TASK_POLL = "TASK_POLL"
    TASK_PUT = "TASK_PUT"
    TRANSFORMATION = "TRANSFORMATION"
    KEY_CONVERTER = "KEY_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    HEADER_CONVERTER = "HEADER_CONVERTER"
    PRODUCE = "PRODUCE"
    CONSUME = "CONSUME"


# Stages where any exception is about the record (Kafka's TOLERABLE_EXCEPTIONS).
RECORD_STAGES = frozenset(
    {Stage.TRANSFORMATION, Stage.KEY_CONVERTER, Stage.VALUE_CONVERTER, Stage.HEADER_CONVERTER}
)


class Skipped(enum.Enum):
    """The result of an operation whose failure was tolerated: skip the record."""

    SKIPPED = "skipped"


SKIPPED = Skipped.SKIPPED


class ToleranceExceededError(FatalError):
    """A failure that ``errors.tolerance`` does not allow; the cause is chained."""


@dataclass(frozen=True, slots=True)
class OriginalRecord:
    """The record being processed, as it was read or produced (what the DLQ gets)."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """One failure, tolerated, with its context."""

    connector: str
    task_id: int
    stage: Stage
    executing_class: str
    error: BaseException
    record: OriginalRecord | None
    attempts: int


@dataclass(slots=True)
class ErrorCounts:
    """Kafka's task error metrics (total-record-failures, ..., deadletterqueue-*)."""

    record_failures: int = 0  # every attempt that raised
    record_errors: int = 0  # operations that failed for good
    records_skipped: int = 0
    retries: int = 0
    errors_logged: int = 0
    dead_letter_requests: int = 0
    dead_letter_failures: int = 0


class Redactor:
    """Replaces every occurrence of a secret value in a text by ``[hidden]``."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def for_config(cls, config: Mapping[str, object]) -> Redactor:
        """The secrets of a connector config: the values `redact` hides. Pass the
        config with ``${...}`` placeholders resolved, so the real values are known."""
        hidden = redact(config)
        return cls([str(v) for k, v in config.items() if hidden[k] == HIDDEN and v])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, HIDDEN)
        return text


class ErrorReporter(Protocol):
    """Receives each tolerated failure; must not raise."""

    def report(self, report: ErrorReport, counts: ErrorCounts) -> None: ...


def describe_error(error: BaseException) -> tuple[str, str, str]:
    """(class name, message, stack trace) of ``error``, unredacted."""
    name = f"{type(error).__module__}.{type(error).__qualname__}"
    trace = "".join(traceback.format_exception(error))
    return name, str(error), trace


class LogReporter:
    """Logs each tolerated failure at ERROR when ``errors.log.enable`` is set; the
    record's key and value only with ``errors.log.include.messages``."""

    def __init__(
        self, config: ErrorHandlingConfig, redactor: Redactor, logger: logging.Logger = log
    ) -> None:
        self._config = config
        self._redact = redactor
        self._logger = logger

    def report(self, report: ErrorReport, counts: ErrorCounts) -> None:
        if not self._config.log_enable:
            return
        where = ""
        if (record := report.record) is not None:
            where = f", where the record is {{topic={record.topic!r}, "
            where += f"partition={record.partition}, offset={record.offset}"
            if self._config.log_include_messages:
                where += f", key={record.key!r}, value={record.value!r}"
            where += "}"
        text = (
            f"Error encountered in task {report.connector}-{report.task_id}. Executing "
            f"stage '{report.stage}' with class '{report.executing_class}'{where}."
        )
        trace = describe_error(report.error)[2]
        self._logger.error("%s\n%s", self._redact(text), self._redact(trace))
        counts.errors_logged += 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message for the dead-letter queue: the original key, value and headers, plus
    the failure context headers when enabled."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


class DeadLetterReporter:
    """Sends each tolerated failure's original record to ``errors.deadletterqueue.
    topic.name`` through ``send``. A failing send is logged and counted, never raised:
    the dead-letter queue must not stop the task."""

    def __init__(
        self,
        config: ErrorHandlingConfig,
        send: Callable[[DeadLetter], object],
        redactor: Redactor,
    ) -> None:
        self._config = config
        self._send = send
        self._redact = redactor

    def build(self, report: ErrorReport) -> DeadLetter | None:
        """The dead-letter message for ``report``; None without a DLQ or a record."""
        record = report.record
        if not self._config.dlq_topic or record is None:
            return None
        headers = dict(record.headers)
        if self._config.dlq_context_headers:
            name, message, trace = describe_error(report.error)
            context = {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "connector.name": report.connector,
                "task.id": report.task_id,
                "stage": str(report.stage),
                "class.name": report.executing_class,
                "exception.class.name": name,
                "exception.message": self._redact(message) if message else None,
                "exception.stacktrace": self._redact(trace),
            }
            headers.update({HEADER_PREFIX + k: str(v) for k, v in context.items() if v is not None})
        return DeadLetter(self._config.dlq_topic, record.key, record.value, headers)

    def report(self, report: ErrorReport, counts: ErrorCounts) -> None:
        letter = self.build(report)
        if letter is None:
            return
        counts.dead_letter_requests += 1
        try:
            self._send(letter)
        except Exception as exc:  # the DLQ must not take the task down
            counts.dead_letter_failures += 1
            log.error("could not send to dead-letter queue %s: %s", letter.topic, exc)


class RetryWithToleranceOperator:
    """Runs one stage of one record: retries, tolerance, reporting (see the module doc).

    One operator per task, used from the task's thread; `stop` may be called from any
    thread and ends a backoff at once (the failure is then handled as if retries ran
    out). ``clock`` (seconds, monotonic), ``sleep`` and ``jitter`` are injectable;
    ``redactor`` cleans the message of `ToleranceExceededError`.
    """

    def __init__(
        self,
        config: ErrorHandlingConfig,
        connector: str,
        task_id: int,
        reporters: Sequence[ErrorReporter] = (),
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.connector = connector
        self.task_id = task_id
        self.counts = ErrorCounts()
        self._reporters = list(reporters)
        self._redact = redactor or Redactor()
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._jitter = jitter

    def stop(self) -> None:
        """Stop retrying: the task is shutting down."""
        self._stopping.set()

    def execute(
        self,
        operation: Callable[[], T],
        stage: Stage,
        executing_class: str,
        record: OriginalRecord | None = None,
    ) -> T | Skipped:
        """``operation()``'s result, or `SKIPPED` if it failed and the failure is
        tolerated. Raises `ToleranceExceededError` for a tolerable failure with
        ``errors.tolerance=none``, and non-tolerable errors as they are."""
        started = self._clock()
        try:
            return operation()
        except Exception as exc:
            return self.recover(exc, operation, stage, executing_class, record, started)

    def recover(
        self,
        error: Exception,
        operation: Callable[[], T],
        stage: Stage,
        executing_class: str,
        record: OriginalRecord | None = None,
        started: float | None = None,
    ) -> T | Skipped:
        """Carry on after the first attempt of ``operation`` raised ``error``, exactly as
        `execute` would: retry, tolerate or raise. Lets a caller run a stage directly on
        its fast path and build ``record`` only when something failed. ``started``: the
        clock reading before the first attempt (default: now, so the retry timeout
        counts from the first failure)."""
        if started is None:
            started = self._clock()
        attempt = 1
        while True:
            self.counts.record_failures += 1
            if not isinstance(error, RetriableError) or not self._backoff(attempt, started):
                return self.fail(error, stage, executing_class, record, attempt)
            attempt += 1
            try:
                return operation()
            except Exception as exc:
                error = exc

    def _backoff(self, attempt: int, started: float) -> bool:
        """Wait before the next attempt; False if none is allowed."""
        elapsed_ms = round((self._clock() - started) * 1000)
        delay = retry_delay_ms(self.config, attempt, elapsed_ms, self._jitter())
        if delay is None or self._stopping.is_set():
            return False
        self.counts.retries += 1
        self._sleep(delay / 1000)
        return not self._stopping.is_set()

    def fail(
        self,
        error: Exception,
        stage: Stage,
        executing_class: str,
        record: OriginalRecord | None = None,
        attempts: int = 1,
        *,
        errant: bool = False,
    ) -> Skipped:
        """Handle a failure for good: `SKIPPED` after reporting it if tolerated, else
        raise. ``errant``: a sink task reported the record itself (its errant-record
        reporter), so any error is about that record."""
        self.counts.record_errors += 1
        if isinstance(error, FatalError):
            raise error
        tolerable = (
            errant or isinstance(error, RecordError | RetriableError) or stage in RECORD_STAGES
        )
        if not tolerable:
            raise error
        if self.config.tolerance != "all":
            raise ToleranceExceededError(
                f"Tolerance exceeded in error handler at stage {stage} ({executing_class}): "
                + self._redact(f"{type(error).__name__}: {error}")
            ) from error
        self.counts.records_skipped += 1
        report = ErrorReport(
            self.connector, self.task_id, stage, executing_class, error, record, attempts
        )
        for reporter in self._reporters:
            reporter.report(report, self.counts)
        return SKIPPED


def build_operator(
    connector_config: Mapping[str, object],
    connector: str,
    task_id: int,
    send_dead_letter: Callable[[DeadLetter], object] | None = None,
) -> RetryWithToleranceOperator:
    """The operator a worker uses for one task: ``errors.*`` parsed from the raw
    connector config (`ConfigError` names a bad key), its secrets redacted, the log
    reporter, and the dead-letter reporter when a DLQ topic and ``send`` are given."""
    config = parse_config(ErrorHandlingConfig, connector_config)
    redactor = Redactor.for_config(connector_config)
    reporters: list[ErrorReporter] = [LogReporter(config, redactor)]
    if config.dlq_topic and send_dead_letter is not None:
        reporters.append(DeadLetterReporter(config, send_dead_letter, redactor))
    return RetryWithToleranceOperator(config, connector, task_id, reporters, redactor=redactor)
