"""The preview of a run and seed as files made for random access: memory-mapped, never loaded whole.

    RUN/preview/seed-S/
      preview.json        pairs, matched pairs, matches per pair, the sample (rate, size), format
      thresholds.npy      float64: every matched pair's keep threshold k, ascending
      sample_offsets.npy  int64:   CSR offsets of the sampled pairs' entry lists
      sample_entries.npy  int32:   their entry ids
      sample_thresholds.npy float64: their k
      sample_rows.npy     int64:   shard << 32 | row of each sampled pair, to fetch its columns
    RUN/preview/pieces-seed-S/NNNNN.npz   one shard's part of all that; merged, then removed

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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation import balancing
from curation.entry_lists import flatten
from curation.errors import CurationError
from curation.preview import BalancePreview
from curation.rundir import RunDir, atomic_directory, atomic_file, atomic_write_json, read_json

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
    """Gathers one shard's piece batch by batch, in row order."""

    def __init__(self, seed: int, rate: float) -> None:
        self.seed, self.rate = seed, rate
        self.rows = 0
        self.thresholds: list[np.ndarray] = []
        self.sample: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.matches = np.zeros(1, dtype=np.int64)

    def add(self, entry_ids: pa.ListArray | pa.ChunkedArray, pair_keys: np.ndarray, thresholds: np.ndarray) -> None:
        values, offsets = flatten(entry_ids)
        sizes = np.diff(offsets)
        matches = np.bincount(sizes, minlength=len(self.matches))
        matches[: len(self.matches)] += self.matches
        self.matches = matches
        self.thresholds.append(thresholds[np.isfinite(thresholds)])
        chosen = np.flatnonzero(balancing.in_sample(pair_keys, self.seed, self.rate) & (sizes > 0))
        if len(chosen):
            taken = values[_ranges(offsets[chosen], sizes[chosen])]
            self.sample.append((sizes[chosen].astype(np.int32), taken.astype(np.int32),
                                thresholds[chosen].astype(np.float64), chosen.astype(np.int64) + self.rows))
        self.rows += len(sizes)

    def write(self, path: Path) -> None:
        parts = list(zip(*self.sample)) if self.sample else [[np.zeros(0, np.int32)], [np.zeros(0, np.int32)],
                                                           [np.zeros(0)], [np.zeros(0, np.int64)]]
        thresholds = np.sort(np.concatenate(self.thresholds)) if self.thresholds else np.zeros(0)
        with atomic_file(path) as temporary, open(temporary, "wb") as handle:  # a handle: savez adds no .npz
            np.savez(handle, thresholds=thresholds, sample_sizes=np.concatenate(parts[0]),
                     sample_entries=np.concatenate(parts[1]), sample_thresholds=np.concatenate(parts[2]),
                     sample_rows=np.concatenate(parts[3]), matches=self.matches, rows=np.array([self.rows]),
                     rate=np.array([self.rate]))


def has_piece(path: Path, rate: float) -> bool:
    """A shard's piece exists and was sampled at this rate (a killed merge may leave pieces of another)."""
    try:
        with np.load(path) as piece:
            return float(piece["rate"][0]) == rate
    except (OSError, KeyError, ValueError):
        return False


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))


# --------------------------------------------------------------------------------------------------
# The merge
# --------------------------------------------------------------------------------------------------


def merge(run: RunDir, seed: int, shards: list[int], rate: float, progress: Progress | None = None) -> dict:
    """Merge every shard's piece into the seed's preview directory; returns its preview.json."""
    started = time.perf_counter()
    pieces = [run.preview_piece(seed, shard) for shard in shards]
    missing = [p for p in pieces if not p.exists()]
    if missing:
        raise CurationError(f"{len(missing)} shards of {run.root} have no preview piece for seed {seed} "
                            f"(first: {missing[0].name}); run the balance again to make them")
    with atomic_directory(run.preview(seed)) as staging:
        summary = _merge_into(staging, shards, pieces, progress)
        summary.update({"format": PREVIEW_FORMAT, "seed": seed, "sample_rate": rate,
                        "built_s": round(time.perf_counter() - started, 3)})
        atomic_write_json(staging / SUMMARY, summary)
    shutil.rmtree(run.preview_pieces(seed), ignore_errors=True)
    return summary


