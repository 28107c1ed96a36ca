"""The bytes behind an Arrow string or binary array, as numpy views: what every vectorised byte-level
routine (spacing, tokenising, hashing) starts from. Pure: no copies unless the input needs one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def binary_parts(strings: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets): value i is ``bytes[offsets[i]:offsets[i + 1]]``; a null reads as empty.

    Offsets are int64 and start at 0. String views and chunked arrays are made contiguous first.
    """
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks() if strings.num_chunks != 1 else strings.chunk(0)
    kind = strings.type
    if not (
        pa.types.is_binary(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_large_string(kind)
    ):
        strings = pc.cast(strings, pa.large_binary() if pa.types.is_large_string(kind) else pa.binary())
        kind = strings.type
    if strings.null_count:
        strings = pc.fill_null(
            strings, pa.scalar(b"" if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) else "", type=kind)
        )  # a null slot may hold bytes
    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    _, offsets_buffer, data_buffer = strings.buffers()[:3]
    width = np.int64 if pa.types.is_large_binary(kind) or pa.types.is_large_string(kind) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[strings.offset : strings.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def string_array(values: Sequence[str]) -> pa.Array:
    """A list of Python strings as an Arrow string array, built from their UTF-8 bytes.

    ``pa.array`` on a list (or an object ndarray) first asks whether it is a pandas object, which
    imports pandas: half a second of every matching run's start, for 500k metadata entries.
    A lone surrogate is refused (UnicodeEncodeError), as ``pa.array`` refuses it.
    """
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets.astype(np.int32)), data)
    return pa.LargeStringArray.from_buffers(len(encoded), pa.py_buffer(offsets), data)
