"""Member operations on big sets and hashes, Eventual against redis-server, through redis-py.

    python benchmarks/collections_bench.py [--sizes 10,1000,100000,1000000] [--samples 2000]
    python benchmarks/collections_bench.py --sizes 10000000 --memory-only   # a 10M-member set

Needs redis-server (Debian: ``apt-get install redis-server``). One redis-server (no
persistence) and one Eventual node (N = 1, ``--durability os``), each on loopback. For every
size, a set, a hash, a sorted set and a list of that many members are filled (1,000
members a command), then each operation is timed ``--samples`` times, one request at a time,
on one connection:

- SADD of a new member (removed again, untimed, so the size stays put), SISMEMBER of a
  present member, SCARD;
- HSET of an existing field (a new value), HGET;
- ZADD of a new member (removed again, untimed), ZINCRBY, ZSCORE and ZRANK of a present
  member, ZREVRANGE 0 9 (a leaderboard's top ten), ZRANGEBYSCORE from a present score
  LIMIT 0 10, ZCARD;
- RPUSH and LPUSH of a new element (popped again, untimed), LINDEX and LSET of an element
  in the middle, LRANGE of ten from the head and of ten from the middle, LLEN;
- SMEMBERS, reported per member it returns.

Printed: the median latency in µs of each, side by side, Eventual's latency at each size
relative to its latency at the smallest size (the target: within 1.5x at 1,000,000 against
10), and the node's resident memory per member.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from eventual.server.main import node_command

sys.path.insert(0, str(Path(__file__).parent))
from redis_bench import free_port, processes  # a sibling script

FILL_BATCH = 1_000  # members per SADD / HSET while filling


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def fill(client: redis.Redis, size: int, hashes: bool) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, size, FILL_BATCH):
        members = [b"member:%d" % i for i in range(start, min(size, start + FILL_BATCH))]
        pipe.sadd(b"set:%d" % size, *members)
        if hashes:
            pipe.hset(b"hash:%d" % size, mapping={m: b"value" for m in members})
            scores = {m: float(start + i) for i, m in enumerate(members)}
            pipe.zadd(b"zset:%d" % size, scores)
            pipe.rpush(b"list:%d" % size, *members)
        if len(pipe) >= 8:
            pipe.execute()
    pipe.execute()


def timed(samples: int, call: Callable[[int], object], after: Callable[[int], object]) -> float:
    """Median µs of ``call(i)``; ``after(i)`` runs untimed between calls."""
    times = []
    for i in range(samples):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
        after(i)
    return statistics.median(times) * 1e6


def measure(client: redis.Redis, size: int, samples: int) -> dict[str, float]:
    s, h, z, li = b"set:%d" % size, b"hash:%d" % size, b"zset:%d" % size, b"list:%d" % size

    def nothing(i: int) -> None:
        return None

    present = [b"member:%d" % (i * 7919 % size) for i in range(samples)]
    figures = {
        "SADD": timed(
            samples,
            lambda i: client.sadd(s, b"new:%d" % i),
            lambda i: client.srem(s, b"new:%d" % i),
        ),
        "SISMEMBER": timed(samples, lambda i: client.sismember(s, present[i]), nothing),
        "SCARD": timed(samples, lambda i: client.scard(s), nothing),
        "HSET": timed(samples, lambda i: client.hset(h, present[i], b"v%d" % i), nothing),
        "HGET": timed(samples, lambda i: client.hget(h, present[i]), nothing),
        "ZADD": timed(
            samples,
            lambda i: client.zadd(z, {b"new:%d" % i: i * 0.5}),
            lambda i: client.zrem(z, b"new:%d" % i),
        ),
        "ZINCRBY": timed(samples, lambda i: client.zincrby(z, 1, present[i]), nothing),
        "ZSCORE": timed(samples, lambda i: client.zscore(z, present[i]), nothing),
        "ZRANK": timed(samples, lambda i: client.zrank(z, present[i]), nothing),
        "ZREVRANGE top10": timed(samples, lambda i: client.zrevrange(z, 0, 9), nothing),
        "ZRANGEBYSCORE": timed(
            samples,
            lambda i: client.zrangebyscore(z, i * 7919 % size, "+inf", start=0, num=10),
            nothing,
        ),
        "ZCARD": timed(samples, lambda i: client.zcard(z), nothing),
        "RPUSH": timed(samples, lambda i: client.rpush(li, b"new"), lambda i: client.rpop(li)),
        "LPUSH": timed(samples, lambda i: client.lpush(li, b"new"), lambda i: client.lpop(li)),
        "LINDEX middle": timed(samples, lambda i: client.lindex(li, size // 2), nothing),
        "LSET middle": timed(samples, lambda i: client.lset(li, size // 2, b"v%d" % i), nothing),
        "LRANGE head 10": timed(samples, lambda i: client.lrange(li, 0, 9), nothing),
        "LRANGE middle 10": timed(
            samples, lambda i: client.lrange(li, size // 2, size // 2 + 9), nothing
        ),
        "LLEN": timed(samples, lambda i: client.llen(li), nothing),
    }
    rounds = max(1, min(20, 1_000_000 // size))
    start = time.perf_counter()
    for _ in range(rounds):
        got = client.smembers(s)
    figures["SMEMBERS/member"] = (time.perf_counter() - start) / rounds / len(got) * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,1000,100000,1000000")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--memory-only", action="store_true", help="fill, print memory, stop")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        redis_port, node_port, peer_port = free_port(), free_port(), free_port()
        redis_cmd = ["redis-server", "--port", str(redis_port), "--save", "", "--dir", tmp]
        redis_cmd += ["--appendonly", "no", "--bind", "127.0.0.1", "--protected-mode", "no"]
        node = node_command(
            "n1",
            base / "n1",
            f"127.0.0.1:{node_port}",
            [f"n1=default@127.0.0.1:{peer_port}"],
            "--durability",
            "os",
            "--n",
            "1",
            "--consistency",
            "ONE",
        )
        servers = [("redis", redis_port), ("eventual", node_port)]
        with processes([redis_cmd, node], [redis_port, node_port]) as pids:
            results: dict[str, dict[int, dict[str, float]]] = {}
            for name, port in servers:
                if args.memory_only and name == "redis":
                    continue
                # SMEMBERS of a million members takes seconds: past redis-py's default 5 s.
                client = redis.Redis(port=port, socket_timeout=120)
                results[name] = {}
                for size in sizes:
                    before = rss_bytes(pids[1]) if name == "eventual" else 0
                    start = time.perf_counter()
                    fill(client, size, hashes=not args.memory_only)
                    took = time.perf_counter() - start
                    if name == "eventual":
                        grown = rss_bytes(pids[1]) - before
                        members = size if args.memory_only else 4 * size
                        what = "a set" if args.memory_only else "a set, hash, zset and list"
                        print(
                            f"eventual: filled {what} of {size:,} members in {took:.1f} s;"
                            f" node memory +{grown / 2**20:,.0f} MiB,"
                            f" {grown / members:,.0f} bytes per member",
                            flush=True,
                        )
                    if not args.memory_only:
                        results[name][size] = measure(client, size, args.samples)
            if args.memory_only:
                return
    ops = list(next(iter(results["redis"].values())))
    print(f"\nmedian µs per request, one connection, {args.samples} samples (SMEMBERS: per member)")
    print(f"{'op':<16} {'size':>10} {'redis':>9} {'eventual':>9} {'ratio':>7} {'vs smallest':>12}")
    for op in ops:
        for size in sizes:
            r, e = results["redis"][size][op], results["eventual"][size][op]
            growth = e / results["eventual"][sizes[0]][op]
            print(f"{op:<16} {size:>10,} {r:>9.1f} {e:>9.1f} {e / r:>6.1f}x {growth:>11.2f}x")


if __name__ == "__main__":
    main()
