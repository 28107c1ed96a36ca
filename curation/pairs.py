"""A run's pairs read back: its index beside the pool (docs/design.md, "The run directory").

A run stores per pair only what the pool lacks, in ``index/part-NNNNN.parquet``: the pair key, the
entry ids, and in a worldwide run the caption's language, with --text-columns the column of the text
the pair is kept by. Row r of a shard's index part is row r of the shard's row groups in its pool
file, so a pair's place in the pool is its shard and its position: no copy of any pool column is kept.

Every reader of pairs (browse, export, the Python API, the dashboard) goes through ``PairReader``,
which checks, before it reads a row of a pool file, that the file is the one plan.json recorded (its
size and modification time): a changed or missing pool is refused in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.plan import Plan
from curation.pool import file_signature, open_parquet
from curation.rundir import CAPTION_LANGUAGE, ENTRY_IDS, PAIR_KEY, PICKED_COLUMN, PICKED_TEXT, RunDir, read_parquet
from studio_common import storage
from studio_common.errors import CurationError

INDEX_FIELDS = {
    PAIR_KEY: pa.uint64(),
    ENTRY_IDS: pa.list_(pa.int32()),
    CAPTION_LANGUAGE: pa.string(),
    PICKED_COLUMN: pa.string(),
}


def index_schema(worldwide: bool, several_texts: bool) -> pa.Schema:
    """The columns of a run's index parts, in their order."""
    names = (
        [PAIR_KEY, ENTRY_IDS] + ([CAPTION_LANGUAGE] if worldwide else []) + ([PICKED_COLUMN] if several_texts else [])
    )
    return pa.schema([pa.field(name, INDEX_FIELDS[name]) for name in names])


def plan_index_schema(plan: Plan) -> pa.Schema:
    return index_schema(plan.worldwide, bool(plan.columns.texts))


