"""Internode frames: ``[4-byte big-endian length][msgpack body]``, one core message each.

A message (a frozen dataclass of ``core.messages``, possibly holding a ``Request``, an
operation and a ``Result``) travels as ``[type code, field, field, ...]``. Decoding checks
every field against the dataclass's type hints, so a peer's garbage becomes one
``WireError`` (and a closed connection), never a crash inside the node.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import msgpack

from eventual.clocks import VersionVector
from eventual.codec import DecodeError
from eventual.core import membership, messages, ops, swim

__all__ = ["FRAME_BYTES_MAX", "WireError", "decode_message", "encode_message"]

# The largest thing one frame carries is one record of the largest value (a 64 MiB string,
# or an object's siblings up to as much: core ops.STRING_BYTES_MAX, node.OBJECT_BYTES_MAX);
# anti-entropy batches stop adding records past node.AE_BYTES_MAX. This bounds what one
# frame can make a node buffer.
FRAME_BYTES_MAX = 80 * 1024 * 1024
_SET, _VERSION_VECTOR = 1, 2


class WireError(ValueError):
    """A frame from a peer is malformed: the peer is at fault; drop its connection."""


_TYPES: list[type] = [
    *typing.get_args(messages.Message),
    messages.Request,
    messages.Result,
    *typing.get_args(ops.Operation),
    swim.Update,
    membership.MemberEntry,
]
_CODE = {cls: code for code, cls in enumerate(_TYPES)}
_HINTS: dict[type, list[tuple[str, Any]]] = {}


def _hints(cls: type) -> list[tuple[str, Any]]:
    if cls not in _HINTS:
        resolved = typing.get_type_hints(cls)
        _HINTS[cls] = [(f.name, resolved[f.name]) for f in dataclasses.fields(cls)]
    return _HINTS[cls]


def _pack(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            _CODE[type(value)],
            *(_pack(getattr(value, name)) for name, _ in _hints(type(value))),
        ]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, VersionVector):
        return msgpack.ExtType(_VERSION_VECTOR, value.to_bytes())
    if isinstance(value, set | frozenset):
        items = sorted((_pack(v) for v in value), key=repr)
        return msgpack.ExtType(_SET, msgpack.packb(items, use_bin_type=True))
    if isinstance(value, tuple | list):
        return [_pack(v) for v in value]
    if isinstance(value, dict):
        return {_pack(k): _pack(v) for k, v in value.items()}
    return value


def encode_message(message: messages.Message) -> bytes:
    body: bytes = msgpack.packb(_pack(message), use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def _ext(code: int, data: bytes) -> Any:
    if code == _VERSION_VECTOR:
        return VersionVector.from_bytes(data)
    if code == _SET:
        items = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)
        if not isinstance(items, list):
            raise WireError("a set must hold a list")
        return set(_freeze(v) for v in items)
    raise WireError(f"unknown extension type {code}")


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _check(value: Any, hint: Any, where: str) -> Any:
    """Value as the hint wants it, or WireError."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check(value, option, where)
            except WireError:
                continue
        raise WireError(f"{where}: {type(value).__name__} fits none of {hint}")
    if hint is type(None):
        if value is not None:
            raise WireError(f"{where}: expected nothing")
        return None
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise WireError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise WireError(f"{where}: expected {len(args)} items")
        return tuple(_check(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is frozenset:
        if not isinstance(value, set):
            raise WireError(f"{where}: expected a set")
        return frozenset(_check(v, typing.get_args(hint)[0], where) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _unpack_dataclass(value, hint, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # Level, swim.Status
        try:
            return hint(value)
        except ValueError:
            raise WireError(f"{where}: unknown {hint.__name__} {value!r}") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WireError(f"{where}: expected an integer")
        return value
    if hint in (str, bytes, bool, float, VersionVector):
        if not isinstance(value, hint):
            raise WireError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    raise WireError(f"{where}: cannot check {hint}")


def _unpack_dataclass(value: Any, expected: Any, where: str) -> Any:
    if not isinstance(value, list) or not value or not isinstance(value[0], int):
        raise WireError(f"{where}: expected a tagged list")
    code = value[0]
    if not 0 <= code < len(_TYPES):
        raise WireError(f"{where}: unknown type code {code}")
    cls = _TYPES[code]
    allowed = typing.get_args(expected) or (expected,)
    if cls not in allowed:
        raise WireError(f"{where}: a {cls.__name__} is not allowed here")
    hints = _hints(cls)
    if len(value) != len(hints) + 1:
        raise WireError(f"{where}: {cls.__name__} needs {len(hints)} fields")
    fields = {
        name: _check(item, hint, f"{cls.__name__}.{name}")
        for (name, hint), item in zip(hints, value[1:], strict=True)
    }
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:
        raise WireError(f"{where}: {error}") from None


_MESSAGE_HINT = messages.Message


def decode_message(body: bytes) -> messages.Message:
    """Decode one frame body (without its length prefix)."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_ext)
    except WireError:
        raise
    except DecodeError as error:
        raise WireError(f"bad value in frame: {error}") from None
    except Exception as error:  # msgpack reports malformed bytes with several exception types
        raise WireError(f"malformed frame: {error}") from None
    message: messages.Message = _unpack_dataclass(value, _MESSAGE_HINT, "frame")
    return message
