"""The protocol buffer wire format, read without generated message classes.

The public datasets store their annotations as protocol buffers (TFDS's ``tf.train.Example``,
Objectron's ``Sequence``). Only a few fields of a few messages are needed, so they are read
straight from the wire format (https://protobuf.dev/programming-guides/encoding/) rather than
through generated code and a protobuf runtime: a message is a run of fields, each a key
(``field_number << 3 | wire_type``, a varint) and a value: a varint (type 0), 8 bytes (1),
a length-prefixed run of bytes (2: strings, bytes, sub-messages and packed repeated numbers)
or 4 bytes (5). Fields may come in any order and repeat; for a scalar the last one wins, a
repeated field collects them all (packed or not).

Example:
    >>> message = bytes([0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69])  # field 1 = 150, field 2 = b"hi"
    >>> [(f.number, f.value) for f in fields(message)]
    [(1, 150), (2, b'hi')]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from ..errors import SceneFormatError

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class Field(NamedTuple):
    """One field of a message: its number, wire type and raw value (int for varints, else bytes)."""

    number: int
    wire_type: int
    value: int | bytes


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``data[pos:]`` and the position after it.

    Raises:
        SceneFormatError: the data ends inside the varint or it is longer than 10 bytes.
    """
    result = shift = 0
    while True:
        if pos >= len(data):
            raise SceneFormatError("malformed protocol buffer: the data ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise SceneFormatError("malformed protocol buffer: a varint longer than 10 bytes")


def fields(message: bytes) -> Iterator[Field]:
    """The fields of ``message`` in wire order.

    Raises:
        SceneFormatError: a truncated field or an unknown (or group) wire type.
    """
    pos, end = 0, len(message)
    while pos < end:
        key, pos = read_varint(message, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = read_varint(message, pos)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            value, pos = message[pos:pos + size], pos + size
        elif wire_type == LENGTH_DELIMITED:
            size, pos = read_varint(message, pos)
            value, pos = message[pos:pos + size], pos + size
        else:
            raise SceneFormatError(f"malformed protocol buffer: field {number} has wire type {wire_type}, "
                                   "which no message read here uses")
        if pos > end:
            raise SceneFormatError(f"malformed protocol buffer: field {number} runs past the end of its message")
        yield Field(number, wire_type, value)


def by_number(message: bytes) -> dict[int, list[Field]]:
    """The fields of ``message`` grouped by field number, each group in wire order."""
    out: dict[int, list[Field]] = {}
    for f in fields(message):
        out.setdefault(f.number, []).append(f)
    return out


def _numbers(group: list[Field], dtype: str, wire_type: int) -> np.ndarray:
    """A repeated fixed-width field's values (packed or one per field) as ``dtype``."""
    size = np.dtype(dtype).itemsize
    parts = []
    for f in group:
        if f.wire_type not in (LENGTH_DELIMITED, wire_type):
            continue
        if len(f.value) % size:
            raise SceneFormatError(f"malformed protocol buffer: field {f.number} holds {len(f.value)} bytes, "
                                   f"not a whole number of {size}-byte values")
        parts.append(np.frombuffer(f.value, dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def floats(group: list[Field]) -> np.ndarray:
    """(N,) float32: a repeated ``float`` field's values, packed or one per field."""
    return _numbers(group, "<f4", FIXED32).astype(np.float32)


def doubles(group: list[Field]) -> np.ndarray:
    """(N,) float64: a repeated ``double`` field's values, packed or one per field."""
    return _numbers(group, "<f8", FIXED64).astype(np.float64)


def packed_varints(data: bytes) -> np.ndarray:
    """(N,) int64: the varints packed back to back in ``data`` (64-bit two's complement for negatives).

    Decoded at once with numpy: a packed field of millions of values (a TFDS flow field) takes
    milliseconds, not the seconds a byte-by-byte loop would.
    """
    raw = np.frombuffer(data, np.uint8)
    if len(raw) == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(raw < 0x80)
    if len(ends) == 0 or ends[-1] != len(raw) - 1:
        raise SceneFormatError("malformed protocol buffer: packed varints end inside a varint")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise SceneFormatError("malformed protocol buffer: a varint longer than 10 bytes")
    shifts = (np.arange(len(raw)) - np.repeat(starts, lengths)) * 7
    parts = (raw & 0x7F).astype(np.uint64) << shifts.astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts).view(np.int64)


def varints(group: list[Field]) -> np.ndarray:
    """(N,) int64: a repeated ``int64`` / ``int32`` / ``bool`` / enum field's values, packed or one per field."""
    parts = [np.array([f.value], np.uint64).view(np.int64) if f.wire_type == VARINT else packed_varints(f.value)
             for f in group if f.wire_type in (VARINT, LENGTH_DELIMITED)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def scalar(message_fields: dict[int, list[Field]], number: int, kind: str, default=0):
    """The last value of singular field ``number`` of a message (:func:`by_number`), or ``default`` when absent.

    ``kind`` is "int", "float", "double", "str" or "bytes" (sub-messages are bytes too).
    """
    group = message_fields.get(number)
    if not group:
        return default
    if kind == "int":
        return int(varints(group[-1:])[0])
    if kind in ("float", "double"):
        values = (floats if kind == "float" else doubles)(group[-1:])
        if len(values) != 1:
            raise SceneFormatError(f"malformed protocol buffer: field {number} is not a single {kind}")
        return float(values[0])
    value = group[-1].value
    if not isinstance(value, bytes):
        raise SceneFormatError(f"malformed protocol buffer: field {number} is a number where bytes were expected")
    return value.decode("utf-8", errors="replace") if kind == "str" else value


__all__ = ["FIXED32", "FIXED64", "LENGTH_DELIMITED", "VARINT", "Field", "by_number", "doubles", "fields", "floats",
           "packed_varints", "read_varint", "scalar", "varints"]
