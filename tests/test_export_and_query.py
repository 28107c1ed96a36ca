"""DuckDB queries bound to one run directory, pairs found shard by shard, and manifests written only
where they may be."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, make_texts, naive_match, read_dir, write_caption_pool

from curation import Run
from curation.browse import find_pairs
from curation.export import FORMATS, export_manifest, format_of, manifest_path
from curation.query import RunQuery, connect
from studio_common.errors import CurationError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run (conftest's pool and metadata) for the whole module: its tests only read it; a test that
    changes a run changes a copy of its own."""
    base = tmp_path_factory.mktemp("export-and-query")
    pool = write_caption_pool(base / "pool", make_texts(3000))
    metadata = base / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    out = base / "run"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--seed", 3, "--out", out) == 0
    return out


@pytest.fixture
def query(run_dir: Path, tmp_path: Path) -> RunQuery:
    return RunQuery(connect(run_dir).cursor(), run_dir)


def test_queries_agree_with_the_run(query: RunQuery, run_dir: Path) -> None:
    assert query.seeds() == [3]
    assert query.entry_counts().column("count").to_pylist() == Run(run_dir).counts.tolist()
    assert query.entry_id("dog") == Run(run_dir).entries.index("dog")
    assert query.entry_id("not an entry") is None


def texts_and_keys(run_dir: Path) -> tuple[list, list, list]:
    """Each pair's id (read from the pool itself), entry ids (the index) and k (the thresholds): the
    three line up row for row, the run directory's contract, read here without the run's reader."""
    ids = read_dir(run_dir.parent / "pool", ["id"]).column("id").to_pylist()
    lists = read_dir(run_dir / "index", ["entry_ids"]).column("entry_ids").to_pylist()
    k = read_dir(run_dir / "thresholds" / "seed-3", ["k"]).column("k").to_pylist()
    assert len(ids) == len(lists) == len(k) == 3000
    return ids, lists, k


@pytest.mark.parametrize("kept", [True, False])
def test_found_pairs_are_the_ones_asked_for(run_dir: Path, kept: bool) -> None:
    ids, lists, k = texts_and_keys(run_dir)
    # No time budget wherever a test asks for every pair: a busy machine must not cut the search short
    # (test_a_search_stops_at_its_budget_with_what_it_found is the budget's).
    every = find_pairs(run_dir, 3, 40, kept, ["id", "text"], limit=10_000, budget_s=math.inf)
    wanted = {i for i, ks in zip(ids, k) if (ks < 40 if kept else 40 <= ks < float("inf"))}
    assert every.complete and set(every.table.column("id").to_pylist()) == wanted
    assert len(every.table) == len(wanted) == (Run(run_dir).size_at(40) if kept else len(wanted))
    by_id = dict(zip(ids, zip(lists, k)))
    for row in every.table.to_pylist():  # each row with its own entry list and threshold
        assert (row["entry_ids"], row["k"]) == by_id[row["id"]]
    page = find_pairs(run_dir, 3, 40, kept, ["id"], limit=7, budget_s=math.inf)
    assert len(page.table) == 7 and set(page.table.column("id").to_pylist()) <= wanted


def test_found_pairs_of_one_entry_start_from_the_sample(run_dir: Path) -> None:
    dog = Run(run_dir).entries.index("dog")
    ids, lists, k = texts_and_keys(run_dir)
    found = find_pairs(run_dir, 3, 40, True, ["id", "text"], entry_id=dog, limit=10_000, budget_s=math.inf)
    assert set(found.table.column("id").to_pylist()) == {
        i for i, ids_, ks in zip(ids, lists, k) if dog in ids_ and ks < 40
    }
    assert len(set(found.table.column("id").to_pylist())) == len(found.table)  # sampled rows are not repeated
    assert all(" dog " in f" {t} ".replace(",", " ").replace(".", " ") for t in found.table.column("text").to_pylist())


