"""Balancing through one keep threshold per pair (docs/design.md, "The keep threshold and the hash").
Pure: arrays in, arrays out.

The hash, exactly, so that another implementation can reproduce a manifest:

* pair key ``K``: xxHash64 (seed 0) of the UTF-8 key text (see ``curation.keys``), an unsigned
  64-bit integer;
* ``S = splitmix64(seed mod 2**64)``;
* ``u(p, e) = (splitmix64((K XOR S) + 0x9E3779B97F4A7C15 * (e + 1)) >> 11) / 2**53``, all arithmetic
  modulo 2**64, where ``splitmix64(x)`` is the finaliser
  ``z = x; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB; z ^ z >> 31``;
* ``k_p = min over the pair's entries e of u(p, e) * c_e`` (float64), and ``+inf`` for an unmatched pair.

A pair is kept at threshold t iff ``k_p < t``: an entry with ``c_e <= t`` keeps its pairs always, a
head entry keeps each with probability ``t / c_e``, independently across entries, which is MetaCLIP's
``P = 1 - prod(1 - t / max(c_e, t))``.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pyarrow as pa

from curation.entry_lists import flatten

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_TO_53 = float(2**53)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over a uint64 array (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def seed_word(seed: int) -> np.uint64:
    """The seed's contribution to every draw: splitmix64 of the seed taken modulo 2**64."""
    return splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]


def uniform_draws(pair_keys: np.ndarray, entry_ids: np.ndarray, seed: int) -> np.ndarray:
    """u(p, e) in [0, 1) for aligned arrays of pair keys (uint64) and entry ids."""
    keys = np.asarray(pair_keys, dtype=np.uint64) ^ seed_word(seed)
    steps = np.asarray(entry_ids, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        mixed = splitmix64(keys + GOLDEN_GAMMA * steps)
    return (mixed >> np.uint64(11)).astype(np.float64) / _TWO_TO_53


def _per_pair(reduce: np.ufunc, slots: np.ndarray, offsets: np.ndarray, empty: float) -> np.ndarray:
    """``reduce`` over each pair's contiguous run of slots; ``empty`` for a pair with none."""
    result = np.full(len(offsets) - 1, empty)
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(nonempty):
        result[nonempty] = reduce.reduceat(slots, offsets[nonempty])
    return result


def keep_thresholds(entry_ids: pa.ListArray, pair_keys: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """k_p for each pair: the smallest t at which the pair is kept (``+inf`` when unmatched)."""
    values, offsets = flatten(entry_ids)
    rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    draws = uniform_draws(np.asarray(pair_keys, dtype=np.uint64)[rows], values, seed)
    return _per_pair(np.minimum, draws * counts[values].astype(np.float64), offsets, np.inf)


def entry_keep_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """p_e = t / max(c_e, t) for every entry."""
    return t / np.maximum(np.asarray(counts, dtype=np.float64), t)


def keep_probabilities(entry_ids: pa.ListArray, counts: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """P per pair at t: what a loader needs to rebalance online, resampling every epoch.

    P = 1 - the product of the misses (1 - p_e) over the pair's entries, one contiguous run each.
    ``t`` may be one value per pair (worldwide runs: each pair's language's t; a t of 0 keeps nothing).
    """
    values, offsets = flatten(entry_ids)
    if np.ndim(t):
        t_slots = np.repeat(np.asarray(t, dtype=np.float64), np.diff(offsets))
        slot_counts = np.maximum(counts[values].astype(np.float64), t_slots)
        miss = 1.0 - np.divide(t_slots, slot_counts, out=np.zeros(len(values)), where=t_slots > 0)
    else:
        miss = 1.0 - entry_keep_probabilities(counts, t)[values]
    return 1.0 - _per_pair(np.multiply, miss, offsets, 1.0)


SAMPLE_SALT = 0x5A4D504C45  # makes the preview's sample draws independent of the keep draws


def in_sample(pair_keys: np.ndarray, seed: int, rate: float) -> np.ndarray:
    """Which pairs the preview's uniform sample holds: ``splitmix64(K XOR splitmix64(seed XOR salt))``,
    its top 53 bits as a fraction, below ``rate``. The same pairs for any t; stable across layouts."""
    salt = splitmix64(np.array([(seed ^ SAMPLE_SALT) % 2**64], dtype=np.uint64))[0]
    draws = (splitmix64(np.asarray(pair_keys, dtype=np.uint64) ^ salt) >> np.uint64(11)).astype(np.float64)
    return draws / _TWO_TO_53 < rate


def kept_mask(thresholds: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Pairs kept at t (one t, or each pair's own)."""
    return np.asarray(thresholds) < t


def size_at(sorted_thresholds: np.ndarray, t: float) -> int:
    """Realised subset size at t, by binary search over the ascending thresholds."""
    return int(np.searchsorted(sorted_thresholds, t, side="left"))


def balanced_counts(entry_ids: pa.ListArray, thresholds: np.ndarray, t: float, n_entries: int) -> np.ndarray:
    """Per-entry match counts among the pairs kept at t."""
    values, offsets = flatten(entry_ids)
    kept = np.repeat(kept_mask(thresholds, t), np.diff(offsets))
    return np.bincount(values[kept], minlength=n_entries).astype(np.int64)


def simplest_in(low: float, high: float) -> float:
    """The number with the fewest significant digits in the interval (low, high], for low >= 0.

    Used to answer "which t gives N pairs" with a number a person can type, not 20000.000000000004.
    Candidates are built in exact decimal arithmetic and checked as the floats they become.
    """
    if not 0 <= low < high:
        raise ValueError(f"no simple number in ({low}, {high}]")
    if math.isinf(high):
        high = max(low * 2, low + 1)
    exact_low, exact_high = Decimal(low), Decimal(high)
    for digits in range(1, 20):
        step = Decimal(1).scaleb(exact_high.adjusted() - digits + 1)
        candidate = (exact_low // step + 1) * step
        while candidate <= exact_high:
            if low < float(candidate) <= high:
                return float(candidate)
            candidate += step
    return float(np.nextafter(low, np.inf))


def t_for_size(sorted_thresholds: np.ndarray, size: int) -> tuple[float, int]:
    """A t whose subset holds ``size`` pairs, and the size it really gives.

    Any t in (k_(size), k_(size+1)] gives exactly ``size`` pairs (1-based order statistics of the
    ascending thresholds). When equal thresholds make that interval empty (duplicate pair keys), the
    nearest size reachable from above is returned with its t.
    """
    finite = int(np.searchsorted(sorted_thresholds, np.inf, side="left"))
    size = max(0, min(int(size), finite))
    low = float(sorted_thresholds[size - 1]) if size > 0 else 0.0
    first_above = int(np.searchsorted(sorted_thresholds, low, side="right"))
    high = float(sorted_thresholds[first_above]) if first_above < finite else math.inf
    t = simplest_in(low, high)
    return t, size_at(sorted_thresholds, t)
