"""SWIM failure detection with suspicion, sans-IO (Das, Gupta, Motivala, "SWIM: Scalable
Weakly-consistent Infection-style Process Group Membership Protocol", DSN 2002).

Theory of operation. Every protocol period each member probes one other, taken in turn from a
shuffled list (so every member is probed within a bounded number of periods):

1. ``SwimPing`` to the target; an ``SwimAck`` within ``probe_timeout_ms`` ends the probe.
2. Otherwise ``SwimPingReq`` to ``indirect_probes`` other members, who ping the target on our
   behalf and relay its ack: a lossy link between two members does not make one suspect the
   other.
3. No ack by the end of the period: the target becomes *suspect*. A suspect that does not
   refute within the suspicion timeout, which grows with log n as memberlist's does, is
   *dead*.

What members learn travels as *updates* piggybacked on pings and acks (infection-style
dissemination): each update is sent about ``retransmit_mult * log2(n+1)`` times, fewest-sent
first, at most ``PIGGYBACK_MAX`` per message, so news reaches everyone in O(log n) periods
while each member sends a constant number of messages per period.

A member's state is ``(incarnation, status)`` and the states form a lattice: a higher
incarnation wins, and at equal incarnations dead > suspect > alive. Only the member itself
raises its incarnation: told it is suspect or dead, it *refutes* with ``alive`` at a higher
incarnation. Merging is a max, so the order in which updates arrive does not matter.

Two additions to the paper, both for healing:
- A member tells a peer it holds as suspect or dead so whenever it writes to it, so a member
  that was paused or cut off learns it at its first contact and refutes.
- Each period a member also pings one member it holds dead (a *reconnect probe*, as Serf
  does): after a partition where each side declared the other dead, neither would otherwise
  probe the other again.

No I/O: time comes in as ``now_ms`` and randomness from a seeded generator (SplitMix64),
so the simulator replays a run exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "PIGGYBACK_MAX",
    "Status",
    "Swim",
    "SwimAck",
    "SwimConfig",
    "SwimPing",
    "SwimPingReq",
    "Update",
]

PIGGYBACK_MAX = 8  # updates per message: keeps a ping small whatever the churn
RELAYS_MAX = 1_024  # indirect probes a member relays at once; beyond, it declines new ones
_MASK = (1 << 64) - 1


class Status(IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2


@dataclass(frozen=True, slots=True)
class Update:
    """What a member is known to be: the lattice element gossiped about it."""

    node: str
    incarnation: int
    status: Status

    def supersedes(self, other: Update) -> bool:
        return (self.incarnation, self.status) > (other.incarnation, other.status)


@dataclass(frozen=True, slots=True)
class SwimPing:
    seq: int
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class SwimAck:
    seq: int
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class SwimPingReq:
    """Ping ``target`` for me and relay its ack under my ``seq``."""

    seq: int
    target: str
    updates: tuple[Update, ...]


SwimMessage = SwimPing | SwimAck | SwimPingReq


@dataclass(frozen=True, slots=True)
class SwimConfig:
    period_ms: int = 500
    probe_timeout_ms: int = 200  # a round trip, with room: then ask others
    indirect_probes: int = 3
    suspicion_mult: int = 4  # suspicion timeout = mult * log10(max(n, 10)) * period
    retransmit_mult: int = 3  # each update is piggybacked mult * log2(n + 1) times

    def __post_init__(self) -> None:
        if not 0 < self.probe_timeout_ms < self.period_ms:
            raise ValueError("probe_timeout_ms must be positive and below period_ms")
        if self.indirect_probes < 0 or self.suspicion_mult < 1 or self.retransmit_mult < 1:
            raise ValueError("indirect_probes >= 0, suspicion_mult >= 1, retransmit_mult >= 1")


class _Random:
    """SplitMix64: small, fast, and the same sequence on every platform."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        return self.next() % bound

    def shuffle(self, items: list[str]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


@dataclass
class _Probe:
    target: str
    seq: int
    started_ms: int
    indirect_sent: bool = False
    acked: bool = False


class Swim:
    """One member's view. ``tick`` at least every ``probe_timeout_ms / 2``; hand it every
    SWIM message; send what they return, as ``(to, message)`` pairs."""

    def __init__(
        self, me: str, members: list[str], config: SwimConfig, seed: int, now_ms: int
    ) -> None:
        self.me = me
        self.config = config
        self.random = _Random(seed)
        self.incarnation = 0
        self.states: dict[str, Update] = {m: Update(m, 0, Status.ALIVE) for m in members}
        self.states[me] = Update(me, 0, Status.ALIVE)
        self.suspected_at: dict[str, int] = {}
        self.dead: set[str] = set()
        self.queue: dict[str, tuple[Update, int]] = {}  # node -> (news, times sent so far)
        self.order: list[str] = []
        self.probe: _Probe | None = None
        self.next_period_ms = now_ms
        self.next_seq = 1
        self.relays: dict[int, tuple[str, int]] = {}  # my seq -> (requester, its seq)
        self.changes: list[Update] = []  # status changes since the driver last took them
        self.messages_sent = 0

    # --- reading ---

    def status(self, node: str) -> Status:
        state = self.states.get(node)
        return Status.DEAD if state is None else state.status

    def alive(self, node: str) -> bool:
        """Up for routing: alive or merely suspect (a suspect may well be up)."""
        return self.status(node) is not Status.DEAD

    def members(self) -> list[str]:
        return sorted(self.states)

    def add(self, node: str) -> None:
        """A new member (the cluster state says so): assumed alive until probed."""
        if node not in self.states:
            self.states[node] = Update(node, 0, Status.ALIVE)

    def remove(self, node: str) -> None:
        """A member that left the cluster: no longer probed or gossiped about."""
        if node == self.me or node not in self.states:
            return
        del self.states[node]
        self.suspected_at.pop(node, None)
        self.dead.discard(node)
        self.queue.pop(node, None)
        if node in self.order:
            self.order.remove(node)

    def next_deadline_ms(self) -> int:
        """When ``tick`` has something to do next."""
        deadline = self.next_period_ms
        probe = self.probe
        if probe is not None and not probe.acked and not probe.indirect_sent:
            deadline = min(deadline, probe.started_ms + self.config.probe_timeout_ms)
        if self.suspected_at:
            deadline = min(deadline, min(self.suspected_at.values()) + self._suspicion_timeout_ms())
        return deadline

    def take_changes(self) -> list[Update]:
        changes, self.changes = self.changes, []
        return changes

    # --- driving ---

    def tick(self, now_ms: int) -> list[tuple[str, SwimMessage]]:
        out: list[tuple[str, SwimMessage]] = []
        probe = self.probe
        if (
            probe is not None
            and not probe.acked
            and not probe.indirect_sent
            and (now_ms >= probe.started_ms + self.config.probe_timeout_ms)
        ):
            probe.indirect_sent = True
            helpers = [
                m
                for m in self._others()
                if m != probe.target and self.states[m].status is Status.ALIVE
            ]
            self.random.shuffle(helpers)
            for helper in helpers[: self.config.indirect_probes]:
                out.append((helper, SwimPingReq(probe.seq, probe.target, self._news(helper))))
        if now_ms >= self.next_period_ms:
            if probe is not None and not probe.acked:
                self._suspect(probe.target, now_ms)
            self.probe = None
            self.next_period_ms = now_ms + self.config.period_ms
            self._start_probe(now_ms, out)
        timeout = self._suspicion_timeout_ms()
        for node, since in list(self.suspected_at.items()):
            if now_ms - since >= timeout:
                state = self.states[node]
                self._learn(Update(node, state.incarnation, Status.DEAD), now_ms)
        self.messages_sent += len(out)
        return out

    def receive(
        self, sender: str, message: SwimMessage, now_ms: int
    ) -> list[tuple[str, SwimMessage]]:
        out: list[tuple[str, SwimMessage]] = []
        for update in message.updates:
            self._learn(update, now_ms)
        if isinstance(message, SwimPing):
            out.append((sender, SwimAck(message.seq, self._news(sender))))
        elif isinstance(message, SwimPingReq):
            if len(self.relays) < RELAYS_MAX:
                seq = self._seq()
                self.relays[seq] = (sender, message.seq)
                out.append((message.target, SwimPing(seq, self._news(message.target))))
        else:
            relay = self.relays.pop(message.seq, None)
            if relay is not None:
                requester, their_seq = relay
                out.append((requester, SwimAck(their_seq, self._news(requester))))
            elif self.probe is not None and message.seq == self.probe.seq:
                self.probe.acked = True
        self.messages_sent += len(out)
        return out

    # --- internals ---

    def _seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def _others(self) -> list[str]:
        return [m for m in self.states if m != self.me]

    def _start_probe(self, now_ms: int, out: list[tuple[str, SwimMessage]]) -> None:
        # Relays whose target never answered are abandoned a period later.
        if len(self.relays) > RELAYS_MAX // 2:
            self.relays.clear()
        target = None
        while target is None:
            if not self.order:
                self.order = [m for m in self._others() if m not in self.dead]
                if not self.order:
                    break
                self.random.shuffle(self.order)
            candidate = self.order.pop()
            if candidate not in self.dead:
                target = candidate
        if target is not None:
            self.probe = _Probe(target, self._seq(), now_ms)
            out.append((target, SwimPing(self.probe.seq, self._news(target))))
        if self.dead:  # a reconnect probe: a healed partition or a paused member comes back
            dead = sorted(self.dead)
            lost = dead[self.random.below(len(dead))]
            out.append((lost, SwimPing(self._seq(), self._news(lost))))

    def _suspicion_timeout_ms(self) -> int:
        n = max(len(self.states), 10)
        return int(self.config.suspicion_mult * math.log10(n) * self.config.period_ms)

    def _suspect(self, node: str, now_ms: int) -> None:
        state = self.states.get(node)
        if state is not None and state.status is Status.ALIVE:
            self._learn(Update(node, state.incarnation, Status.SUSPECT), now_ms)

    def _learn(self, update: Update, now_ms: int) -> None:
        node = update.node
        if node == self.me:
            if update.status is not Status.ALIVE:
                # Refute: I am here. Also when my incarnation is already past theirs: the
                # sender has not heard my earlier refutation, so it goes out again.
                self.incarnation = max(self.incarnation, update.incarnation + 1)
                mine = Update(self.me, self.incarnation, Status.ALIVE)
                self.states[self.me] = mine
                self.queue[self.me] = (mine, 0)
            return
        known = self.states.get(node)
        if known is None or not update.supersedes(known):
            return  # who is a member is the cluster state's business, not gossip's
        self.states[node] = update
        self.queue[node] = (update, 0)
        if known.status is not update.status:
            self.changes.append(update)
        if update.status is Status.SUSPECT:
            self.suspected_at.setdefault(node, now_ms)
        else:
            self.suspected_at.pop(node, None)
        if update.status is Status.DEAD:
            self.dead.add(node)
        else:
            self.dead.discard(node)

    def _news(self, to: str) -> tuple[Update, ...]:
        """What to piggyback on a message to ``to``: the least-sent news first, and always
        what we hold against ``to`` itself, so it can refute."""
        limit = self.config.retransmit_mult * max(1, math.ceil(math.log2(len(self.states) + 1)))
        picked: list[Update] = []
        about_them = self.states.get(to)
        if about_them is not None and about_them.status is not Status.ALIVE:
            picked.append(about_them)
        for node, (update, sent) in sorted(self.queue.items(), key=lambda item: item[1][1]):
            if len(picked) >= PIGGYBACK_MAX:
                break
            if node == to and update.status is not Status.ALIVE:
                continue  # already in
            picked.append(update)
            if sent + 1 >= limit:
                del self.queue[node]
            else:
                self.queue[node] = (update, sent + 1)
        return tuple(picked)
