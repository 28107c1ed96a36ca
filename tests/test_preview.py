"""The balance preview answers every t exactly as a full pass over the run would."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curation import balancing, counting
from curation.preview import BalancePreview


@pytest.fixture(scope="module")
def pool() -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n_entries, n_pairs = 300, 20_000
    weights = 1.0 / np.arange(1, n_entries + 1) ** 1.1
    lists = []
    for _ in range(n_pairs):
        size = rng.choice([0, 0, 1, 2, 3, 5])
        lists.append(sorted(set(rng.choice(n_entries, size=size, p=weights / weights.sum()).tolist())))
    entry_ids = pa.array(lists, type=pa.list_(pa.int32()))
    counts = np.bincount(np.concatenate([np.array(x, dtype=np.int64) for x in lists if x]), minlength=n_entries)
    thresholds = balancing.keep_thresholds(entry_ids, rng.integers(0, 2**63, n_pairs).astype(np.uint64), counts, 1)
    return entry_ids, thresholds, counts


@pytest.mark.parametrize("t", [0.5, 1, 3, 17, 100, 640.5, 5_000, 1e9])
def test_answers_equal_a_full_pass(pool, t: float) -> None:
    entry_ids, thresholds, counts = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    assert preview.size_at(t) == int((thresholds < t).sum())
    full = balancing.keep_probabilities(entry_ids, counts, t).sum()
    assert preview.expected_size_at(t) == pytest.approx(full, rel=1e-6)
    assert preview.balanced_counts(t).tolist() == balancing.balanced_counts(entry_ids, thresholds, t, len(counts)).tolist()
    assert preview.pairs == len(entry_ids)
    assert preview.head_tail(t) == counting.head_tail(counts, t)
    balanced = preview.balanced_counts(t)
    for some in (np.array([0, 1, 2, 7]), np.array([0, 150, 299])):  # indexed top entries; rare ones too
        assert preview.kept_counts(some, t).tolist() == balanced[some].tolist()
    assert preview.matched_pairs == sum(1 for x in entry_ids.to_pylist() if x)


def test_chunked_input_and_an_empty_run() -> None:
    chunked = pa.chunked_array([pa.array([[0], []], pa.list_(pa.int32())), pa.array([[0, 1]], pa.list_(pa.int32()))])
    counts = np.array([2, 1])
    preview = BalancePreview.build(chunked, np.array([0.5, np.inf, 1.5]), counts)
    assert preview.size_at(1.0) == 1 and preview.size_at(2.0) == 2
    # [0]: c = 2 > t, P = 1/2; []: never; [0, 1]: entry 1 has c = 1 <= t, kept for sure.
    assert preview.expected_size_at(1.0) == pytest.approx(1.5)
    empty = BalancePreview.build(pa.chunked_array([], pa.list_(pa.int32())), np.zeros(0), np.zeros(3, np.int64))
    assert empty.size_at(10) == 0 and empty.expected_size_at(10) == 0.0
