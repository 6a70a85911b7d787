"""The broker's TCP wire protocol: frames, opcodes, and msgpack bodies (``docs/protocol.md``).

Every frame, in both directions::

    u32 length | u8 version | u8 opcode | u8 flags | u32 request_id | body

big-endian; ``length`` counts every byte after itself (7 + len(body)). A request's
body is a msgpack array of the method's arguments in `BrokerApi` order; a response
carries the request's opcode and id with `FLAG_RESPONSE` set and the method's result;
an error response has opcode `Op.ERROR` and body ``[code, message, key]``.

This module is pure: it encodes and decodes bytes and never touches a socket. The
decoders check shapes and types, so a misbehaving peer yields `ProtocolError`, never
a crash further in. Dataclasses cross the wire through the explicit
``*_to_wire`` / ``*_from_wire`` functions below, never a generic serializer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack

from omconnect.broker.api import (
    HalfMessage,
    KeyValue,
    KvEvent,
    QueueInfo,
    ReadResult,
    StoredMessage,
)
from omconnect.errors import (
    AlreadyExistsError,
    CompactedError,
    ConfigError,
    CorruptDataError,
    FatalError,
    MessageTooLargeError,
    NotFoundError,
    OmConnectError,
    ProtocolError,
    RecordError,
    RetriableError,
)

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">IBBBI")
HEADER_SIZE = HEADER.size  # 11
LENGTH_OVERHEAD = HEADER_SIZE - 4  # bytes counted by ``length`` besides the body
DEFAULT_MAX_FRAME_BYTES = 64 << 20
DEFAULT_PORT = 9876

FLAG_RESPONSE = 0x01
MAX_REQUEST_ID = 0xFFFFFFFF
CONNECTION_REQUEST_ID = 0  # error responses about the connection, not one request


class Op(IntEnum):
    """Opcodes. Part of the protocol: never renumber, only append."""

    PING = 1
    CREATE_NAMESPACE = 2
    DELETE_NAMESPACE = 3
    LIST_NAMESPACES = 4
    CREATE_QUEUE = 5
    DELETE_QUEUE = 6
    LIST_QUEUES = 7
    QUEUE_INFO = 8
    APPEND = 9
    APPEND_DELAYED = 10
    PREPARE = 11
    END_TRANSACTION = 12
    TRANSACTION_CHECKS = 13
    READ = 14
    OFFSET_RANGE = 15
    COMMIT_OFFSETS = 16
    COMMITTED_OFFSETS = 17
    KV_GET = 18
    KV_PUT = 19
    KV_CAS = 20
    KV_DELETE = 21
    KV_LIST = 22
    KV_WATCH = 23
    APPEND_BATCH = 24
    READ_BATCHES = 25
    ERROR = 255


class ErrorCode(IntEnum):
    """Error codes of an `Op.ERROR` response; each maps to one omconnect error class."""

    INTERNAL = 1
    PROTOCOL = 2
    NOT_FOUND = 3
    CONFIG = 4
    ALREADY_EXISTS = 5
    MESSAGE_TOO_LARGE = 6
    CORRUPT_DATA = 7
    COMPACTED = 8
    RETRIABLE = 9
    FATAL = 10
    RECORD = 11
    OTHER = 12


class BrokerInternalError(OmConnectError):
    """The broker failed on a request for a reason of its own (a bug, a disk error);
    the broker's log has the detail. Raised by the clients for `ErrorCode.INTERNAL`."""


# Most specific first: an error's code is that of the first class it is an instance of.
_ERROR_CLASSES: tuple[tuple[type[Exception], ErrorCode], ...] = (
    (ProtocolError, ErrorCode.PROTOCOL),
    (NotFoundError, ErrorCode.NOT_FOUND),
    (ConfigError, ErrorCode.CONFIG),
    (AlreadyExistsError, ErrorCode.ALREADY_EXISTS),
    (MessageTooLargeError, ErrorCode.MESSAGE_TOO_LARGE),
    (CorruptDataError, ErrorCode.CORRUPT_DATA),
    (CompactedError, ErrorCode.COMPACTED),
    (BrokerInternalError, ErrorCode.INTERNAL),
    (RetriableError, ErrorCode.RETRIABLE),
    (FatalError, ErrorCode.FATAL),
    (RecordError, ErrorCode.RECORD),
    (OmConnectError, ErrorCode.OTHER),
)
_CLASS_OF_CODE: dict[int, type[Exception]] = {code: cls for cls, code in _ERROR_CLASSES}


