"""DuckDB queries over a run directory's small tables (entries, counts, sources) for the dashboard.

What grows with the pool is read elsewhere, shard by shard or memory-mapped: pairs in
curation/browse.py, answers at any t in curation/preview_files.py.

Every value is bound as a parameter; identifiers come from fixed lists, never from input. A
connection is locked to the run directory before any query, so no input can make it read or write
anywhere else. Take a fresh cursor for each script run: a cursor is cheap, and a connection shared
by two concurrent reruns fails with "connection is busy".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from curation.pairs import PairReader
from curation.plan import Plan
from curation.rundir import ENTRY_COUNT_COLUMNS, ENTRY_LANGUAGE, RunDir, read_json
from studio_common.errors import CurationError

SORTABLE = {name: name for name in ENTRY_COUNT_COLUMNS}
_ENTRY_COUNTS = ", ".join(ENTRY_COUNT_COLUMNS)
MEMORY_LIMIT = "512MB"


def connect(run_dir: Path, extra_files: tuple[Path, ...] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read only this run directory and the named files (the metadata,
    for its sources), and write nowhere."""
    connection = duckdb.connect()
    directories = [str(run_dir.resolve()) + "/"]
    connection.execute("SET memory_limit = ?", [MEMORY_LIMIT])  # queries stream; the dashboard stays small
    connection.execute("SET allowed_directories = ?", [directories])
    connection.execute("SET allowed_paths = ?", [[str(p.resolve()) for p in extra_files]])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


@dataclass(frozen=True)
class RunQuery:
    """Queries of one run directory through one cursor."""

    cursor: duckdb.DuckDBPyConnection
    root: Path

    @property
    def dir(self) -> RunDir:
        return RunDir(self.root)

    def plan(self) -> Plan:
        return self.dir.plan()

    def record(self) -> dict:
        return read_json(self.dir.run_json) if self.dir.run_json.exists() else {}

    def seeds(self) -> list[int]:
        """Seeds whose keep thresholds are complete in this run."""
        return self.dir.complete_seeds()

    def columns(self) -> list[str]:
        """The columns a pair can be read with: the pool's, then the run's (entry_ids, pair_key, ...)."""
        return PairReader(self.dir).names

    @cached_property
    def languages(self) -> list[str] | None:
        """A worldwide run's entry languages (sorted), else None (plan.json read once per cursor)."""
        languages = self.plan().languages
        return sorted(languages) if languages else None

    def _entry_columns(self) -> str:
        return _ENTRY_COUNTS + (f", {ENTRY_LANGUAGE}" if self.languages else "")

    def entry_counts(self) -> pa.Table:
        """entry_id, entry, count (and language in a worldwide run) of every entry."""
        return self.cursor.sql(
            f"SELECT {self._entry_columns()} FROM read_parquet(?) ORDER BY entry_id",
            params=[str(self.dir.entry_counts)],
        ).to_arrow_table()

    def search_entries(
        self,
        text: str,
        sort: str = "count",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
        language: str | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Entries whose text contains ``text`` (case-insensitive), of one language if named, one page of
        them, and how many match."""
        column = SORTABLE.get(sort)
        if column is None:
            raise CurationError(f"cannot sort entries by {sort!r}; choose one of {', '.join(SORTABLE)}")
        direction = "DESC" if descending else "ASC"
        where = "strpos(lower(entry), lower($text)) > 0"
        source = "read_parquet($path)"
        params = {"text": text, "path": str(self.dir.entry_counts)}
        if language is not None:
            if not self.languages:
                raise CurationError("only a worldwide run's entries have languages")
            where += f" AND {ENTRY_LANGUAGE} = $language"
            params["language"] = language
        total = self.cursor.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchall()[0][0]
        page = self.cursor.execute(
            f"SELECT {self._entry_columns()} FROM {source} WHERE {where} "
            f"ORDER BY {column} {direction}, entry_id LIMIT $limit OFFSET $offset",
            {**params, "limit": int(limit), "offset": int(offset)},
        ).df()
        return page, int(total)

    def entry_id(self, entry: str, language: str | None = None) -> int | None:
        """The entry's id (the first, as an entry may repeat across a worldwide run's languages; of
        ``language`` when named)."""
        where, params = "entry = ?", [str(self.dir.entry_counts), entry]
        if language is not None and self.languages:
            where, params = f"entry = ? AND {ENTRY_LANGUAGE} = ?", params + [language]
        rows = self.cursor.execute(
            f"SELECT entry_id FROM read_parquet(?) WHERE {where} ORDER BY entry_id LIMIT 1", params
        ).fetchall()
        return int(rows[0][0]) if rows else None

    def entry_sources(self, metadata: Path) -> pd.DataFrame | None:
        """entry, sources from a Parquet metadata file, when the run's metadata has one."""
        if not metadata.exists() or metadata.suffix != ".parquet":
            return None
        names = [
            r[0] for r in self.cursor.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(metadata)]).fetchall()
        ]
        if "sources" not in names or "entry" not in names:
            return None
        return self.cursor.execute("SELECT entry, sources FROM read_parquet(?)", [str(metadata)]).df()
