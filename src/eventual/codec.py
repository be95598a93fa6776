"""The deterministic, versioned binary encoding of every clock and CRDT.

Every encoded state is ``[type tag byte][format version byte][msgpack payload]``. The payload
uses only arrays, never maps, and every collection in it is sorted, so that equal states give
equal bytes (and equal hashes, which Merkle-tree anti-entropy relies on).

Decoding is strict. Besides the shape checks each type makes, a decoded state is re-encoded
and must give back exactly the input bytes; anything else is a ``DecodeError``. So every byte
string a decoder accepts is the one canonical encoding of its state: duplicate entries,
unsorted collections, zero counters or non-minimal integers are all refused rather than
silently normalised. Bad bytes of any kind raise ``DecodeError`` and nothing else.

The type tags live here, in one registry, so two types can never claim the same byte.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

import msgpack

__all__ = [
    "ELEMENT_TYPES",
    "UINT64_MAX",
    "DecodeError",
    "Element",
    "Scalar",
    "TypeTag",
    "check_actor",
    "check_amount",
    "check_element",
    "check_scalar",
    "decode_frame",
    "element_key",
    "encode_frame",
    "expect_bytes",
    "expect_element",
    "expect_int",
    "expect_list",
    "expect_scalar",
    "expect_str",
    "pack",
    "sort_key",
]

# Counters, HLC timestamps and dot counters are unsigned 64-bit: the widest integer msgpack
# encodes natively, and far beyond what any real counter reaches.
UINT64_MAX = 2**64 - 1
INT64_MIN = -(2**63)

# Elements of sets, keys of maps: hashable values with a total, type-safe equality. bool and
# float are left out on purpose: True == 1 and 1.0 == 1 in Python, which would merge distinct
# encodings into one dict key and break "equal states give equal bytes".
Element = bytes | str | int
ELEMENT_TYPES = (bytes, str, int)

# Values held by registers and DVVSets.
Scalar = bytes | str | int | float | bool | None


class TypeTag(IntEnum):
    """The first byte of every encoding. Never reuse or renumber a tag."""

    GCOUNTER = 1
    PNCOUNTER = 2
    BOUNDED_COUNTER = 3
    LWW_REGISTER = 4
    MV_REGISTER = 5
    ORSET = 6
    EWFLAG = 7
    ORMAP = 8
    HYPERLOGLOG = 9
    SORTED_SET = 10
    LIST = 11
    VERSION_VECTOR = 16
    DVVSET = 17
    RECORD = 32


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected type.

    The only exception any ``from_bytes`` raises for bad input: the remote side (a peer, a
    disk, a client) is at fault, never the caller's code.
    """


# One packer for every encoding: ``packb`` builds a new one per call, which costs more than
# packing a small record. Sharing it is safe across threads too: with no ``default`` hook,
# a ``pack`` call never runs Python code, so it holds the GIL from start to end.
_PACKER = msgpack.Packer(use_bin_type=True)
_PREFIXES: dict[tuple[int, int], bytes] = {}


def pack(value: Any) -> bytes:
    """``value``'s msgpack encoding (bin type for bytes), with the shared packer."""
    packed: bytes = _PACKER.pack(value)
    return packed


def encode_frame(tag: TypeTag, version: int, payload: Any) -> bytes:
    """Prefix a msgpack payload with its type tag and format version."""
    prefix = _PREFIXES.get((tag, version))
    if prefix is None:
        prefix = _PREFIXES[(tag, version)] = bytes((tag, version))
    body: bytes = _PACKER.pack(payload)
    return prefix + body


