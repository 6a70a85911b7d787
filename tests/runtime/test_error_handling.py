"""Error handling: retry schedule, tolerance, log and dead-letter reporters, counts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.connect.config import parse_config
from omconnect.errors import ConfigError, FatalError, RecordError, RetriableError
from omconnect.runtime.error_handling import (
    SKIPPED,
    DeadLetter,
    DeadLetterReporter,
    ErrorCounts,
    ErrorHandlingConfig,
    ErrorReport,
    ErrorReporter,
    LogReporter,
    OriginalRecord,
    Redactor,
    RetryWithToleranceOperator,
    Stage,
    ToleranceExceededError,
    build_operator,
    retry_delay_ms,
)


def config(**values: object) -> ErrorHandlingConfig:
    return parse_config(ErrorHandlingConfig, {k.replace("_", "."): v for k, v in values.items()})


class FakeClock:
    """Time moves only when the operator sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[Exception], result: str = "ok") -> Callable[[], str]:
    """An operation raising each of ``errors`` in turn, then returning ``result``."""
    pending = list(errors)

    def operation() -> str:
        if pending:
            raise pending.pop(0)
        return result

    return operation


def operator(
    cfg: ErrorHandlingConfig, clock: FakeClock, *reporters: ErrorReporter
) -> RetryWithToleranceOperator:
    return RetryWithToleranceOperator(
        cfg, "orders", 3, list(reporters), clock=clock, sleep=clock.sleep, jitter=lambda: 0.0
    )


# -- config ------------------------------------------------------------------------


def test_defaults_are_kafkas() -> None:
    cfg = parse_config(ErrorHandlingConfig, {})
    assert cfg.retry_timeout_ms == 0
    assert cfg.retry_delay_max_ms == 60_000
    assert cfg.tolerance == "none"
    assert not cfg.log_enable and not cfg.log_include_messages
    assert cfg.dlq_topic == "" and not cfg.dlq_context_headers


def test_kafka_style_string_values_parse() -> None:
    cfg = parse_config(
        ErrorHandlingConfig,
        {
            "errors.retry.timeout": "30000",
            "errors.retry.delay.max.ms": "5000",
            "errors.tolerance": "ALL",
            "errors.log.enable": "true",
            "errors.log.include.messages": "false",
            "errors.deadletterqueue.topic.name": "dlq-orders",
            "errors.deadletterqueue.context.headers.enable": "true",
            "connector.class": "FileStreamSource",  # other keys are ignored
        },
    )
    assert (cfg.retry_timeout_ms, cfg.retry_delay_max_ms, cfg.tolerance) == (30000, 5000, "all")
    assert cfg.log_enable and not cfg.log_include_messages
    assert cfg.dlq_topic == "dlq-orders" and cfg.dlq_context_headers


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("errors.tolerance", "some"),
        ("errors.retry.timeout", "-2"),
        ("errors.retry.delay.max.ms", "-1"),
        ("errors.log.enable", "maybe"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(ErrorHandlingConfig, {key: value})
    assert info.value.key == key


# -- retry schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 4800), (6, 5000), (60, 5000)],
)
def test_delay_doubles_up_to_the_max(attempt: int, expected: int) -> None:
    cfg = config(errors_retry_timeout=-1, errors_retry_delay_max_ms=5000)
    assert retry_delay_ms(cfg, attempt, 0, jitter=0.0) == expected


def test_jitter_takes_off_at_most_half() -> None:
    cfg = config(errors_retry_timeout=-1)
    assert retry_delay_ms(cfg, 3, 0, jitter=1.0) == 600
    assert retry_delay_ms(cfg, 3, 0, jitter=0.999) == 601
    assert retry_delay_ms(cfg, 3, 0, jitter=0.5) == 900


def test_no_retry_by_default_or_past_the_timeout() -> None:
    assert retry_delay_ms(config(), 1, 0, 0.0) is None
    cfg = config(errors_retry_timeout=1000)
    assert retry_delay_ms(cfg, 1, 999, 0.0) == 1  # capped by what is left
    assert retry_delay_ms(cfg, 1, 1000, 0.0) is None


def test_zero_max_delay_retries_at_once() -> None:
    cfg = config(errors_retry_timeout=100, errors_retry_delay_max_ms=0)
    assert retry_delay_ms(cfg, 5, 0, 0.3) == 0


@settings(max_examples=300)
@given(
    st.integers(min_value=-1, max_value=100_000),
    st.integers(min_value=0, max_value=100_000),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=200_000),
    st.floats(min_value=0.0, max_value=0.9999),
)
def test_schedule_stays_within_bounds(
    timeout: int, max_delay: int, attempt: int, elapsed: int, jitter: float
) -> None:
    cfg = config(errors_retry_timeout=timeout, errors_retry_delay_max_ms=max_delay)
    delay = retry_delay_ms(cfg, attempt, elapsed, jitter)
    if timeout == 0 or 0 < timeout <= elapsed:
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= max_delay
    if timeout > 0:
        assert elapsed + delay <= timeout


