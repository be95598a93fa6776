"""The console: a live page of the cluster at ``/ui``, on every node's HTTP port.

The page (``server/console/``: one HTML file, one script, one style sheet, no build step and
no library) polls two JSON routes of the node that serves it:

- ``/ui/api/cluster``: the members, the ring and the handoffs as this node sees them, and
  every member's own counters, asked for over the internode links (``NodeRuntime.ask``: a
  ``Probe`` each, answered by the peer's runtime within ``PROBE_TIMEOUT_S``, or shown as
  silent). The counters are cumulative; the page takes differences between two polls for
  rates and for the latency percentiles of the last interval.
- ``/ui/api/key/{key}``: the key inspector. Every replica of the key is asked for its own
  copy; the page shows each copy's version (its anti-entropy digest: equal digests, equal
  copies) and what the merge of all of them holds: type, value, siblings with their dots,
  causal context, TTL.

**Staleness** (t-visibility, after Bailis et al., "Probabilistically Bounded Staleness for
Practical Partial Quorums", VLDB 2012): every coordinator counts, for each replica of each
write it acknowledged, how long after the acknowledgement the write reached that replica
(``core/base.py``, ``VISIBILITY_BOUNDS_MS``): half the round trip of the replica's own
acknowledgement after the write was sent, links taken as symmetric. Summed per pair of
regions (the coordinator's, the replica's), bucket by bucket, that is the probability that a
read at ONE served by a replica chosen at random holds the write ``t`` ms after it was
acknowledged: the curve the page draws, and ``eventual_write_visibility_seconds`` in
``/metrics``. It is measured from real traffic, not modelled, in milliseconds (the core's
clock).

Swagger UI (``swagger-ui-py``, which carries its files) serves ``/openapi.json`` at ``/docs``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from swagger_ui import api_doc  # type: ignore[import-untyped]

from eventual import BUILD, __version__
from eventual.codec import DecodeError
from eventual.core.base import VISIBILITY_BOUNDS_MS
from eventual.core.record import COLLECTIONS, Kind, Record
from eventual.crdt import LWWRegister
from eventual.server.objects import decode_object
from eventual.server.runtime import INSPECT_MEMBERS_MAX, LATENCY_BUCKETS, NodeRuntime, wall_ms

__all__ = [
    "INSPECT_MEMBERS_MAX",
    "ConsoleCollector",
    "add_console",
    "cluster_summary",
    "describe",
    "visibility_by_region",
]

STATIC = Path(__file__).with_name("console")
VIEW_TTL_S = 0.5  # a cluster view is shared by the pages that ask within this long
INSPECT_VALUE_BYTES_MAX = 4096  # of a value shown: the rest is cut, and said to be
# Where a latency bucket ends (µs): see runtime.LATENCY_BUCKETS.
LATENCY_BOUNDS_US = tuple(2**b for b in range(LATENCY_BUCKETS - 1))


def cluster_summary(runtime: NodeRuntime) -> dict[str, Any]:
    """The members, the ring and the handoffs as this node sees them (``GET /cluster``)."""
    node = runtime.node
    ring = node.ring
    n = node.config.n
    shares: dict[str, int] = {}
    preference = [ring.preference_list(p, n) for p in range(ring.partitions)]
    for replicas in preference:
        for replica in replicas:
            shares[replica] = shares.get(replica, 0) + 1
    members = [
        {
            "node": entry.node,
            "region": entry.region,
            "zone": entry.zone,
            "address": entry.address,
            "membership": entry.status.name.lower(),  # joining, active, leaving, left
            "up": node.up(entry.node),
            # What the failure detector says: alive, suspect or dead ("-": not watched, a
            # member that has left).
            "status": (
                node.swim.status(entry.node).name.lower() if entry.node in node.swim.states else "-"
            ),
            "incarnation": (
                node.swim.states[entry.node].incarnation if entry.node in node.swim.states else None
            ),
            "partitions": shares.get(entry.node, 0),
            "self": entry.node == node.id,
        }
        for entry in node.cluster.sorted_entries()
    ]
    serving = [m for m in members if m["membership"] in ("active", "leaving")]
    return {
        "node": node.id,
        "version": __version__,
        "build": BUILD,
        "healthy": all(m["up"] for m in serving),
        "members": members,
        "in_transition": node.cluster.in_transition(),
        "handoff": node.handoff_status(),
        "n": n,
        "partitions": ring.partitions,
        "ring": preference,
        "hints_held": runtime.store.hint_count(),
        "keys_stored": runtime.store.count(),
    }


def visibility_by_region(
    statuses: dict[str, dict[str, Any]], region_of: dict[str, str]
) -> list[dict[str, Any]]:
    """Each coordinator's per-replica visibility buckets, summed per (its region, the
    replica's region): ``[{"from", "to", "buckets", "sum_ms", "mean_ms"}]``, buckets as
    ``VISIBILITY_BOUNDS_MS`` plus one for "not within the timeout"; the mean is over the
    copies that became visible (the late ones have no time to count)."""
    pairs: dict[tuple[str, str], list[int]] = {}
    sums: dict[tuple[str, str], int] = {}
    for status in statuses.values():
        visibility = status.get("visibility")
        if not isinstance(visibility, dict):
            continue
        delays = status.get("visibility_ms")
        delays = delays if isinstance(delays, dict) else {}
        source = str(status.get("region", ""))
        for replica, buckets in visibility.items():
            pair = (source, region_of.get(replica, "?"))
            total = pairs.setdefault(pair, [0] * (len(VISIBILITY_BOUNDS_MS) + 1))
            for index, count in enumerate(buckets[: len(total)]):
                total[index] += int(count)
            sums[pair] = sums.get(pair, 0) + int(delays.get(replica, 0))
    found = []
    for pair, buckets in sorted(pairs.items()):
        visible = sum(buckets[: len(VISIBILITY_BOUNDS_MS)])
        found.append(
            {
                "from": pair[0],
                "to": pair[1],
                "buckets": buckets,
                "sum_ms": sums[pair],
                "mean_ms": sums[pair] / visible if visible else None,
            }
        )
    return found


def _shown(value: bytes) -> dict[str, Any]:
    """A value for a page: text if it is UTF-8, else base64; cut at a few KiB."""
    cut = value[:INSPECT_VALUE_BYTES_MAX]
    shown: dict[str, Any] = {"bytes": len(value)}
    try:
        shown["text"] = cut.decode()
    except UnicodeDecodeError:
        shown["base64"] = base64.b64encode(cut).decode()
    if len(value) > len(cut):
        shown["cut"] = True
    return shown


def _plain(value: Any) -> Any:
    """A CRDT's value as JSON."""
    if isinstance(value, bytes):
        return _shown(value)
    if isinstance(value, (set, frozenset, list, tuple)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str)[:INSPECT_MEMBERS_MAX]
    if isinstance(value, dict):
        pairs = sorted(value.items(), key=lambda kv: str(kv[0]))[:INSPECT_MEMBERS_MAX]
        return [[_plain(k), _plain(v)] for k, v in pairs]
    return value


