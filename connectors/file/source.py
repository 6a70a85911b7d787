"""`FileSourceConnector`: each complete line of a file becomes a record.

The source partition is ``{"filename": <absolute path>}`` and the offset
``{"position": <byte offset just past the line>}``, so after a restart the task
resumes at the first line not yet committed. A last line without its newline is
not read until the newline arrives (the file may still be being written). If the
file shrinks below the stored position (truncated or replaced), reading starts
over from the beginning, with a warning.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, ClassVar

from pydantic import Field

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import SourceConnector, SourceTask
from omconnect.connect.records import SourceRecord
from omconnect.connect.schema import STRING

log = logging.getLogger(__name__)

VERSION = "1.0.0"
_READ_HINT_BYTES = 256 * 1024


class FileSourceConfig(PluginConfig):
    """Keys of the file source (Kafka FileStreamSource's names)."""

    file: str = Field(description="Path of the file to read, line by line.")
    topic: str = Field(description="Queue the lines are written to.")
    batch_size: int = Field(
        2000, alias="batch.size", gt=0, description="Most lines returned by one poll."
    )
    poll_interval_ms: int = Field(
        200, alias="poll.interval.ms", ge=0, description="Wait when the file has no new line."
    )
    encoding: str = Field("utf-8", description="Text encoding of the file.")


class FileSourceConnector(SourceConnector):
    """Reads one file with one task."""

    config_model: ClassVar[type[PluginConfig]] = FileSourceConfig

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = dict(config)
        parse_config(FileSourceConfig, config)

    def task_class(self) -> type[SourceTask]:
        return FileSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config)]

    def stop(self) -> None:
        pass


class FileSourceTask(SourceTask):
    """Tails the file from the stored position."""

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = parse_config(FileSourceConfig, config)
        self._path = Path(self._config.file).resolve()
        self._partition = {"filename": str(self._path)}
        stored = self.context.offset_reader.offset(self._partition)
        position = stored.get("position") if stored else 0
        self._position = position if isinstance(position, int) else 0
        self._file: BinaryIO | None = None

    def poll(self) -> list[SourceRecord]:
        file = self._file or self._open()
        if file is None:
            time.sleep(self._config.poll_interval_ms / 1000)
            return []
        records: list[SourceRecord] = []
        # One buffered read for many lines; what is not used is read again after the
        # seek below.
        for line in file.readlines(_READ_HINT_BYTES)[: self._config.batch_size]:
            if not line.endswith(b"\n"):
                break  # nothing more, or a partial last line: read it again later
            self._position += len(line)
            text = line.rstrip(b"\r\n").decode(self._config.encoding, errors="replace")
            records.append(
                SourceRecord(
                    self._config.topic,
                    None,
                    None,
                    None,
                    STRING,
                    text,
                    source_partition=self._partition,
                    source_offset={"position": self._position},
                )
            )
        file.seek(self._position)  # drop a partial line from the buffer
        if not records:
            self._check_truncated()
            time.sleep(self._config.poll_interval_ms / 1000)
        return records

    def _open(self) -> BinaryIO | None:
        try:
            file = open(self._path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return None
        size = os.fstat(file.fileno()).st_size
        if self._position > size:
            log.warning(
                "%s is shorter than the stored position %d: reading from the start",
                self._path,
                self._position,
            )
            self._position = 0
        file.seek(self._position)
        self._file = file
        return file

    def _check_truncated(self) -> None:
        try:
            size = os.stat(self._path).st_size
        except FileNotFoundError:
            size = -1
        if size < self._position and self._file is not None:
            self._file.close()
            self._file = None

    def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
