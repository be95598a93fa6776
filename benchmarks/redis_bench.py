"""redis-benchmark against redis-server and against Eventual, in the same run.

    python benchmarks/redis_bench.py [--requests 50000] [--only single-os,single-fsync,cluster]

Needs redis-server and redis-benchmark (Debian: ``apt-get install redis-server redis-tools``).
Three pairs, each run with ``-c 50 -d 100 -r 100000 -t set,get`` at ``-P 1`` and ``-P 16``:

| pair | Redis | Eventual |
|---|---|---|
| single-os | one server, ``appendfsync everysec`` | one node, ``--durability os`` |
| single-fsync | one server, ``appendfsync always`` | one node, ``--durability fsync`` |
| cluster | a primary with 2 replicas | 3 nodes, ``--consistency ONE`` (W=1) |

Printed: requests per second, p50 and p99 latency (ms) of both, and Eventual's throughput as
a share of Redis's. Each server gets a fresh data directory and is stopped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventual.server.main import node_command

TARGETS = {"single-os": 0.70, "single-fsync": 0.70, "cluster": 0.50}  # -P 1 targets
TARGETS_PIPELINED = {"single-os": 0.50, "single-fsync": 0.50, "cluster": 0.50}


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
    if pair == "cluster":
        replicas = [free_port(), free_port()]
        commands = [[*common, "--port", str(port), "--dir", str(base), "--appendonly", "no"]]
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
    nodes = 3 if pair == "cluster" else 1
    resp = [free_port() for _ in range(nodes)]
    peers = [free_port() for _ in range(nodes)]
    members = [f"n{i}=default@127.0.0.1:{peers[i]}" for i in range(nodes)]
    durability = {"single-os": "os", "single-fsync": "fsync", "cluster": "fsync"}[pair]
    level = "ONE" if pair == "cluster" else "QUORUM"
    options = ["--durability", durability, "--n", str(nodes), "--consistency", level]
    commands = [
        node_command(f"n{i}", base / f"n{i}", f"127.0.0.1:{resp[i]}", members, *options)
        for i in range(nodes)
    ]
    return commands, resp[0]


def benchmark(port: int, pipeline: int, requests: int) -> dict[str, tuple[float, float, float]]:
    output = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-c",
            "50",
            "-d",
            "100",
            "-r",
            "100000",
            "-t",
            "set,get",
            "-n",
            str(requests),
            "-P",
            str(pipeline),
            "--csv",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    results = {}
    for row in csv.DictReader(io.StringIO(output)):
        results[row["test"]] = (
            float(row["rps"]),
            float(row["p50_latency_ms"]),
            float(row["p99_latency_ms"]),
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--only", default=",".join(TARGETS), help="pairs to run, comma-separated")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install redis-server redis-tools")
    header = (
        f"{'pair':<13}{'test':<5}{'-P':>4}{'redis req/s':>13}{'p50':>7}{'p99':>7}"
        f"{'eventual req/s':>16}{'p50':>8}{'p99':>9}{'ratio':>8}{'target':>8}"
    )
    print(header)
    print("-" * len(header))
    for pair in args.only.split(","):
        figures = {}
        for system in ("redis", "eventual"):
            with tempfile.TemporaryDirectory() as folder:
                build = redis_commands if system == "redis" else eventual_commands
                commands, port = build(pair, Path(folder))
                with processes(commands, [port]):
                    time.sleep(1.0)  # let replicas and internode links settle
                    figures[system] = {p: benchmark(port, p, args.requests) for p in (1, 16)}
        for pipeline in (1, 16):
            for test in ("SET", "GET"):
                r_rps, r_p50, r_p99 = figures["redis"][pipeline][test]
                e_rps, e_p50, e_p99 = figures["eventual"][pipeline][test]
                target = (TARGETS if pipeline == 1 else TARGETS_PIPELINED)[pair]
                print(
                    f"{pair:<13}{test:<5}{pipeline:>4}{r_rps:>13,.0f}{r_p50:>7.2f}{r_p99:>7.2f}"
                    f"{e_rps:>16,.0f}{e_p50:>8.2f}{e_p99:>9.2f}{e_rps / r_rps:>7.0%}{target:>8.0%}"
                )


if __name__ == "__main__":
    main()
