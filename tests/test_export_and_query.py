"""DuckDB queries bound to one run directory, and manifests written only where they may be."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import cli
from curation import Run
from curation.errors import CurationError
from curation.export import export_manifest
from curation.query import RunQuery, connect
from curation.stages import read_thresholds


@pytest.fixture
def run_dir(tmp_path: Path, pool: Path, metadata: Path) -> Path:
    out = tmp_path / "run"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--seed", 3, "--out", out) == 0
    return out


@pytest.fixture
def query(run_dir: Path, tmp_path: Path) -> RunQuery:
    return RunQuery(connect(run_dir, tmp_path / "exports").cursor(), run_dir)


def test_queries_agree_with_the_run(query: RunQuery, run_dir: Path) -> None:
    run = Run(run_dir)
    assert query.seeds() == [3]
    in_order = [k for i in run.shard_indices for k in read_thresholds(str(run_dir), 3, i).tolist()]
    assert query.thresholds(3).tolist() == in_order  # aligned with the annotated rows
    assert len(query.entry_lists()) == len(in_order)
    histogram = query.matches_per_text()
    assert int(histogram["pairs"].sum()) == json.loads((run_dir / "run.json").read_text())["rows"]["in"]
    kept = query.samples(40, 3, kept=True, limit=10_000)
    dropped = query.samples(40, 3, kept=False, limit=10_000)
    assert len(kept) == run.size_at(40)
    assert (kept["k"] < 40).all() and (dropped["k"] >= 40).all()
    assert all(len(ids) > 0 for ids in dropped["entry_ids"])
    dog = query.entry_id("dog")
    assert all(dog in ids for ids in query.samples(40, 3, kept=True, entry_id=dog, limit=100)["entry_ids"])
    assert all(" dog " in f" {t} ".replace(",", " ").replace(".", " ") for t in query.texts_with_entry(dog, 20))


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
    cursor = connect(run_dir, tmp_path / "exports").cursor()
    with pytest.raises(duckdb.Error):
        cursor.execute("SELECT count(*) FROM read_parquet(?)", [str(pool / "part-000.parquet")]).fetchall()
    with pytest.raises(duckdb.Error):
        cursor.execute("SET enable_external_access = true")


@pytest.mark.parametrize("file_format", ["parquet", "jsonl", "csv"])
@pytest.mark.parametrize("column_set", ["img2dataset", "all", "keys"])
def test_export_writes_what_it_claims(query: RunQuery, run_dir: Path, tmp_path: Path, file_format: str,
                                      column_set: str) -> None:
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


def test_export_needs_thresholds_for_its_seed(query: RunQuery, tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="seed 9"):
        export_manifest(query, tmp_path / "exports", "m", 40, 9)