def describe(record: Record, now_ms: int) -> dict[str, Any]:
    """What a record holds, for a person: type, value, siblings and their dots, causal
    context, TTL."""
    kind = record.kind
    expire_at = record.expire_at()
    shown: dict[str, Any] = {
        "type": kind.name.lower(),
        "present": record.present(now_ms),
        "incarnation": [record.incarnation[0], record.incarnation[1]],
        "expire_at_ms": expire_at,
        "ttl_ms": None if expire_at is None else max(0, expire_at - now_ms),
    }
    if kind is Kind.OBJECT:
        siblings = []
        for actor, counter, value in record.dotted_values():
            sibling: dict[str, Any] = {"dot": [actor, counter]}
            if isinstance(value, bytes):
                content_type, body = decode_object(value)
                sibling.update(_shown(body), content_type=content_type)
            else:
                sibling["deleted"] = True  # the tombstone sibling a DEL leaves
            siblings.append(sibling)
        shown["siblings"] = siblings
        shown["context"] = dict(record.context().items())
    elif kind is Kind.STRING:
        register = record.data
        assert isinstance(register, LWWRegister)
        value = register.value()
        shown["value"] = None if value is None else _plain(value)
        shown["timestamp"] = register.timestamp
    elif kind in COLLECTIONS:
        shown["members"] = record.size()
        shown["value"] = _plain(record.value())
    else:
        shown["value"] = _plain(record.value())
    return shown


async def inspect_key(runtime: NodeRuntime, key: bytes) -> dict[str, Any]:
    """Every replica's copy of ``key`` (and the merge of them all), for the inspector."""
    node = runtime.node
    partition = node.ring.partition_of(key)
    replicas = list(node.ring.preference_list(partition, node.config.n))
    for extra in node.future.preference_list(partition, node.config.n):
        if extra not in replicas:
            replicas.append(extra)  # a ring in transition: the future replicas too
    answers = await asyncio.gather(*(runtime.ask(r, "key", key) for r in replicas))
    now = wall_ms()
    copies: list[dict[str, Any]] = []
    merged: Record | None = None
    whole = True  # every copy came whole: their merge is what a read at ALL would see
    for replica, answer in zip(replicas, answers, strict=True):
        copy: dict[str, Any] = {"node": replica, "held": answer.get("held")}
        for name in ("error", "owed_to", "members", "page"):
            if name in answer:
                copy[name] = answer[name]
        data = answer.get("record")
        if not isinstance(data, bytes):
            copies.append(copy)
            continue
        try:
            record = Record.from_bytes(data)
        except DecodeError as bad:
            copy["error"] = f"a copy that does not decode: {bad}"
            copies.append(copy)
            continue
        version = answer.get("version")
        copy["version"] = f"{version if isinstance(version, int) else record.digest():016x}"
        copy["record"] = describe(record, now)
        copies.append(copy)
        if answer.get("page"):
            whole = False  # a page must never be merged: its context covers what it left out
        elif merged is None:
            merged = record  # decoded here, and described above: free to merge into
        else:
            try:
                merged.merge(record)
            except (TypeError, ValueError) as bad:  # a type clash: shown, not merged
                copy["error"] = f"does not merge: {bad}"
    return {
        "key": key.decode(errors="replace"),
        "partition": partition,
        "replicas": copies,
        "merged": None if merged is None or not whole else describe(merged, now),
    }


