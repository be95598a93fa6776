"""The global inventory: the rebalancing policy's laws, and real processes selling in three
regions at once."""

import asyncio
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from eventual.inventory import Inventory, plan_transfers
from eventual.inventory.demo import partition
from test_server import free_base_port, start_cluster, stop_cluster, wait_until

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


def test_concurrent_sellers_never_oversell_through_partitions(tmp_path: Path) -> None:
    """Sellers in every region at once, 40 ms between regions, a region cut off now and
    then, rights rebalanced as they go: no replica is ever seen below zero, and once healed,
    stock left plus acknowledged sales equals stock put in."""
    cluster = start_cluster(
        tmp_path, 3, "--regions", "3", "--region-latency", "40", "--fault-injection"
    )
    names = ["region-1", "region-2", "region-3"]
    urls = {names[i]: f"http://127.0.0.1:{cluster.http_ports[i]}" for i in range(3)}
    nodes = ["n1", "n2", "n3"]  # node i+1 is in region i+1
    rng = random.Random(3)

    def heal() -> None:
        for url in urls.values():
            partition(url, [])

    async def story() -> tuple[int, int, int]:
        inventory = Inventory(urls)
        await inventory.connect()
        for region in names:
            await inventory.restock("lamp", 60, region)
        stop = asyncio.Event()
        rebalancer = asyncio.create_task(inventory.rebalance_forever(["lamp"], 0.1, stop))
        lowest = 0
        cuts = 0

        async def nemesis() -> None:
            nonlocal cuts
            while not stop.is_set():
                await asyncio.sleep(rng.uniform(0.2, 0.5))
                cut = rng.randrange(3)
                others = [n for n in nodes if n != nodes[cut]]
                await asyncio.to_thread(partition, urls[names[cut]], others)
                for i in range(3):
                    if i != cut:
                        await asyncio.to_thread(partition, urls[names[i]], [nodes[cut]])
                cuts += 1
                await asyncio.sleep(rng.uniform(0.3, 0.8))
                await asyncio.to_thread(heal)

        async def watcher() -> None:  # every replica's count, as often as it can
            nonlocal lowest
            while not stop.is_set():
                for region in names:
                    view = await inventory.view("lamp", region, "LOCAL_ONE")
                    lowest = min(lowest, view.value, *view.rights.values())
                await asyncio.sleep(0.02)

        async def seller(region: str) -> None:
            for _ in range(25):
                await inventory.sell("lamp", rng.choice([1, 2]), region)
                await asyncio.sleep(rng.uniform(0, 0.03))

        background = [asyncio.create_task(nemesis()), asyncio.create_task(watcher())]
        await asyncio.gather(*(seller(names[i % 3]) for i in range(12)))
        stop.set()
        await asyncio.gather(rebalancer, *background)
        await asyncio.to_thread(heal)
        views = []
        for _ in range(200):  # healed: wait until every region reads the same
            views = [await inventory.view("lamp", region, "LOCAL_ONE") for region in names]
            if len({(v.value, tuple(v.rights.values())) for v in views}) == 1:
                break
            await asyncio.sleep(0.05)
        await inventory.close()
        assert len({v.value for v in views}) == 1, views
        assert cuts > 0
        return views[0].value, inventory.sold, lowest

    try:
        left, sold, lowest = asyncio.run(story())
        assert lowest >= 0  # no replica ever seen below zero, value or rights
        assert left + sold == 180, (left, sold)  # the books balance
        assert sold > 0
    finally:
        stop_cluster(cluster)


def test_reservations_and_the_http_api(tmp_path: Path) -> None:
    """A reservation holds stock; confirmed, it is sold; left to expire, it comes back."""
    from aiohttp.test_utils import TestClient, TestServer

    from eventual.inventory import service
    from eventual.inventory.api import build_inventory_app

    cluster = start_cluster(tmp_path, 3, "--regions", "3")
    urls = {f"region-{i + 1}": f"http://127.0.0.1:{cluster.http_ports[i]}" for i in range(3)}

    async def story() -> None:
        service.RESERVATION_MARGIN_S = 0.3  # a short margin, to keep the test short
        client = TestClient(TestServer(build_inventory_app(Inventory(urls))))
        await client.start_server()
        try:
            post = client.post
            assert (
                await post("/products/desk/restock", json={"region": "region-1", "quantity": 5})
            ).status == 200
            kept = await (
                await post(
                    "/products/desk/reserve",
                    json={"region": "region-1", "quantity": 2, "ttl_s": 30},
                )
            ).json()
            lapsed = await (
                await post(
                    "/products/desk/reserve",
                    json={"region": "region-1", "quantity": 2, "ttl_s": 0.2},
                )
            ).json()
            assert kept["reservation"] and lapsed["reservation"]
            refused = await post(
                "/products/desk/reserve", json={"region": "region-1", "quantity": 2}
            )
            assert refused.status == 409  # 1 left: held stock is not for sale
            confirm = await post(
                f"/reservations/{kept['reservation']}/confirm", json={"region": "region-1"}
            )
            assert confirm.status == 200
            for _ in range(100):  # the lapsed one comes back once past its margin
                stock = await (await client.get("/products/desk?region=region-1")).json()
                if stock["value"] == 3:
                    break
                await asyncio.sleep(0.1)
            assert stock["value"] == 3  # 5 in, 2 sold by the confirmed reservation
            late = await post(
                f"/reservations/{lapsed['reservation']}/confirm", json={"region": "region-1"}
            )
            assert late.status == 409
            stats = await (await client.get("/stats")).json()
            assert stats["sold"] == 2 and stats["held"] == 0
            assert (await post("/products/desk/sell", json={"region": "nowhere"})).status == 400
        finally:
            await client.close()
            service.RESERVATION_MARGIN_S = 2.0

    try:
        asyncio.run(story())
    finally:
        stop_cluster(cluster)


def test_the_inventory_command_line(tmp_path: Path) -> None:
    """eventual inventory serve, then add, restock, sell (until refused) and stock."""
    cluster = start_cluster(tmp_path, 3, "--regions", "3")
    port = free_base_port(1)
    service = f"http://127.0.0.1:{port}"
    regions = [f"--region=r{i + 1}=http://127.0.0.1:{cluster.http_ports[i]}" for i in range(3)]
    server = subprocess.Popen(
        [sys.executable, "-m", "eventual", "inventory", "serve", *regions,
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "eventual", "inventory", *args, "--service", service]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)

    try:
        wait_until(lambda: cli("stock", "lamp", "--region", "r1").returncode == 0)
        assert cli("add", "lamp", "Desk lamp", "--region", "r1").returncode == 0
        assert "2 in stock" in cli("restock", "lamp", "2", "--region", "r2").stdout
        assert cli("sell", "lamp", "--region", "r2").stdout.strip() == "sold"
        assert cli("sell", "lamp", "--region", "r2").returncode == 0
        refused = cli("sell", "lamp", "--region", "r2")
        assert refused.returncode == 1 and "refused" in refused.stdout
        wait_until(lambda: "lamp: 0 " in cli("stock", "lamp", "--region", "r3").stdout)
    finally:
        server.terminate()
        server.wait(timeout=10)
        stop_cluster(cluster)
