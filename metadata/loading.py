"""Loading an entry list: MetaCLIP's JSON list of strings, or a text file with one entry per line.

One loader for the engine and the dashboard, so that ids (positions) mean the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


class MetadataError(ValueError):
    """A metadata file that cannot be used as it is; the message names the problem in one line."""


def _read_json(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MetadataError(f"metadata {path} is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise MetadataError(f"metadata {path} must be a JSON list of strings, found {type(data).__name__}")
    for position, entry in enumerate(data):
        if not isinstance(entry, str):
            raise MetadataError(
                f"metadata {path}: item {position} is {type(entry).__name__} {entry!r}, not a string"
            )
    return data


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MetadataError(f"metadata {path} is not UTF-8 text: {error}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last entry, it does not start an empty one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _validate(entries: list[str], path: Path, drop_invalid: bool) -> list[str]:
    """Refuse empty and duplicate entries (naming the first), or drop them when asked to."""
    distinct = set(entries)
    if len(distinct) == len(entries) and "" not in distinct:
        return entries  # the usual case, checked at C speed
    seen: dict[str, int] = {}
    kept: list[str] = []
    for position, entry in enumerate(entries):
        if entry == "":
            if drop_invalid:
                continue
            raise MetadataError(
                f"metadata {path}: entry {position} is empty (use --drop-invalid-entries to skip such entries)"
            )
        if entry in seen:
            if drop_invalid:
                continue
            raise MetadataError(
                f"metadata {path}: entry {position} {entry!r} duplicates entry {seen[entry]} "
                "(use --drop-invalid-entries to keep only the first)"
            )
        seen[entry] = position
        kept.append(entry)
    return kept


def load_entries(path: str | Path, drop_invalid: bool = False) -> list[str]:
    """The entries in order. ``.json`` files are JSON lists; anything else is one entry per line.

    With ``drop_invalid`` empty entries and repeats are skipped and ids are the positions that remain.
    """
    path = Path(path)
    if not path.exists():
        raise MetadataError(f"metadata file not found: {path}")
    if path.is_dir():
        raise MetadataError(f"metadata path is a directory, expected a file: {path}")
    entries = _read_json(path) if path.suffix.lower() == ".json" else _read_lines(path)
    return _validate(entries, path, drop_invalid)


def fingerprint(entries: list[str]) -> str:
    """sha256 of the ordered entries written as a compact JSON list (UTF-8, no ASCII escapes), so a
    run records exactly which id meant which entry, whatever file format the list came in."""
    encoded = json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()
