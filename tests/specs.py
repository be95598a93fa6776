"""How the law harness builds and changes each replicated type."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from eventual.clocks import DVVSet, VersionVector
from eventual.crdt import (
    BoundedCounter,
    EWFlag,
    GCounter,
    HyperLogLog,
    InsufficientRights,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    ReplicatedList,
    SortedSet,
)
from eventual.lattice import Lattice
from laws import REPLICAS, TypeSpec, actor_of, op

amounts = st.integers(1, 5)
elements = st.one_of(
    st.sampled_from(["apple", "pear", "plum"]), st.integers(-2, 2), st.just(b"\x00k")
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.floats(allow_nan=False, width=32),
)
timestamps = st.integers(0, 6)  # small, so that ties between actors happen often
other_replicas = st.integers(0, REPLICAS - 1)


def _increment(state: Lattice, actor: str, _: Sequence[Lattice], n: int) -> Lattice:
    assert isinstance(state, GCounter | PNCounter | BoundedCounter)
    return state.increment(actor, n)


def _decrement(state: Lattice, actor: str, _: Sequence[Lattice], n: int) -> Lattice:
    assert isinstance(state, PNCounter | BoundedCounter)
    return state.decrement(actor, n)


def _transfer(state: Lattice, actor: str, _: Sequence[Lattice], to: int, n: int) -> Lattice:
    assert isinstance(state, BoundedCounter)
    target = actor_of(to)
    if target == actor:
        target = "elsewhere"
    return state.transfer(actor, target, n)


def _set_add(state: Lattice, actor: str, _: Sequence[Lattice], element: object) -> Lattice:
    assert isinstance(state, ORSet)
    return state.add(actor, element)  # type: ignore[arg-type]


def _set_remove(state: Lattice, actor: str, _: Sequence[Lattice], element: object) -> Lattice:
    assert isinstance(state, ORSet)
    return state.remove(element)  # type: ignore[arg-type]


def _set_clear(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, ORSet)
    return state.clear()


def _map_clear(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, ORMap)
    return state.clear()


def _enable(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, EWFlag)
    return state.enable(actor)


def _disable(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, EWFlag)
    return state.disable()


def _lww_set(state: Lattice, actor: str, _: Sequence[Lattice], value: object, ts: int) -> Lattice:
    assert isinstance(state, LWWRegister)
    return state.set(value, ts, actor)  # type: ignore[arg-type]


def _lww_increment(state: Lattice, actor: str, _: Sequence[Lattice], amount: int) -> Lattice:
    assert isinstance(state, LWWRegister)
    return state.increment(actor, amount)  # ValueError when the value is not an integer


def _lww_increment_float(
    state: Lattice, actor: str, _: Sequence[Lattice], amount: float
) -> Lattice:
    assert isinstance(state, LWWRegister)
    return state.increment_float(actor, amount)  # ValueError when the value is no number


def _mv_set(state: Lattice, actor: str, _: Sequence[Lattice], value: object) -> Lattice:
    assert isinstance(state, MVRegister)
    return state.set(actor, value)  # type: ignore[arg-type]


def _hll_add(state: Lattice, actor: str, _: Sequence[Lattice], element: object) -> Lattice:
    assert isinstance(state, HyperLogLog)
    return state.add(element)  # type: ignore[arg-type]


def _vv_increment(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, VersionVector)
    return state.increment(actor)


def _dvv_update(
    state: Lattice, actor: str, peers: Sequence[Lattice], value: object, read_from: str
) -> Lattice:
    """A write: blind, with the context of a read here, or of a (stale) read elsewhere."""
    assert isinstance(state, DVVSet)
    if read_from == "blind":
        context = None
    elif read_from == "here":
        context = state.context()
    else:
        peer = peers[0] if read_from == "peer-0" else peers[-1]
        assert isinstance(peer, DVVSet)
        context = peer.context()
    return state.update(actor, value, context)  # type: ignore[arg-type]


# ORMap: each key has one nested type, so operations never collide on type.
def _map_counter(state: Lattice, actor: str, _: Sequence[Lattice], key: str, n: int) -> Lattice:
    assert isinstance(state, ORMap)
    return state.update(actor, "count-" + key, PNCounter, lambda c: c.increment(actor, n))


def _map_set(
    state: Lattice, actor: str, _: Sequence[Lattice], key: str, element: object, add: bool
) -> Lattice:
    assert isinstance(state, ORMap)

    def change(s: ORSet) -> None:
        s.add(actor, element) if add else s.remove(element)  # type: ignore[arg-type]

    return state.update(actor, "set-" + key, ORSet, change)


def _map_flag(state: Lattice, actor: str, _: Sequence[Lattice], on: bool) -> Lattice:
    assert isinstance(state, ORMap)
    return state.update(actor, "flag", EWFlag, lambda f: f.enable(actor) if on else f.disable())


def _map_register(state: Lattice, actor: str, _: Sequence[Lattice], value: object) -> Lattice:
    assert isinstance(state, ORMap)
    return state.update(actor, "register", MVRegister, lambda r: r.set(actor, value))  # type: ignore[arg-type]


def _map_nested(state: Lattice, actor: str, _: Sequence[Lattice], key: str, n: int) -> Lattice:
    assert isinstance(state, ORMap)

    def change(inner: ORMap) -> None:
        inner.update(actor, key, GCounter, lambda c: c.increment(actor, n))

    return state.update(actor, "map", ORMap, change)


def _map_remove(state: Lattice, actor: str, _: Sequence[Lattice], key: str) -> Lattice:
    assert isinstance(state, ORMap)
    return state.remove(key)


map_keys = st.sampled_from(["a", "b"])


# SortedSet: scores that tie, infinities, and increments that are not whole.
zset_members = st.sampled_from([b"m", b"n", b"o"])
zset_scores = st.sampled_from([0.0, 1.0, -2.5, 1e300, float("inf"), float("-inf")])


def _zset_add(
    state: Lattice, actor: str, _: Sequence[Lattice], member: bytes, score: float, ts: int
) -> Lattice:
    assert isinstance(state, SortedSet)
    state.ranked()  # keep a ranking while it changes: it is checked against value()
    return state.set_score(actor, member, score, ts)


def _zset_incr(
    state: Lattice, actor: str, _: Sequence[Lattice], member: bytes, amount: float
) -> Lattice:
    assert isinstance(state, SortedSet)
    return state.add_to_score(actor, member, amount)


def _zset_remove(state: Lattice, actor: str, _: Sequence[Lattice], member: bytes) -> Lattice:
    assert isinstance(state, SortedSet)
    return state.remove(member)


def _zset_clear(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, SortedSet)
    return state.clear()


# ReplicatedList: pushes at both ends, pops, a value set in place.
list_values = st.sampled_from([b"a", b"b", b"c"])


def _list_push(
    state: Lattice, actor: str, _: Sequence[Lattice], value: bytes, left: bool, ts: int
) -> Lattice:
    assert isinstance(state, ReplicatedList)
    return state.push(actor, [value], ts, left=left)


def _list_pop(state: Lattice, actor: str, _: Sequence[Lattice], last: bool) -> Lattice:
    assert isinstance(state, ReplicatedList)
    positions = state.positions()
    if not positions:
        return ReplicatedList()
    return state.remove(positions[-1] if last else positions[0])


def _list_set(state: Lattice, actor: str, _: Sequence[Lattice], value: bytes, ts: int) -> Lattice:
    assert isinstance(state, ReplicatedList)
    positions = state.positions()
    if not positions:
        return ReplicatedList()
    return state.set_value(actor, positions[0], value, ts)


def _list_clear(state: Lattice, actor: str, _: Sequence[Lattice]) -> Lattice:
    assert isinstance(state, ReplicatedList)
    return state.clear()


SPECS = [
    TypeSpec("GCounter", GCounter, op(_increment, amounts)),
    TypeSpec("PNCounter", PNCounter, st.one_of(op(_increment, amounts), op(_decrement, amounts))),
    TypeSpec(
        "BoundedCounter",
        BoundedCounter,
        st.one_of(
            op(_increment, amounts),
            op(_decrement, amounts),
            op(_transfer, other_replicas, amounts),
        ),
        refusals=(InsufficientRights,),
    ),
    TypeSpec(
        "LWWRegister",
        LWWRegister,
        st.one_of(
            op(_lww_set, scalars, timestamps),
            op(_lww_increment, st.integers(-3, 3).filter(bool)),
            op(_lww_increment_float, st.sampled_from([0.5, -0.25, 1e-3, 2.0, -1.5])),
            op(_lww_set, st.integers(-3, 3).map(lambda n: b"%d" % n), timestamps),
        ),
        refusals=(ValueError,),
    ),
    TypeSpec("MVRegister", MVRegister, op(_mv_set, scalars)),
    TypeSpec(
        "ORSet",
        ORSet,
        st.one_of(op(_set_add, elements), op(_set_remove, elements), op(_set_clear)),
    ),
    TypeSpec("EWFlag", EWFlag, st.one_of(op(_enable), op(_disable))),
    TypeSpec(
        "ORMap",
        ORMap,
        st.one_of(
            op(_map_counter, map_keys, amounts),
            op(_map_set, map_keys, elements, st.booleans()),
            op(_map_flag, st.booleans()),
            op(_map_register, scalars),
            op(_map_nested, map_keys, amounts),
            op(_map_clear),
            op(
                _map_remove,
                st.sampled_from(
                    ["count-a", "count-b", "set-a", "set-b", "flag", "register", "map"]
                ),
            ),
        ),
    ),
    TypeSpec(
        "SortedSet",
        SortedSet,
        st.one_of(
            op(_zset_add, zset_members, zset_scores, timestamps),
            op(_zset_incr, zset_members, st.sampled_from([0.5, -1.0, 3.0, 0.0])),
            op(_zset_remove, zset_members),
            op(_zset_clear),
        ),
        refusals=(ValueError,),
    ),
    TypeSpec(
        "ReplicatedList",
        ReplicatedList,
        st.one_of(
            op(_list_push, list_values, st.booleans(), timestamps),
            op(_list_pop, st.booleans()),
            op(_list_set, list_values, timestamps),
            op(_list_clear),
        ),
    ),
    # Small precision keeps examples fast; the estimator itself is tested at full size.
    TypeSpec("HyperLogLog", lambda: HyperLogLog(precision=6), op(_hll_add, st.integers(0, 500))),
    TypeSpec("VersionVector", VersionVector, op(_vv_increment)),
    TypeSpec(
        "DVVSet",
        DVVSet,
        op(_dvv_update, scalars, st.sampled_from(["blind", "here", "peer-0", "peer-1"])),
    ),
]
