"""Scenario tests of the replica node, driven through the simulator by hand: one request at
a time, faults placed where the scenario needs them, and waits on conditions with deadlines
in virtual time."""

from collections.abc import Callable
from typing import Any

import pytest

from eventual.core import Level, Node, Record, Request, ops
from eventual.core.get import RANKED_WHOLE_MAX
from eventual.core.keyspace import partition_start
from eventual.core.messages import ReplicaWrite
from eventual.core.records import stored_bytes
from eventual.crdt.ranked import By, Ranked
from eventual.sim import Faults, SimConfig, Simulation

NO_FAULTS = Faults(frozenset())


def cluster(nodes: int = 5, *, anti_entropy: bool = True, regions: int = 1) -> Simulation:
    sim = Simulation(
        SimConfig(
            seed=7, nodes=nodes, regions=regions, ops=0, faults=NO_FAULTS, anti_entropy=anti_entropy
        )
    )
    sim.run_for(100)
    return sim


def wait_until(sim: Simulation, condition: Callable[[], bool], deadline_ms: int = 30_000) -> None:
    end = sim.now + deadline_ms
    while not condition():
        assert sim.now < end, f"condition not met within {deadline_ms} ms of virtual time"
        sim.run_for(50)


def others(sim: Simulation, key: bytes) -> list[str]:
    return [n for n in sim.node_ids if n not in sim.primaries(key)]


def values(sim: Simulation, key: bytes) -> list[object]:
    result = sim.call(sim.node_ids[0], ops.Get(key), Level.ALL)
    assert result.ok, result.error
    return result.value  # type: ignore[no-any-return]


def converged(sim: Simulation, key: bytes) -> bool:
    data = {stored_bytes(sim.stores[node], key) for node in sim.primaries(key)}
    return len(data) == 1 and None not in data


def test_partitioned_concurrent_object_writes_become_siblings() -> None:
    sim = cluster()
    key = b"obj:cart"
    a, b, c = sim.primaries(key)
    d, e = others(sim, key)
    sim.partition([a, d], [b, c, e])
    assert sim.call(a, ops.ObjectPut(key, b"left"), Level.ONE).ok
    assert sim.call(b, ops.ObjectPut(key, b"right"), Level.QUORUM).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert sorted(values(sim, key)) == [b"left", b"right"]
    # A write carrying the context of that read resolves the siblings.
    read = sim.call(c, ops.Get(key), Level.QUORUM)
    assert read.context is not None
    from eventual.clocks import VersionVector

    sim.call(c, ops.ObjectPut(key, b"merged", VersionVector.from_bytes(read.context)), Level.ALL)
    assert values(sim, key) == [b"merged"]


def test_partitioned_counter_increments_sum() -> None:
    sim = cluster()
    key = b"ctr:views"
    a, b, c = sim.primaries(key)
    sim.partition([a], [b, c, *others(sim, key)])
    for _ in range(3):
        assert sim.call(a, ops.CounterAdd(key, 2), Level.ONE).ok
    assert sim.call(b, ops.CounterAdd(key, 5), Level.QUORUM).ok
    assert sim.call(c, ops.CounterAdd(key, -1), Level.ONE).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert values(sim, key) == 6 + 5 - 1


def test_a_down_primary_gets_its_write_through_a_hint_when_it_returns() -> None:
    sim = cluster()
    key = b"str:greeting"
    a, _, c = sim.primaries(key)
    sim.crash(c)
    seen_down(sim, c)
    result = sim.call(a, ops.StringSet(key, b"hello"), Level.QUORUM)
    assert result.ok and result.answered >= 2
    holders = [n for n in others(sim, key) if sim.stores[n].hint(key) is not None]
    assert len(holders) == 1, "the write went to one fallback, with a hint"
    hint = sim.stores[holders[0]].hint(key)
    assert hint is not None and hint.targets == frozenset({c})
    assert sim.record(c, key) is None
    sim.restart(c)
    wait_until(sim, lambda: sim.record(c, key) is not None)
    record = sim.record(c, key)
    assert record is not None and record.value() == b"hello"
    wait_until(sim, lambda: sim.stores[holders[0]].hint(key) is None)


