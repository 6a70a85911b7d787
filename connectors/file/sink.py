"""`FileSinkConnector`: appends each record's value to a file, one line per record.

Values are written as text: strings as they are, bytes decoded as UTF-8, other values
as JSON. `flush` fsyncs the file before the runtime commits the consumer offsets, so
a record whose offset was committed is on disk. After a crash the records since the
last commit are written again (at-least-once), as with Kafka's FileStreamSink.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import SinkConnector, SinkTask, TopicPartition
from omconnect.connect.records import SinkRecord
from omconnect.connect.schema import Struct

VERSION = "1.0.0"


class FileSinkConfig(PluginConfig):
    """Keys of the file sink (Kafka FileStreamSink's names)."""

    file: str = Field(description="Path of the file the values are appended to.")


class FileSinkConnector(SinkConnector):
    """Writes every record of its topics to one file, with one task."""

    config_model: ClassVar[type[PluginConfig]] = FileSinkConfig

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = dict(config)
        parse_config(FileSinkConfig, config)

    def task_class(self) -> type[SinkTask]:
        return FileSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config)]  # one file, one writer

    def stop(self) -> None:
        pass


def as_line(value: Any) -> str:
    """The text written for a record value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Struct):
        value = value.as_dict()
    return json.dumps(value, default=str, separators=(",", ":"))


class FileSinkTask(SinkTask):
    """Appends lines; `flush` makes them durable."""

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = parse_config(FileSinkConfig, config)
        self._file = open(self._config.file, "a", encoding="utf-8")  # noqa: SIM115

    def put(self, records: list[SinkRecord]) -> None:
        self._file.write("".join(as_line(r.value) + "\n" for r in records if r.value is not None))

    def flush(self, offsets: dict[TopicPartition, int]) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def stop(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
