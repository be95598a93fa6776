"""The inventory service: stock per product as bounded counters, sold region by region.

The story (``docs/inventory.md``): a company sells the same products in several regions.
Each region must keep selling, fast, even when it is cut off from the others, and yet
nobody may sell stock that does not exist.

- A product's stock is the bounded counter ``stock:<sku>``. Its *rights* belong to the
  replicas (one per region, with N = 3 over 3 regions).
- ``sell`` decrements at ``LOCAL_QUORUM`` through a node of the seller's region. That node
  (or the key's replica in its region, to which it forwards) spends its own rights: the sale
  succeeds at once, or is refused if the region has none left. It never waits on another
  region and never oversells.
- ``restock`` increments in a region (the new rights are that region's).
- ``rebalance`` moves rights toward the regions that are selling (``policy.plan_transfers``),
  ahead of need. Each transfer is run by the giving region's replica, the only one that may
  spend those rights. A region that runs out anyway sells from another region's rights,
  through that region's replica, if it can reach it.

The service keeps no state of its own beyond a window of recent sales per region (its
demand estimate); every count lives in Eventual.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from eventual.client import AsyncClient, ClientError
from eventual.core.ring import key_hash
from eventual.inventory.policy import Transfer, plan_transfers

__all__ = ["Inventory", "Reservation", "StockView"]

DEMAND_WINDOW_S = 2.0  # sales rate is measured over this much recent history
# A reservation can be confirmed only this long before it expires, and is reclaimed only
# this long after: confirm and reclaim never race, for clocks within this of each other.
RESERVATION_MARGIN_S = 2.0
RESERVATION_TTL_S_MAX = 24 * 3600
CATALOG_KEY = "catalog"
# Refused everywhere, a sale looks once more after this: a transfer's rights in flight
# between regions (one trip) are in no region's count meanwhile.
IN_FLIGHT_WAIT_S = 0.1
DEMAND_EVENTS_MAX = 100_000  # per region: the window's memory is bounded whatever the load


@dataclass(frozen=True, slots=True)
class StockView:
    """A product's stock as one region reads it."""

    value: int  # units left, as this read sees them
    rights: dict[str, int]  # per region: what it may still sell without help


@dataclass(frozen=True, slots=True)
class Reservation:
    """Units taken out of a region's stock for a while: confirmed, they are sold; not
    confirmed in time, they go back (``sweep``)."""

    id: str
    sku: str
    quantity: int
    region: str
    expires_at: float  # wall-clock seconds

    def member(self) -> str:
        return f"{self.id}|{self.sku}|{self.quantity}|{self.expires_at:.3f}"

    @classmethod
    def parse(cls, member: str, region: str) -> Reservation | None:
        parts = member.split("|")
        if len(parts) != 4:
            return None  # not one of ours: left alone
        try:
            return cls(parts[0], parts[1], int(parts[2]), region, float(parts[3]))
        except ValueError:
            return None


@dataclass
class _Region:
    client: AsyncClient
    sales: deque[float] = field(default_factory=lambda: deque(maxlen=DEMAND_EVENTS_MAX))


