"""Routing a client's request (Riak's request routing, Dynamo's coordinator selection): check
it, find the key's primaries, and hand it to the read path (``core/get.py``), the write path
(``core/put.py``) when this node is a primary, or forward it to a live primary, one in this
node's region first. A write none of the primaries can take is coordinated here as a fallback
(sloppy quorum).
"""

from __future__ import annotations

from mypy_extensions import trait

from eventual.core.base import (
    CLIENT,
    KEY_BYTES_MAX,
    PENDING_MAX,
    NodeBase,
    Origin,
    _PendingForward,
    carried_bytes,
)
from eventual.core.messages import Effects, Forward, Request, Result, Timer
from eventual.core.ops import Get

# Redis's word for "not ready yet" (it answers -LOADING while it loads its data set); clients
# such as redis-py retry it as a connection error.
NOT_SERVING = "LOADING this node is joining the cluster and has not heard from it yet"


@trait
class Router(NodeBase):
    def request(self, request: Request, now_ms: int) -> Effects:
        self.now = now_ms
        effects = Effects()
        error = self._validate(request)
        if error:
            effects.reply(request.id, Result(False, error=error))
        elif not self.serving():
            effects.reply(request.id, Result(False, error=NOT_SERVING))
        elif len(self.pending) >= PENDING_MAX:
            effects.reply(
                request.id, Result(False, error="overloaded: too many requests in flight")
            )
        else:
            self._route(effects, (CLIENT, request.id), request)
        return effects

    def serving(self) -> bool:
        """Whether this node may serve clients: not while it joins and has not yet heard
        from the cluster, when its view is a ring of itself alone (a read there would find
        nothing, and a write would stay on a node that owns no partition)."""
        return not (self.config.join and not self.peers)

    def _validate(self, request: Request) -> str | None:
        key = request.op.key
        if not isinstance(key, bytes) or not key:
            return "ERR keys are non-empty byte strings"
        if len(key) > KEY_BYTES_MAX:
            return f"ERR key is {len(key)} bytes, more than the limit of {KEY_BYTES_MAX}"
        n = self._n(request)
        if not 1 <= n <= len(self.ring.order):
            return f"ERR n must be in [1, {len(self.ring.order)}], got {n}"
        if request.r is None and request.w is None:
            return None
        for name, count in (("r", request.r), ("w", request.w)):
            if count is not None and not 1 <= count <= n:
                return f"ERR {name} must be in [1, {n}], got {count}"
        return None

    def _route(self, effects: Effects, origin: Origin, request: Request) -> None:
        op = request.op
        partition = self.ring.partition_of(op.key)
        primaries = self.ring.preference_list(partition, self._n(request))
        if isinstance(op, Get):
            self._read(effects, origin, request, partition, primaries)
        elif self.id in primaries:
            self._coordinate(effects, origin, request, partition, primaries, fallback=False)
        else:
            # A primary in this node's region first: a shorter trip, and a bounded counter
            # spends the rights of the region the request came from.
            live = sorted(
                (p for p in primaries if self.up(p)),
                key=lambda p: self.region_of.get(p) != self.region,
            )
            if live:
                forward_id = self._id()
                self.pending[forward_id] = _PendingForward(origin, live[0])
                effects.send(live[0], Forward(forward_id, request), early=True)  # nothing of ours
                # The primary may itself wait a full request timeout for its replicas.
                timeout = self._timeout_ms(carried_bytes(op)) * 2
                effects.after(timeout, Timer("timeout", forward_id))
            else:
                self._coordinate(effects, origin, request, partition, primaries, fallback=True)
