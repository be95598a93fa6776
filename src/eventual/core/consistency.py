"""Consistency levels: how many replicas must answer a request (DESIGN.md §1, §4).

The names are Cassandra's. ``QUORUM`` is a majority of the N replicas; the ``LOCAL_*``
levels count only replicas in the coordinator's region; ``EACH_QUORUM`` needs a majority in
every region that holds replicas. ``n``, ``r`` and ``w`` overrides on a request take precedence
over the level's count, as in Riak.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

__all__ = ["Level", "Requirement", "requirement"]


class Level(Enum):
    ONE = "ONE"
    TWO = "TWO"
    THREE = "THREE"
    QUORUM = "QUORUM"
    ALL = "ALL"
    LOCAL_ONE = "LOCAL_ONE"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    EACH_QUORUM = "EACH_QUORUM"

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls(text.upper())
        except ValueError:
            names = ", ".join(level.value for level in cls)
            raise ValueError(f"unknown consistency level {text!r}; use one of {names}") from None


def quorum(n: int) -> int:
    return n // 2 + 1


@dataclass(frozen=True, slots=True)
class Requirement:
    """Answers needed: ``total`` from any replicas, ``local`` from the coordinator's region,
    and ``per_region`` from each region that holds replicas."""

    total: int
    local: int = 0
    per_region: tuple[tuple[str, int], ...] = ()

    def met(self, answered: Collection[str], region_of: dict[str, str], local_region: str) -> bool:
        if len(answered) < self.total:
            return False
        if not self.local and not self.per_region:
            return True  # ONE, QUORUM, ALL...: a count, whatever the regions
        regions = Counter(region_of.get(node, "") for node in answered)
        if regions[local_region] < self.local:
            return False
        return all(regions[region] >= count for region, count in self.per_region)

    def describe(self) -> str:
        parts = [f"{self.total} replicas"]
        if self.local:
            parts.append(f"{self.local} in the local region")
        parts += [f"{count} in {region}" for region, count in self.per_region]
        return ", ".join(parts)


def requirement(
    level: Level,
    replicas: list[str],
    region_of: dict[str, str],
    local_region: str,
    override: int | None = None,
) -> Requirement:
    """What ``level`` (or an explicit r/w ``override``) needs over this preference list."""
    n = len(replicas)
    if override is not None:
        if not 1 <= override <= n:
            raise ValueError(f"asked for {override} replicas, but n is {n}")
        return Requirement(override)
    if level in (Level.ONE, Level.TWO, Level.THREE):
        count = {Level.ONE: 1, Level.TWO: 2, Level.THREE: 3}[level]
        if count > n:
            raise ValueError(f"{level.value} needs {count} replicas, but n is {n}")
        return Requirement(count)
    if level is Level.QUORUM:
        return Requirement(quorum(n))
    if level is Level.ALL:
        return Requirement(n)
    by_region = Counter(region_of.get(node, "") for node in replicas)
    local = by_region[local_region]
    if level is Level.LOCAL_ONE:
        if not local:
            raise ValueError(f"LOCAL_ONE: no replica of this key is in region {local_region!r}")
        return Requirement(1, local=1)
    if level is Level.LOCAL_QUORUM:
        if not local:
            raise ValueError(f"LOCAL_QUORUM: no replica of this key is in region {local_region!r}")
        return Requirement(quorum(local), local=quorum(local))
    per_region = tuple(sorted((region, quorum(count)) for region, count in by_region.items()))
    return Requirement(sum(count for _, count in per_region), per_region=per_region)
