"""The run directory contract end to end: what `run`, `balance` and `stats` leave and print."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, curated, make_texts, read_dir, run_pairs, write_pool

from curation import Run
from curation.matching import spacing
from curation.rundir import RunDir


def naive_ids(text: str | None) -> list[int]:
    """The definition itself: entry E matches iff " E " occurs in the spaced text."""
    if not text:
        return []
    spaced = spacing(text)
    return [i for i, entry in enumerate(ENTRIES) if f" {entry} " in spaced]


@pytest.fixture
def finished(tmp_path: Path, pool: Path, metadata: Path) -> Path:
    out = tmp_path / "run"
    assert (
        cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--seed", 3, "--out", out, "--shard-rows", 600)
        == 0
    )
    return out


def thresholds_of(out: Path, seed: int) -> np.ndarray:
    """Every pair's k for the seed, in the run's order (the threshold parts, shard by shard)."""
    return read_dir(out / "thresholds" / f"seed-{seed}", ["k"]).column("k").to_numpy()


def test_pairs_carry_every_column_and_exact_matches(finished: Path, texts: list) -> None:
    pairs = run_pairs(finished).sort_by("id")
    assert pairs.column_names[:3] == ["id", "url", "text"]
    assert {"entry_ids", "pair_key"} <= set(pairs.column_names)
    kind = pairs.schema.field("entry_ids").type
    assert pa.types.is_list(kind) and kind.value_type == pa.int32()
    assert pairs.schema.field("pair_key").type == pa.uint64()
    assert pairs.num_rows == len(texts)
    assert pairs.column("text").to_pylist() == texts
    assert pairs.column("entry_ids").to_pylist() == [naive_ids(t) for t in texts]


def test_the_run_directory_holds_no_pool_column(finished: Path, texts: list) -> None:
    """Format 2: the index parts hold what the pool lacks and nothing else; their rows are the pool's
    rows in the pool's order (row r of a shard's part is row r of its row groups)."""
    run = RunDir(finished)
    plan = run.plan()
    parts = sorted(run.index.glob("*.parquet"))
    assert [p.name for p in parts] == [run.index_part(s).name for s in plan.shard_indices]
    for shard in plan.shards:
        part = pq.read_table(run.index_part(shard.index))
        assert part.column_names == ["pair_key", "entry_ids"], part.column_names
        assert part.num_rows == shard.rows
    assert not run.format_1_parts.exists()
    for leftover in ("curated", ".curated-staging", ".curated-retired", "balanced_counts.parquet"):
        assert not (finished / leftover).exists(), leftover
    # No other Parquet file of the run holds a pool column either (the manifests are exports, not the run).
    for path in finished.rglob("*.parquet"):
        if run.manifests not in path.parents:
            assert not {"id", "url", "text"} & set(pq.read_schema(path).names), path
    # In the pool's order: the index's entry lists are the naive matches of the pool's texts, row by row.
    index = read_dir(run.index, ["entry_ids"]).column("entry_ids").to_pylist()
    assert index == [naive_ids(t) for t in texts]


def grow(path: Path) -> None:
    """The pool file rewritten with one more row."""
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)


def touch(path: Path) -> None:
    """The same bytes, a newer modification time."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize("change", [grow, touch, Path.unlink], ids=["one-more-row", "touched", "removed"])
def test_pairs_of_a_changed_pool_are_refused_in_one_line(
    finished: Path, pool: Path, tmp_path: Path, change, capsys: pytest.CaptureFixture
) -> None:
    """The run reads its pairs' columns from the pool: a pool file that is not the one plan.json
    recorded (size, modification time) is refused, never read as if it were."""
    changed = pool / "part-001.parquet"
    assert str(changed) in [f["path"] for f in json.loads((finished / "plan.json").read_text())["files"]]
    out = tmp_path / "manifest.parquet"
    capsys.readouterr()
    assert cli("export", finished, "--t", 40, "--out", out, "--quiet") == 0  # the pool as the run read it
    out.unlink()
    change(changed)
    capsys.readouterr()
    code = cli("export", finished, "--t", 40, "--out", out, "--quiet")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: pool file "), err
    assert str(changed) in err, err
    assert ("is gone" if change is Path.unlink else "changed since run") in err, err
    assert not out.exists() and not list(tmp_path.glob(".manifest.parquet*")), "nothing half written"


