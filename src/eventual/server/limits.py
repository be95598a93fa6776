"""What Redis clients may hold of a node: the limits, and the count kept against them.

Apart from ``resp`` so that the command line can show the defaults without loading the
server. ``docs/security.md`` lists every limit of every port.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventual.core.ops import STRING_BYTES_MAX

__all__ = [
    "BULK_BYTES_MAX",
    "MAXCLIENTS",
    "OUTPUT_BUFFER_BYTES",
    "QUERY_BUFFER_BYTES",
    "ClientLimits",
    "Clients",
]

# Twice the largest string a node stores: a value over that limit (ops.STRING_BYTES_MAX) still
# arrives whole and gets a clear error; the query buffer limit is what bounds a command.
BULK_BYTES_MAX = 2 * STRING_BYTES_MAX
MAXCLIENTS = 10_000  # Redis's default
QUERY_BUFFER_BYTES = BULK_BYTES_MAX + 1024 * 1024
OUTPUT_BUFFER_BYTES = BULK_BYTES_MAX + 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one Redis client may hold of a node, and all of them together (``docs/security.md``).

    Each limit is Redis's own where Redis has one; the figures are defaults that
    ``eventual node`` options change."""

    # Connections at once; past it a new one is told so and closed (Redis: maxclients). A
    # node also lowers it to what its file-descriptor limit allows.
    maxclients: int = MAXCLIENTS
    # One command not yet complete, in bytes: a client sending more is closed (Redis:
    # client-query-buffer-limit). It holds the largest bulk string, with room to spare.
    query_buffer_bytes: int = QUERY_BUFFER_BYTES
    # Before AUTH, a command may be this big (Redis caps unauthenticated commands at 10
    # arguments of 16 KiB); an outsider cannot make a node hold more than this of its input.
    preauth_query_bytes: int = 16 * 1024
    # Incomplete commands of every client together: the one that would cross it is closed.
    query_total_bytes: int = 512 * 1024 * 1024
    # Replies a client has not read, in bytes: past ``output_pause_bytes`` the node stops
    # reading that client's commands until it reads; a client whose unread replies pass
    # ``output_buffer_bytes`` (a reply of the largest string fits), or that has not read for
    # ``output_stall_s`` while over the pause mark, is closed (Redis:
    # client-output-buffer-limit, hard and soft).
    output_pause_bytes: int = 1024 * 1024
    output_buffer_bytes: int = OUTPUT_BUFFER_BYTES
    output_stall_s: float = 60.0


class Clients:
    """The Redis clients of one node: how many, and what their incomplete commands hold."""

    def __init__(self, limits: ClientLimits | None = None) -> None:
        self.limits = limits or ClientLimits()
        self.open = 0
        self.query_bytes = 0  # incomplete commands, every client
        self.refused = 0  # connections refused at maxclients
        self.closed_for_limits = 0  # clients closed for a query or output buffer limit
        self.connections = 0  # connections accepted, ever (INFO stats)
        self.commands = 0  # commands run, ever (INFO stats)
