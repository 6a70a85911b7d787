"""``/admin/loggers``: read and change Python logging levels with Kafka Connect's
level names and JSON shapes.

Kafka's (log4j) names map to Python levels: ``OFF`` (above CRITICAL), ``FATAL`` =
CRITICAL, ``ERROR``, ``WARN`` = WARNING, ``INFO``, ``DEBUG``, ``TRACE`` (5, below
DEBUG); Python's own ``WARNING`` and ``CRITICAL`` are accepted too. Levels are read
back with Kafka's names. Only this process's loggers change (Kafka's ``scope=worker``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from omconnect.errors import ConfigError, NotFoundError

ROOT = "root"
TRACE = 5
OFF = logging.CRITICAL + 10
LEVELS: dict[str, int] = {
    "OFF": OFF,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": TRACE,
}


def python_level(name: str) -> int:
    """The Python level for a Kafka (or Python) level name, any case. `NotFoundError`
    for an unknown name, as Kafka answers 404 for one."""
    level = LEVELS.get(name.strip().upper()) if isinstance(name, str) else None
    if level is None:
        raise NotFoundError(f"invalid log level '{name}'.")
    return level


def kafka_level_name(level: int) -> str:
    """Kafka's name for a Python level (levels between two names take the lower)."""
    for name, value in (
        ("OFF", OFF),
        ("FATAL", logging.CRITICAL),
        ("ERROR", logging.ERROR),
        ("WARN", logging.WARNING),
        ("INFO", logging.INFO),
        ("DEBUG", logging.DEBUG),
    ):
        if level >= value:
            return name
    return "TRACE"


class LoggerAdmin:
    """Reads and sets logger levels; remembers when the API last set each one.

    Thread-safe. ``clock`` returns seconds since the epoch (injected for tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._modified_ms: dict[str, int] = {}

    def all_levels(self) -> dict[str, dict[str, Any]]:
        """``{"root": {"level": "INFO", "last_modified": null}, name: {...}}`` for the
        root logger and every logger whose level is set explicitly."""
        out = {ROOT: self._describe(ROOT, logging.getLogger())}
        for name, logger in sorted(self._known_loggers().items()):
            if logger.level != logging.NOTSET:
                out[name] = self._describe(name, logger)
        return out

    def level(self, name: str) -> dict[str, Any]:
        """``{"level": ..., "last_modified": ...}``: the effective level of an existing
        logger. `NotFoundError` for a logger nothing has created."""
        if name == ROOT:
            return self._describe(ROOT, logging.getLogger())
        logger = self._known_loggers().get(name)
        if logger is None:
            raise NotFoundError(f"Logger {name} not found.")
        return self._describe(name, logger)

    def set_level(self, namespace: str, level_name: str) -> list[str]:
        """Set ``namespace`` and every existing logger below it (``root``: every
        logger) to the level; returns the names changed, sorted. Creates the
        namespace's logger if needed. `ConfigError` for an empty namespace,
        `NotFoundError` for an unknown level name."""
        if not namespace or not namespace.strip():
            raise ConfigError("logger", "name a logger")
        level = python_level(level_name)
        with self._lock:
            now_ms = int(self._clock() * 1000)
            targets: dict[str, logging.Logger] = {}
            if namespace == ROOT:
                targets[ROOT] = logging.getLogger()
                targets.update(self._known_loggers())
            else:
                targets[namespace] = logging.getLogger(namespace)
                prefix = namespace + "."
                targets.update(
                    (name, logger)
                    for name, logger in self._known_loggers().items()
                    if name.startswith(prefix)
                )
            for name, logger in targets.items():
                logger.setLevel(level)
                self._modified_ms[name] = now_ms
            return sorted(targets)

    def _describe(self, name: str, logger: logging.Logger) -> dict[str, Any]:
        with self._lock:
            modified = self._modified_ms.get(name)
        return {"level": kafka_level_name(logger.getEffectiveLevel()), "last_modified": modified}

    @staticmethod
    def _known_loggers() -> dict[str, logging.Logger]:
        return {
            name: logger
            for name, logger in list(logging.root.manager.loggerDict.items())
            if isinstance(logger, logging.Logger)
        }
