"""SWIM: suspicion, refutation, indirect probes, healing, and detection at scale."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventual.core.swim import Status, Swim, SwimAck, SwimConfig, SwimPing, Update
from eventual.sim.swim_scale import SwimCluster, detect_failure

PERIOD = SwimConfig().period_ms


def test_a_suspected_member_refutes_with_a_higher_incarnation() -> None:
    swim = Swim("a", ["a", "b"], SwimConfig(), seed=1, now_ms=0)
    out = swim.receive("b", SwimPing(7, (Update("a", 0, Status.SUSPECT),)), now_ms=10)
    assert swim.incarnation == 1
    [(to, ack)] = out
    assert to == "b" and isinstance(ack, SwimAck) and ack.seq == 7
    assert Update("a", 1, Status.ALIVE) in ack.updates
    for seq in range(10):  # the refutation has been gossiped its share of times
        swim.receive("b", SwimPing(seq, ()), now_ms=20)
    [(_, quiet)] = swim.receive("b", SwimPing(11, ()), now_ms=20)
    assert quiet.updates == ()
    # Told "dead at 0" by someone who missed the refutation: it says "alive at 1" again.
    [(_, ack)] = swim.receive("c", SwimPing(8, (Update("a", 0, Status.DEAD),)), now_ms=30)
    assert swim.incarnation == 1 and Update("a", 1, Status.ALIVE) in ack.updates


updates = st.builds(
    Update,
    st.sampled_from(["b", "c"]),
    st.integers(0, 3),
    st.sampled_from(list(Status)),
)


@given(st.lists(updates, max_size=12), st.randoms())
def test_member_states_merge_as_a_lattice(news: list[Update], rng: object) -> None:
    """Whatever order the same updates arrive in, every member ends with the same view."""
    shuffled = list(news)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    views = []
    for order in (news, shuffled, news + shuffled):
        swim = Swim("a", ["a", "b", "c"], SwimConfig(), seed=1, now_ms=0)
        for update in order:
            swim.receive("x", SwimAck(0, (update,)), now_ms=0)
        views.append({n: (s.incarnation, s.status) for n, s in swim.states.items()})
    assert views[0] == views[1] == views[2]


def test_indirect_probes_keep_a_member_behind_one_bad_link_alive() -> None:
    cluster = SwimCluster(6, seed=3)
    cluster.cut("m0", "m1")
    cluster.run_until(60 * PERIOD)
    for name in cluster.names:
        assert cluster.view(name) is Status.ALIVE, name


def test_without_indirect_probes_the_bad_link_would_cost_a_false_suspicion() -> None:
    """The same scenario with k = 0 shows the test above can fail."""
    cluster = SwimCluster(6, seed=3, config=SwimConfig(indirect_probes=0))
    cluster.cut("m0", "m1")
    suspected = False
    while cluster.now < 60 * PERIOD and cluster.step() is not None:
        suspected |= cluster.members["m0"].status("m1") is not Status.ALIVE
    assert suspected


def test_a_paused_member_is_declared_dead_then_refutes_and_rejoins() -> None:
    cluster = SwimCluster(8, seed=5)
    cluster.run_until(5 * PERIOD)
    cluster.pause("m4")
    deadline = cluster.now + 40 * PERIOD
    while cluster.view("m4") is not Status.DEAD:
        assert cluster.now < deadline, "a silent member must be declared dead"
        assert cluster.step() is not None
    cluster.resume("m4")
    deadline = cluster.now + 20 * PERIOD
    while cluster.view("m4") is not Status.ALIVE:
        assert cluster.now < deadline, "a member back from a pause must rejoin"
        assert cluster.step() is not None
    assert cluster.members["m4"].incarnation >= 1  # it refuted
    assert all(cluster.view(name) is Status.ALIVE for name in cluster.names)


def test_after_a_partition_both_sides_see_each_other_alive_again() -> None:
    """Each side declares the other dead; reconnect probes bring them back together."""
    cluster = SwimCluster(6, seed=9)
    left, right = cluster.names[:3], cluster.names[3:]
    for a in left:
        for b in right:
            cluster.cut(a, b)
    cluster.run_until(40 * PERIOD)
    assert cluster.members["m0"].status("m5") is Status.DEAD
    assert cluster.members["m5"].status("m0") is Status.DEAD
    cluster.heal()
    deadline = cluster.now + 30 * PERIOD
    while not all(cluster.view(name) is Status.ALIVE for name in cluster.names):
        assert cluster.now < deadline
        assert cluster.step() is not None


@pytest.mark.parametrize("nodes", [10, 50])
def test_a_failure_is_known_to_every_member_in_a_few_periods(nodes: int) -> None:
    found = detect_failure(nodes, seed=1, loss=0.05)
    assert found.false_positives == 0
    assert 0 < found.first_suspect <= found.first_dead <= found.all_dead < 30
    assert found.messages_per_node_per_period < 5  # constant per member, whatever n
