"""Balancing through one keep threshold per pair (docs/design.md, "The algorithm" and "The keep threshold
and the hash").

Expectations come from the specification: the splitmix64 finaliser and the documented draw
u(p, e) are re-implemented here with Python integers, k_p = min over entries of u * c_e is computed
pair by pair, P = 1 - prod(1 - t / max(c_e, t)) is computed pair by pair, and the statistical tests
compare realised sizes and keep rates with their expectations within a few standard deviations.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from curation.balancing import (
    balanced_counts,
    entry_keep_probabilities,
    keep_probabilities,
    keep_thresholds,
    kept_mask,
    simplest_in,
    size_at,
    splitmix64,
    t_for_size,
    uniform_draws,
)

MASK = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15


def py_splitmix64(x: int) -> int:
    """The splitmix64 finaliser over Python integers, masked to 64 bits after every step."""
    z = x & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def py_uniform(pair_key: int, entry_id: int, seed: int) -> float:
    """u(p, e) exactly as the module docstring documents it, in Python integers."""
    seed_word = py_splitmix64(seed % 2**64)
    mixed = py_splitmix64(((pair_key ^ seed_word) + GAMMA * (entry_id + 1)) & MASK)
    return (mixed >> 11) / 2**53


def py_keep_probability(entries: list[int], counts, t: float) -> float:
    missed = 1.0
    for entry in entries:
        missed *= 1.0 - t / max(float(counts[entry]), t)
    return 1.0 - missed if entries else 0.0


def list_array(lists: list[list[int]]) -> pa.ListArray:
    return pa.array(lists, type=pa.list_(pa.int32()))


# --- the hash ----------------------------------------------------------------------------------------

# Published outputs of the reference splitmix64 generator (state += gamma, then the finaliser):
# Vigna's splitmix64.c seeded with 0, and the Rosetta Code "Splitmix64" task seeded with 1234567.
PUBLISHED = {
    0: [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC],
    1234567: [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ],
}


@pytest.mark.parametrize("seed", sorted(PUBLISHED))
def test_splitmix64_reproduces_published_generator_outputs(seed):
    expected = PUBLISHED[seed]
    states = [(seed + GAMMA * (i + 1)) & MASK for i in range(len(expected))]
    # The Python reference agrees with the published vectors ...
    assert [py_splitmix64(state) for state in states] == expected
    # ... and so does the vectorised finaliser.
    got = splitmix64(np.array(states, dtype=np.uint64))
    assert got.dtype == np.uint64
    assert [int(value) for value in got] == expected


def test_splitmix64_matches_python_reference_on_random_inputs():
    rng = random.Random(11)
    inputs = [rng.getrandbits(64) for _ in range(5000)] + [0, 1, MASK, MASK - 1, 2**63, 2**63 - 1]
    got = splitmix64(np.array(inputs, dtype=np.uint64))
    assert [int(value) for value in got] == [py_splitmix64(value) for value in inputs]


def test_uniform_draws_follow_the_documented_formula():
    rng = random.Random(5)
    keys = [rng.getrandbits(64) for _ in range(2000)]
    entries = [rng.randrange(0, 500_000) for _ in range(2000)]
    for seed in [0, 1, 2**64 - 1, 2**64 + 7, -3, 123456789]:
        got = uniform_draws(np.array(keys, dtype=np.uint64), np.array(entries, dtype=np.int64), seed)
        expected = [py_uniform(key, entry, seed) for key, entry in zip(keys, entries)]
        assert got.tolist() == expected


def test_uniform_draws_lie_in_unit_interval_and_look_uniform():
    rng = np.random.default_rng(3)
    n = 200_000
    keys = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    entries = rng.integers(0, 1000, size=n)
    draws = uniform_draws(keys, entries, seed=42)
    assert draws.dtype == np.float64
    assert draws.min() >= 0.0
    assert draws.max() < 1.0
    # Ten equal bins: each holds n/10 draws within 5 sigma of the binomial spread.
    histogram, _ = np.histogram(draws, bins=10, range=(0.0, 1.0))
    sigma = math.sqrt(n * 0.1 * 0.9)
    assert np.all(np.abs(histogram - n / 10) < 5 * sigma)


def test_uniform_draws_are_deterministic_and_depend_on_seed_key_and_entry():
    keys = np.arange(1, 1001, dtype=np.uint64) * np.uint64(2654435761)
    entries = np.arange(1000) % 37
    base = uniform_draws(keys, entries, seed=7)
    assert np.array_equal(base, uniform_draws(keys.copy(), entries.copy(), seed=7))
    assert np.mean(base != uniform_draws(keys, entries, seed=8)) > 0.99
    assert np.mean(base != uniform_draws(keys + np.uint64(1), entries, seed=7)) > 0.99
    assert np.mean(base != uniform_draws(keys, entries + 1, seed=7)) > 0.99


def test_uniform_draw_of_one_pair_does_not_depend_on_its_neighbours():
    keys = np.array([10, 20, 30, 40], dtype=np.uint64)
    entries = np.array([1, 2, 3, 4])
    together = uniform_draws(keys, entries, seed=1)
    alone = [uniform_draws(keys[i : i + 1], entries[i : i + 1], seed=1)[0] for i in range(4)]
    assert together.tolist() == alone


# --- keep thresholds -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_pool():
    """A few hundred pairs with random entry lists over 40 entries with mixed counts."""
    rng = random.Random(21)
    n_entries = 40
    lists = []
    for _ in range(400):
        size = rng.choice([0, 0, 1, 1, 2, 3, 5])
        lists.append(sorted(rng.sample(range(n_entries), size)))
    keys = [rng.getrandbits(64) for _ in lists]
    counts = np.array([rng.choice([1, 3, 10, 50, 400, 9000]) for _ in range(n_entries)], dtype=np.int64)
    return lists, keys, counts


def test_keep_thresholds_equal_min_of_u_times_c(small_pool):
    lists, keys, counts = small_pool
    seed = 99
    got = keep_thresholds(list_array(lists), np.array(keys, dtype=np.uint64), counts, seed)
    assert got.shape == (len(lists),)
    for row, (entries, key) in enumerate(zip(lists, keys)):
        if not entries:
            assert got[row] == math.inf
        else:
            expected = min(py_uniform(key, entry, seed) * float(counts[entry]) for entry in entries)
            assert got[row] == expected, row


def test_keep_thresholds_accept_chunked_and_sliced_lists(small_pool):
    lists, keys, counts = small_pool
    key_array = np.array(keys, dtype=np.uint64)
    whole = keep_thresholds(list_array(lists), key_array, counts, 5)
    chunked = pa.chunked_array([list_array(lists[:123]), list_array(lists[123:])])
    assert np.array_equal(keep_thresholds(chunked, key_array, counts, 5), whole)
    sliced = list_array(lists)[100:250]
    assert np.array_equal(keep_thresholds(sliced, key_array[100:250], counts, 5), whole[100:250])


def test_keep_thresholds_of_unmatched_pairs_are_infinite():
    lists = [[], [], []]
    got = keep_thresholds(list_array(lists), np.array([1, 2, 3], dtype=np.uint64), np.array([5]), 0)
    assert np.all(np.isinf(got))
    assert not kept_mask(got, 1e300).any()


def test_keep_thresholds_depend_on_seed(small_pool):
    lists, keys, counts = small_pool
    key_array = np.array(keys, dtype=np.uint64)
    a = keep_thresholds(list_array(lists), key_array, counts, 1)
    b = keep_thresholds(list_array(lists), key_array, counts, 2)
    matched = np.isfinite(a)
    assert np.array_equal(matched, np.isfinite(b))
    assert np.mean(a[matched] != b[matched]) > 0.95


def test_pair_holding_a_tail_entry_is_always_kept(small_pool):
    lists, keys, counts = small_pool
    thresholds = keep_thresholds(list_array(lists), np.array(keys, dtype=np.uint64), counts, 17)
    checked = 0
    for t in [1, 2.5, 3, 10, 50, 51, 400, 9000]:
        kept = kept_mask(thresholds, t)
        for row, entries in enumerate(lists):
            if any(counts[entry] <= t for entry in entries):
                assert kept[row], (t, row)
                checked += 1
    assert checked > 500


def test_tail_entry_kept_even_when_draw_is_maximal():
    # u is at most 1 - 2**-53; u * c must stay strictly below c so that c_e <= t keeps the pair.
    u_max = (2**53 - 1) / 2**53
    for c in [1, 2, 3, 7, 1000, 20_000, 123_456_789, 2**40 + 1]:
        assert u_max * float(c) < c


# --- statistics: the subset at t has the distribution of MetaCLIP's step 4 ------------------------------


@pytest.fixture(scope="module")
def big_pool():
    """200k synthetic pairs: head entries (counts far above t) and tail entries, random lists."""
    rng = np.random.default_rng(2024)
    n_pairs = 200_000
    n_entries = 300
    counts = np.where(
        np.arange(n_entries) < 60,
        rng.integers(2_000, 60_000, size=n_entries),  # head at the t used below
        rng.integers(1, 400, size=n_entries),  # tail
    ).astype(np.int64)
    sizes = rng.choice([0, 1, 1, 1, 2, 2, 3, 4], size=n_pairs)
    # Mostly head entries, as in a real pool where a few entries hold most matches.
    rows = np.repeat(np.arange(n_pairs), sizes)
    picked = np.where(
        rng.random(len(rows)) < 0.9,
        rng.integers(0, 60, size=len(rows)),
        rng.integers(60, n_entries, size=len(rows)),
    )
    # One entry at most once per pair, ascending: unique (row, entry) codes are sorted by both.
    codes = np.unique(rows * n_entries + picked)
    rows, values = codes // n_entries, codes % n_entries
    offsets = np.zeros(n_pairs + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n_pairs), out=offsets[1:])
    entry_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(np.int32)))
    lists = entry_ids.to_pylist()
    keys = rng.integers(0, 2**64 - 1, size=n_pairs, dtype=np.uint64, endpoint=True)
    thresholds = keep_thresholds(entry_ids, keys, counts, seed=7)
    return lists, entry_ids, keys, counts, thresholds


@pytest.mark.parametrize("t", [500.0, 2_000.0, 10_000.0])
def test_realised_size_is_within_five_sigma_of_expected(big_pool, t):
    lists, entry_ids, _, counts, thresholds = big_pool
    probabilities = keep_probabilities(entry_ids, counts, t)
    expected = probabilities.sum()
    sigma = math.sqrt((probabilities * (1 - probabilities)).sum())
    realised = int(kept_mask(thresholds, t).sum())
    assert sigma > 10  # the test is about randomness, not about pairs that are always kept
    assert abs(realised - expected) < 5 * sigma


def test_head_entry_alone_is_kept_with_probability_t_over_c():
    n = 60_000
    c, t = 1_000, 130.0
    keys = np.random.default_rng(8).integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    counts = np.array([5, c], dtype=np.int64)
    thresholds = keep_thresholds(list_array([[1]] * n), keys, counts, seed=3)
    rate = kept_mask(thresholds, t).mean()
    p = t / c
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_per_entry_kept_fraction_in_a_mixed_pool(big_pool):
    # Among pairs whose only entry is a given head entry, about t / c_e are kept.
    lists, _, _, counts, thresholds = big_pool
    t = 1_500.0
    kept = kept_mask(thresholds, t)
    by_entry: dict[int, list[bool]] = {}
    for row, entries in enumerate(lists):
        if len(entries) == 1 and entries[0] < 60:
            by_entry.setdefault(entries[0], []).append(bool(kept[row]))
    checked = 0
    for entry, flags in by_entry.items():
        n = len(flags)
        if n < 300:
            continue
        p = t / counts[entry]
        assert abs(np.mean(flags) - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, entry
        checked += 1
    assert checked > 20


def test_two_head_entries_combine_as_independent_chances():
    n = 60_000
    c1, c2, t = 400, 250, 100.0
    keys = np.random.default_rng(9).integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    counts = np.array([0, c1, c2], dtype=np.int64)
    thresholds = keep_thresholds(list_array([[1, 2]] * n), keys, counts, seed=12)
    rate = kept_mask(thresholds, t).mean()
    p = 1 - (1 - t / c1) * (1 - t / c2)
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    # And the formula is not the same as either entry alone, so the check can tell them apart.
    assert abs(p - t / c1) > 10 * math.sqrt(p * (1 - p) / n)


# --- keep probabilities, sizes and thresholds for sizes ----------------------------------------------


def test_entry_keep_probabilities_follow_the_formula():
    counts = np.array([0, 1, 5, 10, 11, 1000])
    t = 10.0
    expected = [t / max(float(c), t) for c in counts]
    assert entry_keep_probabilities(counts, t).tolist() == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("t", [1.0, 7.5, 50.0, 400.0, 5000.0, 1e9])
def test_keep_probabilities_equal_the_naive_formula(small_pool, t):
    lists, _, counts = small_pool
    got = keep_probabilities(list_array(lists), counts, t)
    expected = [py_keep_probability(entries, counts, t) for entries in lists]
    assert got == pytest.approx(expected, abs=1e-12)
    for row, entries in enumerate(lists):
        if not entries:
            assert got[row] == 0.0
        elif any(counts[e] <= t for e in entries):
            assert got[row] == pytest.approx(1.0, abs=1e-15)


def test_subsets_are_nested(big_pool):
    *_, thresholds = big_pool
    ts = sorted(np.random.default_rng(1).uniform(0, 5_000, size=12).tolist())
    for low, high in zip(ts, ts[1:]):
        kept_low = kept_mask(thresholds, low)
        kept_high = kept_mask(thresholds, high)
        assert not np.any(kept_low & ~kept_high)
        assert kept_high.sum() >= kept_low.sum()


def test_size_at_equals_count_below_t(big_pool):
    *_, thresholds = big_pool
    ordered = np.sort(thresholds)
    finite = ordered[np.isfinite(ordered)]
    probes = [0.0, 1e-9, 1.0, 123.4, 2_000.0, 1e12, math.inf]
    probes += finite[[0, 10, len(finite) // 2, -1]].tolist()  # exactly on a threshold: strict <
    for t in probes:
        assert size_at(ordered, t) == int((thresholds < t).sum()), t
        assert size_at(ordered, t) == int(kept_mask(thresholds, t).sum())


def test_t_for_size_hits_every_target_exactly(big_pool):
    *_, thresholds = big_pool
    ordered = np.sort(thresholds)
    matched = int(np.isfinite(thresholds).sum())
    assert len(np.unique(ordered[:matched])) == matched  # distinct keys: every size is reachable
    for target in [0, 1, 2, 17, matched // 3, matched // 2, matched - 1, matched]:
        t, realised = t_for_size(ordered, target)
        assert realised == target
        assert int((thresholds < t).sum()) == target
        assert math.isfinite(t)


def test_t_for_size_beyond_matched_pairs_gives_all_matched(big_pool):
    *_, thresholds = big_pool
    ordered = np.sort(thresholds)
    matched = int(np.isfinite(thresholds).sum())
    t, realised = t_for_size(ordered, matched + 1000)
    assert realised == matched == int((thresholds < t).sum())


def test_t_for_size_with_tied_thresholds_reports_the_truth():
    # Duplicate pair keys with the same entries draw the same u, hence equal thresholds.
    rng = random.Random(4)
    lists, keys = [], []
    for _ in range(120):
        entries = sorted(rng.sample(range(10), rng.randint(1, 3)))
        key = rng.getrandbits(64)
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            lists.append(entries)
            keys.append(key)
    lists += [[], []]
    keys += [1, 2]
    counts = np.array([30, 60, 90, 200, 500, 1000, 5, 10, 80, 300], dtype=np.int64)
    thresholds = keep_thresholds(list_array(lists), np.array(keys, dtype=np.uint64), counts, 0)
    ordered = np.sort(thresholds)
    matched = int(np.isfinite(thresholds).sum())
    reachable = sorted({int((thresholds < value).sum()) for value in ordered[:matched]} | {matched})
    assert len(reachable) < matched  # the ties do make some sizes unreachable
    for target in range(0, matched + 1):
        t, realised = t_for_size(ordered, target)
        assert realised == int((thresholds < t).sum()), target
        # The nearest reachable size at or above the target.
        assert realised == min(size for size in reachable if size >= target), target


def test_t_for_size_on_empty_and_unmatched_pools():
    t, realised = t_for_size(np.array([], dtype=np.float64), 10)
    assert realised == 0
    t, realised = t_for_size(np.array([math.inf, math.inf]), 1)
    assert realised == 0
    assert int((np.array([math.inf, math.inf]) < t).sum()) == 0


# --- simplest_in ------------------------------------------------------------------------------------------


def significant_digits(value: float) -> int:
    """Significant digits of the shortest decimal that round-trips to value."""
    digits = Decimal(repr(value)).normalize().as_tuple().digits
    return len(digits)


def fewest_digits_in(low: float, high: float) -> int:
    """Naively: the smallest d such that some float with d significant digits lies in (low, high]."""
    for d in range(1, 18):
        # Every d-digit decimal is a multiple of 10**(E - d + 1) for some exponent E; only exponents
        # from that of low (or of high when low <= 0) up to that of high can hold one in the interval.
        top = math.floor(math.log10(high))
        bottom = math.floor(math.log10(low)) if low > 0 else top
        for exponent in range(bottom, top + 1):
            step = Decimal(10) ** (exponent - d + 1)
            start = (Decimal(low) / step).to_integral_value(rounding="ROUND_FLOOR") if low > 0 else Decimal(1)
            for multiple in range(int(start) - 1, int(start) + 3):
                value = float(multiple * step)
                if low < value <= high:
                    return d
    return 17


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (3.0, 5.0),
        (0.0, 0.37),
        (0.1, 0.2),
        (1.1, 1.3),
        (123.4, 123.6),
        (19_999.5, 20_000.25),
        (0.3, 0.5),  # 0.4
        (0.7, 0.9),  # 0.8
        (0.94, 0.99),  # 0.95
        (2.01, 2.06),  # 2.02
    ],
)
def test_simplest_in_picks_a_shortest_number(low, high):
    value = simplest_in(low, high)
    assert low < value <= high
    assert significant_digits(value) == fewest_digits_in(low, high), value


def test_simplest_in_on_random_intervals():
    rng = random.Random(77)
    for _ in range(2000):
        low = rng.uniform(0, 10) * 10 ** rng.randint(-4, 6)
        high = low + rng.uniform(1e-9, 1) * 10 ** rng.randint(-6, 6)
        if not low < high:
            continue
        value = simplest_in(low, high)
        assert low < value <= high, (low, high, value)
        assert significant_digits(value) == fewest_digits_in(low, high), (low, high, value)


def test_simplest_in_with_unbounded_top_and_empty_interval():
    value = simplest_in(12.34, math.inf)
    assert 12.34 < value < math.inf
    assert significant_digits(value) <= 2
    assert 0.0 < simplest_in(0.0, math.inf) < math.inf
    with pytest.raises(ValueError):
        simplest_in(2.0, 2.0)
    with pytest.raises(ValueError):
        simplest_in(3.0, 2.0)


# --- balanced counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.5, 10.0, 60.0, 1_000.0, math.inf])
def test_balanced_counts_equal_naive_count_over_kept_pairs(small_pool, t):
    lists, keys, counts = small_pool
    entry_ids = list_array(lists)
    thresholds = keep_thresholds(entry_ids, np.array(keys, dtype=np.uint64), counts, 31)
    got = balanced_counts(entry_ids, thresholds, t, len(counts))
    expected = np.zeros(len(counts), dtype=np.int64)
    for row, entries in enumerate(lists):
        if thresholds[row] < t:
            for entry in entries:
                expected[entry] += 1
    assert got.dtype == np.int64
    assert got.tolist() == expected.tolist()


def test_balanced_counts_keep_every_match_of_entries_counted_at_most_t(big_pool):
    # Every pair holding an entry with c <= t (the tail, c < t, and a head entry at exactly t) is kept,
    # so such an entry keeps all its matches; no entry gains.
    lists, entry_ids, _, counts, thresholds = big_pool
    t = 1_000.0
    got = balanced_counts(entry_ids, thresholds, t, len(counts))
    before = balanced_counts(entry_ids, thresholds, math.inf, len(counts))
    tail = counts <= t
    matched_tail = tail & (before > 0)
    assert np.array_equal(got[matched_tail], before[matched_tail])
    assert np.all(got <= before)