def seen_down(sim: Simulation, node: str) -> None:
    """Run until every other node's failure detector has declared ``node`` dead."""
    others = [n for n in sim.node_ids if n != node]
    wait_until(sim, lambda: not any(sim.nodes[n].up(node) for n in others), 30_000)


def make_stale(sim: Simulation, key: bytes, op: ops.Mutation) -> tuple[str, str]:
    """Leave one primary without a write and with no hint anywhere: the coordinator's
    message to it is lost, and the coordinator crashes before its timeout would keep a hint."""
    a, _, c = sim.primaries(key)
    sim.cut(a, c)
    assert sim.call(a, op, Level.QUORUM).ok
    sim.crash(a)
    sim.restart(a)
    sim.heal_network()
    assert all(sim.stores[n].hint(key) is None for n in sim.node_ids)
    return a, c


def test_read_repair_fixes_a_stale_replica() -> None:
    sim = cluster(anti_entropy=False)
    key = b"set:tags"
    _, stale = make_stale(sim, key, ops.SetAdd(key, (b"x",)))
    sim.run_for(5_000)
    assert sim.record(stale, key) is None, "without a read or anti-entropy it stays stale"
    assert sim.call(stale, ops.Get(key), Level.ALL).value == {b"x"}
    wait_until(sim, lambda: converged(sim, key), deadline_ms=2_000)
    assert sum(n.stats["read_repairs"] for n in sim.nodes.values() if n is not None) >= 1


def test_a_read_at_one_found_here_asks_no_one_else_and_about_one_in_ten_repairs() -> None:
    sim = cluster(anti_entropy=False)
    key = b"str:motd"
    assert sim.call(sim.primaries(key)[0], ops.StringSet(key, b"old"), Level.ALL).ok
    _, stale = make_stale(sim, key, ops.StringSet(key, b"new"))
    sim.run_for(5_000)
    alone = 0
    for _ in range(60):
        sent = sim.messages
        assert sim.call(stale, ops.Get(key), Level.ONE).value == b"old"
        alone += sim.messages == sent  # nothing sent: answered from its own record
        sim.run_for(100)
        if converged(sim, key):
            break
    assert converged(sim, key), "reads at ONE never repaired the stale replica"
    assert alone >= 1, "every read at ONE asked the other replicas"
    # Not found here is not an answer at ONE: the read asks the others (Riak's basic quorum).
    missing = b"str:new-key"
    a, _, c = sim.primaries(missing)
    sim.cut(a, c)
    assert sim.call(a, ops.StringSet(missing, b"v"), Level.QUORUM).ok
    sim.heal_network()
    assert sim.call(c, ops.Get(missing), Level.ONE).value == b"v"


def test_replica_writes_may_leave_before_the_commit_but_bounded_counter_ones_wait() -> None:
    sim = cluster()
    for key, op, early in (
        (b"str:early", ops.StringSet(b"str:early", b"v"), True),
        (b"bc:stock", ops.BcounterIncr(b"bc:stock", 5), False),  # dots named after the node
    ):
        node = sim.nodes[sim.primaries(key)[0]]
        effects = node.request(Request(10_000, op, Level.QUORUM), sim.now)
        writes = [send for send in effects.sends if isinstance(send.message, ReplicaWrite)]
        assert len(writes) == 2 and all(send.early is early for send in writes), key


def test_anti_entropy_alone_fixes_a_replica_that_is_never_read() -> None:
    key = b"map:profile"
    op = ops.MapIncr(key, b"visits", 3)
    without = cluster(anti_entropy=False)
    _, stale = make_stale(without, key, op)
    without.run_for(30_000)
    assert without.record(stale, key) is None
    sim = cluster(anti_entropy=True)
    _, stale = make_stale(sim, key, op)
    wait_until(sim, lambda: converged(sim, key), deadline_ms=30_000)
    record = sim.record(stale, key)
    assert record is not None and record.value() == {b"visits": 3}
    stale_node = sim.nodes[stale]
    assert stale_node is not None and stale_node.stats["ae_repairs"] >= 1


