"""Pairs of a run read shard by shard: for browsing (a page of kept or dropped pairs, captions of one
entry) and for exporting manifests (the pairs kept at t, or every pair with its entry ids). Each
shard's thresholds and rows are read on their own and reading stops as soon as enough is found, so
the first rows come at once and memory stays flat whatever the run's size.

A shard's index part, its threshold part and its rows in the pool are the same pairs in the same
order (the run directory's contract), so a pair is found by its shard and its position; its pool
columns are read through curation/pairs.py, which checks the pool first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import preview_files
from curation.keep_rule import KeepAt, KeepRule
from curation.online import OnlineBalancer
from curation.pairs import PairReader
from curation.rundir import (
    CAPTION_LANGUAGE,
    ENTRY_IDS,
    ENTRY_LANGUAGE,
    PAIR_KEY,
    THRESHOLD,
    RunDir,
    numbers,
    read_parquet,
)
from curation.stages import entry_counts, kept_rows, read_thresholds

SEARCH_BUDGET_S = 1.5  # a page of samples searches the shards this long at most before it shows what it has


@dataclass(frozen=True)
class Found:
    """Some pairs, and how much of the run was searched for them."""

    table: pa.Table  # the asked columns, then entry_ids and k
    shards_searched: int
    shards: int

    @property
    def complete(self) -> bool:
        return self.shards_searched >= self.shards


def shard_indices(run: RunDir) -> list[int]:
    return run.plan().shard_indices


@dataclass(frozen=True)
class _Judge:
    """Which pairs of a shard are wanted: kept or dropped (matched, not kept) at the rule's t, each pair
    at its language's t in a worldwide run; optionally of one caption language only."""

    keep: KeepAt
    kept: bool
    language: str | None

    def _verdict(self, thresholds: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return self.keep.keeps(thresholds, t) if self.kept else self.keep.drops(thresholds, t)

    def rows(self, pairs: PairReader, shard: int, thresholds: np.ndarray) -> np.ndarray:
        if not self.keep.worldwide and self.language is None:
            return np.flatnonzero(self._verdict(thresholds, self.keep.t))
        languages = pairs.index(shard, [CAPTION_LANGUAGE]).column(CAPTION_LANGUAGE).combine_chunks()
        wanted = self._verdict(thresholds, self.keep.pair_t(languages))
        if self.language is not None:
            wanted &= pc.fill_null(pc.equal(languages, self.language), False).to_numpy(zero_copy_only=False)
        return np.flatnonzero(wanted)

    def sampled(self, run: RunDir, seed: int, pairs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """The wanted ones among sampled pairs (positions in the preview's sample)."""
        if not self.keep.worldwide and self.language is None:
            return pairs[self._verdict(thresholds[pairs], self.keep.t)]
        languages = preview_files.describe(run, seed)["languages"]
        groups = np.load(run.preview(seed) / "sample_groups.npy", mmap_mode="r")[pairs]
        wanted = self._verdict(thresholds[pairs], self.keep.group_t(groups, languages))
        if self.language is not None:
            wanted &= groups == (languages.index(self.language) if self.language in languages else -1)
        return pairs[wanted]


def find_pairs(
    root: Path,
    seed: int,
    t: float,
    kept: bool,
    columns: Sequence[str],
    entry_id: int | None = None,
    limit: int = 50,
    budget_s: float = SEARCH_BUDGET_S,
    language: str | None = None,
) -> Found:
    """Up to ``limit`` pairs kept (or matched but dropped) at t, optionally only those matching one entry
    or with captions in one language; in a worldwide run each pair is judged at its language's t.

    Pairs of the preview's uniform sample come first (found without reading the run); then shards
    are searched in a fixed shuffled order, so a page draws from the whole run, until the limit or
    the time budget is reached. Within a shard, pairs come in the order of their pair keys.
    """
    run = RunDir(root)
    pairs = PairReader(run)
    started = time.perf_counter()
    shards = pairs.plan.shard_indices
    wanted_columns = list(dict.fromkeys([*columns, ENTRY_IDS]))
    # At t = infinity every matched pair is kept, whatever its language.
    judge = _Judge(KeepAt(math.inf) if math.isinf(t) else KeepRule.of_run(run).at(t), kept, language)
    if entry_id is not None and _none_can_match(root, entry_id, kept, judge.keep):
        return Found(_empty(pairs, wanted_columns), len(shards), len(shards))
    pieces: list[pa.Table] = []
    taken: set[tuple[int, int]] = set()
    have = 0
    if entry_id is not None and preview_files.is_complete(run, seed):
        for shard, rows in _sampled_rows_with(run, seed, entry_id, judge, limit):
            table = pairs.rows(shard, rows, wanted_columns)
            pieces.append(_with_thresholds(table, run, seed, shard, rows))
            taken.update((shard, int(r)) for r in rows)
            have += len(rows)
    searched = 0
    order = np.random.default_rng(seed).permutation(len(shards))
    for position in order:
        # With nothing found yet, search longer (four budgets) before showing an empty page.
        if have >= limit or (searched and time.perf_counter() - started > budget_s * (1 if have else 4)):
            break
        shard = shards[int(position)]
        thresholds = read_thresholds(str(root), seed, shard)
        candidates = judge.rows(pairs, shard, thresholds)
        if entry_id is not None and len(candidates):
            candidates = candidates[np.isin(candidates, _rows_holding(pairs, shard, entry_id))]
        candidates = np.array([r for r in candidates if (shard, int(r)) not in taken], dtype=np.int64)
        searched += 1
        if not len(candidates):
            continue
        keys = pairs.index(shard, [PAIR_KEY]).column(PAIR_KEY).to_numpy()
        rows = np.sort(candidates[np.argsort(keys[candidates], kind="stable")[: limit - have]])
        table = pairs.rows(shard, rows, wanted_columns)
        pieces.append(_with_thresholds(table, run, seed, shard, rows))
        have += len(rows)
    table = pa.concat_tables(pieces) if pieces else _empty(pairs, wanted_columns)
    return Found(table.slice(0, limit), searched, len(shards))


def _none_can_match(root: Path, entry_id: int, kept: bool, keep: KeepAt) -> bool:
    """True when no pair of the entry can be found, known from its count alone: an entry that matches
    nothing, or dropped pairs of an entry of count <= t (the tail, or a head entry at exactly t): every
    pair holding it is kept, k < c <= t. In a worldwide run t is the entry's language's."""
    count = int(entry_counts(str(root))[entry_id])
    t = keep.t
    if keep.worldwide:
        language = read_parquet(RunDir(root).entry_counts, columns=[ENTRY_LANGUAGE]).column(ENTRY_LANGUAGE)[entry_id]
        t = keep.of_language(language.as_py())
    return count == 0 or (not kept and count <= t)


def _empty(pairs: PairReader, columns: list[str]) -> pa.Table:
    if not pairs.plan.shards:
        return pa.table({})
    empty = pa.schema([pairs.schema.field(c) for c in columns]).empty_table()
    return empty.append_column(THRESHOLD, pa.array([], type=pa.float64()))


def _rows_holding(pairs: PairReader, shard: int, entry_id: int) -> np.ndarray:
    """Positions of the shard's pairs whose entry list holds the entry."""
    lists = pairs.index(shard, [ENTRY_IDS]).column(ENTRY_IDS).combine_chunks()
    offsets = lists.offsets.to_numpy()
    slots = np.flatnonzero(lists.values.to_numpy() == entry_id)
    return np.unique(np.searchsorted(offsets, slots, side="right") - 1)


def _with_thresholds(table: pa.Table, run: RunDir, seed: int, shard: int, rows: np.ndarray) -> pa.Table:
    return table.append_column(THRESHOLD, pa.array(read_thresholds(str(run.root), seed, shard)[rows]))


def _sampled_rows_with(
    run: RunDir, seed: int, entry_id: int, judge: _Judge, limit: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(shard, rows) of sampled pairs that hold the entry and are wanted, grouped by shard."""
    directory = run.preview(seed)
    offsets = np.load(directory / "sample_offsets.npy", mmap_mode="r")
    entries = np.load(directory / "sample_entries.npy", mmap_mode="r")
    thresholds = np.load(directory / "sample_thresholds.npy", mmap_mode="r")
    slots = np.flatnonzero(entries == entry_id)
    pairs = np.searchsorted(offsets, slots, side="right") - 1
    pairs = judge.sampled(run, seed, pairs, thresholds)[:limit]
    locations = preview_files.sample_rows(run, seed)[pairs]
    for shard in np.unique(locations >> 32):
        yield int(shard), np.sort(locations[(locations >> 32) == shard] & 0xFFFFFFFF)


def kept_batches(root: Path, seed: int, t: float, columns: Sequence[str]) -> Iterator[tuple[int, pa.Table | None]]:
    """(shard, the pairs kept at t with the asked columns, None when none is) for every shard, in the
    run's order; in a worldwide run, each pair at its language's t."""
    run = RunDir(root)
    pairs = PairReader(run)
    keep = KeepRule.of_run(run).at(t)
    for shard in pairs.plan.shard_indices:
        yield shard, kept_rows(pairs, keep, seed, shard, columns)


def epoch_batches(
    root: Path, seed: int, t: float, epoch: int, columns: Sequence[str]
) -> Iterator[tuple[int, pa.Table | None]]:
    """(shard, the pairs online balancing keeps in ``epoch`` at t, None when none is) for every shard:
    the keep rule under the epoch's seed (curation.online), computed from the index, nothing stored.
    Epoch 0 is ``kept_batches`` at ``seed``."""
    run = RunDir(root)
    pairs = PairReader(run)
    balancer = OnlineBalancer.from_run(root, t, seed)
    wanted = [PAIR_KEY, ENTRY_IDS] + ([CAPTION_LANGUAGE] if balancer.rule.worldwide else [])
    for shard in pairs.plan.shard_indices:
        index = pairs.index(shard, wanted)
        languages = index.column(CAPTION_LANGUAGE) if balancer.rule.worldwide else None
        kept = balancer.keeps(numbers(index.column(PAIR_KEY)), index.column(ENTRY_IDS), epoch, languages)
        yield shard, pairs.table(shard, columns, kept) if kept.any() else None


def every_batch(root: Path, columns: Sequence[str]) -> Iterator[tuple[int, pa.Table]]:
    """(shard, every pair of the shard with the asked columns, matched or not) for every shard, in the
    run's order: what `export --all-pairs` and ``Run.pairs`` read."""
    pairs = PairReader(RunDir(root))
    for shard in pairs.plan.shard_indices:
        yield shard, pairs.table(shard, columns)
