"""`curation upgrade` (curation/upgrade.py): a run directory of format 1, which copied the pool, made an
index over its pool without matching again.

Format-1 run directories are made here from real format-2 runs by writing what format 1 held, file by
file: `annotated/part-NNNNN.parquet` (every pool column of the shard, then entry_ids and pair_key, then
caption_language in a worldwide run, picked_text and picked_column with --text-columns), threshold parts
with pair_key and k, `curated/` with the pairs kept at the run's t and its `.selection.json`, leftovers
of a killed selection, `balanced_counts.parquet`, plan.json and run.json of format_version 1, and no
index/. Every command but the upgrade refuses such a run in one line naming the upgrade; once upgraded
it reads exactly as the run it was made from; a second upgrade changes nothing; a killed upgrade goes
on; and a pool that changed since the run read it is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, curated, make_texts, run_pairs, write_caption_pool, write_pool

from curation import upgrade
from curation.rundir import FORMAT_VERSION
from studio_common.errors import CurationError

T, SEED = 30, 3
FORMAT_1_COPIES = ("annotated", "curated", ".curated-staging", ".curated-retired", "balanced_counts.parquet")

WORLD = {
    "en": ["dog", "cat", "red", "photo", "hot dog", "the"],
    "de": ["Hund", "Katze", "Foto", "rot", "dog"],
    "other": ["dog", "photo"],
}
WORLD_WORDS = {
    "en": ["a", "dog", "cat", "hot", "red", "photo", "the", "in"],
    "de": ["ein", "Hund", "Katze", "rot", "Foto", "dog"],
    "fr": ["un", "chien", "dog", "photo"],
}


# --------------------------------------------------------------------------------------------------
# Runs of format 2, and the format-1 directory each would have been
# --------------------------------------------------------------------------------------------------


def plain_run(base: Path) -> Path:
    """conftest's caption pool (two files, several shards), with thresholds of two seeds: the run's t and
    seed last, its curated manifest written at them."""
    pool = write_caption_pool(base / "pool", make_texts(3000, seed=11))
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    out = base / "run"
    args = ("--pool", pool, "--metadata", base / "metadata.json", "--shard-rows", 700, "--out", out)
    assert cli("run", *args, "--t", T, "--seed", 9, "--no-manifest") == 0
    assert cli("balance", out, "--t", T, "--seed", SEED, "--write-manifest") == 0
    return out


def worldwide_texts_run(base: Path) -> Path:
    """Worldwide metadata and two texts per image: the annotated parts held caption_language, picked_text
    and picked_column, of which the index keeps the language and the column."""
    rng = random.Random(4)
    n = 1500
    codes = [rng.choice(["en", "en", "de", "fr"]) for _ in range(n)]

    def text(code: str) -> str | None:
        if rng.random() < 0.1:
            return None
        return " ".join(rng.choice(WORLD_WORDS[code]) for _ in range(rng.randint(1, 5)))

    columns = {
        "id": list(range(n)),
        "url": [f"https://img.example/{i}.jpg" for i in range(n)],
        "alt": [text(code) for code in codes],
        "title": [text(code) for code in codes],
        "lang": codes,
    }
    pool = write_pool(base / "pool", columns, files=2, row_group_size=250)
    entries = [(entry, language) for language, listed in WORLD.items() for entry in listed]
    pq.write_table(
        pa.table({"entry": [e for e, _ in entries], "language": [lang for _, lang in entries]}),
        base / "metadata.parquet",
    )
    out = base / "run"
    assert (
        cli("run", "--pool", pool, "--metadata", base / "metadata.parquet", "--language-column", "lang",
            "--text-columns", "alt,title", "--t", T, "--seed", SEED, "--shard-rows", 500, "--out", out)
        == 0
    )  # fmt: skip
    return out


RUNS: dict[str, Callable[[Path], Path]] = {"plain": plain_run, "worldwide-texts": worldwide_texts_run}


@pytest.fixture(scope="module", params=sorted(RUNS))
def original(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of format 2, made once per kind; tests only read it (they upgrade copies of it)."""
    out = RUNS[request.param](tmp_path_factory.mktemp(request.param))
    assert json.loads((out / "plan.json").read_text())["format_version"] == FORMAT_VERSION == 2
    return out


