"""Entry-id lists (``list<int32>``, one per pair) as flat numpy arrays: the form every pure module
computes on. Pure."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def flatten(entry_ids: pa.ListArray | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(every pair's entry ids one after another, n + 1 offsets from 0 where each pair's ids start).

    Zero-copy for the values when the lists are one chunk; a slice of a larger array is handled (its
    offsets need not start at 0)."""
    if isinstance(entry_ids, pa.ChunkedArray):
        entry_ids = entry_ids.combine_chunks() if entry_ids.num_chunks else pa.array([], pa.list_(pa.int32()))
    offsets = entry_ids.offsets.to_numpy().astype(np.int64)
    values = entry_ids.values.to_numpy()[offsets[0] : offsets[-1]]
    return values, offsets - offsets[0]
