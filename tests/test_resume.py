"""A killed run, started again with the same command, ends with the files of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import cli, make_texts, read_dir, write_pool
from processes import kill_when, start_run

from curation.matchers import MATCHERS

ROOT = Path(__file__).resolve().parents[1]


def snapshot(out: Path) -> dict:
    """Everything a run's result consists of, in comparable form."""
    return {
        "annotated": read_dir(out / "annotated"),
        "counts": pq.read_table(out / "entry_counts.parquet"),
        "thresholds": read_dir(out / "thresholds" / "seed-2"),
        "curated": read_dir(out / "curated").sort_by("id"),
        "balanced": pq.read_table(out / "balanced_counts.parquet"),
    }


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        assert a[name].equals(b[name]), name


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
    """Outputs of a kill at any point: a missing marker, a leftover temporary file, a half-made selection."""
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
    (out / "shards" / "00003.json").unlink()  # killed before the marker landed
    (out / "annotated" / ".part-00003.parquet.tmp-1-dead").write_bytes(b"half a file")
    half_built = out / "matcher" / ".tokens.tmp-1-dead"  # killed while building tables
    half_built.mkdir(parents=True)
    (half_built / "terminal.npy").write_bytes(b"half a table")
    (out / "thresholds" / "seed-2" / "part-00005.parquet").unlink()
    (out / "curated").rename(out / ".curated-staging")  # killed between the two renames
    (out / ".curated-staging" / "part-00001.parquet").unlink()
    (out / "run.json").unlink()
    capsys.readouterr()
    assert cli("run", *args, "--out", out) == 0
    assert "resuming: 11 of 12 shards already matched" in capsys.readouterr().err
    assert not list(out.rglob(".*.tmp-*"))
    assert_same(snapshot(tmp_path / "reference"), snapshot(out))