def test_expired_keys_read_as_absent_everywhere_at_once() -> None:
    sim = cluster()
    key = b"str:session"
    sim.call(sim.node_ids[0], ops.StringSet(key, b"token"), Level.ALL)
    at = sim.now + 1_000
    assert sim.call(sim.node_ids[1], ops.Expire(key, at), Level.ALL).value == 1
    assert all(sim.call(n, ops.Get(key), Level.ONE).value == b"token" for n in sim.node_ids)
    sim.run_for(at - sim.now + 1)
    assert [sim.call(n, ops.Get(key), Level.ONE).value for n in sim.node_ids] == [None] * 5


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (ops.Expire(b"str:k", 50_000), ops.Expire(b"str:k", 90_000), 90_000),  # longest wins
        (ops.Persist(b"str:k"), ops.Expire(b"str:k", 50_000), None),  # PERSIST beats EXPIRE
    ],
)
def test_concurrent_ttl_commands(
    left: ops.Mutation, right: ops.Mutation, expected: int | None
) -> None:
    sim = cluster()
    key = b"str:k"
    a, b, _ = sim.primaries(key)
    sim.call(a, ops.StringSet(key, b"v", expire_at_ms=40_000), Level.ALL)
    sim.partition([a], [n for n in sim.node_ids if n != a])
    assert sim.call(a, left, Level.ONE).ok
    assert sim.call(b, right, Level.ONE).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    record = sim.record(a, key)
    assert record is not None and record.expire_at() == expected


def test_a_causally_later_expire_wins_even_if_shorter() -> None:
    sim = cluster()
    key = b"str:k"
    sim.call(sim.node_ids[0], ops.StringSet(key, b"v"), Level.ALL)
    sim.call(sim.node_ids[0], ops.Expire(key, 90_000), Level.ALL)
    sim.call(sim.node_ids[3], ops.Expire(key, 60_000), Level.ALL)
    wait_until(sim, lambda: converged(sim, key))
    record = sim.record(sim.primaries(key)[0], key)
    assert record is not None and record.expire_at() == 60_000


def test_a_write_to_an_expired_key_starts_from_empty() -> None:
    sim = cluster()
    key = b"set:cache"
    node = sim.node_ids[0]
    sim.call(node, ops.SetAdd(key, (b"old",)), Level.ALL)
    sim.call(node, ops.Expire(key, sim.now + 100), Level.ALL)
    sim.run_for(200)
    sim.call(node, ops.SetAdd(key, (b"new",)), Level.ALL)
    assert values(sim, key) == {b"new"}


@pytest.mark.parametrize(
    ("key", "before", "concurrent", "expected"),
    [
        (
            b"set:s",
            ops.SetAdd(b"set:s", (b"seen",)),
            ops.SetAdd(b"set:s", (b"unseen",)),
            {b"unseen"},
        ),
        (b"ctr:c", ops.CounterAdd(b"ctr:c", 5), ops.CounterAdd(b"ctr:c", 2), 2),
        (b"map:m", ops.MapIncr(b"map:m", b"f", 4), ops.MapIncr(b"map:m", b"g", 1), {b"g": 1}),
    ],
)
def test_delete_removes_what_it_saw_and_a_concurrent_update_survives(
    key: bytes, before: ops.Mutation, concurrent: ops.Mutation, expected: object
) -> None:
    sim = cluster()
    a, b, _ = sim.primaries(key)
    sim.call(a, before, Level.ALL)
    sim.partition([a], [n for n in sim.node_ids if n != a])
    assert sim.call(a, ops.Delete(key), Level.ONE).value == 1
    assert sim.call(b, concurrent, Level.ONE).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert values(sim, key) == expected


def test_object_delete_with_context_keeps_a_concurrent_write() -> None:
    sim = cluster()
    key = b"obj:doc"
    a, b, _ = sim.primaries(key)
    sim.call(a, ops.ObjectPut(key, b"v1"), Level.ALL)
    read = sim.call(a, ops.Get(key), Level.ALL)
    from eventual.clocks import VersionVector

    context = VersionVector.from_bytes(read.context or b"")
    sim.partition([a], [n for n in sim.node_ids if n != a])
    sim.call(a, ops.Delete(key, context), Level.ONE)
    sim.call(b, ops.ObjectPut(key, b"v2", context), Level.ONE)
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert values(sim, key) == [b"v2"]


