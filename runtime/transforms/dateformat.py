"""``java.text.SimpleDateFormat`` patterns, in UTC, for TimestampConverter's
``format`` and TimestampRouter's ``timestamp.format``.

Supported letters: ``G y M L d D E u a H k K h m s S z Z X`` with Java's meaning
and counts (``MMM`` → ``Jan``, ``MMMM`` → ``January``, ``yy`` → two digits, ``SSS``
→ milliseconds), text in single quotes, ``''`` for a quote. English names. Week-based
letters (``Y w W F``) are rejected at configure time rather than guessed.

Parsing follows ``DateFormat.parse``: the text must match from the start; text after
the match is ignored; numeric fields that abut (``yyyyMMdd``) take exactly their
width; two-digit years fall within 80 years before and 20 after today. Unlike Java's
lenient default, out-of-range fields (month 13) are an error, not a roll-over.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from omconnect.runtime.transforms.values import datetime_from_millis, to_millis

_MONTHS = [
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_SUPPORTED = set("GyMLdDEuaHkKhmsSzZX")
_WEEK_BASED = set("YwWF")
_NUMERIC = set("yMLdDuHkKhmsS")


@dataclass(frozen=True, slots=True)
class _Token:
    letter: str  # "" for literal text
    count: int = 0
    text: str = ""

    @property
    def numeric(self) -> bool:
        return self.letter in _NUMERIC and not (self.letter in "ML" and self.count >= 3)


def _tokenize(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    literal = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            if pattern.startswith("''", i):
                literal, i = literal + "'", i + 2
                continue
            i += 1
            while True:
                if i >= len(pattern):
                    raise ValueError(f"unterminated quote in pattern {pattern!r}")
                if pattern.startswith("''", i):
                    literal, i = literal + "'", i + 2
                elif pattern[i] == "'":
                    i += 1
                    break
                else:
                    literal, i = literal + pattern[i], i + 1
            continue
        if char.isascii() and char.isalpha():
            if char in _WEEK_BASED:
                raise ValueError(f"pattern letter {char!r} (week-based) is not supported")
            if char not in _SUPPORTED:
                raise ValueError(f"illegal pattern character {char!r}")
            end = i
            while end < len(pattern) and pattern[end] == char:
                end += 1
            if char == "X" and end - i > 3:
                raise ValueError(f"invalid ISO 8601 zone pattern {'X' * (end - i)!r}")
            if literal:
                tokens.append(_Token("", text=literal))
                literal = ""
            tokens.append(_Token(char, end - i))
            i = end
            continue
        literal, i = literal + char, i + 1
    if literal:
        tokens.append(_Token("", text=literal))
    return tokens


def _names(full: list[str], count: int) -> list[str]:
    return full if count >= 4 else [name[:3] for name in full]


def _format_token(token: _Token, moment: dt.datetime) -> str:
    letter, count = token.letter, token.count
    numbers = {
        "d": moment.day,
        "D": moment.timetuple().tm_yday,
        "u": moment.isoweekday(),
        "H": moment.hour,
        "k": moment.hour or 24,
        "K": moment.hour % 12,
        "h": moment.hour % 12 or 12,
        "m": moment.minute,
        "s": moment.second,
        "S": moment.microsecond // 1000,
    }
    if letter in numbers:
        return str(numbers[letter]).zfill(count)
    if letter == "y":
        return f"{moment.year % 100:02d}" if count == 2 else str(moment.year).zfill(count)
    if letter in "ML":
        if count >= 3:
            return _names(_MONTHS, count)[moment.month - 1]
        return str(moment.month).zfill(count)
    if letter == "E":
        return _names(_DAYS, count)[moment.weekday()]
    texts = {
        "G": "AD",
        "a": "AM" if moment.hour < 12 else "PM",
        "z": "Coordinated Universal Time" if count >= 4 else "UTC",
        "Z": "+0000",
        "X": "Z",
    }
    return texts[letter]


def _pattern_for(token: _Token, abuts_number: bool) -> str:
    if not token.letter:
        return re.escape(token.text)
    if token.numeric:
        return rf"(\d{{{token.count}}})" if abuts_number else r"(\d+)"
    choices = {
        "M": _MONTHS + _names(_MONTHS, 3),
        "L": _MONTHS + _names(_MONTHS, 3),
        "E": _DAYS + _names(_DAYS, 3),
        "a": ["AM", "PM"],
        "G": ["AD", "BC"],
    }
    if token.letter in choices:
        return "(" + "|".join(choices[token.letter]) + ")"
    if token.letter == "z":
        return r"(GMT[+-]\d{1,2}:\d{2}|UTC|GMT|[+-]\d{4})"
    if token.letter == "Z":
        return r"([+-]\d{4}|Z)"
    return r"(Z|[+-]\d{2}(?::?\d{2})?)"


def _offset_minutes(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        return 0
    hours, minutes = (
        (int(digits[:-2] or 0), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    )
    return (-1 if "-" in text else 1) * (hours * 60 + minutes)


def _full_year(two_digits: int) -> int:
    start = dt.date.today().year - 80
    year = start // 100 * 100 + two_digits
    return year + 100 if year < start else year


class DateFormat:
    """A compiled SimpleDateFormat pattern; ValueError from the constructor when the
    pattern is invalid or uses an unsupported letter."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._tokens = _tokenize(pattern)
        parts = []
        for i, token in enumerate(self._tokens):
            following = self._tokens[i + 1] if i + 1 < len(self._tokens) else None
            parts.append(_pattern_for(token, following is not None and following.numeric))
        self._regex = re.compile("".join(parts), re.IGNORECASE)
        self._fields = [t for t in self._tokens if t.letter]

    def format(self, millis: int) -> str:
        """``millis`` (since the epoch) in this pattern, in UTC."""
        moment = datetime_from_millis(millis)
        return "".join(t.text if not t.letter else _format_token(t, moment) for t in self._tokens)

    def parse(self, text: str) -> int:
        """Milliseconds since the epoch of ``text``; ValueError when it does not match."""
        match = self._regex.match(text)
        if match is None:
            raise ValueError(f"{text!r} does not match pattern {self.pattern!r}")
        fields: dict[str, int] = {}
        offset = 0
        for token, value in zip(self._fields, match.groups(), strict=True):
            letter = token.letter
            if letter in "ML" and token.count >= 3:
                abbreviations = [name[:3].lower() for name in _MONTHS]
                fields["M"] = abbreviations.index(value[:3].lower()) + 1
            elif letter == "y" and token.count <= 2 and len(value) == 2:
                fields["y"] = _full_year(int(value))
            elif token.numeric:
                fields["M" if letter == "L" else letter] = int(value)
            elif letter == "a":
                fields["a"] = 12 if value.upper() == "PM" else 0
            elif letter in "zZX":
                offset = _offset_minutes(value)
        hour = fields.get("H", 0)
        if "k" in fields:
            hour = fields["k"] % 24
        if "h" in fields or "K" in fields:
            hour = fields.get("h", fields.get("K", 0)) % 12 + fields.get("a", 0)
        year = fields.get("y", 1970)
        if "D" in fields and "M" not in fields and "d" not in fields:
            day = dt.date(year, 1, 1) + dt.timedelta(days=fields["D"] - 1)
        else:
            day = dt.date(year, fields.get("M", 1), fields.get("d", 1))
        moment = dt.datetime(
            day.year,
            day.month,
            day.day,
            hour,
            fields.get("m", 0),
            fields.get("s", 0),
            tzinfo=dt.UTC,
        )
        moment += dt.timedelta(milliseconds=fields.get("S", 0), minutes=-offset)
        return to_millis(moment)
