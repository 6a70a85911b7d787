"""Every connector config shipped in examples/ passes ``omconnect validate`` (with the
secrets it takes from the environment set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONNECTOR_FILES = sorted(
    path
    for path in EXAMPLES.glob("*/*.json")
    if path.name != "worker.json" and "config" in json.loads(path.read_text())
)


def test_the_examples_are_found() -> None:
    names = {path.name for path in CONNECTOR_FILES}
    assert {"file-source.json", "mysql-source.json", "sql-sink.json"} <= names


@pytest.mark.parametrize("path", CONNECTOR_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_connector_config_is_valid(path: Path) -> None:
    env = {**os.environ, "MYSQL_PASSWORD": "secret", "POSTGRES_PASSWORD": "secret"}
    result = subprocess.run(
        [sys.executable, "-m", "omconnect.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (" in result.stdout
