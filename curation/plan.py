"""plan.json, typed: what a run was asked to do, fixed when it starts (docs/design.md, "The run
directory"). The one module that reads and writes the file, and says what keeps a new plan from
resuming a run; every other module reads a ``Plan``.

Its ``format_version`` is read when a plan is opened: a run directory written by a newer studio (a
larger version) is refused in one line that says so, rather than misread; a format-1 run (which copied
the pool) in one line that names the command that upgrades it (curation/upgrade.py).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from curation.languages import LID176
from curation.pool import Shard, comparable_path
from curation.rundir import FORMAT_VERSION, atomic_write_json, read_json
from studio_common import storage
from studio_common.errors import CurationError


@dataclass(frozen=True)
class PlanMetadata:
    """The metadata a run matches against: where it was read, how many entries, and their fingerprint
    (what a resume compares; the path does not count)."""

    path: str
    entries: int
    fingerprint: str
    drop_invalid_entries: bool = False
    languages: tuple[str, ...] | None = None  # worldwide metadata: its languages, sorted

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "entries": self.entries,
            "fingerprint": self.fingerprint,
            "drop_invalid_entries": self.drop_invalid_entries,
            **({"languages": list(self.languages)} if self.languages else {}),
        }

    def parquet_form(self) -> str | None:
        """Where the metadata's Parquet form (entry, sources) is: the list itself when it is Parquet, else a
        Parquet file of the same name beside a local list (as `curation-metadata build` writes both);
        None when there is none. The Overview page and the data card read sources from it."""
        if self.path.endswith(".parquet"):
            return self.path
        beside = Path(self.path).with_suffix(".parquet")
        return str(beside) if not storage.is_uri(self.path) and beside.exists() else None

    @classmethod
    def from_json(cls, data: dict) -> PlanMetadata:
        languages = data.get("languages")
        return cls(
            data["path"],
            int(data["entries"]),
            data["fingerprint"],
            bool(data.get("drop_invalid_entries", False)),
            tuple(languages) if languages else None,
        )


@dataclass(frozen=True)
class PlanColumns:
    """The pool columns a run reads: caption, id and url; the caption language's column in a worldwide
    run (None: identified from the text); several texts per image with --text-columns."""

    text: str
    id: str | None
    url: str | None
    language: str | None = None
    texts: tuple[str, ...] = ()
    # How a worldwide run without a language column identifies captions' languages (curation.languages),
    # and the run's identifier-to-metadata codes (--language-map).
    identifier: str | None = None
    language_map: tuple[tuple[str, str], ...] = ()

    def as_json(self, worldwide: bool) -> dict:
        return {
            "text": self.text,
            "id": self.id,
            "url": self.url,
            **({"language": self.language} if worldwide else {}),
            **({"texts": list(self.texts)} if self.texts else {}),
            **({"language_identifier": self.identifier} if self.identifier else {}),
            **({"language_map": dict(self.language_map)} if self.language_map else {}),
        }

    @classmethod
    def from_json(cls, data: dict, worldwide: bool = False) -> PlanColumns:
        identifier = data.get("language_identifier")
        if identifier is None and worldwide and data.get("language") is None:
            identifier = LID176  # planned before there was a choice: lid.176 alone
        return cls(
            data["text"],
            data.get("id"),
            data.get("url"),
            data.get("language"),
            tuple(data.get("texts", ())),
            identifier,
            tuple(sorted(data.get("language_map", {}).items())),
        )


@dataclass(frozen=True)
class Plan:
    """What a run was asked to do: the pool (its files' signatures), the metadata, the columns, how
    pair keys are made, and the shards."""

    pool: str
    files: tuple[dict, ...]  # signatures: path, bytes, mtime_ns (as pool.file_signature gives them)
    rows: int
    metadata: PlanMetadata
    columns: PlanColumns
    pair_key: str  # how pair keys are made, in words
    shard_rows: int
    shards: tuple[Shard, ...] = field(default_factory=tuple)
    format_version: int = FORMAT_VERSION

    @property
    def worldwide(self) -> bool:
        """Metadata with languages: captions matched per language, t per language."""
        return self.metadata.languages is not None

    @property
    def languages(self) -> tuple[str, ...] | None:
        return self.metadata.languages

    @property
    def shard_indices(self) -> list[int]:
        return [shard.index for shard in self.shards]

    def as_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "pool": self.pool,
            "files": [dict(signature) for signature in self.files],
            "rows": self.rows,
            "metadata": self.metadata.as_json(),
            "columns": self.columns.as_json(self.worldwide),
            "pair_key": self.pair_key,
            "shard_rows": self.shard_rows,
            "shards": [shard.as_dict() for shard in self.shards],
        }

    @classmethod
    def from_json(cls, data: dict, where: str = "plan.json", run: str | None = None, upgrading: bool = False) -> Plan:
        """``run``: the run as the user names it (for the message that says how to upgrade a format-1
        run); ``upgrading``: the upgrade itself, which reads format 1."""
        version = data.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CurationError(
                f"{where} is of run directory format {version}; this curation reads format {FORMAT_VERSION}: "
                "upgrade curation-studio to read it"
            )
        if version < FORMAT_VERSION and not upgrading:
            name = run or str(Path(where).parent)
            raise CurationError(
                f"{name} is a format-{version} run directory (it holds copies of the pool); "
                f"run `curation upgrade {shlex.quote(name)}` once to make it an index over the pool "
                "(nothing is matched again)"
            )
        try:
            return cls(
                pool=data["pool"],
                files=tuple(data["files"]),
                rows=int(data["rows"]),
                metadata=(metadata := PlanMetadata.from_json(data["metadata"])),
                columns=PlanColumns.from_json(data["columns"], worldwide=metadata.languages is not None),
                pair_key=data["pair_key"],
                shard_rows=int(data["shard_rows"]),
                shards=tuple(
                    Shard(int(s["index"]), s["path"], tuple(s["row_groups"]), int(s["rows"])) for s in data["shards"]
                ),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CurationError(f"{where} is not a run's plan (missing or wrong {error}); was it edited?") from None


def read_plan(path: Path, run: str | None = None, upgrading: bool = False) -> Plan:
    """The plan in ``path`` (a run directory's plan.json, or its local copy); ``run``: how the user
    names the run."""
    return Plan.from_json(read_json(path), str(path), run, upgrading)


def write_plan(path: Path, plan: Plan) -> None:
    atomic_write_json(path, plan.as_json())


# --------------------------------------------------------------------------------------------------
# Resuming: what keeps a new plan from continuing a run
# --------------------------------------------------------------------------------------------------


def plan_differences(before: Plan, now: Plan) -> list[str]:
    """What keeps ``now`` from resuming the run of ``before``, each as 'what (before, now)'; empty when
    it is the same request. Local paths are compared resolved, so a relative and an absolute path to
    the same files are one pool; the metadata's path does not count, its entries do. Compared in
    their plan.json form, which is what a user reads."""
    previous, current = before.as_json(), now.as_json()
    differences = []
    files = _files_difference(previous.get("files", []), current["files"])
    if files:
        differences.append(f"pool files ({files})")
    metadata = _metadata_difference(previous.get("metadata", {}), current["metadata"])
    if metadata:
        differences.append(f"metadata ({metadata})")
    columns = _values_difference(previous.get("columns", {}), current["columns"])
    if columns:
        differences.append(f"columns ({columns})")
    if not files and _comparable_shards(previous) != _comparable_shards(current):  # else the files explain it
        rows = previous.get("shard_rows"), current.get("shard_rows")
        detail = (
            f"--shard-rows: {rows[0]:,} before, {rows[1]:,} now"
            if rows[0] != rows[1] and None not in rows
            else f"{len(previous.get('shards', [])):,} shards before, {len(current['shards']):,} now"
        )
        differences.append(f"sharding ({detail})")
    return differences


def _comparable_shards(plan: dict) -> list[dict]:
    return [{**shard, "path": comparable_path(shard["path"])} for shard in plan.get("shards", [])]


def pool_difference(a: Plan, b: Plan, names: tuple[str, str] = ("in A", "in B")) -> str | None:
    """Why two runs did not read the same pool, in words; None when they read the same files (path,
    size and time) in the same order, so that row r of one run is row r of the other
    (curation/compare.py)."""
    files = _files_difference(list(a.files), list(b.files), names)
    if files:
        return files
    if [comparable_path(f["path"]) for f in a.files] != [comparable_path(f["path"]) for f in b.files]:
        return "the same files in another order"
    return None


def _files_difference(before: list[dict], now: list[dict], names: tuple[str, str] = ("before", "now")) -> str | None:
    """The first thing that differs between two lists of pool file signatures, in words (``names``: how
    the two lists are called)."""
    first, second = names
    old = {comparable_path(f["path"]): f for f in before}
    new = {comparable_path(f["path"]): f for f in now}
    pieces = []
    if len(old) != len(new):
        pieces.append(f"{len(old):,} files {first}, {len(new):,} {second}")
    for label, paths in (
        (f"only {first}", [p for p in old if p not in new]),
        (f"only {second}", [p for p in new if p not in old]),
    ):
        if paths:
            pieces.append(f"{label}: {paths[0]}" + (f" and {len(paths) - 1:,} more" if len(paths) > 1 else ""))
    if pieces:
        return ", ".join(pieces)
    for path, signature in new.items():
        was = old[path]
        if was.get("bytes") != signature.get("bytes"):
            return f"{path}: {was.get('bytes'):,} bytes {first}, {signature.get('bytes'):,} {second}"
        if was.get("mtime_ns") != signature.get("mtime_ns"):
            when = _when(was.get("mtime_ns")), _when(signature.get("mtime_ns"))
            return f"{path}: modified {when[0]} {first}, {when[1]} {second}"
    return None


def _when(mtime_ns: int | None) -> str:
    if mtime_ns is None:
        return "at an unknown time"
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _metadata_difference(before: dict, now: dict) -> str | None:
    """The metadata's entries (count and fingerprint, with the file each came from) or its drop flag."""
    pieces = []
    if (before.get("entries"), before.get("fingerprint")) != (now.get("entries"), now.get("fingerprint")):
        pieces.append(f"{_entries(before)} before, {_entries(now)} now")
    flags = [("on" if m.get("drop_invalid_entries") else "off") for m in (before, now)]
    if flags[0] != flags[1]:
        pieces.append(f"--drop-invalid-entries: {flags[0]} before, {flags[1]} now")
    return ", ".join(pieces) or None


def _entries(metadata: dict) -> str:
    entries = metadata.get("entries")
    count = f"{entries:,} entries" if isinstance(entries, int) else "entries"
    return f"{count} of {metadata.get('path')} ({str(metadata.get('fingerprint'))[:19]})"


def _values_difference(before: dict, now: dict) -> str | None:
    """Each key whose value differs, as 'key: old before, new now'."""
    changed = [key for key in {**before, **now} if before.get(key) != now.get(key)]
    shown = [f"{key}: {_shown(before.get(key))} before, {_shown(now.get(key))} now" for key in changed]
    return ", ".join(shown) or None


def _shown(value: object) -> str:
    return "none" if value is None else repr(value)