# -- the operator --------------------------------------------------------------------


def test_success_passes_the_result_through() -> None:
    op = operator(config(), FakeClock())
    assert op.execute(lambda: 42, Stage.TASK_PUT, "Sink") == 42
    assert op.counts == ErrorCounts()


def test_retriable_error_is_retried_with_backoff_until_success() -> None:
    clock = FakeClock()
    op = operator(config(errors_retry_timeout=60_000), clock)
    errors: list[Exception] = [RetriableError("busy")] * 3
    assert op.execute(failing(errors), Stage.TASK_PUT, "Sink") == "ok"
    assert clock.sleeps == [0.3, 0.6, 1.2]
    assert (op.counts.record_failures, op.counts.retries, op.counts.record_errors) == (3, 3, 0)


@pytest.mark.parametrize(
    ("errors", "tolerance"),
    [
        ([RetriableError("busy")] * 2, "none"),  # retried until it succeeds
        ([RetriableError("down")] * 100, "all"),  # retries run out, then skipped
        ([RecordError("bad row")], "all"),  # not retried, skipped
        ([ValueError("not json")], "all"),  # a converter's error, skipped
    ],
)
def test_recover_after_a_first_failure_matches_execute(
    errors: list[Exception], tolerance: str
) -> None:
    """A runner's fast path runs the first attempt itself and hands its error to
    `recover`: same result, same sleeps and same counts as `execute`."""
    outcomes = []
    for fast_path in (False, True):
        clock = FakeClock()
        op = operator(config(errors_retry_timeout=1000, errors_tolerance=tolerance), clock)
        operation = failing(list(errors))
        if fast_path:
            try:
                result: object = operation()
            except Exception as exc:
                result = op.recover(exc, operation, Stage.VALUE_CONVERTER, "JsonConverter")
        else:
            result = op.execute(operation, Stage.VALUE_CONVERTER, "JsonConverter")
        outcomes.append((result, clock.sleeps, op.counts))
    assert outcomes[0] == outcomes[1]


def test_retries_stop_at_the_timeout_then_tolerance_decides() -> None:
    clock = FakeClock()
    op = operator(config(errors_retry_timeout=1000, errors_tolerance="all"), clock)
    result = op.execute(failing([RetriableError("down")] * 100), Stage.PRODUCE, "Producer")
    assert result is SKIPPED
    assert sum(clock.sleeps) == pytest.approx(1.0)  # 0.3 + 0.6 + the 0.1 left
    assert op.counts.retries == 3
    assert (op.counts.record_errors, op.counts.records_skipped) == (1, 1)


def test_exhausted_retries_fail_the_task_with_tolerance_none() -> None:
    op = operator(config(errors_retry_timeout=500), FakeClock())
    with pytest.raises(ToleranceExceededError) as info:
        op.execute(failing([RetriableError("down")] * 10), Stage.TASK_PUT, "Sink")
    assert isinstance(info.value.__cause__, RetriableError)
    assert isinstance(info.value, FatalError)
    assert op.counts.record_errors == 1 and op.counts.records_skipped == 0


def test_record_error_is_not_retried() -> None:
    clock = FakeClock()
    op = operator(config(errors_retry_timeout=-1, errors_tolerance="all"), clock)
    assert op.execute(failing([RecordError("bad row")]), Stage.TASK_PUT, "Sink") is SKIPPED
    assert clock.sleeps == []


def test_record_error_with_tolerance_none_fails() -> None:
    op = operator(config(), FakeClock())
    with pytest.raises(ToleranceExceededError, match="TASK_PUT"):
        op.execute(failing([RecordError("bad row")]), Stage.TASK_PUT, "Sink")


@pytest.mark.parametrize(
    "stage", [Stage.KEY_CONVERTER, Stage.VALUE_CONVERTER, Stage.TRANSFORMATION]
)
def test_any_exception_is_tolerable_in_record_stages(stage: Stage) -> None:
    op = operator(config(errors_tolerance="all"), FakeClock())
    assert op.execute(failing([ValueError("not json")]), stage, "JsonConverter") is SKIPPED


@pytest.mark.parametrize("stage", [Stage.TASK_PUT, Stage.TASK_POLL, Stage.PRODUCE])
def test_other_exceptions_in_task_stages_are_raised_as_is(stage: Stage) -> None:
    op = operator(config(errors_tolerance="all"), FakeClock())
    with pytest.raises(KeyError):
        op.execute(failing([KeyError("bug")]), stage, "Task")
    assert op.counts.record_errors == 1


