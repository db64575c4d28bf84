"""TFRecord files and the ``tf.train.Example`` messages in them, read without TensorFlow.

A TFRecord file is a run of records, each::

    uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data

where the mask is ``((crc >> 15) | (crc << 17)) + 0xA282EAD8`` (modulo 2**32). Every length is
checked against its CRC when a file is indexed (:func:`index_records`, which seeks past the
data, so indexing a folder of large records reads a few bytes per record) and the data
against its own when a record is read (:func:`read_record`).

A ``tf.train.Example`` (``tensorflow/core/example/{example,feature}.proto``) is
``Example { Features features = 1 }``, ``Features { map<string, Feature> feature = 1 }`` and
``Feature { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3 } }``,
each list a ``repeated`` field number 1. :func:`parse_example` splits it into its named
features and decodes each only when it is asked for, so the large fields a reader does not
use (TFDS's optical flow, millions of integers) cost nothing.

Example:
    >>> hex(crc32c(b"123456789"))  # the CRC-32C check value
    '0xe3069283'
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import SceneFormatError
from . import protowire

_POLYNOMIAL = 0x82F63B78  # CRC-32C (Castagnoli), bit-reversed
_MASK_DELTA = 0xA282EAD8
_LANES = 4096  # a long message's CRC is computed over this many slices at once, then the slices are joined
_SERIAL_BELOW = 16384  # bytes under which a plain loop is faster than the sliced computation


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLYNOMIAL), table >> 1).astype(np.uint32)
    return table


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()


def _register_after(registers: np.ndarray, data: np.ndarray) -> np.ndarray:
    """CRC registers (M,) uint32 after reading ``data`` (L, M) uint8, column m into register m (no pre or post inversion)."""
    for row in data:
        registers = _TABLE[(registers ^ row) & 0xFF] ^ (registers >> 8)
    return registers


@functools.lru_cache(maxsize=8)
def _zeros_operator(count: int) -> tuple[list[int], ...]:
    """Four 256-entry tables giving a CRC register after ``count`` zero bytes, one per byte of the register before.

    The register update is linear over GF(2), so reading zeros is a 32 x 32 bit matrix; its
    columns are the images of the 32 one-bit registers.
    """
    columns = _register_after(np.uint32(1) << np.arange(32, dtype=np.uint32), np.zeros((count, 32), np.uint8))
    values = np.arange(256)
    tables = []
    for byte in range(4):
        table = np.zeros(256, np.uint32)
        for bit in range(8):
            table ^= np.where((values >> bit) & 1, columns[8 * byte + bit], 0).astype(np.uint32)
        tables.append(table.tolist())
    return tuple(tables)


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of ``data``, as TFRecord files use it.

    A long message is cut into :data:`_LANES` equal slices whose CRCs are computed together
    with numpy and then joined in order (each slice's register carried over the next slice's
    length of zeros), so a 30 MB record takes a fraction of a second.
    """
    n = len(data)
    if n < _SERIAL_BELOW:
        crc = 0xFFFFFFFF
        for byte in data:
            crc = _TABLE_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    length = -(-n // _LANES)
    padded = np.zeros(_LANES * length, np.uint8)
    pad = len(padded) - n
    padded[pad:] = np.frombuffer(data, np.uint8)  # leading zeros leave a zero register unchanged
    padded[pad:pad + 4] ^= 0xFF  # the initial register 0xFFFFFFFF, applied to the first four bytes instead
    registers = _register_after(np.zeros(_LANES, np.uint32), padded.reshape(_LANES, length).T)
    t0, t1, t2, t3 = _zeros_operator(length)
    crc = 0
    for register in registers.tolist():
        crc = t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24] ^ register
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C a TFRecord stores for ``data``."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


class Record(NamedTuple):
    """Where one record's data lies: its file, the byte offset of the data and its length."""

    path: Path
    offset: int
    length: int


