"""One law harness for every replicated type (``eventual.lattice.Lattice``).

A ``TypeSpec`` says how to make an empty state and which operations a replica may perform.
From it, ``systems`` draws *reachable* states: a few replicas, each with its own actor, run a
random history of operations interleaved with merges between them, so the states share
causal history the way real replicas do (states built at random would break dot uniqueness
and test nothing real).

The laws, each a plain function that raises AssertionError when broken, so a test can run
them against a deliberately wrong type and expect them to fail:

- merge is idempotent, commutative and associative (compared by ``==``, by encoding and by
  ``value()``), and never changes its argument;
- a mutator's delta merged into a replica that has the previous state equals the mutated
  state, and merged into any other replica equals merging the mutated full state;
- encode/decode round-trips; equal states give equal bytes; ``copy`` is independent;
- random and corrupted bytes raise ``DecodeError`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from eventual.codec import DecodeError
from eventual.lattice import Lattice

# An operation: (state, actor, peers) -> delta. ``peers`` are the other replicas' states, for
# operations that read elsewhere first (a write with a context read from another replica).
Operation = Callable[[Lattice, str, Sequence[Lattice]], Lattice]


@dataclass(frozen=True)
class TypeSpec:
    name: str
    new: Callable[[], Lattice]
    operations: st.SearchStrategy[Operation]
    # Refusals an operation may legitimately raise (e.g. InsufficientRights); the harness
    # treats them as "nothing happened" and checks that indeed nothing did.
    refusals: tuple[type[Exception], ...] = field(default=())

    def __repr__(self) -> str:
        return self.name


REPLICAS = 3
STEPS_MAX = 14


def actor_of(index: int) -> str:
    return f"replica-{index}"


def apply(
    spec: TypeSpec, states: list[Lattice], index: int, operation: Operation
) -> Lattice | None:
    """Run one operation at one replica; None if it was refused (and then nothing changed)."""
    state = states[index]
    before = state.to_bytes()
    peers = [s for i, s in enumerate(states) if i != index]
    try:
        return operation(state, actor_of(index), peers)
    except spec.refusals:
        assert state.to_bytes() == before, f"a refused operation changed {spec.name}"
        return None


@st.composite
def systems(draw: st.DrawFn, spec: TypeSpec, steps_max: int = STEPS_MAX) -> list[Lattice]:
    """Replicas after a random history of operations and merges."""
    states = [spec.new() for _ in range(REPLICAS)]
    replica = st.integers(0, REPLICAS - 1)
    for _ in range(draw(st.integers(0, steps_max))):
        if draw(st.booleans()):
            apply(spec, states, draw(replica), draw(spec.operations))
        else:
            target, source = draw(replica), draw(replica)
            states[target].merge(states[source].copy())
    return states


def merged(a: Lattice, b: Lattice) -> Lattice:
    result = a.copy()
    result.merge(b)
    return result


def assert_same(a: Lattice, b: Lattice, law: str) -> None:
    assert a == b, f"{law}: states differ: {a!r} != {b!r}"
    assert a.to_bytes() == b.to_bytes(), f"{law}: equal states encode differently"
    assert a.value() == b.value(), f"{law}: values differ: {a.value()!r} != {b.value()!r}"


# --- the laws ---


def law_idempotent(x: Lattice) -> None:
    assert_same(merged(x, x), x, "idempotence")


def law_commutative(x: Lattice, y: Lattice) -> None:
    assert_same(merged(x, y), merged(y, x), "commutativity")


def law_associative(x: Lattice, y: Lattice, z: Lattice) -> None:
    assert_same(merged(merged(x, y), z), merged(x, merged(y, z)), "associativity")


def law_merge_leaves_argument(spec: TypeSpec, x: Lattice, y: Lattice, operation: Operation) -> None:
    before = y.to_bytes()
    result = merged(x, y)
    assert y.to_bytes() == before, "merge changed its argument"
    apply(spec, [result, spec.new(), spec.new()], 0, operation)
    assert y.to_bytes() == before, "the merged state shares mutable parts with the argument"


def law_delta(spec: TypeSpec, states: list[Lattice], index: int, operation: Operation) -> None:
    before = states[index].copy()
    others = [s.copy() for i, s in enumerate(states) if i != index]
    delta = apply(spec, states, index, operation)
    if delta is None:
        return
    after = states[index]
    assert type(delta) is type(after), "a mutator must return a delta of its own type"
    assert_same(merged(before, delta), after, "delta applied to the previous state")
    for other in others:
        through_delta = merged(merged(other, before), delta)
        through_state = merged(other, after)
        assert_same(through_delta, through_state, "delta applied to another replica")


def law_round_trip(x: Lattice) -> None:
    data = x.to_bytes()
    decoded = type(x).from_bytes(data)
    assert_same(decoded, x, "round trip")
    assert decoded.to_bytes() == data, "re-encoding a decoded state changed its bytes"
    clone = x.copy()
    assert_same(clone, x, "copy")


def law_copy_independent(spec: TypeSpec, x: Lattice, operation: Operation) -> None:
    before = x.to_bytes()
    clone = x.copy()
    states: list[Lattice] = [clone, spec.new(), spec.new()]
    apply(spec, states, 0, operation)
    assert x.to_bytes() == before, "changing a copy changed the original"


def law_bad_bytes(type_: type[Lattice], data: bytes) -> None:
    try:
        decoded = type_.from_bytes(data)
    except DecodeError:
        return
    # Accepted: then it must be the canonical encoding of a state.
    assert decoded.to_bytes() == data, "accepted bytes that are not a canonical encoding"


@st.composite
def corrupted(draw: st.DrawFn, spec: TypeSpec) -> bytes:
    """Bytes near a valid encoding (most random bytes fail at the tag byte and test little)."""
    states = draw(systems(spec, steps_max=6))
    data = bytearray(states[0].to_bytes())
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "random-body"]))
    if kind == "flip" and len(data) > 2:
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(2, len(data) - 1))
            data[position] = draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    elif kind == "splice" and len(data) > 2:
        position = draw(st.integers(2, len(data)))
        data[position:position] = draw(st.binary(min_size=1, max_size=8))
    else:
        data = data[:2] + draw(st.binary(max_size=64))
    return bytes(data)


def any_bytes(spec: TypeSpec) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=64), corrupted(spec))


def op(
    fn: Callable[..., Lattice], *strategies: st.SearchStrategy[Any]
) -> st.SearchStrategy[Operation]:
    """An operation strategy from ``fn(state, actor, peers, *drawn_args)``."""

    def build(args: tuple[Any, ...]) -> Operation:
        def operation(state: Lattice, actor: str, peers: Sequence[Lattice]) -> Lattice:
            return fn(state, actor, peers, *args)

        operation.__qualname__ = f"{fn.__name__}{args!r}"
        return operation

    return st.tuples(*strategies).map(build)
