"""Standalone mode end to end: file → queue → file, with a kill -9 in the middle."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "file-pipeline"


def start(workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omconnect.cli",
            "standalone",
            "worker.json",
            "file-source.json",
            "file-sink.json",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "worker.log").open("ab"),
    )


def wait_for_lines(
    path: Path, wanted: set[str], process: subprocess.Popen[bytes], timeout_s: float = 30
) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if wanted <= set(lines):
            return lines
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}")
        time.sleep(0.1)
    raise AssertionError(f"{len(wanted - set(lines))} lines never arrived")


def test_file_to_file_survives_kill_9(tmp_path: Path) -> None:
    for name in ("worker.json", "file-source.json", "file-sink.json"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    source, sink = tmp_path / "input.txt", tmp_path / "output.txt"
    first = [f"line {i} ünïcode" for i in range(2000)]
    source.write_text("".join(line + "\n" for line in first))

    worker = start(tmp_path)
    try:
        wait_for_lines(sink, set(first), worker)
        time.sleep(0.7)  # let at least one offset commit happen after the data arrived
        with source.open("a") as f:  # more input while the worker is being killed
            f.writelines(f"line {i} ünïcode\n" for i in range(2000, 4000))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        with source.open("a") as f:
            f.writelines(f"line {i} ünïcode\n" for i in range(4000, 5000))
        worker = start(tmp_path)
        everything = {f"line {i} ünïcode" for i in range(5000)}
        lines = wait_for_lines(sink, everything, worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    counts = Counter(lines)
    duplicates = sum(c - 1 for c in counts.values())
    assert set(counts) == everything  # nothing lost, nothing invented
    print(f"{len(lines)} lines written for 5000 inputs: {duplicates} duplicates after kill -9")
    # Order is kept per key-less partition: the first run's lines come in input order.
    assert lines[:2000] == first
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
