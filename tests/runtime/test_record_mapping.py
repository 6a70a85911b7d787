"""Records survive the trip through a message: key, value, headers, timestamp."""

from hypothesis import given
from hypothesis import strategies as st

from omconnect import codec
from omconnect.connect.records import Headers, SourceRecord
from omconnect.runtime.record_mapping import (
    headers_of,
    key_bytes,
    to_message,
    to_sink_record,
    value_bytes,
)

header_values = st.one_of(
    st.text(), st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)
)


@given(
    key=st.one_of(st.none(), st.binary(max_size=20)),
    value=st.one_of(st.none(), st.binary(max_size=50)),
    headers=st.dictionaries(
        st.text(min_size=1).filter(lambda k: not k.startswith("connect.")),
        header_values,
        max_size=4,
    ),
    timestamp=st.one_of(st.none(), st.integers(1, 2**50)),
    partition=st.one_of(st.none(), st.integers(0, 7)),
)
def test_round_trip_through_the_wire(
    key: bytes | None,
    value: bytes | None,
    headers: dict,
    timestamp: int | None,
    partition: int | None,
) -> None:
    record = SourceRecord("orders", partition, None, "k", None, "v", timestamp, Headers.of(headers))
    message = codec.decode(codec.encode(to_message(record, key, value)))
    assert key_bytes(message) == (key or None)  # OpenMessaging has no null key: b"" is None
    assert value_bytes(message) == value
    assert {h.key: h.value for h in headers_of(message)} == headers
    assert message.destination == "orders"
    assert message.partition == (partition if partition is not None else -1)
    assert message.born_timestamp == (timestamp or 0)


def test_sink_record_carries_position() -> None:
    record = SourceRecord("t", None, None, None, None, None, 5, Headers.of({"h": "x"}))
    message = to_message(record, b"k", b"v")
    message.partition, message.offset = 2, 41
    sink = to_sink_record(message, None, "k", None, "v")
    assert (sink.topic, sink.partition, sink.offset, sink.timestamp) == ("t", 2, 41, 5)
    assert (sink.original_partition, sink.original_offset) == (2, 41)
    assert [(h.key, h.value) for h in sink.headers] == [("h", "x")]