def decode_frame(data: bytes, tag: TypeTag, version: int) -> Any:
    """Check the tag and version bytes and unpack the payload. Raises only ``DecodeError``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 3:
        raise DecodeError(f"{len(data)} bytes is too short for a {tag.name} encoding")
    if data[0] != tag:
        try:
            found = TypeTag(data[0]).name
        except ValueError:
            found = f"unknown tag {data[0]}"
        raise DecodeError(f"expected a {tag.name} encoding, found {found}")
    if data[1] != version:
        raise DecodeError(f"{tag.name} format version {data[1]} is not supported (want {version})")
    try:
        return msgpack.unpackb(data[2:], raw=False, use_list=True, strict_map_key=True)
    # msgpack's unpacker signals malformed input with several exception types (ValueError and
    # its ExtraData/FormatError/StackError/UnicodeDecodeError subclasses, TypeError for
    # unhashable keys, ...). This is the boundary: all of them become one DecodeError.
    except Exception as error:
        raise DecodeError(f"malformed {tag.name} payload: {error}") from None


_ELEMENT_RANK = {bytes: 0, int: 1, str: 2}


def element_key(element: Element) -> tuple[int, Element]:
    """The canonical order of set elements and map keys: bytes, then ints, then strings,
    each in their natural order. Cheaper than ``sort_key`` and just as total."""
    return (_ELEMENT_RANK[type(element)], element)


def sort_key(value: Scalar) -> bytes:
    """A total order over mixed scalars: their canonical encoding."""
    return pack(value)


# --- validation of values handed in by callers (raise TypeError/ValueError: caller's fault) ---


def check_actor(actor: object) -> str:
    if not isinstance(actor, str):
        raise TypeError(f"actors are strings, not {type(actor).__name__}")
    return actor


def check_amount(n: object) -> int:
    """A positive whole amount for a counter operation."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"amounts are integers, not {type(n).__name__}")
    if not 0 < n <= UINT64_MAX:
        raise ValueError(f"amount must be in [1, 2**64 - 1], got {n}")
    return n


def check_element(element: object) -> Element:
    if isinstance(element, bool) or not isinstance(element, ELEMENT_TYPES):
        raise TypeError(
            f"elements and keys must be bytes, str or int, not {type(element).__name__}"
        )
    if isinstance(element, int) and not INT64_MIN <= element <= UINT64_MAX:
        raise ValueError(f"integer element {element} does not fit in 64 bits")
    return element


def check_scalar(value: object) -> Scalar:
    if value is None or isinstance(value, (bool, bytes, str)):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= UINT64_MAX:
            raise ValueError(f"integer value {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("NaN is not a value: it is not equal to itself")
        return value
    raise TypeError(
        f"values must be bytes, str, int, float, bool or None, not {type(value).__name__}"
    )


# --- validation of decoded payloads (raise DecodeError: the bytes are at fault) ---


def expect_list(obj: object, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(obj, list):
        raise DecodeError(f"{what}: expected an array, got {type(obj).__name__}")
    if length is not None and len(obj) != length:
        raise DecodeError(f"{what}: expected {length} items, got {len(obj)}")
    return obj


def expect_int(obj: object, what: str, low: int = 0, high: int = UINT64_MAX) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise DecodeError(f"{what}: expected an integer, got {type(obj).__name__}")
    if not low <= obj <= high:
        raise DecodeError(f"{what}: {obj} is outside [{low}, {high}]")
    return obj


def expect_str(obj: object, what: str) -> str:
    if not isinstance(obj, str):
        raise DecodeError(f"{what}: expected a string, got {type(obj).__name__}")
    return obj


def expect_bytes(obj: object, what: str) -> bytes:
    if not isinstance(obj, bytes):
        raise DecodeError(f"{what}: expected binary, got {type(obj).__name__}")
    return obj


def expect_element(obj: object, what: str) -> Element:
    try:
        return check_element(obj)
    except (TypeError, ValueError) as error:
        raise DecodeError(f"{what}: {error}") from None


def expect_scalar(obj: object, what: str) -> Scalar:
    try:
        return check_scalar(obj)
    except (TypeError, ValueError) as error:
        raise DecodeError(f"{what}: {error}") from None
