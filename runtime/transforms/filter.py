"""Filter: drop records; meant to be used with a predicate."""

from __future__ import annotations

from typing import TypeVar

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.runtime.transforms.base import Transformation

R = TypeVar("R", bound=ConnectRecord)


class Filter(Transformation[PluginConfig]):
    """Drop every record it is applied to, so later transforms and the pipeline never
    see it. Without a predicate that drops everything; with ``predicate`` (and
    ``negate``) it drops the records that match (or do not)."""

    config_model = PluginConfig

    def apply(self, record: R) -> R | None:
        """Always None: the record is dropped."""
        return None