def take_rows(parquet: pq.ParquetFile, groups: Sequence[int], rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
    """Rows (ascending positions counted over ``groups``, row groups read as one sequence) of some
    columns: only the row groups holding them are read."""
    sizes = [parquet.metadata.row_group(g).num_rows for g in groups]
    starts = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
    group_of = np.searchsorted(starts, rows, side="right") - 1
    tables = [
        parquet.read_row_group(groups[g], columns=list(columns)).take(pa.array(rows[group_of == g] - starts[g]))
        for g in np.unique(group_of)
    ]
    return pa.concat_tables(tables) if tables else parquet.schema_arrow.empty_table().select(list(columns))


class PairReader:
    """Pairs of one run: index columns from its index parts, pool columns from the pool files the plan
    names (each checked once per reader), and ``picked_text`` made from the two."""

    def __init__(self, run: RunDir, plan: Plan | None = None) -> None:
        self.run = run
        self.plan = plan if plan is not None else run.plan()
        self._shards = {shard.index: shard for shard in self.plan.shards}
        self._recorded = {signature["path"]: signature for signature in self.plan.files}
        self._checked: set[str] = set()

    @cached_property
    def index_schema(self) -> pa.Schema:
        return plan_index_schema(self.plan)

    @cached_property
    def pool_schema(self) -> pa.Schema:
        if not self.plan.files:
            return pa.schema([])
        return self._pool_file(self.plan.files[0]["path"]).schema_arrow

    @cached_property
    def schema(self) -> pa.Schema:
        """Every column a pair can be read with: the pool's, then the index's (and ``picked_text``)."""
        fields = list(self.pool_schema) + list(self.index_schema)
        if self.plan.columns.texts:
            fields.append(pa.field(PICKED_TEXT, pa.string()))
        return pa.schema(fields)

    @property
    def names(self) -> list[str]:
        return self.schema.names

    def check_pool_file(self, path: str) -> None:
        """Refuse a pool file that is not the one the run read (plan.json's size and modification time)."""
        if path in self._checked:
            return
        recorded = self._recorded.get(path)
        if recorded is None:
            raise CurationError(f"{path} is not a pool file of run {self.run.spec} (plan.json does not list it)")
        try:
            now = file_signature(path)
        except (OSError, CurationError):
            raise CurationError(
                f"pool file {path} of run {self.run.spec} is gone; restore it to read the run's pairs"
            ) from None
        if (now["bytes"], now["mtime_ns"]) != (recorded["bytes"], recorded["mtime_ns"]):
            what = (
                f"its size went from {recorded['bytes']:,} to {now['bytes']:,} bytes"
                if now["bytes"] != recorded["bytes"]
                else "its modification time changed"
            )
            raise CurationError(
                f"pool file {path} changed since run {self.run.spec} read it ({what}); "
                "restore it, or run again into a new directory"
            )
        self._checked.add(path)

    def _pool_file(self, path: str) -> pq.ParquetFile:
        self.check_pool_file(path)
        return open_parquet(path)

    def _split(self, columns: Sequence[str]) -> tuple[list[str], list[str]]:
        """(index columns, pool columns) to read for ``columns``; unknown names refused."""
        unknown = [c for c in columns if c not in self.schema.names]
        if unknown:
            raise CurationError(
                f"run {self.run.spec} has no column {unknown[0]!r}; its columns are: {', '.join(self.schema.names)}"
            )
        index = [c for c in columns if c in self.index_schema.names]
        pool = [c for c in columns if c in self.pool_schema.names]
        if PICKED_TEXT in columns:
            index = list(dict.fromkeys([*index, PICKED_COLUMN]))
            pool = list(dict.fromkeys([*pool, *self.plan.columns.texts]))
        return index, pool

    def _assemble(self, columns: Sequence[str], index: pa.Table, pool: pa.Table) -> pa.Table:
        arrays = {}
        for name in columns:
            if name == PICKED_TEXT:
                arrays[name] = self._picked_text(index.column(PICKED_COLUMN), pool)
            else:
                arrays[name] = (index if name in index.column_names else pool).column(name)
        fields = [self.schema.field(name) for name in columns]
        return pa.Table.from_arrays(list(arrays.values()), schema=pa.schema(fields))

    def _picked_text(self, picked: pa.ChunkedArray, pool: pa.Table) -> pa.ChunkedArray:
        """Each pair's kept text: the value of the pool column its index names (null when none matched)."""
        text = (
            pa.chunked_array([pa.nulls(len(picked), pa.string())]) if len(picked) else pa.chunked_array([], pa.string())
        )
        for name in self.plan.columns.texts:
            chosen = pc.fill_null(pc.equal(picked, name), False)
            text = pc.if_else(chosen, pc.cast(pool.column(name), pa.string()), text)
        return text

    def index(self, shard: int, columns: Sequence[str]) -> pa.Table:
        """Index columns of every pair of a shard (no pool file is read)."""
        return read_parquet(self.run.index_part(shard), columns=list(columns))

    def rows(self, shard: int, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Some pairs of a shard (ascending positions) with the asked columns."""
        rows = np.asarray(rows, dtype=np.int64)
        index_columns, pool_columns = self._split(columns)
        index = pa.table({})
        if index_columns:  # pool columns alone (a manifest of urls and captions) need no index part
            part = pq.ParquetFile(self.run.index_part(shard))
            index = take_rows(part, range(part.metadata.num_row_groups), rows, index_columns)
        pool = self._pool_rows(shard, rows, pool_columns)
        return self._assemble(columns, index, pool)

    def _pool_rows(self, shard: int, rows: np.ndarray | None, columns: list[str]) -> pa.Table:
        where = self._shards[shard]
        if not columns:
            return pa.table({})
        parquet = self._pool_file(where.path)
        if rows is None:
            if not where.row_groups:
                return parquet.schema_arrow.empty_table().select(columns)
            try:
                return parquet.read_row_groups(list(where.row_groups), columns=columns)
            except (pa.ArrowException, OSError) as error:
                raise CurationError(f"cannot read Parquet file {where.path}: {storage.first_line(error)}") from None
        return take_rows(parquet, where.row_groups, rows, columns)

    def table(self, shard: int, columns: Sequence[str], keep: np.ndarray | None = None) -> pa.Table:
        """Every pair of a shard with the asked columns, or (``keep``: one bool per pair) the kept ones;
        the pool's row groups holding none of them are not read."""
        if keep is not None:
            return self.rows(shard, np.flatnonzero(keep), columns)
        index_columns, pool_columns = self._split(columns)
        index = self.index(shard, index_columns) if index_columns else pa.table({})
        return self._assemble(columns, index, self._pool_rows(shard, None, pool_columns))
