"""The internode handshake's pieces (``server/peer_auth.py``); the attacks on real processes
are in ``test_server.py``."""

import os
from pathlib import Path

import pytest

from eventual.server import peer_auth
from eventual.server.peer_auth import PeerAuthError


def handshake(dialler_secret: bytes | None, listener_secret: bytes | None) -> str:
    """Run both ends of the handshake in memory; the name the listener admits."""
    challenge = os.urandom(peer_auth.CHALLENGE_BYTES)
    got = peer_auth.read_challenge(peer_auth.challenge_frame(challenge)[4:])
    nonce = os.urandom(peer_auth.CHALLENGE_BYTES)
    hello = peer_auth.hello_frame(dialler_secret, "n2", got, nonce)[4:]
    name, their_nonce = peer_auth.check_hello(listener_secret, challenge, hello)
    accept = peer_auth.accept_frame(listener_secret, name, challenge, their_nonce)[4:]
    peer_auth.check_accept(dialler_secret, "n2", got, nonce, accept)
    return name


def test_both_ends_prove_the_same_secret_and_nothing_else_passes() -> None:
    secret = peer_auth.new_secret()
    assert handshake(secret, secret) == "n2"
    with pytest.raises(PeerAuthError, match="did not prove"):
        handshake(b"x" * 32, secret)  # an outsider dialling in
    with pytest.raises(PeerAuthError, match="did not prove"):
        handshake(secret, b"y" * 32)  # an impostor listening at a member's address


def test_a_hello_cannot_be_replayed_against_a_new_challenge() -> None:
    secret = peer_auth.new_secret()
    first = os.urandom(peer_auth.CHALLENGE_BYTES)
    nonce = os.urandom(peer_auth.CHALLENGE_BYTES)
    recorded = peer_auth.hello_frame(secret, "n2", first, nonce)[4:]
    assert peer_auth.check_hello(secret, first, recorded) == ("n2", nonce)
    with pytest.raises(PeerAuthError):
        peer_auth.check_hello(secret, os.urandom(peer_auth.CHALLENGE_BYTES), recorded)


@pytest.mark.parametrize(
    "body", [b"", b"\xc1", b"\x93\xa2n2\xc4\x01x\xc4\x01y", b"\x91\xa2n2", b"\x93\x01\x02\x03"]
)
def test_malformed_handshake_frames_are_refused_cleanly(body: bytes) -> None:
    with pytest.raises(PeerAuthError):
        peer_auth.check_hello(b"s" * 32, os.urandom(peer_auth.CHALLENGE_BYTES), body)
    with pytest.raises(PeerAuthError):
        peer_auth.read_challenge(body)


def test_the_secret_comes_from_a_file_or_the_environment_and_must_be_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(peer_auth.SECRET_ENV, raising=False)
    assert peer_auth.load_secret(None) is None
    path = tmp_path / "secret"
    path.write_bytes(b"  0123456789abcdef0123\n")
    assert peer_auth.load_secret(path) == b"0123456789abcdef0123"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="16 to 4096"):
        peer_auth.load_secret(path)
    monkeypatch.setenv(peer_auth.SECRET_ENV, "from-the-environment-0123")
    assert peer_auth.load_secret(None) == b"from-the-environment-0123"


def test_protected_mode_knows_loopback_addresses() -> None:
    assert peer_auth.is_loopback("127.0.0.1") and peer_auth.is_loopback("127.8.9.10")
    assert peer_auth.is_loopback("::1")
    assert not peer_auth.is_loopback("10.0.0.7") and not peer_auth.is_loopback("example.org")