def test_entry_counts_cover_every_entry(finished: Path, texts: list) -> None:
    counts = pq.read_table(finished / "entry_counts.parquet")
    assert counts.column("entry").to_pylist() == ENTRIES
    assert counts.column("entry_id").to_pylist() == list(range(len(ENTRIES)))
    expected = np.zeros(len(ENTRIES), dtype=np.int64)
    for text in texts:
        for entry_id in naive_ids(text):
            expected[entry_id] += 1
    assert counts.column("count").to_pylist() == expected.tolist()
    assert expected[ENTRIES.index("U.S.")] == 0 and expected[ENTRIES.index("never matched")] == 0


def test_run_json_accounts_for_every_row(finished: Path, texts: list) -> None:
    record = json.loads((finished / "run.json").read_text())
    rows = record["rows"]
    assert rows["in"] == len(texts)
    assert rows["null_or_empty_text"] == sum(1 for t in texts if not t)
    assert rows["matched"] == sum(1 for t in texts if naive_ids(t))
    assert rows["matched"] + rows["unmatched"] + rows["null_or_empty_text"] == rows["in"]
    assert rows["kept"] == curated(finished).num_rows == int((thresholds_of(finished, 3) < 40).sum())
    assert rows["expected_kept"] == pytest.approx(Run(finished).expected_size_at(40), abs=1e-3)
    assert rows["expected_kept_margin"] >= 0
    assert record["parameters"] == {"t": 40.0, "seed": 3}
    assert record["metadata"]["entries"] == len(ENTRIES)
    assert record["metadata"]["fingerprint"].startswith("sha256:")
    assert record["status"] == "complete"


def test_curated_manifest_is_the_pairs_below_t_with_every_pool_column(finished: Path) -> None:
    run = Run(finished)
    pairs = run_pairs(finished)
    thresholds = thresholds_of(finished, 3)
    assert len(thresholds) == pairs.num_rows
    manifest = curated(finished)
    expected = pairs.filter(pa.array(thresholds < 40))
    expected_ids = sorted(expected.column("id").to_pylist())
    assert sorted(manifest.column("id").to_pylist()) == expected_ids
    assert manifest.column_names == pairs.column_names == ["id", "url", "text", "pair_key", "entry_ids"]
    assert manifest.equals(expected)  # every column of every kept pair, in the run's order
    assert run.size_at(40) == len(expected_ids)
    # Unmatched pairs are never kept; pairs holding an entry with c_e <= t (the tail, c_e < t, or exactly t) always are.
    counts = run.counts
    for ids, kept in zip(pairs.column("entry_ids").to_pylist(), thresholds < 40):
        if not ids:
            assert not kept
        elif min(counts[i] for i in ids) <= 40:
            assert kept


def files_and_mtimes(out: Path) -> dict[Path, int]:
    """Every file of a run but run.json, its lock and its manifests: what a new t must not rewrite."""
    return {
        path: path.stat().st_mtime_ns
        for path in out.rglob("*")
        if path.is_file() and path.name not in ("run.json", ".lock") and "manifests" not in path.parts
    }


def test_balance_at_new_t_rewrites_nothing_and_is_nested(finished: Path) -> None:
    before = files_and_mtimes(finished)
    assert any(p.parent.name == "index" for p in before) and any(p.parent.name == "seed-3" for p in before)
    small = set(curated(finished, ["id"]).column("id").to_pylist())
    assert cli("balance", finished, "--t", 150) == 0
    assert files_and_mtimes(finished) == before  # index, thresholds, preview, counts: untouched
    assert [p.name for p in (finished / "manifests").glob("*.parquet")] == ["curated-t40.0-seed3.parquet"]
    record = json.loads((finished / "run.json").read_text())
    assert record["parameters"] == {"t": 150.0, "seed": 3}
    thresholds = thresholds_of(finished, 3)
    assert record["rows"]["kept"] == int((thresholds < 150).sum())  # the naive count, from the preview
    # The manifest at the new t: a superset of the old one, as large as balance said.
    assert cli("balance", finished, "--t", 150, "--write-manifest") == 0
    assert files_and_mtimes(finished) == before
    large = curated(finished)
    large_ids = set(large.column("id").to_pylist())
    assert small < large_ids
    assert len(large_ids) == large.num_rows == record["rows"]["kept"]
    # Matches per entry among the kept pairs: the exact pass equals the count over the manifest's entry lists.
    naive = np.zeros(len(ENTRIES), dtype=np.int64)
    for ids in large.column("entry_ids").to_pylist():
        np.add.at(naive, ids, 1)
    assert Run(finished).balanced_counts(150).tolist() == naive.tolist()


