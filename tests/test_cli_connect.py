"""``omconnect validate`` and ``omconnect plugins``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def omconnect(*args: str, unset: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "omconnect.cli", *args]
    environ = {k: v for k, v in os.environ.items() if k not in (unset or [])}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environ)


def write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_validate_a_valid_file(tmp_path: Path) -> None:
    config = {"connector.class": "file-source", "file": "in.txt", "topic": "t", "tasks.max": 1}
    path = write(tmp_path / "c.json", {"name": "src", "config": config})
    result = omconnect("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid (omconnect.connectors.file.source.FileSourceConnector)" in result.stdout


def test_validate_prints_each_invalid_key_and_exits_3(tmp_path: Path) -> None:
    config = {
        "name": "src",
        "connector.class": "file-source",
        "topic": "t",
        "tasks.max": "0",
        "errors.tolerance": "sometimes",
        "value.converter": "${env:OMC_TEST_UNSET_VARIABLE}",
    }
    path = write(tmp_path / "bad.json", config)
    result = omconnect("validate", str(path), unset=["OMC_TEST_UNSET_VARIABLE"])
    assert result.returncode == 3
    keys = sorted(line.split(":")[0] for line in result.stdout.splitlines())
    assert keys == ["errors.tolerance", "file", "tasks.max", "value.converter"]
    assert "4 invalid" in result.stderr


def test_validate_json_output(tmp_path: Path) -> None:
    config = {"name": "s", "connector.class": "file-sink", "file": "o", "api.password": "x"}
    result = omconnect("validate", str(write(tmp_path / "s.json", config)), "--output", "json")
    assert result.returncode == 3
    answer = json.loads(result.stdout)
    assert answer["error_count"] == 1 and "FileSinkConnector" in answer["groups"]
    invalid = [c["value"]["name"] for c in answer["configs"] if c["value"]["errors"]]
    assert invalid == ["topics"]


def test_validate_unreadable_or_unknown_plugin(tmp_path: Path) -> None:
    missing = omconnect("validate", str(tmp_path / "none.json"))
    assert missing.returncode == 3 and "file not found" in missing.stderr
    unknown = write(tmp_path / "u.json", {"name": "u", "connector.class": "no.such.Connector"})
    result = omconnect("validate", str(unknown))
    assert result.returncode == 3 and result.stdout.startswith("connector.class: ")
    assert omconnect("validate", str(unknown), "--output", "yaml").returncode == 3


def test_plugins_list() -> None:
    table = omconnect("plugins", "list")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["CLASS", "TYPE", "VERSION", "ALIASES"]
    sink = next(r for r in rows if r[0] == "omconnect.connectors.file.sink.FileSinkConnector")
    assert sink[1:4] == ["sink", "1.0.0", "file-sink,"]
    listed = json.loads(omconnect("plugins", "list", "--output", "json").stdout)
    source = next(p for p in listed if p["type"] == "source")
    assert source["class"].endswith("FileSourceConnector") and "file-source" in source["aliases"]


def test_plugins_describe() -> None:
    described = omconnect("plugins", "describe", "file-source")
    assert described.returncode == 0, described.stderr
    lines = described.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "DEFAULT", "REQUIRED", "DOCUMENTATION"]
    batch = next(line.split(maxsplit=4) for line in lines if line.startswith("batch.size"))
    assert batch == ["batch.size", "INT", "2000", "no", "Most lines returned by one poll."]
    assert not any(line.startswith("tasks.max") for line in lines)
    every = omconnect("plugins", "describe", "file-source", "--all", "--output", "json")
    keys = {k["name"]: k for k in json.loads(every.stdout)}
    assert keys["tasks.max"]["group"] == "Common" and keys["file"]["required"] is True
    unknown = omconnect("plugins", "describe", "no-such-plugin")
    assert unknown.returncode == 4 and "no connector plugin 'no-such-plugin'" in unknown.stderr
