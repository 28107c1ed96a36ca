"""Answers at any t for a run of any size: what a balancing preview needs on every move of t.

Exact where a binary search or the entry counts suffice: the realised size at t (over every matched
pair's keep threshold, sorted), head and tail, the tail share, t for a target size or tail share.
Estimated where an exact answer needs a pass over every pair: the expected size at t and the matches
kept per entry, from a uniform sample of matched pairs, each with its standard error. When the sample
holds every matched pair (small runs), the estimates are exact and their errors zero.
Pure: arrays in (plain or memory-mapped), numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from curation import balancing, counting
from curation.entry_lists import flatten
from curation.keep_rule import ALL, KeepRule

TOP_ENTRIES = 100  # entries whose kept counts are answered from their own slots (the charts' entries)
CHUNK_SLOTS = 131_072  # entry slots per block of the expected size: half a MB, which stays in cache
INTERVAL = 2.0  # estimates are shown as value +- INTERVAL standard errors (about 95%)


@dataclass(frozen=True)
class Estimate:
    """A number estimated from ``sampled`` of ``population`` matched pairs drawn uniformly."""

    value: float
    stderr: float
    sampled: int
    population: int

    @property
    def exact(self) -> bool:
        return self.sampled >= self.population

    @property
    def margin(self) -> float:
        """Half the width of the interval shown beside the value."""
        return INTERVAL * self.stderr

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "stderr": self.stderr,
            "margin": self.margin,
            "exact": self.exact,
            "sampled_pairs": self.sampled,
            "matched_pairs": self.population,
        }


def _finite_population(sampled: int, population: int) -> float:
    """The finite-population correction: sampling without replacement from ``population``."""
    return max(0.0, 1.0 - sampled / population) if population else 0.0


def _product_of_misses(block: np.ndarray, t: float) -> np.ndarray:
    """Per row of 1 / c values (float32), the product of (1 - t / c) across the row, left to right."""
    t32 = np.float32(t)
    missed = block[:, 0] * -t32
    missed += 1
    for column in range(1, block.shape[1]):
        miss = block[:, column] * -t32
        miss += 1
        missed *= miss
    return missed.astype(np.float64)


def min_counts(offsets: np.ndarray, entries: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each sampled pair's smallest entry count (pairs in CSR form, each with at least one entry)."""
    if len(offsets) < 2:
        return np.zeros(0, dtype=np.int64)
    return np.minimum.reduceat(np.asarray(counts, dtype=np.int64)[entries], offsets[:-1])


def sample_order(sizes: np.ndarray, min_count: np.ndarray) -> np.ndarray:
    """The order the sample's estimates work in: by entries per pair, then smallest count descending
    (a group's pairs whose every entry is counted above t then form a prefix). The preview's merge
    stores its sample so; a sample stored otherwise is put in order when read."""
    return np.lexsort((-min_count, sizes))


