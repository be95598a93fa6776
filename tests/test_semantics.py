"""Model tests: each type against a model of its intended semantics.

The model keeps, per replica, the set of events it has seen; every event records the events
its replica had seen when it happened (its causal past). Replicas exchange full states, and
the model unions histories at the same time. The intended semantics are then stated over
histories, in the words of the papers:

- add-wins set: an element is present iff one of its adds is not in the causal past of any
  of its removes;
- enable-wins flag: the same, with enable and disable;
- multi-value register: the values of the writes no other write has seen;
- DVVSet: the values of the writes not covered by the context of any other write;
- counters: the sum of the increments (minus the decrements) seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventual.clocks import DVVSet, VersionVector
from eventual.codec import DecodeError, sort_key
from eventual.crdt import (
    BoundedCounter,
    EWFlag,
    GCounter,
    HyperLogLog,
    InsufficientRights,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    WrongType,
)

REPLICAS = 3


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    arg: Any
    past: frozenset[int]  # ids of the events the replica had seen


@dataclass
class Replica:
    state: Any
    seen: set[int] = field(default_factory=set)


class History:
    def __init__(self, new: Any) -> None:
        self.replicas = [Replica(new()) for _ in range(REPLICAS)]
        self.events: dict[int, Event] = {}

    def record(self, index: int, kind: str, arg: Any) -> Event:
        replica = self.replicas[index]
        event = Event(len(self.events), kind, arg, frozenset(replica.seen))
        self.events[event.id] = event
        replica.seen.add(event.id)
        return event

    def sync(self, target: int, source: int) -> None:
        self.replicas[target].state.merge(self.replicas[source].state.copy())
        self.replicas[target].seen |= self.replicas[source].seen

    def seen_by(self, index: int) -> list[Event]:
        return [self.events[i] for i in sorted(self.replicas[index].seen)]


steps = st.lists(
    st.tuples(
        st.sampled_from(["op", "op", "sync"]), st.integers(0, REPLICAS - 1), st.integers(0, 99)
    ),
    max_size=30,
)


def actor(index: int) -> str:
    return f"r{index}"


def survivors(events: list[Event], add: str, remove: str, element: Any) -> bool:
    adds = [e for e in events if e.kind == add and e.arg == element]
    removes = [e for e in events if e.kind == remove and e.arg == element]
    return any(all(a.id not in r.past for r in removes) for a in adds)


# --- add-wins set ---


@given(steps)
def test_orset_is_add_wins(plan: list[tuple[str, int, int]]) -> None:
    history = History(ORSet)
    universe = ["a", "b", "c"]
    for kind, index, choice in plan:
        if kind == "sync":
            history.sync(index, choice % REPLICAS)
            continue
        element = universe[choice % 3]
        state = history.replicas[index].state
        if choice % 2:
            state.add(actor(index), element)
            history.record(index, "add", element)
        else:
            state.remove(element)
            history.record(index, "remove", element)
    for index, replica in enumerate(history.replicas):
        events = history.seen_by(index)
        expected = {e for e in universe if survivors(events, "add", "remove", e)}
        assert replica.state.value() == expected


def test_orset_concurrent_add_and_remove_keeps_the_element() -> None:
    left, right = ORSet(), ORSet()
    left.add("L", "x")
    right.merge(left)
    right.remove("x")  # removes the add it saw...
    left.add("L", "x")  # ...but not this concurrent one
    left.merge(right)
    right.merge(left)
    assert left.value() == right.value() == {"x"}


def test_orset_remove_of_an_observed_add_sticks() -> None:
    left, right = ORSet(), ORSet()
    left.add("L", "x")
    right.merge(left)
    right.remove("x")
    left.merge(right)
    assert "x" not in left
    assert right.remove("absent") == ORSet()  # a no-op with an empty delta


def test_orset_keeps_no_tombstones() -> None:
    s = ORSet()
    for i in range(1000):
        s.add("a", i)
        s.remove(i)
    # a thousand adds and removes leave one context entry, not a thousand tombstones
    assert len(s.to_bytes()) < 32


# --- enable-wins flag ---


@given(steps)
def test_ewflag_is_enable_wins(plan: list[tuple[str, int, int]]) -> None:
    history = History(EWFlag)
    for kind, index, choice in plan:
        if kind == "sync":
            history.sync(index, choice % REPLICAS)
        elif choice % 2:
            history.replicas[index].state.enable(actor(index))
            history.record(index, "enable", None)
        else:
            history.replicas[index].state.disable()
            history.record(index, "disable", None)
    for index, replica in enumerate(history.replicas):
        events = history.seen_by(index)
        assert replica.state.value() == survivors(events, "enable", "disable", None)


# --- multi-value register ---


@given(steps)
def test_mvregister_keeps_exactly_the_concurrent_values(plan: list[tuple[str, int, int]]) -> None:
    history = History(MVRegister)
    for kind, index, choice in plan:
        if kind == "sync":
            history.sync(index, choice % REPLICAS)
        else:
            history.replicas[index].state.set(actor(index), choice)
            history.record(index, "write", choice)
    for index, replica in enumerate(history.replicas):
        writes = [e for e in history.seen_by(index) if e.kind == "write"]
        live = [w.arg for w in writes if not any(w.id in other.past for other in writes)]
        assert sorted(replica.state.value(), key=sort_key) == sorted(live, key=sort_key)


# --- DVVSet ---


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["write", "write", "sync"]),
            st.integers(0, REPLICAS - 1),
            st.sampled_from(["blind", "here", "peer"]),
            st.integers(0, REPLICAS - 1),
        ),
        max_size=30,
    )
)
def test_dvvset_siblings_follow_the_contexts(plan: list[tuple[str, int, str, int]]) -> None:
    history = History(DVVSet)
    for step, (kind, index, read_from, peer) in enumerate(plan):
        if kind == "sync":
            history.sync(index, peer)
            continue
        state = history.replicas[index].state
        if read_from == "blind":
            context, covers = None, frozenset[int]()
        else:
            source = index if read_from == "here" else peer
            context = history.replicas[source].state.context()
            covers = frozenset(history.replicas[source].seen)
        state.update(actor(index), step, context)
        history.record(index, "write", (step, covers))
        # The context joins the writer's causal history (the paper's sync of the context
        # into the clock): the writer now knows of every write the context covers.
        history.replicas[index].seen |= covers
    for index, replica in enumerate(history.replicas):
        writes = history.seen_by(index)
        live = [w.arg[0] for w in writes if not any(w.id in other.arg[1] for other in writes)]
        assert sorted(replica.state.values()) == sorted(live)


def test_dvvset_concurrent_writes_are_siblings_and_a_context_write_replaces_them() -> None:
    a, b = DVVSet(), DVVSet()
    a.update("A", "v1")
    b.merge(a)
    context = a.context()  # a client reads v1 here...
    a.update("A", "v2", context)  # ...writes v2 over it on A
    b.update("B", "v3", context)  # another client, same read, writes v3 on B
    a.merge(b)
    assert sorted(a.values()) == ["v2", "v3"]  # both kept: neither saw the other
    b.update("B", "v4", a.context())  # a client that read both siblings resolves them
    a.merge(b)
    assert a.values() == ["v4"]


def test_dvvset_write_keeps_what_the_context_does_not_cover() -> None:
    a = DVVSet()
    a.update("A", "old")
    stale = a.context()
    a.update("A", "newer", stale)  # replaces "old"
    a.update("A", "from-stale-read", stale)  # has not seen "newer": keeps it
    assert sorted(a.values()) == ["from-stale-read", "newer"]
    a.update("A", "blind")  # no context: a sibling of everything
    assert len(a) == 3


# --- counters ---


@given(steps)
def test_counters_sum_what_they_have_seen(plan: list[tuple[str, int, int]]) -> None:
    g, pn = History(GCounter), History(PNCounter)
    for kind, index, choice in plan:
        if kind == "sync":
            g.sync(index, choice % REPLICAS)
            pn.sync(index, choice % REPLICAS)
            continue
        amount = choice % 7 + 1
        g.replicas[index].state.increment(actor(index), amount)
        g.record(index, "inc", amount)
        if choice % 2:
            pn.replicas[index].state.increment(actor(index), amount)
            pn.record(index, "inc", amount)
        else:
            pn.replicas[index].state.decrement(actor(index), amount)
            pn.record(index, "dec", -amount)
    for index in range(REPLICAS):
        assert g.replicas[index].state.value() == sum(e.arg for e in g.seen_by(index))
        assert pn.replicas[index].state.value() == sum(e.arg for e in pn.seen_by(index))


# --- bounded counter ---

bounded_steps = st.lists(
    st.tuples(
        st.sampled_from(["inc", "dec", "dec", "dec", "transfer", "sync", "deliver", "deliver"]),
        st.integers(0, REPLICAS - 1),
        st.integers(0, REPLICAS - 1),
        st.integers(1, 6),
    ),
    max_size=60,
)


@given(bounded_steps, st.randoms(use_true_random=False))
def test_bounded_counter_never_goes_below_zero(plan: list[Any], rng: Any) -> None:
    """Random decrements and transfers; states travel both as full states and as deltas
    delivered out of order, late and twice. No replica may ever read below zero."""
    replicas = [BoundedCounter() for _ in range(REPLICAS)]
    in_flight: list[tuple[int, BoundedCounter]] = []
    incremented = decremented = 0
    for kind, index, other, n in plan:
        state = replicas[index]
        try:
            if kind == "inc":
                in_flight.append((other, state.increment(actor(index), n)))
                incremented += n
            elif kind == "dec":
                held = state.rights(actor(index))
                in_flight.append((other, state.decrement(actor(index), n)))
                assert held >= n
                decremented += n
            elif kind == "transfer" and other != index:
                in_flight.append((other, state.transfer(actor(index), actor(other), n)))
        except InsufficientRights as refusal:
            assert refusal.held < n
            assert f"holds {refusal.held} rights" in str(refusal)
        if kind == "sync":
            state.merge(replicas[other].copy())
        elif kind == "deliver" and in_flight:
            target, delta = in_flight[rng.randrange(len(in_flight))]  # any order, maybe twice
            replicas[target].merge(delta)
        for replica in replicas:
            assert replica.value() >= 0
            assert all(replica.rights(a) >= 0 for a in replica.actors())
    for replica in replicas[1:]:
        replicas[0].merge(replica)
    assert replicas[0].value() == incremented - decremented


def test_bounded_counter_rights_move_by_transfer() -> None:
    stock = BoundedCounter()
    stock.increment("us-east", 10)
    assert stock.rights("us-east") == 10
    assert stock.rights("eu-west") == 0
    stock.transfer("us-east", "eu-west", 4)
    assert (stock.rights("us-east"), stock.rights("eu-west"), stock.value()) == (6, 4, 10)
    stock.decrement("eu-west", 4)
    try:
        stock.decrement("eu-west", 1)
    except InsufficientRights as refusal:
        assert (refusal.actor, refusal.held, refusal.requested) == ("eu-west", 0, 1)
    else:
        raise AssertionError("decrement without rights was accepted")
    assert stock.value() == 6


# --- observed-remove map ---


@given(steps)
def test_ormap_keys_are_add_wins(plan: list[tuple[str, int, int]]) -> None:
    history = History(ORMap)
    keys = ["k1", "k2"]
    for kind, index, choice in plan:
        if kind == "sync":
            history.sync(index, choice % REPLICAS)
            continue
        key = keys[choice % 2]
        state = history.replicas[index].state
        if choice % 3:
            state.update(actor(index), key, GCounter, lambda c, i=index: c.increment(actor(i)))
            history.record(index, "update", key)
        else:
            state.remove(key)
            history.record(index, "remove", key)
    for index, replica in enumerate(history.replicas):
        events = history.seen_by(index)
        assert set(replica.state.value()) == {
            k for k in keys if survivors(events, "update", "remove", k)
        }


def test_ormap_nested_update_survives_a_concurrent_remove() -> None:
    left, right = ORMap(), ORMap()
    left.update("L", "likes", PNCounter, lambda c: c.increment("L", 5))
    left.update("L", "tags", ORSet, lambda s: s.add("L", "python"))
    right.merge(left)
    left.remove("likes")
    left.remove("tags")
    right.update("R", "likes", PNCounter, lambda c: c.increment("R", 1))
    right.update("R", "tags", ORSet, lambda s: s.add("R", "crdt"))
    left.merge(right)
    right.merge(left)
    assert left == right
    # add wins: both keys survive, with the concurrent updater's view of them
    assert left.value() == {"likes": 6, "tags": {"python", "crdt"}}


def test_ormap_remove_of_an_observed_key_sticks_and_nested_maps_work() -> None:
    left, right = ORMap(), ORMap()
    left.update(
        "L",
        "profile",
        ORMap,
        lambda m: m.update("L", "visits", GCounter, lambda c: c.increment("L", 2)),
    )
    right.merge(left)
    right.remove("profile")
    left.merge(right)
    assert left.value() == {}
    left.update("L", "n", GCounter, lambda c: c.increment("L"))
    try:
        left.update("L", "n", ORSet, lambda s: s.add("L", 1))
    except WrongType as error:
        assert "GCounter" in str(error)
    else:
        raise AssertionError("an ORSet operation on a GCounter key was accepted")


# --- HyperLogLog ---


def test_hyperloglog_is_within_three_standard_errors_on_100k_items() -> None:
    hll = HyperLogLog()
    for i in range(100_000):
        hll.add(f"item-{i}")
    error = abs(hll.value() - 100_000) / 100_000
    assert hll.standard_error < 0.009
    assert error < 3 * hll.standard_error, f"estimate {hll.value()} is {error:.2%} off"


def test_hyperloglog_counts_duplicates_and_replicas_once() -> None:
    halves = [HyperLogLog(precision=10), HyperLogLog(precision=10)]
    whole = HyperLogLog(precision=10)
    for i in range(20_000):
        halves[i % 2].add(i)
        halves[(i + 1) % 2].add(i % 500)  # duplicates, seen on both replicas
        whole.add(i)
    halves[0].merge(halves[1])
    assert halves[0] == whole
    error = abs(whole.value() - 20_000) / 20_000
    assert error < 3 * whole.standard_error
    small = HyperLogLog()
    for i in range(100):
        small.add(i)
    assert abs(small.value() - 100) <= 3  # linear counting is near exact while sparse
    assert math.isclose(HyperLogLog(precision=4).standard_error, 0.26)


def test_hyperloglog_decoding_refuses_a_rank_above_the_maximum_in_either_layout() -> None:
    sparse, dense = HyperLogLog(precision=10), HyperLogLog(precision=4)
    sparse.add(b"one")
    for i in range(200):
        dense.add(i)  # 16 registers, all set: the dense layout
    for hll in (sparse, dense):
        assert HyperLogLog.from_bytes(hll.to_bytes()) == hll
        data = bytearray(hll.to_bytes())
        top = 64 - hll._precision + 1
        data[-1] = top  # the last register (dense) or the last entry's rank (sparse)
        assert HyperLogLog.from_bytes(bytes(data)).value() >= 0
        data[-1] = top + 1
        with pytest.raises(DecodeError, match="above the maximum"):
            HyperLogLog.from_bytes(bytes(data))


def test_version_vector_compare_is_four_way() -> None:
    a, b = VersionVector({"x": 1}), VersionVector({"x": 1})
    assert a.compare(b).value == "same"
    b.increment("y")
    assert a.compare(b).value == "before"
    assert b.compare(a).value == "after"
    a.increment("z")
    assert a.compare(b).value == "concurrent"