def test_fatal_error_is_never_tolerated() -> None:
    op = operator(config(errors_tolerance="all", errors_retry_timeout=-1), FakeClock())
    with pytest.raises(FatalError, match="disk gone"):
        op.execute(failing([FatalError("disk gone")]), Stage.TRANSFORMATION, "T")


def test_stop_ends_the_backoff_at_once() -> None:
    cfg = config(errors_retry_timeout=-1, errors_tolerance="all")
    op = RetryWithToleranceOperator(cfg, "orders", 0)  # real clock and sleep
    started = threading.Event()

    def operation() -> str:
        started.set()
        raise RetriableError("down")

    threading.Timer(0.05, op.stop).start()
    result = op.execute(operation, Stage.TASK_PUT, "Sink")  # would retry forever
    assert result is SKIPPED and started.is_set()


def test_tolerated_failures_reach_every_reporter() -> None:
    seen: list[ErrorReport] = []

    class Collect:
        def report(self, report: ErrorReport, counts: ErrorCounts) -> None:
            seen.append(report)

    op = operator(config(errors_tolerance="all"), FakeClock(), Collect())
    record = OriginalRecord("orders", 2, 41, b"k", b"v")
    op.execute(failing([RecordError("bad")]), Stage.TASK_PUT, "my.Sink", record)
    assert len(seen) == 1
    report = seen[0]
    assert (report.connector, report.task_id, report.stage) == ("orders", 3, Stage.TASK_PUT)
    assert report.record == record and report.attempts == 1


def test_not_tolerated_failures_are_not_reported() -> None:
    seen: list[ErrorReport] = []

    class Collect:
        def report(self, report: ErrorReport, counts: ErrorCounts) -> None:
            seen.append(report)

    op = operator(config(), FakeClock(), Collect())
    with pytest.raises(ToleranceExceededError):
        op.execute(failing([RecordError("bad")]), Stage.TASK_PUT, "Sink")
    assert seen == []


# -- reporters -----------------------------------------------------------------------


def report_of(error: Exception, record: OriginalRecord | None = None) -> ErrorReport:
    return ErrorReport("orders", 3, Stage.VALUE_CONVERTER, "JsonConverter", error, record, 1)


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as exc:
        return exc


def test_dead_letter_carries_original_record_and_kafka_headers() -> None:
    cfg = config(
        errors_deadletterqueue_topic_name="dlq", errors_deadletterqueue_context_headers_enable=True
    )
    reporter = DeadLetterReporter(cfg, lambda letter: None, Redactor())
    record = OriginalRecord("orders", 2, 41, b"key", b"{bad", {"trace": "t1"})
    letter = reporter.build(report_of(raised(ValueError("Expecting value")), record))
    assert letter is not None
    assert (letter.topic, letter.key, letter.value) == ("dlq", b"key", b"{bad")
    headers = letter.headers
    assert headers["trace"] == "t1"
    assert headers["__connect.errors.topic"] == "orders"
    assert headers["__connect.errors.partition"] == "2"
    assert headers["__connect.errors.offset"] == "41"
    assert headers["__connect.errors.connector.name"] == "orders"
    assert headers["__connect.errors.task.id"] == "3"
    assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert headers["__connect.errors.class.name"] == "JsonConverter"
    assert headers["__connect.errors.exception.class.name"] == "builtins.ValueError"
    assert headers["__connect.errors.exception.message"] == "Expecting value"
    assert "Traceback" in headers["__connect.errors.exception.stacktrace"]
    assert "raise error" in headers["__connect.errors.exception.stacktrace"]


def test_dead_letter_without_context_headers_keeps_only_the_originals() -> None:
    cfg = config(errors_deadletterqueue_topic_name="dlq")
    reporter = DeadLetterReporter(cfg, lambda letter: None, Redactor())
    record = OriginalRecord("orders", None, None, None, b"v", {"h": "1"})
    letter = reporter.build(report_of(ValueError("x"), record))
    assert letter is not None and letter.headers == {"h": "1"}


def test_unknown_partition_and_empty_message_are_left_out() -> None:
    cfg = config(
        errors_deadletterqueue_topic_name="dlq", errors_deadletterqueue_context_headers_enable=True
    )
    reporter = DeadLetterReporter(cfg, lambda letter: None, Redactor())
    letter = reporter.build(report_of(ValueError(), OriginalRecord("orders")))
    assert letter is not None
    assert "__connect.errors.partition" not in letter.headers
    assert "__connect.errors.offset" not in letter.headers
    assert "__connect.errors.exception.message" not in letter.headers


def test_no_dead_letter_without_topic_or_record() -> None:
    sent: list[DeadLetter] = []
    counts = ErrorCounts()
    DeadLetterReporter(config(), sent.append, Redactor()).report(
        report_of(ValueError("x"), OriginalRecord("orders")), counts
    )
    with_topic = DeadLetterReporter(
        config(errors_deadletterqueue_topic_name="d"), sent.append, Redactor()
    )
    with_topic.report(report_of(ValueError("x"), None), counts)
    assert sent == [] and counts.dead_letter_requests == 0


