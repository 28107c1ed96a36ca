"""The preview files of a run and seed: what `balance` writes, what older runs get on first use, and
that they answer exactly as a full pass over the run, with bounded memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import cli, read_dir, run_pairs

from curation import Run, balancing, preview_files
from curation.rundir import RunDir


@pytest.fixture
def finished(tmp_path: Path, pool: Path, metadata: Path) -> Path:
    out = tmp_path / "run"
    assert (
        cli(
            "run",
            "--pool",
            pool,
            "--metadata",
            metadata,
            "--t",
            40,
            "--seed",
            3,
            "--out",
            out,
            "--shard-rows",
            500,
            "--sample-pairs",
            600,
        )
        == 0
    )
    return out


def full_pass(out: Path, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    thresholds = read_dir(out / "thresholds" / f"seed-{seed}", ["k"]).column("k").to_numpy()
    entry_lists = run_pairs(out, ["entry_ids"]).column("entry_ids").to_pylist()
    return thresholds, entry_lists


def test_balance_writes_the_preview_and_removes_its_pieces(finished: Path) -> None:
    run = RunDir(finished)
    summary = json.loads((run.preview(3) / "preview.json").read_text())
    thresholds, entry_lists = full_pass(finished, 3)
    finite = np.sort(thresholds[np.isfinite(thresholds)])
    assert np.array_equal(np.load(run.preview(3) / "thresholds.npy"), finite)
    assert summary["pairs"] == len(entry_lists) and summary["matched_pairs"] == len(finite)
    sizes = [len(ids) for ids in entry_lists]
    assert summary["matches_per_pair"] == np.bincount(sizes).tolist()
    assert not run.preview_pieces(3).exists()
    assert 400 < summary["sample_pairs"] < 800  # about --sample-pairs 600 of ~2,000 matched pairs


def test_the_sample_is_what_in_sample_picks_with_its_rows_entries_and_thresholds(finished: Path) -> None:
    run = RunDir(finished)
    summary = preview_files.describe(run, 3)
    keys = run_pairs(finished, ["pair_key"]).column("pair_key").to_numpy()
    thresholds, entry_lists = full_pass(finished, 3)
    chosen = [i for i in np.flatnonzero(balancing.in_sample(keys, 3, summary["sample_rate"])) if entry_lists[i]]
    rows = preview_files.sample_rows(run, 3)
    shard_rows = [s["rows"] for s in json.loads(run.plan_json.read_text())["shards"]]
    starts = np.concatenate(([0], np.cumsum(shard_rows)))
    global_rows = [int(starts[r >> 32] + (r & 0xFFFFFFFF)) for r in rows]
    assert sorted(global_rows) == chosen and len(set(global_rows)) == len(chosen)
    offsets = np.load(run.preview(3) / "sample_offsets.npy")
    entries = np.load(run.preview(3) / "sample_entries.npy")
    stored = [entries[offsets[i] : offsets[i + 1]].tolist() for i in range(len(chosen))]
    assert stored == [entry_lists[i] for i in global_rows]  # each sampled pair with its rows, entries, k
    assert np.array_equal(np.load(run.preview(3) / "sample_thresholds.npy"), thresholds[global_rows])
    # Stored in the order the estimates work in: by entries per pair, then smallest count descending.
    counts = pq.read_table(run.entry_counts).column("count").to_numpy()
    keys = [(len(ids), -min(counts[ids])) for ids in stored]
    assert keys == sorted(keys)
    assert np.load(run.preview(3) / "sample_min_counts.npy").tolist() == [-key for _, key in keys]


def test_a_preview_without_stored_min_counts_answers_the_same(finished: Path) -> None:
    run = RunDir(finished)
    stored = preview_files.open_preview(run, 3)
    (run.preview(3) / "sample_min_counts.npy").unlink()  # as merged before the file existed
    computed = preview_files.open_preview(run, 3)
    for t in (5, 40, 400):
        assert computed.expected_size_at(t) == stored.expected_size_at(t)
    assert np.array_equal(computed.sample.min_counts, stored.sample.min_counts)


@pytest.mark.slow
def test_thresholds_are_merged_in_buckets_when_they_do_not_fit_one(finished: Path, monkeypatch) -> None:
    thresholds, _ = full_pass(finished, 3)
    monkeypatch.setattr(preview_files, "BUCKET_VALUES", 97)  # ~20 buckets for ~2,000 values
    assert cli("preview", finished, "--seed", 3, "--rebuild", "--quiet") == 0
    stored = np.load(RunDir(finished).preview(3) / "thresholds.npy")
    assert np.array_equal(stored, np.sort(thresholds[np.isfinite(thresholds)]))
    assert not list(RunDir(finished).root.rglob("*.buckets-*"))


@pytest.mark.slow
def test_a_run_without_a_preview_gets_one_on_first_use_with_the_same_answers(finished: Path) -> None:
    before = Run(finished).report([10, 40, 200], [100, 1_000], seed=3)
    for path in sorted((finished / "preview").iterdir()):
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    after = Run(finished).report([10, 40, 200], [100, 1_000], seed=3)
    assert preview_files.is_complete(RunDir(finished), 3)
    # The default sample holds every one of these matched pairs: the expected sizes are now exact.
    assert after["estimates"]["exact"] and not before["estimates"]["exact"]
    exact = Run(finished)
    for old, new in zip(before["at_t"], after["at_t"]):
        assert new["expected_kept"] == pytest.approx(exact.expected_size_at(new["t"]), rel=1e-6)
        assert abs(old["expected_kept"] - new["expected_kept"]) < 4 * old["expected_kept_stderr"]
        assert {k: v for k, v in old.items() if not k.startswith("expected")} == {
            k: v for k, v in new.items() if not k.startswith("expected")
        }
    assert after["t_for_size"] == before["t_for_size"]


def test_sizes_come_from_memory_mapped_thresholds_and_are_exact(finished: Path) -> None:
    run = Run(finished)
    thresholds, _ = full_pass(finished, 3)
    assert isinstance(run.sorted_thresholds(3), np.memmap)
    for t in (0.5, 7, 40, 123.4, 1e9):
        assert run.size_at(t, 3) == int((thresholds < t).sum())


def test_estimates_are_labelled_and_hold_the_exact_value(finished: Path, capsys) -> None:
    capsys.readouterr()
    assert cli("stats", finished, "--t", 40, "--seed", 3, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    row = report["at_t"][0]
    exact = Run(finished).expected_size_at(40)
    assert not row["expected_kept_exact"] and row["expected_kept_stderr"] > 0
    assert abs(row["expected_kept"] - exact) < 4 * row["expected_kept_stderr"]
    assert report["estimates"]["sampled_pairs"] < report["estimates"]["matched_pairs"]
    assert cli("stats", finished, "--t", 40, "--seed", 3) == 0
    text = capsys.readouterr().out
    assert " ± " in text and "estimated from a uniform sample" in text


@pytest.mark.slow
def test_a_killed_merge_leaves_pieces_that_the_next_balance_uses(finished: Path) -> None:
    run = RunDir(finished)
    expected = np.load(run.preview(3) / "thresholds.npy")
    assert cli("balance", finished, "--t", 40, "--seed", 5, "--sample-pairs", 600) == 0
    shutil_tree = run.preview(5)
    for child in shutil_tree.iterdir():
        child.unlink()
    shutil_tree.rmdir()  # as if killed after the pieces, before the merge's rename
    assert cli("preview", finished, "--seed", 5, "--quiet") == 0
    assert preview_files.is_complete(run, 5)
    assert np.array_equal(np.load(run.preview(3) / "thresholds.npy"), expected)
    summary = preview_files.describe(run, 5)
    assert summary["matched_pairs"] == len(expected)
    assert pq.read_metadata(run.index_part(0)).num_rows > 0
