"""The Python client: ``Client`` (blocking, standard library only) and ``AsyncClient``
(asyncio, aiohttp), over the HTTP API.

Objects come back as ``Read``: a value, or siblings when concurrent writes left several, and
the causal context to write back with. Give a ``resolver`` (siblings -> one value) and a read
with siblings is resolved, and with ``write_back=True`` the resolution is written with the
read's context, so the siblings collapse everywhere.

Requests that fail for a reason worth retrying (no connection, 503: not enough replicas) are
retried ``retries`` times with exponential backoff and jitter; the rest raise ``ClientError``
at once.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AsyncClient", "Client", "ClientError", "Read", "Sibling"]

CONTEXT_HEADER = "X-Causal-Context"
RETRYABLE = {502, 503, 504}


def _not_http(url: str, error: Exception) -> str:
    answer = str(error).strip()[:80]  # what came back instead (a Redis error line, say)
    return (
        f"{url} does not answer HTTP (it said {answer!r}); give a node's HTTP address (its "
        "--http; 8001-8003 in a dev cluster), not its Redis or internode port"
    )


class ClientError(Exception):
    """``status``: the node's HTTP status, or 0 when no node answered (its message says why)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}" if status else message)


@dataclass(frozen=True)
class Sibling:
    value: bytes
    content_type: str


@dataclass(frozen=True)
class Read:
    """An object read: ``value`` when there is one version, ``siblings`` when several."""

    value: bytes | None
    context: str | None
    siblings: list[Sibling] = field(default_factory=list)
    content_type: str | None = None

    @property
    def found(self) -> bool:
        return self.value is not None or bool(self.siblings)


Resolver = Callable[[list[Sibling]], bytes]


def _read(status: int, headers: dict[str, str], body: bytes) -> Read:
    context = headers.get(CONTEXT_HEADER.lower()) or headers.get(CONTEXT_HEADER)
    if status == 404:
        return Read(None, context)
    if status == 300:
        data = json.loads(body)
        siblings = [
            Sibling(base64.b64decode(s["value_base64"]), s["content_type"])
            for s in data["siblings"]
        ]
        return Read(None, data.get("context") or context, siblings)
    content_type = headers.get("content-type") or headers.get("Content-Type")
    return Read(body, context, [], content_type)


def _query(consistency: str | None) -> str:
    return "" if consistency is None else "?" + urllib.parse.urlencode({"consistency": consistency})


def _put_request(
    key: str, context: str | None, content_type: str, consistency: str | None
) -> tuple[str, dict[str, str]]:
    headers = {"Content-Type": content_type}
    if context:
        headers[CONTEXT_HEADER] = context
    return f"/kv/{urllib.parse.quote(key, safe='')}{_query(consistency)}", headers


def _delay(attempt: int, backoff: float) -> float:
    return backoff * float(1 << attempt) * (0.5 + random.random())  # jitter, not secrets


def _auth(password: str | None) -> dict[str, str]:
    """The header that carries the nodes' ``--password`` (none if there is no password)."""
    password = password if password is not None else os.environ.get("EVENTUAL_PASSWORD")
    return {"Authorization": f"Bearer {password}"} if password else {}


