"""The run directory: where each output lives, and how it appears atomically.

What a run directory holds, file by file, on disk and in object storage, is described in one place only,
so that copies cannot drift: docs/design.md, "The run directory". This module owns the paths and names;
keep that section in step with them.

Every file is written under a hidden temporary name in its own directory and renamed into place, so a
reader (or a resumed run) sees either nothing or the whole file. A run directory in object storage is
worked on through local copies and published object by object (curation/mirror.py).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from studio_common.errors import CurationError

if TYPE_CHECKING:
    from curation.plan import Plan
    from curation.pool import Shard

FORMAT_VERSION = 2  # 2: an index over the pool (index/); 1 copied the pool into annotated/ and curated/
LOCK_NAME = ".lock"  # the one-writer lock: a flock on disk, a leased object in a store (curation/mirror.py)
PART_GLOB = "part-*.parquet"

# Columns of the index parts (what a run knows of each pair beyond the pool) and of its threshold parts.
ENTRY_IDS = "entry_ids"
PAIR_KEY = "pair_key"
THRESHOLD = "k"
ENTRY_LANGUAGE = "language"  # worldwide runs, entry_counts.parquet: each entry's language
CAPTION_LANGUAGE = "caption_language"  # worldwide runs, index parts: the language a caption was matched in
PICKED_COLUMN = "picked_column"  # --text-columns: the column of the text each pair is kept by (index)
PICKED_TEXT = "picked_text"  # --text-columns: that text, read from the pool when pairs are read back
# Columns of entry_counts.parquet.
ENTRY_COUNT_COLUMNS = ("entry_id", "entry", "count")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory; knows nothing of what is computed.

    ``source``: for a run that lives in object storage, its URI; ``root`` is then this machine's copy
    of the files it works on (curation/mirror.py).
    """

    root: Path
    source: str | None = None

    @property
    def spec(self) -> str:
        """How the user named the run: its URI, or its local path (what stage configs carry)."""
        return self.source or str(self.root)

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def plan_json(self) -> Path:
        return self.root / "plan.json"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def index(self) -> Path:
        """index/: per pair what the pool lacks (pair key, entry ids), in the pool's own order."""
        return self.root / "index"

    @property
    def format_1_parts(self) -> Path:
        """Where a format-1 run copied the pool (what `curation upgrade` recognises)."""
        return self.root / "annotated"

    @property
    def manifests(self) -> Path:
        """manifests/: the curated manifests `run` and `balance --write-manifest` write (not the run itself)."""
        return self.root / "manifests"

    @property
    def shard_outputs(self) -> Path:
        """shards/: each shard's counts and its marker."""
        return self.root / "shards"

    @property
    def entry_counts(self) -> Path:
        return self.root / "entry_counts.parquet"

    @property
    def matcher_tables(self) -> Path:
        """The token matcher's tables (curation/matchers.py)."""
        return self.root / "matcher" / "tokens"

    def plan(self) -> Plan:
        """What the run was asked to do: plan.json (this machine's copy, for a run in a store)."""
        from curation.plan import read_plan  # plan.py builds on this module's writers

        return read_plan(self.plan_json, self.spec)

    def shards(self) -> list[Shard]:
        return list(self.plan().shards)

    def is_matched(self) -> bool:
        """Every shard has its marker and the global counts are written (files on this machine)."""
        return self.entry_counts.exists() and all(self.shard_marker(s.index).exists() for s in self.shards())

    def complete_seeds(self, plan: Plan | None = None) -> list[int]:
        """Seeds with a keep threshold part for every shard (a killed balance may leave one half done);
        ``plan``: the run's, when the caller has read it already."""
        shards = list(plan.shards) if plan is not None else self.shards() if self.plan_json.exists() else []
        return [
            seed
            for seed in self.threshold_seeds()
            if all(self.threshold_part(seed, shard.index).exists() for shard in shards)
        ]

    def thresholds(self, seed: int) -> Path:
        return self.root / "thresholds" / f"seed-{seed}"

    def threshold_seeds(self) -> list[int]:
        """Seeds with a thresholds folder, complete or not, ascending."""
        found = self.root.glob("thresholds/seed-*")
        return sorted(int(d.name.removeprefix("seed-")) for d in found if d.name.removeprefix("seed-").isdigit())

    def index_part(self, shard: int) -> Path:
        return self.index / part_name(shard)

    def shard_counts(self, shard: int) -> Path:
        return self.shard_outputs / f"{shard:05d}.counts.parquet"

    def shard_marker(self, shard: int) -> Path:
        return self.shard_outputs / f"{shard:05d}.json"

    def threshold_part(self, seed: int, shard: int) -> Path:
        return self.thresholds(seed) / part_name(shard)

    def preview(self, seed: int) -> Path:
        return self.root / "preview" / f"seed-{seed}"

    def preview_pieces(self, seed: int) -> Path:
        return self.root / "preview" / f"pieces-seed-{seed}"

    def preview_piece(self, seed: int, shard: int) -> Path:
        return self.preview_pieces(seed) / f"{shard:05d}.npz"

    def make(self) -> None:
        for directory in (self.index, self.shard_outputs):
            directory.mkdir(parents=True, exist_ok=True)


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def temporary_path(path: Path) -> Path:
    """A hidden sibling name no other process uses (same folder, so the rename is atomic; the name is
    what ``remove_leftovers`` recognises)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes ``path`` only if the block ends normally."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces ``path`` (and whatever was there) only if the
    block ends normally."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_path(path)
    staging.mkdir()
    try:
        yield staging
        shutil.rmtree(path, ignore_errors=True)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_json(path: Path, value: object) -> None:
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def atomic_write_table(path: Path, table: pa.Table, **options: object) -> None:
    """One Parquet file that appears whole; ``options`` go to pyarrow's write_table."""
    with atomic_file(path) as temporary:
        pq.write_table(table, temporary, **options)


@contextmanager
def atomic_parquet_writer(path: Path, schema: pa.Schema, **options: object) -> Iterator[pq.ParquetWriter]:
    """A streaming writer whose file appears under its name only once it is complete; ``options``
    go to pyarrow's ParquetWriter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    writer = pq.ParquetWriter(temporary, schema, **options)
    try:
        yield writer
        writer.close()
        os.replace(temporary, path)
    finally:
        writer.close()
        temporary.unlink(missing_ok=True)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CurationError(f"missing {path.name} in {path.parent}") from None
    except json.JSONDecodeError as error:
        raise CurationError(f"{path} is not valid JSON ({error}); remove the run directory and run again") from None


def remove_leftovers(root: Path) -> None:
    """Temporary files and folders of a killed run: never complete, always safe to remove."""
    for leftover in sorted(root.rglob(".*.tmp-*"), reverse=True):  # a folder's contents first
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
