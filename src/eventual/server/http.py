"""The HTTP/JSON API, described by the OpenAPI document it serves at ``/openapi.json``.

Objects (``/kv/{key}``) are Dynamo-style: a read returns the value and an opaque causal
context (``X-Causal-Context``), or ``300 Multiple Choices`` with every sibling; a write or a
delete that carries the context replaces exactly what that read saw, and one without it is
concurrent with everything. An object's stored value keeps its content type with its body.

The CRDT types (``/crdt/{type}/{key}``) take JSON operations; TTLs have ``/ttl/{key}``;
``/cluster`` shows the members and the ring as this node sees them; ``/metrics`` is
Prometheus text. ``/ui`` is the console and ``/docs`` Swagger UI (``server/console.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from eventual import __version__
from eventual.clocks import VersionVector
from eventual.codec import DecodeError
from eventual.core import Level, Request, Result
from eventual.core import ops as O  # noqa: N812
from eventual.core.ops import STRING_BYTES_MAX
from eventual.crdt import BoundedCounter
from eventual.server.console import ConsoleCollector, add_console, cluster_summary
from eventual.server.objects import decode_object, encode_object
from eventual.server.runtime import NodeRuntime, wall_ms
from eventual.server.users import DEFAULT_USER, Role, User, Users

__all__ = ["build_app", "decode_object", "encode_object"]

# The largest string or object value the core takes, plus room for a JSON body around it.
BODY_BYTES_MAX = STRING_BYTES_MAX + 1024 * 1024
CONTEXT_HEADER = "X-Causal-Context"

# What a body that is not JSON raises: bad syntax (JSONDecodeError), bytes that are not UTF-8
# (UnicodeDecodeError, a ValueError too) and nesting deeper than the parser's stack
# (RecursionError). All of them are the client's doing: 400, never 500.
BAD_JSON = (ValueError, RecursionError)

# Kinds /kv reads as their text (one key, two faces): Redis strings, counting or not, and
# counters.
TEXT_KINDS = ("string", "counter")


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="surrogateescape")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, (set, frozenset, list, tuple)):
        return sorted((_json_value(v) for v in value), key=str)
    if isinstance(value, dict):
        return {str(_json_value(k)): _json_value(v) for k, v in value.items()}
    return value


class Metrics:
    def __init__(self, runtime: NodeRuntime) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "eventual_http_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "eventual_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
        )
        Gauge(
            "eventual_peers_up", "Peers this node believes up", registry=self.registry
        ).set_function(lambda: sum(runtime.node.up(p) for p in runtime.node.peers))
        Gauge(
            "eventual_pending_requests", "Requests in flight", registry=self.registry
        ).set_function(lambda: len(runtime.node.pending))
        Gauge(
            "eventual_store_commits", "SQLite commits (group commits)", registry=self.registry
        ).set_function(lambda: runtime.store.commits)
        self.registry.register(ConsoleCollector(runtime))


def authenticate(header: str, users: Users) -> User | None:
    """The user an ``Authorization`` header proves to be: HTTP basic credentials
    (``user:password``; no user is ``default``, Redis 6's name for the one ``--password``
    makes), or a bearer token that is the default user's password or ``user:password``."""
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        token = credential.strip()
        user = users.check(DEFAULT_USER, token)
        if user is None and ":" in token:
            name, _, password = token.partition(":")
            user = users.check(name, password)
        return user
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return users.check(name or DEFAULT_USER, password)
    return None


def route_needs(method: str, path: str) -> Role:
    """The role a request needs: admin for ``/cluster/*`` and ``/debug/*``, read-write for
    any other change, read-only for reads."""
    if path.startswith(("/cluster/", "/debug/")):
        return Role.ADMIN
    if method in ("GET", "HEAD", "OPTIONS"):
        return Role.READ_ONLY
    return Role.READ_WRITE


