"""A killed run, started again with the same command, ends with the files of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, curated, make_texts, read_dir, write_pool
from processes import kill_when, start_run

from curation import Run, preview_files, stages
from curation.matchers import MATCHERS
from curation.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def preview(out: Path, seed: int) -> dict:
    """The seed's preview in comparable form: its summary (but the time it took), its arrays, and its
    sample's pairs as positions in the pool (not shard and row: those depend on the sharding)."""
    run = RunDir(out)
    summary = {k: v for k, v in preview_files.describe(run, seed).items() if k != "built_s"}
    arrays = {
        name: pa.array(np.load(run.preview(seed) / f"{name}.npy"))
        for name in ("thresholds", "sample_offsets", "sample_entries", "sample_thresholds", "sample_groups")
    }
    starts = np.concatenate(([0], np.cumsum([s.rows for s in run.plan().shards])))
    rows = preview_files.sample_rows(run, seed)
    return {"summary": summary, **arrays, "sample_pairs": pa.array(starts[rows >> 32] + (rows & 0xFFFFFFFF))}


def snapshot(out: Path) -> dict:
    """Everything a run's result consists of, in comparable form."""
    return {
        "index": read_dir(out / "index"),
        "counts": pq.read_table(out / "entry_counts.parquet"),
        "thresholds": read_dir(out / "thresholds" / "seed-2"),
        "preview": preview(out, 2),
        "curated": curated(out).sort_by("id"),
        "balanced": pa.array(Run(out).balanced_counts(500, 2)),
    }


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        if isinstance(a[name], dict):
            assert_same(a[name], b[name])
        else:
            same = a[name].equals(b[name]) if hasattr(a[name], "equals") else a[name] == b[name]
            assert same, name


def big_pool(tmp_path: Path) -> Path:
    texts = make_texts(120_000, seed=3)
    ids = list(range(len(texts)))
    return write_pool(tmp_path / "pool", {"id": ids, "text": texts}, files=4, row_group_size=2_000)


@pytest.mark.slow  # a reference run and a killed one over 120,000 rows, then the resumed run
@pytest.mark.parametrize("matcher", MATCHERS)
def test_killed_run_resumes_to_the_same_result(tmp_path: Path, metadata: Path, matcher: str, capsys) -> None:
    pool = big_pool(tmp_path)
    args = [
        "--pool",
        pool,
        "--metadata",
        metadata,
        "--t",
        500,
        "--seed",
        2,
        "--shard-rows",
        2_000,
        "--matcher",
        matcher,
    ]
    assert cli("run", *args[:-2], "--out", tmp_path / "reference", "--matcher", "aho-corasick") == 0
    out = tmp_path / "killed"
    process = start_run(["run", *args, "--out", out, "--workers", 1, "--quiet"], stderr=None)
    assert not kill_when(process, lambda: any((out / "shards").glob("*.json")), seconds=300)
    # 60 shards, killed as the first marker appears: nearly always mid-match. How far it got depends on
    # timing, so what is asserted is what holds at any kill point: at least one shard was matched, and
    # the resumed run trusts exactly the markers the killed one left (one process: no late writer).
    markers = len(list((out / "shards").glob("*.json")))
    assert markers > 0, "the run ended before its first shard"
    capsys.readouterr()
    assert cli("run", *args, "--out", out) == 0
    assert f"resuming: {markers} of 60 shards already matched" in capsys.readouterr().err
    assert_same(snapshot(tmp_path / "reference"), snapshot(out))


@pytest.mark.slow
@pytest.mark.parametrize("matcher", MATCHERS)
def test_resume_after_losing_outputs_midway(tmp_path: Path, metadata: Path, matcher: str, capsys) -> None:
    """Outputs of a kill at any point: a missing marker, a leftover temporary file, a balance killed
    before its preview was merged, a half-written manifest."""
    pool = big_pool(tmp_path)
    args = [
        "--pool",
        pool,
        "--metadata",
        metadata,
        "--t",
        500,
        "--seed",
        2,
        "--shard-rows",
        10_000,
        "--matcher",
        matcher,
    ]
    assert cli("run", *args[:-2], "--out", tmp_path / "reference", "--matcher", "aho-corasick") == 0
    out = tmp_path / "broken"
    assert cli("run", *args, "--out", out) == 0
    run = RunDir(out)
    (out / "shards" / "00003.json").unlink()  # killed before the marker landed
    (out / "index" / ".part-00003.parquet.tmp-1-dead").write_bytes(b"half a file")
    half_built = out / "matcher" / ".tokens.tmp-1-dead"  # killed while building tables
    half_built.mkdir(parents=True)
    (half_built / "terminal.npy").write_bytes(b"half a table")
    # A balance killed before the merge of its preview: some shards' pieces made, the thresholds of
    # one shard not yet written, the preview itself not there (or half made, under its temporary name).
    rate = preview_files.describe(run, 2)["sample_rate"]
    for shard in (0, 1, 2):
        stages.threshold_shard(shard, stages.ThresholdConfig(root=str(out), seed=2, sample_rate=rate))
    assert sorted(p.name for p in run.preview_pieces(2).iterdir()) == ["00000.npz", "00001.npz", "00002.npz"]
    (run.preview_pieces(2) / ".00003.npz.tmp-1-dead").write_bytes(b"half a piece")
    run.preview(2).rename(run.preview(2).with_name(".seed-2.tmp-1-dead"))
    (out / "thresholds" / "seed-2" / "part-00005.parquet").unlink()
    # Killed while writing the curated manifest: a part half written, another not begun, no provenance.
    manifest = next((out / "manifests").glob("curated-*.parquet"))
    (manifest / "part-00004.parquet").rename(manifest / ".part-00004.parquet.tmp-1-dead")
    (manifest / "part-00007.parquet").unlink()
    manifest.with_name(manifest.name + ".provenance.json").unlink()
    (out / "run.json").unlink()
    capsys.readouterr()
    assert cli("run", *args, "--out", out) == 0
    assert "resuming: 11 of 12 shards already matched" in capsys.readouterr().err
    assert not list(out.rglob(".*.tmp-*"))
    assert_same(snapshot(tmp_path / "reference"), snapshot(out))
