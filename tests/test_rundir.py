"""Atomic writes of the run directory: a file or folder appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.rundir import RunDir, atomic_directory, atomic_file, remove_leftovers


def test_an_atomic_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_file(target) as temporary:
        temporary.write_bytes(b"whole")
        assert not target.exists()
    assert target.read_bytes() == b"whole" and list(target.parent.iterdir()) == [target]


def test_an_atomic_directory_replaces_the_old_one_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "tables"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "new").write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["tables"] and (target / "old").exists()
    with atomic_directory(target) as staging:
        (staging / "new").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new"] and [p.name for p in tmp_path.iterdir()] == ["tables"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(RuntimeError), atomic_file(run.entry_counts):
        raise RuntimeError("a context manager cleans up; a kill does not:")
    (tmp_path / ".entry_counts.parquet.tmp-1-dead").write_bytes(b"half")
    # A folder a killed atomic_directory was filling (the matcher's tables), with a leftover of its own inside.
    with pytest.raises(RuntimeError), atomic_directory(run.matcher_tables):
        raise RuntimeError("cleaned up too")
    staging = run.matcher_tables.with_name(".tokens.tmp-1-dead")
    staging.mkdir(parents=True)
    (staging / "terminal.npy").write_bytes(b"half a table")
    (staging / ".terminal.npy.tmp-1-dead").write_bytes(b"half")
    # A preview piece and an index part being written when the run was killed.
    run.preview_pieces(3).mkdir(parents=True)
    (run.preview_pieces(3) / ".00000.npz.tmp-1-dead").write_bytes(b"half")
    run.index.mkdir()
    (run.index / ".part-00000.parquet.tmp-1-dead").write_bytes(b"half")
    (tmp_path / "run.json").write_text("{}")
    remove_leftovers(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["index", "matcher", "preview", "preview/pieces-seed-3", "run.json"]


def test_threshold_seeds_are_the_folders_of_numbered_seeds(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for seed in (10, 2):
        run.thresholds(seed).mkdir(parents=True)
    (tmp_path / "thresholds" / "seed-x").mkdir()
    assert run.threshold_seeds() == [2, 10]
