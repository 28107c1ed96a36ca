"""Curated manifests at any t and seed, written only under an export directory, each with a
provenance file beside it that says exactly how it was made."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from curation import datacomp, preview_files, stages
from curation.browse import epoch_batches, every_batch, kept_batches
from curation.online import epoch_seed
from curation.pairs import PairReader
from curation.rundir import (
    ENTRY_IDS,
    PICKED_COLUMN,
    PICKED_TEXT,
    RunDir,
    atomic_file,
    atomic_write_json,
    read_json,
)
from curation.stages import repeating_columns
from curation.summary import Run
from studio_common import storage
from studio_common.errors import CurationError

if TYPE_CHECKING:  # types only: the command line imports this module without DuckDB
    from curation.engines import Engine
    from curation.plan import Plan
    from curation.preview import BalancePreview
    from curation.query import RunQuery
    from curation.worldwide_preview import WorldwidePreview

COLUMN_SETS = {
    "img2dataset": "url and caption, as img2dataset reads them",
    "all": "every column of the pool, with the run's pair key and entry ids",
    "keys": "pair keys (and ids) only",
    "uid": "DataComp's uid column only (--uid-column names it)",
}
DEFAULT_UID_COLUMN = "uid"
NAME_MAX = 120  # characters of an export name, extension not counted
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}")
Progress = Callable[[int, int], None]
Item = TypeVar("Item")


@dataclass(frozen=True)
class Export:
    path: Path | str  # a local path, or a URI
    provenance: Path | str
    rows: int


def provenance_name(name: str) -> str:
    """The provenance file of manifest NAME: NAME.provenance.json, the whole name kept, so that
    m.parquet, m.jsonl and m.csv each have their own."""
    return name + ".provenance.json"


def check_name(name: str) -> str:
    """A bare file name: no directory part, no '..', nothing that could leave the export directory."""
    if len(name or "") > NAME_MAX:
        raise CurationError(f"export name of {len(name)} characters refused: shorten it to at most {NAME_MAX}")
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise CurationError(
            f"export name {name!r} refused: use letters, digits, '.', '_' and '-' only, at most "
            f"{NAME_MAX} characters (no path separators, no '..', not starting with '.')"
        )
    return name


# --------------------------------------------------------------------------------------------------
# Writers: one interface, one class per format (as img2dataset's writers)
# --------------------------------------------------------------------------------------------------


class ManifestWriter(Protocol):
    """One manifest format: its file suffix, the column sets it can hold (the first is its default),
    and a writer that takes the kept rows table by table."""

    suffix: ClassVar[str]
    column_sets: ClassVar[tuple[str, ...]]

    def __init__(self, path: Path, schema: pa.Schema) -> None: ...

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class ParquetManifest:
    """Dictionary pages only for the columns whose values repeat in the first rows written (urls,
    captions, keys are unique: a dictionary there costs time for nothing), zstd, as the run's own parts."""

    suffix = ".parquet"
    column_sets = tuple(COLUMN_SETS)

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.writer: pq.ParquetWriter | None = None

    def _writer(self, first: pa.Table | None) -> pq.ParquetWriter:
        if self.writer is None:
            repeating = repeating_columns(first.slice(0, 65_536)) if first is not None and first.num_rows else []
            self.writer = pq.ParquetWriter(
                self.path, self.schema, use_dictionary=repeating, compression=stages.PART_COMPRESSION
            )
        return self.writer

    def write(self, table: pa.Table) -> None:
        self._writer(table).write_table(table)

    def close(self) -> None:
        self._writer(None).close()


class CsvManifest:
    """CSV has no lists: a list column (entry_ids) is written as text, "[3, 17, 42]"."""

    suffix = ".csv"
    column_sets = tuple(COLUMN_SETS)

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.lists = [name for name in schema.names if pa.types.is_list(schema.field(name).type)]
        for name in self.lists:
            schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
        self.writer = pa_csv.CSVWriter(str(path), schema)

    def write(self, table: pa.Table) -> None:
        for name in self.lists:
            joined = pc.binary_join(pc.cast(table.column(name), pa.list_(pa.string())), ", ")
            table = table.set_column(
                table.schema.get_field_index(name), name, pc.binary_join_element_wise("[", joined, "]", "")
            )
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class JsonLinesManifest:
    """One JSON object a line, written by DuckDB (pyarrow has no JSON writer) batch by batch into a
    scratch file whose lines are appended to the manifest."""

    suffix = ".jsonl"
    column_sets = tuple(COLUMN_SETS)

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.handle = open(path, "wb")
        self.scratch = path.with_name(path.name + ".batch")
        import duckdb  # here, where the query runs: the command line imports this module without DuckDB

        self.connection = duckdb.connect()

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.connection.register("batch", table)
        literal = "'" + str(self.scratch).replace("'", "''") + "'"  # COPY takes no parameter for its target
        self.connection.execute(f"COPY batch TO {literal} (FORMAT json)")
        self.connection.unregister("batch")
        with open(self.scratch, "rb") as scratch:
            shutil.copyfileobj(scratch, self.handle)

    def close(self) -> None:
        self.handle.close()
        self.connection.close()
        self.scratch.unlink(missing_ok=True)