def test_pairs_of_each_entry_found_or_known_absent(run_dir: Path) -> None:
    """Dropped pairs of an entry counted at most t times (the tail, or exactly t) are known absent without a
    search; every other entry's pairs are searched for, and both agree with a pass over every pair."""
    ids, lists, k = texts_and_keys(run_dir)
    counts, t = Run(run_dir).counts, 40.0
    assert ((counts > 0) & (counts <= t)).any() and (counts > t).any()  # both kinds of entry are asked
    for entry in range(len(counts)):
        for kept in (True, False):
            found = find_pairs(run_dir, 3, t, kept, ["id"], entry_id=entry, limit=10_000, budget_s=math.inf)
            wanted = {
                i
                for i, ids_, ks in zip(ids, lists, k)
                if entry in ids_ and (ks < t if kept else t <= ks < float("inf"))
            }
            assert found.complete and set(found.table.column("id").to_pylist()) == wanted
            assert found.table.column_names[-1] == "k"
            if not kept and counts[entry] <= t:
                assert not wanted


def test_a_search_stops_at_its_budget_with_what_it_found(run_dir: Path) -> None:
    nothing = find_pairs(run_dir, 3, 1e-9, True, ["id"], limit=5, budget_s=0.0)
    assert len(nothing.table) == 0 and nothing.shards_searched >= 1


@pytest.mark.parametrize("text", ["'; DROP TABLE x; --", '" OR 1=1 --', "%", "_", "\\", "dog'"])
def test_search_with_quotes_and_sql_is_only_text(query: RunQuery, text: str) -> None:
    page, total = query.search_entries(text)
    assert total == len(page) == 0


def test_search_sorts_and_pages(query: RunQuery) -> None:
    page, total = query.search_entries("o", sort="count", descending=True, limit=3)
    assert total == sum(1 for e in query.entry_counts().column("entry").to_pylist() if "o" in e.lower())
    assert list(page["count"]) == sorted(page["count"], reverse=True)
    with pytest.raises(CurationError):
        query.search_entries("o", sort="count; DROP")


def test_connection_cannot_reach_other_files(run_dir: Path, tmp_path: Path, pool: Path) -> None:
    cursor = connect(run_dir).cursor()
    with pytest.raises(duckdb.PermissionException, match="Cannot access file .*part-000.parquet"):
        cursor.execute("SELECT count(*) FROM read_parquet(?)", [str(pool / "part-000.parquet")]).fetchall()
    with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
        cursor.execute("SET enable_external_access = true")


@pytest.mark.parametrize("file_format", ["parquet", "jsonl", "csv"])
@pytest.mark.parametrize("column_set", ["img2dataset", "all", "keys"])
def test_export_writes_what_it_claims(
    query: RunQuery, run_dir: Path, tmp_path: Path, file_format: str, column_set: str
) -> None:
    result = export_manifest(query, tmp_path / "exports", "manifest", 40, 3, file_format, column_set)
    assert result.path == tmp_path / "exports" / f"manifest.{file_format}"
    if file_format == "parquet":
        table = pq.read_table(result.path)
        rows, columns = table.num_rows, table.column_names
    elif file_format == "jsonl":
        lines = [json.loads(line) for line in result.path.read_text().splitlines()]
        rows, columns = len(lines), list(lines[0])
    else:
        with open(result.path, newline="") as handle:
            records = list(csv.DictReader(handle))
        rows, columns = len(records), list(records[0])
    assert rows == result.rows == Run(run_dir).size_at(40)
    expected = {"img2dataset": ["url", "caption"], "keys": ["id", "pair_key"]}.get(column_set)
    assert columns == (expected or query.columns())
    provenance = json.loads(result.provenance.read_text())
    assert provenance["t"] == 40 and provenance["seed"] == 3 and provenance["rows"] == rows
    assert provenance["metadata"]["fingerprint"].startswith("sha256:")
    assert not list((tmp_path / "exports").glob(".*tmp*"))


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "", "x" * 200, "/abs", "a\\b", "ok..no"])
def test_export_refuses_names_that_leave_the_directory(query: RunQuery, tmp_path: Path, name: str) -> None:
    with pytest.raises(CurationError, match="refused"):
        export_manifest(query, tmp_path / "exports", name, 40, 3)
    assert not (tmp_path / "escape.parquet").exists()


def test_the_name_limit_is_exact_and_named_in_the_error() -> None:
    from curation.export import NAME_MAX, check_name

    assert check_name("n" * NAME_MAX) == "n" * NAME_MAX
    with pytest.raises(CurationError, match=f"{NAME_MAX + 1} characters refused: shorten it to at most {NAME_MAX}"):
        check_name("n" * (NAME_MAX + 1))


