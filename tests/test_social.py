"""``eventual demo social`` in CI (issue: the social network): its checks hold under the
partition it stages, and what it prints is what it read."""

from __future__ import annotations

from eventual.social.demo import run_social_demo


def test_the_social_demo_keeps_every_follow_like_and_post_across_a_partition() -> None:
    lines: list[str] = []
    assert run_social_demo(latency_ms=100, echo=lines.append), "\n".join(lines)
    text = "\n".join(lines)
    assert "check: no lost follow: yes" in text
    assert "check: like counts equal the 80 likes made: yes" in text
    assert "check: every region's timeline holds every post: yes" in text
    assert "{'US-EAST': 80, 'EU-WEST': 80, 'AP-SOUTH': 80}" in text
    rows = text.splitlines()
    during = rows.index("  during the partition: posts on each timeline, as each region reads it")
    ap_side = [row.split()[-1] for row in rows[during + 2 : during + 6]]
    us_side = [row.split()[1] for row in rows[during + 2 : during + 6]]
    assert ap_side == ["5"] * 4 and us_side == ["3"] * 4  # each side saw only its own posts
