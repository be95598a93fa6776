"""A small social network on Eventual, written as any app would write it: against the Redis
face, with redis-py, nothing of Eventual's own (``docs/social.md``).

Each region's app talks to its region's node at ``CONSISTENCY ONE``: reads and writes stay
in the region and keep working while it is cut off, and the cluster merges afterwards.
What it stores, and what each piece of data merges as:

| key | type | holds | concurrent changes |
|---|---|---|---|
| ``user:{name}`` | hash | name, home region | last writer wins, per field |
| ``following:{name}``, ``followers:{name}`` | sets | who follows whom | add wins |
| ``post:{id}`` | hash | author, text, region | written once |
| ``posts:{name}`` | list | the author's posts, newest first | every push lands |
| ``likes:{id}`` | string | the like count (INCR) | every increment counts |
| ``timeline:{name}`` | sorted set | post ids by time (fan-out on write) | every add lands |

(Add wins: a follow racing an unfollow stays.)

A post is fanned out when it is written: the author's app adds it to the timeline of each
follower it knows of (its region's copy of ``followers:{author}``).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

__all__ = ["Social"]

_SEQUENCE = itertools.count(1)  # post ids: unique per app process, with its region's name


class Social:
    """One region's app: a redis-py client of that region's node."""

    def __init__(self, region: str, address: str) -> None:
        try:
            import redis  # noqa: PLC0415  (the app's one need beyond the store)
        except ImportError:
            raise SystemExit(
                "the social app talks to Eventual through redis-py: pip install redis "
                "(it comes with pip install -e '.[dev]')"
            ) from None

        host, port = address.rsplit(":", 1)
        self.region = region
        # redis-py's own type hints are too loose to check replies by: decoded text, as Any.
        client: Any = redis.Redis(
            host=host, port=int(port), socket_timeout=10, decode_responses=True
        )
        client.execute_command("CONSISTENCY", "ONE")  # local reads and writes
        self.client = client

    def close(self) -> None:
        self.client.close()

    # --- writes ---

    def join(self, name: str) -> None:
        self.client.hset(f"user:{name}", mapping={"name": name, "region": self.region})

    def follow(self, name: str, other: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(f"following:{name}", other)
        pipe.sadd(f"followers:{other}", name)
        pipe.execute()

    def unfollow(self, name: str, other: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.srem(f"following:{name}", other)
        pipe.srem(f"followers:{other}", name)
        pipe.execute()

    def post(self, author: str, text: str) -> str:
        """Write a post and fan it out to the author's followers' timelines; its id."""
        post_id = f"{self.region}-{next(_SEQUENCE)}"
        at = time.time()
        followers = list(self.client.smembers(f"followers:{author}"))
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(
            f"post:{post_id}",
            mapping={"author": author, "text": text, "region": self.region, "at": repr(at)},
        )
        pipe.lpush(f"posts:{author}", post_id)
        for reader in [author, *followers]:
            pipe.zadd(f"timeline:{reader}", {post_id: at})
        pipe.execute()
        return post_id

    def like(self, post_id: str) -> int:
        return int(self.client.incr(f"likes:{post_id}"))

    # --- reads ---

    def followers(self, name: str) -> set[str]:
        return set(self.client.smembers(f"followers:{name}"))

    def following(self, name: str) -> set[str]:
        return set(self.client.smembers(f"following:{name}"))

    def likes(self, post_id: str) -> int:
        return int(self.client.get(f"likes:{post_id}") or 0)

    def timeline(self, name: str, count: int = 100) -> list[str]:
        """The newest ``count`` posts on ``name``'s timeline, newest first."""
        return list(self.client.zrevrange(f"timeline:{name}", 0, count - 1))

    def posts_of(self, name: str) -> list[str]:
        return list(self.client.lrange(f"posts:{name}", 0, -1))

    def read_post(self, post_id: str) -> dict[str, Any]:
        return dict(self.client.hgetall(f"post:{post_id}"))
