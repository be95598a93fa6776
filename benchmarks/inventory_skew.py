"""Skewed demand on the global inventory: how often is a sale refused while stock remains?

    python benchmarks/inventory_skew.py [--skus 4] [--stock 300] [--sellers 30] [--latency 50]
                                        [--pace-ms 20] [--no-rebalance] [--local-only]

Starts a 3-region ``eventual dev`` cluster (regions ``--latency`` ms apart, durability
``os``), puts ``--stock`` units of each product in, split evenly over the regions, and runs
``--sellers`` concurrent clients until everything is sold. 80% of sales come from region-1
and 10% from each of the others. The rebalancer (``eventual.inventory.policy``) moves
rights toward demand every 100 ms, unless ``--no-rebalance``. A region out of rights sells
from another region's (one cross-region trip), unless ``--local-only``.

Printed: sales made, sales refused, and the share of sales refused while the product still
had stock somewhere (the number rebalancing is for; the target is below 1%). At the end the
books are checked: each product read at ALL is at zero, and never went below it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from eventual.inventory import Inventory
from eventual.inventory.demo import region_cluster

REBALANCE_EVERY_S = 0.1
REGIONS = ("region-1", "region-2", "region-3")
WEIGHTS = (0.8, 0.1, 0.1)


async def run(args: argparse.Namespace, urls: dict[str, str]) -> int:
    inventory = Inventory(urls, elsewhere=not args.local_only)
    await inventory.connect()
    skus = [f"sku{i}" for i in range(args.skus)]
    left = {}
    for sku in skus:
        for region in REGIONS:
            await inventory.restock(sku, args.stock // 3, region)
        left[sku] = args.stock // 3 * 3
    stop = asyncio.Event()
    rebalancer = None
    if not args.no_rebalance:
        rebalancer = asyncio.create_task(inventory.rebalance_forever(skus, REBALANCE_EVERY_S, stop))
    refused_with_stock = attempts_with_stock = 0
    rng = random.Random(1)

    async def seller() -> None:
        nonlocal refused_with_stock, attempts_with_stock
        while any(left.values()):
            sku = rng.choice([s for s in skus if left[s]])
            region = rng.choices(REGIONS, WEIGHTS)[0]
            attempts_with_stock += 1  # a product with stock left when the customer came
            if await inventory.sell(sku, 1, region):
                left[sku] -= 1
            elif left[sku] > 0:  # refused though this product still had stock somewhere
                refused_with_stock += 1
            await asyncio.sleep(rng.uniform(0, args.pace_ms / 1000))  # customers arrive

    started = time.monotonic()
    await asyncio.gather(*(seller() for _ in range(args.sellers)))
    elapsed = time.monotonic() - started
    stop.set()
    if rebalancer is not None:
        await rebalancer
    books_ok = True
    for sku in skus:
        view = await inventory.view(sku, REGIONS[0], "ALL")
        books_ok &= view.value == 0 and all(r >= 0 for r in view.rights.values())
    await inventory.close()
    share = refused_with_stock / max(attempts_with_stock, 1)
    print(
        f"products {len(skus)} x {args.stock} units, {args.sellers} sellers pausing up to "
        f"{args.pace_ms} ms, 80/10/10 demand, regions {args.latency} ms apart"
    )
    every = f"every {REBALANCE_EVERY_S * 1000:.0f} ms"
    print(
        f"rebalancing: {'off' if args.no_rebalance else every}; selling from another "
        f"region's rights when out: {'off' if args.local_only else 'on'} "
        f"({inventory.sold_elsewhere} sold so)"
    )
    print(f"sold {inventory.sold} in {elapsed:.1f} s ({inventory.sold / elapsed:.0f}/s)")
    print(
        f"refused while stock remained: {refused_with_stock} of {attempts_with_stock} "
        f"attempts = {share:.2%} (target < 1%)"
    )
    print(f"books: every product at 0 read at ALL, never negative: {books_ok}")
    return 0 if books_ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=4)
    parser.add_argument("--stock", type=int, default=300)
    parser.add_argument("--sellers", type=int, default=30)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--no-rebalance", action="store_true")
    parser.add_argument("--local-only", action="store_true")
    parser.add_argument(
        "--pace-ms", type=int, default=20, help="each seller waits up to this between sales"
    )
    args = parser.parse_args()
    with region_cluster(args.latency, "--durability", "os") as urls:
        code = asyncio.run(run(args, urls))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