def index_records(path: str | os.PathLike) -> list[Record]:
    """Every record of a TFRecord file, in order, each length checked against its CRC.

    Raises:
        SceneFormatError: the file is missing, truncated or a length's CRC does not match;
            the message names the file and the record.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneFormatError(f"{path}: no such TFRecord file")
    records = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        position = 0
        while position < size:
            header = f.read(12)
            where = f"{path}: record {len(records)} (byte {position})"
            if len(header) < 12:
                raise SceneFormatError(f"{where}: truncated header; not a TFRecord file, or cut short")
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if masked_crc32c(length_bytes) != length_crc:
                raise SceneFormatError(f"{where}: the length's CRC does not match; not a TFRecord file, or corrupt")
            (length,) = struct.unpack("<Q", length_bytes)
            if position + 16 + length > size:
                raise SceneFormatError(f"{where}: {length} bytes of data announced, the file ends before them")
            records.append(Record(path, position + 12, length))
            position += 16 + length
            f.seek(position)
    return records


def read_record(record: Record, verify: bool = True) -> bytes:
    """The data of ``record``; with ``verify`` its CRC is checked.

    Raises:
        SceneFormatError: the data cannot be read or its CRC does not match.
    """
    with open(record.path, "rb") as f:
        f.seek(record.offset)
        data = f.read(record.length + 4)
    where = f"{record.path}: the record at byte {record.offset - 12}"
    if len(data) != record.length + 4:
        raise SceneFormatError(f"{where} is cut short")
    data, (stored,) = data[:-4], struct.unpack("<I", data[-4:])
    if verify and masked_crc32c(data) != stored:
        raise SceneFormatError(f"{where}: the data's CRC does not match; the file is corrupt")
    return data


class Example:
    """A parsed ``tf.train.Example``: its feature names and, on demand, their values.

    Args:
        features: feature name -> (list kind, the list message's raw bytes), kind 1 (bytes),
            2 (float) or 3 (int64); see :func:`parse_example`.
    """

    _KINDS = {1: "bytes", 2: "float", 3: "int64"}

    def __init__(self, features: dict[str, tuple[int, bytes]]):
        self._features = features

    def __contains__(self, name: str) -> bool:
        return name in self._features

    @property
    def names(self) -> list[str]:
        """The feature names, sorted."""
        return sorted(self._features)

    def _list(self, name: str, kind: int) -> dict[int, list[protowire.Field]]:
        if name not in self._features:
            raise SceneFormatError(f"feature {name!r} is missing")
        found, raw = self._features[name]
        if found != kind and raw:
            raise SceneFormatError(f"feature {name!r} is a {self._KINDS.get(found, 'unknown')} list, "
                                   f"expected a {self._KINDS[kind]} list")
        return protowire.by_number(raw)

    def bytes_list(self, name: str) -> list[bytes]:
        """A ``bytes_list`` feature's values (encoded images, UTF-8 text)."""
        return [f.value for f in self._list(name, 1).get(1, []) if isinstance(f.value, bytes)]

    def floats(self, name: str) -> np.ndarray:
        """(N,) float32: a ``float_list`` feature's values."""
        return protowire.floats(self._list(name, 2).get(1, []))

    def ints(self, name: str) -> np.ndarray:
        """(N,) int64: an ``int64_list`` feature's values."""
        return protowire.varints(self._list(name, 3).get(1, []))

    def texts(self, name: str) -> list[str]:
        """A ``bytes_list`` feature's values decoded as UTF-8."""
        return [v.decode("utf-8", errors="replace") for v in self.bytes_list(name)]


def parse_example(data: bytes) -> Example:
    """Split a serialised ``tf.train.Example`` into its named features (values decoded on demand).

    Raises:
        SceneFormatError: the bytes are not a well-formed Example.
    """
    features: dict[str, tuple[int, bytes]] = {}
    for example_field in protowire.fields(data):
        if example_field.number != 1 or example_field.wire_type != protowire.LENGTH_DELIMITED:
            continue
        for entry in protowire.fields(example_field.value):
            if entry.number != 1 or entry.wire_type != protowire.LENGTH_DELIMITED:
                continue
            parts = protowire.by_number(entry.value)
            name = protowire.scalar(parts, 1, "str", "")
            feature = protowire.by_number(protowire.scalar(parts, 2, "bytes", b""))
            kinds = [k for k in (1, 2, 3) if k in feature]
            features[name] = (kinds[-1], feature[kinds[-1]][-1].value) if kinds else (0, b"")
    return Example(features)


__all__ = ["Example", "Record", "crc32c", "index_records", "masked_crc32c", "parse_example", "read_record"]
