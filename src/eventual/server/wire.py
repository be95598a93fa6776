"""Internode frames: ``[4-byte big-endian length][msgpack body]``, one core message each.

A message (a frozen dataclass of ``core.messages``, possibly holding a ``Request``, an
operation and a ``Result``) travels as ``[type code, field, field, ...]``. Decoding checks
every field against the dataclass's type hints, so a peer's garbage becomes one
``WireError`` (and a closed connection), never a crash inside the node.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from typing import Any

import msgpack

from eventual.clocks import VersionVector
from eventual.codec import DecodeError, pack
from eventual.core import membership, messages, ops, swim
from eventual.core.consistency import Level

__all__ = ["FRAME_BYTES_MAX", "WireError", "decode_message", "encode_message"]

# The largest thing one frame carries is one record of the largest value (a 64 MiB string,
# or an object's siblings up to as much: core ops.STRING_BYTES_MAX, node.OBJECT_BYTES_MAX);
# anti-entropy batches stop adding records past node.AE_BYTES_MAX. This bounds what one
# frame can make a node buffer.
FRAME_BYTES_MAX = 80 * 1024 * 1024
_SET, _VERSION_VECTOR = 1, 2


class WireError(ValueError):
    """A frame from a peer is malformed: the peer is at fault; drop its connection."""


# Every type that travels, with its fields in order and the type each must have. The type
# code of a class is its place here: append, never reorder (peers of another version decode
# by it). Written out rather than read from the dataclasses' type hints: the compiled build
# keeps none that can be checked (mypyc turns ``int | None`` into ``type``). tests/test_wire.py
# checks this table against the hints of the pure build, so a field added to a message and
# not here fails the suite.
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {
    swim.SwimPing: (
        ("seq", int),
        ("updates", tuple[swim.Update, ...]),
    ),
    swim.SwimAck: (
        ("seq", int),
        ("updates", tuple[swim.Update, ...]),
    ),
    swim.SwimPingReq: (
        ("seq", int),
        ("target", str),
        ("updates", tuple[swim.Update, ...]),
    ),
    messages.Forward: (
        ("id", int),
        ("request", messages.Request),
    ),
    messages.ForwardReply: (
        ("id", int),
        ("result", messages.Result),
    ),
    messages.ReplicaWrite: (
        ("id", int),
        ("key", bytes),
        ("record", bytes),
        ("hlc", int),
        ("hint_for", str | None),
    ),
    messages.WriteAck: (
        ("id", int),
        ("error", str | None),
    ),
    messages.ReplicaRead: (
        ("id", int),
        ("key", bytes),
        ("members", tuple[bytes, ...] | None),
        ("cursor", int | None),
        ("count", int),
        ("ranked", bytes | None),
    ),
    messages.ReadReply: (
        ("id", int),
        ("record", bytes | None),
        ("size", int),
        ("digest", int),
        ("cursor", int),
        ("position", int),
    ),
    messages.HintHandoff: (
        ("key", bytes),
        ("record", bytes),
    ),
    messages.HintAck: (
        ("key", bytes),
        ("record_hash", int),
    ),
    messages.AeRoot: (
        ("partition", int),
        ("groups", tuple[int, ...]),
    ),
    messages.AeGroups: (
        ("partition", int),
        ("groups", tuple[tuple[int, tuple[int, ...]], ...]),
    ),
    messages.AeLeaves: (
        ("partition", int),
        ("leaves", tuple[tuple[int, tuple[tuple[bytes, int], ...]], ...]),
    ),
    messages.AePush: (
        ("partition", int),
        ("records", tuple[tuple[bytes, bytes], ...]),
        ("want", tuple[bytes, ...]),
    ),
    messages.AeRecords: (
        ("partition", int),
        ("records", tuple[tuple[bytes, bytes], ...]),
    ),
    messages.ReapCheck: (
        ("key", bytes),
        ("record_hash", int),
    ),
    messages.ReapAck: (
        ("key", bytes),
        ("record_hash", int),
        ("same", bool),
    ),
    messages.ReapCommit: (
        ("key", bytes),
        ("record_hash", int),
    ),
    messages.ClusterGossip: (("entries", tuple[membership.MemberEntry, ...]),),
    messages.Probe: (("id", int), ("what", str), ("key", bytes)),
    messages.ProbeReply: (("id", int), ("body", bytes)),
    messages.AeKeySync: (
        ("partition", int),
        ("key", bytes),
        ("head", bytes),
        ("digest", int),
        ("answer", bool),
    ),
    messages.Request: (
        ("id", int),
        ("op", ops.Operation),
        ("level", Level),
        ("n", int | None),
        ("r", int | None),
        ("w", int | None),
    ),
    messages.Result: (
        ("ok", bool),
        ("value", Any),
        ("error", str | None),
        ("context", bytes | None),
        ("dot", tuple[str, int] | None),
        ("supersedes", tuple[str, int] | None),
        ("answered", int),
        ("kind", str | None),
        ("expire_at", int | None),
        ("state", bytes | None),
        ("size", int | None),
        ("cursor", int | None),
        ("position", int | None),
    ),
    ops.Get: (
        ("key", bytes),
        ("members", tuple[bytes, ...] | None),
        ("cursor", int | None),
        ("count", int),
        ("ranked", bytes | None),
    ),
    ops.ObjectPut: (
        ("key", bytes),
        ("value", bytes),
        ("context", VersionVector | None),
    ),
    ops.Delete: (
        ("key", bytes),
        ("context", VersionVector | None),
    ),
    ops.StringSet: (
        ("key", bytes),
        ("value", bytes),
        ("expire_at_ms", int | None),
        ("keep_ttl", bool),
    ),
    ops.CounterAdd: (
        ("key", bytes),
        ("amount", int),
    ),
    ops.BcounterIncr: (
        ("key", bytes),
        ("amount", int),
    ),
    ops.BcounterDecr: (
        ("key", bytes),
        ("amount", int),
    ),
    ops.BcounterTransfer: (
        ("key", bytes),
        ("to_actor", str),
        ("amount", int),
    ),
    ops.SetAdd: (
        ("key", bytes),
        ("members", tuple[bytes, ...]),
    ),
    ops.SetRemove: (
        ("key", bytes),
        ("members", tuple[bytes, ...]),
    ),
    ops.HashSet: (
        ("key", bytes),
        ("pairs", tuple[tuple[bytes, bytes], ...]),
    ),
    ops.HashDel: (
        ("key", bytes),
        ("fields", tuple[bytes, ...]),
    ),
    ops.HashIncr: (
        ("key", bytes),
        ("field", bytes),
        ("amount", int),
    ),
    ops.MapIncr: (
        ("key", bytes),
        ("field", bytes),
        ("amount", int),
    ),
    ops.MapRemove: (
        ("key", bytes),
        ("field", bytes),
    ),
    ops.FlagSet: (
        ("key", bytes),
        ("enabled", bool),
    ),
    ops.HllAdd: (
        ("key", bytes),
        ("elements", tuple[bytes, ...]),
    ),
    ops.Expire: (
        ("key", bytes),
        ("at_ms", int),
    ),
    ops.Persist: (("key", bytes),),
    ops.HllMerge: (
        ("key", bytes),
        ("sketch", bytes),
    ),
    swim.Update: (
        ("node", str),
        ("incarnation", int),
        ("status", swim.Status),
    ),
    membership.MemberEntry: (
        ("node", str),
        ("region", str),
        ("address", str),
        ("generation", int),
        ("status", membership.MemberStatus),
        ("seq", int),
        ("ready_for", int),
        ("zone", str),
        ("aware_of", int),
    ),
    # Types added later go last: a type's code is its place here, and nodes of the version
    # before must keep reading every code they knew.
    ops.StringIncr: (
        ("key", bytes),
        ("amount", int),
    ),
    messages.KeysRead: (
        ("id", int),
        ("partition", int),
        ("cursor", int),
        ("count", int),
    ),
    messages.KeysReply: (
        ("id", int),
        ("keys", tuple[tuple[bytes, str], ...]),
        ("upto", int),
        ("held", int),
    ),
    messages.Publish: (("channel", bytes), ("message", bytes)),
    ops.StringIncrFloat: (("key", bytes), ("amount", float)),
    ops.HashIncrFloat: (("key", bytes), ("field", bytes), ("amount", float)),
    ops.ZsetAdd: (("key", bytes), ("pairs", tuple[tuple[float, bytes], ...]), ("flags", int)),
    ops.ZsetIncr: (("key", bytes), ("member", bytes), ("amount", float), ("flags", int)),
    ops.ZsetRemove: (("key", bytes), ("members", tuple[bytes, ...])),
    ops.ZsetPop: (("key", bytes), ("count", int), ("highest", bool)),
    ops.ZsetRemoveRange: (("key", bytes), ("ranked", bytes)),
    ops.ListPush: (("key", bytes), ("values", tuple[bytes, ...]), ("left", bool)),
    ops.ListPop: (("key", bytes), ("count", int), ("right", bool)),
    ops.ListSet: (("key", bytes), ("index", int), ("value", bytes)),
    ops.ListInsert: (("key", bytes), ("pivot", bytes), ("value", bytes), ("before", bool)),
    ops.ListRemove: (("key", bytes), ("count", int), ("value", bytes)),
    ops.ListRemoveRange: (("key", bytes), ("ranked", bytes)),
    ops.ListRemoveAt: (("key", bytes), ("positions", tuple[bytes, ...])),
}
_TYPES: list[type] = list(_FIELDS)
_CODE = {cls: code for code, cls in enumerate(_TYPES)}


_NAMES = {cls: tuple(name for name, _ in fields) for cls, fields in _FIELDS.items()}
_SCALARS = frozenset({bytes, str, int, bool, float, type(None)})


def _pack(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    code = _CODE.get(kind)
    if code is not None:
        packed = [code]
        for name in _NAMES[kind]:
            packed.append(_pack(getattr(value, name)))
        return packed
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, VersionVector):
        return msgpack.ExtType(_VERSION_VECTOR, value.to_bytes())
    if isinstance(value, (set, frozenset)):
        items = sorted((_pack(v) for v in value), key=repr)
        return msgpack.ExtType(_SET, pack(items))
    if isinstance(value, (tuple, list)):
        return [_pack(v) for v in value]
    if isinstance(value, dict):
        return {_pack(k): _pack(v) for k, v in value.items()}
    return value


def encode_message(message: messages.Message) -> bytes:
    body = pack(_pack(message))
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


# Decoding checks each field with a function made once per field from its hint, at import:
# reading the hints per message (``typing.get_origin`` and friends are Python code) cost more
# than the rest of decoding a frame.
Check = Callable[[Any, str], Any]


def _as_is(value: Any, where: str) -> Any:
    return value


def _none(value: Any, where: str) -> Any:
    if value is not None:
        raise WireError(f"{where}: expected nothing")
    return None


def _integer(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{where}: expected an integer")
    return value


def _instance(kind: type) -> Check:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, kind):
            raise WireError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
        return value

    return check


def _member_of(kind: type[enum.Enum]) -> Check:  # Level, swim.Status, MemberStatus
    def check(value: Any, where: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise WireError(f"{where}: unknown {kind.__name__} {value!r}") from None

    return check


def _one_of(hint: Any, checks: list[Check]) -> Check:
    def check(value: Any, where: str) -> Any:
        for option in checks:
            try:
                return option(value, where)
            except WireError:
                continue
        raise WireError(f"{where}: {type(value).__name__} fits none of {hint}")

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    return check


def _many(
    inner: Check,
    arrives_as: type[list[Any]] | type[set[Any]],
    make: Callable[[list[Any]], Any],
    what: str,
) -> Check:
    """Every item checked by ``inner``; ``make`` builds the container (tuple, frozenset)."""

    def check(value: Any, where: str) -> Any:
        if not isinstance(value, arrives_as):
            raise WireError(f"{where}: expected {what}")
        return make([inner(v, where) for v in value])

    return check


def _fixed_tuple(checks: list[Check]) -> Check:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise WireError(f"{where}: expected a list")
        if len(checks) != len(value):
            raise WireError(f"{where}: expected {len(checks)} items")
        return tuple([c(v, where) for v, c in zip(value, checks, strict=True)])

    return check


def _dataclass_of(allowed: frozenset[type]) -> Check:
    def check(value: Any, where: str) -> Any:
        return _unpack_dataclass(value, allowed, where)

    return check


def _checker(hint: Any) -> Check:
    """The function that checks a value against ``hint`` and returns it as the hint wants it
    (tuples for lists, enum members for their values, ...), or raises WireError."""
    if hint is Any:
        return _as_is
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if all(option in _CODE for option in options):
            return _dataclass_of(frozenset(options))
        if len(options) == 2 and type(None) in options:
            (other,) = [option for option in options if option is not type(None)]
            return _optional(_checker(other))
        return _one_of(hint, [_checker(option) for option in options])
    if hint is type(None):
        return _none
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return _many(_checker(args[0]), list, tuple, "a list")
        return _fixed_tuple([_checker(arg) for arg in args])
    if origin is frozenset:
        return _many(_checker(typing.get_args(hint)[0]), set, frozenset, "a set")
    if hint in _CODE:
        return _dataclass_of(frozenset({hint}))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _member_of(hint)
    if hint is int:
        return _integer
    if hint in (str, bytes, bool, float, VersionVector):
        return _instance(hint)
    raise TypeError(f"the wire cannot check {hint}")


# cls -> each field's (where, check), in the dataclass's order.
_CHECKS: dict[type, list[tuple[str, Check]]] = {
    cls: [(f"{cls.__name__}.{name}", _checker(hint)) for name, hint in fields]
    for cls, fields in _FIELDS.items()
}


def _unpack_dataclass(value: Any, allowed: frozenset[type], where: str) -> Any:
    if not isinstance(value, list) or not value or not isinstance(value[0], int):
        raise WireError(f"{where}: expected a tagged list")
    code = value[0]
    if not 0 <= code < len(_TYPES):
        raise WireError(f"{where}: unknown type code {code}")
    cls = _TYPES[code]
    if cls not in allowed:
        raise WireError(f"{where}: a {cls.__name__} is not allowed here")
    checks = _CHECKS[cls]
    # Fewer fields than this node knows: a node one version older, which lacks the fields
    # added since (at the end, each with a default), and ``cls`` takes their defaults; a
    # required one missing is a TypeError below.
    if len(value) > len(checks) + 1:
        raise WireError(f"{where}: {cls.__name__} needs {len(checks)} fields")
    arguments = [
        check(item, inner) for (inner, check), item in zip(checks, value[1:], strict=False)
    ]
    try:
        return cls(*arguments)
    except (TypeError, ValueError) as error:
        raise WireError(f"{where}: {error}") from None


_MESSAGE_TYPES = frozenset(typing.get_args(messages.Message))


def decode_message(body: bytes) -> messages.Message:
    """Decode one frame body (without its length prefix)."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_ext)
    except WireError:
        raise
    except DecodeError as bad:  # (a name per clause: the compiled build types it once)
        raise WireError(f"bad value in frame: {bad}") from None
    except Exception as error:  # msgpack reports malformed bytes with several exception types
        raise WireError(f"malformed frame: {error}") from None
    message: messages.Message = _unpack_dataclass(value, _MESSAGE_TYPES, "frame")
    return message
