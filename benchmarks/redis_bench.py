"""redis-benchmark against redis-server and against Eventual, alternating, in one run.

    python benchmarks/redis_bench.py [--requests 50000] [--rounds 3]
                                     [--only single-os,single-fsync,cluster,dev]

Needs redis-server and redis-benchmark (Debian: ``apt-get install redis-server redis-tools``).
Every run is ``-d 100 -r 100000 -t set,get``; each round starts both systems afresh, Redis
first, then Eventual, so drift in the machine touches both alike; the table gives the median
of the rounds.

Pairs, and the runs of each (clients x pipeline):

- ``single-os``: one redis-server with ``appendfsync everysec``; one node, ``--durability
  os``. 50x1 and 50x16.
- ``single-fsync``: ``appendfsync always``; ``--durability fsync``. 50x1 and 50x16.
- ``cluster``: a Redis primary with 2 replicas; 3 nodes at ``--consistency ONE`` (W=1).
  50x1 and 50x16.
- ``dev``: a primary with 2 replicas, all ``appendfsync always``; the nodes of ``eventual dev
  --nodes 3`` (fsync, QUORUM). 50x1 and 1x1 (one client: the latency of one quorum write).

Printed: requests per second, p50 and p99 latency (ms) of both, Eventual's throughput as a
share of Redis's, and the target the throughput issue sets (a share of Redis, or for ``dev``
a p50/p99 bound in ms); ``--json FILE`` keeps every round's figures.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventual.progress import progress_bar
from eventual.server.main import node_command

# pair -> its runs, (clients, pipeline).
RUNS = {
    "single-os": [(50, 1), (50, 16)],
    "single-fsync": [(50, 1), (50, 16)],
    "cluster": [(50, 1), (50, 16)],
    "dev": [(50, 1), (1, 1)],
}
# (pair, test, clients, pipeline) -> what the throughput issue asks: a share of Redis's
# requests a second, or for the default dev cluster a latency bound (p50, p99 in ms).
RATIO_TARGETS = {
    ("single-os", "SET", 50, 1): 0.50,
    ("single-os", "GET", 50, 1): 0.50,
    ("single-os", "SET", 50, 16): 0.10,
    ("single-os", "GET", 50, 16): 0.10,
    ("single-fsync", "SET", 50, 1): 0.50,
    ("cluster", "SET", 50, 1): 0.30,
    ("cluster", "GET", 50, 1): 0.30,
}
LATENCY_TARGETS = {
    ("dev", "SET", 50, 1): (3.0, None),
    ("dev", "SET", 1, 1): (0.3, 1.0),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers PING on port {port}")


@contextmanager
def processes(commands: list[list[str]], ports: list[int]) -> Iterator[list[int]]:
    """Run ``commands`` until each of ``ports`` answers PING; yield their process ids."""
    started = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    try:
        for port in ports:
            wait_for_port(port)
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def redis_commands(pair: str, base: Path) -> tuple[list[list[str]], int]:
    port = free_port()
    common = ["redis-server", "--save", "", "--bind", "127.0.0.1", "--protected-mode", "no"]
    if pair in ("cluster", "dev"):
        dev = pair == "dev"
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if dev else ["--appendonly", "no"]
        replicas = [free_port(), free_port()]
        commands = [[*common, "--port", str(port), "--dir", str(base), *aof]]
        for i, replica in enumerate(replicas):
            folder = base / f"replica{i}"
            folder.mkdir()
            commands.append(
                [
                    *common,
                    "--port",
                    str(replica),
                    "--dir",
                    str(folder),
                    "--replicaof",
                    "127.0.0.1",
                    str(port),
                    *aof,
                ]
            )
        return commands, port
    fsync = "everysec" if pair == "single-os" else "always"
    return [
        [
            *common,
            "--port",
            str(port),
            "--dir",
            str(base),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
        ]
    ], port


def eventual_commands(pair: str, base: Path) -> tuple[list[list[str]], int]:
    nodes = 3 if pair in ("cluster", "dev") else 1
    resp = [free_port() for _ in range(nodes)]
    peers = [free_port() for _ in range(nodes)]
    members = [f"n{i}=default@127.0.0.1:{peers[i]}" for i in range(nodes)]
    durability = "os" if pair == "single-os" else "fsync"
    level = "ONE" if pair == "cluster" else "QUORUM"  # QUORUM: the dev cluster's default
    options = ["--durability", durability, "--n", str(nodes), "--consistency", level]
    commands = [
        node_command(f"n{i}", base / f"n{i}", f"127.0.0.1:{resp[i]}", members, *options)
        for i in range(nodes)
    ]
    return commands, resp[0]


def benchmark(
    port: int, clients: int, pipeline: int, requests: int
) -> dict[str, tuple[float, float, float]]:
    """``{test: (requests a second, p50 ms, p99 ms)}`` of one redis-benchmark run."""
    output = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-c",
            str(clients),
            "-d",
            "100",
            "-r",
            "100000",
            "-t",
            "set,get",
            "-n",
            # One client waits for every reply: fewer requests keep its run as short.
            str(requests if clients > 1 else max(1, requests // 5)),
            "-P",
            str(pipeline),
            "--csv",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if output.returncode != 0:
        sys.exit(
            f"redis-benchmark -c {clients} -P {pipeline} on port {port} failed:"
            f" {(output.stderr or output.stdout).strip()[-500:]}"
        )
    results = {}
    for row in csv.DictReader(io.StringIO(output.stdout)):
        results[row["test"]] = (
            float(row["rps"]),
            float(row["p50_latency_ms"]),
            float(row["p99_latency_ms"]),
        )
    return results


Figures = dict[tuple[int, int, str], list[tuple[float, float, float]]]


def run_pair(pair: str, system: str, requests: int, figures: Figures) -> None:
    with tempfile.TemporaryDirectory() as folder:
        build = redis_commands if system == "redis" else eventual_commands
        commands, port = build(pair, Path(folder))
        with processes(commands, [port]):
            time.sleep(1.0)  # let replicas and internode links settle
            for clients, pipeline in RUNS[pair]:
                for test, figure in benchmark(port, clients, pipeline, requests).items():
                    figures.setdefault((clients, pipeline, test), []).append(figure)


def median(figures: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    rps, p50, p99 = zip(*figures, strict=True)
    return statistics.median(rps), statistics.median(p50), statistics.median(p99)


def verdict(
    pair: str, key: tuple[int, int, str], eventual: tuple[float, float, float], ratio: float
) -> str:
    clients, pipeline, test = key
    share = RATIO_TARGETS.get((pair, test, clients, pipeline))
    if share is not None:
        return f"{share:.0%} {'met' if ratio >= share else 'no'}"
    bound = LATENCY_TARGETS.get((pair, test, clients, pipeline))
    if bound is None:
        return ""
    p50, p99 = bound
    met = eventual[1] <= p50 and (p99 is None or eventual[2] <= p99)
    return f"p50<={p50}" + (f",p99<={p99}" if p99 else "") + (" met" if met else " no")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="each system this many times")
    parser.add_argument("--only", default=",".join(RUNS), help="pairs to run, comma-separated")
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install redis-server redis-tools")
    pairs = args.only.split(",")
    unknown = sorted(set(pairs) - set(RUNS))
    if unknown:
        sys.exit(f"unknown pair(s) {', '.join(unknown)}; pairs: {', '.join(RUNS)}")
    header = (
        f"{'pair':<13}{'test':<5}{'-c':>4}{'-P':>4}{'redis req/s':>13}{'p50':>7}{'p99':>7}"
        f"{'eventual req/s':>16}{'p50':>8}{'p99':>9}{'ratio':>7}  target"
    )
    print(f"median of {args.rounds} rounds, redis and eventual alternating", flush=True)
    print(header)
    print("-" * (len(header) + 14), flush=True)
    kept: dict[str, dict[str, Figures]] = {}
    for pair in pairs:
        figures: dict[str, Figures] = {"redis": {}, "eventual": {}}
        with progress_bar(args.rounds * 2, pair) as bar:  # on a terminal: which run it is at
            for _ in range(args.rounds):
                for system in ("redis", "eventual"):
                    run_pair(pair, system, args.requests, figures[system])
                    bar.update(1)
        kept[pair] = figures
        for key in sorted(figures["eventual"], key=lambda k: (-k[0], k[1], k[2] != "SET")):
            clients, pipeline, test = key
            r_rps, r_p50, r_p99 = median(figures["redis"][key])
            e = median(figures["eventual"][key])
            ratio = e[0] / r_rps
            print(
                f"{pair:<13}{test:<5}{clients:>4}{pipeline:>4}{r_rps:>13,.0f}{r_p50:>7.2f}"
                f"{r_p99:>7.2f}{e[0]:>16,.0f}{e[1]:>8.2f}{e[2]:>9.2f}{ratio:>7.0%}  "
                f"{verdict(pair, key, e, ratio)}",
                flush=True,
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    pair: {
                        system: {f"{c}x{p} {t}": rounds for (c, p, t), rounds in figs.items()}
                        for system, figs in systems.items()
                    }
                    for pair, systems in kept.items()
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
