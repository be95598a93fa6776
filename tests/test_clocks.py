"""Hybrid logical clocks and version vectors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventual.clocks import (
    LOGICAL_BITS,
    ClockDriftError,
    HybridLogicalClock,
    Order,
    VersionVector,
    hlc_logical,
    hlc_pack,
    hlc_wall_ms,
)

wall_times = st.integers(0, 10**13)


def test_timestamps_pack_wall_time_and_a_counter_that_order_with_less_than() -> None:
    assert hlc_pack(5, 1) < hlc_pack(5, 2) < hlc_pack(6, 0)
    ts = hlc_pack(1_700_000_000_000, 7)
    assert (hlc_wall_ms(ts), hlc_logical(ts)) == (1_700_000_000_000, 7)
    assert ts < 2**64
    with pytest.raises(ValueError):
        hlc_pack(1, 1 << LOGICAL_BITS)


@given(st.lists(st.tuples(st.sampled_from(["now", "recv"]), wall_times, wall_times), max_size=50))
def test_hlc_is_strictly_monotonic_and_never_behind_wall_time(
    events: list[tuple[str, int, int]],
) -> None:
    clock = HybridLogicalClock(max_drift_ms=10**14)
    last = 0
    for kind, wall, remote_wall in events:
        remote = hlc_pack(remote_wall, 3)
        ts = clock.now(wall) if kind == "now" else clock.update(remote, wall)
        assert ts > last
        assert hlc_wall_ms(ts) >= wall
        if kind == "recv":
            assert ts > remote
        last = ts


def test_hlc_logical_counter_advances_while_wall_time_stands_still() -> None:
    clock = HybridLogicalClock()
    first = clock.now(1000)
    second = clock.now(1000)
    assert (hlc_wall_ms(second), hlc_logical(second)) == (1000, hlc_logical(first) + 1)
    later = clock.now(1001)
    assert (hlc_wall_ms(later), hlc_logical(later)) == (1001, 0)


def test_hlc_receive_moves_past_a_remote_clock_that_is_ahead_within_the_drift() -> None:
    clock = HybridLogicalClock(max_drift_ms=500)
    remote = hlc_pack(1400, 9)
    ts = clock.update(remote, wall_ms=1000)
    assert ts == remote + 1
    assert clock.now(1000) > ts  # local events keep ordering after it


def test_hlc_refuses_a_remote_clock_beyond_the_maximum_drift() -> None:
    clock = HybridLogicalClock(max_drift_ms=500)
    before = clock.now(1000)
    with pytest.raises(ClockDriftError) as refused:
        clock.update(hlc_pack(1501), wall_ms=1000)
    assert refused.value.drift_ms == 501
    assert "501 ms ahead" in str(refused.value)
    assert clock.last == before  # unchanged
    assert clock.update(hlc_pack(1500), wall_ms=1000) > before  # at the limit: accepted


def test_hlc_logical_overflow_carries_into_the_millisecond() -> None:
    clock = HybridLogicalClock(last=hlc_pack(7, (1 << LOGICAL_BITS) - 1))
    ts = clock.now(7)
    assert (hlc_wall_ms(ts), hlc_logical(ts)) == (8, 0)


vectors = st.dictionaries(st.sampled_from("abcd"), st.integers(0, 4)).map(VersionVector)


@given(vectors, vectors)
def test_version_vector_comparison_matches_its_definition(
    a: VersionVector, b: VersionVector
) -> None:
    actors = set(a) | set(b)
    le = all(a[x] <= b[x] for x in actors)
    ge = all(a[x] >= b[x] for x in actors)
    expected = {
        (True, True): Order.SAME,
        (True, False): Order.BEFORE,
        (False, True): Order.AFTER,
        (False, False): Order.CONCURRENT,
    }[(le, ge)]
    assert a.compare(b) is expected
    mirrored = {Order.BEFORE: Order.AFTER, Order.AFTER: Order.BEFORE}.get(expected, expected)
    assert b.compare(a) is mirrored
    joined = a.copy()
    joined.merge(b)
    assert joined.descends(a) and joined.descends(b)