class Inventory:
    """``urls``: for each region, the HTTP address of an Eventual node in that region."""

    def __init__(self, urls: dict[str, str], elsewhere: bool = True) -> None:
        self.regions = {
            region: _Region(AsyncClient(url, retries=1)) for region, url in urls.items()
        }
        # Out of rights: sell from another region's (see ``sell``).
        self.elsewhere = elsewhere
        self.sold_elsewhere = 0
        self.held = 0  # units in open reservations made through this service
        self.ring: list[list[str]] = []  # preference list per partition
        self.region_of: dict[str, str] = {}
        self.refused = 0
        self.sold = 0

    async def connect(self) -> None:
        """Learn which node is in which region, and the ring (to address transfers)."""
        for place in self.regions.values():
            state = await place.client.cluster()
            self.ring = state["ring"]
            for member in state["members"]:
                self.region_of[member["node"]] = member["region"]

    async def close(self) -> None:
        for region in self.regions.values():
            await region.client.close()

    @staticmethod
    def key(sku: str) -> str:
        return f"stock:{sku}"

    def replica_in(self, sku: str, region: str) -> str | None:
        """The node of ``region`` that replicates the product's counter (holds its rights)."""
        if not self.ring:
            return None
        partition = (key_hash(self.key(sku).encode()) * len(self.ring)) >> 64
        return next((n for n in self.ring[partition] if self.region_of.get(n) == region), None)

    # --- the catalog: product names, in the hash ``catalog`` (field: sku) ---

    async def add_product(self, sku: str, name: str, region: str) -> None:
        await self.regions[region].client.update(
            "hash", CATALOG_KEY, {"set": {sku: name}}, "LOCAL_QUORUM"
        )

    async def products(self, region: str) -> dict[str, str]:
        found = await self.regions[region].client.read("hash", CATALOG_KEY, "LOCAL_ONE")
        return dict(found.get("value") or {})

    async def restock(self, sku: str, quantity: int, region: str) -> int:
        result = await self.regions[region].client.update(
            "bcounter", self.key(sku), {"increment": quantity}, "LOCAL_QUORUM"
        )
        return int(result)

    async def sell(self, sku: str, quantity: int, region: str) -> bool:
        """Sell from ``region``'s own rights: True if sold, False if refused.

        With ``elsewhere``, a region out of rights sells from another region's instead,
        through that region's replica (the only one that may spend them): one cross-region
        trip, paid only then. Cut off from the others, it refuses, and never oversells."""
        place = self.regions[region]
        place.sales.append(time.monotonic())
        if await self._decrement(sku, quantity, region):
            return True
        if self.elsewhere:
            # Twice: rights a rebalancing transfer has in flight land within a trip.
            for attempt, wait_s in enumerate((0.0, IN_FLIGHT_WAIT_S)):
                await asyncio.sleep(wait_s)
                if attempt and await self._decrement(sku, quantity, region):
                    return True
                for donor in await self._richest_others(sku, region):
                    with contextlib.suppress(ClientError):  # unreachable: try the next one
                        if await self._decrement(sku, quantity, donor):
                            self.sold_elsewhere += quantity
                            return True
        self.refused += 1
        return False

    async def _decrement(self, sku: str, quantity: int, region: str) -> bool:
        try:
            await self.regions[region].client.update(
                "bcounter", self.key(sku), {"decrement": quantity}, "LOCAL_QUORUM"
            )
        except ClientError as error:
            if error.status == 409 and "REFUSED" in str(error):
                return False
            raise
        self.sold += quantity
        return True

    async def _richest_others(self, sku: str, region: str) -> list[str]:
        """Other regions, by the rights this region last saw them hold, most first."""
        try:
            view = await self.view(sku, region, "LOCAL_ONE")
        except ClientError:
            return []
        # All of them, the richest first: rights seen as spent may have just moved in.
        others = [r for r in view.rights if r != region]
        return sorted(others, key=lambda r: (-view.rights[r], r))

    # --- reservations: stock held for a customer, returned if not confirmed in time ---

    @staticmethod
    def open_key(region: str) -> str:
        return f"reservations:{region}"

    async def reserve(
        self, sku: str, quantity: int, region: str, ttl_s: float
    ) -> Reservation | None:
        """Take ``quantity`` out of ``region``'s stock now (refused like a sale if it has
        no rights); None if refused."""
        if not 0 < ttl_s <= RESERVATION_TTL_S_MAX:
            raise ValueError(f"ttl_s must be in (0, {RESERVATION_TTL_S_MAX}]")
        if not await self.sell(sku, quantity, region):
            return None
        self.sold -= quantity  # held, not sold, until confirmed
        self.held += quantity
        reservation = Reservation(
            uuid.uuid4().hex, sku, quantity, region, time.time() + max(ttl_s, 0.001)
        )
        await self.regions[region].client.update(
            "set", self.open_key(region), {"add": [reservation.member()]}, "LOCAL_QUORUM"
        )
        return reservation

    async def reservations(self, region: str) -> list[Reservation]:
        found = await self.regions[region].client.read("set", self.open_key(region), "LOCAL_ONE")
        parsed = (Reservation.parse(m, region) for m in found.get("value") or [])
        return sorted((r for r in parsed if r is not None), key=lambda r: r.expires_at)

    async def confirm(self, reservation_id: str, region: str) -> bool:
        """Make a reservation a sale; False if unknown or (nearly) expired."""
        for reservation in await self.reservations(region):
            if reservation.id != reservation_id:
                continue
            if reservation.expires_at - time.time() < RESERVATION_MARGIN_S:
                return False  # too close to expiry: the sweeper may be returning it
            await self._close(reservation)
            self.held -= reservation.quantity
            self.sold += reservation.quantity
            return True
        return False

    async def sweep(self, region: str) -> int:
        """Return the stock of reservations expired (plus the margin) to their region: one
        sweeper per region. Units returned."""
        returned = 0
        now = time.time()
        for reservation in await self.reservations(region):
            if reservation.expires_at + RESERVATION_MARGIN_S > now:
                break  # sorted by expiry: the rest are later
            # Close first, then restock: a crash in between loses the units (never sells
            # them twice); the other order could return them twice.
            await self._close(reservation)
            await self.restock(reservation.sku, reservation.quantity, region)
            self.held -= reservation.quantity
            returned += reservation.quantity
        return returned

    async def _close(self, reservation: Reservation) -> None:
        await self.regions[reservation.region].client.update(
            "set",
            self.open_key(reservation.region),
            {"remove": [reservation.member()]},
            "LOCAL_QUORUM",
        )

    async def view(self, sku: str, region: str, consistency: str = "ONE") -> StockView:
        found = await self.regions[region].client.read("bcounter", self.key(sku), consistency)
        rights: dict[str, int] = dict.fromkeys(self.regions, 0)
        for node, amount in found.get("rights", {}).items():
            place = self.region_of.get(node)
            if place in rights:
                rights[place] += int(amount)
        return StockView(int(found.get("value") or 0), rights)

    def demand_per_s(self) -> dict[str, float]:
        now = time.monotonic()
        rates = {}
        for name, region in self.regions.items():
            while region.sales and region.sales[0] < now - DEMAND_WINDOW_S:
                region.sales.popleft()
            rates[name] = len(region.sales) / DEMAND_WINDOW_S
        return rates

    async def rebalance(self, sku: str) -> list[Transfer]:
        """Move rights toward demand; the transfers made."""
        demand = self.demand_per_s()
        busiest = max(demand, key=lambda r: (demand[r], r))
        current = await self.view(sku, busiest, "ONE")
        done = []
        for transfer in plan_transfers(current.rights, demand):
            to_node = self.replica_in(sku, transfer.target)
            if to_node is None:
                continue
            try:
                await self.regions[transfer.source].client.update(
                    "bcounter",
                    self.key(sku),
                    {"transfer": {"to": to_node, "amount": transfer.amount}},
                    "LOCAL_QUORUM",
                )
            except ClientError:
                continue  # its view was stale (rights already spent): the next round retries
            done.append(transfer)
        return done

    async def rebalance_forever(
        self, skus: list[str], interval_s: float, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            for sku in skus:
                # A region unreachable: the others keep selling; the next round tries again.
                with contextlib.suppress(ClientError):
                    await self.rebalance(sku)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
