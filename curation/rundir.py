"""The run directory: where each output lives, and how it appears atomically.

What a run directory holds, file by file, on disk and in object storage, is described in one place only,
so that copies cannot drift: docs/design.md, "The run directory". This module owns the paths and names;
keep that section in step with them.

Every file is written under a hidden temporary name in its own directory and renamed into place, so a
reader (or a resumed run) sees either nothing or the whole file.

Storage sits behind the run directory: a ``RunDir`` reads (``fetch``) and writes (``write_json``,
``write_table``, ``publish``) every file of its run, on disk or in object storage, and the stages, the
driver and the readers ask it rather than the store. On disk those calls are plain file operations;
for a run in a store they go through this machine's copy of it (curation/mirror.py, which only this
module calls).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from studio_common.errors import CurationError

if TYPE_CHECKING:
    from curation.plan import Plan
    from curation.pool import Shard

FORMAT_VERSION = 2  # 2: an index over the pool (index/); 1 copied the pool into annotated/ and curated/
LOCK_NAME = ".lock"  # the one-writer lock: a flock on disk, a leased object in a store (curation/mirror.py)

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

    @staticmethod
    def open(spec: str | os.PathLike, reading: bool = False) -> RunDir:
        """The run named by a local path or a URI (then this machine's copy of it). Readers
        (``reading``: stats, export, the dashboard, a job's progress) get a copy apart from a writer's."""
        return _mirror().open_run(spec, reading)

    @staticmethod
    def read_copy(spec: str, parts: bool = True, progress: bool = False) -> Path:
        """A local folder holding the run for a reader (itself on disk; a refreshed copy for a run in a
        store; ``parts``: with its index and threshold parts)."""
        return _mirror().read_copy(spec, parts, progress)

    @staticmethod
    def check_output(spec: str) -> None:
        """Refuse in one line, before a background run starts, an --out that cannot become a run."""
        _mirror().check_output(spec)

    # -- storage: plain files on disk; this machine's copy, kept current, for a run in a store --------

    def fetch(self, path: Path) -> bool:
        """Make ``path`` current on this machine; False when the run has no such file."""
        return _mirror().fetch(self, path)

    def fetch_tree(self, directory: Path, skip: tuple[str, ...] = (), progress: bool = False) -> None:
        """Make a folder current on this machine (``skip``: relative prefixes left out)."""
        _mirror().fetch_tree(self, directory, skip, progress)

    def has(self, path: Path) -> bool:
        """Whether the run has the file, without copying it."""
        return _mirror().has(self, path)

    def has_all(self, paths: Iterable[Path]) -> bool:
        return _mirror().has_all(self, paths)

    def names(self, directory: Path) -> set[str]:
        """Files under a folder of the run, as paths relative to it."""
        return _mirror().names(self, directory)

    def folders(self, directory: Path) -> list[str]:
        return _mirror().folders(self, directory)

    def contents(self) -> list[str]:
        """Names at the top of the run other than its lock (empty: a new run may start here)."""
        return _mirror().contents(self)

    def readable(self, path: Path) -> str:
        """Where to open a large file for reading by range: its local path, or its object's URI."""
        return _mirror().readable(self, path)

    def publish(self, path: Path, keep_copy: bool = True) -> None:
        """Make a finished file part of the run (an upload, for a run in a store); ``keep_copy=False``
        drops this machine's copy afterwards (large outputs of a worker)."""
        _mirror().publish(self, path, keep_copy)

    def publish_tree(self, directory: Path, last: str | None = None) -> None:
        """Publish a folder's files, ``last`` (its completion mark) after every other one."""
        _mirror().publish_tree(self, directory, last)

    def discard(self, path: Path) -> None:
        """Drop this machine's copy of a published file it will not read again (no-op on disk)."""
        _mirror().discard(self, path)

    def remove_tree(self, directory: Path) -> None:
        _mirror().remove_tree(self, directory)

    def remove_file(self, path: Path) -> None:
        _mirror().remove_file(self, path)

    def unpublish_tree(self, directory: Path) -> None:
        """Delete a folder from the store only (this machine's copy stays)."""
        _mirror().unpublish_tree(self, directory)

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the run for one writer at a time (a flock on disk, a leased lock object in a store)."""
        return _mirror().exclusive(self)

    def write_json(self, path: Path, value: object) -> None:
        """A JSON file written atomically and published."""
        atomic_write_json(path, value)
        self.publish(path)

    def write_table(self, path: Path, table: pa.Table, keep_copy: bool = True, **options: object) -> None:
        """A Parquet file written atomically and published; ``options`` go to pyarrow's write_table."""
        atomic_write_table(path, table, **options)
        self.publish(path, keep_copy)

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

    def write_plan(self, plan: Plan) -> None:
        from curation.plan import write_plan

        write_plan(self.plan_json, plan)
        self.publish(self.plan_json)

    def shards(self) -> list[Shard]:
        return list(self.plan().shards)

    def is_matched(self) -> bool:
        """Every shard has its marker and the global counts are written (files on this machine)."""
        return self.entry_counts.exists() and all(self.shard_marker(s.index).exists() for s in self.shards())

    def complete_seeds(self, plan: Plan | None = None) -> list[int]:
        """Seeds with a keep threshold part for every shard (a killed balance may leave one half done);
        ``plan``: the run's, when the caller has read it already."""
        if plan is None and not self.plan_json.exists():
            return self.threshold_seeds()  # no shards to miss a part
        plan = plan if plan is not None else self.plan()
        return [seed for seed in self.threshold_seeds() if self.has_thresholds(seed, plan)]

    def has_thresholds(self, seed: int, plan: Plan) -> bool:
        """Every shard has the seed's keep threshold part (in the store, for a run that lives there)."""
        return self.has_all(self.threshold_part(seed, shard) for shard in plan.shard_indices)

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

    def manifest_part(self, name: str, shard: int) -> Path:
        """A shard's kept rows in the curated manifest folder manifests/NAME/ (`run`, `balance
        --write-manifest`): each worker writes its shards' parts."""
        return self.manifests / name / part_name(shard)

    def preview(self, seed: int) -> Path:
        return self.root / "preview" / f"seed-{seed}"

    def preview_pieces(self, seed: int) -> Path:
        return self.root / "preview" / f"pieces-seed-{seed}"

    def preview_piece(self, seed: int, shard: int) -> Path:
        return self.preview_pieces(seed) / f"{shard:05d}.npz"

    def make(self) -> None:
        for directory in (self.index, self.shard_outputs):
            directory.mkdir(parents=True, exist_ok=True)


def _mirror():  # noqa: ANN202 (the module)
    """curation/mirror.py, imported when first used: it builds on this module."""
    from curation import mirror

    return mirror


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


def read_parquet(path: Path | str, columns: Sequence[str] | None = None) -> pa.Table:
    """One local Parquet file, whole or some columns. Not pq.read_table: it imports pyarrow.dataset,
    which costs a short command (a new t) a third of a second."""
    return pq.ParquetFile(path).read(columns=None if columns is None else list(columns))


def numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric column without nulls as a numpy array. Not Arrow's to_numpy, which imports pandas on
    first use: half a second of a short command (a new t)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if any(chunk.null_count for chunk in chunks) or not all(
        pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type) for chunk in chunks
    ):
        raise ValueError(f"numbers() takes integers or floats without nulls, not {column.type}")
    dtype = np.dtype(column.type.to_pandas_dtype())
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        for chunk in chunks
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


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
