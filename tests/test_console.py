"""The console (``server/console.py``): its JSON routes and ``/metrics`` against a real
cluster in three regions, and the page itself in headless Chromium (Debian's package, driven
by Playwright): it loads, shows three members, a fourth after a join, and a key's siblings.
The screenshot it takes is kept in ``test-artifacts/`` (``EVENTUAL_ARTIFACTS`` elsewhere)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realnodes import Cluster, start_cluster, start_joiner, stop_cluster, wait_until

REGION_LATENCY_MS = 100  # each way between regions: a write at ONE reaches the others later
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("EVENTUAL_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
        kind = response.headers.get("Content-Type", "")
    return json.loads(body) if "json" in kind else body.decode()


def put(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = start_cluster(
        tmp_path_factory.mktemp("console"),
        3,
        "--regions", "3", "--region-latency", str(REGION_LATENCY_MS), "--durability", "os",
    )  # fmt: skip
    yield found
    stop_cluster(found)


def base(cluster: Cluster, index: int) -> str:
    return f"http://127.0.0.1:{cluster.http_ports[index]}"


def test_the_cluster_view_measures_how_late_each_region_sees_a_write(regions: Cluster) -> None:
    writer = regions.client(0)
    writer.execute_command("CONSISTENCY", "ONE")
    writes = 30
    for i in range(writes):
        assert writer.set(f"visible:{i}", "v")

    def pairs() -> dict[tuple[str, str], list[int]]:
        view = get(base(regions, 1) + "/ui/api/cluster")  # any node shows every node's
        return {(p["from"], p["to"]): p["buckets"] for p in view["visibility"]["pairs"]}

    # Every copy of every write is counted once its replica has acknowledged it.
    far = ("region-2", "region-3")
    wait_until(lambda: all(sum(pairs().get(("region-1", r), [])) >= writes for r in far))
    view = get(base(regions, 1) + "/ui/api/cluster")
    bounds = view["visibility"]["bounds_ms"]
    found = {(p["from"], p["to"]): p for p in view["visibility"]["pairs"]}
    assert found[("region-1", "region-1")]["buckets"][0] >= writes, "its own copy: at once"
    assert found[("region-1", "region-1")]["mean_ms"] == 0, "nothing came later"
    for region in far:
        pair = found[("region-1", region)]
        # Acknowledged at ONE by the coordinator alone; a far copy arrives one link later:
        # the configured delay plus loopback's hop (well under a millisecond here). Measured
        # within 20%, and never sooner than the delay.
        assert REGION_LATENCY_MS * 0.8 <= pair["mean_ms"] <= REGION_LATENCY_MS * 1.2, pair
        soon = sum(n for bound, n in zip(bounds, pair["buckets"], strict=False) if bound < 75)
        assert soon == 0, pair
    statuses = view["statuses"]
    assert set(statuses) == {"n1", "n2", "n3"}
    assert statuses["n1"]["requests"]["write"] >= writes
    assert sum(statuses["n1"]["latency_us_buckets"]["write"]) == statuses["n1"]["requests"]["write"]
    assert statuses["n2"]["links"]["n1"]["connected"] is True
    metrics = get(base(regions, 0) + "/metrics")
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("eventual_write_visibility_seconds_bucket")
        and 'to_region="region-2"' in line
        and 'le="0.15"' in line
    )
    assert float(line.split()[-1]) >= writes
    assert 'eventual_request_seconds_bucket{kind="write"' in metrics
    assert 'eventual_node_events_total{event="lww_losses"}' in metrics


def test_pages_asking_at_once_share_one_view_of_the_cluster(regions: Cluster) -> None:
    """However many pages poll, a node probes its peers at most once per VIEW_TTL_S."""
    from concurrent.futures import ThreadPoolExecutor

    from eventual.server.console import VIEW_TTL_S

    address = base(regions, 0) + "/ui/api/cluster"
    time.sleep(VIEW_TTL_S)  # whatever an earlier test left cached has expired
    with ThreadPoolExecutor(8) as pool:
        views = list(pool.map(lambda _: get(address)["now_ms"], range(8)))
    assert len(set(views)) == 1, views  # one view, made once, served eight times
    time.sleep(VIEW_TTL_S * 1.5)
    assert get(address)["now_ms"] > views[0], "a later poll gets a fresh view"


def test_the_key_inspector_shows_each_replicas_version_and_the_siblings(regions: Cluster) -> None:
    put(base(regions, 0) + "/kv/inspect:doc", b"from region one")
    put(base(regions, 1) + "/kv/inspect:doc", b"from region two")  # no context: concurrent

    def inspected() -> dict[str, Any]:
        found: dict[str, Any] = get(base(regions, 2) + "/ui/api/key/inspect:doc")
        return found

    def settled() -> bool:
        copies = inspected()["replicas"]
        return len(copies) == 3 and len({c.get("version") for c in copies}) == 1

    wait_until(settled)
    view = inspected()
    assert {c["node"] for c in view["replicas"]} == {"n1", "n2", "n3"}
    merged = view["merged"]
    assert merged["type"] == "object"
    assert sorted(s["text"] for s in merged["siblings"]) == ["from region one", "from region two"]
    assert len({s["dot"][0] for s in merged["siblings"]}) == 2, "two writers, two dots"
    assert len(merged["context"]) == 2
    missing = get(base(regions, 2) + "/ui/api/key/inspect:nothing")
    assert missing["merged"] is None and all(c["held"] is None for c in missing["replicas"])


def test_swagger_ui_serves_the_openapi_document(regions: Cluster) -> None:
    page = get(base(regions, 0) + "/docs")
    assert "SwaggerUIBundle" in page and "/openapi.json" in page
    bundle = re.search(r'src="([^"]*swagger-ui-bundle\.js)"', page)
    assert bundle is not None, page
    assert "SwaggerUIBundle" in get(base(regions, 0) + bundle.group(1))
    spec = get(base(regions, 0) + "/openapi.json")
    assert "/ui/api/cluster" in spec["paths"]
    assert "<title>Eventual console</title>" in get(base(regions, 0) + "/")  # / leads to /ui


def _browser_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("EVENTUAL_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (CI does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # As root in a container Chromium's sandbox cannot start; and this machine's
            # network is closed, so nothing is fetched in the background.
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        yield launched
        launched.close()


def _page(browser: Any, address: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(address + "/ui")
    return page, errors


def test_the_console_in_a_real_browser(browser: Any, tmp_path: Path) -> None:
    """Loads; three members; a fourth after it joins; a key's two siblings; a screenshot."""
    from playwright.sync_api import expect

    cluster = start_cluster(tmp_path, 3, "--durability", "os")
    try:
        page, errors = _page(browser, base(cluster, 0))
        rows = page.locator("#members tbody tr")
        expect(rows).to_have_count(3, timeout=20_000)
        expect(page.locator("#health")).to_have_text("healthy")
        start_joiner(cluster, "n4", 0)
        # Live: the page was not reloaded.
        expect(page.locator('#members tr[data-node="n4"]')).to_be_visible(timeout=30_000)
        expect(rows).to_have_count(4)
        # `status --wait` returns once n4 has pulled its partitions and is active.
        waited = subprocess.run(
            [sys.executable, "-m", "eventual", "status", "--url", base(cluster, 0),
             "--wait", "--timeout", "90"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert re.search(r"n4 +region-1 +active", waited.stdout), waited.stdout
        assert "[" not in waited.stderr, "no progress bar where stderr is no terminal"
        put(base(cluster, 0) + "/kv/page:doc", b"left")
        put(base(cluster, 1) + "/kv/page:doc", b"right")
        page.fill("#key", "page:doc")
        page.click("#inspect button")
        siblings = page.locator("#inspected .sibling")
        expect(siblings).to_have_count(2, timeout=10_000)
        texts = " ".join(siblings.all_inner_texts())
        assert "left" in texts and "right" in texts, texts
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
        assert (ARTIFACTS / "console.png").stat().st_size > 10_000
        assert not errors, errors
    finally:
        stop_cluster(cluster)


def test_the_console_draws_the_measured_staleness(browser: Any, regions: Cluster) -> None:
    """Three regions 100 ms apart, writes at ONE: the curve of each far pair is drawn, and
    its legend says the copies arrived about 100 ms after the acknowledgement."""
    from playwright.sync_api import expect

    writer = regions.client(2)  # region-3 coordinates nothing in the other tests
    writer.execute_command("CONSISTENCY", "ONE")
    for i in range(20):
        assert writer.set(f"drawn:{i}", "v")
    page, errors = _page(browser, base(regions, 0))
    legend = page.locator('#staleness-legend .pair[data-from="region-3"][data-to="region-1"]')
    # Live: the page redraws each second until every copy has been counted.
    expect(legend).to_contain_text("(20 copies)", timeout=20_000)
    mean = re.search(r"mean (\d+) ms", legend.inner_text())
    assert mean is not None and 80 <= int(mean.group(1)) <= 120, legend.inner_text()
    # One curve per pair that has copies, drawn in the plot.
    pairs = page.locator("#staleness-legend .pair").count()
    assert pairs >= 3 and page.locator("#staleness polyline").count() == pairs
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "staleness.png"), full_page=True)
    assert not errors, errors
