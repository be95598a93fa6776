"""CPU time per request of each node process: this checkout against another, alternating.

    python benchmarks/cpu_bench.py [--before /tmp/before/.venv/bin/python]
                                   [--setups single-os,cluster-os,cluster-fsync,dev]
                                   [--rounds 3] [--requests 100000] [--pipeline 1]

Throughput on a small shared machine moves by 5-10% from run to run; the CPU time each node
process spends per request moves less, and it is what a change to the request path changes.
Each round starts the nodes of a setup afresh, runs ``redis-benchmark -c 50 -d 100 -r 100000
-t set`` against the first, and reads every node process's CPU time (user + system, from
``/proc/PID/stat``) before and after. With ``--before``, a Python that runs another checkout
(a ``git worktree`` with its own ``pip install -e .``) takes turns with this one, so drift in
the machine touches both alike.

Setups: ``single-os`` (one node, ``--durability os``), ``cluster-os`` and ``cluster-fsync``
(three nodes at ONE), ``dev`` (three nodes, ``fsync``, QUORUM: ``eventual dev``'s settings).
Printed per setup and build: medians over the rounds of SETs a second, p50 ms, and µs of CPU
per SET of each node process and of all of them. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eventual.server.main import node_command
from redis_bench import free_port, processes

SETUPS = {  # name -> (nodes, durability, consistency)
    "single-os": (1, "os", "ONE"),
    "cluster-os": (3, "os", "ONE"),
    "cluster-fsync": (3, "fsync", "ONE"),
    "dev": (3, "fsync", "QUORUM"),
}
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def one_round(
    python: str, setup: str, requests: int, pipeline: int
) -> tuple[float, float, list[float]]:
    """(SETs a second, p50 ms, µs of CPU per SET of each node) of one fresh run."""
    nodes, durability, level = SETUPS[setup]
    resp = [free_port() for _ in range(nodes)]
    peers = [free_port() for _ in range(nodes)]
    members = [f"n{i}=default@127.0.0.1:{peers[i]}" for i in range(nodes)]
    options = ["--durability", durability, "--n", str(nodes), "--consistency", level]
    with tempfile.TemporaryDirectory() as folder:
        commands = [
            [python, *node_command(f"n{i}", Path(folder) / f"n{i}", f"127.0.0.1:{resp[i]}",
                                   members, *options)[1:]]
            for i in range(nodes)
        ]  # fmt: skip
        with processes(commands, [resp[0]]) as pids:
            time.sleep(1.0)  # let internode links settle
            before = [cpu_seconds(pid) for pid in pids]
            output = subprocess.run(
                ["redis-benchmark", "-p", str(resp[0]), "-c", "50", "-d", "100",
                 "-r", "100000", "-t", "set", "-n", str(requests), "-P", str(pipeline),
                 "--csv", "-q"],
                capture_output=True, text=True, check=False, timeout=600,
            )  # fmt: skip
            after = [cpu_seconds(pid) for pid in pids]
    if output.returncode != 0:
        sys.exit(f"redis-benchmark failed: {(output.stderr or output.stdout).strip()[-500:]}")
    row = output.stdout.strip().splitlines()[-1].replace('"', "").split(",")
    per_set = [(a - b) * 1e6 / requests for a, b in zip(after, before, strict=True)]
    return float(row[1]), float(row[4]), per_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="the Python of another checkout's install")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--pipeline", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    setups = args.setups.split(",")
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        sys.exit(f"unknown setup(s) {', '.join(unknown)}; setups: {', '.join(SETUPS)}")
    builds = {"this": sys.executable} | ({"before": args.before} if args.before else {})
    print(f"SET -c 50 -P {args.pipeline}, medians of {args.rounds} rounds", flush=True)
    print(f"{'setup':<15}{'build':<8}{'SET/s':>9}{'p50':>7}  µs CPU per SET (each node; all)")
    for setup in setups:
        rounds: dict[str, list[tuple[float, float, list[float]]]] = {b: [] for b in builds}
        for _ in range(args.rounds):
            for build, python in builds.items():
                rounds[build].append(one_round(python, setup, args.requests, args.pipeline))
        for build, figures in rounds.items():
            rps = statistics.median(f[0] for f in figures)
            p50 = statistics.median(f[1] for f in figures)
            each = [statistics.median(f[2][i] for f in figures) for i in range(len(figures[0][2]))]
            total = statistics.median(sum(f[2]) for f in figures)
            shown = ", ".join(f"{x:.1f}" for x in each)
            print(f"{setup:<15}{build:<8}{rps:>9,.0f}{p50:>7.2f}  {shown}; {total:.1f}", flush=True)


if __name__ == "__main__":
    main()