# -- frames ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A decoded frame header. ``body_length`` is ``length`` minus the header fields."""

    body_length: int
    version: int
    opcode: int
    flags: int
    request_id: int


def encode_frame(opcode: int, request_id: int, body: bytes, flags: int = 0) -> bytes:
    """One complete frame around ``body``."""
    return (
        HEADER.pack(LENGTH_OVERHEAD + len(body), PROTOCOL_VERSION, opcode, flags, request_id) + body
    )


def decode_header(data: bytes | bytearray | memoryview, max_frame_bytes: int) -> FrameHeader:
    """Parse and check the `HEADER_SIZE` bytes at the start of ``data``.

    Raises `ProtocolError` for a length below the header, a frame over
    ``max_frame_bytes`` (counted as the whole frame, length field included) or an
    unknown version. The request id is readable from ``data`` even then (see
    `peek_request_id`), so the receiver can answer before closing.
    """
    length, version, opcode, flags, request_id = HEADER.unpack_from(data)
    if length < LENGTH_OVERHEAD:
        raise ProtocolError(f"frame length {length} is below the {LENGTH_OVERHEAD}-byte header")
    if length + 4 > max_frame_bytes:
        raise ProtocolError(f"frame of {length + 4} bytes exceeds the limit of {max_frame_bytes}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version} (this end speaks 1)")
    return FrameHeader(length - LENGTH_OVERHEAD, version, opcode, flags, request_id)


def peek_request_id(data: bytes | bytearray | memoryview) -> int:
    """The request id field of a (possibly invalid) header, or 0 if ``data`` is too short
    or the length field is too small for the header to hold one."""
    if len(data) < HEADER_SIZE:
        return CONNECTION_REQUEST_ID
    length, _, _, _, request_id = HEADER.unpack_from(data)
    return int(request_id) if length >= LENGTH_OVERHEAD else CONNECTION_REQUEST_ID


def _pack(obj: object) -> bytes:
    # A fresh packer per call: msgpack.Packer instances are not thread-safe.
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def _unpack(body: bytes | bytearray | memoryview) -> Any:
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"body is not valid msgpack: {exc}") from exc


# -- errors ------------------------------------------------------------------------


def error_code_of(exc: BaseException) -> ErrorCode:
    """The wire code for ``exc``: its omconnect class, or INTERNAL for anything else."""
    for cls, code in _ERROR_CLASSES:
        if isinstance(exc, cls):
            return code
    return ErrorCode.INTERNAL


def encode_error(exc: BaseException) -> bytes:
    """The body of an `Op.ERROR` response for ``exc``: ``[code, message, key]``.

    A `ConfigError` sends its reason and key apart; an error that is not an omconnect
    error sends its type and message (the server logs the traceback).
    """
    code = error_code_of(exc)
    key = ""
    if isinstance(exc, ConfigError):
        message, key = exc.reason, exc.key
    elif code is ErrorCode.INTERNAL and not isinstance(exc, BrokerInternalError):
        message = f"internal broker error: {type(exc).__name__}: {exc}"
    else:
        message = str(exc)
    return _pack([int(code), message, key])


def decode_error(body: bytes | bytearray | memoryview) -> OmConnectError:
    """The exception an `Op.ERROR` body stands for, of the class its code names.
    Unknown codes (from a newer broker) become `BrokerInternalError`."""
    value = _unpack(body)
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        raise ProtocolError("malformed error response")
    code, message = value[0], value[1]
    key = value[2] if len(value) > 2 and isinstance(value[2], str) else ""
    cls = _CLASS_OF_CODE.get(code, BrokerInternalError)
    if cls is ConfigError:
        return ConfigError(key, message)
    exc = cls(message)
    return exc if isinstance(exc, OmConnectError) else BrokerInternalError(message)


# -- dataclasses -------------------------------------------------------------------


def queue_info_to_wire(info: QueueInfo) -> list[Any]:
    """``[namespace, name, partitions]``."""
    return [info.namespace, info.name, info.partitions]


def queue_info_from_wire(value: Any) -> QueueInfo:
    return QueueInfo(value[0], value[1], value[2])


def stored_message_to_wire(message: StoredMessage) -> tuple[int, int, int, bytes]:
    """``[partition, offset, store_timestamp, encoded]``."""
    return (message.partition, message.offset, message.store_timestamp, message.encoded)


