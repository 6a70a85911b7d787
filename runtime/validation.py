"""Validating a connector config: Kafka Connect's ``config/validate`` answer.

`validate_connector_config` never raises for a bad config: it returns one entry per
known key, each with its definition, its value and every error found on it, in
groups

- ``Common``: the runtime's keys (`omconnect.runtime.worker.ConnectorConfig`), plus
  the settings of the converters the config names (``value.converter.X``);
- ``Transforms``: ``transforms``, ``predicates`` and each declared alias's keys
  (``type``, ``predicate``, ``negate`` and the plugin's own ``config_model``);
- ``Error Handling``: the ``errors.*`` keys;
- the connector's class name: the connector's own ``config_model``, checked with its
  ``validate`` (which may add checks spanning keys).

A key is listed once, in the first group that defines it. Config-provider references
are resolved before checking (as Kafka does), but values are shown as written, and
secrets (SecretStr keys, keys whose names look secret) as ``[hidden]``. The same
answer drives the REST API, ``omconnect validate`` and the herders' submit-time check
(`check_valid`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omconnect.connect.config import (
    KeyInfo,
    PluginConfig,
    config_errors,
    describe_config,
    redact,
    split_list,
)
from omconnect.connect.connector import Connector, SinkConnector
from omconnect.connect.plugins import load_connector_class
from omconnect.errors import ConfigError
from omconnect.runtime.config_providers import (
    ConfigProvider,
    default_providers,
    has_references,
    resolve_config,
)
from omconnect.runtime.converters.base import converter_class, converter_config
from omconnect.runtime.error_handling import ErrorHandlingConfig
from omconnect.runtime.herder import ConfigKeyInfo, ConfigValueInfo, ValidationResult
from omconnect.runtime.transforms import build_chain
from omconnect.runtime.transforms.registry import load_predicate, load_transformation
from omconnect.runtime.worker import ConnectorConfig

COMMON = "Common"
TRANSFORMS = "Transforms"
ERROR_HANDLING = "Error Handling"
_STAGE_KEYS = ("type", "predicate", "negate")
_KAFKA_TYPES = {"integer": "int", "number": "double", "array": "list", "object": "map"}


def validate_connector_config(
    plugin: str,
    config: Mapping[str, Any],
    providers: Mapping[str, ConfigProvider] | None = None,
) -> ValidationResult:
    """Check ``config`` for connector plugin ``plugin`` (alias or class path; when
    empty, ``connector.class`` decides). ``connector.class`` defaults to ``plugin``;
    naming another class is an error on it. ``providers`` resolve ``${...}``
    references (default: ``env`` and ``file``); one that cannot be resolved is an
    error on its key. ``error_count`` is the total of all errors."""
    raw = {str(k): v for k, v in config.items()}
    if plugin and not raw.get("connector.class"):
        raw["connector.class"] = plugin
    out = _Collector()
    resolved = _resolve(raw, default_providers() if providers is None else providers, out)
    cls = _connector_class(plugin, raw, out)
    out.section(COMMON, ConnectorConfig, resolved)
    if cls is not None and issubclass(cls, SinkConnector) and not _has_topics(resolved):
        out.error(COMMON, "topics", "a sink connector needs topics or topics.regex")
    for side in ("key.converter", "value.converter"):
        _converter_section(side, resolved, out)
    _transform_section(resolved, out)
    out.section(ERROR_HANDLING, ErrorHandlingConfig, resolved)
    if cls is not None:
        _connector_section(cls, resolved, out)
    name = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else plugin
    return out.result(name or str(raw.get("connector.class", "")), raw)


def check_valid(result: ValidationResult) -> None:
    """`ConfigError` naming the first invalid key (every error in its message) unless
    ``result`` has no errors: what a herder raises to reject a config (REST 400)."""
    errors = list(errors_of(result))
    if not errors:
        return
    (key, reason), rest = errors[0], errors[1:]
    more = "; ".join(f"{k}: {r}" for k, r in rest)
    raise ConfigError(key, reason + (f" (also {more})" if more else ""))


def errors_of(result: ValidationResult) -> Iterable[tuple[str, str]]:
    """Every (key, reason) of ``result``, in answer order."""
    for _, value in result.configs:
        for reason in value.errors:
            yield value.name, reason


def plugin_config_keys(plugin: str, include_common: bool = False) -> list[ConfigKeyInfo]:
    """The definitions of a connector plugin's own keys (``GET /connector-plugins/
    {plugin}/config``, ``omconnect plugins describe``); with ``include_common`` the
    runtime's common and error-handling keys first. `ConfigError` if the plugin
    cannot be loaded."""
    cls = load_connector_class(plugin)
    sections: list[tuple[str, type[PluginConfig]]] = [(cls.__name__, cls.config_model)]
    if include_common:
        sections = [(COMMON, ConnectorConfig), (ERROR_HANDLING, ErrorHandlingConfig), *sections]
    return [
        key_info(group, order, info)
        for group, model in sections
        for order, info in enumerate(describe_config(model), start=1)
    ]


def key_info(group: str, order: int, info: KeyInfo, prefix: str = "") -> ConfigKeyInfo:
    """A `ConfigKeyInfo` with Kafka's type names and the default as Kafka shows it."""
    return ConfigKeyInfo(
        prefix + info.name,
        kafka_type(info),
        info.required,
        _as_text(info.default),
        info.documentation,
        group,
        order,
    )


