"""Who may do what: users with passwords and one of three roles, for the Redis and HTTP ports.

Redis 6's ACL users, cut down to what a data store's operators reach for (``docs/security.md``):

- ``read-only``: reads (GET, HGETALL, SSCAN, ``GET /kv/...``) and connection commands;
- ``read-write``: those and every write;
- ``admin``: those and what changes or inspects the cluster itself (``/cluster/*``,
  ``/debug/*``, and on the Redis port the commands marked admin).

``--password`` makes the user ``default``, an admin, as Redis's ``requirepass`` does;
``--users-file`` names more, in TOML::

    [users.reporter]
    role = "read-only"
    password-sha256 = "<hex of SHA-256 of the password>"   # or: password = "..."

With neither, the ports need no authentication, as Redis without ``requirepass``; the
internode port is guarded apart (``peer_auth``). Passwords are kept as SHA-256 digests and
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

__all__ = ["Role", "User", "Users"]

DEFAULT_USER = "default"
USERS_MAX = 1_000  # a users file past this is refused: it is read into memory whole
NAME_CHARS_MAX = 128


class Role(IntEnum):
    """Roles in order: each allows what the ones below it allow."""

    READ_ONLY = 1
    READ_WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return _ROLE_NAMES[text]
        except KeyError:
            raise ValueError(f"unknown role {text!r}; roles: {', '.join(_ROLE_NAMES)}") from None

    @property
    def label(self) -> str:
        return next(name for name, role in _ROLE_NAMES.items() if role is self)


_ROLE_NAMES = {"read-only": Role.READ_ONLY, "read-write": Role.READ_WRITE, "admin": Role.ADMIN}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    digest: bytes  # SHA-256 of the password

    def allows(self, need: Role) -> bool:
        return self.role >= need


# Who a connection is when the node asks for no password: allowed everything, as in Redis.
NOBODY_ASKED = User(DEFAULT_USER, Role.ADMIN, b"")


def _digest(password: str | bytes) -> bytes:
    raw = password.encode() if isinstance(password, str) else password
    return hashlib.sha256(raw).digest()


class Users:
    def __init__(self, users: dict[str, User] | None = None) -> None:
        self.users = users or {}

    @property
    def required(self) -> bool:
        """Whether clients must authenticate (any user is configured)."""
        return bool(self.users)

    def check(self, name: str | bytes, password: str | bytes) -> User | None:
        """The user ``name`` if ``password`` is theirs; None otherwise. The time taken does
        not depend on how much of the password was right."""
        key = name.decode(errors="replace") if isinstance(name, bytes) else name
        user = self.users.get(key)
        given = _digest(password)
        if user is None:
            hmac.compare_digest(given, given)  # the same work as a wrong password
            return None
        return user if hmac.compare_digest(given, user.digest) else None

    @classmethod
    def build(cls, password: str | None = None, users_file: Path | None = None) -> Users:
        """``--password`` (the admin ``default``) and the users of ``--users-file``."""
        users: dict[str, User] = {}
        if password is not None:
            users[DEFAULT_USER] = User(DEFAULT_USER, Role.ADMIN, _digest(password))
        if users_file is not None:
            for user in _read_users(users_file):
                if user.name in users:
                    raise ValueError(
                        f"{users_file}: user {user.name!r} is also given by --password"
                    )
                users[user.name] = user
        return cls(users)


def _read_users(path: Path) -> list[User]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the users file {path}: {error}") from None
    table = data.get("users")
    if not isinstance(table, dict) or set(data) != {"users"}:
        raise ValueError(f"{path}: expected only [users.<name>] tables")
    if len(table) > USERS_MAX:
        raise ValueError(f"{path}: more than {USERS_MAX} users")
    users = []
    for name, entry in table.items():
        where = f"{path}: user {name!r}"
        if not name or len(name) > NAME_CHARS_MAX or not name.isprintable() or " " in name:
            raise ValueError(f"{where}: a name is 1 to {NAME_CHARS_MAX} printable characters")
        if not isinstance(entry, dict) or set(entry) - {"role", "password", "password-sha256"}:
            raise ValueError(f"{where}: keys are role, password, password-sha256")
        role = Role.parse(str(entry.get("role", "")))
        if ("password" in entry) == ("password-sha256" in entry):
            raise ValueError(f"{where}: give one of password, password-sha256")
        if "password" in entry:
            digest = _digest(str(entry["password"]))
        else:
            try:
                digest = bytes.fromhex(str(entry["password-sha256"]))
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"{where}: password-sha256 must be 64 hex digits")
        users.append(User(name, role, digest))
    return users
