"""Frames in parts: requests and responses that carry large message encodings are
sent as several buffers back to back (``socket.sendmsg``, one transport write each),
so an encoding is never copied into a frame. The bytes on the wire are exactly those
`omconnect.broker.protocol` would build in one piece (``docs/protocol.md``).

Pure, like `protocol`: these functions build bytes and never touch a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from omconnect.broker.api import StoredMessage
from omconnect.broker.protocol import (
    FLAG_RESPONSE,
    HEADER,
    LENGTH_OVERHEAD,
    PROTOCOL_VERSION,
    Op,
    OpSpec,
    response_frame,
)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def request_frame_parts(
    op: Op, request_id: int, args: Sequence[Any], blob: bytes | bytearray
) -> list[bytes | bytearray]:
    """`request_frame` for ``[*args, blob]``, as two parts to send back to back: the
    frame header with the msgpack array and ``args``, then ``blob`` itself, so a
    large ``blob`` (a batch) is never copied into a frame. ``args`` are at most 14."""
    head = bytearray([0x90 | (len(args) + 1)])
    for arg in args:
        head += _pack(arg)
    head += _bin_header(len(blob))
    frame_head = (
        HEADER.pack(LENGTH_OVERHEAD + len(head) + len(blob), PROTOCOL_VERSION, op, 0, request_id)
        + head
    )
    return [frame_head, blob]


def response_frame_parts(spec: OpSpec, request_id: int, result: Any) -> list[bytes]:
    """`response_frame` as parts to send back to back. A `Op.READ_BATCHES` answer
    leaves each record's encoding a part of its own (the same bytes `response_frame`
    would hold, without copying the encodings into one frame); others are one part."""
    if spec.op is not Op.READ_BATCHES:
        return [response_frame(spec, request_id, result)]
    records: list[StoredMessage] = result.messages
    parts: list[bytes] = []
    head = bytearray(b"\x92") + _pack(result.next_offset) + _array_header(len(records))
    for record in records:
        head += b"\x95"  # [partition, offset, store_timestamp, encoded, count]
        head += _pack(record.partition) + _pack(record.offset) + _pack(record.store_timestamp)
        head += _bin_header(len(record.encoded))
        parts += (bytes(head), record.encoded)
        head = bytearray(_pack(record.count))
    parts.append(bytes(head))
    length = LENGTH_OVERHEAD + sum(map(len, parts))
    header = HEADER.pack(length, PROTOCOL_VERSION, spec.op, FLAG_RESPONSE, request_id)
    parts[0] = header + parts[0]
    return parts


def _bin_header(length: int) -> bytes:
    """The msgpack header of a bin of ``length`` bytes (the shortest, as msgpack's)."""
    if length < 1 << 8:
        return bytes([0xC4, length])
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def _array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` elements."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")