def read_result_to_wire(result: ReadResult) -> list[Any]:
    """``[next_offset, [stored_message, ...]]``."""
    return [result.next_offset, [stored_message_to_wire(m) for m in result.messages]]


def read_result_from_wire(value: Any) -> ReadResult:
    return ReadResult([StoredMessage(m[0], m[1], m[2], m[3]) for m in value[1]], value[0])


def stored_record_to_wire(message: StoredMessage) -> tuple[int, int, int, bytes, int]:
    """``[partition, offset, store_timestamp, encoded, count]``: a `StoredMessage`
    that may hold a whole batch (`Op.READ_BATCHES`)."""
    return (
        message.partition,
        message.offset,
        message.store_timestamp,
        message.encoded,
        message.count,
    )


def read_batches_result_to_wire(result: ReadResult) -> list[Any]:
    """``[next_offset, [stored_record, ...]]``."""
    return [result.next_offset, [stored_record_to_wire(m) for m in result.messages]]


def read_batches_result_from_wire(value: Any) -> ReadResult:
    return ReadResult([StoredMessage(m[0], m[1], m[2], m[3], m[4]) for m in value[1]], value[0])


def half_message_to_wire(half: HalfMessage) -> list[Any]:
    """``[transaction_id, queue, partition, encoded, prepared_at]``."""
    return [half.transaction_id, half.queue, half.partition, half.encoded, half.prepared_at]


def half_message_from_wire(value: Any) -> HalfMessage:
    return HalfMessage(value[0], value[1], value[2], value[3], value[4])


def key_value_to_wire(kv: KeyValue) -> list[Any]:
    """``[key, value, revision, create_revision, expires_at]``."""
    return [kv.key, kv.value, kv.revision, kv.create_revision, kv.expires_at]


def key_value_from_wire(value: Any) -> KeyValue:
    return KeyValue(value[0], value[1], value[2], value[3], value[4])


def kv_event_to_wire(event: KvEvent) -> list[Any]:
    """``[kind, key, value, revision]``."""
    return [event.kind, event.key, event.value, event.revision]


def kv_event_from_wire(value: Any) -> KvEvent:
    return KvEvent(value[0], value[1], value[2], value[3])


# -- argument checks ---------------------------------------------------------------

_REQUIRED = object()
Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def _is_bytes(v: Any) -> bool:
    return type(v) is bytes


def _is_bytes_list(v: Any) -> bool:
    # set(map(type, ...)) runs in C: no Python work per message on the append path.
    return type(v) is list and (not v or set(map(type, v)) == _BYTES_ONLY)


def _is_int_list(v: Any) -> bool:
    return type(v) is list and (not v or set(map(type, v)) == _INT_ONLY)


_BYTES_ONLY = {bytes}
_INT_ONLY = {int}


def _is_offsets(v: Any) -> bool:
    return type(v) is dict and all(type(k) is int and type(o) is int for k, o in v.items())


# -- the opcode table --------------------------------------------------------------


def _none(_: Any) -> None:
    return None


def _same(value: Any) -> Any:
    return value


def _list_of_str(value: Any) -> list[str]:
    return [str(v) for v in value]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """How one opcode's request and response travel, and how the server runs it.

    ``args`` names each argument with its type check and default (`_REQUIRED` for
    none); trailing arguments with defaults may be left out of a request.
    ``execution`` is "inline" (cheap, run on the server's event loop), "write" (may
    wait for fsync: the write pool) or "poll" (blocks when its ``max_wait_ms`` > 0).
    ``lane`` gives the argument positions whose values order writes: requests of one
    connection with equal values there run one after another, in arrival order.
    """

    op: Op
    method: str
    args: tuple[tuple[str, Check, object], ...]
    encode_result: Callable[[Any], Any]
    decode_result: Callable[[Any], Any]
    execution: str = "inline"
    lane: tuple[int, ...] = ()
    wait_arg: int = field(init=False, default=-1)  # position of max_wait_ms, or -1

    def __post_init__(self) -> None:
        names = [name for name, _, _ in self.args]
        if "max_wait_ms" in names:
            object.__setattr__(self, "wait_arg", names.index("max_wait_ms"))


_NS = ("namespace", _is_str, _REQUIRED)
_QUEUE = ("queue", _is_str, _REQUIRED)
_PART = ("partition", _is_int, _REQUIRED)
_MSGS = ("messages", _is_bytes_list, _REQUIRED)
_KEY = ("key", _is_str, _REQUIRED)
_WAIT = ("max_wait_ms", _is_int, _REQUIRED)


