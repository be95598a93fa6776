"""How fast the simulator runs: simulated seconds per wall second, builds side by side.

    python benchmarks/sim_bench.py [--seeds 200] [--jobs 2]     # this checkout, both builds
    git worktree add /tmp/before 2ca447b                       # the commit before the data path
    python benchmarks/sim_bench.py --before /tmp/before/src

Each line is one ``eventual sim --seeds N --json`` in a process of its own. Two mixes:
``mixed`` (today's default: every data type, and a few sets and hashes grown to thousands of
members) and ``small`` (the same without those big collections). An older checkout has one
mix only, the one it had; the checkout named above had no big collections, so its mix is
``small`` and the ratios compare like with like. A run with violations is reported as such:
a fast wrong simulator is no faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import eventual


def run(seeds: int, jobs: int, workload: str | None, env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "eventual", "sim", "--seeds", str(seeds)]
    command += ["--jobs", str(jobs), "--json"]
    if workload is not None:
        command += ["--workload", workload]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=3_600
    )
    summary = json.loads(done.stdout)
    return {
        "rate": summary["sim_seconds_per_wall_second"],
        "wall": summary["wall_seconds"],
        "violations": len(summary["violations"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--before", type=Path, help="the src/ folder of an older checkout")
    args = parser.parse_args()
    here = dict(os.environ)
    runs: list[tuple[str, str | None, str, dict[str, str]]] = []  # label, flag, mix, env
    if args.before is not None:
        before = dict(here, PYTHONPATH=str(args.before.resolve()), EVENTUAL_PURE="1")
        runs.append((f"before ({args.before}), its mix", None, "small", before))
    builds = [("pure", dict(here, EVENTUAL_PURE="1"))]
    if eventual.COMPILED:
        builds.append(("compiled", here))
    for name, env in builds:
        runs += [(f"{name}, {mix}", mix, mix, env) for mix in ("small", "mixed")]
    print(
        f"{args.seeds} seeds, {args.jobs} jobs: simulated s per wall s, wall time, and the ratio"
        " to the first line of the same mix"
    )
    first: dict[str, float] = {}
    for label, workload, mix, env in runs:
        figures = run(args.seeds, args.jobs, workload, env)
        base = first.setdefault(mix, figures["rate"])
        note = f"  {figures['violations']} VIOLATIONS" if figures["violations"] else ""
        print(
            f"{label:<40}{figures['rate']:>8.0f}{figures['wall']:>9.1f} s"
            f"{figures['rate'] / base:>7.2f}x{note}",
            flush=True,
        )


if __name__ == "__main__":
    main()
