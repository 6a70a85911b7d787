"""The batch encoding (codec format version 2): round trips, shared and varying
headers, and corrupt input is refused, never misread."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect import batch_codec, codec
from omconnect.errors import CorruptDataError
from omconnect.message import Message

text = st.text(max_size=20)
ints = st.integers(min_value=-(2**62), max_value=2**62)
messages = st.builds(
    Message,
    body=st.binary(max_size=300),
    destination=st.sampled_from(["q", "other"]),
    message_key=text,
    properties=st.dictionaries(text, text, max_size=3),
    message_id=text,
    born_timestamp=st.sampled_from([0, 1_700_000_000_000]),
    expire_time=st.sampled_from([0, 5, 2**40]),
    priority=st.integers(0, 9),
    delay_time=ints,
    delivery_count=st.integers(0, 100),
)


@given(st.lists(messages, min_size=1, max_size=20))
def test_round_trip(batch: list[Message]) -> None:
    encoded = batch_codec.encode_batch(batch)
    assert batch_codec.is_batch(encoded)
    assert batch_codec.batch_count(encoded) == len(batch)
    assert batch_codec.check_batch(encoded) == len(batch)
    assert batch_codec.decode_batch(encoded) == batch
    assert batch_codec.decode_any(encoded) == batch
    has_expiry = any(m.expire_time for m in batch)
    assert bool(batch_codec.batch_flags(encoded) & codec.FLAG_EXPIRES) == has_expiry
    assert [codec.decode(e) for e in batch_codec.split_batch(encoded)] == batch


def test_shared_headers_are_written_once() -> None:
    batch = [Message(b"x" * 10, destination="orders", message_id=f"id-{i}") for i in range(50)]
    one = len(codec.encode(batch[0]))
    assert len(batch_codec.encode_batch(batch)) < 50 * one / 2


def test_decoded_messages_own_their_properties() -> None:
    batch = [Message(b"a", properties={"k": "v"}), Message(b"b", properties={"k": "v"})]
    first, second = batch_codec.decode_batch(batch_codec.encode_batch(batch))
    first.properties["k"] = "changed"
    assert second.properties == {"k": "v"}


def test_decode_delivered_places_each_message() -> None:
    batch = [Message(b"a", partition=3, offset=-1), Message(b"b", partition=3, offset=-1)]
    got = batch_codec.decode_delivered(batch_codec.encode_batch(batch), "q", 1, 40, 99)
    assert [(m.body, m.partition, m.offset, m.store_timestamp) for m in got] == [
        (b"a", 1, 40, 99),
        (b"b", 1, 41, 99),
    ]
    assert [m.receipt for m in got] == [("q", 1, 40), ("q", 1, 41)]
    single = batch_codec.decode_delivered(codec.encode(Message(b"s")), "q", 0, 7, 5)
    assert [(m.body, m.offset, m.receipt) for m in single] == [(b"s", 7, ("q", 0, 7))]


def test_version_one_is_still_read() -> None:
    message = Message(b"old", destination="q", message_id="m1")
    assert batch_codec.decode_any(codec.encode(message)) == [message]
    assert not batch_codec.is_batch(codec.encode(message))


def test_an_empty_batch_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        batch_codec.encode_batch([])


def test_a_flipped_byte_anywhere_is_refused() -> None:
    encoded = batch_codec.encode_batch([Message(b"one", message_id="a"), Message(b"two")])
    for i in range(len(encoded)):
        damaged = bytearray(encoded)
        damaged[i] ^= 0x01
        with pytest.raises(CorruptDataError):
            batch_codec.decode_batch(bytes(damaged))
        with pytest.raises(CorruptDataError):
            batch_codec.check_batch(bytes(damaged))


def test_every_truncation_is_refused() -> None:
    encoded = batch_codec.encode_batch([Message(b"one"), Message(b"two")])
    for cut in range(len(encoded)):
        with pytest.raises(CorruptDataError):
            batch_codec.batch_count(encoded[:cut])


def reseal(tail: bytes) -> bytes:
    """A batch encoding with a valid length and CRC around ``tail`` (from byte 8)."""
    import crc32c

    return struct.pack("<II", 8 + len(tail), crc32c.crc32c(tail)) + tail


@pytest.mark.parametrize(
    "header, bodies, count",
    [
        (b"\x90", b"", 1),  # not a 4-part array
        (b"\x94\x90\x90\x90\x90", b"", 1),  # no shared fields
        (None, b"xx", 1),  # body lengths do not add up
        (None, b"x", 2),  # lengths do not match the count
    ],
)
def test_malformed_headers_are_refused(header: bytes | None, bodies: bytes, count: int) -> None:
    import msgpack

    if header is None:
        shared = codec._GET_FIELDS(Message(b""))
        header = msgpack.packb([shared, [], [], [1]], use_bin_type=True)
    tail = struct.pack("<BBII", 2, 0, len(header), count) + header + bodies
    with pytest.raises(CorruptDataError):
        batch_codec.check_batch(reseal(tail))
    with pytest.raises(CorruptDataError):
        batch_codec.decode_batch(reseal(tail))


def test_a_version_one_encoding_is_not_a_batch() -> None:
    with pytest.raises(CorruptDataError, match="not a batch"):
        batch_codec.batch_count(codec.encode(Message(b"x" * 20)))
