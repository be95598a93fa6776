"""A node's log: one line per event, on stderr, structured.

Every line carries the time (UTC, ISO 8601), the level, the node's id, the logger and the
message; an event the core reported (``NodeBase.events``: peers alive, suspect or dead, a
refutation, members joining, active, leaving or left, a finished ring change, a finished
handoff) carries its name and its fields too. ``--log-format text`` (the default) writes
``key=value`` pairs, quoting values that need it; ``--log-format json`` writes one JSON object a
line, for a collector. A traceback stays on its line (as an escaped string), so a line is
always one event.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["LOG_FORMATS", "EventFormatter", "setup_logging"]

LOG_FORMATS = ("text", "json")
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/@-+")


def _text(value: object) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if shown and all(c in _BARE for c in shown):
        return shown
    return json.dumps(shown)


class EventFormatter(logging.Formatter):
    def __init__(self, node: str, style: str = "text") -> None:
        super().__init__()
        if style not in LOG_FORMATS:
            raise ValueError(f"log format {style!r}: one of {', '.join(LOG_FORMATS)}")
        self.node = node
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": self.node,
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            fields["event"] = event
        fields["msg"] = record.getMessage()
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            for name, value in extra.items():
                fields.setdefault(str(name), value)
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(fields, default=str)
        return " ".join(f"{name}={_text(value)}" for name, value in fields.items())


def setup_logging(node: str, style: str = "text") -> None:
    """Send every logger's INFO and above to stderr, one structured line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EventFormatter(node, style))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
