"""``eventual demo social``: a social network in three regions, told by real processes.

It starts a 3-node cluster with one node in each of US-EAST, EU-WEST and AP-SOUTH,
``latency_ms`` apart, and one app per region (``social/app.py``: redis-py against that
region's node, at ONE). Then it plays a script; everything it prints is read from the
cluster:

1. Four people join, each in a home region, and follow each other.
2. alice posts in US-EAST: dana, in the same region, has it on her timeline at once;
   chandra, in AP-SOUTH, a replication lag later (measured).
3. A follow and an unfollow that race: dana unfollows bruno in US-EAST while, at the same
   moment, she follows him again in EU-WEST. Followers are an add-wins set: the follow
   stays, in every region.
4. Likes in two regions at once: alice's post is liked 40 times in US-EAST and 40 times in
   EU-WEST, concurrently. Every region counts 80.
5. AP-SOUTH is cut off. chandra keeps posting there; alice posts in US-EAST. Each side
   sees only its own posts.
6. The partition heals. Every region's timeline of every person holds every post.

Exit status 0 if the checks hold (no lost follow, like counts equal the likes made, every
region's timeline holds every post), 1 if they do not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from eventual.inventory.demo import REGIONS, partition, region_cluster
from eventual.social.app import Social

__all__ = ["run_social_demo"]

PEOPLE = {"alice": "region-1", "dana": "region-1", "bruno": "region-2", "chandra": "region-3"}
LIKES_PER_REGION = 40
CONVERGE_S_MAX = 15.0  # the story waits this long for a change to reach every region


def _until(condition: Callable[[], bool], seconds: float = CONVERGE_S_MAX) -> float | None:
    """Wait for ``condition``; the seconds it took, or None if it did not hold in time."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            return None
        time.sleep(0.01)
    return time.monotonic() - start


class _Story:
    def __init__(self, apps: dict[str, Social], echo: Callable[[str], None]) -> None:
        self.apps = apps
        self.echo = echo
        self.posts: list[str] = []
        self.checks: dict[str, bool] = {}

    def app(self, person: str) -> Social:
        return self.apps[PEOPLE[person]]

    def timelines(self, title: str) -> None:
        """Print how many posts each person's timeline holds, as each region reads it."""
        self.echo(f"\n  {title}: posts on each timeline, as each region reads it")
        self.echo(f"  {'':<9}" + "".join(f"{name:>10}" for name in REGIONS.values()))
        for person in PEOPLE:
            row = "".join(f"{len(self.apps[region].timeline(person)):>10}" for region in REGIONS)
            self.echo(f"  {person:<9}{row}")

    def everywhere(self, read: Callable[[Social], object], expected: object) -> bool:
        return all(read(app) == expected for app in self.apps.values())

    def each_everywhere(
        self, read: Callable[[Social, str], object], expected: Callable[[str], object]
    ) -> bool:
        """Whether every region reads ``expected(person)`` for every person."""
        return all(
            read(app, person) == expected(person) for app in self.apps.values() for person in PEOPLE
        )

    def check(self, name: str, held: bool) -> None:
        self.checks[name] = held
        self.echo(f"  check: {name}: {'yes' if held else 'NO'}")