def build_app(
    runtime: NodeRuntime,
    fault_injection: bool = False,
    *,
    users: Users | None = None,
    metrics_open: bool = False,
) -> web.Application:
    """``users``: if any, every route but ``/openapi.json`` (and ``/metrics`` if
    ``metrics_open``) answers 401 without credentials, as Redis answers NOAUTH, and 403 to
    a user whose role does not allow it (``route_needs``)."""
    users = users or Users()
    metrics = Metrics(runtime)
    open_paths = {"/openapi.json"} | ({"/metrics"} if metrics_open else set())

    async def call(op: O.Operation, request: web.Request) -> Result:
        query = request.query
        try:
            level = Level.parse(query.get("consistency", "QUORUM"))
            n = int(query["n"]) if "n" in query else None
            r = int(query["r"]) if "r" in query else None
            w = int(query["w"]) if "w" in query else None
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        runtime.request(Request(0, op, level, n=n, r=r, w=w), future.set_result)
        result = await future
        if not result.ok:
            message = result.error or "failed"
            status = 503  # not enough replicas, a timeout: worth retrying
            if message.startswith(("WRONGTYPE", "REFUSED")):  # the key's state says no
                status = 409
            elif message.startswith("ERR"):
                status = 400
            raise _error(status, message)
        return result

    def context_of(request: web.Request) -> VersionVector | None:
        header = request.headers.get(CONTEXT_HEADER)
        if header is None:
            return None
        try:
            return VersionVector.from_bytes(base64.b64decode(header, validate=True))
        except (binascii.Error, DecodeError):
            raise _error(400, f"{CONTEXT_HEADER} is not a context this store gave out") from None

    def context_header(result: Result) -> dict[str, str]:
        if result.context is None:
            return {}
        return {CONTEXT_HEADER: base64.b64encode(result.context).decode()}

    async def get_object(request: web.Request) -> web.Response:
        key = request.match_info["key"].encode()
        result = await call(O.Get(key), request)
        headers = context_header(result)
        if result.value is None:
            return web.Response(status=404, text="not found", headers=headers)
        if result.kind in TEXT_KINDS:
            # One key, two faces: a Redis string (or a counter) reads here as its text, as an
            # object with one value and no context to write back with (a write here would
            # be WRONGTYPE: a string merges by last writer, not by siblings).
            value = result.value
            text = value if isinstance(value, bytes) else str(value).encode()
            return web.Response(status=200, body=text, content_type="application/octet-stream")
        if result.kind != "object":
            raise _error(
                409, f"WRONGTYPE {request.match_info['key']} holds a {result.kind}; use /crdt"
            )
        siblings = [decode_object(v) for v in result.value]
        if len(siblings) == 1:
            content_type, body = siblings[0]
            return web.Response(status=200, body=body, content_type=content_type, headers=headers)
        payload = {
            "context": headers.get(CONTEXT_HEADER, ""),
            "siblings": [
                {"value_base64": base64.b64encode(body).decode(), "content_type": content_type}
                for content_type, body in siblings
            ],
        }
        return web.json_response(payload, status=300, headers=headers)

    async def put_object(request: web.Request) -> web.Response:
        key = request.match_info["key"].encode()
        body = await request.read()
        value = encode_object(request.content_type or "application/octet-stream", body)
        result = await call(O.ObjectPut(key, value, context_of(request)), request)
        return web.Response(status=204, headers=context_header(result))

    async def delete_object(request: web.Request) -> web.Response:
        key = request.match_info["key"].encode()
        result = await call(O.Delete(key, context_of(request)), request)
        return web.Response(status=204, headers=context_header(result))

    async def get_crdt(request: web.Request) -> web.Response:
        kind, key = request.match_info["type"], request.match_info["key"].encode()
        if kind not in CRDT_TYPES:
            raise _error(404, f"unknown type {kind!r}; one of {', '.join(CRDT_TYPES)}")
        result = await call(O.Get(key), request)
        if result.value is None:
            return web.json_response({"type": kind, "value": None}, status=404)
        if result.kind != CRDT_TYPES[kind]:
            raise _error(409, f"WRONGTYPE the key holds a {result.kind}")
        body: dict[str, Any] = {
            "type": kind,
            "value": _json_value(result.value),
            "expire_at_ms": result.expire_at,
        }
        if kind == "bcounter" and result.state is not None:  # who may spend how much
            counter = BoundedCounter.from_bytes(result.state)
            body["rights"] = {actor: counter.rights(actor) for actor in counter.actors()}
        return web.json_response(body)

    async def post_crdt(request: web.Request) -> web.Response:
        kind, key = request.match_info["type"], request.match_info["key"].encode()
        try:
            body = await request.json()
        except BAD_JSON:
            raise _error(400, "the body must be a JSON object with one operation") from None
        op = crdt_operation(kind, key, body)
        result = await call(op, request)
        return web.json_response({"type": kind, "result": _json_value(result.value)})

    async def put_ttl(request: web.Request) -> web.Response:
        key = request.match_info["key"].encode()
        try:
            body = await request.json()
            at = (
                int(body["expire_at_ms"])
                if "expire_at_ms" in body
                else wall_ms() + int(body["seconds"]) * 1000
            )
        except (*BAD_JSON, KeyError, TypeError):
            raise _error(400, 'send {"seconds": N} or {"expire_at_ms": T}') from None
        result = await call(O.Expire(key, at), request)
        return web.json_response({"applied": bool(result.value), "expire_at_ms": at})

    async def delete_ttl(request: web.Request) -> web.Response:
        result = await call(O.Persist(request.match_info["key"].encode()), request)
        return web.json_response({"applied": bool(result.value)})

    async def get_ttl(request: web.Request) -> web.Response:
        result = await call(O.Get(request.match_info["key"].encode()), request)
        if result.value is None:
            return web.json_response({"exists": False}, status=404)
        ttl = None if result.expire_at is None else max(0, result.expire_at - wall_ms())
        return web.json_response({"exists": True, "expire_at_ms": result.expire_at, "ttl_ms": ttl})

    async def cluster(request: web.Request) -> web.Response:
        return web.json_response(cluster_summary(runtime))

    async def cluster_change(request: web.Request) -> web.Response:
        """POST /cluster/leave {"node"} or /cluster/replace {"old", "new"}."""
        try:
            body = await request.json()
        except BAD_JSON:
            body = None
        action = request.match_info["action"]
        node = runtime.node
        names = ("node",) if action == "leave" else ("old", "new")
        values = [body.get(name) if isinstance(body, dict) else None for name in names]
        if not all(isinstance(v, str) and v for v in values):
            raise _error(400, f"expected a JSON object with {', '.join(names)} (node names)")
        if action == "leave":
            result = node.leave(str(values[0]))
        else:
            result = node.replace(str(values[0]), str(values[1]))
        runtime.membership_changed()
        if not result.ok:
            raise _error(400, (result.error or "ERR refused").removeprefix("ERR "))
        return web.json_response({"result": result.value})

    async def partition(request: web.Request) -> web.Response:
        """Tests only (--fault-injection): {"block": [node, ...]} cuts this node off from
        those peers, both ways; {"block": []} heals."""
        try:
            body = await request.json()
            blocked = body["block"]
        except (*BAD_JSON, KeyError, TypeError):
            raise _error(400, 'expected {"block": [node names]}') from None
        if not isinstance(blocked, list) or not all(isinstance(n, str) for n in blocked):
            raise _error(400, "block must be a list of node names")
        runtime.blocked = set(blocked)
        return web.json_response({"blocked": sorted(runtime.blocked)})

    async def metrics_text(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), content_type="text/plain")

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    @web.middleware
    async def measure(request: web.Request, handler: Any) -> web.StreamResponse:
        route = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "?"
        )
        started = time.perf_counter()
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if users.required and request.path not in open_paths:
            user = authenticate(request.headers.get("Authorization", ""), users)
            if user is None:
                raise web.HTTPUnauthorized(
                    text=json.dumps({"error": "authentication required (--password)"}),
                    content_type="application/json",
                    headers={"WWW-Authenticate": 'Basic realm="eventual", charset="UTF-8"'},
                )
            need = route_needs(request.method, request.path)
            if not user.allows(need):
                raise web.HTTPForbidden(
                    text=json.dumps(
                        {
                            "error": f"user {user.name} ({user.role.label}) may not do this: "
                            f"it needs the {need.label} role"
                        }
                    ),
                    content_type="application/json",
                )
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(client_max_size=BODY_BYTES_MAX, middlewares=[measure, guard])
    app.router.add_get("/kv/{key}", get_object)
    app.router.add_put("/kv/{key}", put_object)
    app.router.add_delete("/kv/{key}", delete_object)
    app.router.add_get("/crdt/{type}/{key}", get_crdt)
    app.router.add_post("/crdt/{type}/{key}", post_crdt)
    app.router.add_get("/ttl/{key}", get_ttl)
    app.router.add_put("/ttl/{key}", put_ttl)
    app.router.add_delete("/ttl/{key}", delete_ttl)
    app.router.add_get("/cluster", cluster)
    app.router.add_post("/cluster/{action:leave|replace}", cluster_change)
    if fault_injection:
        app.router.add_post("/debug/partition", partition)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/openapi.json", openapi)
    add_console(app, runtime)
    return app


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    503: web.HTTPServiceUnavailable,
}


