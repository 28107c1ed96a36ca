"""Counting string keys in bounded memory: aggregate in Arrow, spill hash partitions to Parquet.

Wikipedia has hundreds of millions of distinct bigrams and a month of pageviews tens of millions of
titles: more than a dictionary should hold. A ``KeyCounter`` keeps at most about ``max_rows`` (key, count)
rows in memory; beyond that it writes them out split into ``partitions`` files by a hash of the key.
Every occurrence of a key lands in the same partition, so the final totals are obtained partition by
partition (``reduce_partition``), each needing only its share of the memory; a partition that is still
too large is split again by a salted hash (``reduce_bounded``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COUNT_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("count", pa.int64())])


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_BYTE_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def partition_ids(keys: pa.Array | pa.ChunkedArray, partitions: int, salt: int = 0) -> np.ndarray:
    """A partition number per key, from its length and its first and last 8 bytes: deterministic across
    processes and runs (unlike Python's ``hash``), vectorised, and enough to spread keys evenly. A
    different ``salt`` gives an independent split (used to split a partition again)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if partitions <= 1 or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    offset_type = np.int64 if pa.types.is_large_string(keys.type) else np.int32
    buffers = keys.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[keys.offset : keys.offset + len(keys) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    data = np.concatenate([np.zeros(8, np.uint8), data[: offsets[-1]], np.zeros(8, np.uint8)])
    # every byte position seen as the start of a little-endian uint64 (an unaligned, overlapping view)
    words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    starts, ends = offsets[:-1] + 8, offsets[1:] + 8
    lengths = ends - starts
    short = np.minimum(lengths, 8)
    head = words[starts] & _BYTE_MASKS[short]
    tail = words[ends - 8] >> ((8 - short) * 8).astype(np.uint64)  # the last bytes, shifted down
    with np.errstate(over="ignore"):
        mixed = _mix(_mix(head ^ lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ tail)
        if salt:
            mixed = _mix(mixed + np.uint64(salt) * np.uint64(0xD1B54A32D192ED03))
    return ((mixed >> np.uint64(33)) % np.uint64(partitions)).astype(np.int64)


def aggregate(tables: Sequence[pa.Table], schema: pa.Schema = COUNT_SCHEMA) -> pa.Table:
    """One row per key: every other column of ``schema`` summed over ``tables``."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables)
    values = [name for name in schema.names if name != "key"]
    summed = table.group_by("key", use_threads=False).aggregate([(name, "sum") for name in values])
    return pa.table(
        {"key": summed.column("key"), **{name: summed.column(f"{name}_sum") for name in values}}, schema=schema
    )


def value_counts(keys: pa.Array) -> pa.Table:
    """(key, count) of the distinct values in ``keys``."""
    counted = keys.value_counts()
    return pa.table(
        {"key": counted.field("values").cast(pa.string()), "count": counted.field("counts").cast(pa.int64())},
        schema=COUNT_SCHEMA,
    )


class KeyCounter:
    """Add (key, count) tables; holds about ``max_rows`` rows, spills hash partitions beyond that. A
    ``schema`` with more columns than (key, count) sums each of them."""

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        partitions: int = 16,
        max_rows: int = 2_000_000,
        schema: pa.Schema = COUNT_SCHEMA,
    ):
        self.schema = schema
        self.directory = Path(directory)
        self.prefix = prefix
        self.partitions = partitions
        self.max_rows = max_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.spills = 0
        self.files: list[list[Path]] = [[] for _ in range(partitions)]

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.max_rows:
            self.compact()
            if self.pending_rows >= self.max_rows // 2:
                self.spill()

    def compact(self) -> None:
        """Sum what is pending into one table (repeated keys collapse, so memory drops)."""
        if len(self.pending) > 1:
            merged = aggregate(self.pending, self.schema)
            self.pending = [merged]
            self.pending_rows = merged.num_rows

    def spill(self) -> None:
        """Write everything pending to one file per partition and forget it."""
        self.compact()
        if not self.pending:
            return
        table = self.pending[0]
        self.pending, self.pending_rows = [], 0
        ids = partition_ids(table.column("key"), self.partitions)
        order = np.argsort(ids, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(ids, minlength=self.partitions))])
        self.directory.mkdir(parents=True, exist_ok=True)
        for part in range(self.partitions):
            start, stop = int(bounds[part]), int(bounds[part + 1])
            if stop == start:
                continue
            path = self.directory / f"{self.prefix}-p{part:04d}-{self.spills:05d}.parquet"
            pq.write_table(table.slice(start, stop - start), path, compression="none")
            self.files[part].append(path)
        self.spills += 1


def reduce_partition(files: Sequence[Path], schema: pa.Schema = COUNT_SCHEMA) -> pa.Table:
    """Total counts of one partition's keys, from every spill file that holds some of them (a single
    file is already one row per key: every spill is aggregated first)."""
    tables = [pq.read_table(path, schema=schema) for path in files]
    return tables[0] if len(tables) == 1 else aggregate(tables, schema)


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def reduce_bounded(
    files: Sequence[Path], max_rows: int, scratch: Path, salt: int = 1, schema: pa.Schema = COUNT_SCHEMA
) -> Iterator[pa.Table]:
    """The totals of one partition as a sequence of tables with disjoint keys, holding about
    ``max_rows`` input rows at a time: a partition larger than that is split again by a salted hash
    into files under ``scratch``, and each piece reduced in turn (recursively, with a new salt)."""
    total = sum(_rows(path) for path in files)
    if len(files) <= 1 or total <= max_rows or salt > 6:
        yield reduce_partition(files, schema)
        return
    pieces = max(2, -(-total // max_rows))
    scratch.mkdir(parents=True, exist_ok=True)
    split: list[list[Path]] = [[] for _ in range(pieces)]
    for number, path in enumerate(files):
        table = pq.read_table(path, schema=schema)
        ids = partition_ids(table.column("key"), pieces, salt)
        for piece in range(pieces):
            part = table.filter(pa.array(ids == piece))
            if part.num_rows:
                target = scratch / f"salt{salt}-piece{piece:04d}-{number:05d}.parquet"
                pq.write_table(part, target, compression="none")
                split[piece].append(target)
    for piece_files in split:
        if piece_files:
            yield from reduce_bounded(piece_files, max_rows, scratch / f"salt{salt}-piece", salt + 1, schema)
        for path in piece_files:
            path.unlink()
