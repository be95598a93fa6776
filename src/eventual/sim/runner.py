"""Run many seeds, in parallel processes, and sum up: what ``eventual sim`` prints."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from eventual.process import tune_gc
from eventual.sim.simulator import SimConfig, SimResult, Simulation

__all__ = ["Summary", "run_seeds"]


@dataclass
class Summary:
    seeds: int = 0
    ops_issued: int = 0
    ops_acked: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    lww_losses: int = 0
    excused: int = 0
    digest: str | None = None

    def add(self, result: SimResult) -> None:
        self.seeds += 1
        self.ops_issued += result.ops_issued
        self.ops_acked += result.ops_acked
        for name, count in result.faults_injected.items():
            self.faults_injected[name] = self.faults_injected.get(name, 0) + count
        self.violations += result.violations
        self.sim_seconds += result.sim_ms / 1000
        self.lww_losses += result.lww_losses
        self.excused += result.excused

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seeds": self.seeds,
            "ops_issued": self.ops_issued,
            "ops_acked": self.ops_acked,
            "faults_injected": dict(sorted(self.faults_injected.items())),
            "violations": self.violations,
            "lww_losses": self.lww_losses,
            "excused": self.excused,
            "sim_seconds": round(self.sim_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "sim_seconds_per_wall_second": round(
                self.sim_seconds / max(self.wall_seconds, 1e-9), 1
            ),
        }
        if self.digest is not None:
            data["digest"] = self.digest
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_json(), default=repr)


def _run_one(config: SimConfig) -> SimResult:
    return Simulation(config).run()


def _results(template: SimConfig, seeds: list[int], jobs: int) -> Iterator[SimResult]:
    configs = [replace(template, seed=seed) for seed in seeds]
    if jobs <= 1 or len(configs) == 1:
        yield from map(_run_one, configs)
        return
    # fork keeps start-up cheap; every run is deterministic from its seed alone.
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(_run_one, configs, chunksize=4)


def run_seeds(
    template: SimConfig,
    seeds: list[int],
    jobs: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Summary:
    """Run every seed (``jobs`` processes); ``progress(1)`` after each one."""
    jobs = jobs or os.cpu_count() or 1
    tune_gc()  # before the workers fork: they keep it
    summary = Summary()
    started = time.perf_counter()
    for result in _results(template, seeds, jobs):
        summary.add(result)
        if progress is not None:
            progress(1)
        if len(seeds) == 1:
            summary.digest = result.digest
    summary.wall_seconds = time.perf_counter() - started
    return summary
