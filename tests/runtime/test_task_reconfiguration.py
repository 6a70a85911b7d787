"""A connector that asks for task reconfiguration gets its new task configs running."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.connector import SourceConnector, SourceTask
from omconnect.connect.records import SourceRecord
from omconnect.runtime.standalone import Standalone


class WatchConfig(PluginConfig):
    """Test connector config."""

    file: str = Field(description="Holds the number of tasks wanted.")


class CountingSource(SourceConnector):
    """Runs as many (idle) tasks as its file says; asks to reconfigure when it changes."""

    config_model: ClassVar[type[PluginConfig]] = WatchConfig

    def start(self, config: Mapping[str, str]) -> None:
        self._config = dict(config)
        self._path = Path(config["file"])
        self._seen = self._wanted()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _wanted(self) -> int:
        return int(self._path.read_text())

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            if self._wanted() != self._seen:
                self._seen = self._wanted()
                self.context.request_task_reconfiguration()

    def task_class(self) -> type[SourceTask]:
        return IdleTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        count = min(max_tasks, self._wanted())
        return [{**self._config, "task.number": str(n)} for n in range(count)]

    def stop(self) -> None:
        self._stop.set()


class IdleTask(SourceTask):
    """Produces nothing."""

    def start(self, config: Mapping[str, str]) -> None:
        pass

    def poll(self) -> list[SourceRecord]:
        time.sleep(0.05)
        return []

    def stop(self) -> None:
        pass


def test_request_task_reconfiguration_restarts_with_new_task_configs(tmp_path: Path) -> None:
    wanted = tmp_path / "wanted"
    wanted.write_text("1")
    standalone = Standalone({"data.dir": str(tmp_path / "data")})
    try:
        standalone.put_connector_config(
            "watch",
            {
                "connector.class": f"{__name__}.CountingSource",
                "tasks.max": "5",
                "file": str(wanted),
            },
        )

        def running() -> int:
            status = standalone.connector_status("watch")
            return sum(1 for t in status.tasks if t.state == "RUNNING")

        deadline = time.monotonic() + 10
        while running() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running() == 1
        wanted.write_text("3")  # the connector notices and asks for reconfiguration
        deadline = time.monotonic() + 10
        while running() != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running() == 3
        assert len(standalone.task_configs("watch")) == 3
    finally:
        standalone.stop()
