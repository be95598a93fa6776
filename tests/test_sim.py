"""The simulator: determinism, checkers that catch planted bugs, and the seed sweep CI runs."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import eventual
from eventual.cli import main
from eventual.clocks import DVVSet
from eventual.core import record as record_module
from eventual.core.node import Node
from eventual.crdt import BoundedCounter, LWWRegister, SortedSet
from eventual.crdt._keyed import KeyedCausal
from eventual.sim import Faults, SimConfig, Simulation
from eventual.sim.runner import run_seeds

CI_SEEDS = 300


def digest_in_fresh_process(seed: int, hash_seed: str, *, pure: bool = False) -> str:
    """Run one seed in a new interpreter: a different PYTHONHASHSEED must not matter.
    ``pure``: on the pure-Python build, whichever build this process runs."""
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    if pure:
        env["EVENTUAL_PURE"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "eventual", "sim", "--seed", str(seed), "--ops", "120", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return str(json.loads(out.stdout)["digest"])


def test_the_same_seed_gives_the_same_digest_and_another_seed_another() -> None:
    first = digest_in_fresh_process(11, "1")
    assert digest_in_fresh_process(11, "2") == first
    assert digest_in_fresh_process(12, "1") != first
    in_process = Simulation(SimConfig(seed=11, ops=120)).run().digest
    assert in_process == first


@pytest.mark.skipif(not eventual.COMPILED, reason=f"needs the compiled build ({eventual.BUILD})")
def test_the_compiled_and_the_pure_build_give_the_same_digest() -> None:
    # Seeds that take every fault and workload the default run has: the compiled modules
    # must make every decision the pure ones make, to the order of the messages.
    for seed in (3, 11):
        assert digest_in_fresh_process(seed, "1") == digest_in_fresh_process(seed, "1", pure=True)


def test_the_cli_reports_seeds_ops_faults_and_speed() -> None:
    result = CliRunner().invoke(
        main, ["sim", "--seeds", "2", "--ops", "80", "--jobs", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["seeds"] == 2 and data["violations"] == []
    assert data["ops_acked"] > 0 and data["sim_seconds"] == 120
    assert {"seeds", "ops_acked", "violations", "sim_seconds", "wall_seconds"} <= set(data)
    assert sum(data["faults_injected"].values()) > 0
    bad = CliRunner().invoke(main, ["sim", "--faults", "meteor"])
    assert bad.exit_code == 2 and "unknown faults" in bad.output


def test_lww_losses_are_counted_not_hidden() -> None:
    summary = run_seeds(SimConfig(seed=0, ops=300), [1, 2, 3], jobs=1)
    assert summary.violations == []
    assert summary.lww_losses > 0  # partitions make concurrent SETs; the losers are reported
    assert summary.as_json()["lww_losses"] == summary.lww_losses


def violations(seeds: range, **config: Any) -> list[dict[str, Any]]:
    summary = run_seeds(SimConfig(seed=0, **config), list(seeds), jobs=1)
    return summary.violations


# --- planted bugs: each checker must catch one ---


@pytest.mark.pure_only
def test_a_merge_that_drops_a_sibling_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = DVVSet.merge

    def lossy_merge(self: DVVSet, other: DVVSet) -> None:
        original(self, other)
        entries = self._entries
        if len(self) > 1:  # keep only the first actor's values: siblings vanish
            first = min(actor for actor, (_, values) in entries.items() if values)
            for actor, (counter, values) in list(entries.items()):
                if actor != first and values:
                    entries[actor] = (counter, ())

    monkeypatch.setattr(DVVSet, "merge", lossy_merge)
    found = violations(range(1, 6), ops=200)
    assert any(v["checker"] == "lost-write" and v["key"].startswith("obj:") for v in found)
    lost = next(v for v in found if v["key"].startswith("obj:"))
    assert "neither a sibling nor covered" in lost["detail"] and lost["trace"]


@pytest.mark.pure_only
def test_a_replica_that_ignores_deltas_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventual.core.messages import ReplicaWrite, WriteAck

    def ignore(self: Node, effects: Any, sender: str, message: ReplicaWrite) -> None:
        if message.id:
            effects.send(sender, WriteAck(message.id))  # acknowledges, keeps nothing

    monkeypatch.setattr(Node, "_on_replica_write", ignore)
    found = violations(range(1, 3), ops=150, anti_entropy=False)
    assert any(v["checker"] == "convergence" for v in found)


@pytest.mark.pure_only
def test_a_member_level_repair_that_drops_a_member_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anti-entropy of a big collection sends only what the other side has not seen; if it
    marks a member seen but leaves it out, that member is lost: the checkers say so."""
    original = KeyedCausal.unseen_by

    def lossy(self: KeyedCausal[Any], context: Any, bytes_max: int) -> Any:
        delta, complete = original(self, context, bytes_max)
        dropped = next(iter(delta._dots.entries), None)
        if dropped is not None:  # its dots stay in the delta's context: "seen", but absent
            for dot in delta._dots.pop(dropped):
                delta._context.add(dot)
        return delta, complete

    monkeypatch.setattr(KeyedCausal, "unseen_by", lossy)
    found = violations(range(1, 9), ops=300)
    big = [v for v in found if v["key"].startswith(("bigset:", "bighash:"))]
    assert big, "no violation on a big collection"
    assert {v["checker"] for v in big} <= {"lost-write", "convergence"}