def reordered(offsets: np.ndarray, entries: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs in CSR form (offsets, flat entries) taken in another order: (new offsets, new entries)."""
    sizes = np.diff(offsets)[order]
    new_offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_offsets[1:])
    gather = np.repeat(np.asarray(offsets)[:-1][order] - new_offsets[:-1], sizes) + np.arange(new_offsets[-1])
    return new_offsets, entries[gather]


def in_sample_order(sizes: np.ndarray, min_count: np.ndarray) -> bool:
    """Whether the pairs already are in ``sample_order`` (one pass; no sort)."""
    up, same = sizes[1:] > sizes[:-1], sizes[1:] == sizes[:-1]
    return bool(np.all(up | (same & (min_count[1:] <= min_count[:-1]))))


@dataclass(frozen=True)
class PairSample:
    """Matched pairs drawn uniformly, laid out for fast answers at any t.

    Pairs are grouped by their number of entries and, within a group, ordered by their smallest entry
    count, largest first, with their entries in one flat (CSR) array. A pair with an entry of count
    <= t is kept for sure, so only a prefix of each group needs the product of its misses (1 - t / c);
    and a group of pairs of s entries is an (n, s) block, whose products are s - 1 vectorised
    multiplications of its columns (no per-pair reduction).
    """

    population: int  # the matched pairs the sample speaks for
    groups: tuple[tuple[int, int, int], ...]  # (entries per pair, first pair, end pair), by entries per pair
    min_counts: np.ndarray  # descending within each group
    negated_min_counts: np.ndarray  # ascending within each group: binary searches without a copy per call
    offsets: np.ndarray  # pair i's entries are flat_entries[offsets[i]:offsets[i + 1]]
    flat_entries: np.ndarray  # int32
    inverse_counts: np.ndarray  # 1 / c per entry, float32: small enough for the cache
    pair_thresholds: np.ndarray  # k of each pair in this order

    @classmethod
    def build(
        cls,
        offsets: np.ndarray,
        entries: np.ndarray,
        thresholds: np.ndarray,
        counts: np.ndarray,
        population: int,
        min_count: np.ndarray | None = None,
    ) -> PairSample:
        """From matched pairs in CSR form (offsets from 0, every pair with at least one entry).
        ``min_count``: each pair's ``min_counts``, when stored (the preview's merge stores them: the
        gather behind them is most of the time of opening a preview, which is most of a new t's)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        entries = np.asarray(entries, dtype=np.int32)
        counts = np.asarray(counts, dtype=np.int64)
        sizes = np.diff(offsets)
        min_count = min_counts(offsets, entries, counts) if min_count is None else np.asarray(min_count, np.int64)
        if in_sample_order(sizes, min_count):  # stored so by the preview's merge: nothing to move
            order, new_sizes, new_offsets, flat = slice(None), sizes, offsets, entries
        else:
            order = sample_order(sizes, min_count)
            new_sizes = sizes[order]
            new_offsets, flat = reordered(offsets, entries, order)
        firsts = np.flatnonzero(np.diff(new_sizes, prepend=-1))
        ends = np.append(firsts[1:], len(new_sizes))
        groups = tuple((int(new_sizes[a]), int(a), int(b)) for a, b in zip(firsts, ends))
        return cls(
            population=int(population),
            groups=groups,
            min_counts=min_count[order],
            negated_min_counts=-min_count[order],
            offsets=new_offsets,
            flat_entries=flat,
            inverse_counts=(1.0 / np.maximum(counts, 1)).astype(np.float32),
            pair_thresholds=np.asarray(thresholds, dtype=np.float64)[order],
        )

    @cached_property
    def flat_inverse_counts(self) -> np.ndarray:
        """1 / c of each slot's entry (float32), gathered once, when the first estimate is asked: not
        when the preview opens (a third of that time), and not again for every t (the dashboard's)."""
        return self.inverse_counts[self.flat_entries]

    @cached_property
    def flat_rows(self) -> np.ndarray:
        """The pair each slot belongs to (int32): made when per-entry answers are first asked (a new t
        in `balance` needs none)."""
        return np.repeat(np.arange(self.size, dtype=np.int32), np.diff(self.offsets))

    @property
    def size(self) -> int:
        return len(self.min_counts)

    @property
    def scale(self) -> float:
        return self.population / self.size if self.size else 0.0

    def expected(self, t: float) -> Estimate:
        """The sum of P at t over all matched pairs, from the sample's mean P."""
        m = self.size
        if m == 0:
            return Estimate(0.0, 0.0, 0, self.population)
        at_risk, missed_sum, kept_squares = 0, 0.0, 0.0
        for size, first, end in self.groups:
            risky = int(np.searchsorted(self.negated_min_counts[first:end], -t, side="left"))  # min count > t
            at_risk += risky
            step = max(1, CHUNK_SLOTS // size)  # blocks small enough to stay in cache
            for start in range(first, first + risky, step):
                stop = min(start + step, first + risky)
                block = self.flat_inverse_counts[self.offsets[start] : self.offsets[stop]].reshape(stop - start, size)
                missed = _product_of_misses(block, t)
                missed_sum += float(missed.sum())
                kept_squares += float(((1.0 - missed) ** 2).sum())
        # P = 1 for the m - at_risk pairs with an entry of count <= t, 1 - missed for the others.
        total = m - missed_sum
        squares = (m - at_risk) + kept_squares
        mean = total / m
        variance = max(squares / m - mean * mean, 0.0) * m / (m - 1) if m > 1 else 0.0
        stderr = self.population * math.sqrt(variance / m * _finite_population(m, self.population))
        return Estimate(self.population * mean, stderr, m, self.population)

    def kept_counts(self, t: float, n_entries: int) -> tuple[np.ndarray, np.ndarray]:
        """Matches kept at t per entry over all matched pairs, and their standard errors."""
        kept_slots = (self.pair_thresholds < t)[self.flat_rows]
        hits = np.bincount(self.flat_entries[kept_slots], minlength=n_entries).astype(np.float64)
        return self.scaled(hits)

    def scaled(self, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sampled kept matches per entry as estimates over all matched pairs, with standard errors."""
        m = self.size
        if m == 0:
            return np.zeros_like(hits), np.zeros_like(hits)
        share = hits / m
        stderr = self.population * np.sqrt(share * (1 - share) / m * _finite_population(m, self.population))
        return hits * self.scale, stderr

    @cached_property
    def _top_slots(self) -> tuple[dict[int, int], np.ndarray, np.ndarray]:
        """The pair thresholds of the slots of the entries met most often in the sample, sorted within
        each entry, as (entry -> position, the thresholds, where each position's begin): the kept
        count of such an entry at any t is then one binary search, not a pass over its slots."""
        seen = np.bincount(self.flat_entries)
        top = np.argpartition(seen, -TOP_ENTRIES)[-TOP_ENTRIES:] if len(seen) > TOP_ENTRIES else np.arange(len(seen))
        top = top[seen[top] > 0]
        position = np.full(len(seen), -1, dtype=np.int32)
        position[top] = np.arange(len(top), dtype=np.int32)
        slots = np.flatnonzero(position[self.flat_entries] >= 0)
        positions = position[self.flat_entries[slots]]
        thresholds = self.pair_thresholds[self.flat_rows[slots]]
        order = np.lexsort((thresholds, positions))
        starts = np.searchsorted(positions[order], np.arange(len(top) + 1), side="left")
        return {int(e): i for i, e in enumerate(top)}, thresholds[order], starts

    def kept_counts_of(self, entry_ids: np.ndarray, t: float, n_entries: int) -> tuple[np.ndarray, np.ndarray]:
        """kept_counts for a few entries; cheap for the sample's most frequent ones (the charts')."""
        index, thresholds, starts = self._top_slots
        entry_ids = np.asarray(entry_ids, dtype=np.int64)
        if all(int(e) in index for e in entry_ids):
            at = [index[int(e)] for e in entry_ids]
            hits = [np.searchsorted(thresholds[starts[i] : starts[i + 1]], t, side="left") for i in at]
            return self.scaled(np.asarray(hits, dtype=np.float64))
        values, stderr = self.kept_counts(t, n_entries)
        return values[entry_ids], stderr[entry_ids]


@dataclass(frozen=True)
class BalancePreview:
    """The preview of a one-language run; curation.worldwide_preview.WorldwidePreview answers the same
    questions for a run with a t per language. Both hold the run's keep rule as ``rule``."""

    rule: KeepRule  # t, head and tail, p_e: curation/keep_rule.py
    sorted_counts: np.ndarray  # ascending
    thresholds: np.ndarray  # k of every matched pair, ascending (unmatched pairs are +inf: left out)
    pairs: int  # every pair of the pool
    sample: PairSample

    @classmethod
    def from_parts(
        cls,
        counts: np.ndarray,
        thresholds: np.ndarray,
        pairs: int,
        sample_offsets: np.ndarray,
        sample_entries: np.ndarray,
        sample_thresholds: np.ndarray,
        sample_min_counts: np.ndarray | None = None,
    ) -> BalancePreview:
        """From the entry counts, the sorted finite thresholds and a uniform sample of matched pairs
        (with each sampled pair's smallest entry count, if stored)."""
        rule = KeepRule(np.asarray(counts, dtype=np.int64))
        sample = PairSample.build(
            sample_offsets, sample_entries, sample_thresholds, rule.counts, len(thresholds), sample_min_counts
        )
        return cls(rule, rule.by_language.sorted[ALL], thresholds, int(pairs), sample)

    @classmethod
    def build(
        cls, entry_ids: pa.ListArray | pa.ChunkedArray, thresholds: np.ndarray, counts: np.ndarray
    ) -> BalancePreview:
        """From every pair's entry list and keep threshold (aligned, any order): every matched pair is in
        the sample, so every answer is exact. For small runs and tests; large runs use stored files."""
        thresholds = np.asarray(thresholds, dtype=np.float64)
        values, offsets = flatten(entry_ids)
        sizes = np.diff(offsets)
        matched = sizes > 0
        sample_offsets = np.concatenate(([0], np.cumsum(sizes[matched])))
        finite = np.sort(thresholds[np.isfinite(thresholds)])
        return cls.from_parts(counts, finite, len(sizes), sample_offsets, values, thresholds[matched])

    @property
    def counts(self) -> np.ndarray:
        """c_e per entry."""
        return self.rule.counts

    @property
    def matched_pairs(self) -> int:
        return len(self.thresholds)

    def language_t(self, t: float) -> None:
        """Every language's t: a one-language run has none."""
        return None

    def entry_t(self, t: float) -> float:
        """The t every entry is judged at."""
        return float(t)

    def language_rows(self, t: float) -> list[dict]:
        """Per language figures: a one-language run has none."""
        return []

    def size_at(self, t: float) -> int:
        """The exact number of pairs kept at t for this seed."""
        return balancing.size_at(self.thresholds, t)

    def t_for_size(self, size: int) -> tuple[float, int]:
        """A t whose subset holds ``size`` pairs (exact: an order statistic of the thresholds)."""
        return balancing.t_for_size(self.thresholds, size)

    def t_for_tail_share(self, share: float) -> float:
        return self.rule.t_for_tail_share(share)

    def expected_size_at(self, t: float) -> Estimate:
        """Sum of P at t over matched pairs: the subset size on average over seeds."""
        return self.sample.expected(t)

    def balanced_counts(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Matches per entry among the pairs kept at t, and their standard errors."""
        return self.sample.kept_counts(t, len(self.counts))

    def kept_counts(self, entry_ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """balanced_counts for a few entries; cheap for the most matched ones (the charts' entries)."""
        return self.sample.kept_counts_of(entry_ids, t, len(self.counts))

    def head_tail(self, t: float) -> counting.HeadTail:
        return self.rule.head_tail(t)

    def tail_share(self, t: float) -> float:
        return self.rule.tail_share(t)

    def entry_probabilities(self, t: float) -> np.ndarray:
        return self.rule.entry_probabilities(t)
