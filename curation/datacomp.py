"""DataComp's subset files: the uids of the pairs to keep, as DataComp's resharder reads them.

A DataComp uid is 32 hexadecimal digits (128 bits). Its tools take a subset as a ``.npy`` file of a
structured array of dtype ``u8,u8``: each uid as two unsigned 64-bit integers, the high half (the first
16 digits) first, sorted and unique, so that membership is a binary search. Parsing is vectorised: the
digits of a whole batch are one byte array looked up in a table.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from studio_common.errors import CurationError

UID_DTYPE = np.dtype("u8,u8")  # fields f0 (high 64 bits), f1 (low 64 bits), as DataComp writes them
UID_DIGITS = 32
_NOT_HEX = 255
_HEX = np.full(256, _NOT_HEX, dtype=np.uint8)
for _value, _digit in enumerate("0123456789abcdef"):
    _HEX[ord(_digit)] = _HEX[ord(_digit.upper())] = _value
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)  # the nibbles of one 64-bit half, most significant first


def uid_words(uids: pa.Array | pa.ChunkedArray, column: str = "uid") -> np.ndarray:
    """The uids of a batch as DataComp's (high, low) pairs; a value that is not 32 hex digits (or a
    null) is refused in one line that names it and the column."""
    if isinstance(uids, pa.ChunkedArray):
        uids = uids.combine_chunks()
    if not pa.types.is_string(uids.type) and not pa.types.is_large_string(uids.type):
        raise CurationError(f"column {column!r} holds {uids.type}, not DataComp's uids (32 hexadecimal digits)")
    if uids.null_count:
        raise CurationError(f"column {column!r} has {uids.null_count:,} empty uids: a DataComp uid is 32 hex digits")
    wrong = pc.invert(pc.equal(pc.binary_length(uids), UID_DIGITS))
    if pc.any(wrong).as_py():
        _refuse(uids, np.flatnonzero(wrong.to_numpy(zero_copy_only=False))[0], column)
    values = _HEX[_characters(uids)].reshape(len(uids), UID_DIGITS)
    bad = (values == _NOT_HEX).any(axis=1)
    if bad.any():
        _refuse(uids, np.flatnonzero(bad)[0], column)
    words = np.empty(len(uids), dtype=UID_DTYPE)
    for field, half in zip(UID_DTYPE.names, (values[:, :16], values[:, 16:])):
        words[field] = np.bitwise_or.reduce(half.astype(np.uint64) << _SHIFTS, axis=1)
    return words


def _characters(uids: pa.Array) -> np.ndarray:
    """The bytes of every value, back to back (the values' own stretch of the data buffer)."""
    if not len(uids):
        return np.empty(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(uids.type) else np.int32
    offsets = np.frombuffer(uids.buffers()[1], dtype=width)[uids.offset : uids.offset + len(uids) + 1]
    return np.frombuffer(uids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]


def _refuse(uids: pa.Array, row: int, column: str) -> None:
    raise CurationError(
        f"column {column!r} holds {uids[int(row)].as_py()!r}, which is not a DataComp uid (32 hexadecimal "
        "digits): name the uid column with --uid-column"
    )


def sorted_unique(words: list[np.ndarray]) -> np.ndarray:
    """All the batches' uids in one array, sorted by (high, low), each once."""
    every = np.concatenate(words) if words else np.empty(0, dtype=UID_DTYPE)
    order = np.lexsort((every["f1"], every["f0"]))
    every = every[order]
    if len(every) > 1:
        repeat = (every["f0"][1:] == every["f0"][:-1]) & (every["f1"][1:] == every["f1"][:-1])
        every = every[np.concatenate(([True], ~repeat))]
    return every


def write_subset(handle: BinaryIO, words: np.ndarray) -> None:
    """The .npy file DataComp's resharder takes (``np.load`` gives the structured array back)."""
    np.save(handle, np.ascontiguousarray(words, dtype=UID_DTYPE), allow_pickle=False)


def uid_text(words: np.ndarray) -> list[str]:
    """The uids back as 32 hex digits (for tests and reports)."""
    return [f"{int(high):016x}{int(low):016x}" for high, low in zip(words["f0"], words["f1"])]
