"""Placement: even claims, replicas across regions then zones, and both kept across changes."""

from collections import Counter

import pytest

from eventual.core.membership import ClusterState, MemberEntry, MemberStatus, rings
from eventual.core.ring import Member, Ring


def shares(ring: Ring, n: int = 3) -> Counter[str]:
    return Counter(node for p in range(ring.partitions) for node in ring.preference_list(p, n))


def members(count: int, regions: int, zones: int) -> list[Member]:
    return [Member(f"n{i}", f"r{i % regions}", f"z{(i // regions) % zones}") for i in range(count)]


@pytest.mark.parametrize(
    ("count", "regions", "zones"), [(3, 1, 1), (5, 1, 1), (6, 1, 3), (6, 3, 2), (9, 3, 3)]
)
def test_claims_are_even_and_replicas_spread_over_regions_then_zones(
    count: int, regions: int, zones: int
) -> None:
    """Balanced topologies (as many nodes in every zone): even shares."""
    ring = Ring(members(count, regions, zones), 64)
    owners = Counter(ring.owner(p) for p in range(ring.partitions))
    assert max(owners.values()) - min(owners.values()) <= 1, owners
    counted = shares(ring)
    assert max(counted.values()) - min(counted.values()) <= 2, counted
    for p in range(ring.partitions):
        replicas = ring.preference_list(p, 3)
        assert len(set(replicas)) == 3
        used_regions = {ring.region_of[node] for node in replicas}
        assert len(used_regions) == min(3, regions)
        used_zones = {ring.zone_of[node] for node in replicas}
        assert len(used_zones) == min(3, len(set(ring.zone_of.values())))


def test_a_lone_node_in_a_zone_holds_a_replica_of_everything() -> None:
    """Zone diversity comes first, as with Cassandra's racks: keep zones balanced."""
    ring = Ring([Member("a1", "eu", "a"), Member("a2", "eu", "a"), Member("b1", "eu", "b")], 16)
    assert shares(ring, 2)["b1"] == 16


def test_a_single_region_with_zones_spreads_replicas_over_the_zones() -> None:
    ring = Ring([Member(f"n{i}", "eu", "abc"[i % 3]) for i in range(6)], 32)
    for p in range(ring.partitions):
        assert {ring.zone_of[n] for n in ring.preference_list(p, 3)} == {
            ("eu", "a"),
            ("eu", "b"),
            ("eu", "c"),
        }


def test_placement_stays_region_aware_when_members_join_and_leave() -> None:
    def entry(i: int, status: MemberStatus) -> MemberEntry:
        return MemberEntry(f"n{i}", f"r{i % 3}", "", 0, status, 0, zone=f"z{i % 2}")

    state = ClusterState(entry(i, MemberStatus.ACTIVE) for i in range(6))
    state.learn(entry(6, MemberStatus.JOINING))
    state.learn(entry(7, MemberStatus.JOINING))
    state.learn(entry(8, MemberStatus.JOINING))
    state.learn(entry(2, MemberStatus.LEAVING))
    current, future = rings(state, 64, Member("n0", "r0"))
    assert "n6" not in current.order and "n2" in current.order
    assert "n6" in future.order and "n2" not in future.order
    for ring in (current, future):
        owners = Counter(ring.owner(p) for p in range(ring.partitions))
        assert max(owners.values()) - min(owners.values()) <= 1
        for p in range(ring.partitions):
            assert len({ring.region_of[n] for n in ring.preference_list(p, 3)}) == 3
