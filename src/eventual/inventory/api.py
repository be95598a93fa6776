"""The inventory service's HTTP API (``eventual inventory serve``).

- ``PUT /products/{sku}`` ``{region, name}``: add the product to the catalog.
- ``GET /products?region=R``: the catalog, ``{sku: name}``.
- ``POST /products/{sku}/restock`` ``{region, quantity}``: 200 ``{value}``.
- ``POST /products/{sku}/sell`` ``{region, quantity}``: 200 ``{sold: true}``, or 409
  ``{sold: false}`` when the region has no rights left.
- ``POST /products/{sku}/reserve`` ``{region, quantity, ttl_s}``: 200
  ``{reservation, expires_at}``, or 409.
- ``POST /reservations/{id}/confirm`` ``{region}``: 200 ``{confirmed: true}``, or 409 when
  the reservation is unknown or about to expire.
- ``GET /products/{sku}?region=R&consistency=ONE``: 200 ``{value, rights}``, with rights per
  region.
- ``GET /stats``: sold (and of those, sold from another region's rights), refused, held.

In the background it rebalances every product it has seen (``policy.plan_transfers``) and
returns expired reservations (one sweeper per region: run one service per cluster, or give
each its own regions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from eventual.client import ClientError
from eventual.inventory.service import Inventory

__all__ = ["build_inventory_app"]

QUANTITY_MAX = 1_000_000  # per request: a typo, not an order
NAME_CHARS_MAX = 200
BACKGROUND_EVERY_S = 0.25


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": text}), content_type="application/json")


async def _body(request: web.Request, inventory: Inventory) -> tuple[str, dict[str, Any]]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise _bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    region = body.get("region")
    if region not in inventory.regions:
        raise _bad(f"region must be one of {', '.join(sorted(inventory.regions))}")
    return str(region), body


def _quantity(body: dict[str, Any]) -> int:
    quantity = body.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise _bad("quantity must be an integer")
    if not 0 < quantity <= QUANTITY_MAX:
        raise _bad(f"quantity must be in [1, {QUANTITY_MAX}]")
    return quantity


def build_inventory_app(inventory: Inventory) -> web.Application:
    seen: set[str] = set()

    async def add_product(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        region, body = await _body(request, inventory)
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > NAME_CHARS_MAX:
            raise _bad(f"name must be a string of 1 to {NAME_CHARS_MAX} characters")
        await inventory.add_product(sku, name, region)
        seen.add(sku)
        return web.json_response({"sku": sku, "name": name})

    async def catalog(request: web.Request) -> web.Response:
        region = request.query.get("region", next(iter(inventory.regions)))
        if region not in inventory.regions:
            raise _bad(f"region must be one of {', '.join(sorted(inventory.regions))}")
        return web.json_response(await inventory.products(region))

    async def restock(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        region, body = await _body(request, inventory)
        seen.add(sku)
        return web.json_response({"value": await inventory.restock(sku, _quantity(body), region)})

    async def sell(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        region, body = await _body(request, inventory)
        seen.add(sku)
        sold = await inventory.sell(sku, _quantity(body), region)
        return web.json_response({"sold": sold}, status=200 if sold else 409)

    async def reserve(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        region, body = await _body(request, inventory)
        ttl = body.get("ttl_s", 600)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise _bad("ttl_s must be a number of seconds")
        seen.add(sku)
        try:
            held = await inventory.reserve(sku, _quantity(body), region, float(ttl))
        except ValueError as error:
            raise _bad(str(error)) from None
        if held is None:
            return web.json_response({"reservation": None}, status=409)
        return web.json_response({"reservation": held.id, "expires_at": held.expires_at})

    async def confirm(request: web.Request) -> web.Response:
        region, _ = await _body(request, inventory)
        done = await inventory.confirm(request.match_info["id"], region)
        return web.json_response({"confirmed": done}, status=200 if done else 409)

    async def product(request: web.Request) -> web.Response:
        region = request.query.get("region", next(iter(inventory.regions)))
        if region not in inventory.regions:
            raise _bad(f"region must be one of {', '.join(sorted(inventory.regions))}")
        view = await inventory.view(
            request.match_info["sku"], region, request.query.get("consistency", "ONE")
        )
        return web.json_response({"value": view.value, "rights": view.rights})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sold": inventory.sold,
                "refused": inventory.refused,
                "held": inventory.held,
                "sold_elsewhere": inventory.sold_elsewhere,
                "demand_per_s": inventory.demand_per_s(),
            }
        )

    async def background(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                for sku in sorted(seen):
                    with contextlib.suppress(ClientError):
                        await inventory.rebalance(sku)
                for region in inventory.regions:
                    with contextlib.suppress(ClientError):
                        await inventory.sweep(region)
                await asyncio.sleep(BACKGROUND_EVERY_S)

        await inventory.connect()
        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await inventory.close()

    @web.middleware
    async def unavailable(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except ClientError as error:  # the cluster said no, or could not be reached
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from None
        return response

    app = web.Application(middlewares=[unavailable])
    app.cleanup_ctx.append(background)
    app.router.add_put("/products/{sku}", add_product)
    app.router.add_get("/products", catalog)
    app.router.add_post("/products/{sku}/restock", restock)
    app.router.add_post("/products/{sku}/sell", sell)
    app.router.add_post("/products/{sku}/reserve", reserve)
    app.router.add_post("/reservations/{id}/confirm", confirm)
    app.router.add_get("/products/{sku}", product)
    app.router.add_get("/stats", stats)
    return app
