"""`BrokerConfig`: every setting of the bundled broker, typed and validated once.

The storage settings are a `StoreConfig` (``store``); the rest are the broker's own.
`BrokerConfig.from_mapping` builds one from flat string-keyed settings (a config
file, CLI flags), accepting the storage keys at the top level too, and names the
failing key in its `ConfigError`. A config is read-only once built.

There is no auto-creation of queues: an unknown queue is a `NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from omconnect.broker.commitlog import HEADER_SIZE
from omconnect.broker.store import StoreConfig
from omconnect.errors import ConfigError

__all__ = ["INTERNAL_RECORD_OVERHEAD", "MAX_TRANSACTION_ID_LENGTH", "BrokerConfig", "StoreConfig"]

# Room for the wrapper the broker puts around a message in its internal queues
# (transaction id up to 1024 characters, names up to 200, a few integers).
INTERNAL_RECORD_OVERHEAD = 4096
MAX_TRANSACTION_ID_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Settings of one broker. Times are milliseconds, sizes bytes."""

    data_dir: Path
    store: StoreConfig = field(default_factory=StoreConfig)
    host: str = "127.0.0.1"
    port: int = 9876
    max_frame_bytes: int = 64 << 20
    transaction_check_interval_ms: int = 5000
    kv_compaction_factor: float = 2.0
    kv_compaction_min_records: int = 1000
    kv_history_limit: int = 10_000
    kv_max_value_bytes: int = 1 << 20
    kv_segment_bytes: int = 16 << 20
    ttl_check_interval_ms: int = 100
    scheduler_tick_ms: int = 100
    retention_check_interval_ms: int = 60_000
    offsets_persist_interval_ms: int = 1000
    max_wait_ms: int = 60_000

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, str | Path) or not str(self.data_dir):
            raise ConfigError("data_dir", "must be a directory path")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not isinstance(self.store, StoreConfig):
            raise ConfigError("store", "must be a StoreConfig")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host", "must be a host name or address")
        _int_in("port", self.port, 0, 65535)
        for name, low in (
            ("max_frame_bytes", 1024),
            ("transaction_check_interval_ms", 1),
            ("kv_compaction_min_records", 1),
            ("kv_history_limit", 1),
            ("kv_max_value_bytes", 0),
            ("kv_segment_bytes", 4096),
            ("ttl_check_interval_ms", 1),
            ("scheduler_tick_ms", 1),
            ("retention_check_interval_ms", 1),
            ("offsets_persist_interval_ms", 1),
            ("max_wait_ms", 0),
        ):
            _int_in(name, getattr(self, name), low, None)
        factor = self.kv_compaction_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
            raise ConfigError("kv_compaction_factor", "must be a number > 0")
        internal = self.store.max_message_bytes + INTERNAL_RECORD_OVERHEAD + HEADER_SIZE
        if self.store.segment_bytes < internal:
            raise ConfigError(
                "segment_bytes",
                f"must be at least max_message_bytes + {INTERNAL_RECORD_OVERHEAD + HEADER_SIZE} "
                f"({internal}) so that a wrapped message fits in a segment",
            )
        if self.kv_segment_bytes < self.kv_max_value_bytes + 2 * INTERNAL_RECORD_OVERHEAD:
            raise ConfigError(
                "kv_segment_bytes", "must leave room for kv_max_value_bytes + 8 KiB per record"
            )
        if self.max_frame_bytes < self.store.max_message_bytes:
            raise ConfigError("max_frame_bytes", "must be at least max_message_bytes")

    @property
    def max_message_bytes(self) -> int:
        """The largest message encoding `append` accepts."""
        return self.store.max_message_bytes

    def internal_store_config(self) -> StoreConfig:
        """The `StoreConfig` the broker opens its store with: room for wrapped messages."""
        return replace(
            self.store, max_message_bytes=self.store.max_message_bytes + INTERNAL_RECORD_OVERHEAD
        )

    def kv_store_config(self) -> StoreConfig:
        """The `StoreConfig` of the KV log: same flush mode, no retention (compaction
        bounds it), smaller segments."""
        return replace(
            self.store,
            segment_bytes=self.kv_segment_bytes,
            retention_ms=0,
            retention_bytes=0,
            max_message_bytes=self.kv_max_value_bytes + 2 * INTERNAL_RECORD_OVERHEAD,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BrokerConfig:
        """Build from flat settings: broker keys and `StoreConfig` keys side by side.
        Strings are converted to the field's type. `ConfigError` names an unknown key
        or a value that does not convert."""
        broker_keys = {f.name: f for f in fields(cls) if f.name != "store"}
        store_keys = {f.name: f for f in fields(StoreConfig)}
        broker_args: dict[str, Any] = {}
        store_args: dict[str, Any] = {}
        for key, value in values.items():
            if key in broker_keys:
                broker_args[key] = _convert(key, value, broker_keys[key].default)
            elif key in store_keys:
                store_args[key] = _convert(key, value, store_keys[key].default)
            else:
                raise ConfigError(key, "unknown broker setting")
        if "data_dir" not in broker_args:
            raise ConfigError("data_dir", "is required")
        try:
            store = StoreConfig(**store_args)
        except TypeError as exc:  # pragma: no cover - keys were checked above
            raise ConfigError("store", str(exc)) from exc
        return cls(store=store, **broker_args)


def _int_in(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(name, f"must be {bound}, got {value}")


def _convert(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` when it is a string."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(value.replace("_", ""))
        if isinstance(default, float):
            return float(value)
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not a {type(default).__name__}") from exc
    return value