def test_tombstones_are_reaped_only_when_every_primary_has_them() -> None:
    sim = cluster()
    key = b"obj:gone"
    a, b, c = sim.primaries(key)
    sim.call(a, ops.ObjectPut(key, b"v"), Level.ALL)
    sim.crash(c)
    seen_down(sim, c)
    assert sim.call(a, ops.Delete(key), Level.QUORUM).value == 1
    sim.run_for(20_000)  # well past the grace period, but c is down
    record = sim.record(a, key)
    assert record is not None and not record.has_data(), "kept: a primary is missing"
    sim.restart(c)
    wait_until(sim, lambda: all(sim.record(n, key) is None for n in (a, b, c)), 60_000)
    # The key is usable again, with nothing of its old history.
    assert sim.call(b, ops.ObjectPut(key, b"again"), Level.ALL).ok
    assert values(sim, key) == [b"again"]


def test_writing_another_type_is_a_clear_error() -> None:
    sim = cluster()
    key = b"str:name"
    sim.call(sim.node_ids[0], ops.StringSet(key, b"ana"), Level.ALL)
    result = sim.call(sim.node_ids[2], ops.SetAdd(key, (b"x",)), Level.QUORUM)
    assert not result.ok and result.error is not None
    assert result.error.startswith("WRONGTYPE") and "holds a string" in result.error
    assert values(sim, key) == b"ana"


def test_a_request_that_cannot_reach_its_count_says_how_many_answered() -> None:
    sim = cluster(nodes=3)
    key = b"ctr:x"
    a, _, c = sim.primaries(key)
    sim.crash(c)
    seen_down(sim, c)
    result = sim.call(a, ops.CounterAdd(key, 1), Level.ALL)
    assert not result.ok and result.error is not None
    assert "not enough replicas: 2 answered" in result.error and result.answered == 2
    read = sim.call(a, ops.Get(key), Level.ALL)
    assert not read.ok and "2 answered" in (read.error or "")
    assert sim.call(a, ops.Get(key), Level.QUORUM).value == 1


def test_local_quorum_counts_only_the_local_region() -> None:
    sim = cluster(nodes=6, regions=3)
    key = b"ctr:regional"
    node = sim.primaries(key)[0]
    result = sim.call(node, ops.CounterAdd(key, 1), Level.LOCAL_QUORUM)
    assert result.ok and result.answered == 1  # one replica per region: its own suffices
    assert sim.call(node, ops.CounterAdd(key, 1), Level.EACH_QUORUM).answered == 3


def test_a_forwarded_bounded_counter_update_spends_the_local_regions_rights() -> None:
    """One replica per region: a node that is no replica forwards to its own region's."""
    sim = cluster(nodes=6, regions=3)
    key = b"bc:stock"
    primaries = sim.primaries(key)
    regions = {node: sim.network.regions[node] for node in sim.node_ids}
    for primary in primaries:
        asker = next(
            n for n in sim.node_ids if n not in primaries and regions[n] == regions[primary]
        )
        assert sim.call(asker, ops.BcounterIncr(key, 5), Level.LOCAL_ONE).ok
        record = sim.record(primary, key)
        assert record is not None and record.data.rights(primary) == 5  # type: ignore[attr-defined]


def test_bounded_counter_refuses_what_the_node_has_no_rights_for() -> None:
    sim = cluster()
    key = b"bc:stock"
    a, b, _ = sim.primaries(key)
    assert sim.call(a, ops.BcounterIncr(key, 3), Level.ALL).value == 3
    refused = sim.call(b, ops.BcounterDecr(key, 1), Level.ALL)
    assert not refused.ok and "holds 0 rights" in (refused.error or "")
    assert sim.call(a, ops.BcounterTransfer(key, b, 2), Level.ALL).ok
    wait_until(sim, lambda: converged(sim, key))
    assert sim.call(b, ops.BcounterDecr(key, 2), Level.ALL).value == 1
    record = sim.record(a, key)
    assert isinstance(record, Record)


