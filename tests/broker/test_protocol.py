"""The wire protocol's pure encode/decode functions, with no socket in sight."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest

from omconnect.broker.api import (
    HalfMessage,
    KeyValue,
    KvEvent,
    QueueInfo,
    ReadResult,
    StoredMessage,
)
from omconnect.broker.protocol import (
    FLAG_RESPONSE,
    HEADER,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    SPECS,
    BrokerInternalError,
    ErrorCode,
    Op,
    decode_error,
    decode_header,
    decode_request,
    decode_response,
    encode_error,
    encode_frame,
    error_code_of,
    error_frame,
    peek_request_id,
    request_frame,
    response_frame,
)
from omconnect.errors import (
    AlreadyExistsError,
    CompactedError,
    ConfigError,
    ConnectionLostError,
    CorruptDataError,
    FatalError,
    MessageTooLargeError,
    NotFoundError,
    OmConnectError,
    ProtocolError,
    RecordError,
)

MAX = 1 << 20
MSGS = [b"\x00\x01binary\xff", b"", b"x" * 1000]
KV = KeyValue("config/a", b"\x00v", 7, 3, 1_700_000_000_000)

# op -> (request args, result)
SAMPLES: dict[Op, tuple[list[Any], Any]] = {
    Op.PING: ([], None),
    Op.CREATE_NAMESPACE: (["ns"], None),
    Op.DELETE_NAMESPACE: (["ns"], None),
    Op.LIST_NAMESPACES: ([], ["a", "b"]),
    Op.CREATE_QUEUE: (["ns", "q", 4], QueueInfo("ns", "q", 4)),
    Op.DELETE_QUEUE: (["ns", "q"], None),
    Op.LIST_QUEUES: (["ns"], [QueueInfo("ns", "a", 1), QueueInfo("ns", "b", 8)]),
    Op.QUEUE_INFO: (["ns", "q"], QueueInfo("ns", "q", 2)),
    Op.APPEND: (["ns", "q", 1, MSGS], [10, 11, 12]),
    Op.APPEND_DELAYED: (["ns", "q", 0, MSGS, [1, 2, 3]], None),
    Op.PREPARE: (["ns", "grp", "tx-1", "q", 3, MSGS], None),
    Op.END_TRANSACTION: (["ns", "tx-1", True], None),
    Op.TRANSACTION_CHECKS: (
        ["ns", "grp", 500],
        [HalfMessage("tx-1", "q", 3, b"\x01m", 1_700_000_000_123)],
    ),
    Op.READ: (
        ["ns", "q", 2, 5, 100, 1000, 1 << 20],
        ReadResult([StoredMessage(2, 5, 99, b"\x00a"), StoredMessage(2, 6, 100, b"b")], 9),
    ),
    Op.OFFSET_RANGE: (["ns", "q", 0], (3, 17)),
    Op.COMMIT_OFFSETS: (["ns", "g", "q", {0: 5, 3: 2**40}], None),
    Op.COMMITTED_OFFSETS: (["ns", "g", "q"], {0: 5, 3: 2**40}),
    Op.KV_GET: (["ns", "config/a"], KV),
    Op.KV_PUT: (["ns", "k", b"\x00v", 5000], 8),
    Op.KV_CAS: (["ns", "k", b"v", 7, 0], None),
    Op.KV_DELETE: (["ns", "k", 7], True),
    Op.KV_LIST: (["ns", "config/"], [KV, KeyValue("config/b", b"", 9, 9)]),
    Op.KV_WATCH: (
        ["ns", "config/", 4, 2000],
        ([KvEvent("put", "config/a", b"v", 4), KvEvent("delete", "config/b", b"", 5)], 6),
    ),
    Op.APPEND_BATCH: (["ns", "q", 1, b"\x00batch\xff"], 40),
    Op.READ_BATCHES: (
        ["ns", "q", 2, 5, 100, 1000, 1 << 20],
        ReadResult([StoredMessage(2, 3, 99, b"\x00batch", 4), StoredMessage(2, 7, 100, b"b")], 9),
    ),
}


def split(frame: bytes) -> tuple[Any, bytes]:
    header = decode_header(frame, MAX)
    body = frame[HEADER_SIZE:]
    assert len(body) == header.body_length
    return header, body


def test_every_request_opcode_has_a_sample() -> None:
    assert set(SAMPLES) == set(SPECS)


@pytest.mark.parametrize("op", list(SAMPLES), ids=lambda op: op.name)
def test_request_round_trip(op: Op) -> None:
    args, _ = SAMPLES[op]
    header, body = split(request_frame(op, 42, args))
    assert (header.opcode, header.flags, header.request_id) == (op, 0, 42)
    spec, decoded = decode_request(header.opcode, body)
    assert spec.op == op
    assert decoded == args


@pytest.mark.parametrize("op", list(SAMPLES), ids=lambda op: op.name)
def test_response_round_trip(op: Op) -> None:
    _, result = SAMPLES[op]
    header, body = split(response_frame(SPECS[op], 7, result))
    assert (header.opcode, header.flags, header.request_id) == (op, FLAG_RESPONSE, 7)
    assert decode_response(header.opcode, header.flags, body, op) == result


def test_message_encodings_travel_as_msgpack_bin() -> None:
    _, body = split(request_frame(Op.APPEND, 1, ["ns", "q", 0, [b"\xff\x00"]]))
    assert b"\xc4\x02\xff\x00" in body  # bin8 of length 2, the raw bytes: no base64


def test_frame_layout_is_big_endian_length_version_opcode_flags_id() -> None:
    frame = encode_frame(Op.PING, 0x01020304, b"\x90")
    assert frame == struct.pack(">IBBBI", 8, PROTOCOL_VERSION, 1, 0, 0x01020304) + b"\x90"


def test_trailing_defaults_are_filled_in() -> None:
    _, args = decode_request(Op.READ, msgpack.packb(["ns", "q", 0, 0, 10, 0]))
    assert args[-1] == 4 << 20
    _, args = decode_request(Op.KV_DELETE, msgpack.packb(["ns", "k"]))
    assert args == ["ns", "k", -1]


@pytest.mark.parametrize(
    ("opcode", "body", "needle"),
    [
        (99, msgpack.packb([]), "unknown opcode 99"),
        (Op.ERROR, msgpack.packb([]), "unknown opcode"),
        (Op.QUEUE_INFO, b"\xc1garbage", "not valid msgpack"),
        (Op.QUEUE_INFO, msgpack.packb({"ns": "q"}), "must be an array"),
        (Op.QUEUE_INFO, msgpack.packb(["ns"]), "missing argument queue"),
        (Op.QUEUE_INFO, msgpack.packb(["ns", "q", 1]), "at most 2"),
        (Op.QUEUE_INFO, msgpack.packb(["ns", 5]), "argument queue has the wrong type"),
        (Op.APPEND, msgpack.packb(["ns", "q", 0, ["text"]]), "argument messages"),
        (Op.APPEND, msgpack.packb(["ns", "q", "0", []]), "argument partition"),
        (Op.END_TRANSACTION, msgpack.packb(["ns", "t", 1]), "argument commit"),
        (Op.COMMIT_OFFSETS, msgpack.packb(["ns", "g", "q", {"0": 1}]), "argument offsets"),
    ],
)
def test_bad_requests_are_protocol_errors(opcode: int, body: bytes, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        decode_request(opcode, body)


def test_bad_headers_are_protocol_errors_with_readable_request_id() -> None:
    oversize = HEADER.pack(MAX, PROTOCOL_VERSION, Op.PING, 0, 77)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode_header(oversize, MAX)
    assert peek_request_id(oversize) == 77

    wrong_version = HEADER.pack(7, 9, Op.PING, 0, 78)
    with pytest.raises(ProtocolError, match="version 9"):
        decode_header(wrong_version, MAX)
    assert peek_request_id(wrong_version) == 78

    too_short = HEADER.pack(3, PROTOCOL_VERSION, Op.PING, 0, 79)
    with pytest.raises(ProtocolError, match="below"):
        decode_header(too_short, MAX)
    assert peek_request_id(too_short) == 0
    assert peek_request_id(b"\x00\x01") == 0


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    header = HEADER.pack(MAX - 4, PROTOCOL_VERSION, Op.PING, 0, 1)
    assert decode_header(header, MAX).body_length == MAX - HEADER_SIZE


ERRORS: list[OmConnectError] = [
    NotFoundError("queue ns/q does not exist"),
    AlreadyExistsError("queue q has 4 partitions"),
    MessageTooLargeError("message of 9 MiB"),
    CorruptDataError("message CRC mismatch"),
    CompactedError("revision 3 was compacted"),
    ProtocolError("unknown opcode 99"),
    BrokerInternalError("internal broker error: OSError: disk full"),
    ConnectionLostError("retry me"),
    FatalError("stop"),
    RecordError("skip"),
    OmConnectError("something else"),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_round_trip_to_the_same_class(exc: OmConnectError) -> None:
    header, body = split(error_frame(5, exc))
    assert (header.opcode, header.flags, header.request_id) == (Op.ERROR, FLAG_RESPONSE, 5)
    with pytest.raises(OmConnectError) as info:
        decode_response(header.opcode, header.flags, body, Op.PING)
    # Subclasses without a code of their own arrive as their nearest coded ancestor.
    expected = type(exc) if not isinstance(exc, ConnectionLostError) else type(exc).__mro__[1]
    assert type(info.value) is expected
    assert str(info.value) == str(exc)


def test_config_error_keeps_key_and_reason() -> None:
    decoded = decode_error(encode_error(ConfigError("partitions", "must be at least 1")))
    assert isinstance(decoded, ConfigError)
    assert (decoded.key, decoded.reason) == ("partitions", "must be at least 1")


def test_foreign_exceptions_are_internal_errors() -> None:
    exc = ZeroDivisionError("division by zero")
    assert error_code_of(exc) is ErrorCode.INTERNAL
    decoded = decode_error(encode_error(exc))
    assert type(decoded) is BrokerInternalError
    assert "ZeroDivisionError: division by zero" in str(decoded)


def test_unknown_error_code_becomes_internal_error() -> None:
    decoded = decode_error(msgpack.packb([200, "from the future", ""]))
    assert type(decoded) is BrokerInternalError


def test_bad_responses_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="not a response"):
        decode_response(Op.PING, 0, msgpack.packb(None), Op.PING)
    with pytest.raises(ProtocolError, match="does not answer"):
        decode_response(Op.KV_GET, FLAG_RESPONSE, msgpack.packb(None), Op.PING)
    with pytest.raises(ProtocolError, match="malformed queue_info"):
        decode_response(Op.QUEUE_INFO, FLAG_RESPONSE, msgpack.packb([1]), Op.QUEUE_INFO)
    with pytest.raises(ProtocolError, match="malformed error"):
        decode_response(Op.ERROR, FLAG_RESPONSE, msgpack.packb("oops"), Op.PING)


def test_records_with_extra_trailing_fields_still_decode() -> None:
    """Newer brokers may append fields to a record; older clients ignore them."""
    body = msgpack.packb([["ns", "q", 4, "future field"]])
    assert decode_response(Op.LIST_QUEUES, FLAG_RESPONSE, body, Op.LIST_QUEUES) == [
        QueueInfo("ns", "q", 4)
    ]
    body = msgpack.packb([3, [[0, 1, 2, b"e", 99]], "future"])
    result = decode_response(Op.READ, FLAG_RESPONSE, body, Op.READ)
    assert result == ReadResult([StoredMessage(0, 1, 2, b"e")], 3)


@pytest.mark.parametrize("records", [0, 1, 3, 20, 70_000])
def test_read_batches_answer_in_parts_is_the_same_frame(records: int) -> None:
    from omconnect.broker.frame_parts import response_frame_parts
    from omconnect.broker.protocol import SPECS

    spec = SPECS[Op.READ_BATCHES]
    longest = 300 if records < 100 else 3  # the largest case stays under the frame limit
    messages = [
        StoredMessage(1, 10 * i, 5, b"x" * (i % longest), i % 7 + 1) for i in range(records)
    ]
    result = ReadResult(messages, 10 * records)
    parts = response_frame_parts(spec, 9, result)
    assert b"".join(parts) == response_frame(spec, 9, result)
    header, body = split(b"".join(parts))
    assert decode_response(header.opcode, header.flags, body, Op.READ_BATCHES) == result
    other = SPECS[Op.QUEUE_INFO]
    assert response_frame_parts(other, 3, QueueInfo("n", "q", 1)) == [
        response_frame(other, 3, QueueInfo("n", "q", 1))
    ]


@pytest.mark.parametrize("size", [0, 5, 300, 70_000])
def test_a_request_in_parts_is_the_same_frame(size: int) -> None:
    from omconnect.broker.frame_parts import request_frame_parts

    blob = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    args = ["ns", "q", 3]
    parts = request_frame_parts(Op.APPEND_BATCH, 12, args, blob)
    assert b"".join(parts) == request_frame(Op.APPEND_BATCH, 12, [*args, blob])
    assert parts[-1] is blob  # sent as it is, not copied into the frame