def _r(name: str) -> tuple[str, Check, object]:
    return (name, _is_str, _REQUIRED)


def _i(name: str, default: object = _REQUIRED) -> tuple[str, Check, object]:
    return (name, _is_int, default)


def _list_of(f: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def convert(value: Any) -> list[Any]:
        return [f(v) for v in value]

    return convert


def _optional(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return None if value is None else f(value)

    return convert


def _events_to_wire(value: tuple[list[KvEvent], int]) -> list[Any]:
    events, next_revision = value
    return [[kv_event_to_wire(e) for e in events], next_revision]


def _events_from_wire(value: Any) -> tuple[list[KvEvent], int]:
    return [kv_event_from_wire(e) for e in value[0]], value[1]


def _pair_from_wire(value: Any) -> tuple[int, int]:
    return value[0], value[1]


_SPECS: tuple[OpSpec, ...] = (
    OpSpec(Op.PING, "ping", (), _none, _none),
    OpSpec(Op.CREATE_NAMESPACE, "create_namespace", (_NS,), _none, _none),
    OpSpec(Op.DELETE_NAMESPACE, "delete_namespace", (_NS,), _none, _none),
    OpSpec(Op.LIST_NAMESPACES, "list_namespaces", (), list, _list_of_str),
    OpSpec(
        Op.CREATE_QUEUE,
        "create_queue",
        (_NS, _QUEUE, _i("partitions")),
        queue_info_to_wire,
        queue_info_from_wire,
    ),
    OpSpec(Op.DELETE_QUEUE, "delete_queue", (_NS, _QUEUE), _none, _none),
    OpSpec(
        Op.LIST_QUEUES,
        "list_queues",
        (_NS,),
        _list_of(queue_info_to_wire),
        _list_of(queue_info_from_wire),
    ),
    OpSpec(Op.QUEUE_INFO, "queue_info", (_NS, _QUEUE), queue_info_to_wire, queue_info_from_wire),
    OpSpec(
        Op.APPEND,
        "append",
        (_NS, _QUEUE, _PART, _MSGS),
        _same,
        _same,
        execution="write",
        lane=(0, 1, 2),
    ),
    OpSpec(
        Op.APPEND_DELAYED,
        "append_delayed",
        (_NS, _QUEUE, _PART, _MSGS, ("deliver_at", _is_int_list, _REQUIRED)),
        _none,
        _none,
        execution="write",
        lane=(0, 1, 2),
    ),
    OpSpec(
        Op.PREPARE,
        "prepare",
        (_NS, _r("producer_group"), _r("transaction_id"), _QUEUE, _PART, _MSGS),
        _none,
        _none,
        execution="write",
        lane=(0, 3, 4),
    ),
    OpSpec(
        Op.END_TRANSACTION,
        "end_transaction",
        (_NS, _r("transaction_id"), ("commit", _is_bool, _REQUIRED)),
        _none,
        _none,
        execution="write",
    ),
    OpSpec(
        Op.TRANSACTION_CHECKS,
        "transaction_checks",
        (_NS, _r("producer_group"), _WAIT),
        _list_of(half_message_to_wire),
        _list_of(half_message_from_wire),
        execution="poll",
    ),
    OpSpec(
        Op.READ,
        "read",
        (_NS, _QUEUE, _PART, _i("offset"), _i("max_messages"), _WAIT, _i("max_bytes", 4 << 20)),
        read_result_to_wire,
        read_result_from_wire,
        execution="poll",
    ),
    OpSpec(Op.OFFSET_RANGE, "offset_range", (_NS, _QUEUE, _PART), list, _pair_from_wire),
    OpSpec(
        Op.COMMIT_OFFSETS,
        "commit_offsets",
        (_NS, _r("group"), _QUEUE, ("offsets", _is_offsets, _REQUIRED)),
        _none,
        _none,
    ),
    OpSpec(Op.COMMITTED_OFFSETS, "committed_offsets", (_NS, _r("group"), _QUEUE), dict, dict),
    OpSpec(
        Op.KV_GET,
        "kv_get",
        (_NS, _KEY),
        _optional(key_value_to_wire),
        _optional(key_value_from_wire),
    ),
    OpSpec(
        Op.KV_PUT,
        "kv_put",
        (_NS, _KEY, ("value", _is_bytes, _REQUIRED), _i("ttl_ms", 0)),
        _same,
        _same,
    ),
    OpSpec(
        Op.KV_CAS,
        "kv_cas",
        (_NS, _KEY, ("value", _is_bytes, _REQUIRED), _i("expected_revision"), _i("ttl_ms", 0)),
        _same,
        _same,
    ),
    OpSpec(Op.KV_DELETE, "kv_delete", (_NS, _KEY, _i("expected_revision", -1)), bool, bool),
    OpSpec(
        Op.KV_LIST,
        "kv_list",
        (_NS, _r("prefix")),
        _list_of(key_value_to_wire),
        _list_of(key_value_from_wire),
    ),
    OpSpec(
        Op.KV_WATCH,
        "kv_watch",
        (_NS, _r("prefix"), _i("from_revision"), _WAIT),
        _events_to_wire,
        _events_from_wire,
        execution="poll",
    ),
    OpSpec(
        Op.APPEND_BATCH,
        "append_batch",
        (_NS, _QUEUE, _PART, ("batch", _is_bytes, _REQUIRED)),
        _same,
        _same,
        execution="write",
        lane=(0, 1, 2),
    ),
    OpSpec(
        Op.READ_BATCHES,
        "read_batches",
        (_NS, _QUEUE, _PART, _i("offset"), _i("max_messages"), _WAIT, _i("max_bytes", 4 << 20)),
        read_batches_result_to_wire,
        read_batches_result_from_wire,
        execution="poll",
    ),
)

SPECS: dict[int, OpSpec] = {spec.op: spec for spec in _SPECS}


def spec_of(opcode: int) -> OpSpec:
    """The spec of a request opcode; `ProtocolError` for an unknown one."""
    spec = SPECS.get(opcode)
    if spec is None:
        raise ProtocolError(f"unknown opcode {opcode}")
    return spec


# -- requests and responses --------------------------------------------------------


def request_frame(op: Op, request_id: int, args: Sequence[Any]) -> bytes:
    """A complete request frame: ``args`` in `BrokerApi` order as a msgpack array.
    Message and time sequences must be lists or tuples."""
    return encode_frame(op, request_id, _pack(args))


def decode_request(opcode: int, body: bytes | bytearray | memoryview) -> tuple[OpSpec, list[Any]]:
    """The spec and checked arguments (defaults filled in) of a request body.

    Raises `ProtocolError` for an unknown opcode, a body that is not an array, too
    many or too few arguments, or an argument of the wrong type.
    """
    spec = spec_of(opcode)
    args = _unpack(body)
    if type(args) is not list:
        raise ProtocolError(f"{spec.method}: request body must be an array")
    params = spec.args
    if len(args) > len(params):
        raise ProtocolError(f"{spec.method}: {len(args)} arguments, at most {len(params)} expected")
    for i, (name, check, default) in enumerate(params):
        if i < len(args):
            if not check(args[i]):
                raise ProtocolError(
                    f"{spec.method}: argument {name} has the wrong type ({type(args[i]).__name__})"
                )
        elif default is _REQUIRED:
            raise ProtocolError(f"{spec.method}: missing argument {name}")
        else:
            args.append(default)
    return spec, args


def response_frame(spec: OpSpec, request_id: int, result: Any) -> bytes:
    """A complete success response frame."""
    return encode_frame(spec.op, request_id, _pack(spec.encode_result(result)), FLAG_RESPONSE)


def error_frame(request_id: int, exc: BaseException) -> bytes:
    """A complete error response frame."""
    return encode_frame(Op.ERROR, request_id, encode_error(exc), FLAG_RESPONSE)


def decode_response(
    opcode: int, flags: int, body: bytes | bytearray | memoryview, expected: Op
) -> Any:
    """The result carried by a response to a request of opcode ``expected``.

    Returns the method's result, or raises the error an `Op.ERROR` response carries
    (of the class its code names). Raises `ProtocolError` for a frame that is not a
    response, answers another opcode, or has a body of the wrong shape.
    """
    if not flags & FLAG_RESPONSE:
        raise ProtocolError(f"frame with opcode {opcode} is not a response")
    if opcode == Op.ERROR:
        raise decode_error(body)
    if opcode != expected:
        raise ProtocolError(f"response opcode {opcode} does not answer request opcode {expected}")
    value = _unpack(body)
    try:
        return SPECS[expected].decode_result(value)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise ProtocolError(f"malformed {SPECS[expected].method} response: {exc}") from exc
