"""Loading an entry list: MetaCLIP's JSON list of strings, a text file with one entry per line, or a
Parquet table with an ``entry`` column (and, when built by this package, the ``sources`` of each entry).

One loader for the engine and the metadata tools, so that ids (positions) mean the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from studio_common import storage
from studio_common.errors import CurationError


class MetadataError(ValueError):
    """A metadata file that cannot be used as it is; the message names the problem in one line."""


Source = Path | str  # a local path, or a URI (s3://, gs://, hf://, http(s)://)


def _read_text(path: Source) -> str:
    """The file's text, UTF-8 (a URI is read whole: an entry list is megabytes)."""
    return _read_bytes(path).decode("utf-8") if storage.is_uri(path) else path.read_text(encoding="utf-8")


def _suffix(path: Source) -> str:
    return PurePosixPath(storage.name_of(str(path))).suffix.lower()


def _read_json(path: Source) -> list[str]:
    try:
        data = json.loads(_read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MetadataError(f"metadata {path} is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise MetadataError(f"metadata {path} must be a JSON list of strings, found {type(data).__name__}")
    for position, entry in enumerate(data):
        if not isinstance(entry, str):
            raise MetadataError(f"metadata {path}: item {position} is {type(entry).__name__} {entry!r}, not a string")
    return data


def _read_lines(path: Source) -> list[str]:
    try:
        text = _read_text(path)
    except UnicodeDecodeError as error:
        raise MetadataError(f"metadata {path} is not UTF-8 text: {error}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last entry, it does not start an empty one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_parquet(path: Source) -> tuple[list[str], list[tuple[str, ...]] | None, list[str] | None]:
    """The ``entry`` column, and the ``sources`` and ``language`` columns when the table has them."""
    source = pa.BufferReader(_read_bytes(path)) if storage.is_uri(path) else path
    try:
        schema = pq.read_schema(source)
    except (pa.ArrowException, OSError) as error:
        raise MetadataError(f"metadata {path} is not a readable Parquet file: {error}") from None
    if "entry" not in schema.names:
        raise MetadataError(f"metadata {path} has no 'entry' column (columns: {', '.join(schema.names)})")
    if not (pa.types.is_string(schema.field("entry").type) or pa.types.is_large_string(schema.field("entry").type)):
        raise MetadataError(f"metadata {path}: column 'entry' is {schema.field('entry').type}, not strings")
    columns = ["entry"] + [name for name in ("sources", "language") if name in schema.names]
    try:
        table = pq.read_table(source, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise MetadataError(f"metadata {path} is not a readable Parquet file: {error}") from None
    table = _decoded(table)
    column = table.column("entry")
    if column.null_count:
        first = column.is_null().to_pylist().index(True)
        raise MetadataError(f"metadata {path}: entry {first} is null")
    entries = column.to_pylist()
    return entries, _sources(table, path), _languages(table, path)


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (pandas' categoricals, a common way to store a language per row) as
    their plain values, so that a column is judged by what it holds, not by how it was stored."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            column = table.column(i)
            table = table.set_column(i, field.name, column.cast(field.type.value_type))
    return table


def _sources(table: pa.Table, path: Source) -> list[tuple[str, ...]] | None:
    if "sources" not in table.column_names:
        return None
    sources = table.column("sources")
    if not (pa.types.is_list(sources.type) or pa.types.is_large_list(sources.type)):
        raise MetadataError(f"metadata {path}: column 'sources' is {sources.type}, not lists of strings")
    return [tuple(s or ()) for s in sources.to_pylist()]


def _languages(table: pa.Table, path: Source) -> list[str] | None:
    """Each entry's language (MetaCLIP 2's worldwide metadata); None for an English-only list."""
    if "language" not in table.column_names:
        return None
    languages = table.column("language")
    if not (pa.types.is_string(languages.type) or pa.types.is_large_string(languages.type)):
        raise MetadataError(f"metadata {path}: column 'language' is {languages.type}, not strings")
    values = languages.to_pylist()
    if None in values or "" in values:
        first = next(i for i, v in enumerate(values) if not v)
        raise MetadataError(f"metadata {path}: entry {first} has no language")
    return values


def _kept_positions(
    entries: list[str], path: Source, drop_invalid: bool, languages: list[str] | None = None
) -> list[int] | None:
    """Refuse empty and duplicate entries (naming the first), or say which positions to keep when asked to
    drop them; None when every entry is fine. With languages, an entry repeats only within its language."""
    keys: list = entries if languages is None else list(zip(entries, languages))
    distinct = set(keys)
    if len(distinct) == len(entries) and "" not in entries:
        return None  # the usual case, checked at C speed
    seen: dict = {}
    kept: list[int] = []
    for position, (entry, key) in enumerate(zip(entries, keys)):
        if entry == "":
            if drop_invalid:
                continue
            raise MetadataError(
                f"metadata {path}: entry {position} is empty (use --drop-invalid-entries to skip such entries)"
            )
        if key in seen:
            if drop_invalid:
                continue
            within = "" if languages is None else f" in language {languages[position]!r}"
            raise MetadataError(
                f"metadata {path}: entry {position} {entry!r} duplicates entry {seen[key]}{within} "
                "(use --drop-invalid-entries to keep only the first)"
            )
        seen[key] = position
        kept.append(position)
    return kept


@dataclass(frozen=True)
class Metadata:
    """An entry list with, when the file records it, where each entry came from (``sources[i]`` for
    ``entries[i]``; None for JSON and text files, which hold entries only) and each entry's language
    (a Parquet ``language`` column: worldwide metadata, as MetaCLIP 2's)."""

    entries: list[str]
    sources: list[tuple[str, ...]] | None
    languages: list[str] | None = None


def _read_bytes(path: str) -> bytes:
    try:
        return storage.read_bytes(path, "metadata file")
    except CurationError as error:
        raise MetadataError(str(error)) from None


def _source(path: str | Path) -> Source:
    return path if storage.is_uri(path) else Path(path)


def _check_path(path: Source) -> None:
    if storage.is_uri(path):
        return  # reading it says what is wrong, in one line that names it
    if not path.exists():
        raise MetadataError(f"metadata file not found: {path}")
    if path.is_dir():
        raise MetadataError(f"metadata path is a directory, expected a file: {path}")


def read_raw(path: str | Path) -> Metadata:
    """A file's entries, sources and languages as they are, empties and repeats included: for tools that
    report or refuse them in their own terms (the build's cleaning, merging per-language lists)."""
    path = _source(path)
    _check_path(path)
    suffix = _suffix(path)
    if suffix == ".json":
        return Metadata(_read_json(path), None)
    if suffix == ".parquet":
        return Metadata(*_read_parquet(path))
    return Metadata(_read_lines(path), None)


def load_metadata(path: str | Path, drop_invalid: bool = False) -> Metadata:
    """Entries and their sources. ``.json``: a JSON list; ``.parquet``: a table with an ``entry`` column
    (and optionally ``sources``, a list of strings per entry, and ``language``, a code per entry);
    anything else: one entry per line. Local paths and URIs alike."""
    raw = read_raw(path)
    kept = _kept_positions(raw.entries, _source(path), drop_invalid, raw.languages)
    if kept is None:
        return raw
    return Metadata(
        [raw.entries[p] for p in kept],
        None if raw.sources is None else [raw.sources[p] for p in kept],
        None if raw.languages is None else [raw.languages[p] for p in kept],
    )


def read_raw_entries(path: str | Path) -> list[str]:
    """The entries of a file as they are, empties and repeats included (for sources whose cleaning is
    counted and reported by the merge rather than refused)."""
    return read_raw(path).entries


def load_entries(path: str | Path, drop_invalid: bool = False) -> list[str]:
    """The entries in order. ``.json`` files are JSON lists, ``.parquet`` files tables with an ``entry``
    column; anything else is one entry per line.

    With ``drop_invalid`` empty entries and repeats are skipped and ids are the positions that remain.
    """
    return load_metadata(path, drop_invalid).entries


def fingerprint(entries: list[str], languages: list[str] | None = None) -> str:
    """sha256 of the ordered entries written as a compact JSON list (UTF-8, no ASCII escapes), so a
    run records exactly which id meant which entry, whatever file format the list came in. With
    languages, of the list of [entry, language] pairs."""
    value = entries if languages is None else [list(pair) for pair in zip(entries, languages)]
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()
