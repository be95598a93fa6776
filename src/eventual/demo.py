"""``eventual demo``: three regional replicas of the data types, split and healed.

Until the server exists (issue 4), this is the main job of the quick start: it shows, with
the real types and encodings, what the store promises. Each region keeps accepting writes
while cut off; when the network heals, replicas exchange states and converge to identical
bytes, with nothing acknowledged lost: concurrent object writes become siblings, counters
sum, sets keep concurrent adds, and the bounded counter never sells stock it does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click

from eventual.clocks import DVVSet, HybridLogicalClock
from eventual.crdt import (
    BoundedCounter,
    HyperLogLog,
    InsufficientRights,
    LWWRegister,
    ORMap,
    ORSet,
    PNCounter,
)
from eventual.lattice import Lattice

REGIONS = ("us-east", "eu-west", "ap-south")


@dataclass
class Region:
    name: str
    clock: HybridLogicalClock = field(default_factory=HybridLogicalClock)
    keys: dict[str, Lattice] = field(default_factory=dict)

    def key(self, name: str, new: Callable[[], Lattice]) -> Lattice:
        return self.keys.setdefault(name, new())


def _show(title: str, regions: list[Region], key: str) -> None:
    cells = []
    for region in regions:
        state = region.keys.get(key)
        value = "absent" if state is None else state.value()
        if isinstance(value, set):
            value = sorted(value, key=str)
        cells.append(f"{region.name}={value!r}")
    click.echo(f"  {title:<34} " + "  ".join(cells))


def run_demo(echo_bytes: bool = False) -> bool:
    """Run the scripted story; return True if every replica converged with nothing lost."""
    regions = [Region(name) for name in REGIONS]
    us, eu, ap = regions
    wall_ms = 1_800_000_000_000  # fixed, so the demo prints the same story every time

    click.echo("Three regions; the network is split: every region is on its own.\n")

    cart_us = us.key("cart:42", DVVSet)
    assert isinstance(cart_us, DVVSet)
    cart_us.update("us-east", "book")
    for region in (eu, ap):
        region.key("cart:42", DVVSet).merge(cart_us)
    context = cart_us.context()
    cart_us.update("us-east", "book+pen", context)
    cart_eu = eu.keys["cart:42"]
    assert isinstance(cart_eu, DVVSet)
    cart_eu.update("eu-west", "book+lamp", context)
    _show("object (DVVSet), two writes:", regions, "cart:42")

    for amount, region in zip((3, 5, 2), regions, strict=True):
        counter = region.key("page:views", PNCounter)
        assert isinstance(counter, PNCounter)
        counter.increment(region.name, amount)
    _show("counter, increments 3/5/2:", regions, "page:views")

    for member, region in zip(("ana", "bo", "chen"), regions, strict=True):
        followers = region.key("followers:ana", ORSet)
        assert isinstance(followers, ORSet)
        followers.add(region.name, member)
    _show("set, one add per region:", regions, "followers:ana")

    for offset, (text, region) in enumerate(zip(("hi", "hola", "namaste"), regions, strict=True)):
        greeting = region.key("greeting", LWWRegister)
        assert isinstance(greeting, LWWRegister)
        greeting.set(text, region.clock.now(wall_ms + offset), region.name)
    _show("string (LWW by HLC), three sets:", regions, "greeting")

    stock_us = us.key("stock:widget", BoundedCounter)
    assert isinstance(stock_us, BoundedCounter)
    stock_us.increment("us-east", 10)
    stock_us.transfer("us-east", "eu-west", 3)
    stock_us.transfer("us-east", "ap-south", 2)
    for region in (eu, ap):
        region.key("stock:widget", BoundedCounter).merge(stock_us)
    sold = refused = 0
    for region, wanted in zip(regions, (4, 3, 4), strict=True):
        stock = region.keys["stock:widget"]
        assert isinstance(stock, BoundedCounter)
        for _ in range(wanted):
            try:
                stock.decrement(region.name, 1)
                sold += 1
            except InsufficientRights:
                refused += 1
    _show("bounded stock 10, sales 4/3/4:", regions, "stock:widget")
    click.echo(f"  {'':<34} ({refused} sales refused in ap-south: it held 2 of the 10 rights)")

    for region, users in zip(
        regions, (range(0, 600), range(400, 1000), range(900, 1500)), strict=True
    ):
        visitors = region.key("visitors", HyperLogLog)
        assert isinstance(visitors, HyperLogLog)
        for user in users:
            visitors.add(f"user-{user}")
    _show("hll, 1500 distinct overall:", regions, "visitors")

    profile = us.key("profile:ana", ORMap)
    assert isinstance(profile, ORMap)
    profile.update("us-east", "likes", PNCounter, lambda c: c.increment("us-east", 7))
    eu.key("profile:ana", ORMap).merge(profile)
    profile.remove("likes")
    eu_profile = eu.keys["profile:ana"]
    assert isinstance(eu_profile, ORMap)
    eu_profile.update("eu-west", "likes", PNCounter, lambda c: c.increment("eu-west", 1))
    _show("map: remove vs concurrent update:", regions, "profile:ana")

    click.echo("\nThe network heals; every region merges every other's state.\n")
    for target in regions:
        for source in regions:
            for key, state in source.keys.items():
                target.key(key, type(state)).merge(state)

    converged = True
    for key in sorted(us.keys):
        encodings = {region.keys[key].to_bytes() for region in regions}
        converged &= len(encodings) == 1
        _show(f"{key}:", regions, key)
        if echo_bytes:
            click.echo(
                f"  {'':<34} {len(next(iter(encodings)))} bytes, identical: {len(encodings) == 1}"
            )

    cart = us.keys["cart:42"]
    stock = us.keys["stock:widget"]
    views = us.keys["page:views"]
    assert isinstance(cart, DVVSet) and isinstance(stock, BoundedCounter)
    nothing_lost = (
        sorted(cart.values(), key=str) == ["book+lamp", "book+pen"]
        and views.value() == 10
        and stock.value() == 10 - sold >= 0
    )
    if converged:
        click.echo("\nConverged: every replica of every key holds identical bytes.")
    else:
        click.echo("\nNOT CONVERGED: replicas differ.")
    if nothing_lost:
        click.echo(
            f"Nothing lost: both cart writes are siblings, all 10 views are counted, "
            f"{sold} widgets sold of 10 and the stock never went below zero."
        )
    else:
        click.echo("LOSS: an acknowledged write is missing.")
    return converged and nothing_lost
