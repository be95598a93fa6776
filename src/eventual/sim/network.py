"""The simulated network and clocks: everything faulty, everything from one seeded RNG.

Latency per link comes from a region matrix (a few ms inside a region, tens to a hundred and
fifty between regions) plus jitter, and jitter reorders messages. Faults are a plain options
object, in the manner of TigerBeetle's VOPR: each named fault can be switched on or off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["FAULTS", "Faults", "Network"]

FAULTS = (
    "loss",  # messages dropped
    "duplicate",  # messages delivered twice
    "reorder",  # extra jitter, so messages overtake each other
    "partition",  # symmetric partitions between groups of nodes
    "one-way",  # a link that carries messages in one direction only
    "clog",  # a link that holds messages for seconds
    "crash",  # nodes crash (losing volatile state) and restart from their store
    "skew",  # clocks skewed per node, and jumps
    "membership",  # nodes join, leave, and are replaced (killed for good, then succeeded)
)


@dataclass(frozen=True, slots=True)
class Faults:
    enabled: frozenset[str] = frozenset(FAULTS)
    loss_probability: float = 0.02
    duplicate_probability: float = 0.02
    reorder_jitter_ms: int = 40
    clog_ms: int = 3_000

    @classmethod
    def parse(cls, names: str) -> Faults:
        """``"all"``, ``"none"`` or a comma-separated list of fault names."""
        if names.strip() in ("all", ""):
            return cls()
        if names.strip() == "none":
            return cls(frozenset())
        chosen = frozenset(name.strip() for name in names.split(",") if name.strip())
        unknown = chosen - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        return cls(chosen)

    def __contains__(self, name: str) -> bool:
        return name in self.enabled


@dataclass
class Network:
    rng: random.Random
    regions: dict[str, str]  # node -> region
    faults: Faults
    blocked: set[tuple[str, str]] = field(default_factory=set)  # (from, to) pairs cut
    clogged: set[tuple[str, str]] = field(default_factory=set)
    healed: bool = False
    latency_ms: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = sorted(set(self.regions.values()))
        for i, a in enumerate(names):
            for b in names[i:]:
                base = self.rng.randint(1, 5) if a == b else self.rng.randint(30, 150)
                self.latency_ms[(a, b)] = self.latency_ms[(b, a)] = base

    def deliveries(self, source: str, target: str) -> list[int]:
        """Delays (ms) at which one message from ``source`` reaches ``target``: none if it is
        lost or cut, two if duplicated."""
        if (source, target) in self.blocked:
            return []
        active = not self.healed
        if active and "loss" in self.faults and self.rng.random() < self.faults.loss_probability:
            return []
        base = self.latency_ms[(self.regions[source], self.regions[target])]
        jitter = self.faults.reorder_jitter_ms if active and "reorder" in self.faults else 2
        delays = [base + self.rng.randint(0, jitter)]
        if (source, target) in self.clogged:
            delays[0] += self.faults.clog_ms
        if (
            active
            and "duplicate" in self.faults
            and self.rng.random() < self.faults.duplicate_probability
        ):
            delays.append(base + self.rng.randint(0, jitter * 2))
        return delays
