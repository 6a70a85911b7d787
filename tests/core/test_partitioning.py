"""Key → partition and the averaging assignment."""

from hypothesis import given
from hypothesis import strategies as st

from omconnect.partitioning import assign_averagely, partition_for_key


def test_partition_for_key_is_stable() -> None:
    # Fixed values: a change here moves keys between partitions for existing users.
    assert [partition_for_key(k, 8) for k in ("a", "order-1", "")] == [0, 4, 0]
    spread = {partition_for_key(f"k{i}", 8) for i in range(200)}
    assert spread == set(range(8))


@given(
    st.sets(st.text(min_size=1, max_size=5), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=40),
)
def test_every_partition_has_exactly_one_owner(members: set[str], count: int) -> None:
    partitions = [("q", i) for i in range(count)]
    owned = [p for m in members for p in assign_averagely(m, list(members), partitions)]
    assert sorted(owned) == sorted(partitions)
    sizes = [len(assign_averagely(m, list(members), partitions)) for m in members]
    assert max(sizes) - min(sizes) <= 1


def test_non_member_owns_nothing() -> None:
    assert assign_averagely("x", ["a", "b"], [("q", 0)]) == []
