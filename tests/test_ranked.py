"""The collections kept in order (crdt/ranked.py). The sorted set's ranking is kept up to
date member by member through every kind of change (writes, merges, removes, loads from
cells), and every ranked read answers what a plain sort of the members answers. A list's
positions always fall strictly between their neighbours, and replicas that push and pop at
once agree on one order. The lattice laws are in test_laws.py (specs.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventual.codec import DecodeError
from eventual.crdt import LWWRegister, ORMap, ReplicatedList, SortedSet
from eventual.crdt.ranked import By, Ranked
from eventual.crdt.rlist import END_STEP, position_between, site_of

MEMBERS = [b"a", b"b", b"c", b"d", b"e", b"f"]
SCORES = [0.0, 1.0, 1.0, 2.5, -3.0, math.inf, -math.inf]

changes = st.lists(
    st.tuples(
        st.sampled_from(["add", "incr", "remove", "merge", "clear", "rank"]),
        st.integers(0, 2),  # the replica
        st.sampled_from(MEMBERS),
        st.sampled_from(SCORES),
        st.integers(0, 2),  # the other replica (merge)
    ),
    max_size=40,
)


def plain(state: SortedSet) -> list[tuple[float, bytes]]:
    """The ranking by a plain sort of what ``value`` says."""
    return sorted((score, member) for member, score in state.value().items())  # type: ignore[misc]


def play(steps: list[tuple[str, int, bytes, float, int]]) -> list[SortedSet]:
    replicas = [SortedSet() for _ in range(3)]
    for clock, (kind, at, member, score, other) in enumerate(steps, 1):
        state = replicas[at]
        if kind == "add":
            state.set_score(f"r{at}", member, score, clock)
        elif kind == "incr":
            state.add_to_score(f"r{at}", member, 1.5 if math.isfinite(score) else -0.5)
        elif kind == "remove":
            state.remove(member)
        elif kind == "merge":
            state.merge(replicas[other])
        elif kind == "clear":
            state.clear()
        else:
            state.ranked()  # from here on this replica keeps its ranking as it changes
    return replicas


@given(changes)
@settings(max_examples=300, deadline=None)
def test_the_ranking_kept_up_to_date_equals_a_plain_sort(steps: list[Any]) -> None:
    for state in play(steps):
        assert list(state.ranked()) == plain(state)
        again = SortedSet.from_bytes(state.to_bytes())
        assert list(again.ranked()) == plain(state)


def answer(ranking: list[tuple[float, bytes]], query: Ranked) -> tuple[list[bytes], int]:
    """What a ranked read selects, by walking the whole ranking (the model)."""
    size = len(ranking)
    if query.by is By.MEMBER:
        for rank, (_, member) in enumerate(ranking):
            if member == query.member:
                return [member], size - 1 - rank if query.rev else rank
        return [], -1
    if query.by is By.RANK:
        order = ranking[::-1] if query.rev else ranking
        start = query.low + size if query.low < 0 else query.low
        stop = query.high + size if query.high < 0 else query.high
        picked = [m for i, (_, m) in enumerate(order) if max(start, 0) <= i <= stop]
    else:

        def inside(score: float) -> bool:
            low_ok = score > query.low if query.low_open else score >= query.low
            high_ok = score < query.high if query.high_open else score <= query.high
            return low_ok and high_ok

        picked = [m for s, m in ranking if inside(s)]
        if query.rev:
            picked.reverse()
    if query.count_only:
        return [], len(picked)
    end = None if query.limit < 0 else query.offset + query.limit
    return picked[query.offset : end], 0


bounds = st.sampled_from([-math.inf, -3.0, 0.0, 1.0, 2.0, math.inf])


@given(
    changes,
    st.integers(-7, 7),
    st.integers(-7, 7),
    bounds,
    bounds,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
    st.integers(-1, 4),
    st.sampled_from(MEMBERS),
)
@settings(max_examples=400, deadline=None)
def test_ranked_reads_answer_what_the_plain_sort_answers(  # noqa: PLR0917
    steps: list[Any],
    start: int,
    stop: int,
    low: float,
    high: float,
    low_open: bool,
    high_open: bool,
    rev: bool,
    offset: int,
    limit: int,
    member: bytes,
) -> None:
    state = play(steps)[0]
    ranking = plain(state)
    queries = [
        Ranked(By.RANK, start, stop, rev=rev),
        Ranked(By.MEMBER, member=member, rev=rev),
        Ranked(
            By.SCORE,
            low,
            high,
            low_open=low_open,
            high_open=high_open,
            rev=rev,
            offset=offset,
            limit=limit,
        ),
        Ranked(By.SCORE, low, high, low_open=low_open, high_open=high_open, count_only=True),
    ]
    for query in queries:
        members, position = state.select(query)
        expected, expected_position = answer(ranking, query)
        assert members == expected, query.to_payload()
        if query.by is By.MEMBER or query.count_only:
            assert position == expected_position, query.to_payload()


def test_lex_ranges_over_members_of_one_score() -> None:
    state = SortedSet()
    for i, member in enumerate([b"a", b"b", b"c", b"d"]):
        state.set_score("r", member, 0.0, i)

    def lex(low: bytes | None, high: bytes | None, **flags: Any) -> list[bytes]:
        return state.select(Ranked(By.LEX, low, high, **flags))[0]

    assert lex(None, None) == [b"a", b"b", b"c", b"d"]  # - +
    assert lex(b"b", None) == [b"b", b"c", b"d"]  # [b +
    assert lex(b"b", b"d", low_open=True, high_open=True) == [b"c"]  # (b (d
    assert lex(None, b"c", rev=True) == [b"c", b"b", b"a"]
    assert lex(None, None, low_open=True) == []  # + as the minimum: nothing
    assert lex(None, None, high_open=True) == []  # - as the maximum: nothing
    assert lex(None, None, offset=1, limit=2) == [b"b", b"c"]
    assert state.select(Ranked(By.LEX, b"a", b"c", count_only=True))[1] == 3


def test_increments_all_count_and_a_zadd_overrides_only_what_it_saw() -> None:
    a, b = SortedSet(), SortedSet()
    a.set_score("a", b"m", 1.0, 10)
    b.merge(a)
    a.ranked()
    b.ranked()
    a.add_to_score("a", b"m", 5.0)  # concurrent increments on two replicas: both count
    b.add_to_score("b", b"m", 3.0)
    a.merge(b)
    assert a.score(b"m") == 9.0
    b.set_score("b", b"m", 100.0, 20)  # b had seen its own +3, not a's +5
    a.merge(b)
    b.merge(a)
    assert a.score(b"m") == b.score(b"m") == 105.0
    assert list(a.ranked()) == [(105.0, b"m")]
    a.set_score("a", b"inf", math.inf, 30)
    a.add_to_score("a", b"inf", 1.0)  # infinite stays infinite
    assert a.score(b"inf") == math.inf
    with pytest.raises(ValueError, match="finite"):
        a.add_to_score("a", b"m", math.inf)
    with pytest.raises(ValueError, match="NaN"):
        a.set_score("a", b"m", math.nan, 40)


def test_decoding_refuses_what_no_sorted_set_holds() -> None:
    words = ORMap()
    words.update("r", b"m", LWWRegister, lambda r: r.set(b"high", 1, "r"))
    payload = words._payload()
    with pytest.raises(DecodeError, match="not a double"):
        SortedSet._from_payload(payload)
    texts = ORMap()
    texts.update("r", "text", LWWRegister, lambda r: r.set(1.0, 1, "r"))
    with pytest.raises(DecodeError, match="not bytes"):
        SortedSet._from_payload(texts._payload())
    with pytest.raises(DecodeError):
        Ranked.from_bytes(b"\x93\x01\x02")
    with pytest.raises(DecodeError):
        Ranked.from_bytes(Ranked(By.SCORE, 1.0, 2.0).to_bytes()[:-1] + b"\xc1")


# --- lists ---

triples = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, END_STEP, 2**63, 2**64 - 2, 2**64 - 1]),
        st.sampled_from([site_of("a"), site_of("b")]),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=3,
)


def encoded(path: list[tuple[int, bytes, int]]) -> bytes:
    return b"".join(d.to_bytes(8, "big") + s + c.to_bytes(8, "big") for d, s, c in path)


@given(triples, triples, st.booleans(), st.booleans(), st.integers(1, 10**6))
@settings(max_examples=2_000, deadline=None)
def test_a_new_position_falls_strictly_between_its_neighbours(
    one: list[Any], other: list[Any], open_low: bool, open_high: bool, counter: int
) -> None:
    low, high = sorted([encoded(one), encoded(other)])
    if low == high:
        high = None  # type: ignore[assignment]
    made = position_between(None if open_low else low, None if open_high else high,
                            site_of("c"), counter)  # fmt: skip
    assert len(made) % 24 == 0 and made[-8:] == counter.to_bytes(8, "big")
    if not open_low:
        assert made > low
    if not open_high and high is not None:
        assert made < high


def test_pushes_at_an_end_keep_one_level_and_inserts_in_one_gap_grow_slowly() -> None:
    state = ReplicatedList()
    for i in range(1_000):
        state.push("a", [b"%d" % i], i, left=i % 2 == 0)
    assert {len(p) for p in state.positions()} == {24}
    for i in range(640):  # always between the first two: the gap halves each time
        state.insert("b", 1, b"i%d" % i, 2_000 + i)
    assert max(len(p) for p in state.positions()) <= 24 * 12
    values = [state.shown(p) for p in state.positions()]
    assert values[0] == b"998" and values[1] == b"i639" and values[-1] == b"999"


list_steps = st.lists(
    st.tuples(
        st.sampled_from(["lpush", "rpush", "pop", "popright", "set", "merge", "rank"]),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    max_size=40,
)


@given(list_steps)
@settings(max_examples=300, deadline=None)
def test_replicas_of_a_list_agree_on_one_order(
    steps: list[Any],
) -> None:
    replicas = [ReplicatedList() for _ in range(3)]
    pushed: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for clock, (kind, at, other) in enumerate(steps, 1):
        state = replicas[at]
        if kind in ("lpush", "rpush"):
            value = b"r%d-%d" % (at, clock)
            state.push(f"r{at}", [value], clock, left=kind == "lpush")
            pushed[at].append(value)
        elif kind in ("pop", "popright") and state.positions():
            ends = state.positions()
            state.remove(ends[-1] if kind == "popright" else ends[0])
        elif kind == "set" and state.positions():
            state.set_value(f"r{at}", state.positions()[0], b"set%d" % clock, clock)
        elif kind == "merge":
            state.merge(replicas[other])
        elif kind == "rank":
            state.ranked()
    for state in replicas:
        assert list(state.positions()) == sorted(state._dots.entries)
    for state in replicas[1:]:
        replicas[0].merge(state)
    for state in replicas[1:]:
        state.merge(replicas[0])
    orders = [[s.shown(p) for p in s.positions()] for s in replicas]
    assert orders[0] == orders[1] == orders[2]
    again = ReplicatedList.from_bytes(replicas[0].to_bytes())
    assert [again.shown(p) for p in again.positions()] == orders[0]