def test_a_coordinator_measures_when_each_replica_saw_its_write() -> None:
    """t-visibility (core/base.py VISIBILITY_BOUNDS_MS): per replica, how long after the
    client's acknowledgement it acknowledged too; a replica cut off counts as late."""
    from eventual.core.base import VISIBILITY_BOUNDS_MS, VISIBILITY_NEVER

    sim = cluster()
    key = b"str:visible"
    a, b, c = sim.primaries(key)
    node = sim.nodes[a]
    assert node is not None
    assert sim.call(a, ops.StringSet(key, b"one"), Level.ONE).ok  # acknowledged at once
    wait_until(sim, lambda: sum(map(sum, node.visibility.values())) == 3)
    assert node.visibility[a][0] == 1, "the coordinator's own copy is visible at once"
    for replica in (b, c):
        # Acknowledged by the coordinator alone, so each replica's copy came later, by its
        # round trip (the simulator's links take a millisecond or more each way).
        assert node.visibility[replica][0] == 0
        assert sum(node.visibility[replica][1:VISIBILITY_NEVER]) == 1
    sim.cut(a, c)
    assert sim.call(a, ops.StringSet(key, b"two"), Level.QUORUM).ok
    sim.run_for(VISIBILITY_BOUNDS_MS[-1])  # past the request timeout
    assert node.visibility[c][VISIBILITY_NEVER] == 1, "a replica that never acknowledged"
    assert node.visibility[b][0] == 1, "at QUORUM, the acknowledging replica was visible"


def test_a_string_write_a_replica_holds_a_later_value_for_counts_as_an_lww_loss() -> None:
    sim = cluster()
    key = b"str:race"
    a, b, c = sim.primaries(key)
    first, second, replica = sim.nodes[a], sim.nodes[b], sim.nodes[c]
    assert first is not None and second is not None and replica is not None

    def write_to_replica(node: Node, value: bytes, now: int) -> ReplicaWrite:
        effects = node.request(Request(20_000, ops.StringSet(key, value), Level.ONE), now)
        return next(
            s.message for s in effects.sends if s.to == c and isinstance(s.message, ReplicaWrite)
        )

    older = write_to_replica(first, b"older", sim.now)
    newer = write_to_replica(second, b"newer", sim.now + 5)  # concurrent, and later by HLC
    replica.receive(b, newer, sim.now + 6)
    assert replica.stats["lww_losses"] == 0
    replica.receive(a, older, sim.now + 7)  # arrives after a later value: it loses
    assert replica.stats["lww_losses"] == 1
    record = replica.record(key)
    assert record is not None and record.value() == b"newer"


# Strings (and hash fields) that count: the table in crdt/lwwregister.py, each row played
# with the two writes on opposite sides of a partition, checked after the heal.
@pytest.mark.parametrize(
    ("key", "before", "left", "right", "expected"),
    [
        (
            b"s:1",
            ops.StringSet(b"s:1", b"5"),
            ops.StringSet(b"s:1", b"10"),
            ops.StringIncr(b"s:1", 1),
            11,
        ),
        (
            b"s:2",
            ops.StringSet(b"s:2", b"5"),
            ops.StringIncr(b"s:2", 1),
            ops.StringIncr(b"s:2", 1),
            7,
        ),
        (b"s:3", None, ops.StringIncr(b"s:3", 1), ops.StringSet(b"s:3", b"10"), 11),
        (b"s:4", ops.StringSet(b"s:4", b"5"), ops.Delete(b"s:4"), ops.StringIncr(b"s:4", 1), 1),
        (
            b"s:5",
            ops.StringSet(b"s:5", b"5"),
            ops.StringSet(b"s:5", b"abc"),
            ops.StringIncr(b"s:5", 1),
            b"abc",
        ),
        (
            b"s:6",
            ops.StringIncr(b"s:6", 4),
            ops.StringSet(b"s:6", b"3"),
            ops.StringIncr(b"s:6", -2),
            1,
        ),
        (
            b"h:1",
            ops.HashSet(b"h:1", ((b"f", b"5"),)),
            ops.HashSet(b"h:1", ((b"f", b"10"),)),
            ops.HashIncr(b"h:1", b"f", 1),
            {b"f": 11},
        ),
        (
            b"s:7",
            ops.StringSet(b"s:7", b"10.5"),
            ops.StringIncrFloat(b"s:7", 0.25),
            ops.StringIncrFloat(b"s:7", -1.0),
            b"9.75",
        ),
        (
            b"s:8",
            ops.StringSet(b"s:8", b"5"),
            ops.StringSet(b"s:8", b"1.5"),
            ops.StringIncrFloat(b"s:8", 2.0),
            b"3.5",
        ),
        (
            b"s:9",
            ops.StringIncr(b"s:9", 3),
            ops.StringIncrFloat(b"s:9", 0.5),
            ops.StringIncr(b"s:9", 1),
            b"4.5",
        ),
        (
            b"h:3",
            ops.HashSet(b"h:3", ((b"f", b"1"),)),
            ops.HashIncrFloat(b"h:3", b"f", 0.5),
            ops.HashIncrFloat(b"h:3", b"f", 0.5),
            {b"f": b"2"},
        ),
        (
            b"h:2",
            ops.HashIncr(b"h:2", b"f", 2),
            ops.HashIncr(b"h:2", b"f", 3),
            ops.HashIncr(b"h:2", b"f", 4),
            {b"f": 9},
        ),
    ],
)
def test_strings_that_count_add_up_concurrent_increments_and_a_set_overrides_what_it_saw(
    key: bytes,
    before: ops.Mutation | None,
    left: ops.Mutation,
    right: ops.Mutation,
    expected: object,
) -> None:
    sim = cluster()
    a, b, _ = sim.primaries(key)
    if before is not None:
        assert sim.call(a, before, Level.ALL).ok
    sim.partition([a], [n for n in sim.node_ids if n != a])
    assert sim.call(a, left, Level.ONE).ok
    assert sim.call(b, right, Level.ONE).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert values(sim, key) == expected
    # Every replica holds the same bytes (``converged``) and so reads the same value.
    assert {sim.call(n, ops.Get(key), Level.ONE).value == expected for n in sim.primaries(key)} == {
        True
    }