def _error(status: int, text: str) -> web.HTTPException:
    return _ERRORS[status](text=text)


CRDT_TYPES = {
    "counter": "counter",
    "set": "set",
    "hash": "hash",
    "map": "map",
    "flag": "flag",
    "hll": "hll",
    "bcounter": "bcounter",
    "string": "string",
}


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _error(400, f"{what} must be a string")
    return value.encode("utf-8", errors="surrogateescape")


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(400, f"{what} must be an integer")
    return value


def _strings(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value:
        raise _error(400, f"{what} must be a non-empty list of strings")
    return tuple(_bytes(v, what) for v in value)


def crdt_operation(kind: str, key: bytes, body: object) -> O.Operation:
    """The core operation for a JSON body such as ``{"increment": 3}``."""
    if kind not in CRDT_TYPES:
        raise _error(404, f"unknown type {kind!r}; one of {', '.join(CRDT_TYPES)}")
    if not isinstance(body, dict) or len(body) != 1:
        raise _error(400, 'send one operation, e.g. {"increment": 1}')
    ((name, arg),) = body.items()
    match kind, name:
        case "counter", "increment":
            return O.CounterAdd(key, _int(arg, "increment"))
        case "counter", "decrement":
            return O.CounterAdd(key, -_int(arg, "decrement"))
        case "set", "add":
            return O.SetAdd(key, _strings(arg, "add"))
        case "set", "remove":
            return O.SetRemove(key, _strings(arg, "remove"))
        case "hash", "set" if isinstance(arg, dict) and arg:
            return O.HashSet(
                key, tuple((_bytes(f, "field"), _bytes(v, "value")) for f, v in arg.items())
            )
        case "hash", "delete":
            return O.HashDel(key, _strings(arg, "delete"))
        case "hash" | "map", "increment" if isinstance(arg, dict) and len(arg) == 1:
            ((field, amount),) = arg.items()
            op_type = O.HashIncr if kind == "hash" else O.MapIncr
            return op_type(key, _bytes(field, "field"), _int(amount, "amount"))
        case "map", "remove":
            return O.MapRemove(key, _bytes(arg, "remove"))
        case "flag", "enable":
            if not isinstance(arg, bool):
                raise _error(400, "enable must be true or false")
            return O.FlagSet(key, arg)
        case "hll", "add":
            return O.HllAdd(key, _strings(arg, "add"))
        case "bcounter", "increment":
            return O.BcounterIncr(key, _int(arg, "increment"))
        case "bcounter", "decrement":
            return O.BcounterDecr(key, _int(arg, "decrement"))
        case "bcounter", "transfer" if isinstance(arg, dict):
            return O.BcounterTransfer(
                key, str(arg.get("to", "")), _int(arg.get("amount"), "amount")
            )
        case "string", "set":
            return O.StringSet(key, _bytes(arg, "set"))
    raise _error(400, f"{kind} has no operation {name!r} of that shape; see /openapi.json")


def _op(
    summary: str,
    params: list[dict[str, Any]],
    responses: dict[str, str],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": params,
        "responses": {code: {"description": text} for code, text in responses.items()},
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_TYPE = {
    "name": "type",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": list(CRDT_TYPES)},
}
_LEVEL = {
    "name": "consistency",
    "in": "query",
    "schema": {"type": "string", "enum": [lv.value for lv in Level]},
}
_COUNTS = [
    {"name": x, "in": "query", "schema": {"type": "integer", "minimum": 1}} for x in ("n", "r", "w")
]
_CONTEXT = {
    "name": CONTEXT_HEADER,
    "in": "header",
    "schema": {"type": "string"},
    "description": "the context of an earlier read; absent: a blind write",
}
_JSON = {"content": {"application/json": {"schema": {"type": "object"}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Eventual", "version": __version__, "description": __doc__},
    "paths": {
        "/kv/{key}": {
            "get": _op(
                "Read an object",
                [_KEY, _LEVEL, *_COUNTS],
                {
                    "200": (
                        "the value; X-Causal-Context to write back with (a Redis string or "
                        "a counter: its text, with no context)"
                    ),
                    "300": "siblings: {context, siblings: [{value_base64, content_type}]}",
                    "404": "absent",
                    "409": "the key holds a set, hash or other CRDT: read it at /crdt",
                    "503": "not enough replicas answered",
                },
            ),
            "put": _op(
                "Write an object",
                [_KEY, _LEVEL, *_COUNTS, _CONTEXT],
                {
                    "204": "written; X-Causal-Context is the new context",
                    "400": "bad input",
                    "409": "the key holds another type",
                    "503": "not enough replicas answered",
                },
                {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            ),
            "delete": _op(
                "Delete an object (what the context saw)",
                [_KEY, _LEVEL, *_COUNTS, _CONTEXT],
                {
                    "204": "deleted",
                    "503": "not enough replicas answered",
                },
            ),
        },
        "/crdt/{type}/{key}": {
            "get": _op(
                "Read a CRDT",
                [_TYPE, _KEY, _LEVEL, *_COUNTS],
                {"200": "{type, value, expire_at_ms}", "404": "absent", "409": "another type"},
            ),
            "post": _op(
                "Apply one operation: counter {increment|decrement: n}; set {add|remove: [..]}; "
                "hash {set: {f: v}} {delete: [f]} {increment: {f: n}}; map {increment: {f: n}} "
                "{remove: f}; flag {enable: bool}; hll {add: [..]}; "
                "bcounter {increment|decrement: n} "
                "{transfer: {to: node, amount: n}}; string {set: v}",
                [_TYPE, _KEY, _LEVEL, *_COUNTS],
                {
                    "200": "{type, result}",
                    "400": "bad operation",
                    "409": "another type",
                    "503": "not enough replicas",
                },
                _JSON,
            ),
        },
        "/ttl/{key}": {
            "get": _op(
                "Read a key's expiry",
                [_KEY, _LEVEL],
                {"200": "{exists, expire_at_ms, ttl_ms}", "404": "absent"},
            ),
            "put": _op(
                "Set an expiry: {seconds} or {expire_at_ms}",
                [_KEY, _LEVEL],
                {"200": "{applied, expire_at_ms}"},
                _JSON,
            ),
            "delete": _op("Remove the expiry (PERSIST)", [_KEY, _LEVEL], {"200": "{applied}"}),
        },
        "/cluster": {
            "get": _op(
                "Members, their state and the ring, as this node sees them",
                [],
                {"200": "cluster state"},
            )
        },
        "/cluster/leave": {
            "post": _op(
                "Make a member leave: {node}. Its partitions move to the others; it stops "
                "once they have them",
                [],
                {"200": "{result}", "400": "not a member, or the last one"},
                _JSON,
            )
        },
        "/cluster/replace": {
            "post": _op(
                "Replace a member (usually dead) with one started with --join: {old, new}",
                [],
                {"200": "{result}", "400": "new has not joined, or old is not a member"},
                _JSON,
            )
        },
        "/metrics": {"get": _op("Prometheus metrics", [], {"200": "text exposition format"})},
        "/openapi.json": {"get": _op("This document", [], {"200": "OpenAPI 3"})},
        "/ui/api/cluster": {
            "get": _op(
                "The console's view: /cluster, every member's counters (cumulative: requests, "
                "latency buckets, events, per-replica write visibility) and the visibility "
                "summed per region pair",
                [],
                {"200": "cluster view"},
            )
        },
        "/ui/api/key/{key}": {
            "get": _op(
                "The key inspector: each replica's own copy (version, type, value, siblings "
                "and their dots, context, TTL) and the merge of them all",
                [_KEY],
                {"200": "{key, partition, replicas, merged}"},
            )
        },
    },
}
