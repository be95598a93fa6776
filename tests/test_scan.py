"""Scanning a collection page by page (SSCAN, HSCAN, and SMEMBERS/HGETALL on big ones): a
replica's pages, and the merge of divergent replicas' pages by a coordinator."""

from hypothesis import given, settings
from hypothesis import strategies as st

from eventual.core import Level, ops
from eventual.crdt import ORSet
from eventual.crdt._causal import SCAN_ORDER_FROM, scan_hash
from eventual.sim import Faults, SimConfig, Simulation


def scan_all(state: ORSet, count: int) -> list[object]:
    seen: list[object] = []
    cursor = 0
    while True:
        page, cursor = state.scan_page(cursor, count)
        seen += page.members()
        if not cursor:
            return seen


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 3 * SCAN_ORDER_FROM),
    count=st.integers(1, 200),
    churn=st.lists(st.tuples(st.booleans(), st.integers(0, 4 * SCAN_ORDER_FROM)), max_size=60),
)
def test_a_scan_returns_every_member_present_throughout_exactly_once(
    size: int, count: int, churn: list[tuple[bool, int]]
) -> None:
    """Members added and removed between pages may or may not come back; every member
    present for the whole scan comes back once, and nothing never present comes at all."""
    state = ORSet()
    for i in range(size):
        state.add("a", i)
    throughout = set(range(size))
    ever = set(range(size))
    seen: list[object] = []
    cursor = 0
    changes = iter(churn)
    while True:
        page, cursor = state.scan_page(cursor, count)
        seen += page.members()
        change = next(changes, None)
        if change is not None:
            add, member = change
            if add:
                state.add("a", member)
                ever.add(member)
            else:
                state.remove(member)
                throughout.discard(member)
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "a member came twice"
    assert throughout <= set(seen) <= ever


def test_pages_come_in_scan_order_whether_the_order_is_kept_or_sorted_when_asked() -> None:
    small, big = ORSet(), ORSet()
    for i in range(SCAN_ORDER_FROM // 2):
        small.add("a", i)
    for i in range(4 * SCAN_ORDER_FROM):
        big.add("a", i)
    # Nothing is kept until a scan asks: writes and member reads pay no hash per member.
    assert small._dots.order is None and big._dots.order is None
    for state in (small, big):
        members = scan_all(state, 7)
        places = [scan_hash(m) for m in members]
        assert places == sorted(places) and set(members) == set(state.value())
    assert small._dots.order is None and big._dots.order is not None  # kept once scanned
    for i in range(4 * SCAN_ORDER_FROM):  # the kept order follows removals
        big.remove(i)
    assert scan_all(big, 7) == [] and len(big._dots.order) == 0


def test_a_coordinator_merges_divergent_replicas_pages_exactly() -> None:
    """Replicas that each missed different adds and removes are read page by page at ALL:
    the pages together are the merged set, each member once."""
    sim = Simulation(
        SimConfig(seed=3, nodes=3, regions=1, ops=0, faults=Faults(frozenset()), anti_entropy=False)
    )
    sim.run_for(100)
    key = b"set:followers"
    base = [b"m%d" % i for i in range(1_000)]
    assert sim.call("n0", ops.SetAdd(key, tuple(base)), Level.ALL).ok
    sim.partition(["n0"], ["n1", "n2"])
    removed = base[:100]
    assert sim.call("n0", ops.SetRemove(key, tuple(removed)), Level.ONE).ok
    left = [b"l%d" % i for i in range(500)]
    assert sim.call("n0", ops.SetAdd(key, tuple(left)), Level.ONE).ok
    right = [b"r%d" % i for i in range(700)]
    assert sim.call("n1", ops.SetAdd(key, tuple(right)), Level.QUORUM).ok
    sim.heal_network()
    assert sim.record("n0", key) != sim.record("n1", key)  # divergent when the scan starts
    seen: list[bytes] = []
    cursor = 0
    pages = 0
    while True:
        result = sim.call("n2", ops.Get(key, cursor=cursor, count=97), Level.ALL)
        assert result.ok and result.kind == "set"
        seen += result.value
        cursor = result.cursor
        pages += 1
        if not cursor:
            break
    expected = set(base[100:]) | set(left) | set(right)
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert pages > len(expected) // 200  # it did page
    sim.run_for(50)  # the last page's repairs land
    # Pages read at ALL repaired the members they covered (hints may have helped): the
    # replicas agree now.
    assert sim.record("n0", key).value() == sim.record("n1", key).value() == expected