class Client:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8001",
        retries: int = 3,
        backoff: float = 0.05,
        timeout: float = 10.0,
        password: str | None = None,
    ) -> None:
        """``password``: the nodes' ``--password``, sent as a bearer token (default:
        ``$EVENTUAL_PASSWORD``)."""
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.auth = _auth(password)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                self.url + path, data=body, method=method, headers={**(headers or {}), **self.auth}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, dict(response.headers), response.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
                if status in (300, 404):
                    return status, dict(error.headers), payload
                if status not in RETRYABLE or attempt == self.retries:
                    raise ClientError(status, payload.decode(errors="replace")) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                if attempt == self.retries:
                    raise ClientError(0, f"cannot reach {self.url}: {error}") from None
            except http.client.HTTPException as error:  # an answer, but not HTTP: no retry
                raise ClientError(0, _not_http(self.url, error)) from None
            time.sleep(_delay(attempt, self.backoff))
        raise AssertionError("unreachable")

    # --- objects ---

    def get(
        self,
        key: str,
        consistency: str | None = None,
        resolver: Resolver | None = None,
        write_back: bool = False,
    ) -> Read:
        path = f"/kv/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        read = _read(*self._request("GET", path))
        if read.siblings and resolver is not None:
            value = resolver(read.siblings)
            if write_back:
                context = self.put(key, value, context=read.context, consistency=consistency)
                return Read(value, context)
            return Read(value, read.context)
        return read

    def put(
        self,
        key: str,
        value: bytes,
        context: str | None = None,
        content_type: str = "application/octet-stream",
        consistency: str | None = None,
    ) -> str | None:
        """Write an object; returns the new causal context."""
        path, headers = _put_request(key, context, content_type, consistency)
        _, response_headers, _ = self._request("PUT", path, value, headers)
        return response_headers.get(CONTEXT_HEADER)

    def delete(self, key: str, context: str | None = None, consistency: str | None = None) -> None:
        headers = {CONTEXT_HEADER: context} if context else {}
        self._request(
            "DELETE", f"/kv/{urllib.parse.quote(key, safe='')}{_query(consistency)}", None, headers
        )

    # --- CRDTs ---

    def crdt(
        self, kind: str, key: str, operation: dict[str, Any], consistency: str | None = None
    ) -> Any:
        path = f"/crdt/{kind}/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        body = json.dumps(operation).encode()
        _, _, payload = self._request("POST", path, body, {"Content-Type": "application/json"})
        return json.loads(payload)["result"]

    def value(self, kind: str, key: str, consistency: str | None = None) -> Any:
        path = f"/crdt/{kind}/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        status, _, payload = self._request("GET", path)
        return None if status == 404 else json.loads(payload)["value"]

    def incr(self, key: str, amount: int = 1) -> int:
        return int(self.crdt("counter", key, {"increment": amount}))

    def cluster(self) -> dict[str, Any]:
        _, _, payload = self._request("GET", "/cluster")
        result: dict[str, Any] = json.loads(payload)
        return result

    def console_view(self) -> dict[str, Any]:
        """``/ui/api/cluster``: ``cluster()`` and every member's counters (docs/console.md)."""
        _, _, payload = self._request("GET", "/ui/api/cluster")
        result: dict[str, Any] = json.loads(payload)
        return result

    def leave(self, node: str) -> str:
        """Make ``node`` leave the cluster (its partitions move to the others)."""
        return self._cluster_change("leave", {"node": node})

    def replace(self, old: str, new: str) -> str:
        """Hand ``old``'s place to ``new``, a node started with ``--join``."""
        return self._cluster_change("replace", {"old": old, "new": new})

    def _cluster_change(self, action: str, body: dict[str, str]) -> str:
        _, _, payload = self._request(
            "POST",
            f"/cluster/{action}",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        return str(json.loads(payload)["result"])


class AsyncClient:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8001",
        retries: int = 3,
        backoff: float = 0.05,
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.auth = _auth(password)
        self._session: Any = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        import aiohttp  # noqa: PLC0415  (only the async client needs it)

        if self._session is None:
            self._session = aiohttp.ClientSession()
        for attempt in range(self.retries + 1):
            try:
                async with self._session.request(
                    method, self.url + path, data=body, headers={**(headers or {}), **self.auth}
                ) as response:
                    payload = await response.read()
                    if response.status < 400 or response.status == 404:
                        return response.status, dict(response.headers), payload
                    if response.status not in RETRYABLE or attempt == self.retries:
                        raise ClientError(response.status, payload.decode(errors="replace"))
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                if attempt == self.retries:
                    raise ClientError(0, f"cannot reach {self.url}: {error}") from None
            await asyncio.sleep(_delay(attempt, self.backoff))
        raise AssertionError("unreachable")

    async def get(
        self, key: str, consistency: str | None = None, resolver: Resolver | None = None
    ) -> Read:
        path = f"/kv/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        read = _read(*await self._request("GET", path))
        if read.siblings and resolver is not None:
            return Read(resolver(read.siblings), read.context)
        return read

    async def put(
        self,
        key: str,
        value: bytes,
        context: str | None = None,
        content_type: str = "application/octet-stream",
        consistency: str | None = None,
    ) -> str | None:
        path, headers = _put_request(key, context, content_type, consistency)
        _, response_headers, _ = await self._request("PUT", path, value, headers)
        return response_headers.get(CONTEXT_HEADER)

    async def incr(self, key: str, amount: int = 1) -> int:
        return int(await self.update("counter", key, {"increment": amount}))

    async def cluster(self) -> dict[str, Any]:
        _, _, payload = await self._request("GET", "/cluster")
        state: dict[str, Any] = json.loads(payload)
        return state

    async def update(
        self, kind: str, key: str, operation: dict[str, Any], consistency: str | None = None
    ) -> Any:
        """One CRDT operation (``docs/data-types.md``); its result."""
        path = f"/crdt/{kind}/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        _, _, payload = await self._request(
            "POST", path, json.dumps(operation).encode(), {"Content-Type": "application/json"}
        )
        return json.loads(payload)["result"]

    async def read(self, kind: str, key: str, consistency: str | None = None) -> dict[str, Any]:
        """A CRDT's value (and, for bounded counters, ``rights`` per node); {} if absent."""
        path = f"/crdt/{kind}/{urllib.parse.quote(key, safe='')}{_query(consistency)}"
        status, _, payload = await self._request("GET", path)
        found: dict[str, Any] = json.loads(payload) if status == 200 else {}
        return found
