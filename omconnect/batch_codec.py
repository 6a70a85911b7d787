"""Binary encoding of a batch of `Message`s as one unit: format version 2 of the codec.

A producer's batch for one partition travels and is stored as one record (Kafka's
record batch, RocketMQ's MessageBatch): the headers that all messages share are
written once, the bodies are concatenated, and one CRC covers the whole batch.

Layout (little-endian), documented again in ``docs/protocol.md``::

    offset  size  field
    0       4     total length of this encoding, these 4 bytes included
    4       4     CRC-32C of bytes [8, total)
    8       1     format version (2: a batch)
    9       1     flags: bit 0 = some message has an expire_time
    10      4     header length H
    14      4     message count N (at least 1)
    18      H     headers: a msgpack array
                  [shared, varying, columns, body_lengths]
                  shared:  the values of `codec.FIELDS` of the first message
                  varying: the indexes (into FIELDS) of the fields whose value is
                           not the same in every message, ascending
                  columns: for each varying index, an array of N values
                  body_lengths: N body lengths
    18+H    ...   the N bodies, concatenated

A field not listed in ``varying`` has the value ``shared[i]`` in every message. As in
version 1, newer writers may only append fields; a decoder ignores ``shared``
entries and varying indexes past the fields it knows.

The prefix is version 1's plus the count, so `codec.verify`-style checks (length,
version, CRC) read both. Encoding and decoding cost a few C calls for the batch plus
one constructor call per message.
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Iterable, Sequence

import crc32c
import msgpack

from omconnect import codec
from omconnect.errors import CorruptDataError
from omconnect.message import Message

BATCH_VERSION = 2
Buffer = bytes | bytearray | memoryview
_PREFIX = struct.Struct("<IIBBII")
PREFIX_SIZE = _PREFIX.size  # 18
_VERSION_FLAGS_LENGTH_COUNT = struct.Struct("<BBII")
_LENGTH_AND_CRC = struct.Struct("<II")
_PLACEHOLDER = bytes(_LENGTH_AND_CRC.size)
_FIELD_COUNT = len(codec.FIELDS)
_PROPERTIES_INDEX = codec.FIELDS.index("properties")
_EXPIRE_INDEX = codec.FIELDS.index("expire_time")
_PARTITION_INDEX = codec.FIELDS.index("partition")
_OFFSET_INDEX = codec.FIELDS.index("offset")
_STORE_TIMESTAMP_INDEX = codec.FIELDS.index("store_timestamp")
_GET_BODY = operator.attrgetter("body")
_INT_ONLY = {int}
_crc = crc32c.crc32c
_packb = msgpack.Packer(use_bin_type=True).pack


def encode_batch(messages: Sequence[Message]) -> bytearray:
    """Encode ``messages`` (at least one) as one batch; the result carries its own
    length and CRC. Header values are compared with ``==`` to find shared ones.
    A bytearray, to spare a copy: the caller must not change it."""
    count = len(messages)
    if count == 0:
        raise ValueError("a batch holds at least one message")
    rows = list(map(codec._GET_FIELDS, messages))
    columns = list(zip(*rows, strict=True))
    varying = [i for i, column in enumerate(columns) if column.count(column[0]) != count]
    bodies = list(map(_GET_BODY, messages))
    header = _packb([rows[0], varying, [columns[i] for i in varying], list(map(len, bodies))])
    flags = codec.FLAG_EXPIRES if any(columns[_EXPIRE_INDEX]) else 0
    # One copy of the bodies: joined after a placeholder for the length and CRC,
    # which are then written in place (a large batch is costly to copy again).
    encoded = bytearray().join(
        (
            _PLACEHOLDER,
            _VERSION_FLAGS_LENGTH_COUNT.pack(BATCH_VERSION, flags, len(header), count),
            header,
            *bodies,
        )
    )
    _LENGTH_AND_CRC.pack_into(encoded, 0, len(encoded), _crc(memoryview(encoded)[8:]))
    return encoded


def batch_count(data: Buffer) -> int:
    """The message count of a batch encoding, after checking its length field,
    version and CRC (the broker's check on arrival; the headers are not parsed)."""
    view = memoryview(data)
    if len(view) < PREFIX_SIZE:
        raise CorruptDataError(f"batch encoding too short: {len(view)} bytes")
    total, crc, version, _, header_len, count = _PREFIX.unpack_from(view)
    if total != len(view):
        raise CorruptDataError(f"batch length field {total} != {len(view)} bytes")
    if version != BATCH_VERSION:
        raise CorruptDataError(f"not a batch encoding (format version {version})")
    if count < 1 or PREFIX_SIZE + header_len > total:
        raise CorruptDataError("batch count or header length out of range")
    if _crc(view[8:]) != crc:
        raise CorruptDataError("batch CRC mismatch")
    return int(count)


def is_batch(data: Buffer) -> bool:
    """Whether ``data`` is a batch encoding (version 2) rather than one message's."""
    return len(data) >= PREFIX_SIZE and data[8] == BATCH_VERSION


def check_batch(data: Buffer) -> int:
    """`batch_count`, plus a check that the headers parse and the body lengths add
    up (what the broker checks before storing a batch). Returns the count."""
    view = memoryview(data)
    count = batch_count(view)
    body_start = PREFIX_SIZE + _PREFIX.unpack_from(view)[4]
    lengths = _parse_header(view[PREFIX_SIZE:body_start], count)[3]
    if sum(lengths) != len(view) - body_start:
        raise CorruptDataError("batch body lengths do not add up to its bodies")
    return count


def batch_flags(data: Buffer) -> int:
    """The flags byte of a batch encoding (no checks beyond its size)."""
    if len(data) < PREFIX_SIZE:
        raise CorruptDataError(f"batch encoding too short: {len(data)} bytes")
    return int(data[9])


def decode_batch(data: Buffer, *, verify: bool = True) -> list[Message]:
    """Decode one batch encoding that fills ``data`` exactly into its messages.

    Each message gets its own ``properties`` dict. Raises `CorruptDataError` if the
    length, version, CRC (unless ``verify`` is False) or headers are wrong.
    """
    bodies, args = _columns(data, verify)
    return _build(bodies, args)


def decode_delivered(
    data: Buffer, queue: str, partition: int, offset: int, store_timestamp: int
) -> list[Message]:
    """The messages of a stored version-1 or version-2 encoding (no CRC check: the
    broker checked it) as a consumer hands them out: ``partition``, ``offset``
    (counting up from ``offset``), ``store_timestamp`` and the receipt
    ``(queue, partition, offset)`` set. `CorruptDataError` if it does not decode."""
    if not is_batch(data):
        message = codec.decode(data, verify=False)
        message.partition, message.offset = partition, offset
        message.store_timestamp = store_timestamp
        message.receipt = (queue, partition, offset)
        return [message]
    bodies, args = _columns(data, False)
    count = len(bodies)
    args[_PARTITION_INDEX] = itertools.repeat(partition, count)
    args[_OFFSET_INDEX] = range(offset, offset + count)
    args[_STORE_TIMESTAMP_INDEX] = itertools.repeat(store_timestamp, count)
    receipts = zip(
        itertools.repeat(queue, count),
        itertools.repeat(partition, count),
        range(offset, offset + count),
        strict=True,
    )
    return _build(bodies, [*args, receipts])


def _columns(data: Buffer, verify: bool) -> tuple[list[bytes], list[Iterable[object]]]:
    """The bodies of a batch and one iterable of values per `codec.FIELDS` entry."""
    view = memoryview(data)
    if verify:
        count = batch_count(view)
    else:
        if len(view) < PREFIX_SIZE:
            raise CorruptDataError(f"batch encoding too short: {len(view)} bytes")
        count = _PREFIX.unpack_from(view)[5]
    body_start = PREFIX_SIZE + _PREFIX.unpack_from(view)[4]
    shared, varying, columns, lengths = _parse_header(view[PREFIX_SIZE:body_start], count)
    bounds = list(itertools.accumulate(lengths, initial=body_start))
    if bounds[-1] != len(view):
        raise CorruptDataError("batch body lengths do not add up to its bodies")
    source = data if type(data) is bytes else bytes(view)  # slices of bytes are bytes
    bodies = list(map(source.__getitem__, map(slice, bounds[:-1], bounds[1:])))
    args: list[Iterable[object]] = [
        itertools.repeat(value, count) for value in shared[:_FIELD_COUNT]
    ]
    for index, column in zip(varying, columns, strict=True):
        if index < _FIELD_COUNT:
            args[index] = column
    if _PROPERTIES_INDEX not in varying:  # never one dict shared by every message
        properties = shared[_PROPERTIES_INDEX]
        if not isinstance(properties, dict):
            raise CorruptDataError("batch properties header is not a map")
        args[_PROPERTIES_INDEX] = map(dict, itertools.repeat(properties, count))
    return bodies, args


def _build(bodies: list[bytes], args: list[Iterable[object]]) -> list[Message]:
    """`Message(body, *fields)` for each body, the fields taken from ``args``."""
    try:
        return list(map(Message, bodies, *args))
    except TypeError as exc:
        raise CorruptDataError(f"batch headers do not fit: {exc}") from exc


def _parse_header(
    header: memoryview, count: int
) -> tuple[list[object], list[int], list[list[object]], list[int]]:
    """The four parts of a batch header, shape-checked against ``count``."""
    try:
        value = msgpack.unpackb(header, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptDataError(f"batch headers do not parse: {exc}") from exc
    if not isinstance(value, list) or len(value) < 4:
        raise CorruptDataError("batch headers are not a 4-part array")
    shared, varying, columns, lengths = value[:4]
    if (
        not isinstance(shared, list)
        or len(shared) < _FIELD_COUNT
        or not isinstance(varying, list)
        or not isinstance(columns, list)
        or len(columns) != len(varying)
        or not all(isinstance(c, list) and len(c) == count for c in columns)
        or not isinstance(lengths, list)
        or len(lengths) != count
        or set(map(type, lengths)) != _INT_ONLY  # in C: no Python step per message
        or min(lengths) < 0
    ):
        raise CorruptDataError("batch headers do not match the batch's message count")
    if varying and not all(type(i) is int and i >= 0 for i in varying):
        raise CorruptDataError("batch varying-field indexes are not field indexes")
    return shared, varying, columns, lengths


def decode_any(data: Buffer, *, verify: bool = True) -> list[Message]:
    """The messages of a version-1 (one message) or version-2 (batch) encoding."""
    if len(data) > 8 and data[8] == BATCH_VERSION:
        return decode_batch(data, verify=verify)
    return [codec.decode(data, verify=verify)]


def split_batch(data: Buffer) -> list[bytes]:
    """Re-encode a batch's messages one by one (version 1), in order. For callers
    that need one encoding per message (the per-message `read`)."""
    return [codec.encode(message) for message in decode_batch(data, verify=False)]
