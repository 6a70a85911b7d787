"""Transforms and the dead-letter queue inside a running pipeline (standalone, in-process)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omconnect.access_point import MessagingAccessPoint
from omconnect.runtime.standalone import Standalone


def write_json(path: Path, data: dict[str, str]) -> Path:
    path.write_text(json.dumps(data))
    return path


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_transforms_route_and_filter_records(tmp_path: Path) -> None:
    source, sink = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("keep 1\ndrop 2\nkeep 3\n")
    worker = write_json(
        tmp_path / "worker.json",
        {
            "data.dir": str(tmp_path / "data"),
            "value.converter.schemas.enable": "false",
            "offset.flush.interval.ms": "200",
        },
    )
    source_config = write_json(
        tmp_path / "source.json",
        {
            "name": "in",
            "connector.class": "file-source",
            "file": str(source),
            "topic": "raw",
            "poll.interval.ms": "20",
            "transforms": "route",
            "transforms.route.type": "RegexRouter",
            "transforms.route.regex": "raw",
            "transforms.route.replacement": "routed",
        },
    )
    sink_config = write_json(
        tmp_path / "sink.json",
        {
            "name": "out",
            "connector.class": "file-sink",
            "topics": "routed",
            "file": str(sink),
            "transforms": "hoist,dropOthers",
            "transforms.hoist.type": "HoistField$Value",
            "transforms.hoist.field": "line",
            "transforms.dropOthers.type": "Filter",
            "transforms.dropOthers.predicate": "notRouted",
            "transforms.dropOthers.negate": "true",
            "predicates": "notRouted",
            "predicates.notRouted.type": "TopicNameMatches",
            "predicates.notRouted.pattern": "routed",
        },
    )
    standalone = Standalone(worker, [source_config, sink_config])
    try:
        wait_for(lambda: sink.exists() and len(sink.read_text().splitlines()) == 3)
    finally:
        standalone.stop()
    # The router moved every line to "routed"; Filter drops records NOT from "routed"
    # (negate), so none; HoistField wrapped each value in a struct-like map.
    assert sink.read_text().splitlines() == [
        '{"line":"keep 1"}',
        '{"line":"drop 2"}',
        '{"line":"keep 3"}',
    ]


def test_bad_records_go_to_the_dead_letter_queue(tmp_path: Path) -> None:
    sink = tmp_path / "out.txt"
    data = tmp_path / "data"
    worker = write_json(
        tmp_path / "worker.json", {"data.dir": str(data), "offset.flush.interval.ms": "200"}
    )
    sink_config = write_json(
        tmp_path / "sink.json",
        {
            "name": "out",
            "connector.class": "file-sink",
            "topics": "events",
            "file": str(sink),
            "value.converter": "json",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "events-dlq",
            "errors.deadletterqueue.context.headers.enable": "true",
        },
    )
    standalone = Standalone(worker, [sink_config])
    try:
        producer = standalone.access_point.create_producer()  # "events" made by the sink
        from omconnect.message import Message

        producer.send_batch(
            [Message(b, destination="events") for b in (b'{"n": 1}', b"not json", b'{"n": 3}')]
        )
        wait_for(lambda: sink.exists() and len(sink.read_text().splitlines()) == 2)
        ap: MessagingAccessPoint = standalone.access_point
        with ap.create_pull_consumer("check", ["events-dlq"], start_from="earliest") as c:
            dead = c.receive(timeout_ms=10_000)
    finally:
        standalone.stop()
    assert sink.read_text().splitlines() == ['{"n":1}', '{"n":3}']
    assert dead is not None and dead.body == b"not json"
    assert dead.properties["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert dead.properties["__connect.errors.topic"] == "events"
    assert "exception.message" in " ".join(dead.properties)


def _sql_sink_pipeline(tmp_path: Path, tolerance: str) -> tuple[Standalone, Path]:
    """A SQL sink (schemaless JSON) into an SQLite table that has no column ``extra``."""
    import sqlite3

    db = tmp_path / "target.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER)")
    worker = write_json(
        tmp_path / "worker.json",
        {
            "data.dir": str(tmp_path / "data"),
            "offset.flush.interval.ms": "200",
            "task.restart.enable": "false",
        },
    )
    sink_config = write_json(
        tmp_path / "sink.json",
        {
            "name": "to-sql",
            "connector.class": "sql-sink",
            "topics": "events",
            "connection.url": f"sqlite:///{db}",
            "pk.mode": "record_value",
            "pk.fields": "id",
            "delete.enabled": "false",
            "value.converter": "json",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": tolerance,
            "errors.deadletterqueue.topic.name": "events-dlq",
            "errors.deadletterqueue.context.headers.enable": "true",
        },
    )
    standalone = Standalone(worker, [sink_config])
    from omconnect.message import Message

    standalone.access_point.create_producer().send_batch(
        [
            Message(body, destination="events")
            for body in (b'{"id": 1, "n": 1}', b'{"id": 2, "extra": "x"}', b'{"id": 3, "n": 3}')
        ]
    )
    return standalone, db


def test_a_record_the_sink_task_reports_goes_to_the_dead_letter_queue(tmp_path: Path) -> None:
    import sqlite3

    standalone, db = _sql_sink_pipeline(tmp_path, "all")
    try:

        def written() -> list[tuple[int, int]]:
            with sqlite3.connect(db) as connection:
                return connection.execute("SELECT id, n FROM events ORDER BY id").fetchall()

        wait_for(lambda: written() == [(1, 1), (3, 3)])
        with standalone.access_point.create_pull_consumer(
            "check", ["events-dlq"], start_from="earliest"
        ) as consumer:
            dead = consumer.receive(timeout_ms=10_000)
        assert standalone.connector_status("to-sql").tasks[0].state == "RUNNING"
    finally:
        standalone.stop()
    assert dead is not None and json.loads(dead.body) == {"id": 2, "extra": "x"}
    assert dead.properties["__connect.errors.stage"] == "TASK_PUT"
    assert dead.properties["__connect.errors.class.name"] == "SqlSinkTask"
    assert dead.properties["__connect.errors.offset"] == "1"
    assert "extra" in dead.properties["__connect.errors.exception.message"]


def test_a_reported_record_fails_the_task_without_tolerance(tmp_path: Path) -> None:
    standalone, _ = _sql_sink_pipeline(tmp_path, "none")
    try:

        def task() -> Any:
            tasks = standalone.connector_status("to-sql").tasks
            return tasks[0] if tasks else None

        wait_for(lambda: task() is not None and task().state == "FAILED")
        trace = task().trace
    finally:
        standalone.stop()
    assert "Tolerance exceeded" in trace and "TASK_PUT" in trace
