"""Strings that count (``crdt/lwwregister.py``): what an integer is, and that a register
that never counted encodes as it always did."""

from __future__ import annotations

import pytest

from eventual.codec import DecodeError
from eventual.crdt import LWWRegister, PNCounter
from eventual.crdt.lwwregister import as_integer


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
