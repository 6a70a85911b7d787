"""The source offset-commit rule: never store an offset past a record still in flight."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.errors import ConfigError
from omconnect.runtime.source_offsets import (
    CommittableOffsets,
    PartitionOffset,
    SubmittedRecords,
)

FILE_A = {"file": "a.log"}
FILE_B = {"file": "b.log"}


def offsets_of(result: CommittableOffsets) -> dict[str, object]:
    return {str(o.partition["file"]): o.offset["position"] for o in result.offsets}


def test_nothing_submitted_nothing_to_commit() -> None:
    submitted = SubmittedRecords()
    result = submitted.committable()
    assert not result
    assert result.pending == 0
    assert submitted.await_all(0)


def test_offset_waits_for_the_oldest_unacked_record() -> None:
    submitted = SubmittedRecords()
    first, second, third = (submitted.submit(FILE_A, {"position": p}) for p in (10, 20, 30))
    second.ack()
    third.ack()
    assert not submitted.committable()
    first.ack()
    assert offsets_of(submitted.committable()) == {"a.log": 30}


def test_partial_run_commits_up_to_the_gap() -> None:
    submitted = SubmittedRecords()
    handles = [submitted.submit(FILE_A, {"position": p}) for p in range(5)]
    for n in (0, 1, 3, 4):
        handles[n].ack()
    result = submitted.committable()
    assert offsets_of(result) == {"a.log": 1}
    assert result.pending == 1
    assert result.largest_backlog == 3  # records 2, 3, 4 held back


def test_ack_all_acks_a_batch_at_once() -> None:
    submitted = SubmittedRecords()
    handles = [submitted.submit(FILE_A, {"position": p}) for p in range(3)]
    handles[0].ack()
    submitted.ack_all(handles)  # an already acked record is not counted twice
    result = submitted.committable()
    assert offsets_of(result) == {"a.log": 2}
    assert result.pending == 0
    assert submitted.await_all(0)


def test_checked_maps_are_tracked_as_given() -> None:
    """A SourceRecord's maps were checked and copied when it was built."""
    submitted = SubmittedRecords()
    handle = submitted.submit({"file": "a.log"}, {"position": 7}, checked=True)
    handle.ack()
    assert offsets_of(submitted.committable()) == {"a.log": 7}


def test_partitions_are_independent() -> None:
    submitted = SubmittedRecords()
    a1 = submitted.submit(FILE_A, {"position": 1})
    b1 = submitted.submit(FILE_B, {"position": 100})
    b2 = submitted.submit(FILE_B, {"position": 200})
    b1.ack()
    b2.ack()
    assert offsets_of(submitted.committable()) == {"b.log": 200}
    a1.ack()
    assert offsets_of(submitted.committable()) == {"a.log": 1, "b.log": 200}


def test_partition_key_order_does_not_matter() -> None:
    submitted = SubmittedRecords()
    first = submitted.submit({"db": "x", "table": "t"}, {"pos": 1})
    submitted.submit({"table": "t", "db": "x"}, {"pos": 2})
    first.ack()
    result = submitted.committable()
    assert [o.offset for o in result.offsets] == [{"pos": 1}]
    assert result.pending == 1


def test_committed_offsets_are_not_offered_again() -> None:
    submitted = SubmittedRecords()
    submitted.submit(FILE_A, {"position": 1}).ack()
    result = submitted.committable()
    submitted.committed(result)
    assert not submitted.committable()


def test_failed_commit_offers_the_offsets_again() -> None:
    submitted = SubmittedRecords()
    submitted.submit(FILE_A, {"position": 1}).ack()
    assert offsets_of(submitted.committable()) == {"a.log": 1}
    # the store write failed: no committed() call
    assert offsets_of(submitted.committable()) == {"a.log": 1}


def test_newer_offset_survives_confirmation_of_an_older_one() -> None:
    submitted = SubmittedRecords()
    submitted.submit(FILE_A, {"position": 1}).ack()
    older = submitted.committable()
    submitted.submit(FILE_A, {"position": 2}).ack()
    newer = submitted.committable()  # taken before the older commit is confirmed
    submitted.committed(older)
    assert offsets_of(submitted.committable()) == {"a.log": 2}
    submitted.committed(newer)
    assert not submitted.committable()


def test_repeated_ack_is_ignored() -> None:
    submitted = SubmittedRecords()
    first = submitted.submit(FILE_A, {"position": 1})
    submitted.submit(FILE_A, {"position": 2})
    first.ack()
    first.ack()
    assert submitted.pending == 1
    assert offsets_of(submitted.committable()) == {"a.log": 1}


