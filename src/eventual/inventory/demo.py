"""``eventual demo inventory``: the global inventory story, told by real processes.

It starts a 3-node cluster with one node in each of three regions (US-EAST, EU-WEST and
AP-SOUTH), ``latency_ms`` apart, and the inventory service on top. Then it plays a script.
After each step it prints what each region reads, so every claim shows as a measurement:

1. Restock: every region gets its own rights.
2. A sale in US-EAST: US-EAST reads it at once. A read at ONE in the other regions still
   shows the old stock, and the demo measures how long until EU-WEST sees the sale (the
   replication lag). A read at ALL right after the next change shows it at once. The stale
   read shows in the table rather than being asserted.
3. AP-SOUTH is cut off, its shop included (the transport's partition switch). It keeps
   selling against its own rights until it has none left, then refuses. It never oversells.
4. The partition heals and the replicas converge.
5. Rebalancing moves rights to where the demand is.
6. The books: stock left plus sales equals stock put in, in every region.
7. Staleness, as the cluster measured it from the story's own writes (t-visibility, the
   console's curve): for each pair of regions, how often a read at ONE there saw a write at
   once, and how long until 99% of copies had it.

Exit status 0 if the books balance, 1 if they do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from eventual.inventory.service import Inventory

__all__ = ["partition", "region_cluster", "run_inventory_demo"]

REGIONS = {"region-1": "US-EAST", "region-2": "EU-WEST", "region-3": "AP-SOUTH"}
PRODUCTS = ("lamp", "chair", "desk")
STOCK_PER_REGION = 10
STARTUP_S_MAX = 30.0
CONVERGE_S_MAX = 10.0  # the story waits this long for a change to reach every region


def _free_bases(groups: int, count: int) -> list[int]:
    """``groups`` runs of ``count`` free ports, below the ephemeral range (32768 and up on
    Linux), where outgoing connections cannot take them."""
    rng = random.Random()
    found: list[int] = []
    while len(found) < groups:
        base = rng.randrange(21_000, 32_700 - count)
        if any(abs(base - other) < count for other in found):
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        found.append(base)
    return found


def partition(url: str, block: list[str]) -> None:
    """Cut the node at ``url`` off from the named peers (it must run --fault-injection)."""
    request = urllib.request.Request(
        url + "/debug/partition",
        data=json.dumps({"block": block}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


class _Story:
    def __init__(self, inventory: Inventory, echo: Callable[[str], None]) -> None:
        self.inventory = inventory
        self.echo = echo
        self.put_in = 0

    async def table(self, title: str, consistency: str = "ONE") -> dict[str, dict[str, int]]:
        """Print and return stock per product as each region reads it."""
        seen: dict[str, dict[str, int]] = {}
        header = f"{'product':<8}" + "".join(f"{name:>12}" for name in REGIONS.values())
        self.echo(f"\n  {title} (reads at {consistency})")
        self.echo(f"  {header}   rights US/EU/AP (as AP-SOUTH reads them)")
        for sku in PRODUCTS:
            row = f"{sku:<8}"
            rights = ""
            for region in REGIONS:
                view = await self.inventory.view(sku, region, consistency)
                seen.setdefault(sku, {})[region] = view.value
                row += f"{view.value:>12}"
                rights = "/".join(str(view.rights[r]) for r in REGIONS)
            self.echo(f"  {row}   {rights}")
        return seen


async def _play(urls: dict[str, str], latency_ms: int, echo: Callable[[str], None]) -> bool:
    inventory = Inventory(urls)
    await inventory.connect()
    story = _Story(inventory, echo)
    us, eu, ap = REGIONS
    echo(f"1. Restock: {STOCK_PER_REGION} of each product in each region (its own rights).")
    for sku in PRODUCTS:
        for region in REGIONS:
            await inventory.restock(sku, STOCK_PER_REGION, region)
            story.put_in += STOCK_PER_REGION
    await asyncio.sleep(latency_ms * 3 / 1000)
    await story.table("after restocking")

    echo(f"\n2. A customer in US-EAST buys a lamp; regions are {latency_ms} ms apart.")
    await inventory.sell("lamp", 1, us)
    stale = await story.table("right after the sale")
    echo(
        f"  -> US-EAST sees {stale['lamp'][us]}; EU-WEST still sees {stale['lamp'][eu]} at ONE "
        f"{'(stale: the sale is on its way)' if stale['lamp'][eu] != stale['lamp'][us] else ''}"
    )
    sold_at = time.monotonic()
    while (await inventory.view("lamp", eu, "LOCAL_ONE")).value != stale["lamp"][us]:
        if time.monotonic() - sold_at > CONVERGE_S_MAX:
            break
        await asyncio.sleep(0.005)
    lag_ms = (time.monotonic() - sold_at) * 1000
    echo(f"  -> replication lag: EU-WEST saw the sale {lag_ms:.0f} ms later")
    await inventory.restock("desk", 1, us)  # a second change, to show ALL at work
    story.put_in += 1
    fresh = await story.table("right after a desk restock in US-EAST, at ALL", "ALL")
    echo(f"  -> at ALL, EU-WEST sees {fresh['desk'][eu]} desks at once: it waited for every region")

    echo("\n3. AP-SOUTH is cut off from the others. It keeps selling chairs on its own rights.")
    await asyncio.to_thread(partition, urls[ap], ["n1", "n2"])
    for region in (us, eu):
        await asyncio.to_thread(partition, urls[region], ["n3"])
    # AP-SOUTH's shop talks to AP-SOUTH's node only: the partition cuts it off too.
    ap_shop = Inventory({ap: urls[ap]})
    await ap_shop.connect()
    sold = refused = 0
    for _ in range(STOCK_PER_REGION + 3):
        if await ap_shop.sell("chair", 1, ap):
            sold += 1
        else:
            refused += 1
    await ap_shop.close()
    inventory.sold += ap_shop.sold  # one set of books
    inventory.refused += ap_shop.refused
    echo(f"  -> AP-SOUTH sold {sold} chairs while cut off, then refused {refused}: no rights")
    await story.table("during the partition")

    echo("\n4. The partition heals; the replicas converge.")
    for url in urls.values():
        await asyncio.to_thread(partition, url, [])
    deadline = time.monotonic() + CONVERGE_S_MAX
    while time.monotonic() < deadline:
        await asyncio.sleep(latency_ms * 2 / 1000)
        seen = await story.table("after healing")
        if all(len(set(per_region.values())) == 1 for per_region in seen.values()):
            break

    echo("\n5. AP-SOUTH keeps asking for chairs: rebalancing moves rights to it.")
    elsewhere = inventory.sold_elsewhere
    demand = 0
    for _ in range(5):  # its recent demand, which the policy reads
        demand += await inventory.sell("chair", 1, ap)
    echo(
        f"  -> AP-SOUTH sells {demand} chairs, {inventory.sold_elsewhere - elsewhere} of them "
        "on other regions' rights (it has none of its own left)"
    )
    moved = await inventory.rebalance("chair")
    for transfer in moved:
        echo(
            f"  -> {REGIONS[transfer.source]} gives {transfer.amount} chair rights to "
            f"{REGIONS[transfer.target]}"
        )
    await asyncio.sleep(latency_ms * 3 / 1000)
    sold_after = sum([await inventory.sell("chair", 1, ap) for _ in range(3)])
    echo(f"  -> AP-SOUTH sells {sold_after} more chairs")

    echo("\n6. The books.")
    final = await story.table("final, at ALL", "ALL")
    await inventory.close()
    left = sum(final[sku][us] for sku in PRODUCTS)
    agree = all(len(set(per_region.values())) == 1 for per_region in final.values())
    balanced = agree and left + inventory.sold == story.put_in
    echo(
        f"  put in {story.put_in}, sold {inventory.sold}, left {left}, refused "
        f"{inventory.refused}: books {'balanced' if balanced else 'NOT balanced'}"
    )
    await asyncio.to_thread(_staleness, urls[us], echo)
    return balanced


def _staleness(url: str, echo: Callable[[str], None]) -> None:
    """Step 7: the visibility each coordinator measured (``/ui/api/cluster``), per pair."""
    with urllib.request.urlopen(url + "/ui/api/cluster", timeout=10) as response:
        view = json.loads(response.read())
    bounds = view["visibility"]["bounds_ms"]
    echo("\n7. Staleness, measured by the cluster from this story's writes (t-visibility):")
    for pair in view["visibility"]["pairs"]:
        buckets = pair["buckets"]
        total, late = sum(buckets), buckets[-1]
        if pair["from"] == pair["to"] or not total:
            continue
        line = (
            f"  {REGIONS.get(pair['from'], pair['from'])} -> "
            f"{REGIONS.get(pair['to'], pair['to'])}: {total} copies, "
            f"{100 * buckets[0] / total:.0f}% visible when the write was acknowledged"
        )
        if pair["mean_ms"] is not None:
            line += f", arriving on average {pair['mean_ms']:.0f} ms after"
        seen = 0
        for bound, count in zip(bounds, buckets, strict=False):
            seen += count
            if seen >= 0.99 * total:
                line += f"; 99% within {bound} ms"
                break
        if late:
            line += f"; {late} late (cut off: they came by hinted handoff after the heal)"
        echo(line)


@contextlib.contextmanager
def region_cluster(
    latency_ms: int,
    *options: str,
    startup_s: float = STARTUP_S_MAX,
    redis: dict[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """A 3-node ``eventual dev`` cluster, one node per region, ``latency_ms`` apart, in a
    temporary folder; yields each region's HTTP address once the cluster is healthy (and
    fills ``redis``, if given, with each region's Redis address, ``host:port``)."""
    data = Path(tempfile.mkdtemp(prefix="eventual-regions-"))
    resp, http, peer = _free_bases(3, 3)
    command = [
        sys.executable, "-m", "eventual", "dev", "--nodes", "3", "--regions", "3",
        "--region-latency", str(latency_ms), "--data-dir", str(data),
        "--resp-port", str(resp), "--http-port", str(http), "--peer-port", str(peer), *options,
    ]  # fmt: skip
    dev = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert dev.stdout is not None
        urls: dict[str, str] = {}
        while len(urls) < len(REGIONS):
            line = dev.stdout.readline()
            if not line:
                raise RuntimeError("the cluster did not start")
            found = re.search(r"\((region-\d)\): redis (\S+)\s+http (\S+)", line)
            if found:
                urls[found.group(1)] = found.group(3)
                if redis is not None:
                    redis[found.group(1)] = found.group(2)
        deadline = time.monotonic() + startup_s
        for url in urls.values():
            while True:
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(url + "/cluster", timeout=1) as response,
                ):
                    if json.loads(response.read())["healthy"]:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not become healthy")
                time.sleep(0.2)
        yield urls
    finally:
        dev.terminate()
        try:
            dev.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dev.kill()
        shutil.rmtree(data, ignore_errors=True)


def run_inventory_demo(latency_ms: int = 300, echo: Callable[[str], None] = print) -> bool:
    with region_cluster(latency_ms, "--durability", "os", "--fault-injection") as urls:
        echo(f"A cluster in three regions, {latency_ms} ms apart: {', '.join(REGIONS.values())}")
        return asyncio.run(_play(urls, latency_ms, echo))
