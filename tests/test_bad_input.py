"""Bad input: one line on stderr that names the problem, a non-zero exit, never a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, write_pool

ROOT = Path(__file__).resolve().parents[1]
CLI = Callable[..., subprocess.CompletedProcess]


def run_process(*args: object) -> subprocess.CompletedProcess:
    """``python -m curation`` in a process of its own: what a user's shell sees."""
    return subprocess.run(
        [sys.executable, "-m", "curation", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def run_cli(capfd: pytest.CaptureFixture) -> CLI:
    """The command line's entry point in this process, its exit code and what it wrote to file
    descriptors 1 and 2 (capfd: native libraries' messages too, as the shell would see them). The
    tests that need a process of their own (another lock holder, the module's own entry) use
    run_process; the rest save a Python start and its imports each."""

    def run(*args: object) -> subprocess.CompletedProcess:
        capfd.readouterr()
        code = cli(*args)  # conftest's: quiet and one worker for a run (no worker processes for a refusal)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess([str(a) for a in args], code, out, err)

    return run


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.slow
def test_missing_pool(tmp_path: Path, metadata: Path) -> None:
    """In a process of its own, as a shell runs it: the one line, the exit code, no traceback."""
    result = run_process("run", "--pool", tmp_path / "nope", "--metadata", metadata, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "pool not found", "nope")
    assert result.returncode == 2


def test_missing_metadata(run_cli: CLI, tmp_path: Path, pool: Path) -> None:
    result = run_cli("run", "--pool", pool, "--metadata", tmp_path / "m.json", "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "metadata file not found")


def test_corrupt_parquet(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all" * 10)
    result = run_cli("run", "--pool", bad, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "cannot read Parquet file", "bad.parquet")


def test_corrupt_data_pages_are_reported_with_the_file(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"text": [f"a red dog number {i}" for i in range(20_000)]}), path, compression="none")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xff" * 4096  # the footer survives, the data pages do not
    path.write_bytes(bytes(data))
    result = run_cli(
        "run", "--pool", path, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o", "--workers", 1, "--quiet"
    )
    assert_one_line_error(result, "pool.parquet")


def test_no_text_column(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    pool = write_pool(tmp_path / "pool", {"url": ["a"], "description": ["a dog"]})
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "no text column", "--text-column")


def test_text_column_not_strings(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    pool = write_pool(tmp_path / "pool", {"text": [1, 2, 3]})
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "not strings")


@pytest.mark.parametrize("t", ["0", "-3", "abc", "nan", "inf"])
def test_t_must_be_positive(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path, t: str) -> None:
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", t, "--out", tmp_path / "o")
    assert_one_line_error(result, "t must be a positive number")


@pytest.mark.parametrize("seed", ["1.5", "x", "-1"])
def test_seed_must_be_an_integer(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path, seed: str) -> None:
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--seed", seed, "--out", tmp_path / "o")
    assert_one_line_error(result, "seed")


def test_duplicate_and_empty_metadata_entries(run_cli: CLI, tmp_path: Path, pool: Path) -> None:
    duplicate = tmp_path / "dup.json"
    duplicate.write_text(json.dumps(["dog", "cat", "dog"]))
    result = run_cli("run", "--pool", pool, "--metadata", duplicate, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "entry 2", "'dog'", "--drop-invalid-entries")
    empty = tmp_path / "empty.txt"
    empty.write_text("dog\n\ncat\n")
    result = run_cli("run", "--pool", pool, "--metadata", empty, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "entry 1 is empty")
    assert (
        cli("run", "--pool", pool, "--metadata", duplicate, "--t", 5, "--out", tmp_path / "o", "--drop-invalid-entries")
        == 0
    )
    assert pq.read_table(tmp_path / "o" / "entry_counts.parquet").column("entry").to_pylist() == ["dog", "cat"]


def test_empty_pool_directory(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    (tmp_path / "pool").mkdir()
    result = run_cli("run", "--pool", tmp_path / "pool", "--metadata", metadata, "--t", 5, "--out", tmp_path / "o")
    assert_one_line_error(result, "no .parquet files")


def test_null_ids_are_refused(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    pool = write_pool(tmp_path / "pool", {"id": [1, None], "text": ["a dog", "a cat"]})
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o", "--quiet")
    assert_one_line_error(result, "id column 'id'", "missing")


def test_out_holding_another_run_is_refused(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path) -> None:
    out = tmp_path / "o"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out) == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps(["red", "blue"]))
    result = run_cli("run", "--pool", pool, "--metadata", other, "--t", 5, "--out", out)
    assert_one_line_error(result, "holds a run with other metadata")


def test_out_that_is_not_a_run_directory(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out)
    assert_one_line_error(result, "not a run directory")
    assert result.returncode == 2 and [p.name for p in out.iterdir()] == ["notes.txt"]  # no .lock left in it


def test_the_same_files_named_by_a_relative_path_resume_the_run(
    tmp_path: Path, pool: Path, metadata: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """As the README does after the dashboard's first start: the run was made with absolute paths, the
    command names the same pool and metadata relative to the working directory."""
    out = tmp_path / "o"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli("run", "--pool", "pool", "--metadata", "metadata.json", "--t", 5, "--out", "o") == 0
    assert "resuming: 2 of 2 shards already matched" in capsys.readouterr().err
    (tmp_path / "link").symlink_to(pool)  # a symlink to the same folder names the same files too
    assert cli("run", "--pool", "link", "--metadata", metadata, "--t", 5, "--out", "o") == 0


def test_a_refused_resume_names_what_differs_with_both_values(
    tmp_path: Path, pool: Path, metadata: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "o"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out) == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps(["red", "blue"]))

    def refusal(*args: object) -> str:
        capsys.readouterr()
        assert cli("run", "--t", 5, "--out", out, *args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {out} holds a run with other ")
        return err.removeprefix(f"error: {out} holds a run with other ").split("; choose another --out")[0]

    assert refusal("--pool", pool, "--metadata", metadata, "--shard-rows", 700) == (
        "sharding (--shard-rows: 100,000 before, 700 now)"
    )
    assert refusal("--pool", pool, "--metadata", metadata, "--content-key") == "columns (id: 'id' before, none now)"
    old = json.loads((out / "plan.json").read_text())["metadata"]["fingerprint"][:19]
    new = "sha256:" + hashlib.sha256(b'["red","blue"]').hexdigest()[:12]
    assert refusal("--pool", pool, "--metadata", other) == (
        f"metadata (21 entries of {metadata} ({old}) before, 2 entries of {other} ({new}) now)"
    )
    first = pool / "part-000.parquet"
    assert refusal("--pool", first, "--metadata", metadata) == (
        f"pool files (2 files before, 1 now, only before: {pool / 'part-001.parquet'})"
    )
    size = first.stat().st_size
    pq.write_table(pq.read_table(first).slice(0, 10), first)
    assert refusal("--pool", pool, "--metadata", metadata) == (
        f"pool files ({first}: {size:,} bytes before, {first.stat().st_size:,} now)"
    )


def test_out_that_is_a_file_is_refused_and_left_alone(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path) -> None:
    out = tmp_path / "notes.md"
    out.write_text("mine")
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out)
    assert_one_line_error(result, "notes.md is a file, not a run directory")
    assert result.returncode == 2 and out.read_text() == "mine"


def test_out_below_a_file_is_one_line(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path) -> None:
    (tmp_path / "file").write_text("mine")
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", tmp_path / "file" / "below")
    assert_one_line_error(result, "cannot make the run directory", "below")
    assert result.returncode == 2


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc, where nothing can be made")
def test_out_in_proc_is_one_line(run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path) -> None:
    result = run_cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", "/proc/nope")
    assert_one_line_error(result, "cannot make the run directory /proc/nope")
    assert result.returncode == 2


def test_a_failed_start_leaves_no_folder_behind(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    out = tmp_path / "new" / "deeper" / "o"
    result = run_cli("run", "--pool", tmp_path / "nope", "--metadata", metadata, "--t", 5, "--out", out)
    assert_one_line_error(result, "pool not found")
    assert not (tmp_path / "new").exists()


def test_a_failed_start_in_an_existing_folder_keeps_the_folder(run_cli: CLI, tmp_path: Path, metadata: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    result = run_cli("run", "--pool", tmp_path / "nope", "--metadata", metadata, "--t", 5, "--out", out)
    assert_one_line_error(result, "pool not found")
    assert out.is_dir() and not list(out.iterdir())  # as it was: empty, without a lock


@pytest.mark.parametrize("name", ["empty.txt", "empty.json", "empty.parquet", "blank.txt"])
def test_empty_metadata_is_refused_in_one_line(run_cli: CLI, tmp_path: Path, pool: Path, name: str) -> None:
    """No entries, whatever the format, or none left once the blank line (an empty entry) is dropped:
    refused, exit 2, no run directory left behind."""
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table({"entry": pa.array([], pa.string())}), path)
    else:
        path.write_text({"empty.txt": "", "empty.json": "[]", "blank.txt": "\n"}[name])
    drop = ["--drop-invalid-entries"] if name == "blank.txt" else []
    result = run_cli("run", "--pool", pool, "--metadata", path, "--t", 5, "--out", tmp_path / "o", *drop)
    dropped = " once --drop-invalid-entries skips the empty and repeated ones" if drop else ""
    assert_one_line_error(result, f"error: metadata {path} holds no entries{dropped}; a run needs at least one")
    assert result.returncode == 2 and not (tmp_path / "o").exists()


def test_stats_and_balance_on_a_non_run(run_cli: CLI, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("stats", tmp_path / "missing"), "run directory not found")
    assert_one_line_error(run_cli("balance", tmp_path, "--t", 5), "not a run directory")


def test_stats_on_a_file_says_it_is_a_file(run_cli: CLI, tmp_path: Path) -> None:
    file = tmp_path / "notes.md"
    file.write_text("mine")
    for command in (("stats", file), ("balance", file, "--t", 5), ("export", file, "--t", 5, "--out", "m.parquet")):
        assert_one_line_error(run_cli(*command), "notes.md is a file, not a run directory")


@pytest.mark.parametrize("typo, meant", [("--metdata", "--metadata"), ("--seeds", "--seed")])
def test_a_mistyped_option_is_named_even_when_a_required_one_is_missing(
    run_cli: CLI,
    tmp_path: Path,
    pool: Path,
    metadata: Path,
    typo: str,
    meant: str,
) -> None:
    arguments = {"--pool": pool, "--metadata": metadata, "--t": 5, "--seed": 1, "--out": tmp_path / "o"}
    given = [str(part) for name, value in arguments.items() for part in (typo if name == meant else name, value)]
    result = run_cli("run", *given)
    assert_one_line_error(result, f"unrecognized option {typo}", f"did you mean {meant}?", "run --help")
    assert result.returncode == 2 and not (tmp_path / "o").exists()


def test_an_unknown_option_beside_every_required_one_is_named_by_its_command(
    run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path
) -> None:
    result = run_cli(
        "run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", tmp_path / "o", "--metdata", metadata
    )
    assert_one_line_error(result, "unrecognized option --metdata", "did you mean --metadata?", "run --help")


def test_abbreviations_and_negative_values_are_not_taken_for_typos(
    run_cli: CLI, tmp_path: Path, pool: Path, metadata: Path
) -> None:
    result = run_cli("run", "--pool", pool, "--meta", metadata, "--t", -3, "--out", tmp_path / "o")
    assert_one_line_error(result, "t must be a positive number")


@pytest.mark.slow
def test_help_explains_each_command(run_cli: CLI) -> None:
    for command in ("run", "match", "balance", "stats"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert "--t" in result.stdout or command == "match"
    overview = run_process("--help")  # the module's own entry, as a shell runs it
    assert overview.returncode == 0
    assert "MetaCLIP" in overview.stdout and "balance" in overview.stdout


def test_second_process_on_the_same_run_directory_is_refused(tmp_path: Path, pool: Path, metadata: Path) -> None:
    from curation.mirror import exclusive, open_run

    out = tmp_path / "o"
    with exclusive(open_run(out)):
        result = run_process("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out)
    assert_one_line_error(result, "another curation process is using")
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 5, "--out", out) == 0
