"""The file connectors pass the connector conformance suites."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.connect.records import SinkRecord
from omconnect.connect.schema import STRING
from omconnect.connectors.file.sink import FileSinkConnector
from omconnect.connectors.file.source import FileSourceConnector
from omconnect.testing.connectors import SinkConnectorConformance, SourceConnectorConformance


class TestFileSource(SourceConnectorConformance):
    @pytest.fixture
    def connector_class(self) -> type[FileSourceConnector]:
        return FileSourceConnector

    @pytest.fixture
    def source_config(self, tmp_path: Path) -> dict[str, str]:
        return {"file": str(tmp_path / "in.txt"), "topic": "lines", "poll.interval.ms": "10"}

    @pytest.fixture
    def write_source_data(self, tmp_path: Path) -> Callable[[int], None]:
        written = [0]

        def write(n: int) -> None:
            with (tmp_path / "in.txt").open("a") as f:
                for _ in range(n):
                    f.write(f"line {written[0]}\n")
                    written[0] += 1

        return write


class TestFileSink(SinkConnectorConformance):
    @pytest.fixture
    def connector_class(self) -> type[FileSinkConnector]:
        return FileSinkConnector

    @pytest.fixture
    def sink_config(self, tmp_path: Path) -> dict[str, str]:
        return {"file": str(tmp_path / "out.txt"), "topics": "lines"}

    @pytest.fixture
    def sink_records(self) -> Callable[[int], list[SinkRecord]]:
        def make(n: int) -> list[SinkRecord]:
            return [
                SinkRecord("lines", i % 2, None, None, STRING, f"value {i}", offset=i // 2)
                for i in range(n)
            ]

        return make

    @pytest.fixture
    def read_sink_data(self, tmp_path: Path) -> Callable[[], list[str]]:
        return lambda: (tmp_path / "out.txt").read_text().splitlines()


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    from omconnect.testing.connectors import SourceHarness

    path = tmp_path / "in.txt"
    path.write_text("complete\npartial")
    harness = SourceHarness(
        FileSourceConnector, {"file": str(path), "topic": "t", "poll.interval.ms": "10"}
    )
    try:
        assert [r.value for r in harness.poll_until(5, timeout_s=0.3)] == ["complete"]
        with path.open("a") as f:
            f.write(" now\n")
        assert [r.value for r in harness.poll_until(1)] == ["partial now"]
    finally:
        harness.stop()