def scan_all(sim: Simulation, node: str, count: int, cursor: int = 0) -> list[bytes]:
    """Every key from ``cursor`` (0: all of them), page after page of ``count``, through
    ``node``."""
    listed: list[bytes] = []
    for _ in range(10_000):
        result = sim.keys_page(node, cursor, count)
        assert result.ok, result.error
        listed.extend(key for key, _ in result.value)
        cursor = result.cursor or 0
        if not cursor:
            return listed
    raise AssertionError("the scan never ended")


def test_the_keyspace_lists_each_live_key_once_through_any_node_stale_replicas_too() -> None:
    sim = cluster()
    written = [b"str:k%d" % i for i in range(150)]
    for key in written:
        assert sim.call(sim.node_ids[0], ops.StringSet(key, b"v"), Level.ALL).ok
    # A replica that missed a write, and a key deleted: the stale replica does not hide the
    # one, and the other is not listed.
    make_stale(sim, b"str:late", ops.StringSet(b"str:late", b"v"))
    assert sim.call(sim.node_ids[1], ops.Delete(written[0]), Level.ALL).value == 1
    expected = sorted([*written[1:], b"str:late"])
    for node, count in ((sim.node_ids[0], 7), (sim.node_ids[2], 1), (sim.node_ids[4], 1_000)):
        listed = scan_all(sim, node, count)
        assert len(listed) == len(set(listed)), "a key listed twice"
        assert sorted(listed) == expected, node
    # A key added to the partition its replicas listed last is listed when that partition
    # is read again (the order they kept is dropped once the partition gains a key).
    last = sim.ring.partitions - 1
    late = next(k for i in range(10_000) if sim.ring.partition_of(k := b"str:n%d" % i) == last)
    assert sim.call(sim.node_ids[0], ops.StringSet(late, b"v"), Level.ALL).ok
    tail = scan_all(sim, sim.node_ids[0], 7, partition_start(last, sim.ring.partitions))
    in_last = [key for key in expected if sim.ring.partition_of(key) == last]
    assert sorted(tail) == sorted([*in_last, late])
    expected = sorted([*expected, late])
    # A crashed replica: the others answer for its partitions.
    sim.crash(sim.node_ids[3])
    seen_down(sim, sim.node_ids[3])
    assert sorted(scan_all(sim, sim.node_ids[1], 20)) == expected
    sizes = 0
    cursor = 0
    while True:
        result = sim.keys_page(sim.node_ids[0], cursor, 0)
        sizes += result.size or 0
        cursor = result.cursor or 0
        if not cursor:
            break
    assert sizes >= len(expected)  # the deleted key's tombstone counts until it is reaped