def _play(
    apps: dict[str, Social], urls: dict[str, str], latency_ms: int, echo: Callable[[str], None]
) -> bool:
    story = _Story(apps, echo)
    us, eu, ap = REGIONS
    echo("1. alice and dana join in US-EAST, bruno in EU-WEST, chandra in AP-SOUTH;")
    echo("   everyone follows everyone, each from their home region.")
    for person in PEOPLE:
        story.app(person).join(person)
    for person in PEOPLE:
        for other in PEOPLE:
            if other != person:
                story.app(person).follow(person, other)
    everyone = {p: set(PEOPLE) - {p} for p in PEOPLE}

    def follows_known() -> bool:
        return story.each_everywhere(Social.followers, everyone.__getitem__)

    took = _until(follows_known)
    echo(f"  -> every region knows every follow after {1000 * (took or CONVERGE_S_MAX):.0f} ms")

    echo(f"\n2. alice posts in US-EAST; the regions are {latency_ms} ms apart.")
    first = story.app("alice").post("alice", "hello from New York")
    story.posts.append(first)
    here = first in apps[us].timeline("dana")
    echo(f"  -> dana (US-EAST) has it on her timeline at once: {'yes' if here else 'no'}")
    lag = _until(lambda: first in apps[ap].timeline("chandra"))
    if lag is not None:
        echo(f"  -> chandra (AP-SOUTH) has it {1000 * lag:.0f} ms later: the replication lag")
    second = story.app("bruno").post("bruno", "guten Morgen")
    story.posts.append(second)

    echo("\n3. dana unfollows bruno on her phone (US-EAST) and, at the same moment, follows")
    echo("   him again on her laptop (EU-WEST).")
    race = [
        threading.Thread(target=apps[us].unfollow, args=("dana", "bruno")),
        threading.Thread(target=apps[eu].follow, args=("dana", "bruno")),
    ]
    for thread in race:
        thread.start()
    for thread in race:
        thread.join(30)
    settled = _until(
        lambda: (
            story.everywhere(lambda a: "dana" in a.followers("bruno"), True)
            and story.everywhere(lambda a: "bruno" in a.following("dana"), True)
        )
    )
    echo(
        "  -> every region: dana follows bruno (add wins: the follow the unfollow had not "
        "seen stays)"
        if settled is not None
        else "  -> the regions disagree"
    )

    echo(
        f"\n4. alice's post is liked {LIKES_PER_REGION} times in US-EAST and "
        f"{LIKES_PER_REGION} times in EU-WEST, at once."
    )

    def like(region: str) -> None:
        for _ in range(LIKES_PER_REGION):
            apps[region].like(first)

    likers = [threading.Thread(target=like, args=(region,)) for region in (us, eu)]
    for thread in likers:
        thread.start()
    for thread in likers:
        thread.join(60)
    made = 2 * LIKES_PER_REGION
    _until(lambda: story.everywhere(lambda a: a.likes(first), made))
    counts = {REGIONS[region]: app.likes(first) for region, app in apps.items()}
    echo(f"  -> likes, as each region reads them: {counts}")

    echo("\n5. AP-SOUTH is cut off. chandra posts there three times; alice posts in US-EAST.")
    cut_off(urls, True)
    for text in ("monsoon", "chai", "still here"):
        story.posts.append(story.app("chandra").post("chandra", text))
    story.posts.append(story.app("alice").post("alice", "anyone in Mumbai?"))
    time.sleep(latency_ms * 3 / 1000)  # time for US-EAST's post to reach EU-WEST
    story.timelines("during the partition")
    echo("  -> AP-SOUTH has its own posts and not alice's; the others, the reverse")

    echo("\n6. The partition heals.")
    cut_off(urls, False)
    every_post = set(story.posts)

    def timelines_full() -> bool:
        return story.each_everywhere(lambda app, p: set(app.timeline(p)), lambda p: every_post)

    healed = _until(timelines_full)
    story.timelines("after the heal")
    if healed is not None:
        echo(f"  -> every timeline holds all {len(every_post)} posts, {1000 * healed:.0f} ms on")

    echo("\nThe checks, read from every region:")
    story.check("no lost follow", follows_known())
    story.check(
        f"like counts equal the {made} likes made", story.everywhere(lambda a: a.likes(first), made)
    )
    story.check("every region's timeline holds every post", timelines_full())
    return all(story.checks.values())


def cut_off(urls: dict[str, str], cut: bool) -> None:
    """Cut AP-SOUTH's node (n3) off from the others (the transport's partition switch,
    ``--fault-injection``), or heal (``cut`` False)."""
    for region, url in urls.items():
        if region == "region-3":
            partition(url, ["n1", "n2"] if cut else [])
        else:
            partition(url, ["n3"] if cut else [])


def run_social_demo(latency_ms: int = 300, echo: Callable[[str], None] = print) -> bool:
    redis: dict[str, str] = {}
    with region_cluster(latency_ms, "--durability", "os", "--fault-injection", redis=redis) as urls:
        echo(f"A cluster in three regions, {latency_ms} ms apart: {', '.join(REGIONS.values())}")
        apps = {region: Social(region, address) for region, address in redis.items()}
        try:
            return _play(apps, urls, latency_ms, echo)
        finally:
            for app in apps.values():
                app.close()
