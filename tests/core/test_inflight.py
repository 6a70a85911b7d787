"""The offset-commit rule: never commit past a message still in flight."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect.inflight import InFlight


def test_commit_point_waits_for_the_oldest_unacked() -> None:
    tracker = InFlight(start=10)
    for offset in (10, 11, 12):
        tracker.delivered(offset)
    tracker.acked(11)
    tracker.acked(12)
    assert tracker.committable == 10
    tracker.acked(10)
    assert tracker.committable == 13
    assert tracker.pending == 0


def test_gaps_from_skipped_offsets_are_jumped() -> None:
    tracker = InFlight(start=0)
    tracker.delivered(5)  # 0..4 expired on the broker
    assert tracker.committable == 5
    tracker.acked(5)
    assert tracker.committable == 6
    tracker.skipped_to(9)
    assert tracker.committable == 9


def test_skip_does_not_jump_over_in_flight() -> None:
    tracker = InFlight(start=0)
    tracker.delivered(0)
    tracker.skipped_to(9)
    assert tracker.committable == 0


def test_rejects_out_of_order_and_unknown_acks() -> None:
    tracker = InFlight(start=3)
    with pytest.raises(ValueError):
        tracker.delivered(2)
    tracker.delivered(4)
    with pytest.raises(ValueError):
        tracker.delivered(4)
    with pytest.raises(ValueError):
        tracker.acked(7)
    tracker.acked(1)  # an old, already committed offset: ignored
    assert tracker.committable == 4


@given(st.integers(min_value=1, max_value=60), st.randoms(use_true_random=False))
def test_committable_is_always_the_first_unacked(count: int, rnd: random.Random) -> None:
    tracker = InFlight(start=0)
    offsets = sorted(rnd.sample(range(count * 2), count))
    for offset in offsets:
        tracker.delivered(offset)
    acked: set[int] = set()
    for offset in rnd.sample(offsets, len(offsets)):
        tracker.acked(offset)
        acked.add(offset)
        unacked = [o for o in offsets if o not in acked]
        expected = unacked[0] if unacked else offsets[-1] + 1
        assert tracker.committable == expected


def test_a_delivered_range_is_many_deliveries() -> None:
    tracker = InFlight(start=5)
    tracker.delivered_range(5, 9)
    assert tracker.pending == 4 and tracker.committable == 5
    for offset in (6, 5, 8):
        tracker.acked(offset)
    assert tracker.committable == 7
    with pytest.raises(ValueError):
        tracker.delivered_range(8, 12)  # overlaps what was delivered
    tracker.delivered_range(12, 12)  # empty: nothing happens
    tracker.acked(7)
    assert tracker.committable == 9 and tracker.pending == 0