# Sorted sets (crdt/zset.py): scores that count, members that add-win, ranked reads.
def ranked(sim: Simulation, node: str, key: bytes, query: Ranked, level: Level) -> Any:
    result = sim.call(node, ops.Get(key, (), ranked=query.to_bytes()), level)
    assert result.ok, result.error
    return result


def test_sorted_sets_merge_concurrent_changes_as_the_table_says() -> None:
    sim = cluster()
    key = b"z:race"
    a, b, _ = sim.primaries(key)
    before = ((1.0, b"m"), (5.0, b"gone"), (7.0, b"kept"), (2.0, b"low"))
    assert sim.call(a, ops.ZsetAdd(key, before), Level.ALL).ok
    sim.partition([a], [n for n in sim.node_ids if n != a])
    # Two sides, at once: increments on both count; a ZADD overrides only what it saw; a
    # ZREM loses to a concurrent change of the member (add wins) and wins otherwise; both
    # sides pop the lowest member and both get it.
    assert sim.call(a, ops.ZsetIncr(key, b"m", 5.0), Level.ONE).value == 6.0
    assert sim.call(b, ops.ZsetIncr(key, b"m", 3.0), Level.ONE).value == 4.0
    assert sim.call(a, ops.ZsetAdd(key, ((100.0, b"kept"),)), Level.ONE).value == 0
    assert sim.call(b, ops.ZsetIncr(key, b"kept", 1.0), Level.ONE).value == 8.0
    assert sim.call(a, ops.ZsetRemove(key, (b"gone",)), Level.ONE).value == 1
    assert sim.call(b, ops.ZsetAdd(key, ((6.0, b"gone"),), ops.ZADD_CH), Level.ONE).value == 1
    popped_a = sim.call(a, ops.ZsetPop(key, 1), Level.ONE).value
    popped_b = sim.call(b, ops.ZsetPop(key, 1), Level.ONE).value
    assert popped_a == [[b"low", 2.0]] and popped_b == [[b"low", 2.0]]
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    everything = ranked(sim, sim.node_ids[4], key, Ranked(By.RANK, 0, -1), Level.ALL)
    assert everything.value == [[b"gone", 6.0], [b"m", 9.0], [b"kept", 101.0]]
    assert everything.size == 3
    for node in sim.primaries(key):  # every replica ranks the same, at ONE
        rank = ranked(sim, node, key, Ranked(By.MEMBER, member=b"m"), Level.ONE)
        assert (rank.position, rank.value) == (1, [[b"m", 9.0]])


def test_a_ranked_read_of_replicas_that_disagree_answers_for_their_merge() -> None:
    sim = cluster(anti_entropy=False)
    key = b"z:stale"
    assert sim.call(sim.node_ids[0], ops.ZsetAdd(key, ((1.0, b"a"), (2.0, b"b"))), Level.ALL).ok
    _, stale = make_stale(sim, key, ops.ZsetAdd(key, ((0.5, b"first"),)))
    top = ranked(sim, stale, key, Ranked(By.RANK, 0, 0), Level.ALL)
    assert top.value == [[b"first", 0.5]] and top.size == 3
    count = ranked(sim, stale, key, Ranked(By.SCORE, 0.0, 1.0, count_only=True), Level.ALL)
    assert count.position == 2
    absent = ranked(sim, stale, b"z:none", Ranked(By.RANK, 0, -1), Level.QUORUM)
    assert absent.value is None and not absent.position


