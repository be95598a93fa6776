"""Redis pub/sub, cluster-wide: a message published at any node reaches the subscribers of
every node, at most once each, while the links between them are up.

Each node keeps its own subscribers (channels and patterns, ``PubSub``); nothing is stored
or replicated. ``PUBLISH`` delivers to this node's subscribers and sends one ``Publish``
message to each peer that is up, whose runtime delivers it to its own: one hop, so no
message is delivered twice, and none is queued for a peer that is down (fire and forget, as
Redis's pub/sub: a subscriber that is not connected misses what is published meanwhile).
Messages from one publisher reach one subscriber in the order they were published (one TCP
link per pair of nodes); messages from two publishers on two nodes are in no agreed order.

A subscriber that does not read its messages is bounded as any client is, by its output
limit (``limits.ClientLimits``): past it, it is closed, as Redis closes a slow pub/sub
client at its ``client-output-buffer-limit pubsub``.
"""

from __future__ import annotations

import fnmatch
from typing import Protocol

__all__ = ["PubSub", "Subscriber"]


class Subscriber(Protocol):
    def deliver(self, pattern: bytes | None, channel: bytes, message: bytes) -> None:
        """Send ``message`` (published on ``channel``, matched by ``pattern`` if any)."""


class PubSub:
    """This node's subscribers: channel -> clients, pattern -> clients."""

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Subscriber, None]] = {}
        self.patterns: dict[bytes, dict[Subscriber, None]] = {}

    def subscribe(self, client: Subscriber, channel: bytes) -> None:
        self.channels.setdefault(channel, {})[client] = None

    def unsubscribe(self, client: Subscriber, channel: bytes) -> None:
        _drop(self.channels, channel, client)

    def psubscribe(self, client: Subscriber, pattern: bytes) -> None:
        self.patterns.setdefault(pattern, {})[client] = None

    def punsubscribe(self, client: Subscriber, pattern: bytes) -> None:
        _drop(self.patterns, pattern, client)

    def deliver(self, channel: bytes, message: bytes) -> int:
        """Hand ``message`` to this node's subscribers of ``channel`` and of the patterns
        it matches; how many deliveries were made (as PUBLISH counts them)."""
        delivered = 0
        for client in list(self.channels.get(channel, ())):
            client.deliver(None, channel, message)
            delivered += 1
        for pattern, clients in list(self.patterns.items()):
            if fnmatch.fnmatchcase(channel, pattern):
                for client in list(clients):
                    client.deliver(pattern, channel, message)
                    delivered += 1
        return delivered

    def active_channels(self, pattern: bytes | None) -> list[bytes]:
        return sorted(
            channel
            for channel in self.channels
            if pattern is None or fnmatch.fnmatchcase(channel, pattern)
        )

    def subscribers(self, channel: bytes) -> int:
        return len(self.channels.get(channel, ()))


def _drop(table: dict[bytes, dict[Subscriber, None]], name: bytes, client: Subscriber) -> None:
    clients = table.get(name)
    if clients is not None:
        clients.pop(client, None)
        if not clients:
            del table[name]