def _merge_into(directory: Path, shards: list[int], pieces: list[Path], progress: Progress | None) -> dict:
    pairs, total, matches = 0, 0, np.zeros(1, dtype=np.int64)
    sizes, entries, sample_thresholds, rows, probes = [], [], [], [], []
    for shard, path in zip(shards, pieces):
        with np.load(path) as piece:
            pairs += int(piece["rows"][0])
            values = piece["thresholds"]
            total += len(values)
            probes.append(values[:: max(1, len(values) // 64)].copy())  # a view would keep the piece alive
            sizes.append(piece["sample_sizes"])
            entries.append(piece["sample_entries"])
            sample_thresholds.append(piece["sample_thresholds"])
            rows.append(piece["sample_rows"] + (np.int64(shard) << 32))
            counted = piece["matches"]
            grown = np.zeros(max(len(matches), len(counted)), dtype=np.int64)
            grown[: len(matches)] += matches
            grown[: len(counted)] += counted
            matches = grown
    sample_sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int32)
    offsets = np.zeros(len(sample_sizes) + 1, dtype=np.int64)
    np.cumsum(sample_sizes, out=offsets[1:])
    np.save(directory / "sample_offsets.npy", offsets)
    np.save(directory / "sample_entries.npy", np.concatenate(entries) if entries else np.zeros(0, np.int32))
    np.save(directory / "sample_thresholds.npy",
            np.concatenate(sample_thresholds) if sample_thresholds else np.zeros(0))
    np.save(directory / "sample_rows.npy", np.concatenate(rows) if rows else np.zeros(0, np.int64))
    _sorted_thresholds(directory / "thresholds.npy", pieces, total,
                       np.concatenate(probes) if probes else np.zeros(0), progress)
    return {"pairs": pairs, "matched_pairs": total, "sample_pairs": len(sample_sizes),
            "matches_per_pair": [int(x) for x in matches]}


def _write_header(handle, length: int) -> None:
    np.lib.format.write_array_header_2_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (length,)})


def _sorted_thresholds(path: Path, pieces: list[Path], total: int, probes: np.ndarray,
                       progress: Progress | None) -> None:
    """All pieces' thresholds in one ascending .npy, written by plain appends (no mapping: the
    process that merges holds at most a bucket, whatever the run's size)."""
    buckets = max(1, -(-total // BUCKET_VALUES))
    steps = len(pieces) + buckets
    with open(path, "wb") as out:
        _write_header(out, total)
        if buckets == 1:
            values = []
            for done, piece in enumerate(pieces, 1):
                with np.load(piece) as loaded:
                    values.append(loaded["thresholds"])
                if progress:
                    progress(done, steps)
            np.sort(np.concatenate(values) if values else np.zeros(0)).tofile(out)
            if progress:
                progress(steps, steps)
            return
        bounds = np.quantile(np.sort(probes), np.arange(1, buckets) / buckets)
        spill = path.with_name(f".{path.stem}.buckets-{uuid.uuid4().hex[:8]}")
        spill.mkdir()
        try:
            files = [open(spill / f"{b:05d}.f8", "wb") for b in range(buckets)]
            try:
                for done, piece in enumerate(pieces, 1):
                    with np.load(piece) as loaded:
                        values = loaded["thresholds"]
                    cuts = np.concatenate(([0], np.searchsorted(values, bounds, side="left"), [len(values)]))
                    for b in range(buckets):
                        if cuts[b + 1] > cuts[b]:
                            values[cuts[b]:cuts[b + 1]].tofile(files[b])
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


def open_preview(run: RunDir, seed: int) -> BalancePreview:
    """The seed's preview: thresholds memory-mapped (a binary search touches a few pages), the sample
    and the entry counts in memory (their size does not grow with the pool)."""
    directory = run.preview(seed)
    summary = describe(run, seed)
    counts = pq.read_table(run.entry_counts, columns=["count"]).column("count").to_numpy()
    return BalancePreview.from_parts(
        counts, np.load(directory / "thresholds.npy", mmap_mode="r"), summary["pairs"],
        np.load(directory / "sample_offsets.npy"), np.load(directory / "sample_entries.npy"),
        np.load(directory / "sample_thresholds.npy"))


def sample_rows(run: RunDir, seed: int) -> np.ndarray:
    """shard << 32 | row of every sampled pair, in the sample's stored order."""
    return np.load(run.preview(seed) / "sample_rows.npy")
