"""Config providers: ${env:VAR}, ${file:path:key}, ${file:path}; secrets never in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from omconnect.connect.config import HIDDEN, redact
from omconnect.errors import ConfigError
from omconnect.runtime.config_providers import (
    ConfigProvider,
    EnvProvider,
    FileProvider,
    ProviderLookupError,
    default_providers,
    has_references,
    parse_properties,
    resolve_config,
)

SECRET = "s3cr3t-value"


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "db.properties"
    path.write_text(f"# credentials\nuser=app\npassword = {SECRET}\n")
    return path


def _providers(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, ConfigProvider]:
    return {"env": EnvProvider(env or {}), "file": FileProvider(base_dir=tmp_path)}


def test_env_reference_is_replaced_and_marked_secret(tmp_path: Path) -> None:
    config = {"connection.password": "${env:DB_PASS}", "topic": "t", "tasks.max": 2}
    resolved = resolve_config(config, _providers(tmp_path, {"DB_PASS": SECRET}))
    assert resolved.values == {"connection.password": SECRET, "topic": "t", "tasks.max": 2}
    assert resolved.secret_keys == {"connection.password"}
    assert config["connection.password"] == "${env:DB_PASS}"  # input untouched


def test_file_key_reference(tmp_path: Path, secrets_file: Path) -> None:
    config = {"user": f"${{file:{secrets_file}:user}}", "pw": "${file:db.properties:password}"}
    resolved = resolve_config(config, _providers(tmp_path))
    assert resolved.values == {"user": "app", "pw": SECRET}
    assert resolved.secret_keys == {"user", "pw"}


def test_whole_file_reference_is_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"  {SECRET}\n\n")
    resolved = resolve_config({"token": "${file:token}"}, _providers(tmp_path))
    assert resolved.values["token"] == SECRET


def test_path_may_contain_colons_key_is_after_the_last_one(tmp_path: Path) -> None:
    weird = tmp_path / "a:b.properties"
    weird.write_text("k=v\n")
    resolved = resolve_config({"x": "${file:a:b.properties:k}"}, _providers(tmp_path))
    assert resolved.values["x"] == "v"


def test_references_inside_longer_values_and_several_per_value(tmp_path: Path) -> None:
    env = {"HOST": "db.local", "PORT": "3306"}
    config = {"url": "jdbc:mysql://${env:HOST}:${env:PORT}/app"}
    resolved = resolve_config(config, _providers(tmp_path, env))
    assert resolved.values["url"] == "jdbc:mysql://db.local:3306/app"
    assert resolved.secret_keys == {"url"}


def test_values_without_references_are_not_secret(tmp_path: Path) -> None:
    config = {"format": "${topic}-${timestamp}", "price": "$5", "n": None, "l": ["${env:X}"]}
    resolved = resolve_config(config, _providers(tmp_path))
    assert resolved.values == config
    assert resolved.secret_keys == frozenset()


def test_double_dollar_escapes_a_reference(tmp_path: Path) -> None:
    resolved = resolve_config({"doc": "use $${env:HOME} literally"}, _providers(tmp_path))
    assert resolved.values["doc"] == "use ${env:HOME} literally"
    assert resolved.secret_keys == frozenset()
    assert not has_references("$${env:HOME}")
    assert has_references("x${env:HOME}") and not has_references(3)


def test_missing_env_var_names_key_and_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config({"connection.password": "${env:NOPE}"}, _providers(tmp_path))
    assert caught.value.key == "connection.password"
    assert "${env:NOPE}" in caught.value.reason
    assert "'NOPE' is not set" in caught.value.reason


def test_missing_file_key_names_key_and_reference_never_the_secret(
    tmp_path: Path, secrets_file: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config({"pw": "${file:db.properties:passwd}"}, _providers(tmp_path))
    assert caught.value.key == "pw"
    assert "${file:db.properties:passwd}" in caught.value.reason
    assert "has no key 'passwd'" in caught.value.reason
    assert SECRET not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\{file:nowhere\.txt\} cannot be resolved: cannot "):
        resolve_config({"k": "${file:nowhere.txt}"}, _providers(tmp_path))


def test_unknown_provider_is_an_error_not_left_in_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config provider 'vault' \(env, file\)"):
        resolve_config({"k": "${vault:secret/db}"}, _providers(tmp_path))


def test_all_failing_keys_are_reported(tmp_path: Path) -> None:
    config = {"a": "${env:A}", "ok": "${env:OK}", "b": "${file:missing:k}"}
    with pytest.raises(ConfigError) as caught:
        resolve_config(config, _providers(tmp_path, {"OK": SECRET}))
    assert caught.value.key == "a"
    assert "(also b: ${file:missing:k}" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_injected_provider(tmp_path: Path) -> None:
    class Vault:
        def get(self, argument: str) -> str:
            if argument != "db/password":
                raise ProviderLookupError(f"no secret at {argument!r}")
            return SECRET

    resolved = resolve_config({"pw": "${vault:db/password}"}, {"vault": Vault()})
    assert resolved.values["pw"] == SECRET
    with pytest.raises(ConfigError, match="no secret at 'db/other'"):
        resolve_config({"pw": "${vault:db/other}"}, {"vault": Vault()})


def test_allowed_dirs_confine_file_reads(tmp_path: Path, secrets_file: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "ok.txt").write_text("fine")
    provider = FileProvider(allowed_dirs=[inside])
    assert provider.get(str(inside / "ok.txt")) == "fine"
    with pytest.raises(ProviderLookupError, match="outside the allowed directories"):
        provider.get(f"{secrets_file}:password")
    with pytest.raises(ProviderLookupError, match="outside the allowed directories"):
        provider.get(str(inside / ".." / "db.properties"))


def test_default_providers_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMCONNECT_TEST_SECRET", SECRET)
    resolved = resolve_config({"k": "${env:OMCONNECT_TEST_SECRET}"}, default_providers())
    assert resolved.values["k"] == SECRET
    assert sorted(default_providers({})) == ["env", "file"]


def test_resolved_secret_keys_are_hidden_by_redact(tmp_path: Path) -> None:
    config = {"connection.url": "jdbc:x://${env:HOST}/db", "topic": "t"}
    resolved = resolve_config(config, _providers(tmp_path, {"HOST": "10.0.0.5"}))
    shown = redact(resolved.values, secret_keys=set(resolved.secret_keys))
    assert shown == {"connection.url": HIDDEN, "topic": "t"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1\nb = 2\nc:3\nd 4\n", {"a": "1", "b": "2", "c": "3", "d": "4"}),
        ("# comment\n! also comment\n\n   \nk=v", {"k": "v"}),
        ("k=a=b:c", {"k": "a=b:c"}),
        ("k=", {"k": ""}),
        ("lonely", {"lonely": ""}),
        ("k=first\nk=second", {"k": "second"}),
        ("k = long \\\n    value", {"k": "long value"}),
        ("k=ends with backslash\\\\\nj=1", {"k": "ends with backslash\\", "j": "1"}),
        ("tab=a\\tb\nuni=\\u00e9t\\u00E9", {"tab": "a\tb", "uni": "été"}),
        ("my\\=key=v\nsp\\ ace=w", {"my=key": "v", "sp ace": "w"}),
        ("  indented = x  ", {"indented": "x  "}),  # Java keeps trailing whitespace
        ("k=a \\\n", {"k": "a "}),
    ],
)
def test_parse_properties(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected
