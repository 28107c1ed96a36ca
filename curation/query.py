"""DuckDB queries over a run directory: the dashboard's only way to the data.

Every value is bound as a parameter; identifiers come from fixed lists, never from input. A connection
is locked to the run directory (and the export directory, for writing manifests) before any query, so
no input can make it read or write anywhere else. Take a fresh cursor for each script run: a cursor
is cheap, and a connection shared by two concurrent reruns fails with "connection is busy".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from curation.errors import CurationError
from curation.rundir import RunDir

SORTABLE = {"count": "count", "entry": "entry", "entry_id": "entry_id"}


def connect(run_dir: Path, export_dir: Path | None = None, extra_files: tuple[Path, ...] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can reach only this run directory, the export directory and the
    named files (the metadata, for its sources)."""
    connection = duckdb.connect()
    directories = [str(run_dir.resolve()) + "/"]
    if export_dir is not None:
        export_dir.mkdir(parents=True, exist_ok=True)
        directories.append(str(export_dir.resolve()) + "/")
    connection.execute("SET allowed_directories = ?", [directories])
    connection.execute("SET allowed_paths = ?", [[str(p.resolve()) for p in extra_files]])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def complete_seeds(root: Path) -> list[int]:
    """Seeds with a keep threshold file for every shard (a killed `balance` may leave a seed half done)."""
    run = RunDir(root)
    shards = json.loads(run.plan_json.read_text())["shards"] if run.plan_json.exists() else []
    found = []
    for directory in sorted((root / "thresholds").glob("seed-*")):
        seed = int(directory.name.removeprefix("seed-"))
        if all(run.threshold_part(seed, shard["index"]).exists() for shard in shards):
            found.append(seed)
    return found