def kafka_type(info: KeyInfo) -> str:
    """Kafka's ConfigDef type name for a key, lower case (``password`` for secrets)."""
    if info.secret:
        return "password"
    first = info.type.split("|")[0]
    return _KAFKA_TYPES.get(first, first)


def _as_text(value: Any) -> str | None:
    """A default or value as Kafka shows it: a string (lists comma-joined), or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _recommended(model: type[PluginConfig]) -> dict[str, tuple[str, ...]]:
    properties = model.model_json_schema(by_alias=True).get("properties", {})
    out: dict[str, tuple[str, ...]] = {}
    for key, spec in properties.items():
        options = [spec, *spec.get("anyOf", [])]
        values = [str(v) for o in options for v in o.get("enum", ())]
        if values:
            out[key] = tuple(values)
    return out


class _Collector:
    """Definitions and errors gathered group by group; `result` builds the answer."""

    def __init__(self) -> None:
        self._groups: dict[str, list[str]] = {}  # group -> keys, in order
        self._defs: dict[str, ConfigKeyInfo] = {}
        self._errors: dict[str, list[str]] = {}
        self._recommended: dict[str, tuple[str, ...]] = {}
        self._unresolvable: set[str] = set()
        self.secret_keys: set[str] = set()

    def define(self, group: str, infos: Iterable[KeyInfo], prefix: str = "") -> None:
        keys = self._groups.setdefault(group, [])
        for info in infos:
            key = prefix + info.name
            if key in self._defs:
                continue
            keys.append(key)
            self._defs[key] = key_info(group, len(keys), info, prefix)
            if info.secret:
                self.secret_keys.add(key)

    def section(
        self, group: str, model: type[PluginConfig], values: Mapping[str, Any], prefix: str = ""
    ) -> None:
        """Define ``model``'s keys under ``group`` and record its errors on ``values``."""
        self.define(group, describe_config(model), prefix)
        self.recommend(model, prefix)
        for error in config_errors(model, values):
            self.error(group, prefix + error.key, error.reason)

    def recommend(self, model: type[PluginConfig], prefix: str = "") -> None:
        """Record the allowed values of ``model``'s enumerated keys."""
        for key, options in _recommended(model).items():
            self._recommended.setdefault(prefix + key, options)

    def error(self, group: str, key: str, reason: str) -> None:
        if key in self._unresolvable:
            return  # its value is unknown: the provider error says all there is
        if key not in self._defs and key not in self._errors:
            self._groups.setdefault(group, []).append(key)
        self._errors.setdefault(key, []).append(reason)

    def unresolvable(self, key: str, reason: str) -> None:
        self._errors.setdefault(key, []).append(reason)
        self._unresolvable.add(key)

    def count(self, group: str) -> int:
        return sum(len(self._errors.get(k, ())) for k in self._groups.get(group, ()))

    def result(self, name: str, raw: Mapping[str, Any]) -> ValidationResult:
        shown = redact(raw, secret_keys=self.secret_keys)
        configs: list[tuple[ConfigKeyInfo, ConfigValueInfo]] = []
        for group, keys in self._groups.items():
            for key in keys:
                definition = self._defs.get(key) or ConfigKeyInfo(
                    key, "string", False, None, "", group, len(configs) + 1
                )
                value = shown.get(key, definition.default_value)
                errors = tuple(self._errors.get(key, ()))
                recommended = self._recommended.get(key, ())
                configs.append((definition, ConfigValueInfo(key, value, errors, recommended)))
        for key in self._errors:  # errors found before any group listed the key
            if not any(key in keys for keys in self._groups.values()):
                info = ConfigValueInfo(key, shown.get(key), tuple(self._errors[key]))
                configs.append((ConfigKeyInfo(key, "string", False, None, "", COMMON), info))
        total = sum(len(v.errors) for _, v in configs)
        return ValidationResult(name, total, tuple(self._groups), tuple(configs))


