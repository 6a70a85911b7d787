"""Binary encoding of a `Message`: compact, versioned, CRC-checked. No pickle.

Layout (little-endian), documented again in ``docs/protocol.md``::

    offset  size  field
    0       4     total length of this encoding, these 4 bytes included
    4       4     CRC-32C of bytes [8, total)
    8       1     format version (1)
    9       1     flags: bit 0 = the message has an expire_time (so the broker
                  looks for it only in messages that have one)
    10      4     header length H
    14      H     headers: a msgpack array of the values of `FIELDS`, in that order
                  (the headers in `Message`'s field order, properties a map)
    14+H    ...   body

A fixed-position array rather than a map of present headers: both encoding and
decoding are one C call plus one constructor call, about twice as fast as a map
(the cost is ~20 bytes of defaults per message). Newer writers may only append
fields; a decoder ignores fields past the ones it knows.

The broker stores this encoding unchanged inside its commit-log records and serves
it back, so a message is encoded once by the producer and decoded once by the
consumer. `decode` never returns a message whose CRC fails.

Format version 2 is a batch of messages in one encoding with the same first 14
bytes (`omconnect.batch_codec`); this module reads and writes version 1 only.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterator, Sequence

import crc32c
import msgpack

from omconnect.errors import ConfigError, CorruptDataError, MessageTooLargeError
from omconnect.message import Message

FORMAT_VERSION = 1
_PREFIX = struct.Struct("<IIBBI")
PREFIX_SIZE = _PREFIX.size  # 14
FLAG_EXPIRES = 0x01

# The header fields in `Message`'s constructor order (after ``body``). Part of the
# format: never reorder, only append (and only with a default in `Message`).
FIELDS: tuple[str, ...] = tuple(
    name for name in Message.__dataclass_fields__ if name not in ("body", "receipt")
)
_GET_FIELDS = operator.attrgetter(*FIELDS)  # every header in one C call
_EXPIRE_INDEX = FIELDS.index("expire_time")
_VERSION_FLAGS_LENGTH = struct.Struct("<BBI")
_LENGTH_AND_CRC = struct.Struct("<II")

_packb = msgpack.Packer(use_bin_type=True).pack
_crc = crc32c.crc32c


def encode(message: Message) -> bytes:
    """Encode ``message``; the result carries its own length and CRC."""
    header_bytes = _packb(_GET_FIELDS(message))
    flags = FLAG_EXPIRES if message.expire_time else 0
    tail = b"".join(
        (
            _VERSION_FLAGS_LENGTH.pack(FORMAT_VERSION, flags, len(header_bytes)),
            header_bytes,
            message.body,
        )
    )
    return _LENGTH_AND_CRC.pack(8 + len(tail), _crc(tail)) + tail


def decode(data: bytes | bytearray | memoryview, *, verify: bool = True) -> Message:
    """Decode one encoding that fills ``data`` exactly.

    Raises `CorruptDataError` if the length, version or CRC do not match.
    """
    view = memoryview(data)
    if len(view) < PREFIX_SIZE:
        raise CorruptDataError(f"message encoding too short: {len(view)} bytes")
    total, crc, version, _, header_len = _PREFIX.unpack_from(view)
    if total != len(view):
        raise CorruptDataError(f"message length field {total} != {len(view)} bytes")
    if version != FORMAT_VERSION:
        raise CorruptDataError(f"unknown message format version {version}")
    if verify and _crc(view[8:]) != crc:
        raise CorruptDataError("message CRC mismatch")
    body_start = PREFIX_SIZE + header_len
    if body_start > total:
        raise CorruptDataError("message header length exceeds the message")
    try:
        values = msgpack.unpackb(view[PREFIX_SIZE:body_start], strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptDataError(f"message headers do not parse: {exc}") from exc
    if not isinstance(values, list) or len(values) < len(FIELDS):
        raise CorruptDataError("message headers are not an array of every header field")
    try:
        return Message(bytes(view[body_start:]), *values[: len(FIELDS)])
    except TypeError as exc:
        raise CorruptDataError(f"message headers do not fit: {exc}") from exc


def verify(data: bytes | memoryview) -> int:
    """Check one encoding's length prefix and CRC without decoding; return its length.

    The broker calls this on every message it accepts.
    """
    view = memoryview(data)
    if len(view) < PREFIX_SIZE:
        raise CorruptDataError(f"message encoding too short: {len(view)} bytes")
    total, crc, version, _, _ = _PREFIX.unpack_from(view)
    if total < PREFIX_SIZE or total > len(view):
        raise CorruptDataError(f"message length field {total} does not fit {len(view)} bytes")
    if version != FORMAT_VERSION:
        raise CorruptDataError(f"unknown message format version {version}")
    if _crc(view[8:total]) != crc:
        raise CorruptDataError("message CRC mismatch")
    return int(total)


def verify_batch(messages: Sequence[object], max_bytes: int) -> list[bytes]:
    """Check many encodings at once (each must fill its element exactly): types,
    size limit, length field, version and CRC. Returns them as ``bytes``.

    The broker's hot path on every append, so the checks are inlined.
    `ConfigError` for a non-bytes element, `MessageTooLargeError` over ``max_bytes``,
    `CorruptDataError` for a bad length, version or CRC.
    """
    out: list[bytes] = []
    append = out.append
    unpack_from = _PREFIX.unpack_from
    crc = _crc
    for message in messages:
        if type(message) is not bytes:
            if not isinstance(message, bytes | bytearray | memoryview):
                raise ConfigError("messages", "each message must be bytes")
            message = bytes(message)
        size = len(message)
        if size > max_bytes:
            raise MessageTooLargeError(
                f"message of {size} bytes exceeds max_message_bytes ({max_bytes})"
            )
        if size < PREFIX_SIZE:
            raise CorruptDataError(f"message encoding too short: {size} bytes")
        total, expected_crc, version, _, _ = unpack_from(message)
        if total != size:
            raise CorruptDataError(f"message length field {total} != {size} bytes")
        if version != FORMAT_VERSION:
            raise CorruptDataError(f"unknown message format version {version}")
        if crc(memoryview(message)[8:]) != expected_crc:
            raise CorruptDataError("message CRC mismatch")
        append(message)
    return out


def peek_expire_time(data: bytes | memoryview) -> int:
    """The ``expire_time`` header of one encoding (0 if unset), without building the
    message: the header map is walked and other values skipped. No CRC check (the
    broker calls it on bytes it has verified). `CorruptDataError` if the header does
    not parse."""
    view = memoryview(data)
    if len(view) < PREFIX_SIZE:
        raise CorruptDataError(f"message encoding too short: {len(view)} bytes")
    _, _, _, flags, header_len = _PREFIX.unpack_from(view)
    if not flags & FLAG_EXPIRES:
        return 0
    unpacker = msgpack.Unpacker(strict_map_key=False)
    unpacker.feed(view[PREFIX_SIZE : PREFIX_SIZE + header_len])
    try:
        if unpacker.read_array_header() <= _EXPIRE_INDEX:
            raise CorruptDataError("message headers are too short")
        for _ in range(_EXPIRE_INDEX):
            unpacker.skip()
        value = unpacker.unpack()
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptDataError(f"message headers do not parse: {exc}") from exc
    return value if isinstance(value, int) else 0


def split(data: bytes | memoryview) -> Iterator[memoryview]:
    """Yield each encoding from a buffer of concatenated encodings (no CRC check)."""
    view = memoryview(data)
    pos = 0
    end = len(view)
    while pos < end:
        if end - pos < 4:
            raise CorruptDataError("truncated message batch")
        (total,) = struct.unpack_from("<I", view, pos)
        if total < PREFIX_SIZE or pos + total > end:
            raise CorruptDataError(f"bad message length {total} at batch position {pos}")
        yield view[pos : pos + total]
        pos += total
