"""The built-in predicates: TopicNameMatches, HasHeaderKey and RecordIsTombstone."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.runtime.transforms.base import Predicate
from omconnect.runtime.transforms.routing import compile_java_regex


class TopicNameMatchesConfig(PluginConfig):
    """Kafka's TopicNameMatches keys."""

    pattern: str = Field(
        description="A Java regular expression matched against the whole topic name."
    )


class TopicNameMatches(Predicate[TopicNameMatchesConfig]):
    """True when the whole topic name matches ``pattern``."""

    config_model = TopicNameMatchesConfig

    def setup(self) -> None:
        """Compile the pattern; `ConfigError` on ``pattern`` when invalid."""
        self._pattern = compile_java_regex(self.config.pattern, "pattern")

    def test(self, record: ConnectRecord) -> bool:
        """Whether the topic matches."""
        return record.topic is not None and self._pattern.fullmatch(record.topic) is not None


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must be a non-empty string")
    return value


class HasHeaderKeyConfig(PluginConfig):
    """Kafka's HasHeaderKey keys."""

    name: Annotated[str, AfterValidator(_non_empty)] = Field(description="The header name.")


class HasHeaderKey(Predicate[HasHeaderKeyConfig]):
    """True when the record has at least one header with key ``name``."""

    config_model = HasHeaderKeyConfig

    def test(self, record: ConnectRecord) -> bool:
        """Whether such a header exists."""
        return record.headers.last(self.config.name) is not None


class RecordIsTombstone(Predicate[PluginConfig]):
    """True when the record's value is null (a tombstone)."""

    config_model = PluginConfig

    def test(self, record: ConnectRecord) -> bool:
        """Whether the value is None."""
        return record.value is None
