"""The ``omconnect`` CLI, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.testing.broker_process import start_broker
from omconnect.testing.services import ServerProcess, free_port


def omconnect(*args: str, input: bytes = b"", url: str = "") -> subprocess.CompletedProcess[str]:
    env_args = ["--url", url] if url and args[0] != "broker" else []
    command = [sys.executable, "-m", "omconnect.cli", *args, *env_args]
    return subprocess.run(command, input=input.decode(), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def tcp_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    broker = start_broker(tmp_path_factory.mktemp("cli-broker"))
    yield broker
    broker.stop()


def test_produce_and_consume_in_process(tmp_path: Path) -> None:
    url = f"oms:embedded://local/cli?data_dir={tmp_path}"
    created = omconnect("queues", "create", "lines", "--partitions", "3", url=url)
    assert created.returncode == 0, created.stderr
    sent = omconnect("produce", "lines", input=b"a\nb\nc\n", url=url)
    assert sent.returncode == 0 and "sent 3 messages" in sent.stderr
    got = omconnect("consume", "lines", "--from-beginning", "--max-messages", "3", url=url)
    assert got.returncode == 0, got.stderr
    assert sorted(got.stdout.split()) == ["a", "b", "c"]
    # The group committed its offsets: a second run finds nothing new.
    again = omconnect("consume", "lines", "--from-beginning", "--idle-timeout-ms", "500", url=url)
    assert again.returncode == 0 and again.stdout == ""
    listed = omconnect("queues", "list", url=url)
    assert "lines\t3" in listed.stdout.splitlines()


def test_produce_from_file_and_json_output_over_tcp(
    tcp_broker: ServerProcess, tmp_path: Path
) -> None:
    url = f"oms:embedded://127.0.0.1:{tcp_broker.port}/clitcp"
    assert omconnect("queues", "create", "events", url=url).returncode == 0
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n")
    assert (
        omconnect("produce", "events", "--file", str(source), "--key", "k", url=url).returncode == 0
    )
    got = omconnect(
        "consume", "events", "--from-beginning", "--max-messages", "2", "--output", "json", url=url
    )
    records = [json.loads(line) for line in got.stdout.splitlines()]
    assert [r["body"] for r in records] == ["one", "two"]
    assert all(r["messageKey"] == "k" and r["destination"] == "events" for r in records)
    assert omconnect("queues", "delete", "events", url=url).returncode == 0
    assert "events" not in omconnect("queues", "list", url=url).stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("produce", "missing"), 4, "missing"),
        (("queues", "list", "--url", "http://nope"), 3, "oms:"),
        (("queues", "list", "--url", "oms:warp://h/ns"), 3, "unknown driver"),
        (("queues", "frobnicate"), 2, "frobnicate"),
        (("queues", "create", "x", "--partitions", "0"), 2, "partitions"),
    ],
)
def test_user_mistakes_get_one_line_and_an_exit_code(
    tcp_broker: ServerProcess, args: tuple[str, ...], code: int, words: str
) -> None:
    url = "" if "--url" in args else f"oms:embedded://127.0.0.1:{tcp_broker.port}/cli"
    result = omconnect(*args, url=url)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_is_retriable_exit_code() -> None:
    result = omconnect("queues", "list", url=f"oms:embedded://127.0.0.1:{free_port()}/x")
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_help_everywhere() -> None:
    for args in ((), ("broker",), ("queues",), ("queues", "create"), ("produce",), ("consume",)):
        result = omconnect(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout
