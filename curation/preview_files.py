"""The preview of a run and seed as files made for random access: memory-mapped, never loaded whole.
Its files (RUN/preview/seed-S/, and the per-shard pieces merged into them) are listed in
docs/design.md, "The run directory".

A shard's piece is made where its rows are already in memory (the balance stage) or by reading the
shard's entry lists and thresholds (``preview_shard``, for runs made before previews existed). The
merge sorts the thresholds with bounded memory: pieces are sorted already; their values are split
into buckets by value (bounds from a sample of the values), each bucket sorted on its own and
appended to the output. The directory appears whole: it is written under a temporary name, then
renamed. See docs/design.md, "The preview".
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import balancing
from curation.entry_lists import flatten
from curation.keep_rule import KeepRule
from curation.memory import release_freed_memory
from curation.preview import BalancePreview, min_counts, reordered, sample_order
from curation.rundir import (
    RunDir,
    atomic_directory,
    atomic_file,
    atomic_write_json,
    numbers,
    read_json,
    read_parquet,
)
from curation.worldwide_preview import WorldwidePreview
from studio_common.errors import CurationError

PREVIEW_FORMAT = 1
DEFAULT_SAMPLE_PAIRS = 2_000_000
SUMMARY = "preview.json"  # written last: a preview folder without it is incomplete
BUCKET_VALUES = 16 * 2**20  # thresholds sorted at a time while merging (128 MiB of float64)
Progress = Callable[[int, int], None]  # (done, total)


def sample_rate(matched_pairs: int, sample_pairs: int) -> float:
    """The chance of each matched pair to be in a sample of about ``sample_pairs``."""
    return 1.0 if matched_pairs <= sample_pairs else sample_pairs / matched_pairs


def is_complete(run: RunDir, seed: int) -> bool:
    try:
        return read_json(run.preview(seed) / SUMMARY).get("format") == PREVIEW_FORMAT
    except CurationError:
        return False


# --------------------------------------------------------------------------------------------------
# One shard's piece
# --------------------------------------------------------------------------------------------------


class PieceBuilder:
    """Gathers one shard's piece batch by batch, in row order.

    A worldwide run's pairs are grouped by caption language (``languages``: the metadata's, sorted; a
    pair without one is in a last group of its own, never matched): the thresholds are sorted by group,
    then value, so each language's are one ascending stretch. A MetaCLIP 1 run is one group.
    """

    def __init__(self, seed: int, rate: float, languages: Sequence[str] | None = None) -> None:
        self.seed, self.rate = seed, rate
        self.languages = pa.array(list(languages or []), type=pa.string())
        self.groups = max(1, len(self.languages))
        self.rows = 0
        self.thresholds: list[np.ndarray] = []
        self.threshold_groups: list[np.ndarray] = []
        self.group_rows = np.zeros(self.groups + 1, dtype=np.int64)
        self.sample: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.matches = np.zeros(1, dtype=np.int64)

    def _groups_of(self, pair_languages: pa.Array | None, n: int) -> np.ndarray:
        if pair_languages is None or not len(self.languages):
            return np.zeros(n, dtype=np.int16)
        slots = pc.index_in(pc.cast(pair_languages, pa.string()), value_set=self.languages)
        return pc.fill_null(slots, self.groups).to_numpy(zero_copy_only=False).astype(np.int16)

    def add(
        self,
        entry_ids: pa.ListArray | pa.ChunkedArray,
        pair_keys: np.ndarray,
        thresholds: np.ndarray,
        pair_languages: pa.Array | None = None,
    ) -> None:
        values, offsets = flatten(entry_ids)
        sizes = np.diff(offsets)
        groups = self._groups_of(pair_languages, len(sizes))
        matches = np.bincount(sizes, minlength=len(self.matches))
        matches[: len(self.matches)] += self.matches
        self.matches = matches
        self.group_rows += np.bincount(groups, minlength=self.groups + 1)
        finite = np.isfinite(thresholds)
        self.thresholds.append(thresholds[finite])
        self.threshold_groups.append(groups[finite])
        chosen = np.flatnonzero(balancing.in_sample(pair_keys, self.seed, self.rate) & (sizes > 0))
        if len(chosen):
            taken = values[_ranges(offsets[chosen], sizes[chosen])]
            self.sample.append(
                (
                    sizes[chosen].astype(np.int32),
                    taken.astype(np.int32),
                    thresholds[chosen].astype(np.float64),
                    chosen.astype(np.int64) + self.rows,
                    groups[chosen],
                )
            )
        self.rows += len(sizes)

    def write(self, path: Path) -> None:
        empty = [
            [np.zeros(0, np.int32)],
            [np.zeros(0, np.int32)],
            [np.zeros(0)],
            [np.zeros(0, np.int64)],
            [np.zeros(0, np.int16)],
        ]
        parts = list(zip(*self.sample)) if self.sample else empty
        values = np.concatenate(self.thresholds) if self.thresholds else np.zeros(0)
        groups = np.concatenate(self.threshold_groups) if self.threshold_groups else np.zeros(0, np.int16)
        ordered = np.sort(values) if self.groups == 1 else values[np.lexsort((values, groups))]
        with atomic_file(path) as temporary, open(temporary, "wb") as handle:  # a handle: savez adds no .npz
            np.savez(
                handle,
                thresholds=ordered,
                group_sizes=np.bincount(groups, minlength=self.groups),
                group_rows=self.group_rows,
                sample_sizes=np.concatenate(parts[0]),
                sample_entries=np.concatenate(parts[1]),
                sample_thresholds=np.concatenate(parts[2]),
                sample_rows=np.concatenate(parts[3]),
                sample_groups=np.concatenate(parts[4]),
                matches=self.matches,
                rows=np.array([self.rows]),
                rate=np.array([self.rate]),
            )


def has_piece(path: Path, rate: float) -> bool:
    """A shard's piece exists, in this format, sampled at this rate (a killed merge may leave pieces of
    another)."""
    try:
        with np.load(path) as piece:
            return float(piece["rate"][0]) == rate and "group_sizes" in piece.files
    except (OSError, KeyError, ValueError):
        return False


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))


# --------------------------------------------------------------------------------------------------
# The merge
# --------------------------------------------------------------------------------------------------


def merge(
    run: RunDir,
    seed: int,
    shards: list[int],
    rate: float,
    progress: Progress | None = None,
    languages: Sequence[str] | None = None,
) -> dict:
    """Merge every shard's piece into the seed's preview directory; returns its preview.json."""
    started = time.perf_counter()
    pieces = [run.preview_piece(seed, shard) for shard in shards]
    missing = [p for p in pieces if not p.exists()]
    if missing:
        raise CurationError(
            f"{len(missing)} shards of {run.root} have no preview piece for seed {seed} "
            f"(first: {missing[0].name}); run the balance again to make them"
        )
    counts = numbers(read_parquet(run.entry_counts, ["count"]).column("count"))
    with atomic_directory(run.preview(seed)) as staging:
        summary = _merge_into(staging, shards, pieces, progress, counts)
        if languages:
            summary["languages"] = list(languages)
        else:
            del summary["language_pairs"], summary["language_matched_pairs"]
        summary.update(
            {
                "format": PREVIEW_FORMAT,
                "seed": seed,
                "sample_rate": rate,
                "built_s": round(time.perf_counter() - started, 3),
            }
        )
        atomic_write_json(staging / SUMMARY, summary)
    shutil.rmtree(run.preview_pieces(seed), ignore_errors=True)
    release_freed_memory()
    return summary


def _added(total: np.ndarray, more: np.ndarray) -> np.ndarray:
    """Two counts vectors added, the shorter one padded with zeros."""
    grown = np.zeros(max(len(total), len(more)), dtype=np.int64)
    grown[: len(total)] += total
    grown[: len(more)] += more
    return grown


def _merge_into(
    directory: Path, shards: list[int], pieces: list[Path], progress: Progress | None, counts: np.ndarray
) -> dict:
    pairs, matches = 0, np.zeros(1, dtype=np.int64)
    group_sizes, group_rows = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    sizes, entries, sample_thresholds, rows, groups, probes = [], [], [], [], [], []
    for shard, path in zip(shards, pieces):
        with np.load(path) as piece:
            pairs += int(piece["rows"][0])
            values, counted = piece["thresholds"], piece["group_sizes"]
            starts = np.concatenate(([0], np.cumsum(counted)))
            # A view would keep the piece alive: copies of every 64th value of each group.
            probes.append([values[a:b][:: max(1, (b - a) // 64)].copy() for a, b in zip(starts[:-1], starts[1:])])
            group_sizes, group_rows = _added(group_sizes, counted), _added(group_rows, piece["group_rows"])
            sizes.append(piece["sample_sizes"])
            entries.append(piece["sample_entries"])
            sample_thresholds.append(piece["sample_thresholds"])
            rows.append(piece["sample_rows"] + (np.int64(shard) << 32))
            groups.append(piece["sample_groups"])
            matches = _added(matches, piece["matches"])
    sample_pairs = _write_sample(directory, sizes, entries, sample_thresholds, rows, groups, counts)
    del sizes, entries, sample_thresholds, rows, groups  # before the thresholds' merge, which needs room
    group_probes = [
        np.concatenate([p[g] for p in probes if g < len(p)] or [np.zeros(0)]) for g in range(len(group_sizes))
    ]
    _sorted_thresholds(directory / "thresholds.npy", pieces, group_sizes, group_probes, progress)
    return {
        "pairs": pairs,
        "matched_pairs": int(group_sizes.sum()),
        "sample_pairs": sample_pairs,
        "matches_per_pair": [int(x) for x in matches],
        "language_matched_pairs": [int(x) for x in group_sizes],
        "language_pairs": [int(x) for x in group_rows],
    }


def _write_sample(
    directory: Path,
    sizes: list[np.ndarray],
    entries: list[np.ndarray],
    thresholds: list[np.ndarray],
    rows: list[np.ndarray],
    groups: list[np.ndarray],
    counts: np.ndarray,
) -> int:
    """The pieces' samples as one, stored in the order the estimates work in (so that opening the
    preview, a new t, sorts nothing); returns its pairs. Its arrays are freed on return."""
    sample_sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int32)
    offsets = np.zeros(len(sample_sizes) + 1, dtype=np.int64)
    np.cumsum(sample_sizes, out=offsets[1:])
    flat = np.concatenate(entries) if entries else np.zeros(0, np.int32)
    smallest = min_counts(offsets, flat, counts)
    order = sample_order(sample_sizes, smallest)
    np.save(directory / "sample_min_counts.npy", smallest[order])
    ordered_offsets, ordered_entries = reordered(offsets, flat, order)
    del flat
    np.save(directory / "sample_offsets.npy", ordered_offsets)
    np.save(directory / "sample_entries.npy", ordered_entries)
    del ordered_entries
    for name, parts, empty in (
        ("thresholds", thresholds, np.zeros(0)),
        ("rows", rows, np.zeros(0, np.int64)),
        ("groups", groups, np.zeros(0, np.int16)),
    ):
        np.save(directory / f"sample_{name}.npy", (np.concatenate(parts) if parts else empty)[order])
    return len(sample_sizes)


def _write_header(handle, length: int) -> None:
    np.lib.format.write_array_header_2_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (length,)})


def _sorted_thresholds(
    path: Path, pieces: list[Path], group_sizes: np.ndarray, probes: list[np.ndarray], progress: Progress | None
) -> None:
    """All pieces' thresholds in one .npy, by group and ascending within each group, written by plain
    appends (no mapping: the process that merges holds at most a bucket, whatever the run's size).
    Each group's values are split into buckets by value (bounds from a sample of the values), each
    bucket sorted on its own and appended in order."""
    total = int(group_sizes.sum())
    per_group = [0 if n == 0 else max(1, -(-int(n) // BUCKET_VALUES)) for n in group_sizes]
    buckets = sum(per_group)
    steps = len(pieces) + buckets
    with open(path, "wb") as out:
        _write_header(out, total)
        if total <= BUCKET_VALUES:  # everything fits: one sort by (group, value)
            values, labels = [], []
            for done, piece in enumerate(pieces, 1):
                with np.load(piece) as loaded:
                    values.append(loaded["thresholds"])
                    if len(group_sizes) > 1:  # languages: each value's group, for the sort by (group, value)
                        labels.append(np.repeat(np.arange(len(loaded["group_sizes"])), loaded["group_sizes"]))
                if progress:
                    progress(done, steps)
            values_ = np.concatenate(values) if values else np.zeros(0)
            del values
            if len(group_sizes) == 1:
                values_.sort()  # in place: a run's thresholds once, not twice
                values_.tofile(out)
            else:
                labels_ = np.concatenate(labels) if labels else np.zeros(0, np.int64)
                values_[np.lexsort((values_, labels_))].tofile(out)
            if progress:
                progress(steps, steps)
            return
        bounds = [
            np.quantile(np.sort(probes[g]), np.arange(1, n) / n) if n > 1 else np.zeros(0)
            for g, n in enumerate(per_group)
        ]
        first_bucket = np.concatenate(([0], np.cumsum(per_group)))
        spill = path.with_name(f".{path.stem}.buckets-{uuid.uuid4().hex[:8]}")
        spill.mkdir()
        try:
            files = [open(spill / f"{b:05d}.f8", "wb") for b in range(buckets)]
            try:
                for done, piece in enumerate(pieces, 1):
                    with np.load(piece) as loaded:
                        values, counted = loaded["thresholds"], loaded["group_sizes"]
                    starts = np.concatenate(([0], np.cumsum(counted)))
                    for group in np.flatnonzero(counted):
                        segment = values[starts[group] : starts[group + 1]]
                        cuts = np.concatenate(
                            ([0], np.searchsorted(segment, bounds[group], side="left"), [len(segment)])
                        )
                        for b in range(per_group[group]):
                            if cuts[b + 1] > cuts[b]:
                                segment[cuts[b] : cuts[b + 1]].tofile(files[first_bucket[group] + b])
                    if progress:
                        progress(done, steps)
            finally:
                for handle in files:
                    handle.close()
            for b in range(buckets):
                np.sort(np.fromfile(spill / f"{b:05d}.f8", dtype="<f8")).tofile(out)
                (spill / f"{b:05d}.f8").unlink()
                if progress:
                    progress(len(pieces) + b + 1, steps)
        finally:
            shutil.rmtree(spill, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def describe(run: RunDir, seed: int) -> dict:
    return read_json(run.preview(seed) / SUMMARY)


def open_preview(run: RunDir, seed: int, rule: KeepRule | None = None) -> BalancePreview | WorldwidePreview:
    """The seed's preview, memory-mapped: a binary search in the thresholds touches a few pages, and
    the estimates read of the sample (whose size does not grow with the pool) only the pairs a t puts
    at risk. A worldwide run's answers
    each language at its t, by ``rule`` (default: the reference language and fixed t its last balance
    recorded)."""
    directory = run.preview(seed)
    summary = describe(run, seed)
    table = read_parquet(run.entry_counts)
    counts = numbers(table.column("count"))
    thresholds = np.load(directory / "thresholds.npy", mmap_mode="r")
    sample = tuple(
        np.load(directory / f"sample_{name}.npy", mmap_mode="r") for name in ("offsets", "entries", "thresholds")
    )
    # Previews merged before it was stored have no sample_min_counts.npy: computed when opened.
    smallest_path = directory / "sample_min_counts.npy"
    smallest = np.load(smallest_path, mmap_mode="r") if smallest_path.exists() else None
    if "languages" not in summary:
        return BalancePreview.from_parts(counts, thresholds, summary["pairs"], *sample, smallest)
    if rule is None:
        parameters = read_json(run.run_json).get("parameters", {}) if run.run_json.exists() else {}
        rule = KeepRule.from_table(table, parameters)
    return WorldwidePreview.from_parts(
        rule,
        summary["languages"],
        thresholds,
        summary["language_matched_pairs"],
        summary["language_pairs"],
        *sample,
        np.load(directory / "sample_groups.npy"),
        smallest,
    )


def sample_rows(run: RunDir, seed: int) -> np.ndarray:
    """shard << 32 | row of every sampled pair, in the sample's stored order."""
    return np.load(run.preview(seed) / "sample_rows.npy")