def make_format_1(new: Path, old: Path) -> Path:
    """The format-1 run directory ``old`` that holds what format 1 held of the run ``new``."""
    shutil.copytree(new, old)
    plan = json.loads((new / "plan.json").read_text())
    record = json.loads((new / "run.json").read_text())
    t, seed = record["parameters"]["t"], record["parameters"]["seed"]
    texts = plan["columns"].get("texts", [])
    kept_keys = set(curated(new, ["pair_key"]).column("pair_key").to_pylist())  # the pairs kept at (t, seed)
    assert kept_keys
    kept_entries = []
    for shard in plan["shards"]:
        name = f"part-{shard['index']:05d}.parquet"
        pool = pq.ParquetFile(shard["path"]).read_row_groups(shard["row_groups"])  # the pool read plainly
        index = pq.read_table(new / "index" / name)
        annotated = pool.append_column("entry_ids", index.column("entry_ids"))
        annotated = annotated.append_column("pair_key", index.column("pair_key"))
        if plan["metadata"].get("languages"):
            annotated = annotated.append_column("caption_language", index.column("caption_language"))
        if texts:
            picked = index.column("picked_column").to_pylist()
            values = {column: pool.column(column).to_pylist() for column in texts}
            text = [None if c is None else values[c][row] for row, c in enumerate(picked)]
            annotated = annotated.append_column("picked_text", pa.array(text, pa.string()))
            annotated = annotated.append_column("picked_column", index.column("picked_column"))
        assert annotated.num_rows == shard["rows"]
        (old / "annotated").mkdir(exist_ok=True)
        pq.write_table(annotated, old / "annotated" / name)
        kept = annotated.filter(pc.is_in(annotated.column("pair_key"), pa.array(sorted(kept_keys), pa.uint64())))
        (old / "curated").mkdir(exist_ok=True)
        pq.write_table(kept, old / "curated" / name)
        kept_entries += kept.column("entry_ids").to_pylist()
        for folder in (old / "thresholds").glob("seed-*"):  # format 1 repeated the pair keys beside k
            k = pq.read_table(folder / name).column("k")
            pq.write_table(
                pa.table({"pair_key": index.column("pair_key"), "k": k}), folder / name, use_dictionary=False
            )
    assert len(kept_entries) == len(kept_keys)
    (old / "curated" / ".selection.json").write_text(json.dumps({"t": t, "seed": seed}))
    for leftover in (".curated-staging", ".curated-retired"):  # what a killed selection left behind
        (old / leftover).mkdir()
        shutil.copy(old / "curated" / name, old / leftover / name)
    (old / ".curated-staging" / ".selection.json").write_text(json.dumps({"t": 2 * t, "seed": seed}))
    counts = pq.read_table(new / "entry_counts.parquet")
    kept_counts = np.bincount([e for ids in kept_entries for e in ids], minlength=counts.num_rows)
    pq.write_table(counts.append_column("kept", pa.array(kept_counts)), old / "balanced_counts.parquet")
    shutil.rmtree(old / "index")
    shutil.rmtree(old / "manifests")
    (old / "plan.json").write_text(json.dumps({**plan, "format_version": 1}, indent=2))
    rows = {k: v for k, v in record["rows"].items() if k != "expected_kept_margin"}  # format 1 had no margin
    (old / "run.json").write_text(json.dumps({**record, "format_version": 1, "rows": rows}, indent=2))
    return old


# --------------------------------------------------------------------------------------------------
# What "reads exactly like the original" means
# --------------------------------------------------------------------------------------------------


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("part-*.parquet"))


def exported(run: Path, out: Path, *args: object) -> pa.Table:
    assert cli("export", run, *args, "--out", out, "--quiet") == 0
    return pq.read_table(out)


