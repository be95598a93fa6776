"""SWIM at scale: many members, one killed, how long until everyone knows and at what cost.

Only the failure detector runs here (``core.swim.Swim``), so a thousand members simulate in
seconds. ``SwimCluster`` delivers each message after a seeded delay (``latency_ms`` to twice
that), loses a fraction ``loss`` of them, and can cut single links and pause members.

``detect_failure`` stops one member at ``kill_at_ms`` (it neither sends nor receives) and
measures, in protocol periods (SWIM's rounds) from the kill:

- ``first_suspect``: some member suspects it (SWIM expects about e/(e-1) periods);
- ``first_dead``: some member declares it dead (that plus the suspicion timeout);
- ``all_dead``: every live member holds it dead (that plus dissemination, O(log n)).

Also: messages sent per member per period, and false positives (live members that some live
member held dead at the end), which must stay at zero.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from eventual.core.swim import Status, Swim, SwimConfig, SwimMessage

__all__ = ["Detection", "SwimCluster", "detect_failure"]

EVENTS_MAX = 50_000_000  # a run that never converges stops here rather than spin forever


class SwimCluster:
    def __init__(
        self,
        nodes: int,
        seed: int,
        config: SwimConfig | None = None,
        latency_ms: int = 5,
        loss: float = 0.0,
    ) -> None:
        self.config = config or SwimConfig()
        self.rng = random.Random(seed)
        self.names = [f"m{i}" for i in range(nodes)]
        self.members = {
            name: Swim(
                name,
                self.names,
                self.config,
                self.rng.getrandbits(64),
                self.rng.randrange(self.config.period_ms),
            )
            for name in self.names
        }
        self.latency_ms = latency_ms
        self.loss = loss
        self.now = 0
        self.paused: set[str] = set()
        self.cut_links: set[frozenset[str]] = set()
        # (time, order, member, sender, message or None for a tick): order breaks ties.
        self.queue: list[tuple[int, int, str, str, SwimMessage | None]] = []
        self.order = 0
        self.events = 0
        for name, swim in self.members.items():
            self._push(swim.next_period_ms, name, "", None)

    def _push(self, at: int, member: str, sender: str, message: SwimMessage | None) -> None:
        self.order += 1
        heapq.heappush(self.queue, (at, self.order, member, sender, message))

    def _send(self, sender: str, out: list[tuple[str, SwimMessage]]) -> None:
        for to, message in out:
            if self.rng.random() >= self.loss:
                delay = self.rng.randint(self.latency_ms, 2 * self.latency_ms)
                self._push(self.now + delay, to, sender, message)

    def pause(self, name: str) -> None:
        """Stop ``name``: it neither runs nor hears (a SIGSTOP, or a crash if never resumed)."""
        self.paused.add(name)

    def resume(self, name: str) -> None:
        self.paused.discard(name)
        self._push(self.now, name, "", None)

    def cut(self, a: str, b: str) -> None:
        self.cut_links.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cut_links.clear()

    def step(self) -> str | None:
        """Run the next event; the member it concerned, or None when nothing is left."""
        if not self.queue or self.events >= EVENTS_MAX:
            return None
        at, _, name, sender, message = heapq.heappop(self.queue)
        self.now = max(self.now, at)
        self.events += 1
        swim = self.members[name]
        if message is None:
            if name in self.paused:
                return name  # its ticks stop; resume() restarts them
            self._send(name, swim.tick(self.now))
            self._push(max(self.now + 1, swim.next_deadline_ms()), name, "", None)
        else:
            if name in self.paused or sender in self.paused:
                return name  # a paused member's messages in flight are lost too
            if frozenset((name, sender)) in self.cut_links:
                return name
            self._send(name, swim.receive(sender, message, self.now))
        return name

    def run_until(self, at_ms: int) -> None:
        while self.queue and self.queue[0][0] <= at_ms and self.step() is not None:
            pass
        self.now = max(self.now, at_ms)

    def view(self, of: str) -> Status:
        """``of`` as the other live members see it, if they agree; else SUSPECT."""
        seen = {
            m.status(of)
            for name, m in self.members.items()
            if name != of and name not in self.paused
        }
        return seen.pop() if len(seen) == 1 else Status.SUSPECT

    def messages_sent(self) -> int:
        return sum(m.messages_sent for m in self.members.values())


@dataclass(frozen=True, slots=True)
class Detection:
    nodes: int
    seed: int
    first_suspect: float  # periods after the kill
    first_dead: float
    all_dead: float
    messages_per_node_per_period: float
    false_positives: int


def detect_failure(
    nodes: int,
    seed: int,
    *,
    config: SwimConfig | None = None,
    latency_ms: int = 5,
    loss: float = 0.0,
    kill_at_ms: int = 5_000,
    deadline_periods: int = 200,
) -> Detection:
    cluster = SwimCluster(nodes, seed, config, latency_ms, loss)
    period = cluster.config.period_ms
    victim = cluster.names[cluster.rng.randrange(nodes)]
    cluster.run_until(kill_at_ms)
    cluster.pause(victim)
    sent_before = cluster.messages_sent()
    live = [n for n in cluster.names if n != victim]
    unaware = set(live)  # live members not yet holding the victim dead
    first_suspect = first_dead = all_dead = None
    end_ms = kill_at_ms + deadline_periods * period
    while cluster.now <= end_ms:
        name = cluster.step()
        if name is None:
            break
        status = cluster.members[name].status(victim)
        if first_suspect is None and status is not Status.ALIVE and name != victim:
            first_suspect = cluster.now
        if status is Status.DEAD and name != victim:
            first_dead = first_dead or cluster.now
            unaware.discard(name)
            if not unaware:
                all_dead = cluster.now
                break
    false_positives = sum(
        1 for n in live if any(cluster.members[o].status(n) is Status.DEAD for o in live)
    )
    elapsed = (all_dead or end_ms) - kill_at_ms

    def periods(at: int | None) -> float:
        return float("inf") if at is None else (at - kill_at_ms) / period

    return Detection(
        nodes,
        seed,
        periods(first_suspect),
        periods(first_dead),
        periods(all_dead),
        (cluster.messages_sent() - sent_before) / len(live) / max(elapsed / period, 1e-9),
        false_positives,
    )
