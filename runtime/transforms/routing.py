"""RegexRouter and TimestampRouter: change the topic (queue) a record goes to.

Regular expressions are Java's as Kafka uses them, run by Python's `re`: the common
syntax is the same, and Java's named groups ``(?<name>...)`` are accepted. A
replacement refers to groups as Java's ``Matcher.replaceFirst`` does: ``$1``,
``${name}``, and ``\\$`` for a literal dollar.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from pydantic import Field

from omconnect.connect.config import PluginConfig
from omconnect.connect.records import ConnectRecord
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError, Transformation
from omconnect.runtime.transforms.dateformat import DateFormat

R = TypeVar("R", bound=ConnectRecord)

_JAVA_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z])")


def compile_java_regex(text: str, key: str) -> re.Pattern[str]:
    """``text`` (a Java regex) compiled; `ConfigError` on ``key`` when invalid."""
    try:
        return re.compile(_JAVA_NAMED_GROUP.sub("(?P<", text))
    except re.error as exc:
        raise ConfigError(key, f"invalid regular expression {text!r}: {exc}") from None


def java_replacement(template: str, pattern: re.Pattern[str]) -> Callable[[re.Match[str]], str]:
    """A `re.sub` replacement function for a Java replacement string; ValueError for
    a dangling ``\\`` or ``$`` or a reference to a group ``pattern`` lacks."""
    literals: list[str] = []  # the text around each group reference
    groups: list[int | str] = []
    literal = ""
    i = 0
    while i < len(template):
        char = template[i]
        i += 1
        if char == "\\":
            if i >= len(template):
                raise ValueError("character to be escaped is missing")
            literal, i = literal + template[i], i + 1
            continue
        if char != "$":
            literal += char
            continue
        if i >= len(template):
            raise ValueError("illegal group reference: group index is missing")
        literals.append(literal)
        literal = ""
        if template[i] == "{":
            end = template.find("}", i)
            if end < 0:
                raise ValueError("named capturing group is missing trailing '}'")
            name = template[i + 1 : end]
            if name not in pattern.groupindex:
                raise ValueError(f"no group with name {{{name}}}")
            groups.append(name)
            i = end + 1
            continue
        if not template[i].isdigit():
            raise ValueError(f"illegal group reference ${template[i]}")
        # Java reads more digits only while they still name an existing group.
        number, i = int(template[i]), i + 1
        while (
            i < len(template)
            and template[i].isdigit()
            and number * 10 + int(template[i]) <= pattern.groups
        ):
            number, i = number * 10 + int(template[i]), i + 1
        if number > pattern.groups:
            raise ValueError(f"no group {number}")
        groups.append(number)
    literals.append(literal)

    def expand(match: re.Match[str]) -> str:
        out = [literals[0]]
        for group, text in zip(groups, literals[1:], strict=True):
            out.append(match.group(group) or "")
            out.append(text)
        return "".join(out)

    return expand


class RegexRouterConfig(PluginConfig):
    """Kafka's RegexRouter keys."""

    regex: str = Field(description="Regular expression to use for matching.")
    replacement: str = Field(description="Replacement string.")


class RegexRouter(Transformation[RegexRouterConfig]):
    """When the whole topic matches ``regex``, replace the first match with
    ``replacement`` (Java's ``Matcher.matches()`` then ``replaceFirst``); other topics
    are left alone."""

    config_model = RegexRouterConfig

    def setup(self) -> None:
        """Compile the regex and the replacement."""
        self._pattern = compile_java_regex(self.config.regex, "regex")
        try:
            self._replace = java_replacement(self.config.replacement, self._pattern)
        except ValueError as exc:
            raise ConfigError("replacement", str(exc)) from None

    def apply(self, record: R) -> R | None:
        """The record with its new topic."""
        if self._pattern.fullmatch(record.topic) is None:
            return record
        return record.new_record(topic=self._pattern.sub(self._replace, record.topic, count=1))


class TimestampRouterConfig(PluginConfig):
    """Kafka's TimestampRouter keys."""

    topic_format: str = Field(
        "${topic}-${timestamp}",
        alias="topic.format",
        description="Format string which can contain ${topic} and ${timestamp} as placeholders.",
    )
    timestamp_format: str = Field(
        "yyyyMMdd",
        alias="timestamp.format",
        description="Format for the timestamp, compatible with java.text.SimpleDateFormat (UTC).",
    )


class TimestampRouter(Transformation[TimestampRouterConfig]):
    """Route to ``topic.format`` with ``${topic}`` and ``${timestamp}`` (the record's
    timestamp in ``timestamp.format``) filled in; a record without a timestamp is an
    error."""

    config_model = TimestampRouterConfig

    def setup(self) -> None:
        """Compile the timestamp format."""
        try:
            self._format = DateFormat(self.config.timestamp_format)
        except ValueError as exc:
            raise ConfigError("timestamp.format", str(exc)) from None

    def apply(self, record: R) -> R | None:
        """The record with its new topic."""
        if record.timestamp is None:
            raise DataError(f"timestamp missing on record for topic {record.topic!r}")
        stamp = self._format.format(record.timestamp)
        topic = self.config.topic_format.replace("${topic}", record.topic).replace(
            "${timestamp}", stamp
        )
        return record.new_record(topic=topic)
