"""Writing outputs atomically: a temporary name in the same directory, then one rename.

A reader (or a crash) therefore never sees half a file: either the old one or the complete new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ENTRY_SCHEMA = pa.schema(
    [pa.field("entry", pa.string(), nullable=False), pa.field("sources", pa.list_(pa.string()), nullable=False)]
)


def temporary_path(path: Path) -> Path:
    """A sibling name that no other process uses (same directory, so the rename stays atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` only if the block ends normally."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_json(path: str | Path, value: object) -> None:
    """Pretty JSON for records that people read (reports, fetch records)."""
    write_bytes(path, (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def write_table(path: str | Path, table: pa.Table) -> None:
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression="zstd")


def write_entries_json(path: str | Path, entries: Sequence[str]) -> None:
    """MetaCLIP's format: one JSON list of strings (one entry per line, so that versions diff well)."""
    write_bytes(path, (json.dumps(list(entries), ensure_ascii=False, indent=0) + "\n").encode("utf-8"))


def entries_table(
    entries: Sequence[str],
    sources: Sequence[Sequence[str]] | None,
    info: dict | None = None,
    languages: Sequence[str] | None = None,
    info_key: str = "metadata.build",
) -> pa.Table:
    """The Parquet form: ``entry``, its ``language`` for a worldwide list (MetaCLIP 2), and the ``sources``
    it came from (left out when None); ``info`` goes in the file metadata under ``info_key``."""
    if languages is None and sources is not None:
        table = pa.table(
            [pa.array(list(entries), pa.string()), pa.array([list(s) for s in sources], pa.list_(pa.string()))],
            schema=ENTRY_SCHEMA,
        )
    else:
        columns = {"entry": pa.array(list(entries), pa.string())}
        if languages is not None:
            columns["language"] = pa.array(list(languages), pa.string())
        if sources is not None:
            columns["sources"] = pa.array([list(s) for s in sources], pa.list_(pa.string()))
        table = pa.table(columns)
        table = table.cast(pa.schema([field.with_nullable(False) for field in table.schema]))
    if info is not None:
        table = table.replace_schema_metadata({info_key: json.dumps(info, ensure_ascii=False)})
    return table


def write_entries_parquet(
    path: str | Path,
    entries: Sequence[str],
    sources: Sequence[Sequence[str]] | None,
    info: dict | None = None,
    languages: Sequence[str] | None = None,
    info_key: str = "metadata.build",
) -> None:
    write_table(path, entries_table(entries, sources, info, languages, info_key))


def is_json_path(path: str | Path) -> bool:
    """Whether an output path asks for MetaCLIP's JSON list (which holds entries only)."""
    return str(path).lower().endswith(".json")


def write_entries(
    path: str | Path,
    entries: Sequence[str],
    sources: Sequence[Sequence[str]],
    info: dict | None = None,
    languages: Sequence[str] | None = None,
) -> str:
    """Write in the format the suffix asks for (``.json``: MetaCLIP's list; else Parquet); returns it.
    A list with languages goes to Parquet only: a JSON list would silently lose them."""
    if is_json_path(path):
        if languages is not None:
            raise ValueError(f"{path}: a JSON list cannot hold languages; write .parquet")
        write_entries_json(path, entries)
        return "json"
    write_entries_parquet(path, entries, sources, info, languages)
    return "parquet"