def stats(run: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert cli("stats", run, "--json", "--t", T, 3 * T, "--target-size", 100, "--quiet") == 0
    report = json.loads(capsys.readouterr().out)
    assert report.pop("run_dir") == str(run)
    return report


def assert_reads_like(old: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``old``, upgraded, holds what ``new`` holds and answers every reader as ``new`` does."""
    for gone in FORMAT_1_COPIES:
        assert not (old / gone).exists(), gone
    assert json.loads((old / "plan.json").read_text()) == json.loads((new / "plan.json").read_text())
    assert json.loads((old / "run.json").read_text())["format_version"] == FORMAT_VERSION
    assert parts(old / "index") == parts(new / "index") != []
    for name in parts(new / "index"):
        upgraded, made = pq.read_table(old / "index" / name), pq.read_table(new / "index" / name)
        assert upgraded.schema == made.schema and upgraded.equals(made), name
    seeds = sorted(p.name for p in (new / "thresholds").iterdir())
    assert sorted(p.name for p in (old / "thresholds").iterdir()) == seeds != []
    for seed in seeds:
        assert parts(old / "thresholds" / seed) == parts(new / "thresholds" / seed)
        for name in parts(new / "thresholds" / seed):
            upgraded, made = (
                pq.read_table(old / "thresholds" / seed / name),
                pq.read_table(new / "thresholds" / seed / name),
            )
            assert upgraded.column_names == ["k"] and upgraded.equals(made), (seed, name)
    assert run_pairs(old).equals(run_pairs(new))
    (tmp_path / "old").mkdir(exist_ok=True)
    (tmp_path / "new").mkdir(exist_ok=True)
    for name, args in (
        ("all.parquet", ("--t", T, "--seed", SEED, "--columns", "all")),
        ("img.parquet", ("--t", 2 * T, "--seed", SEED)),
        ("every.parquet", ("--all-pairs", "--columns", "keys")),
    ):
        manifest = exported(old, tmp_path / "old" / name, *args)
        assert manifest.num_rows > 0 and manifest.equals(exported(new, tmp_path / "new" / name, *args)), name
    assert exported(old, tmp_path / "old" / "all.parquet", "--t", T, "--seed", SEED, "--columns", "all").equals(
        curated(new)
    )  # what format 1 kept in curated/ is the manifest at the run's t and seed
    assert stats(old, capsys) == stats(new, capsys)


def refused(run: Path, capsys: pytest.CaptureFixture, *args: object) -> str:
    """The one line a command prints when it refuses."""
    capsys.readouterr()
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err.strip()


def snapshot(run: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file of a run directory (but its lock) with its size, modification time and content."""
    return {
        str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_a_format_1_run_is_refused_in_one_line_naming_the_upgrade(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    old = make_format_1(original, tmp_path / "old")
    before = snapshot(old)
    for args in (("stats", old, "--t", T), ("export", old, "--t", T, "--out", tmp_path / "m.parquet")):
        err = refused(old, capsys, *args)
        assert "format-1 run directory" in err and f"`curation upgrade {old}`" in err, err
    assert cli("balance", old, "--t", 2 * T) == 2 and "`curation upgrade" in capsys.readouterr().err
    assert not (tmp_path / "m.parquet").exists() and snapshot(old) == before  # nothing read as format 2


def test_the_upgrade_makes_it_read_as_the_run_it_was(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    old = make_format_1(original, tmp_path / "old")
    annotated = pq.read_schema(next((old / "annotated").glob("part-*.parquet"))).names
    assert "text" in annotated or "alt" in annotated  # the copies of the pool the upgrade drops
    capsys.readouterr()
    assert cli("upgrade", old, "--quiet") == 0
    shards = len(json.loads((old / "plan.json").read_text())["shards"])
    assert f"upgraded: {old} is an index over its pool ({shards:,} shards indexed" in capsys.readouterr().out
    assert_reads_like(old, original, tmp_path, capsys)
    # And it goes on as a run of format 2: a new t is a selection, with its manifest.
    again = shutil.copytree(original, tmp_path / "again")  # the module's run stays as it is
    for run in (old, again):
        assert cli("balance", run, "--t", 2 * T, "--seed", SEED, "--write-manifest") == 0
    assert curated(old).num_rows > 0 and curated(old).equals(curated(again))


def test_upgrading_again_changes_nothing(original: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = make_format_1(original, tmp_path / "old")
    assert cli("upgrade", old, "--quiet") == 0
    once = snapshot(old)
    for _ in range(2):
        capsys.readouterr()
        assert cli("upgrade", old, "--quiet") == 0
        assert "(0 shards indexed" in capsys.readouterr().out
        assert snapshot(old) == once  # not a file rewritten, touched, added or removed
    assert_reads_like(old, original, tmp_path, capsys)


def test_a_killed_upgrade_goes_on_where_it_stopped(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_format_1(original, tmp_path / "old")
    first = json.loads((old / "plan.json").read_text())["shards"][0]["index"]
    drop = upgrade._drop_repeated_keys

    def killed_after_the_first_shard(run, seed: int, shard: int) -> None:
        if shard != first:
            raise KeyboardInterrupt
        drop(run, seed, shard)

    monkeypatch.setattr(upgrade, "_drop_repeated_keys", killed_after_the_first_shard)
    capsys.readouterr()
    assert cli("upgrade", old, "--quiet") != 0
    assert parts(old / "index") != [] and len(parts(old / "index")) < len(parts(old / "annotated"))
    assert json.loads((old / "plan.json").read_text())["format_version"] == 1  # still refused as format 1
    assert "`curation upgrade" in refused(old, capsys, "stats", old, "--t", T)
    monkeypatch.undo()
    assert cli("upgrade", old, "--quiet") == 0
    assert_reads_like(old, original, tmp_path, capsys)


@pytest.mark.parametrize("change", ["touched", "resized", "gone"])
def test_an_upgrade_whose_pool_changed_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: str
) -> None:
    """The index points into the pool: a pool file that is not the one the run read (another modification
    time, another size, or none) is refused by name before anything is written; restored, it upgrades."""
    new = plain_run(tmp_path / "made")
    old = make_format_1(new, tmp_path / "old")
    before = snapshot(old)
    path = Path(json.loads((old / "plan.json").read_text())["files"][-1]["path"])
    saved = tmp_path / "saved.parquet"
    shutil.copy2(path, saved)  # the file as the run read it, its modification time too
    if change == "touched":
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        said = f"pool file {path} changed since run {old} read it (its modification time changed)"
    elif change == "resized":
        with open(path, "ab") as handle:
            handle.write(b"appended")
        said = f"pool file {path} changed since run {old} read it (its size went from"
    else:
        path.unlink()
        said = f"pool file {path} of run {old} is gone"
    err = refused(old, capsys, "upgrade", old, "--quiet")
    assert said in err, err
    assert snapshot(old) == before and not (old / "index").exists()  # nothing written, nothing removed
    shutil.copy2(saved, path)
    assert cli("upgrade", old, "--quiet") == 0
    assert_reads_like(old, new, tmp_path, capsys)


def test_an_upgraded_run_names_its_pool_wherever_it_is_read_from(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Format 1 recorded a pool named by a relative path as given, which it never read again; format 2
    reads the pool whenever pairs are read back, so the upgrade (which finds the pool from where it runs)
    records it as format 2 does, by absolute path, and the run reads alike from any folder."""
    new = plain_run(tmp_path / "made")
    old = make_format_1(new, tmp_path / "old")
    plan = json.loads((old / "plan.json").read_text())
    here = tmp_path / "made"
    relative = {**plan, "pool": "pool"}
    relative["files"] = [{**f, "path": str(Path(f["path"]).relative_to(here))} for f in plan["files"]]
    relative["shards"] = [{**s, "path": str(Path(s["path"]).relative_to(here))} for s in plan["shards"]]
    (old / "plan.json").write_text(json.dumps(relative, indent=2))  # a format-1 run of `--pool pool`
    monkeypatch.chdir(here)
    assert cli("upgrade", old, "--quiet") == 0
    monkeypatch.chdir(tmp_path)  # elsewhere
    upgraded = json.loads((old / "plan.json").read_text())
    assert [f["path"] for f in upgraded["files"]] == [f["path"] for f in plan["files"]]
    assert [s["path"] for s in upgraded["shards"]] == [s["path"] for s in plan["shards"]]
    assert run_pairs(old).equals(run_pairs(new))


def test_upgrade_of_what_is_not_a_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    err = refused(tmp_path / "empty", capsys, "upgrade", tmp_path / "empty", "--quiet")
    assert "is not a run directory (no plan.json)" in err
    with pytest.raises(CurationError, match="no plan.json"):
        upgrade.upgrade_run(str(tmp_path / "empty"), progress=False)
