"""Counting (docs/design.md, "The algorithm": counting and the tail share): c_e, merging, p(t) and head/tail at t.

Expectations are naive Python computations over the same inputs: counting matches pair by pair,
p(t) as a sum over entries with c_e < t, and its inverse by trying every integer t in a range.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from curation.counting import count_entries, head_tail, merge_counts, t_for_tail_share, tail_share


def list_array(lists: list[list[int]]) -> pa.ListArray:
    return pa.array(lists, type=pa.list_(pa.int32()))


def naive_counts(lists: list[list[int]], n_entries: int) -> list[int]:
    counts = [0] * n_entries
    for entries in lists:
        for entry in entries:
            counts[entry] += 1
    return counts


def naive_tail_share(counts, t: float) -> float:
    total = sum(int(c) for c in counts)
    if total == 0:
        return 0.0
    return sum(int(c) for c in counts if c < t) / total


def random_lists(rng: random.Random, n_pairs: int, n_entries: int) -> list[list[int]]:
    return [sorted(rng.sample(range(n_entries), rng.choice([0, 0, 1, 2, 3, 6]))) for _ in range(n_pairs)]


def random_counts(rng: random.Random, n_entries: int) -> np.ndarray:
    # Zeros, ties and a long tail, as in real entry counts.
    return np.array(
        [rng.choice([0, 0, 1, 1, 2, 3, 5, 8, rng.randint(1, 50), rng.randint(50, 3000)]) for _ in range(n_entries)],
        dtype=np.int64,
    )


# --- counts ---------------------------------------------------------------------------------------------


def test_count_entries_equals_naive_count():
    rng = random.Random(1)
    lists = random_lists(rng, 2000, 50)
    got = count_entries(list_array(lists), 50)
    assert got.dtype == np.int64
    assert got.tolist() == naive_counts(lists, 50)


def test_count_entries_includes_unmatched_entries_at_the_end():
    got = count_entries(list_array([[0], [0, 2], []]), 6)
    assert got.tolist() == [2, 0, 1, 0, 0, 0]


def test_count_entries_of_no_pairs():
    assert count_entries(list_array([]), 4).tolist() == [0, 0, 0, 0]
    assert count_entries(list_array([[], []]), 3).tolist() == [0, 0, 0]


def test_count_entries_over_chunked_and_sliced_lists():
    rng = random.Random(2)
    lists = random_lists(rng, 500, 30)
    chunked = pa.chunked_array([list_array(lists[:200]), list_array([]), list_array(lists[200:])])
    assert count_entries(chunked, 30).tolist() == naive_counts(lists, 30)
    sliced = list_array(lists)[137:411]
    assert count_entries(sliced, 30).tolist() == naive_counts(lists[137:411], 30)


def test_merge_counts_sums_shards():
    rng = random.Random(3)
    lists = random_lists(rng, 900, 40)
    shards = [lists[:100], lists[100:450], [], lists[450:]]
    parts = [count_entries(list_array(shard), 40) for shard in shards]
    merged = merge_counts(parts, 40)
    assert merged.dtype == np.int64
    assert merged.tolist() == naive_counts(lists, 40)
    assert merged.tolist() == count_entries(list_array(lists), 40).tolist()


def test_merge_counts_of_nothing_is_zero():
    assert merge_counts([], 5).tolist() == [0] * 5


def test_merge_counts_does_not_modify_its_inputs():
    parts = [np.array([1, 2, 3], dtype=np.int64), np.array([10, 20, 30], dtype=np.int64)]
    merged = merge_counts(parts, 3)
    assert merged.tolist() == [11, 22, 33]
    assert parts[0].tolist() == [1, 2, 3]
    assert parts[1].tolist() == [10, 20, 30]


# --- the tail share p(t) ---------------------------------------------------------------------------------


def test_tail_share_is_strictly_below_t():
    counts = np.array([1, 5, 5, 10, 0, 100])
    total = 121
    assert tail_share(counts, 5) == pytest.approx(1 / total)  # the 5s are not below 5
    assert tail_share(counts, 5.5) == pytest.approx(11 / total)
    assert tail_share(counts, 10) == pytest.approx(11 / total)
    assert tail_share(counts, 11) == pytest.approx(21 / total)
    assert tail_share(counts, 100) == pytest.approx(21 / total)
    assert tail_share(counts, 101) == 1.0
    assert tail_share(counts, 1) == 0.0


def test_tail_share_matches_naive_on_random_counts():
    rng = random.Random(4)
    for _ in range(30):
        counts = random_counts(rng, rng.randint(1, 80))
        for t in [0, 1, 2, 2.5, 3, 8, 49.9, 50, 51, 1000, 3001]:
            assert tail_share(counts, t) == pytest.approx(naive_tail_share(counts, t), abs=1e-15)


def test_tail_share_of_an_empty_pool_is_zero():
    assert tail_share(np.zeros(10, dtype=np.int64), 100) == 0.0
    assert tail_share(np.array([], dtype=np.int64), 100) == 0.0


def test_tail_share_never_decreases_with_t():
    counts = random_counts(random.Random(5), 200)
    shares = [tail_share(counts, t) for t in range(0, 3100, 7)]
    assert all(a <= b for a, b in zip(shares, shares[1:]))


def brute_force_t_for_tail_share(shares_by_t: dict[int, float], share: float) -> int:
    """The smallest integer t >= 1 with p(t) >= share, trying every t in turn."""
    for t in sorted(shares_by_t):
        if shares_by_t[t] >= share:
            return t
    raise AssertionError("share not reachable")


def test_t_for_tail_share_matches_brute_force_on_random_counts():
    rng = random.Random(6)
    checked = 0
    for _ in range(40):
        counts = random_counts(rng, rng.randint(1, 60))
        if counts.sum() == 0:
            continue
        # p(t) for every integer t from 1 to max(c) + 1, where it reaches 1.
        shares_by_t = {t: naive_tail_share(counts, t) for t in range(1, int(counts.max()) + 2)}
        # Random targets, targets sitting exactly on an achievable share, and the two ends.
        targets = [rng.random() for _ in range(8)] + rng.choices(list(shares_by_t.values()), k=4) + [0.0, 1.0]
        for share in targets:
            t = t_for_tail_share(counts, share)
            assert t == brute_force_t_for_tail_share(shares_by_t, share), (counts.tolist(), share)
            assert float(t).is_integer()
            checked += 1
    assert checked > 300


def test_t_for_tail_share_on_a_hand_made_example():
    # Sorted counts 1, 2, 2, 5, 10 (total 20): p(2) = 1/20, p(3) = 5/20, p(6) = 10/20, p(11) = 1.
    counts = np.array([5, 2, 0, 10, 1, 2])
    assert t_for_tail_share(counts, 0.05) == 2
    assert t_for_tail_share(counts, 0.06) == 3
    assert t_for_tail_share(counts, 0.25) == 3
    assert t_for_tail_share(counts, 0.26) == 6
    assert t_for_tail_share(counts, 0.5) == 6
    assert t_for_tail_share(counts, 0.51) == 11
    assert t_for_tail_share(counts, 1.0) == 11


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_t_for_tail_share_refuses_shares_outside_unit_interval(share):
    with pytest.raises(ValueError):
        t_for_tail_share(np.array([1, 2, 3]), share)


# --- head and tail at t --------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 1, 2, 2.5, 5, 50, 3000, 10**9])
def test_head_tail_split(t):
    counts = random_counts(random.Random(7), 300)
    split = head_tail(counts, t)
    head = [int(c) for c in counts if c > 0 and c >= t]
    tail = [int(c) for c in counts if 0 < c < t]
    assert split.t == t
    assert split.entries == len(counts)
    assert split.head_entries == len(head)
    assert split.tail_entries == len(tail)
    assert split.unmatched_entries == sum(1 for c in counts if c == 0)
    assert split.matched_entries == sum(1 for c in counts if c > 0)
    assert split.head_matches == sum(head)
    assert split.tail_matches == sum(tail)
    assert split.matches == int(counts.sum())
    # Everything adds up.
    assert split.head_entries + split.tail_entries + split.unmatched_entries == split.entries
    assert split.head_entries + split.tail_entries == split.matched_entries
    assert split.head_matches + split.tail_matches == split.matches
    # One definition: p(t) is the tail's share of all matches.
    assert split.tail_share == pytest.approx(naive_tail_share(counts, t), abs=1e-15)
    assert split.tail_share == pytest.approx(split.tail_matches / split.matches if split.matches else 0.0)


def test_entry_at_exactly_t_is_head_and_not_in_the_tail_share():
    split = head_tail(np.array([0, 3, 4, 5]), 4)
    assert (split.head_entries, split.tail_entries, split.unmatched_entries) == (2, 1, 1)
    assert (split.head_matches, split.tail_matches) == (9, 3)
    assert split.tail_share == pytest.approx(3 / 12) == tail_share(np.array([0, 3, 4, 5]), 4)


def test_at_t_1_every_matched_entry_is_head_and_the_tail_is_empty():
    split = head_tail(np.array([0, 1, 1, 2, 7]), 1)
    assert (split.head_entries, split.tail_entries, split.tail_matches, split.tail_share) == (4, 0, 0, 0.0)


def test_head_tail_as_dict_carries_every_field():
    values = head_tail(np.array([1, 10, 100]), 10).as_dict()
    assert values["head_entries"] == 2
    assert values["tail_entries"] == 1
    assert values["matches"] == 111
    assert set(values) >= {"t", "head_matches", "tail_matches", "tail_share", "unmatched_entries"}
