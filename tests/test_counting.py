"""Strings that count (``crdt/lwwregister.py``): what an integer is, and that a register
that never counted encodes as it always did."""

from __future__ import annotations

import pytest

from eventual.codec import DecodeError
from eventual.crdt import LWWRegister, PNCounter
from eventual.crdt.lwwregister import as_float, as_integer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"-12", -12),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),  # past 64 bits
        (b"+1", None),
        (b" 1", None),
        (b"01", None),
        (b"1_000", None),
        (b"1.5", None),
        (b"", None),
        (b"abc", None),
        (7, 7),
        (True, None),
        (1.0, None),
    ],
)
def test_an_integer_is_what_redis_takes_for_one(value: object, expected: int | None) -> None:
    assert as_integer(value) == expected  # type: ignore[arg-type]


def test_a_register_that_never_counted_encodes_as_before() -> None:
    register = LWWRegister()
    register.set(b"v", 5, "n1")
    # The frame of the version before strings counted: [timestamp, actor, value].
    assert register.to_bytes() == bytes.fromhex("04019305a26e31c40176")
    assert LWWRegister.from_bytes(register.to_bytes()).value() == b"v"


def test_increments_refuse_what_is_not_an_integer_and_leave_it_unchanged() -> None:
    register = LWWRegister()
    register.set(b"abc", 5, "n1")
    before = register.to_bytes()
    with pytest.raises(ValueError, match="not an integer"):
        register.increment("n1", 1)
    register.set(b"9223372036854775806", 6, "n1")
    register.increment("n1", 1)
    with pytest.raises(ValueError, match="would overflow"):
        register.increment("n2", 1)
    assert register.value() == 2**63 - 1 and before != register.to_bytes()


def test_a_counted_register_round_trips_and_empty_counters_are_not_canonical() -> None:
    register = LWWRegister()
    register.increment("n1", 3)
    register.set(b"10", 7, "n2")
    register.increment("n3", -1)
    again = LWWRegister.from_bytes(register.to_bytes())
    assert again == register and again.value() == 9
    # The same write with two empty counters attached: one state, one encoding only.
    padded = LWWRegister()
    padded.set(b"10", 7, "n2")
    payload = [*padded._payload(), PNCounter()._payload(), PNCounter()._payload()]
    from eventual.codec import encode_frame

    with pytest.raises(DecodeError, match="not canonical"):
        LWWRegister.from_bytes(encode_frame(LWWRegister.TAG, LWWRegister.VERSION, payload))


def test_increments_by_a_double_count_and_read_as_a_numbers_text() -> None:
    register = LWWRegister()
    register.set(b"10.50", 5, "n1")
    register.increment_float("n1", 0.1)
    assert register.value() == b"10.6"  # the shortest text of the double, as Redis prints it
    register.increment_float("n2", -0.6)
    assert register.value() == b"10"  # a whole number without a point
    register.increment("n2", 2)
    assert register.value() == b"12" and register.number() == 12
    again = LWWRegister.from_bytes(register.to_bytes())
    assert again == register and again.value() == b"12"
    register.set(b"word", 6, "n3")
    with pytest.raises(ValueError, match="not a valid float"):
        register.increment_float("n1", 1.0)
    huge = LWWRegister()
    huge.set(b"1.7e308", 1, "n1")
    with pytest.raises(ValueError, match="NaN or Infinity"):
        huge.increment_float("n1", 1.7e308)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1.5", 1.5),
        (b"-3", -3.0),
        (b"1e3", 1000.0),
        (b" 1", None),
        (b"nan", None),
        (b"inf", None),
        (b"1_0", None),
        (b"", None),
    ],
)
def test_a_float_is_what_incrbyfloat_takes(value: bytes, expected: float | None) -> None:
    assert as_float(value) == expected