def test_dropped_record_no_longer_blocks() -> None:
    submitted = SubmittedRecords()
    first = submitted.submit(FILE_A, {"position": 1})
    second = submitted.submit(FILE_A, {"position": 2})
    second.ack()
    assert submitted.drop(first)
    assert not submitted.drop(first)
    first.ack()  # a late ack of a dropped record changes nothing
    assert submitted.pending == 0
    assert offsets_of(submitted.committable()) == {"a.log": 2}


def test_acked_record_cannot_be_dropped() -> None:
    submitted = SubmittedRecords()
    record = submitted.submit(FILE_A, {"position": 1})
    record.ack()
    assert not submitted.drop(record)
    assert offsets_of(submitted.committable()) == {"a.log": 1}


def test_empty_offset_orders_but_is_never_stored() -> None:
    submitted = SubmittedRecords()
    submitted.submit(FILE_A, {"position": 1}).ack()
    blank = submitted.submit(FILE_A, {})
    assert offsets_of(submitted.committable()) == {"a.log": 1}
    blank.ack()
    result = submitted.committable()
    assert offsets_of(result) == {"a.log": 1}  # still the last real offset
    submitted.committed(result)
    submitted.submit(FILE_A, {}).ack()
    assert not submitted.committable()


def test_submitted_maps_are_copied() -> None:
    submitted = SubmittedRecords()
    offset = {"position": 1}
    submitted.submit(FILE_A, offset).ack()
    offset["position"] = 99
    assert offsets_of(submitted.committable()) == {"a.log": 1}


@pytest.mark.parametrize(
    ("partition", "offset"),
    [({"f": [1]}, {"p": 1}), ({"f": "x"}, {"p": {"nested": 1}}), ({1: "x"}, {"p": 1})],
)
def test_non_scalar_maps_are_rejected(partition: dict, offset: dict) -> None:
    with pytest.raises(ConfigError):
        SubmittedRecords().submit(partition, offset)


def test_await_all_times_out_then_succeeds_after_acks_from_another_thread() -> None:
    submitted = SubmittedRecords()
    handles = [submitted.submit(FILE_A, {"position": p}) for p in range(100)]
    assert not submitted.await_all(0.01)

    def ack_all() -> None:
        for handle in reversed(handles):
            handle.ack()

    thread = threading.Thread(target=ack_all)
    thread.start()
    assert submitted.await_all(5)
    thread.join()
    assert offsets_of(submitted.committable()) == {"a.log": 99}


def test_concurrent_acks_keep_the_count_right() -> None:
    submitted = SubmittedRecords()
    handles = [submitted.submit(FILE_A, {"position": p}) for p in range(2000)]
    rnd = random.Random(7)
    rnd.shuffle(handles)
    threads = [
        threading.Thread(target=lambda h=handles[n::4]: [x.ack() for x in h]) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert submitted.pending == 0
    assert offsets_of(submitted.committable()) == {"a.log": 1999}


# -- the property: random ack orders, interleaved commits ---------------------------


def seq_of(item: PartitionOffset) -> int:
    seq = item.offset["seq"]
    assert isinstance(seq, int)
    return seq


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_never_commits_past_an_unacked_record(
    partitions: list[str], rnd: random.Random, commit_rate: float
) -> None:
    submitted = SubmittedRecords()
    handles = [submitted.submit({"p": p}, {"seq": n}) for n, p in enumerate(partitions)]
    order = list(range(len(handles)))
    rnd.shuffle(order)
    acked: set[int] = set()
    stored: dict[str, int] = {}
    for index in order:
        handles[index].ack()
        acked.add(index)
        if rnd.random() < commit_rate:
            result = submitted.committable()
            for item in result.offsets:
                part, seq = str(item.partition["p"]), seq_of(item)
                # every record of that partition up to seq is acked ...
                assert all(n in acked for n in range(seq + 1) if partitions[n] == part)
                # ... and offsets never go backwards
                assert seq >= stored.get(part, -1)
                stored[part] = seq
            assert result.pending == len(handles) - len(acked)
            if rnd.random() < 0.8:  # sometimes the store write "fails"
                submitted.committed(result)
    final = submitted.committable()
    for item in final.offsets:
        stored[str(item.partition["p"])] = seq_of(item)
    submitted.committed(final)
    last = {p: n for n, p in enumerate(partitions)}
    assert stored == last  # once all are acked, each partition's last offset is stored
    assert submitted.pending == 0
    assert not submitted.committable()