def test_a_ranked_read_of_a_big_sorted_set_whose_replicas_disagree_takes_one_answer() -> None:
    """Above RANKED_WHOLE_MAX members, replicas that disagree are not read whole: the
    coordinator's own replica answers, and the node counts it."""
    sim = cluster(anti_entropy=False)
    key = b"z:big"
    pairs = tuple((float(i), b"m%05d" % i) for i in range(RANKED_WHOLE_MAX + 1))
    assert sim.call(sim.node_ids[0], ops.ZsetAdd(key, pairs), Level.ALL).ok
    _, stale = make_stale(sim, key, ops.ZsetAdd(key, ((-1.0, b"first"),)))
    node = sim.nodes[stale]
    assert node is not None
    before = node.stats["ranked_unmerged"]
    top = ranked(sim, stale, key, Ranked(By.RANK, 0, 1), Level.ALL)
    assert top.value == [[b"m00000", 0.0], [b"m00001", 1.0]]  # the stale replica's own
    assert top.size == RANKED_WHOLE_MAX + 1 and node.stats["ranked_unmerged"] == before + 1
    fresh = next(n for n in sim.primaries(key) if n != stale)
    top = ranked(sim, fresh, key, Ranked(By.RANK, 0, 0), Level.ALL)
    assert top.value == [[b"first", -1.0]] and top.size == RANKED_WHOLE_MAX + 2


def test_lists_merge_concurrent_changes_as_the_table_says() -> None:
    sim = cluster()
    key = b"l:race"
    a, b, _ = sim.primaries(key)
    assert sim.call(a, ops.ListPush(key, (b"h", b"m", b"t")), Level.ALL).ok
    sim.partition([a], [n for n in sim.node_ids if n != a])
    # Two sides, at once: pushes at both ends land on every replica in one order; both
    # sides pop the head and both get it; an LSET of the tail on one side and an RPOP of it
    # on the other keep it (the set re-adds it, with its value).
    assert sim.call(a, ops.ListPush(key, (b"a1", b"a2")), Level.ONE).value == 5
    assert sim.call(b, ops.ListPush(key, (b"b1",)), Level.ONE).value == 4
    assert sim.call(b, ops.ListPush(key, (b"B0",), left=True), Level.ONE).value == 5
    head_a = sim.call(a, ops.ListPop(key, 1), Level.ONE).value
    head_b = sim.call(b, ops.ListPop(key, 1), Level.ONE).value
    assert [v for _, v in head_a] == [b"h"]  # a's head
    assert [v for _, v in head_b] == [b"B0"]  # b pushed one before it
    assert sim.call(b, ops.ListPop(key, 1), Level.ONE).value[0][1] == b"h"  # h again, at b
    assert sim.call(a, ops.ListSet(key, 1, b"T"), Level.ONE).value == "OK"  # t, at a
    assert sim.call(b, ops.ListPop(key, 1, right=True), Level.ONE).value[0][1] == b"b1"
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    final = ranked(sim, sim.node_ids[4], key, Ranked(By.RANK, 0, -1), Level.ALL)
    assert [v for _, v in final.value] == [b"m", b"T", b"a1", b"a2"]
    for node in sim.primaries(key):
        one = ranked(sim, node, key, Ranked(By.RANK, 0, -1), Level.ONE)
        assert [v for _, v in one.value] == [b"m", b"T", b"a1", b"a2"]
    # A DEL removes what its replica saw; a push it did not see survives it.
    sim.partition([a], [n for n in sim.node_ids if n != a])
    assert sim.call(a, ops.Delete(key), Level.ONE).value == 1
    assert sim.call(b, ops.ListPush(key, (b"late",)), Level.ONE).ok
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    final = ranked(sim, sim.node_ids[4], key, Ranked(By.RANK, 0, -1), Level.ALL)
    assert [v for _, v in final.value] == [b"late"]


def test_a_write_that_times_out_at_two_replicas_keeps_a_hint_for_each() -> None:
    """Both unacknowledged replicas are owed the write: the hints of one timeout are kept
    in one batch, and the second must not replace the first (it did: only the last
    replica got the write back, by anti-entropy much later)."""
    sim = cluster(nodes=3, anti_entropy=False)
    key = b"set:owed"
    a, b, c = sim.primaries(key)
    assert sim.call(a, ops.SetAdd(key, (b"x",)), Level.ALL).ok
    sim.partition([a], [b, c])
    assert sim.call(a, ops.SetAdd(key, (b"y",)), Level.ONE).ok
    sim.run_for(5_000)  # past the request timeout: the hints are kept then
    hint = sim.stores[a].hint(key)
    assert hint is not None and hint.targets == frozenset({b, c})
    sim.heal_network()
    wait_until(sim, lambda: converged(sim, key))
    assert {sim.record(n, key).value() == {b"x", b"y"} for n in (a, b, c)} == {True}  # type: ignore[union-attr]
