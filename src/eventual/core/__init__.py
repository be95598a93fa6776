"""The sans-IO replica node: ring, coordinator, replica, hints, read repair, anti-entropy.

No I/O here: a ``Node`` is handed requests, peer messages and timers with the current time
and returns ``Effects``. Drivers: ``eventual.sim`` (deterministic simulation) and, later,
the asyncio server.
"""

from eventual.core.consistency import Level
from eventual.core.messages import Effects, Message, Reply, Request, Result, Send, Timer
from eventual.core.node import Node, NodeConfig
from eventual.core.record import Kind, Record, WrongTypeError
from eventual.core.ring import Member, Ring
from eventual.core.store import Batch, Hint, MemoryStore, Store

__all__ = [
    "Batch",
    "Effects",
    "Hint",
    "Kind",
    "Level",
    "Member",
    "MemoryStore",
    "Message",
    "Node",
    "NodeConfig",
    "Record",
    "Reply",
    "Request",
    "Result",
    "Ring",
    "Send",
    "Store",
    "Timer",
    "WrongTypeError",
]
