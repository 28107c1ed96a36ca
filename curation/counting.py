"""Entry counts and what follows from them alone: head and tail at t, the tail share p(t) and its
inverse. Pure: arrays in, numbers out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from curation.entry_lists import flatten


def count_entries(entry_ids: pa.ListArray, n_entries: int) -> np.ndarray:
    """c_e over one batch: how many pairs match each entry (lists hold each entry once per pair)."""
    values, _ = flatten(entry_ids)
    return np.bincount(values, minlength=n_entries).astype(np.int64)


def merge_counts(parts: Iterable[np.ndarray], n_entries: int) -> np.ndarray:
    """Counts add up across shards."""
    total = np.zeros(n_entries, dtype=np.int64)
    for part in parts:
        total += part
    return total


def tail_share(counts: np.ndarray, t: float) -> float:
    """p(t): the share of all matches held by entries with c_e < t (MetaCLIP 2's per-language knob)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return 0.0
    return float(counts[counts < t].sum()) / total


def t_for_tail_share(counts: np.ndarray, share: float) -> float:
    """The smallest integer t with p(t) >= share.

    p only changes just above a count value c (where c becomes < t), so the answer is c + 1 for the
    smallest count c whose cumulative share reaches the target.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError("a tail share is between 0 and 1")
    positive = np.sort(np.asarray(counts, dtype=np.int64)[np.asarray(counts) > 0])
    if share == 0.0 or len(positive) == 0:
        return 1.0
    cumulative = np.cumsum(positive) / positive.sum()  # the same floats tail_share computes
    index = int(np.searchsorted(cumulative, share, side="left"))
    return float(positive[min(index, len(positive) - 1)] + 1)


@dataclass(frozen=True)
class HeadTail:
    """How the entries split at t: the summary a researcher reads before choosing t."""

    t: float
    entries: int
    matched_entries: int
    unmatched_entries: int
    head_entries: int
    tail_entries: int
    matches: int
    head_matches: int
    tail_matches: int
    tail_share: float

    def as_dict(self) -> dict:
        return asdict(self)


HEAD, TAIL, UNMATCHED = "head", "tail", "unmatched"  # an entry's side at t (``sides``)


def head_and_tail(counts: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which entries are head (c_e >= t) and which tail (0 < c_e < t); ``t`` one value, or each entry's
    own (its language's t in a worldwide run). Entries counted 0 are neither. The one definition behind
    ``head_tail`` and ``sides``."""
    counts = np.asarray(counts, dtype=np.int64)
    matched = counts > 0
    head = matched & (counts >= t)
    return head, matched & ~head


SIDES = (UNMATCHED, TAIL, HEAD)  # ``side_codes`` are positions in this tuple


def side_codes(counts: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Each entry's side at t as a small integer, a position in SIDES (cheap to gather and compare for
    hundreds of thousands of entries)."""
    head, tail = head_and_tail(counts, t)
    return (2 * head + tail).astype(np.int8)


def sides(counts: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Each entry's side at t, HEAD, TAIL or UNMATCHED, as ``head_tail`` counts them: what a page shows
    per entry."""
    return np.array(SIDES)[side_codes(counts, t)]


def head_tail(counts: np.ndarray, t: float) -> HeadTail:
    """Tail entries have 0 < c_e < t, as in p(t) (MetaCLIP 2's t_to_p), so tail_matches / matches is
    p(t); head entries have c_e >= t. Pairs of the tail are always kept, and so are those of a head
    entry at exactly t (t / c_e = 1): a pair's fate does not hang on which side that entry is named."""
    counts = np.asarray(counts, dtype=np.int64)
    head, tail = head_and_tail(counts, t)
    return HeadTail(
        t=float(t),
        entries=int(len(counts)),
        matched_entries=int((counts > 0).sum()),
        unmatched_entries=int((counts == 0).sum()),
        head_entries=int(head.sum()),
        tail_entries=int(tail.sum()),
        matches=int(counts.sum()),
        head_matches=int(counts[head].sum()),
        tail_matches=int(counts[tail].sum()),
        tail_share=tail_share(counts, t),
    )


def head_tail_sorted(ordered: np.ndarray, cumulative: np.ndarray, t: float) -> HeadTail:
    """head_tail by binary search over counts sorted once (no pass over the entries);
    ``cumulative`` holds their running sums from 0 (one longer)."""
    zero = int(np.searchsorted(ordered, 0, side="right"))
    below_t = max(zero, int(np.searchsorted(ordered, t, side="left")))  # the unmatched and the tail: c < t
    total = int(cumulative[-1])
    tail_matches = int(cumulative[below_t])
    return HeadTail(
        t=float(t),
        entries=len(ordered),
        matched_entries=len(ordered) - zero,
        unmatched_entries=zero,
        head_entries=len(ordered) - below_t,
        tail_entries=below_t - zero,
        matches=total,
        head_matches=total - tail_matches,
        tail_matches=tail_matches,
        tail_share=tail_matches / total if total else 0.0,
    )
