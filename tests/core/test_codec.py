"""The message encoding: round trips, and corrupt input is refused, never misread."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect import codec
from omconnect.errors import CorruptDataError
from omconnect.message import HEADER_NAMES, Message

text = st.text(max_size=30)
ints = st.integers(min_value=-(2**62), max_value=2**62)
messages = st.builds(
    Message,
    body=st.binary(max_size=2000),
    destination=text,
    message_key=text,
    properties=st.dictionaries(text, text, max_size=5),
    message_id=text,
    born_timestamp=ints,
    born_host=text,
    expire_time=ints,
    priority=st.integers(0, 9),
    trace_id=text,
    delay_time=ints,
    delivery_count=st.integers(0, 100),
)


@given(messages)
def test_round_trip(message: Message) -> None:
    encoded = codec.encode(message)
    assert codec.verify(encoded) == len(encoded)
    assert codec.decode(encoded) == message
    assert codec.peek_expire_time(encoded) == message.expire_time


def test_every_header_survives() -> None:
    values = {
        name: (7 if isinstance(getattr(Message(b""), name), int) else name) for name in HEADER_NAMES
    }
    message = Message(b"body", **values)
    assert codec.decode(codec.encode(message)).header_dict() == message.header_dict()
    assert len(message.header_dict()) == len(HEADER_NAMES)


@given(messages, st.data())
def test_any_flipped_byte_is_detected(message: Message, data: st.DataObject) -> None:
    encoded = bytearray(codec.encode(message))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptDataError):
        codec.decode(bytes(encoded))


def test_truncated_and_concatenated() -> None:
    one, two = codec.encode(Message(b"1")), codec.encode(Message(b"22", message_key="k"))
    assert [codec.decode(v).body for v in codec.split(one + two)] == [b"1", b"22"]
    with pytest.raises(CorruptDataError):
        list(codec.split(one + two[:-1]))
    with pytest.raises(CorruptDataError):
        codec.decode(one[:5])
    with pytest.raises(CorruptDataError):
        codec.verify(b"\xff" * 20)