def test_new_seed_gives_other_subset_of_the_same_expected_size(finished: Path) -> None:
    first = set(curated(finished, ["id"]).column("id").to_pylist())
    assert cli("balance", finished, "--t", 40, "--seed", 4, "--write-manifest") == 0
    second = set(curated(finished, ["id"]).column("id").to_pylist())
    assert (finished / "manifests" / "curated-t40.0-seed4.parquet").exists()
    assert (finished / "thresholds" / "seed-4").is_dir()
    assert first != second
    expected = Run(finished).expected_size_at(40)
    for size in (len(first), len(second)):
        assert abs(size - expected) < 5 * np.sqrt(expected)


def test_stats_t_for_target_size_gives_that_size(finished: Path, capsys: pytest.CaptureFixture) -> None:
    run = Run(finished)
    matched = run.size_at(float("inf"))
    for target in (0, 1, 100, matched // 2, matched):
        t, size = run.t_for_size(target)
        assert size == target and run.size_at(t) == target and t > 0
    capsys.readouterr()
    assert cli("stats", finished, "--target-size", 250, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    t = report["t_for_size"][0]["t"]
    assert cli("balance", finished, "--t", t, "--write-manifest") == 0
    assert json.loads((finished / "run.json").read_text())["rows"]["kept"] == 250
    assert curated(finished).num_rows == 250


def test_stats_reports_sizes_and_tail_share(finished: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert cli("stats", finished, "--t", 40, 200, "--tail-share", 0.5, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    run = Run(finished)
    first, second = report["at_t"]
    assert first["kept"] == run.size_at(40) and second["kept"] == run.size_at(200)
    assert first["kept"] <= second["kept"]
    counts = run.counts
    assert first["tail_share"] == pytest.approx(counts[counts < 40].sum() / counts.sum())
    assert first["head_entries"] == int((counts >= 40).sum())
    assert first["tail_entries"] == int(((counts > 0) & (counts < 40)).sum())
    share = report["t_for_tail_share"][0]
    assert share["realised_tail_share"] >= 0.5
    assert run.tail_share(share["t"] - 1) < 0.5
    assert cli("stats", finished) == 0
    out = capsys.readouterr().out
    assert "most matched entries" in out
    assert "head: entries counted t times or more" in out and "tail: entries counted fewer than t times" in out


def test_stats_at_a_t_equal_to_a_count_puts_that_entry_in_the_head(
    finished: Path, capsys: pytest.CaptureFixture
) -> None:
    counts = Run(finished).counts
    matched = np.sort(counts[counts > 0])
    t = int(matched[len(matched) // 2])  # a count some entry has: the boundary
    capsys.readouterr()
    assert cli("stats", finished, "--t", t, "--json") == 0
    row = json.loads(capsys.readouterr().out)["at_t"][0]
    assert row["head_entries"] == int((counts >= t).sum())
    assert row["tail_entries"] == int(((counts > 0) & (counts < t)).sum())
    assert row["tail_matches"] == int(counts[counts < t].sum())
    assert row["tail_share"] == pytest.approx(row["tail_matches"] / row["matches"])


def test_keep_probabilities_cover_every_pair(finished: Path) -> None:
    run = Run(finished)
    tables = list(run.keep_probabilities(40))
    probabilities = np.concatenate([t.column("P").to_numpy() for t in tables])
    assert len(probabilities) == json.loads((finished / "run.json").read_text())["rows"]["in"]
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert probabilities.sum() == pytest.approx(run.expected_size_at(40))


def curated_keys(out: Path, columns: list[str]) -> set[tuple]:
    table = curated(out, columns=columns)
    return set(zip(*(table.column(c).to_pylist() for c in columns)))


@pytest.mark.slow  # several runs, some with 2 worker processes
@pytest.mark.parametrize("matchers", [("aho-corasick", "tokens"), ("tokens", "aho-corasick")])
def test_same_subset_whatever_the_workers_the_file_split_and_the_matcher(
    tmp_path: Path, metadata: Path, matchers: tuple[str, str]
) -> None:
    texts = make_texts(2400, seed=11)
    ids = list(range(len(texts)))
    columns = {"id": ids, "url": [f"u{i}" for i in ids], "text": texts}
    one = write_pool(tmp_path / "one", columns, files=1, row_group_size=2400)
    three = write_pool(tmp_path / "three", columns, files=3, row_group_size=100)
    args = ["--metadata", metadata, "--t", 30, "--seed", 9]
    assert cli("run", "--pool", one, "--out", tmp_path / "a", "--matcher", matchers[0], *args) == 0
    assert (
        cli(
            "run",
            "--pool",
            three,
            "--out",
            tmp_path / "b",
            "--shard-rows",
            300,
            "--workers",
            2,
            "--matcher",
            matchers[1],
            *args,
        )
        == 0
    )
    assert curated_keys(tmp_path / "a", ["id"]) == curated_keys(tmp_path / "b", ["id"])
    counts = [pq.read_table(tmp_path / d / "entry_counts.parquet") for d in ("a", "b")]
    assert counts[0].equals(counts[1])


def test_content_keys_without_id_column_are_split_invariant(tmp_path: Path, metadata: Path) -> None:
    texts = make_texts(1500, seed=5)
    columns = {"URL": [f"https://x.example.com/{i}" for i in range(len(texts))], "TEXT": texts}
    one = write_pool(tmp_path / "one", columns, files=1)
    two = write_pool(tmp_path / "two", columns, files=2, row_group_size=200)
    for pool, out in ((one, "a"), (two, "b")):
        assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 30, "--out", tmp_path / out) == 0
    assert curated_keys(tmp_path / "a", ["URL", "TEXT"]) == curated_keys(tmp_path / "b", ["URL", "TEXT"])
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["columns"]["text"] == "TEXT" and record["columns"]["id"] is None


def test_text_column_detection_is_reported(tmp_path: Path, metadata: Path, capsys: pytest.CaptureFixture) -> None:
    pool = write_pool(tmp_path / "pool", {"url": ["a", "b"], "caption": ["a dog", "a cat"]})
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 1, "--out", tmp_path / "out") == 0
    assert "using text column 'caption'" in capsys.readouterr().err


def test_glob_pool_and_text_metadata(tmp_path: Path) -> None:
    write_pool(tmp_path / "pool", {"text": ["red dog", "blue cat", "red cat"]}, files=3)
    lines = tmp_path / "entries.txt"
    lines.write_text("red\ncat\ndog\n")
    out = tmp_path / "out"
    assert (
        cli("run", "--pool", str(tmp_path / "pool" / "part-*.parquet"), "--metadata", lines, "--t", 5, "--out", out)
        == 0
    )
    counts = pq.read_table(out / "entry_counts.parquet").column("count").to_pylist()
    assert counts == [2, 2, 1]
    assert curated(out).num_rows == 3


def test_empty_pool_is_a_clean_result(tmp_path: Path, metadata: Path) -> None:
    pool = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), pool)
    out = tmp_path / "out"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 10, "--out", out) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["rows"] == {
        "in": 0,
        "matched": 0,
        "unmatched": 0,
        "null_or_empty_text": 0,
        "matches": 0,
        "kept": 0,
        "expected_kept": 0.0,
        "expected_kept_margin": 0.0,
    }
    assert curated(out).num_rows == 0
    assert "entry_ids" in curated(out).column_names


def test_stats_writes_probabilities_and_entry_counts(finished: Path, tmp_path: Path) -> None:
    probabilities, entries = tmp_path / "p.parquet", tmp_path / "e.parquet"
    assert (
        cli("stats", finished, "--t", 60, "--write-probabilities", probabilities, "--write-entry-counts", entries) == 0
    )
    run = Run(finished)
    table = pq.read_table(probabilities)
    assert table.column_names == ["id", "pair_key", "P"]
    assert table.num_rows == json.loads((finished / "run.json").read_text())["rows"]["in"]
    assert sum(table.column("P").to_pylist()) == pytest.approx(run.expected_size_at(60))
    counts = pq.read_table(entries)
    assert counts.column("kept").to_pylist() == run.balanced_counts(60).tolist()
    expected_p = [min(1.0, 60 / c) if c else 1.0 for c in run.counts]
    assert counts.column("p_e").to_pylist() == pytest.approx(expected_p)


def test_parts_use_dictionary_pages_only_for_repeating_columns(tmp_path: Path) -> None:
    from curation.stages import repeating_columns, write_part

    n = 4_000
    batch = pa.RecordBatch.from_pydict(
        {
            "id": list(range(n)),
            "url": [f"https://x.example.com/{i}.jpg" for i in range(n)],
            "text": [f"caption {i}" for i in range(n)],
            "license": ["cc-by", "cc0"] * (n // 2),
            "entry_ids": [[i % 7, 9] for i in range(n)],
        }
    )
    assert repeating_columns(batch) == ["license"]
    path = tmp_path / "part.parquet"
    write_part(path, batch.schema, iter([batch.slice(0, 2_000), batch.slice(2_000)]))
    assert pq.read_table(path).equals(pa.Table.from_batches([batch]))
    group = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {
        group.column(i).path_in_schema.split(".")[0]: group.column(i).has_dictionary_page
        for i in range(group.num_columns)
    }
    assert dictionary == {"id": False, "url": False, "text": False, "license": True, "entry_ids": False}
    write_part(tmp_path / "empty.parquet", batch.schema, iter([]))
    assert pq.read_table(tmp_path / "empty.parquet").schema.equals(batch.schema)