def test_failing_send_is_counted_not_raised() -> None:
    def send(letter: DeadLetter) -> None:
        raise RetriableError("broker down")

    counts = ErrorCounts()
    reporter = DeadLetterReporter(config(errors_deadletterqueue_topic_name="d"), send, Redactor())
    reporter.report(report_of(ValueError("x"), OriginalRecord("orders")), counts)
    assert (counts.dead_letter_requests, counts.dead_letter_failures) == (1, 1)


def test_log_reporter_logs_context_without_messages_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counts = ErrorCounts()
    reporter = LogReporter(config(errors_log_enable=True), Redactor())
    with caplog.at_level(logging.ERROR):
        reporter.report(
            report_of(raised(ValueError("bad")), OriginalRecord("orders", 1, 7, b"K", b"V")), counts
        )
    text = caplog.text
    assert "task orders-3" in text and "VALUE_CONVERTER" in text and "offset=7" in text
    assert "b'V'" not in text
    assert "ValueError: bad" in text
    assert counts.errors_logged == 1


def test_log_reporter_includes_messages_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    reporter = LogReporter(
        config(errors_log_enable=True, errors_log_include_messages=True), Redactor()
    )
    with caplog.at_level(logging.ERROR):
        reporter.report(
            report_of(ValueError("bad"), OriginalRecord("orders", 1, 7, b"K", b"V")), ErrorCounts()
        )
    assert "key=b'K'" in caplog.text and "value=b'V'" in caplog.text


def test_log_reporter_is_silent_unless_enabled(caplog: pytest.LogCaptureFixture) -> None:
    counts = ErrorCounts()
    with caplog.at_level(logging.DEBUG):
        LogReporter(config(), Redactor()).report(report_of(ValueError("bad")), counts)
    assert caplog.text == "" and counts.errors_logged == 0


# -- secrets -------------------------------------------------------------------------

CONNECTOR_CONFIG = {
    "connection.url": "mysql://db",
    "connection.password": "s3cr3t-pw",
    "api.token": "tok-123",
    "tasks.max": 2,
    "errors.tolerance": "all",
    "errors.log.enable": "true",
    "errors.log.include.messages": "true",
    "errors.deadletterqueue.topic.name": "dlq",
    "errors.deadletterqueue.context.headers.enable": "true",
}


def test_secrets_never_reach_logs_headers_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[DeadLetter] = []
    op = build_operator(CONNECTOR_CONFIG, "orders", 0, sent.append)

    def leaky() -> None:
        raise RecordError("login failed for user root with password s3cr3t-pw (tok-123)")

    with caplog.at_level(logging.ERROR):
        assert (
            op.execute(leaky, Stage.TASK_PUT, "SqlSink", OriginalRecord("orders", 0, 1)) is SKIPPED
        )
    assert "s3cr3t-pw" not in caplog.text and "tok-123" not in caplog.text
    assert "password [hidden] ([hidden])" in caplog.text
    headers = sent[0].headers
    assert "s3cr3t-pw" not in str(headers) and "tok-123" not in str(headers)
    assert headers["__connect.errors.exception.message"].endswith("password [hidden] ([hidden])")
    strict = build_operator({**CONNECTOR_CONFIG, "errors.tolerance": "none"}, "orders", 0)
    with pytest.raises(ToleranceExceededError) as info:
        strict.execute(leaky, Stage.TASK_PUT, "SqlSink")
    assert "s3cr3t-pw" not in str(info.value) and "[hidden]" in str(info.value)


def test_redactor_replaces_longest_secret_first() -> None:
    redactor = Redactor(["abc", "abcdef", ""])
    assert redactor("x abcdef y abc") == "x [hidden] y [hidden]"
    assert Redactor()("nothing") == "nothing"


def test_build_operator_counts_for_metrics() -> None:
    sent: list[DeadLetter] = []
    op = build_operator(CONNECTOR_CONFIG, "orders", 1, sent.append)
    for n in range(5):
        op.execute(
            failing([ValueError("x")] if n % 2 else []),
            Stage.VALUE_CONVERTER,
            "C",
            OriginalRecord("t"),
        )
    assert op.counts.record_errors == 2
    assert op.counts.records_skipped == 2
    assert op.counts.errors_logged == 2
    assert op.counts.dead_letter_requests == 2 and len(sent) == 2


def test_build_operator_rejects_bad_config() -> None:
    with pytest.raises(ConfigError) as info:
        build_operator({"errors.tolerance": "most"}, "orders", 0)
    assert info.value.key == "errors.tolerance"
