"""The chain of transforms of one connector, configured the Kafka Connect way::

    transforms=route,mask
    transforms.route.type=RegexRouter
    transforms.route.regex=(.*)-raw
    transforms.route.replacement=$1
    transforms.mask.type=org.apache.kafka.connect.transforms.MaskField$Value
    transforms.mask.fields=ssn
    transforms.mask.predicate=isPeople
    transforms.mask.negate=false
    predicates=isPeople
    predicates.isPeople.type=TopicNameMatches
    predicates.isPeople.pattern=people.*

`build_chain` checks everything before the first record: every alias has a known
``type``, each plugin's own keys are valid, every ``predicate`` is listed in
``predicates``. A problem raises `ConfigError` naming the full key
(``transforms.mask.fields``) and the reason. ``negate=true`` without a predicate is
rejected rather than ignored, since it cannot mean what its author wanted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from omconnect.connect.records import ConnectRecord
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import (
    Configurable,
    Predicate,
    Transformation,
    TransformError,
)
from omconnect.runtime.transforms.registry import load_predicate, load_transformation
from omconnect.runtime.transforms.util import split_list

R = TypeVar("R", bound=ConnectRecord)

TRANSFORMS = "transforms"
PREDICATES = "predicates"
_STAGE_KEYS = ("type", "predicate", "negate")


@dataclass(frozen=True, slots=True)
class Stage:
    """One configured transform of a chain, with its optional predicate."""

    alias: str
    transform: Transformation[Any]
    predicate: Predicate[Any] | None = None
    predicate_alias: str | None = None
    negate: bool = False

    def applies_to(self, record: ConnectRecord) -> bool:
        """Whether the transform runs on ``record``: always without a predicate, else
        when the predicate's answer differs from ``negate``."""
        if self.predicate is None:
            return True
        try:
            matched = self.predicate.test(record)
        except Exception as exc:
            plugin = f"predicate {self.predicate_alias!r} {type(self.predicate).__name__}"
            raise TransformError(self.alias, plugin, exc) from exc
        return matched != self.negate


class TransformChain:
    """Transforms applied in order; a chain with no stages returns records unchanged."""

    def __init__(self, stages: Sequence[Stage] = ()) -> None:
        self.stages = tuple(stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def apply(self, record: R) -> R | None:
        """``record`` through every stage, or None as soon as one drops it.

        Raises `TransformError` (a `RecordError`) naming the stage when a transform
        or predicate fails; the original error is its ``__cause__``.
        """
        current: R | None = record
        for stage in self.stages:
            if current is None:
                return None
            if not stage.applies_to(current):
                continue
            try:
                current = stage.transform.apply(current)
            except Exception as exc:
                raise TransformError(stage.alias, type(stage.transform).__name__, exc) from exc
        return current

    def close(self) -> None:
        """Close every transform and predicate once (predicates may be shared)."""
        _close_all(
            [
                *(s.transform for s in self.stages),
                *(s.predicate for s in self.stages if s.predicate),
            ]
        )


def _close_all(plugins: Sequence[Configurable[Any]]) -> None:
    closed: set[int] = set()
    for plugin in plugins:
        if id(plugin) not in closed:
            closed.add(id(plugin))
            plugin.close()


def _aliases(config: Mapping[str, Any], key: str) -> list[str]:
    raw = config.get(key)
    if raw is None:
        return []
    items = split_list(raw)
    if not isinstance(items, tuple):
        raise ConfigError(
            key, f"must be a comma-separated list of aliases, not {type(raw).__name__}"
        )
    seen: set[str] = set()
    for alias in items:
        if alias in seen:
            raise ConfigError(key, f"alias {alias!r} is listed twice")
        seen.add(alias)
    return list(items)


def _plugin_keys(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        key[len(prefix) :]: value
        for key, value in config.items()
        if key.startswith(prefix) and key[len(prefix) :] not in _STAGE_KEYS
    }


def _configured(plugin: Configurable[Any], config: Mapping[str, Any], prefix: str) -> None:
    try:
        plugin.configure(_plugin_keys(config, prefix))
    except ConfigError as exc:
        raise ConfigError(prefix + exc.key if exc.key else prefix.rstrip("."), exc.reason) from None


def _type_name(config: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    key = prefix + "type"
    name = config.get(key)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(key, "is required: name a class or alias")
    return key, name


def _negate(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, f"must be true or false, not {value!r}")


def _build_predicates(
    config: Mapping[str, Any], built: list[Configurable[Any]]
) -> dict[str, Predicate[Any]]:
    predicates: dict[str, Predicate[Any]] = {}
    for alias in _aliases(config, PREDICATES):
        prefix = f"{PREDICATES}.{alias}."
        key, name = _type_name(config, prefix)
        predicate = load_predicate(name, key)()
        built.append(predicate)
        _configured(predicate, config, prefix)
        predicates[alias] = predicate
    return predicates


def _build_stage(
    config: Mapping[str, Any],
    alias: str,
    predicates: Mapping[str, Predicate[Any]],
    built: list[Configurable[Any]],
) -> Stage:
    prefix = f"{TRANSFORMS}.{alias}."
    key, name = _type_name(config, prefix)
    transform = load_transformation(name, key)()
    built.append(transform)
    _configured(transform, config, prefix)
    negate = _negate(config, prefix + "negate")
    predicate_alias = config.get(prefix + "predicate")
    if predicate_alias is None or predicate_alias == "":
        if negate:
            raise ConfigError(prefix + "negate", f"has no effect without {prefix}predicate")
        return Stage(alias, transform)
    if predicate_alias not in predicates:
        raise ConfigError(
            prefix + "predicate",
            f"names predicate {predicate_alias!r}, which is not listed in '{PREDICATES}'",
        )
    return Stage(alias, transform, predicates[predicate_alias], predicate_alias, negate)


def build_chain(config: Mapping[str, Any]) -> TransformChain:
    """The chain a connector config describes (empty without ``transforms``).

    Raises `ConfigError` naming the full key on the first problem; plugins configured
    before the problem was found are closed.
    """
    built: list[Configurable[Any]] = []
    try:
        predicates = _build_predicates(config, built)
        stages = [
            _build_stage(config, alias, predicates, built) for alias in _aliases(config, TRANSFORMS)
        ]
    except BaseException:
        _close_all(built)
        raise
    return TransformChain(stages)
