"""How the HTTP API stores an object's value: its content type with its body, so a read
serves what was written (``/kv/{key}``; the console shows the same)."""

from __future__ import annotations

import msgpack

from eventual.codec import pack

__all__ = ["decode_object", "encode_object"]


def encode_object(content_type: str, body: bytes) -> bytes:
    return pack([content_type, body])


def decode_object(value: object) -> tuple[str, bytes]:
    """(content type, body) of a stored object value; raw bytes read as octet-stream."""
    if isinstance(value, bytes):
        try:
            content_type, body = msgpack.unpackb(value, raw=False)
            if isinstance(content_type, str) and isinstance(body, bytes):
                return content_type, body
        except Exception:  # a value not written through this API: serve it as it is
            pass
        return "application/octet-stream", value
    return "application/octet-stream", str(value).encode()
