"""Config providers: secrets referenced from configs instead of written into them.

A string config value may contain references ``${provider:argument}``, Kafka
Connect's ConfigProvider idea:

- ``${env:VAR}``: the environment variable ``VAR``;
- ``${file:path:key}``: the value of ``key`` in a ``key=value`` properties file;
- ``${file:path}``: the whole file's content, stripped of surrounding whitespace.

For ``file`` the key is what follows the *last* colon, so a path may contain colons
but a key may not (as in Java properties files, where ``:`` separates key and value).
``$${`` stands for a literal ``${``. A reference may be part of a longer value
(``jdbc:mysql://${env:DB_HOST}:3306/app``).

The runtime stores and shows configs *unresolved* and resolves them only to start a
connector or task. `resolve_config` is pure: the providers come in as a mapping, so
tests inject their own. Every key whose value used a provider is reported back in
`ResolvedConfig.secret_keys`; the runtime never logs those values and shows them as
``[hidden]`` (pass them to `omconnect.connect.config.redact`). Error messages name the
config key and the reference, never a resolved value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from omconnect.errors import ConfigError

REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z0-9_.-]+):([^}]+)\}")
"""``${name:argument}``; group 1 is the escaping ``$`` of ``$${...}``."""


class ProviderLookupError(LookupError):
    """A provider cannot resolve a reference; the message says why, without secrets."""


class ConfigProvider(Protocol):
    """Resolves the ``argument`` of ``${name:argument}`` to its value."""

    def get(self, argument: str) -> str:
        """The referenced value; `ProviderLookupError` (or `OSError`) if it is missing."""
        ...


@dataclass(frozen=True, slots=True)
class EnvProvider:
    """``${env:VAR}``: variables of ``environ`` (pass ``os.environ`` in production)."""

    environ: Mapping[str, str]

    def get(self, argument: str) -> str:
        """The variable ``argument``; `ProviderLookupError` if it is not set."""
        value = self.environ.get(argument)
        if value is None:
            raise ProviderLookupError(f"environment variable {argument!r} is not set")
        return value


@dataclass(frozen=True, slots=True)
class FileProvider:
    """``${file:path:key}`` and ``${file:path}``. Relative paths are relative to
    ``base_dir``. With ``allowed_dirs`` set, only files under one of them may be read
    (so a config submitted over REST cannot read any file the worker can)."""

    base_dir: Path = Path(".")
    allowed_dirs: Sequence[Path] | None = None

    def get(self, argument: str) -> str:
        """The key's value (``path:key``) or the stripped file content (``path``)."""
        path_text, sep, key = argument.rpartition(":")
        if not sep:
            return self._read(argument).strip()
        properties = parse_properties(self._read(path_text))
        if key not in properties:
            raise ProviderLookupError(f"file {path_text!r} has no key {key!r}")
        return properties[key]

    def _read(self, path_text: str) -> str:
        path = (self.base_dir / path_text).resolve()
        if self.allowed_dirs is not None and not any(
            path.is_relative_to(Path(d).resolve()) for d in self.allowed_dirs
        ):
            raise ProviderLookupError(f"file {path_text!r} is outside the allowed directories")
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProviderLookupError(f"cannot read file {path_text!r}: {exc.strerror}") from None


def default_providers(
    environ: Mapping[str, str] | None = None, allowed_dirs: Sequence[Path] | None = None
) -> dict[str, ConfigProvider]:
    """The built-in providers ``env`` (``os.environ`` unless given) and ``file``."""
    return {
        "env": EnvProvider(os.environ if environ is None else environ),
        "file": FileProvider(allowed_dirs=allowed_dirs),
    }


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A config with every reference replaced, and the keys that used a provider."""

    values: dict[str, Any]
    secret_keys: frozenset[str]


def resolve_config(
    config: Mapping[str, Any], providers: Mapping[str, ConfigProvider]
) -> ResolvedConfig:
    """Replace the references in the string values of ``config``; other values pass
    through unchanged. `ConfigError` names the first key that cannot be resolved and
    its reference (every failing key in the message when there are several)."""
    values: dict[str, Any] = {}
    secret: set[str] = set()
    errors: list[ConfigError] = []
    for key, value in config.items():
        if not isinstance(value, str) or "${" not in value:
            values[key] = value
            continue
        try:
            values[key], used = _resolve_value(key, value, providers)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if used:
            secret.add(key)
    if errors:
        first = errors[0]
        more = "; ".join(str(e) for e in errors[1:])
        raise ConfigError(first.key, first.reason + (f" (also {more})" if more else ""))
    return ResolvedConfig(values, frozenset(secret))


def has_references(value: Any) -> bool:
    """Whether ``value`` is a string with at least one unescaped reference."""
    return isinstance(value, str) and any(not m.group(1) for m in REFERENCE.finditer(value))


def _resolve_value(
    key: str, value: str, providers: Mapping[str, ConfigProvider]
) -> tuple[str, bool]:
    used = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal used
        escaped, name, argument = match.groups()
        if escaped:
            return match.group(0)[1:]
        reference = f"${{{name}:{argument}}}"
        provider = providers.get(name)
        if provider is None:
            known = ", ".join(sorted(providers)) or "none"
            raise ConfigError(key, f"{reference}: unknown config provider {name!r} ({known})")
        try:
            resolved = provider.get(argument)
        except (LookupError, OSError) as exc:
            raise ConfigError(key, f"{reference} cannot be resolved: {exc}") from None
        used = True
        return resolved

    return REFERENCE.sub(substitute, value), used


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java-style properties file: ``key=value``, ``key: value`` or ``key value``
    lines; ``#`` and ``!`` comments; a trailing backslash continues a line; escapes
    ``\\t \\n \\r \\f \\\\ \\=`` ``\\:`` and ``\\uXXXX``. A later key wins."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip()
        key, value = _split_property(line)
        out[_unescape(key)] = _unescape(value)
    return out


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1  # an odd run of backslashes escapes the line end


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            i += 2
            continue
        if char in "=:" or char.isspace():
            break
        i += 1
    key, rest = line[:i], line[i:].lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return key, rest


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)