def test_export_needs_thresholds_for_its_seed(query: RunQuery, tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="seed 9"):
        export_manifest(query, tmp_path / "exports", "m", 40, 9)


def test_export_from_the_command_line_takes_its_format_from_the_name(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "anywhere" / "m.jsonl"
    assert cli("export", run_dir, "--t", 40, "--columns", "keys", "--out", out, "--quiet") == 0
    assert f"exported {Run(run_dir).size_at(40):,} pairs" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == Run(run_dir).size_at(40) and list(lines[0]) == ["id", "pair_key"]
    provenance = json.loads((tmp_path / "anywhere" / "m.jsonl.provenance.json").read_text())
    assert provenance["format"] == "jsonl" and provenance["seed"] == 3  # the run's seed by default
    assert cli("export", run_dir, "--t", 40, "--seed", 9, "--out", tmp_path / "x.parquet") == 2
    assert "seed 9" in capsys.readouterr().err


def test_each_manifest_has_its_own_provenance_at_its_own_t_and_seed(run_dir: Path, tmp_path: Path) -> None:
    """m.parquet, m.jsonl and m.csv side by side, each at another t: three provenance files, each with
    the kept and expected kept of its own t and seed, not those of the run's last balance (t = 40)."""
    run = Run(run_dir)
    exports = {"m.parquet": (10, 3), "m.jsonl": (80, 3), "m.csv": (40, 3)}
    for name, (t, seed) in exports.items():
        assert cli("export", run_dir, "--t", t, "--seed", seed, "--out", tmp_path / name, "--quiet") == 0
    assert sorted(p.name for p in tmp_path.glob("*.provenance.json")) == sorted(f"{n}.provenance.json" for n in exports)
    for name, (t, _) in exports.items():
        provenance = json.loads((tmp_path / f"{name}.provenance.json").read_text())
        assert provenance["file"] == name and provenance["t"] == t
        assert provenance["rows"] == provenance["pool_rows"]["kept"] == run.size_at(t)
        assert provenance["pool_rows"]["expected_kept"] == pytest.approx(run.expected_size_at(t), abs=1e-3)
        assert provenance["pool_rows"]["in"] == run.record["rows"]["in"]
        assert provenance["pool_rows"]["expected_kept_margin"] == 0.0  # the sample holds every matched pair
    # At the run's own t and seed, the run's rows: both are the preview's figures.
    assert json.loads((tmp_path / "m.csv.provenance.json").read_text())["pool_rows"] == run.record["rows"]


@pytest.mark.parametrize(
    ("out", "given", "message"),
    [
        (
            "m.txt",
            None,
            "m.txt: the extension .txt names no manifest format; end the name with .parquet, .jsonl, .csv or .npy",
        ),
        ("m.txt", "csv", "m.txt: the extension .txt names no manifest format"),
        ("m.parquet", "csv", "--format csv contradicts m.parquet, whose extension says parquet; drop --format, or end"),
    ],
)
def test_export_refuses_a_name_whose_extension_is_unknown_or_contradicts_format(
    run_dir: Path, tmp_path: Path, capsys, out: str, given: str | None, message: str
) -> None:
    options = ["--format", given] if given else []
    assert cli("export", run_dir, "--t", 40, *options, "--out", tmp_path / out, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {message}")
    assert not list(tmp_path.iterdir())  # nothing written


def test_export_takes_a_format_that_agrees_with_the_name_or_names_a_bare_file(run_dir: Path, tmp_path: Path) -> None:
    assert cli("export", run_dir, "--t", 40, "--format", "csv", "--out", tmp_path / "m.CSV", "--quiet") == 0
    assert json.loads((tmp_path / "m.CSV.provenance.json").read_text())["format"] == "csv"
    assert cli("export", run_dir, "--t", 40, "--format", "jsonl", "--out", tmp_path / "bare", "--quiet") == 0
    assert json.loads((tmp_path / "bare").read_text().splitlines()[0])  # JSON lines, as asked
    assert cli("export", run_dir, "--t", 40, "--out", tmp_path / "plain", "--quiet") == 0
    assert pq.read_table(tmp_path / "plain").num_rows == Run(run_dir).size_at(40)  # no extension: Parquet


def test_a_csv_manifest_writes_entry_lists_as_text(query: RunQuery, tmp_path: Path) -> None:
    result = export_manifest(query, tmp_path / "exports", "all", 40, 3, "csv", "all")
    with open(result.path, newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["entry_ids"].startswith("[") and first["entry_ids"].endswith("]")
    assert json.loads(first["entry_ids"]) == sorted(set(json.loads(first["entry_ids"])))


def test_each_format_is_one_writer_with_its_own_suffix(tmp_path: Path) -> None:
    suffixes = [writer.suffix for writer in FORMATS.values()]
    assert len(set(suffixes)) == len(FORMATS)
    for name, writer in FORMATS.items():
        assert format_of(f"m{writer.suffix}") == name
        assert manifest_path(tmp_path, "m", name) == tmp_path / f"m{writer.suffix}"
    assert format_of("csv") == "parquet" and format_of("m", "jsonl") == "jsonl" and format_of("M.JSONL") == "jsonl"
    with pytest.raises(CurationError, match="extension .txt names no manifest format"):
        format_of("m.txt")
    with pytest.raises(CurationError, match="--format csv contradicts m.parquet"):
        format_of("m.parquet", "csv")
    with pytest.raises(CurationError, match="unknown format 'xml'"):
        manifest_path(tmp_path, "m", "xml")


def test_a_corrupt_plan_is_one_line_not_a_traceback(run_dir: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    query = RunQuery(connect(run_dir).cursor(), run_dir)
    (run_dir / "plan.json").write_text('{"shards": [')
    with pytest.raises(CurationError, match="plan.json is not valid JSON"):
        query.plan()


# --------------------------------------------------------------------------------------------------
# Every pair with its entry ids (export --all-pairs, Run.pairs)
# --------------------------------------------------------------------------------------------------


def test_all_pairs_are_every_pool_row_with_the_entries_its_caption_holds(run_dir: Path, tmp_path: Path) -> None:
    """Matched or not, in the pool's order, each with the ids the naive rule gives its caption; the
    provenance says which pairs these are (no t, no seed)."""
    out = tmp_path / "every.parquet"
    assert cli("export", run_dir, "--all-pairs", "--columns", "keys", "--out", out, "--quiet") == 0
    table = pq.read_table(out)
    pool = read_dir(run_dir.parent / "pool", ["id", "text"])
    assert table.column_names == ["id", "pair_key", "entry_ids"] and table.num_rows == pool.num_rows == 3000
    assert table.column("id").to_pylist() == pool.column("id").to_pylist()
    naive = [naive_match(ENTRIES, text) for text in pool.column("text").to_pylist()]
    assert table.column("entry_ids").to_pylist() == naive
    assert 0 < sum(not ids for ids in naive) < len(naive)  # the unmatched are there too
    provenance = json.loads((tmp_path / "every.parquet.provenance.json").read_text())
    assert provenance["pairs"] == "every pair, with its entry ids" and provenance["rows"] == 3000
    assert provenance["t"] is None and provenance["seed"] is None and "kept" not in provenance["pool_rows"]

    # CSV has no lists: the ids as text; the Python API reads the same pairs
    csv_out = tmp_path / "every.csv"
    assert cli("export", run_dir, "--all-pairs", "--out", csv_out, "--quiet") == 0
    with open(csv_out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [json.loads(row["entry_ids"]) for row in rows] == naive and list(rows[0]) == ["url", "caption", "entry_ids"]
    tables = list(Run(run_dir).pairs(["id"]))
    assert len(tables) == len(Run(run_dir).shard_indices)
    assert tables[0].column_names == ["id", "entry_ids", "pair_key"]
    assert [ids for table in tables for ids in table.column("entry_ids").to_pylist()] == naive
    assert [i for table in tables for i in table.column("id").to_pylist()] == pool.column("id").to_pylist()


def test_export_asks_for_t_or_all_pairs_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.parquet"
    for args, said in (
        ([], "error: one of the arguments --t --all-pairs is required"),
        (["--t", 5, "--all-pairs"], "error: argument --all-pairs: not allowed with argument --t"),
    ):
        capsys.readouterr()
        assert cli("export", run_dir, *args, "--out", out) == 2
        err = capsys.readouterr().err
        assert err.startswith(said) and len(err.strip().splitlines()) == 1
    assert not out.exists()
