"""Finding, validating and streaming a Parquet pool: one file, a directory of files, or a glob.

A pool is cut into shards of whole row groups, each described by a path and row-group indices,
so that a stage can run anywhere and read only its own part.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.rundir import CAPTION_LANGUAGE, ENTRY_IDS, PAIR_KEY, PICKED_COLUMN, PICKED_TEXT
from studio_common import storage
from studio_common.errors import CurationError

TEXT_COLUMN_DEFAULT = "text"
TEXT_COLUMN_CANDIDATES = ("text", "caption", "TEXT", "txt", "Text", "CAPTION", "Caption", "alt_text")
ID_COLUMN_DEFAULT = "id"
URL_COLUMN_CANDIDATES = ("url", "URL", "image_url", "Url")
OUTPUT_COLUMNS = (ENTRY_IDS, PAIR_KEY, CAPTION_LANGUAGE, PICKED_TEXT, PICKED_COLUMN)  # added by runs: not in a pool


@dataclass(frozen=True)
class Shard:
    """The unit of work: some row groups of one Parquet file."""

    index: int
    path: str
    row_groups: tuple[int, ...]
    rows: int

    def as_dict(self) -> dict:
        return {**asdict(self), "row_groups": list(self.row_groups)}


@dataclass(frozen=True)
class PoolInfo:
    """What a run needs to know of a pool before reading any row."""

    files: tuple[str, ...]
    rows: int
    text_column: str
    id_column: str | None
    url_column: str | None
    text_column_detected: bool


def resolve_files(pool: str) -> list[str]:
    """The Parquet files of a pool given as a file, a directory (searched recursively) or a glob, on
    local disk or as a URI (s3://, gs://, hf://, http(s)://)."""
    if storage.is_uri(pool):
        return storage.list_parquet(pool)
    path = Path(pool)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise CurationError(f"no .parquet files in pool directory {pool}")
        return files
    if glob.has_magic(pool):
        files = sorted(p for p in glob.glob(pool, recursive=True) if os.path.isfile(p))
        if not files:
            raise CurationError(f"no files match the pool pattern {pool}")
        return files
    raise CurationError(f"pool not found: {pool}")


def open_parquet(path: str) -> pq.ParquetFile:
    """Open a Parquet file, turning Arrow's errors into one line that names the file."""
    try:
        return pq.ParquetFile(storage.open_input(path) if storage.is_uri(path) else path)
    except (pa.ArrowException, OSError) as error:
        raise CurationError(f"cannot read Parquet file {path}: {storage.first_line(error)}") from None


def _is_text_type(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_null(kind)
    )


def _choose_text_column(schema: pa.Schema, requested: str | None, path: str) -> tuple[str, bool]:
    names = schema.names
    if requested is not None:
        if requested not in names:
            raise CurationError(f"text column '{requested}' not found in {path}; columns are: {', '.join(names)}")
        return requested, False
    for candidate in TEXT_COLUMN_CANDIDATES:
        if candidate in names:
            return candidate, candidate != TEXT_COLUMN_DEFAULT
    raise CurationError(
        f"no text column in {path} (looked for {', '.join(TEXT_COLUMN_CANDIDATES)}); "
        f"columns are: {', '.join(names)}; name one with --text-column"
    )


def inspect_pool(
    files: Sequence[str],
    text_column: str | None = None,
    id_column: str | None = None,
    content_key: bool = False,
) -> PoolInfo:
    """Validate every file's footer and schema and settle the text, id and url columns.

    ``id_column=None`` means: use a column named ``id`` when every file has one; ``content_key``
    forces keys from url and text even then.
    """
    schemas: list[pa.Schema] = []
    rows = 0
    for path in files:
        parquet = open_parquet(path)
        schemas.append(parquet.schema_arrow)
        rows += parquet.metadata.num_rows
    first = schemas[0]
    chosen_text, detected = _choose_text_column(first, text_column, files[0])
    for path, schema in zip(files, schemas):
        _choose_text_column(schema, chosen_text, path)
        kind = schema.field(chosen_text).type
        if not _is_text_type(kind):
            raise CurationError(
                f"text column '{chosen_text}' in {path} holds {kind}, not strings; "
                "name the caption column with --text-column"
            )
        clash = [name for name in OUTPUT_COLUMNS if name in schema.names]
        if clash:
            raise CurationError(
                f"{path} already has a column named '{clash[0]}', which the run writes; "
                "rename it (is this a manifest or an export rather than a raw pool?)"
            )
    chosen_id = None if content_key else _choose_id_column(files, schemas, id_column)
    url = next((c for c in URL_COLUMN_CANDIDATES if all(c in s.names for s in schemas)), None)
    return PoolInfo(tuple(files), rows, chosen_text, chosen_id, url, detected)


def _choose_id_column(files: Sequence[str], schemas: Sequence[pa.Schema], requested: str | None) -> str | None:
    name = requested or ID_COLUMN_DEFAULT
    present = [name in schema.names for schema in schemas]
    if not any(present) and requested is None:
        return None
    for path, schema, has in zip(files, schemas, present):
        if not has:
            raise CurationError(f"id column '{name}' not found in {path}; columns are: {', '.join(schema.names)}")
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or _is_text_type(kind)) or pa.types.is_null(kind):
            raise CurationError(
                f"id column '{name}' in {path} holds {kind}; ids must be integers or strings "
                "(or pass --content-key to key pairs by url and text)"
            )
    return name


def plan_shards(files: Sequence[str], shard_rows: int) -> list[Shard]:
    """Cut files into shards of consecutive row groups holding about ``shard_rows`` rows.

    Every file gets at least one shard, even an empty one, so that its schema reaches the outputs.
    """
    shards: list[Shard] = []
    for path in files:
        metadata = open_parquet(path).metadata
        group: list[int] = []
        group_rows = 0
        for index in range(metadata.num_row_groups):
            rows = metadata.row_group(index).num_rows
            if group and group_rows + rows > shard_rows:
                shards.append(Shard(len(shards), path, tuple(group), group_rows))
                group, group_rows = [], 0
            group.append(index)
            group_rows += rows
        if group or not any(shard.path == path for shard in shards):
            shards.append(Shard(len(shards), path, tuple(group), group_rows))
    return shards


def iter_shard_batches(shard: Shard, batch_rows: int, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of one shard, with the file named in any read error."""
    parquet = open_parquet(shard.path)
    if not shard.row_groups:
        return
    try:
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=list(shard.row_groups), columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise CurationError(f"cannot read Parquet file {shard.path}: {storage.first_line(error)}") from None


def comparable_path(path: str) -> str:
    """A pool file's path as two runs compare it: a local path resolved (against the working directory,
    symlinks followed), so `data/pool` and `/home/me/data/pool` name the same files; a URI as it is."""
    return path if storage.is_uri(path) else os.path.realpath(path)


def file_signature(path: str) -> dict:
    """Size and modification time: enough to notice that a pool file changed under a resumed run."""
    if storage.is_uri(path):
        return storage.signature(path)
    stat = os.stat(path)
    return {"path": path, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
