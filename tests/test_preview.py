"""The balance preview: exact answers where a binary search or the counts suffice, estimates with
honest standard errors where a pass over every pair would be needed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from curation import balancing, counting
from curation.preview import BalancePreview, PairSample, in_sample_order, min_counts, reordered, sample_order
from curation.rundir import numbers


@pytest.fixture(scope="module")
def pool() -> tuple[pa.ListArray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n_entries, n_pairs = 300, 20_000
    weights = 1.0 / np.arange(1, n_entries + 1) ** 1.1
    lists = []
    for _ in range(n_pairs):
        size = rng.choice([0, 0, 1, 2, 3, 5])
        lists.append(sorted(set(rng.choice(n_entries, size=size, p=weights / weights.sum()).tolist())))
    entry_ids = pa.array(lists, type=pa.list_(pa.int32()))
    counts = np.bincount(np.concatenate([np.array(x, dtype=np.int64) for x in lists if x]), minlength=n_entries)
    keys = rng.integers(0, 2**63, n_pairs).astype(np.uint64)
    thresholds = balancing.keep_thresholds(entry_ids, keys, counts, 1)
    return entry_ids, thresholds, counts, keys


@pytest.mark.parametrize("t", [0.5, 1, 3, 17, 100, 640.5, 5_000, 1e9])
def test_with_every_pair_in_the_sample_answers_equal_a_full_pass(pool, t: float) -> None:
    entry_ids, thresholds, counts, _ = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    assert preview.size_at(t) == int((thresholds < t).sum())
    expected = preview.expected_size_at(t)
    assert expected.exact and expected.stderr == 0
    assert expected.value == pytest.approx(balancing.keep_probabilities(entry_ids, counts, t).sum(), rel=1e-6)
    balanced, errors = preview.balanced_counts(t)
    assert balanced.tolist() == balancing.balanced_counts(entry_ids, thresholds, t, len(counts)).tolist()
    assert not errors.any()
    assert preview.pairs == len(entry_ids)
    assert preview.head_tail(t) == counting.head_tail(counts, t)
    for some in (np.array([0, 1, 2, 7]), np.array([0, 150, 299])):  # indexed top entries; rare ones too
        assert preview.kept_counts(some, t)[0].tolist() == balanced[some].tolist()
    assert preview.matched_pairs == sum(1 for x in entry_ids.to_pylist() if x)


def test_kept_counts_of_the_charted_entries_at_a_t_equal_to_a_pair_threshold(pool) -> None:
    """The charts' entries are answered by a binary search per entry: a pair whose k equals t is not
    kept (k < t), as in a full pass."""
    entry_ids, thresholds, counts, _ = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    finite = np.sort(thresholds[np.isfinite(thresholds)])
    for t in (float(finite[len(finite) // 3]), float(finite[len(finite) // 2]), float(finite[-1])):
        balanced = balancing.balanced_counts(entry_ids, thresholds, t, len(counts))
        some = np.array([0, 1, 2, 7])
        assert preview.kept_counts(some, t)[0].tolist() == balanced[some].tolist()


def test_head_and_tail_at_a_t_equal_to_a_count(pool) -> None:
    """An entry counted exactly t times is head, and outside the tail share, as in counting.head_tail."""
    entry_ids, thresholds, counts, _ = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    for t in np.unique(counts[counts > 0])[::7]:
        split = preview.head_tail(float(t))
        assert split == counting.head_tail(counts, float(t))
        assert split.head_entries == int((counts >= t).sum())
        assert split.tail_matches == int(counts[counts < t].sum())
        assert split.tail_share == pytest.approx(split.tail_matches / split.matches)


def test_the_expected_size_is_the_same_in_chunks_of_any_size(pool, monkeypatch) -> None:
    entry_ids, thresholds, counts, _ = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    whole = [preview.expected_size_at(t).value for t in (1, 17, 640.5)]
    monkeypatch.setattr("curation.preview.CHUNK_SLOTS", 7)  # blocks of a few pairs, the last one short
    assert [preview.expected_size_at(t).value for t in (1, 17, 640.5)] == whole
    assert whole[0] == pytest.approx(balancing.keep_probabilities(entry_ids, counts, 1).sum(), rel=1e-6)


def test_t_for_size_is_an_order_statistic_of_the_matched_pairs(pool) -> None:
    entry_ids, thresholds, counts, _ = pool
    preview = BalancePreview.build(entry_ids, thresholds, counts)
    for size in (0, 1, 1000, preview.matched_pairs, preview.matched_pairs + 5):
        assert preview.t_for_size(size) == balancing.t_for_size(np.sort(thresholds), size)


def test_chunked_input_and_an_empty_run() -> None:
    chunked = pa.chunked_array([pa.array([[0], []], pa.list_(pa.int32())), pa.array([[0, 1]], pa.list_(pa.int32()))])
    counts = np.array([2, 1])
    preview = BalancePreview.build(chunked, np.array([0.5, np.inf, 1.5]), counts)
    assert preview.size_at(1.0) == 1 and preview.size_at(2.0) == 2
    # [0]: c = 2 > t, P = 1/2; []: never; [0, 1]: entry 1 has c = 1 <= t, kept for sure.
    assert preview.expected_size_at(1.0).value == pytest.approx(1.5)
    empty = BalancePreview.build(pa.chunked_array([], pa.list_(pa.int32())), np.zeros(0), np.zeros(3, np.int64))
    assert empty.size_at(10) == 0 and empty.expected_size_at(10).value == 0.0


def sampled(pool, seed: int, rate: float) -> tuple[BalancePreview, np.ndarray]:
    """A preview whose sample is the pairs ``in_sample`` picks, as the stored files hold it."""
    entry_ids, _, counts, keys = pool
    thresholds = balancing.keep_thresholds(entry_ids, keys, counts, seed)
    lists = entry_ids.to_pylist()
    chosen = [i for i in np.flatnonzero(balancing.in_sample(keys, seed, rate)) if lists[i]]
    offsets = np.concatenate(([0], np.cumsum([len(lists[i]) for i in chosen])))
    flat = np.array([e for i in chosen for e in lists[i]], dtype=np.int32)
    finite = np.sort(thresholds[np.isfinite(thresholds)])
    return BalancePreview.from_parts(counts, finite, len(lists), offsets, flat, thresholds[chosen]), thresholds


@pytest.mark.slow
def test_estimates_hold_the_truth_within_two_standard_errors_about_95_percent_of_the_time(pool) -> None:
    """Over many independent samples (one per seed), z = (estimate - truth) / stderr behaves as a
    standard normal: about 95% within +-2, and stderr matches the estimates' real spread."""
    entry_ids, _, counts, _ = pool
    z_expected, z_kept, spread, claimed = [], [], [], []
    t, entry = 60.0, 0  # entry 0 is the most matched: a head entry at this t
    for seed in range(60):
        preview, thresholds = sampled(pool, seed, rate=0.1)
        truth = balancing.keep_probabilities(entry_ids, counts, t).sum()
        estimate = preview.expected_size_at(t)
        assert not estimate.exact and 0.05 < estimate.sampled / estimate.population < 0.15
        z_expected.append((estimate.value - truth) / estimate.stderr)
        spread.append(estimate.value)
        claimed.append(estimate.stderr)
        kept_truth = balancing.balanced_counts(entry_ids, thresholds, t, len(counts))[entry]
        values, errors = preview.kept_counts(np.array([entry]), t)
        z_kept.append((values[0] - kept_truth) / errors[0])
    for z in (np.array(z_expected), np.array(z_kept)):
        assert 0.85 <= np.mean(np.abs(z) < 2) <= 1.0, z
        assert abs(np.mean(z)) < 0.5, z  # unbiased
    # The claimed standard error is the real one: the estimates' spread over samples agrees within 30%.
    assert 0.7 < np.std(spread) / np.mean(claimed) < 1.3