@dataclass(frozen=True)
class RunQuery:
    """Queries of one run directory through one cursor."""

    cursor: duckdb.DuckDBPyConnection
    root: Path

    @property
    def dir(self) -> RunDir:
        return RunDir(self.root)

    def plan(self) -> dict:
        return json.loads(self.dir.plan_json.read_text())

    def record(self) -> dict:
        return json.loads(self.dir.run_json.read_text()) if self.dir.run_json.exists() else {}

    def _parts(self, directory: Path) -> list[str]:
        """Files of one kind in shard order, so that annotated rows and thresholds line up."""
        return [str(directory / f"part-{shard['index']:05d}.parquet") for shard in self.plan()["shards"]]

    def annotated_files(self) -> list[str]:
        return self._parts(self.dir.annotated)

    def threshold_files(self, seed: int) -> list[str]:
        return self._parts(self.dir.thresholds(seed))

    def seeds(self) -> list[int]:
        """Seeds whose keep thresholds are complete in this run."""
        return complete_seeds(self.root)

    def columns(self) -> list[str]:
        """The annotated columns (pool columns, then entry_ids and pair_key)."""
        rows = self.cursor.execute("DESCRIBE SELECT * FROM read_parquet(?)", [self.annotated_files()[:1]]).fetchall()
        return [row[0] for row in rows]

    def entry_counts(self) -> pa.Table:
        return self.cursor.sql("SELECT entry_id, entry, count FROM read_parquet(?) ORDER BY entry_id",
                               params=[str(self.dir.entry_counts)]).to_arrow_table()

    def thresholds(self, seed: int) -> np.ndarray:
        """k of every pair, in annotated order."""
        result = self.cursor.execute("SELECT k FROM read_parquet(?)", [self.threshold_files(seed)]).fetchnumpy()
        return np.asarray(result["k"], dtype=np.float64)

    def entry_lists(self) -> pa.ChunkedArray:
        """entry_ids of every pair, in annotated order."""
        table = self.cursor.sql("SELECT entry_ids FROM read_parquet(?)", params=[self.annotated_files()]).to_arrow_table()
        return table.column("entry_ids")

    def matches_per_text(self) -> pd.DataFrame:
        """How many pairs match 0, 1, 2, ... entries."""
        return self.cursor.execute(
            "SELECT len(entry_ids) AS matches, count(*) AS pairs FROM read_parquet(?) GROUP BY ALL ORDER BY matches",
            [self.annotated_files()]).df()

    def search_entries(self, text: str, sort: str = "count", descending: bool = True, limit: int = 50,
                       offset: int = 0) -> tuple[pd.DataFrame, int]:
        """Entries whose text contains ``text`` (case-insensitive), one page of them, and how many match."""
        column = SORTABLE.get(sort)
        if column is None:
            raise CurationError(f"cannot sort entries by {sort!r}; choose one of {', '.join(SORTABLE)}")
        direction = "DESC" if descending else "ASC"
        where = "strpos(lower(entry), lower($text)) > 0"
        source = "read_parquet($path)"
        params = {"text": text, "path": str(self.dir.entry_counts)}
        total = self.cursor.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchall()[0][0]
        page = self.cursor.execute(
            f"SELECT entry_id, entry, count FROM {source} WHERE {where} "
            f"ORDER BY {column} {direction}, entry_id LIMIT $limit OFFSET $offset",
            {**params, "limit": int(limit), "offset": int(offset)}).df()
        return page, int(total)

    def entry_id(self, entry: str) -> int | None:
        rows = self.cursor.execute("SELECT entry_id FROM read_parquet(?) WHERE entry = ?",
                                   [str(self.dir.entry_counts), entry]).fetchall()
        return int(rows[0][0]) if rows else None

    def texts_with_entry(self, entry_id: int, limit: int = 10) -> list[str]:
        text = self.plan()["columns"]["text"]
        rows = self.cursor.execute(
            f'SELECT "{text}" FROM read_parquet(?) WHERE list_contains(entry_ids, ?) LIMIT ?',
            [self.annotated_files(), int(entry_id), int(limit)]).fetchall()
        return [row[0] for row in rows]

    @staticmethod
    def _joined() -> str:
        """Annotated rows beside their keep threshold: same part file, same row number."""
        return ("read_parquet($annotated, filename = true, file_row_number = true) AS a "
                "JOIN read_parquet($thresholds, filename = true, file_row_number = true) AS th "
                "ON parse_filename(a.filename, true) = parse_filename(th.filename, true) "
                "AND a.file_row_number = th.file_row_number")

    def samples(self, t: float, seed: int, kept: bool, entry_id: int | None = None, limit: int = 50) -> pd.DataFrame:
        """Pairs kept (or matched but dropped) at t, optionally only those matching one entry."""
        condition = "th.k < $t" if kept else "th.k >= $t AND len(a.entry_ids) > 0"
        if entry_id is not None:
            condition += " AND list_contains(a.entry_ids, $entry)"
        columns = [c for c in self.columns() if c not in ("entry_ids", "pair_key")]
        selected = ", ".join(f'a."{c}"' for c in columns)
        params = {"annotated": self.annotated_files(), "thresholds": self.threshold_files(seed), "t": float(t),
                  "limit": int(limit)}
        if entry_id is not None:
            params["entry"] = int(entry_id)
        return self.cursor.execute(
            f"SELECT {selected}, a.entry_ids, th.k FROM {self._joined()} WHERE {condition} "
            "ORDER BY a.pair_key LIMIT $limit", params).df()

    def copy_selection(self, t: float, seed: int, select: str, destination: Path, file_format: str) -> int:
        """Write the pairs kept at t (columns given by ``select``, built from fixed names) to a file."""
        formats = {"parquet": "(FORMAT parquet)", "jsonl": "(FORMAT json)", "csv": "(FORMAT csv, HEADER true)"}
        literal = "'" + str(destination).replace("'", "''") + "'"  # COPY takes no parameter for its target
        params = {"annotated": self.annotated_files(), "thresholds": self.threshold_files(seed), "t": float(t)}
        self.cursor.execute(
            f"COPY (SELECT {select} FROM {self._joined()} WHERE th.k < $t "
            f"ORDER BY parse_filename(a.filename, true), a.file_row_number) TO {literal} {formats[file_format]}",
            params)
        return int(self.cursor.execute("SELECT count(*) FROM read_parquet($thresholds) WHERE k < $t",
                                       {"thresholds": self.threshold_files(seed), "t": float(t)}).fetchall()[0][0])

    def entry_sources(self, metadata: Path) -> pd.DataFrame | None:
        """entry, sources from a Parquet metadata file, when the run's metadata has one."""
        if not metadata.exists() or metadata.suffix != ".parquet":
            return None
        names = [r[0] for r in self.cursor.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(metadata)]).fetchall()]
        if "sources" not in names or "entry" not in names:
            return None
        return self.cursor.execute("SELECT entry, sources FROM read_parquet(?)", [str(metadata)]).df()