async def cluster_view(runtime: NodeRuntime) -> dict[str, Any]:
    """``cluster_summary`` and every member's status, as the page polls it."""
    summary = cluster_summary(runtime)
    asked = [m["node"] for m in summary["members"] if m["membership"] != "left"]
    answers = await asyncio.gather(*(runtime.ask(node, "status") for node in asked))
    statuses = dict(zip(asked, answers, strict=True))
    region_of = {m["node"]: m["region"] for m in summary["members"]}
    summary["statuses"] = statuses
    summary["visibility"] = {
        "bounds_ms": list(VISIBILITY_BOUNDS_MS),
        "pairs": visibility_by_region(statuses, region_of),
    }
    summary["latency_bounds_us"] = list(LATENCY_BOUNDS_US)
    summary["now_ms"] = wall_ms()
    return summary


class ConsoleCollector(Collector):
    """``/metrics``: request latency, write visibility and the node's event counters."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> list[Metric]:
        runtime = self.runtime
        node = runtime.node
        latency = HistogramMetricFamily(
            "eventual_request_seconds",
            "Client requests inside the node, from submission to the durable reply",
            labels=["kind"],
        )
        for kind, buckets in runtime.latency.items():
            bounds = [b / 1e6 for b in LATENCY_BOUNDS_US]
            latency.add_metric([kind], _cumulative(buckets, bounds), None)  # no sum is kept
        visibility = HistogramMetricFamily(
            "eventual_write_visibility_seconds",
            "How long after a write's acknowledgement it reached each replica (t-visibility; "
            "writes this node coordinated; copies not acknowledged within the request timeout "
            "count in +Inf only)",
            labels=["from_region", "to_region"],
        )
        # This node's own counts, as a status carries them (without the rest of a status).
        mine: dict[str, Any] = {
            "region": node.region,
            "visibility": node.visibility,
            "visibility_ms": node.visibility_ms,
        }
        for pair in visibility_by_region({node.id: mine}, node.region_of):
            visibility.add_metric(
                [pair["from"], pair["to"]],
                _cumulative(pair["buckets"], [b / 1000 for b in VISIBILITY_BOUNDS_MS]),
                pair["sum_ms"] / 1000,
            )
        events = CounterMetricFamily(
            "eventual_node_events", "What the node counted", labels=["event"]
        )
        for name, count in sorted(node.stats.items()):
            events.add_metric([name], count)
        return [latency, visibility, events]


def _cumulative(buckets: list[int], bounds: list[float]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative buckets (the last, past every bound, in
    +Inf only)."""
    cumulative: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip(bounds, buckets, strict=False):
        total += count
        cumulative.append((repr(bound), total))
    cumulative.append(("+Inf", sum(buckets)))
    return cumulative


def add_console(app: web.Application, runtime: NodeRuntime) -> None:
    """The console's routes on the node's HTTP app: ``/ui`` and ``/docs``."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    # One view serves every page that asks within VIEW_TTL_S, and asks that come while it is
    # being made wait for it: the probes a node sends do not grow with the pages open.
    latest: list[tuple[float, asyncio.Future[dict[str, Any]]]] = []

    async def cluster(request: web.Request) -> web.Response:
        now = time.monotonic()
        if not latest or now - latest[0][0] > VIEW_TTL_S:
            made = asyncio.ensure_future(cluster_view(runtime))
            latest[:] = [(now, made)]
        return web.json_response(await asyncio.shield(latest[0][1]))

    async def key(request: web.Request) -> web.Response:
        return web.json_response(await inspect_key(runtime, request.match_info["key"].encode()))

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui")

    app.router.add_get("/", home)
    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/api/cluster", cluster)
    app.router.add_get("/ui/api/key/{key}", key)
    app.router.add_static("/ui/static", STATIC)
    api_doc(app, config_rel_url="/openapi.json", url_prefix="/docs", title="Eventual API")
