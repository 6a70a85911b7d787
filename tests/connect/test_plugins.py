"""Plugin lookup: alias, Kafka class name, class path, entry point; plugin listing."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from omconnect.connect import plugins
from omconnect.connect.connector import SinkConnector, SourceConnector
from omconnect.connect.plugins import (
    CONNECTOR_ALIASES,
    CONNECTORS_GROUP,
    BuiltinPlugin,
    PluginInfo,
    alias_map,
    list_connector_plugins,
    load_class,
    load_connector_class,
)
from omconnect.errors import ConfigError

FAKE_PLUGINS = """
from omconnect.connect.connector import SinkConnector, SinkTask, SourceConnector, SourceTask


class _Base:
    def start(self, config):
        pass

    def task_configs(self, max_tasks):
        return []

    def stop(self):
        pass


class FakeSource(_Base, SourceConnector):
    def task_class(self):
        return SourceTask

    def version(self):
        return "1.2.3"


class FakeSink(_Base, SinkConnector):
    def task_class(self):
        return SinkTask


class BadVersion(FakeSource):
    def version(self):
        raise RuntimeError("no version today")


class HalfDone(SourceConnector):
    def start(self, config):
        pass


class NotAConnector:
    pass
"""


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``fakeplugins_<n>`` importable from a temporary directory."""
    name = f"fakeplugins_{abs(hash(tmp_path)) % 10**8}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_PLUGINS))
    (package / "broken.py").write_text("raise RuntimeError('plugin bug at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name


def _install_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)


def _ep(name: str, value: str, group: str = CONNECTORS_GROUP) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


# --- the built-in registry ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "target"),
    [
        ("file-source", "omconnect.connectors.file.source:FileSourceConnector"),
        ("FileStreamSource", "omconnect.connectors.file.source:FileSourceConnector"),
        (
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "omconnect.connectors.file.source:FileSourceConnector",
        ),
        ("file-sink", "omconnect.connectors.file.sink:FileSinkConnector"),
        ("FileStreamSink", "omconnect.connectors.file.sink:FileSinkConnector"),
        (
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "omconnect.connectors.file.sink:FileSinkConnector",
        ),
    ],
)
def test_builtin_aliases_are_lazy_targets(alias: str, target: str) -> None:
    assert CONNECTOR_ALIASES[alias] == target


def test_builtin_file_connectors_load_by_alias_and_kafka_name() -> None:
    source = load_connector_class("file-source")
    assert issubclass(source, SourceConnector) and source.__name__ == "FileSourceConnector"
    assert load_connector_class("org.apache.kafka.connect.file.FileStreamSourceConnector") is source
    sink = load_connector_class("FileStreamSink")
    assert issubclass(sink, SinkConnector) and sink.__name__ == "FileSinkConnector"


def test_alias_map() -> None:
    registry = (BuiltinPlugin("m:A", ("a", "alpha")), BuiltinPlugin("m:B", ("b",)))
    assert alias_map(registry) == {"a": "m:A", "alpha": "m:A", "b": "m:B"}


# --- lookup ------------------------------------------------------------------------------


def test_load_by_class_path_dotted_or_colon(fake_plugins: str) -> None:
    dotted = load_connector_class(f"{fake_plugins}.FakeSource")
    colon = load_connector_class(f" {fake_plugins}:FakeSource ")
    assert dotted is colon and dotted.__name__ == "FakeSource"


def test_load_by_alias(fake_plugins: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "CONNECTOR_ALIASES", {"fake": f"{fake_plugins}:FakeSink"})
    assert load_connector_class("fake").__name__ == "FakeSink"


