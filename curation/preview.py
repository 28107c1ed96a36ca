"""Answers at any t from arrays held in memory: what a balancing preview needs on every move of t.

Built once per run and seed from the keep thresholds and the pairs' entry lists; afterwards the size
at t is a binary search, and the expected size touches only the pairs that may be dropped at t.
Pure: arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from curation import counting
from curation.balancing import entry_keep_probabilities, size_at


TOP_ENTRIES = 100  # entries whose kept counts are answered from their own slots (the charts' entries)


@dataclass(frozen=True)
class BalancePreview:
    counts: np.ndarray  # c_e per entry
    sorted_thresholds: np.ndarray  # k of every pair, ascending (+inf for unmatched pairs)
    pairs: int  # every pair of the pool
    # Matched pairs ordered by their smallest entry count, largest first, as a flat CSR layout:
    min_counts: np.ndarray  # descending
    negated_min_counts: np.ndarray  # ascending, for a binary search without a copy per call
    offsets: np.ndarray  # pair i's entries are flat[offsets[i]:offsets[i + 1]]
    flat_entries: np.ndarray  # entry ids (int32)
    flat_inverse_counts: np.ndarray  # 1 / c of each slot's entry, float32: P needs 1 - t / c
    flat_rows: np.ndarray  # the pair each flat slot belongs to (int32)
    pair_thresholds: np.ndarray  # k of each matched pair in this order

    @classmethod
    def build(cls, entry_ids: pa.ListArray | pa.ChunkedArray, thresholds: np.ndarray,
              counts: np.ndarray) -> BalancePreview:
        """From every pair's entry list and keep threshold (aligned, any order) and the entry counts."""
        if isinstance(entry_ids, pa.ChunkedArray):
            entry_ids = entry_ids.combine_chunks() if entry_ids.num_chunks else pa.array([], pa.list_(pa.int32()))
        thresholds = np.asarray(thresholds, dtype=np.float64)
        offsets = entry_ids.offsets.to_numpy()
        values = entry_ids.values.to_numpy()[offsets[0]:offsets[-1]].astype(np.int32)
        offsets = offsets - offsets[0]
        sizes = np.diff(offsets)
        matched = np.flatnonzero(sizes > 0)
        rows_all = np.repeat(np.arange(len(sizes)), sizes)
        counts = np.asarray(counts, dtype=np.int64)
        min_count = np.full(len(sizes), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(min_count, rows_all, counts[values])
        order = matched[np.argsort(-min_count[matched], kind="stable")]
        new_sizes = sizes[order]
        new_offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(new_sizes, out=new_offsets[1:])
        gather = np.repeat(offsets[order], new_sizes) + (np.arange(new_offsets[-1]) -
                                                         np.repeat(new_offsets[:-1], new_sizes))
        flat = values[gather]
        return cls(
            counts=counts,
            sorted_thresholds=np.sort(thresholds),
            pairs=len(sizes),
            min_counts=min_count[order],
            negated_min_counts=-min_count[order],
            offsets=new_offsets,
            flat_entries=flat,
            flat_inverse_counts=(1.0 / np.maximum(counts[flat], 1)).astype(np.float32),
            flat_rows=np.repeat(np.arange(len(order), dtype=np.int32), new_sizes),
            pair_thresholds=thresholds[order],
        )

    @property
    def matched_pairs(self) -> int:
        return len(self.min_counts)

    def size_at(self, t: float) -> int:
        """The exact number of pairs kept at t for this seed."""
        return size_at(self.sorted_thresholds, t)

    def expected_size_at(self, t: float) -> float:
        """Sum of P over matched pairs. A pair with an entry of count <= t has P = 1; only pairs whose
        entries are all head at t (a prefix in this order, with contiguous entries) need the product
        of their (1 - t / c), which is the chance that every draw misses."""
        at_risk = int(np.searchsorted(self.negated_min_counts, -t, side="left"))  # pairs with min count > t
        if at_risk == 0:
            return float(self.matched_pairs)
        end = int(self.offsets[at_risk])
        misses = 1 - np.float32(t) * self.flat_inverse_counts[:end]
        all_missed = np.multiply.reduceat(misses, self.offsets[:at_risk])
        return float(self.matched_pairs) - float(all_missed.sum(dtype=np.float64))

    def balanced_counts(self, t: float) -> np.ndarray:
        """Matches per entry among the pairs kept at t."""
        kept_slots = (self.pair_thresholds < t)[self.flat_rows]
        return np.bincount(self.flat_entries[kept_slots], minlength=len(self.counts)).astype(np.int64)

    @cached_property
    def _top_slots(self) -> tuple[dict[int, int], np.ndarray, np.ndarray]:
        """The slots of the most matched entries, as (entry -> position, position per slot, the slot's
        pair threshold): one pass to build, then each t costs one pass over these slots only."""
        top = np.argpartition(self.counts, -TOP_ENTRIES)[-TOP_ENTRIES:] if len(self.counts) > TOP_ENTRIES \
            else np.arange(len(self.counts))
        top = top[self.counts[top] > 0]
        position = np.full(len(self.counts), -1, dtype=np.int32)
        position[top] = np.arange(len(top), dtype=np.int32)
        slots = np.flatnonzero(position[self.flat_entries] >= 0)
        return ({int(e): i for i, e in enumerate(top)}, position[self.flat_entries[slots]],
                self.pair_thresholds[self.flat_rows[slots]])

    def kept_counts(self, entry_ids: np.ndarray, t: float) -> np.ndarray:
        """Matches kept at t for a few entries; cheap for the most matched ones (the charts' entries)."""
        index, positions, thresholds = self._top_slots
        if all(int(e) in index for e in entry_ids):
            kept = np.bincount(positions[thresholds < t], minlength=len(index))
            return kept[[index[int(e)] for e in entry_ids]].astype(np.int64)
        return self.balanced_counts(t)[np.asarray(entry_ids, dtype=np.int64)]

    @cached_property
    def _sorted_counts(self) -> tuple[np.ndarray, np.ndarray]:
        ordered = np.sort(self.counts)
        cumulative = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum(ordered, out=cumulative[1:])
        return ordered, cumulative

    def head_tail(self, t: float) -> counting.HeadTail:
        """counting.head_tail by binary search over the sorted counts (no pass over 500k entries)."""
        ordered, cumulative = self._sorted_counts
        zero = int(np.searchsorted(ordered, 0, side="right"))
        at_most_t = int(np.searchsorted(ordered, t, side="right"))
        below_t = int(np.searchsorted(ordered, t, side="left"))
        total = int(cumulative[-1])
        return counting.HeadTail(
            t=float(t), entries=len(ordered), matched_entries=len(ordered) - zero, unmatched_entries=zero,
            head_entries=len(ordered) - at_most_t, tail_entries=at_most_t - zero, matches=total,
            head_matches=total - int(cumulative[at_most_t]), tail_matches=int(cumulative[at_most_t]),
            tail_share=float(cumulative[below_t]) / total if total else 0.0)

    def entry_probabilities(self, t: float) -> np.ndarray:
        return entry_keep_probabilities(self.counts, t)