class DataCompUids:
    """DataComp's subset file (curation.datacomp): the kept uids, sorted and unique, which needs them
    all at the end: 16 bytes a kept pair are held until the file is written."""

    suffix = ".npy"
    column_sets = ("uid",)

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.column = path, schema.names[0] if schema.names else DEFAULT_UID_COLUMN
        self.words: list = []

    def write(self, table: pa.Table) -> None:
        self.words.append(datacomp.uid_words(table.column(0), self.column))

    def close(self) -> None:
        with open(self.path, "wb") as handle:
            datacomp.write_subset(handle, datacomp.sorted_unique(self.words))


# Format name -> writer, in the order offered; the suffix of each is the writer's own.
FORMATS: dict[str, type[ManifestWriter]] = {
    "parquet": ParquetManifest,
    "jsonl": JsonLinesManifest,
    "csv": CsvManifest,
    "datacomp-uids": DataCompUids,
}


def writer_for(file_format: str) -> type[ManifestWriter]:
    if file_format not in FORMATS:
        raise CurationError(f"unknown format {file_format!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[file_format]


def format_of(name: str, requested: str | None = None) -> str:
    """The format of manifest NAME: the one its extension names, which ``requested`` (--format) may
    repeat but not contradict; for a name without an extension, ``requested`` or Parquet. An extension
    that names no format is refused: the file would hold something its name does not say."""
    if requested is not None:
        writer_for(requested)
    suffix = PurePosixPath(name).suffix.lower()
    if not suffix:
        return requested or "parquet"
    named = next((fmt for fmt, writer in FORMATS.items() if writer.suffix == suffix), None)
    if named is None:
        *others, last = (writer.suffix for writer in FORMATS.values())
        extensions = f"{', '.join(others)} or {last}"
        raise CurationError(f"{name}: the extension {suffix} names no manifest format; end the name with {extensions}")
    if requested is not None and requested != named:
        raise CurationError(
            f"--format {requested} contradicts {name}, whose extension says {named}; "
            f"drop --format, or end the name with {FORMATS[requested].suffix}"
        )
    return named


# --------------------------------------------------------------------------------------------------
# Exporting
# --------------------------------------------------------------------------------------------------


def column_set_for(file_format: str, requested: str | None) -> str:
    """The column set of a manifest: ``requested`` (--columns) when its format can hold it, else the
    format's own default (img2dataset's url and caption; a DataComp subset file's uids)."""
    allowed = writer_for(file_format).column_sets
    if requested is None:
        return allowed[0]
    if requested not in COLUMN_SETS:
        raise CurationError(f"unknown column set {requested!r}; choose one of {', '.join(COLUMN_SETS)}")
    if requested not in allowed:
        raise CurationError(
            f"--format {file_format} holds {' or '.join(allowed)} only: drop --columns {requested}"
            + (" (--uid-column names DataComp's uid column)" if "uid" in allowed else "")
        )
    return requested


def _columns(pairs: PairReader, column_set: str, uid_column: str = DEFAULT_UID_COLUMN) -> tuple[list[str], list[str]]:
    """(columns of the pairs to read, their names in the manifest)."""
    columns = pairs.plan.columns
    if column_set == "img2dataset":
        if not columns.url:
            raise CurationError("this pool has no url column; export all columns or keys instead")
        if columns.texts:  # several texts per image: the one each image was kept by, and its column
            return [columns.url, PICKED_TEXT, PICKED_COLUMN], ["url", "caption", "caption_column"]
        return [columns.url, columns.text], ["url", "caption"]
    if column_set == "all":
        return pairs.names, pairs.names
    if column_set == "keys":
        names = ([columns.id] if columns.id else []) + ["pair_key"]
        return names, names
    if column_set == "uid":
        if uid_column not in pairs.names:
            raise CurationError(
                f"the pool has no column {uid_column!r} ({', '.join(pairs.pool_schema.names)}); "
                "name DataComp's uid column with --uid-column"
            )
        return [uid_column], [uid_column]
    raise CurationError(f"unknown column set {column_set!r}; choose one of {', '.join(COLUMN_SETS)}")


def write_manifest(
    root: Path,
    path: Path | str,
    t: float | None,
    seed: int,
    file_format: str | None = None,
    column_set: str | None = None,
    progress: Progress | None = None,
    run_name: str | None = None,
    uid_column: str = DEFAULT_UID_COLUMN,
    epoch: int | None = None,
) -> Export:
    """Write the pairs kept at (t, seed) to ``path`` and its provenance beside it (NAME.EXT.provenance.json),
    shard by shard (memory stays flat); both files appear atomically. ``t`` None: every pair of the
    pool, matched or not, with its entry ids (`export --all-pairs`; the seed does not count). The
    format is the one the name's extension says (``file_format`` may repeat it; see ``format_of``).
    ``path`` may be a URI: the files are made in a local scratch directory, then uploaded, the
    provenance last. ``run_name``: the run as the user named it, for the provenance (the URI of a run
    whose local copy is ``root``). ``column_set`` None: the format's default (``column_set_for``);
    ``uid_column``: the pool's uid column, for the ``uid`` set (DataComp's subset files). ``epoch``: the
    pairs online balancing keeps in that epoch instead (curation.online; epoch 0 is the run's subset),
    computed from the index, so the seed needs no stored thresholds."""
    file_format = format_of(storage.name_of(str(path)), file_format)
    column_set = column_set_for(file_format, column_set)
    if t is None and column_set == "uid":
        raise CurationError(
            "--all-pairs writes every pair with its entry ids; a uid file holds kept uids only: give --t"
        )
    if storage.is_uri(path):
        with tempfile.TemporaryDirectory(prefix="export-") as scratch:
            made = write_manifest(
                root,
                Path(scratch) / storage.name_of(path),
                t,
                seed,
                file_format,
                column_set,
                progress,
                run_name,
                uid_column,
                epoch,
            )
            provenance = path.rsplit("/", 1)[0] + "/" + provenance_name(storage.name_of(path))
            storage.upload(made.path, path)
            storage.upload(made.provenance, provenance)
        return Export(path, provenance, made.rows)
    run = RunDir(root)
    manifest_writer = writer_for(file_format)
    if t is not None and not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    pairs = PairReader(run)
    shards = pairs.plan.shard_indices
    if t is not None and epoch is None and not run.has_thresholds(seed, pairs.plan):
        raise CurationError(
            f"no keep thresholds for seed {seed} in {root}; run `curation balance {root} --t {t:g} --seed {seed}` first"
        )
    read, names = _columns(pairs, column_set, uid_column)
    if t is None and ENTRY_IDS not in read:  # every pair comes with the entries it matched
        read, names = [*read, ENTRY_IDS], [*names, ENTRY_IDS]
    schema = pa.schema([pairs.schema.field(c).with_name(n) for c, n in zip(read, names)]) if shards else pa.schema([])
    rows = 0
    with atomic_file(path) as temporary:
        writer = manifest_writer(temporary, schema)
        try:
            if t is None:
                batches = every_batch(root, read)
            elif epoch is not None:
                batches = epoch_batches(root, seed, t, epoch, read)
            else:
                batches = kept_batches(root, seed, t, read)
            for done, (_, table) in enumerate(_read_ahead(batches), 1):
                if table is not None:
                    writer.write(table.rename_columns(names))
                    rows += table.num_rows
                if progress:
                    progress(done, len(shards))
        finally:
            writer.close()
    provenance_path = path.with_name(provenance_name(path.name))
    atomic_write_json(
        provenance_path,
        _provenance(
            run,
            None if t is None else Run(root).preview(seed),
            pairs.plan,
            path.name,
            rows,
            t,
            seed,
            file_format,
            column_set,
            run_name,
            epoch,
        ),
    )
    return Export(path, provenance_path, rows)


def _provenance(
    run: RunDir,
    preview: BalancePreview | WorldwidePreview | None,
    plan: Plan,
    name: str,
    rows: int,
    t: float | None,
    seed: int,
    file_format: str,
    column_set: str,
    run_name: str | None,
    epoch: int | None = None,
) -> dict:
    """What a manifest's provenance file says of it: what it holds and how it was made."""
    record = read_json(run.run_json) if run.run_json.exists() else {}
    # The run's rows, with kept and expected kept at this t and seed (run.json's are its last balance's).
    pool_rows = {
        k: v for k, v in record.get("rows", {}).items() if k not in ("kept", "expected_kept", "expected_kept_margin")
    }
    if t is not None:  # expected kept as run.json has it: the preview's estimate (exact in small runs)
        expected = preview.expected_size_at(t)
        pool_rows.update(
            kept=rows, expected_kept=round(expected.value, 3), expected_kept_margin=round(expected.margin, 3)
        )
    return {
        "file": name,
        "rows": rows,
        "pairs": "every pair, with its entry ids"
        if t is None
        else "kept at t" + (f" in epoch {epoch}" if epoch else ""),
        "t": t,
        "seed": None if t is None else seed,
        **({"epoch": epoch, "epoch_seed": epoch_seed(seed, epoch)} if epoch is not None else {}),
        "format": file_format,
        "columns": column_set,
        "metadata": plan.metadata.as_json(),
        "pool": {"spec": plan.pool, "rows": plan.rows, "files": [f["path"] for f in plan.files]},
        "pair_key": plan.pair_key,
        "pool_rows": pool_rows,
        "run_dir": run_name or str(run.root),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_manifest_name(t: float, seed: int) -> str:
    """The name of the curated manifest `run` and `balance --write-manifest` write: t as Python's repr."""
    return f"curated-t{float(t)!r}-seed{seed}.parquet"


def run_manifest(spec: str, t: float, seed: int, engine: Engine, progress: Progress | None = None) -> Export:
    """The curated manifest at (t, seed) in the run's manifests/: a folder NAME of Parquet parts, one
    per shard, written by the engine's workers (every pool column, then the pairs' keys and entry
    ids: what format 1 kept as curated/), and NAME.provenance.json beside it, written last: a
    provenance file means a whole manifest. A killed manifest resumes from the parts it wrote."""
    if t is None or not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    run = RunDir.open(spec)
    name = run_manifest_name(t, seed)
    folder, provenance_path = run.manifests / name, run.manifests / provenance_name(name)
    pairs = PairReader(run)
    if not run.has_thresholds(seed, pairs.plan):
        raise CurationError(
            f"no keep thresholds for seed {seed} in {spec}; run `curation balance {spec} --t {t:g} --seed {seed}` first"
        )
    where = f"{spec.rstrip('/')}/{run.manifests.name}/" if storage.is_uri(spec) else ""
    if run.fetch(provenance_path):  # written last: the manifest is whole already
        rows = int(read_json(provenance_path)["rows"])
    else:
        rows = _write_parts(run, pairs, spec, name, t, seed, engine, progress)
        run.fetch_tree(run.preview(seed))
        preview = preview_files.open_preview(run, seed)
        run.write_json(
            provenance_path, _provenance(run, preview, pairs.plan, name, rows, t, seed, "parquet", "all", spec)
        )
        run.discard(provenance_path)  # a run in a store keeps no copy of its manifests on this machine
    if where:
        return Export(where + name, where + provenance_path.name, rows)
    return Export(folder, provenance_path, rows)


def _write_parts(
    run: RunDir,
    pairs: PairReader,
    spec: str,
    name: str,
    t: float,
    seed: int,
    engine: Engine,
    progress: Progress | None,
) -> int:
    shards, done = pairs.plan.shard_indices, 0

    def landed(shard: int, rows: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(shards))

    config = stages.ManifestConfig(spec, name, float(t), seed, tuple(pairs.names))
    return sum(engine.map(stages.manifest_shard, shards, config, landed))


def _read_ahead(items: Iterator[Item]) -> Iterator[Item]:
    """Each next item made in a thread while the caller works on the current one: reading a shard's
    pairs and writing the previous shard's rows both run in Arrow with the GIL released, so they overlap."""
    end = object()
    with ThreadPoolExecutor(max_workers=1) as thread:
        pending = thread.submit(next, items, end)
        while (item := pending.result()) is not end:
            pending = thread.submit(next, items, end)
            yield item


def manifest_path(export_dir: Path, name: str, file_format: str) -> Path:
    """Where the dashboard's manifest NAME goes: a checked bare name under the export directory."""
    return export_dir / (check_name(name) + writer_for(file_format).suffix)


def export_manifest(
    query: RunQuery,
    export_dir: Path,
    name: str,
    t: float,
    seed: int,
    file_format: str = "parquet",
    column_set: str | None = None,
    uid_column: str = DEFAULT_UID_COLUMN,
) -> Export:
    """The dashboard's export: NAME under the export directory only."""
    path = manifest_path(export_dir, name, file_format)
    return write_manifest(query.root, path, t, seed, file_format, column_set, uid_column=uid_column)