def test_load_by_entry_point_name_or_value(
    fake_plugins: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_entry_points(
        monkeypatch,
        _ep("fake-sink", f"{fake_plugins}:FakeSink"),
        _ep("fake-sink-as-converter", f"{fake_plugins}:FakeSource", group="omconnect.converters"),
    )
    assert load_connector_class("fake-sink").__name__ == "FakeSink"
    assert load_connector_class(f"{fake_plugins}:FakeSink").__name__ == "FakeSink"
    with pytest.raises(ConfigError, match="unknown plugin 'fake-sink-as-converter'"):
        load_connector_class("fake-sink-as-converter")  # another group's entry point


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no-such-connector", "unknown plugin 'no-such-connector'; known aliases: .*file-source"),
        ("", "names no plugin class"),
        ("nosuchmodule_xyz.Connector", "cannot load 'nosuchmodule_xyz.Connector'"),
        ("omconnect.errors.NoSuchClass", r"'omconnect\.errors\.NoSuchClass' is not a class"),
    ],
)
def test_unknown_names_give_a_config_error_on_connector_class(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_connector_class(name)
    assert caught.value.key == "connector.class"


def test_a_class_that_is_not_a_connector_is_refused(fake_plugins: str) -> None:
    with pytest.raises(ConfigError, match="not a SourceConnector or SinkConnector"):
        load_connector_class(f"{fake_plugins}.NotAConnector")
    with pytest.raises(ConfigError, match="not a SourceConnector or SinkConnector"):
        load_connector_class("omconnect.connect.connector.Connector")


def test_an_abstract_connector_is_refused_naming_what_is_missing(fake_plugins: str) -> None:
    with pytest.raises(ConfigError, match=r"abstract .*stop, task_class, task_configs"):
        load_connector_class(f"{fake_plugins}.HalfDone")
    with pytest.raises(ConfigError, match="abstract"):
        load_connector_class("omconnect.connect.connector.SourceConnector")


def test_key_names_the_config_key(fake_plugins: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_connector_class("nope", key="connectors[3].class")
    assert caught.value.key == "connectors[3].class"


def test_load_class_for_other_plugin_kinds_uses_their_own_aliases() -> None:
    assert load_class("ce", {"ce": "omconnect.errors:ConfigError"}) is ConfigError
    assert load_class("omconnect.errors.FatalError", {}).__name__ == "FatalError"


# --- listing -----------------------------------------------------------------------------


def test_list_includes_builtins_and_entry_points_and_skips_broken_plugins(
    fake_plugins: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        plugins,
        "BUILTIN_CONNECTORS",
        (BuiltinPlugin(f"{fake_plugins}:FakeSource", ("fake-source", "FakeSource")),),
    )
    _install_entry_points(
        monkeypatch,
        _ep("fake-sink", f"{fake_plugins}:FakeSink"),
        _ep("more-fake-source", f"{fake_plugins}.FakeSource"),  # same class, other spelling
        _ep("bad-version", f"{fake_plugins}:BadVersion"),
        _ep("broken", f"{fake_plugins}.broken:Anything"),
        _ep("not-a-connector", f"{fake_plugins}:NotAConnector"),
        _ep("missing", "nosuchmodule_xyz:Connector"),
    )
    with caplog.at_level(logging.WARNING, logger="omconnect.connect.plugins"):
        listed = list_connector_plugins()
    assert listed == [
        PluginInfo(f"{fake_plugins}.BadVersion", "source", "unknown", ("bad-version",)),
        PluginInfo(f"{fake_plugins}.FakeSink", "sink", "unknown", ("fake-sink",)),
        PluginInfo(
            f"{fake_plugins}.FakeSource",
            "source",
            "1.2.3",
            ("fake-source", "FakeSource", "more-fake-source"),
        ),
    ]
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 3
    for target in ("broken:Anything", ":NotAConnector", "nosuchmodule_xyz:Connector"):
        assert any(target in message for message in skipped), target
    assert any("version() failed" in r.getMessage() for r in caplog.records)


def test_list_with_the_real_registry_shows_the_file_connectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install_entry_points(monkeypatch)
    listed = {info.class_name: info for info in list_connector_plugins()}
    source = listed["omconnect.connectors.file.source.FileSourceConnector"]
    sink = listed["omconnect.connectors.file.sink.FileSinkConnector"]
    assert (source.type, sink.type) == ("source", "sink")
    assert "file-source" in source.aliases and "FileStreamSink" in sink.aliases
    assert source.version and sink.version
