"""Curated manifests at any t and seed, written only under an export directory, each with a
provenance file beside it that says exactly how it was made."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from curation.errors import CurationError
from curation.query import RunQuery

FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}
COLUMN_SETS = {
    "img2dataset": "url and caption, as img2dataset reads them",
    "all": "every column of the annotated pool",
    "keys": "pair keys (and ids) only",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")


@dataclass(frozen=True)
class Export:
    path: Path
    provenance: Path
    rows: int


def check_name(name: str) -> str:
    """A bare file name: no directory part, no '..', nothing that could leave the export directory."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise CurationError(f"export name {name!r} refused: use letters, digits, '.', '_' and '-' only "
                            "(no path separators, no '..', not starting with '.')")
    return name


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _select(query: RunQuery, column_set: str) -> str:
    columns = query.plan()["columns"]
    if column_set == "img2dataset":
        if not columns["url"]:
            raise CurationError("this pool has no url column; export all columns or keys instead")
        return f"a.{_quote(columns['url'])} AS url, a.{_quote(columns['text'])} AS caption"
    if column_set == "all":
        return ", ".join(f"a.{_quote(c)}" for c in query.columns())
    if column_set == "keys":
        return (f"a.{_quote(columns['id'])}, " if columns["id"] else "") + "a.pair_key"
    raise CurationError(f"unknown column set {column_set!r}; choose one of {', '.join(COLUMN_SETS)}")


def export_manifest(query: RunQuery, export_dir: Path, name: str, t: float, seed: int,
                    file_format: str = "parquet", column_set: str = "img2dataset") -> Export:
    """Write the pairs kept at (t, seed) and their provenance; both appear atomically."""
    check_name(name)
    if file_format not in FORMATS:
        raise CurationError(f"unknown format {file_format!r}; choose one of {', '.join(FORMATS)}")
    if not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    if seed not in query.seeds():
        raise CurationError(f"no keep thresholds for seed {seed} in {query.root}; "
                            f"run `python -m curation balance {query.root} --t {t:g} --seed {seed}` first")
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / (name + FORMATS[file_format])
    provenance_path = export_dir / (name + ".provenance.json")
    temporary = export_dir / f".{name}.tmp-{uuid.uuid4().hex[:8]}{FORMATS[file_format]}"
    try:
        rows = query.copy_selection(t, seed, _select(query, column_set), temporary, file_format)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    record, plan = query.record(), query.plan()
    provenance = {
        "file": path.name,
        "rows": rows,
        "t": t,
        "seed": seed,
        "format": file_format,
        "columns": column_set,
        "metadata": plan["metadata"],
        "pool": {"spec": plan["pool"], "rows": plan["rows"], "files": [f["path"] for f in plan["files"]]},
        "pair_key": plan["pair_key"],
        "pool_rows": record.get("rows", {}),
        "run_dir": str(query.root),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    temporary_json = export_dir / f".{name}.tmp-{uuid.uuid4().hex[:8]}.json"
    temporary_json.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary_json, provenance_path)
    return Export(path, provenance_path, rows)