@pytest.mark.pure_only
def test_a_register_that_drops_increments_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strings and hash fields that count (``cstr:``, ``hcnt:``): a replica that already
    counts and ignores the increments it is sent loses them; the counting checker and
    convergence say so."""
    original = LWWRegister.merge

    def lossy(self: LWWRegister, other: LWWRegister) -> None:
        if self._added is not None and other._added is not None and other._write is None:
            return  # an increment's delta, dropped
        original(self, other)

    monkeypatch.setattr(LWWRegister, "merge", lossy)
    found = violations(range(1, 9), ops=300)
    counting = [v for v in found if v["key"].startswith(("cstr:", "hcnt:"))]
    assert any(v["checker"] == "lost-write" for v in counting), found[:3]


@pytest.mark.pure_only
def test_a_sorted_set_that_drops_concurrent_increments_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica that keeps its own state of a member it already holds, and drops what
    another replica sends of it, loses the increments made there: the counting checker
    says so."""
    original = SortedSet.merge

    def lossy(self: SortedSet, other: SortedSet) -> None:
        kept = {m: dict(live) for m, live in self._dots.entries.items() if m in other._dots.entries}
        original(self, other)
        for member, live in kept.items():
            now = self._dots.entries.get(member)
            if now is None:
                continue
            for dot in [d for d in now if d not in live]:  # what came from the other side
                del now[dot]
                del self._dots.owner[dot]
            if not now:
                del self._dots.entries[member]
            self._dots._digest = None

    monkeypatch.setattr(SortedSet, "merge", lossy)
    found = violations(range(1, 13), ops=300)
    zsets = [v for v in found if v["key"].startswith("zset:")]
    assert any(v["checker"] == "lost-write" for v in zsets), found[:3]


@pytest.mark.pure_only
def test_a_ranked_read_out_of_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = SortedSet.in_order

    def unreversed(self: SortedSet, rev: bool) -> list[bytes]:
        return original(self, False)  # REV ignored

    monkeypatch.setattr(SortedSet, "in_order", unreversed)
    found = violations(range(1, 9), ops=300)
    assert any(v["checker"] == "ranked-read" for v in found), found[:3]


def test_big_collections_grow_to_thousands_of_members_in_the_sweep() -> None:
    """The mixed workload takes its big sets and hashes past AE_MEMBERS_WHOLE_MAX, so the
    sweep below exercises member cells, projections and member-level anti-entropy."""
    from eventual.core.base import AE_MEMBERS_WHOLE_MAX

    sizes = []
    for seed in (5, 6, 7):  # one seed's draw of the mix can fall a little short of a thousand
        sim = Simulation(SimConfig(seed=seed))
        sim.run()
        sizes += [
            record.size()
            for key in (b"bigset:0", b"bigset:1", b"bighash:0", b"bighash:1")
            for node in sim.primaries(key)
            if (record := sim.record(node, key)) is not None
        ]
    assert max(sizes) >= 1_000 and min(sizes) > AE_MEMBERS_WHOLE_MAX


@pytest.mark.pure_only
def test_a_bounded_counter_that_decrements_without_rights_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(BoundedCounter, "_require", lambda self, actor, n, operation: None)
    found = violations(range(1, 4), ops=250)
    assert any(v["checker"] == "bounded-counter" for v in found)
    assert any("below zero" in v["detail"] or "< 0" in v["detail"] for v in found)


def test_switching_off_anti_entropy_is_caught() -> None:
    """With crashes and lost messages, some replica misses a write that no hint covers;
    only anti-entropy would repair it (the same seeds pass with it on: see below)."""
    found = violations(range(1, 21), ops=300, anti_entropy=False)
    assert any(v["checker"] == "convergence" for v in found)


# --- the sweep ---


def seed_batches() -> Iterator[range]:
    step = CI_SEEDS // 6
    for start in range(1, CI_SEEDS + 1, step):
        yield range(start, min(start + step, CI_SEEDS + 1))


@pytest.mark.slow
@pytest.mark.parametrize("seeds", list(seed_batches()), ids=lambda r: f"{r.start}-{r.stop - 1}")
def test_random_seeds_with_every_fault_have_no_violations(seeds: range) -> None:
    summary = run_seeds(SimConfig(seed=0, faults=Faults()), list(seeds), jobs=1)
    assert summary.seeds == len(seeds)
    assert summary.ops_acked > 0
    assert set(summary.faults_injected) >= {"crash", "partition", "skew"}
    assert summary.violations == [], json.dumps(summary.violations[:2], default=repr)[:4000]
    # Every record without a TTL or baseline shares one empty state of each: nothing may
    # have written into them (TTLs, DELs of counters and merges all ran above, in-process).
    assert record_module._NO_TTL.is_empty()
    assert record_module._NO_BASELINE.is_empty()


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [range(1, 26), range(26, 51)], ids=["1-25", "26-50"])
def test_inventory_never_oversells_and_its_books_balance(seeds: range) -> None:
    """The flagship story under every fault: stock is sold at local levels in every region;
    no replica ever holds a negative count, and stock left plus acknowledged sales equals
    stock put in (up to sales whose fate the client never learnt)."""
    template = SimConfig(seed=0, faults=Faults(), workload="inventory", keys_per_kind=3)
    summary = run_seeds(template, list(seeds), jobs=1)
    assert summary.ops_acked > 0
    assert summary.violations == [], json.dumps(summary.violations[:2])[:4000]
