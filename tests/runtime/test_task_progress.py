"""A source task's reported progress reaches its REST status, the CLI's table and the
worker's metrics, and disappears when the long phase ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from prometheus_client import generate_latest
from pydantic import Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.connector import SourceConnector, SourceTask, TaskProgress
from omconnect.connect.records import SourceRecord
from omconnect.connect.schema import STRING
from omconnect.runtime.metrics import WorkerMetrics
from omconnect.runtime.rest import RestServer
from omconnect.runtime.rest.commands import progress_bar, status_table
from omconnect.runtime.standalone import Standalone

TOTAL = 100


class GateConfig(PluginConfig):
    """Test connector config."""

    file: str = Field(description="Holds how many records the task may emit so far.")
    topic: str = Field(description="Where the records go.")


class GatedSource(SourceConnector):
    """One task that emits records up to the number in its file, reporting a
    ``snapshot`` phase of `TOTAL` records until it has emitted them all."""

    config_model: ClassVar[type[PluginConfig]] = GateConfig

    def start(self, config: Mapping[str, str]) -> None:
        self._config = dict(config)

    def task_class(self) -> type[SourceTask]:
        return GatedTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config)]

    def stop(self) -> None:
        pass


class GatedTask(SourceTask):
    def start(self, config: Mapping[str, str]) -> None:
        self._gate = Path(config["file"])
        self._topic = config["topic"]
        stored = self.context.offset_reader.offset({"gate": "g"})
        self._emitted = int(stored["n"]) if stored and stored.get("n") is not None else 0

    def poll(self) -> list[SourceRecord]:
        allowed = min(TOTAL, int(self._gate.read_text()))
        if self._emitted >= allowed:
            time.sleep(0.02)
            return []
        records = [
            SourceRecord(self._topic, None, None, None, STRING, f"r{n}",
                         source_partition={"gate": "g"}, source_offset={"n": n + 1})
            for n in range(self._emitted, allowed)
        ]  # fmt: skip
        self._emitted = allowed
        return records

    def progress(self) -> TaskProgress | None:
        return TaskProgress("snapshot", self._emitted, TOTAL) if self._emitted < TOTAL else None

    def stop(self) -> None:
        pass


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_progress_shows_in_status_cli_and_metrics_until_the_phase_ends(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("40")
    standalone = Standalone({"data.dir": str(tmp_path / "data"), "offset.flush.interval.ms": "50"})
    try:
        standalone.put_connector_config(
            "gated",
            {
                "connector.class": f"{__name__}.GatedSource",
                "file": str(gate),
                "topic": "gated",
            },
        )

        def task_json() -> dict[str, object]:
            status = standalone.connector_status("gated").as_json()
            tasks = status["tasks"]
            return dict(tasks[0]) if tasks else {}

        _wait_for(lambda: task_json().get("progress") is not None, "progress in the status")
        assert task_json()["progress"] == {"phase": "snapshot", "done": 40, "total": TOTAL}
        assert task_json()["state"] == "RUNNING"

        table = status_table(standalone.connector_status("gated").as_json())
        assert "PROGRESS" in table
        assert "snapshot [########------------] 40% 40/100" in table

        metrics = generate_latest(WorkerMetrics(standalone.worker).registry).decode()
        assert (
            'omconnect_connect_source_task_progress_done{connector="gated",phase="snapshot",task="0"}'
            " 40.0" in metrics
        )
        assert (
            'omconnect_connect_source_task_progress_total{connector="gated",phase="snapshot",task="0"}'
            " 100.0" in metrics
        )

        gate.write_text(str(TOTAL))
        _wait_for(lambda: "progress" not in task_json(), "progress to end")
        assert task_json()["state"] == "RUNNING"
        assert "PROGRESS" not in status_table(standalone.connector_status("gated").as_json())
        metrics = generate_latest(WorkerMetrics(standalone.worker).registry).decode()
        assert "omconnect_connect_source_task_progress_done{" not in metrics
    finally:
        standalone.stop()


def test_cli_status_watch_redraws_the_bar_until_the_phase_ends(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("25")
    standalone = Standalone({"data.dir": str(tmp_path / "data"), "offset.flush.interval.ms": "50"})
    try:
        standalone.put_connector_config(
            "gated",
            {"connector.class": f"{__name__}.GatedSource", "file": str(gate), "topic": "gated"},
        )
        _wait_for(
            lambda: (
                bool(standalone.connector_status("gated").tasks)
                and standalone.connector_status("gated").tasks[0].progress is not None
            ),
            "progress in the status",
        )
        with RestServer(standalone, port=0) as server:
            environment = {k: v for k, v in os.environ.items() if not k.startswith("OMCONNECT")}
            command = [sys.executable, "-m", "omconnect.cli", "connectors", "status", "gated"]
            watch = subprocess.Popen(
                [*command, "--watch", "0.1", "--rest-url", server.url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
            )
            assert watch.stdout is not None
            first = [watch.stdout.readline() for _ in range(4)]  # title, header, 2 rows
            assert any("snapshot [#####---------------] 25% 25/100" in line for line in first)
            gate.write_text(str(TOTAL))
            out, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err
        final = out.strip().split("gated (source)")[-1]
        assert "RUNNING" in final
        assert "PROGRESS" not in final
    finally:
        standalone.stop()


def test_progress_bar_caps_at_the_estimate_and_handles_an_unknown_total() -> None:
    assert progress_bar({"phase": "snapshot", "done": 0, "total": 10}) == (
        "snapshot [--------------------] 0% 0/10"
    )
    assert progress_bar({"phase": "snapshot", "done": 12, "total": 10}).startswith(
        "snapshot [####################] 100% 12/10"
    )
    assert progress_bar({"phase": "snapshot", "done": 7, "total": None}) == "snapshot 7"