def test_pair_sample_of_no_pairs() -> None:
    sample = PairSample.build(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.array([3, 1]), 0)
    assert sample.expected(5.0).value == 0.0
    values, errors = sample.kept_counts(5.0, 2)
    assert values.tolist() == [0.0, 0.0] and errors.tolist() == [0.0, 0.0]


def test_a_sample_stored_in_order_reads_as_one_stored_in_any_order(pool) -> None:
    """The preview's merge stores its sample in the order the estimates work in, and reading it then
    sorts nothing: the same sample in shard order, shuffled, or already ordered gives equal answers."""
    entry_ids, thresholds, counts, _ = pool
    lists = entry_ids.to_pylist()
    matched = [i for i, ids in enumerate(lists) if ids]
    rng = np.random.default_rng(9)

    def sample_of(order: list[int]) -> PairSample:
        sizes = [len(lists[i]) for i in order]
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        flat = np.array([e for i in order for e in lists[i]], dtype=np.int32)
        return PairSample.build(offsets, flat, thresholds[order], counts, len(matched))

    as_read = sample_of(matched)
    offsets = np.concatenate(([0], np.cumsum([len(lists[i]) for i in matched]))).astype(np.int64)
    flat = np.array([e for i in matched for e in lists[i]], dtype=np.int32)
    order = sample_order(np.diff(offsets), min_counts(offsets, flat, counts))
    stored = sample_of([matched[i] for i in order])
    assert in_sample_order(np.diff(stored.offsets), stored.min_counts)
    assert not in_sample_order(np.diff(offsets), min_counts(offsets, flat, counts))  # shard order is not
    shuffled = sample_of(list(rng.permutation(matched)))
    for sample in (stored, shuffled):
        assert sample.groups == as_read.groups
        assert np.array_equal(sample.min_counts, as_read.min_counts)
        for t in (1, 17, 640.5, 1e9):
            assert sample.expected(t).value == pytest.approx(as_read.expected(t).value, rel=1e-12)
            assert np.allclose(sample.kept_counts(t, len(counts))[0], as_read.kept_counts(t, len(counts))[0])
    new_offsets, new_flat = reordered(offsets, flat, order)
    assert [new_flat[a:b].tolist() for a, b in zip(new_offsets[:-1], new_offsets[1:])] == [
        lists[matched[i]] for i in order
    ]


@settings(max_examples=examples(300), deadline=None)
@given(
    chunks=st.lists(st.lists(st.integers(-(2**62), 2**62), max_size=20), min_size=1, max_size=4),
    start=st.integers(0, 5),
    kind=st.sampled_from([pa.int64(), pa.int32(), pa.float64(), pa.uint64()]),
)
def test_numbers_are_arrow_s_own_values(chunks: list[list[int]], start: int, kind: pa.DataType) -> None:
    """rundir.numbers reads a numeric column as numpy without Arrow's to_numpy (which imports pandas),
    slices and chunks included."""
    fit = {pa.int32(): 2**31 - 1, pa.float64(): 2**52}.get(kind, 2**62)  # what each type holds exactly
    values = [[abs(v) % fit if kind == pa.uint64() else max(-fit, min(fit, v)) for v in c] for c in chunks]
    arrays = [pa.array(c, type=kind) for c in values]
    column = pa.chunked_array([a.slice(min(start, len(a))) for a in arrays], type=kind)
    assert numbers(column).tolist() == column.to_pylist()
    assert numbers(column).dtype == np.dtype(kind.to_pandas_dtype())
    with pytest.raises(ValueError):
        numbers(pa.chunked_array([pa.array([1, None], type=kind)]))
