"""Entry-id lists flattened the one way every pure module needs them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.entry_lists import flatten

LISTS = [[1, 4], [], [2], [0, 3, 5]]


def test_flat_values_and_offsets_from_zero() -> None:
    values, offsets = flatten(pa.array(LISTS, pa.list_(pa.int32())))
    assert values.tolist() == [1, 4, 2, 0, 3, 5] and offsets.tolist() == [0, 2, 2, 3, 6]
    assert offsets.dtype == np.int64


def test_a_slice_starts_its_offsets_at_zero() -> None:
    values, offsets = flatten(pa.array(LISTS, pa.list_(pa.int32())).slice(2, 2))
    assert values.tolist() == [2, 0, 3, 5] and offsets.tolist() == [0, 1, 4]


def test_chunks_are_joined_and_no_chunks_is_no_pairs() -> None:
    chunked = pa.chunked_array([pa.array(LISTS[:2], pa.list_(pa.int32())), pa.array(LISTS[2:], pa.list_(pa.int32()))])
    values, offsets = flatten(chunked)
    assert values.tolist() == [1, 4, 2, 0, 3, 5] and offsets.tolist() == [0, 2, 2, 3, 6]
    values, offsets = flatten(pa.chunked_array([], pa.list_(pa.int32())))
    assert len(values) == 0 and offsets.tolist() == [0]
