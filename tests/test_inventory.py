"""The global inventory: the rebalancing policy's laws, and real processes selling in three
regions at once."""

import asyncio
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from eventual.inventory import Inventory, plan_transfers
from test_server import start_cluster, stop_cluster

regions = st.sampled_from(["us", "eu", "ap"])


@given(
    st.dictionaries(regions, st.integers(0, 1_000), min_size=1),
    st.dictionaries(regions, st.floats(0, 500, allow_nan=False)),
)
def test_transfers_move_rights_and_never_create_or_overdraw_them(
    rights: dict[str, int], demand: dict[str, float]
) -> None:
    after = dict(rights)
    for transfer in plan_transfers(rights, demand):
        assert transfer.amount > 0 and transfer.source != transfer.target
        after[transfer.source] -= transfer.amount
        after[transfer.target] += transfer.amount
        assert after[transfer.source] >= 0  # a donor gives only what it holds
    assert sum(after.values()) == sum(rights.values())


def test_rights_follow_demand() -> None:
    transfers = plan_transfers({"us": 0, "eu": 100, "ap": 0}, {"us": 8.0})
    to_us = sum(t.amount for t in transfers if t.target == "us")
    assert to_us >= 8 * 5  # the policy's horizon of the busy region's sales
    assert sum(t.amount for t in transfers if t.target == "ap") == 1  # a quiet region's floor
    assert plan_transfers({"us": 100, "eu": 100}, {"us": 1.0, "eu": 1.0}) == []  # enough


def test_concurrent_sellers_in_three_regions_never_oversell(tmp_path: Path) -> None:
    """Sellers in every region at once, 40 ms between regions, rights rebalanced as they
    go: no replica ever goes below zero, and stock left plus sales equals stock put in."""
    cluster = start_cluster(tmp_path, 3, "--regions", "3", "--region-latency", "40")
    names = ["region-1", "region-2", "region-3"]
    urls = {names[i]: f"http://127.0.0.1:{cluster.http_ports[i]}" for i in range(3)}

    async def story() -> tuple[int, int, list[int]]:
        inventory = Inventory(urls)
        await inventory.connect()
        for region in names:
            await inventory.restock("lamp", 40, region)
        stop = asyncio.Event()
        rebalancer = asyncio.create_task(inventory.rebalance_forever(["lamp"], 0.1, stop))
        rng = random.Random(3)

        async def seller(region: str) -> None:
            for _ in range(30):
                await inventory.sell("lamp", rng.choice([1, 2]), region)

        await asyncio.gather(*(seller(names[i % 3]) for i in range(12)))
        stop.set()
        await rebalancer
        views = [await inventory.view("lamp", region, "ALL") for region in names]
        await inventory.close()
        rights = [r for view in views for r in view.rights.values()]
        assert len({view.value for view in views}) == 1  # every region reads the same
        return views[0].value, inventory.sold, rights

    try:
        left, sold, rights = asyncio.run(story())
        assert left >= 0 and all(r >= 0 for r in rights)
        assert left + sold == 120, (left, sold)  # the books balance
        assert sold > 0
    finally:
        stop_cluster(cluster)