def _resolve(
    raw: Mapping[str, Any], providers: Mapping[str, ConfigProvider], out: _Collector
) -> dict[str, Any]:
    resolved = dict(raw)
    for key, value in raw.items():
        if has_references(value):
            try:
                resolved[key] = resolve_config({key: value}, providers).values[key]
            except ConfigError as exc:
                out.unresolvable(key, exc.reason)
    return resolved


def _connector_class(
    plugin: str, raw: Mapping[str, Any], out: _Collector
) -> type[Connector] | None:
    named = str(raw.get("connector.class") or "")
    if not named:
        return None  # the Common section reports the missing key
    try:
        cls = load_connector_class(named)
        if plugin and plugin != named and load_connector_class(plugin) is not cls:
            out.error(COMMON, "connector.class", f"names {named!r}, not plugin {plugin!r}")
            return None
    except ConfigError as exc:
        out.error(COMMON, "connector.class", exc.reason)
        return None
    return cls


def _has_topics(config: Mapping[str, Any]) -> bool:
    topics = config.get("topics", "")
    if str(config.get("topics.regex", "")).strip():
        return True
    return bool(split_list(topics) if isinstance(topics, str) else topics)


def _converter_section(side: str, config: Mapping[str, Any], out: _Collector) -> None:
    name = config.get(side)
    if not name:
        return
    try:
        cls = converter_class(str(name), side)
    except ConfigError as exc:
        out.error(COMMON, side, exc.reason)
        return
    settings = converter_config(config, is_key=side == "key.converter")
    out.section(COMMON, cls.config_model, settings, prefix=f"{side}.")


_STAGE_DEFS = (
    KeyInfo("type", "string", True, None, "Class or alias of the plugin.", False),
    KeyInfo("predicate", "string", False, None, "Alias of the predicate gating it.", False),
    KeyInfo("negate", "boolean", False, False, "Apply where the predicate is false.", False),
)


def _transform_section(config: Mapping[str, Any], out: _Collector) -> None:
    lists = [
        KeyInfo("transforms", "array", False, [], "Aliases of the transforms, in order.", False),
        KeyInfo("predicates", "array", False, [], "Aliases of the predicates.", False),
    ]
    out.define(TRANSFORMS, lists)
    stages: list[tuple[str, Callable[[str, str], type[Any]], int]] = [
        ("transforms", load_transformation, 3),
        ("predicates", load_predicate, 1),
    ]
    for list_key, load, own_keys in stages:
        value = config.get(list_key, "")
        for alias in split_list(value) if isinstance(value, str) else []:
            prefix = f"{list_key}.{alias}."
            out.define(TRANSFORMS, _STAGE_DEFS[:own_keys], prefix)
            name = config.get(prefix + "type")
            if not isinstance(name, str) or not name.strip():
                out.error(TRANSFORMS, prefix + "type", "is required: name a class or alias")
                continue
            try:
                cls = load(name, prefix + "type")
            except ConfigError as exc:
                out.error(TRANSFORMS, exc.key, exc.reason)
                continue
            own = {
                k[len(prefix) :]: v
                for k, v in config.items()
                if k.startswith(prefix) and k[len(prefix) :] not in _STAGE_KEYS
            }
            out.section(TRANSFORMS, cls.config_model, own, prefix)
    if out.count(TRANSFORMS) == 0:  # what only a whole chain can tell (duplicates, setup)
        try:
            build_chain(config).close()
        except ConfigError as exc:
            out.error(TRANSFORMS, exc.key or "transforms", exc.reason)


def _connector_section(cls: type[Connector], config: Mapping[str, Any], out: _Collector) -> None:
    group = cls.__name__
    out.define(group, describe_config(cls.config_model))
    out.recommend(cls.config_model)
    try:
        errors = cls().validate(dict(config))
    except Exception as exc:  # a plugin's bug must not break the answer
        out.error(group, "connector.class", f"{group}.validate failed: {exc!r}")
        return
    for error in errors:
        out.error(group, error.key, error.reason)
