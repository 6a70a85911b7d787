"""``topics.regex``: a sink consumes every matching queue, also queues created later."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.errors import ConfigError
from omconnect.message import Message
from omconnect.runtime.standalone import Standalone
from omconnect.runtime.worker import check_connector_config


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_regex_sink_reads_matching_queues_including_new_ones(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    standalone = Standalone({"data.dir": str(tmp_path / "data"), "offset.flush.interval.ms": "100"})
    try:
        ap = standalone.access_point
        ap.resources.create_queue("shop.db.a", partitions=1)
        ap.resources.create_queue("other", partitions=1)
        producer = ap.create_producer()
        producer.send(Message(b"a1", destination="shop.db.a"))
        producer.send(Message(b"x1", destination="other"))
        standalone.put_connector_config(
            "out",
            {
                "connector.class": "file-sink",
                "topics.regex": r"shop\.db\..*",
                "file": str(out),
                "value.converter": "string",
            },
        )

        def lines() -> list[str]:
            return sorted(out.read_text().splitlines()) if out.exists() else []

        wait_for(lambda: lines() == ["a1"])
        ap.resources.create_queue("shop.db.b", partitions=2)  # a table seen later
        producer.send(Message(b"b1", destination="shop.db.b"))
        producer.send(Message(b"a2", destination="shop.db.a"))
        wait_for(lambda: lines() == ["a1", "a2", "b1"])
        time.sleep(0.5)  # nothing from "other" arrives, nothing twice
        assert lines() == ["a1", "a2", "b1"]
    finally:
        standalone.stop()


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ({}, "topics", "topics or topics.regex"),
        ({"topics": "a", "topics.regex": "b.*"}, "topics.regex", "not both"),
        ({"topics.regex": "(unclosed"}, "topics.regex", "regular expression"),
    ],
)
def test_sink_topic_config_errors_name_the_key(extra: dict[str, str], key: str, words: str) -> None:
    config = {"name": "s", "connector.class": "file-sink", "file": "/tmp/x", **extra}
    with pytest.raises(ConfigError) as error:
        check_connector_config(config)
    assert error.value.key == key
    assert words in str(error.value)
