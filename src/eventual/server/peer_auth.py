"""Who may speak on the internode port: a challenge-response handshake on a cluster secret.

Every internode connection starts with three frames, before any core message:

1. the node dialled sends a *challenge*: ``["eventual-peer", 1, challenge]``, 32 random bytes;
2. the dialler answers with its *hello*: ``[name, nonce, proof]``, where ``proof`` is
   HMAC-SHA256(secret, "hello" | challenge | nonce | name) and ``nonce`` 32 random bytes;
3. the node dialled checks the proof and answers ``["ok", proof']``, with
   proof' = HMAC-SHA256(secret, "accept" | nonce | challenge | name), which the dialler checks
   before it sends anything.

So each side shows the other it holds the secret without sending it, a recorded handshake
cannot be replayed (the challenge and the nonce are fresh), and a node never sends its
messages to an impostor listening at a member's address. What the handshake does not do is
sign each frame: an attacker on the path who can inject into an established TCP connection
is stopped by TLS only (``docs/security.md``).

Without a secret a node runs *protected* like Redis's protected mode: it accepts internode
connections from loopback addresses only (a cluster on one machine, tests, ``eventual dev``
makes a secret anyway), and says so in its log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

import msgpack

from eventual.codec import pack

__all__ = [
    "CHALLENGE_BYTES",
    "PeerAuthError",
    "accept_frame",
    "challenge_frame",
    "check_accept",
    "check_hello",
    "hello_frame",
    "is_loopback",
    "load_secret",
]

CHALLENGE_BYTES = 32
SECRET_BYTES_MIN = 16  # a shorter secret is refused: it could be guessed offline from a hello
SECRET_BYTES_MAX = 4096
PROTOCOL = "eventual-peer"
VERSION = 1
NODE_NAME_CHARS_MAX = 128
SECRET_ENV = "EVENTUAL_CLUSTER_SECRET"


class PeerAuthError(Exception):
    """A handshake frame is malformed, or its proof is wrong."""


def load_secret(path: Path | None) -> bytes | None:
    """The cluster secret: the file's contents (surrounding whitespace dropped) if ``path``,
    else ``$EVENTUAL_CLUSTER_SECRET``, else None (protected mode). ValueError if it is too
    short or too long."""
    if path is not None:
        secret = path.read_bytes().strip()
        where = str(path)
    elif os.environ.get(SECRET_ENV):
        secret = os.environ[SECRET_ENV].encode().strip()
        where = f"${SECRET_ENV}"
    else:
        return None
    if not SECRET_BYTES_MIN <= len(secret) <= SECRET_BYTES_MAX:
        raise ValueError(
            f"the cluster secret in {where} has {len(secret)} bytes; "
            f"it needs {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX}"
        )
    return secret


def new_secret() -> bytes:
    """A fresh secret to write to a file (hex: safe in a file and an environment variable)."""
    return os.urandom(32).hex().encode()


def _frame(payload: object) -> bytes:
    body = pack(payload)
    return len(body).to_bytes(4, "big") + body


def _proof(secret: bytes | None, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret or b"", label + b"|" + b"|".join(parts), hashlib.sha256).digest()


def challenge_frame(challenge: bytes) -> bytes:
    return _frame([PROTOCOL, VERSION, challenge])


def read_challenge(body: bytes) -> bytes:
    payload = _unpack(body)
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or payload[0] != PROTOCOL
        or not isinstance(payload[2], bytes)
        or len(payload[2]) != CHALLENGE_BYTES
    ):
        raise PeerAuthError("not an Eventual internode port (no challenge)")
    if payload[1] != VERSION:
        raise PeerAuthError(f"peer protocol version {payload[1]!r}, this node speaks {VERSION}")
    challenge: bytes = payload[2]
    return challenge


def hello_frame(secret: bytes | None, name: str, challenge: bytes, nonce: bytes) -> bytes:
    return _frame([name, nonce, _proof(secret, b"hello", challenge, nonce, name.encode())])


def check_hello(secret: bytes | None, challenge: bytes, body: bytes) -> tuple[str, bytes]:
    """The name and nonce of a valid hello; PeerAuthError otherwise. Without a secret the
    proof is not checked (the caller admits loopback peers only)."""
    payload = _unpack(body)
    if not isinstance(payload, list) or len(payload) != 3:
        raise PeerAuthError("a malformed hello")
    name, nonce, proof = payload
    if not isinstance(name, str) or not name or len(name) > NODE_NAME_CHARS_MAX:
        raise PeerAuthError(f"a bad node name in a hello: {name!r}")
    if not isinstance(nonce, bytes) or len(nonce) != CHALLENGE_BYTES:
        raise PeerAuthError("a hello without a nonce")
    expected = _proof(secret, b"hello", challenge, nonce, name.encode())
    if secret is not None and not (
        isinstance(proof, bytes) and hmac.compare_digest(proof, expected)
    ):
        raise PeerAuthError(f"{name!r} did not prove it holds the cluster secret")
    return name, nonce


def accept_frame(secret: bytes | None, name: str, challenge: bytes, nonce: bytes) -> bytes:
    return _frame(["ok", _proof(secret, b"accept", nonce, challenge, name.encode())])


def check_accept(
    secret: bytes | None, name: str, challenge: bytes, nonce: bytes, body: bytes
) -> None:
    payload = _unpack(body)
    if not isinstance(payload, list) or len(payload) != 2 or payload[0] != "ok":
        raise PeerAuthError("the peer refused the hello")
    expected = _proof(secret, b"accept", nonce, challenge, name.encode())
    if secret is not None and not (
        isinstance(payload[1], bytes) and hmac.compare_digest(payload[1], expected)
    ):
        raise PeerAuthError("the peer did not prove it holds the cluster secret")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


def _unpack(body: bytes) -> object:
    try:
        return msgpack.unpackb(body, raw=False)
    except Exception as error:  # msgpack's many error types: one boundary
        raise PeerAuthError(f"a malformed handshake frame: {error}") from None
