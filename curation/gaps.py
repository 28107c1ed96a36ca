"""Coverage gaps: the n-grams a pool's captions hold that no metadata entry covers (docs/design.md,
"Coverage gaps").

Two passes over the run's pairs, shard by shard on the engine's workers:

1. **Count.** Every caption's n-grams (``curation.ngrams``) are counted per pair, with how many of
   those pairs matched nothing, in ``metadata.spill.KeyCounter``s: the counters of
   ``curation-metadata count-wikipedia``, which hold a bounded number of keys and spill hash partitions
   to a scratch folder beyond it. The partitions are reduced one at a time (on the workers); the
   metadata's own entries are dropped there (an entry is no gap), and each keeps its top ``top``.
2. **Cover.** The chosen n-grams are made a metadata of their own and the unmatched captions matched
   against it with the run's own rule (the token matcher; MetaCLIP 2's matcher in a worldwide run). So
   "covered" means exactly "would match if added": per caption the best rank it holds gives how many
   unmatched pairs the top k would cover, for every k at once, and the first captions give examples
   (matched captions of the first shards for an n-gram that few unmatched captions hold).

Memory holds a shard's captions, ``max_rows`` counted keys per worker and the chosen n-grams.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import matchers, token_matcher
from curation.engines import Engine
from curation.memory import release_freed_memory
from curation.ngrams import GRAM_SCHEMA, KEY, LANGUAGE_MARK, PAIRS, UNMATCHED, count_grams
from curation.pairs import PairReader
from curation.plan import Plan
from curation.rundir import CAPTION_LANGUAGE, ENTRY_IDS, ENTRY_LANGUAGE, RunDir, atomic_write_table, read_parquet
from metadata.spill import KeyCounter, partition_ids, reduce_bounded
from studio_common import storage
from studio_common.errors import CurationError

DEFAULT_TOP = 1000
DEFAULT_MIN_COUNT = 2
DEFAULT_EXAMPLES = 3
RANKINGS = ("count", "unmatched")
# A partition is reduced whole up to this many times --max-rows spilled rows (a row is a key and two
# counts, some 50 bytes with Arrow's hash table): splitting it further rewrites every file once more.
REDUCE_ROWS = 4
MATCHED_EXAMPLE_SHARDS = 8  # shards read for examples among matched captions (most need the first)
GAPS_FOLDER = "gaps"  # under the run directory: where `curation gaps` writes by default, and the page looks
METADATA_KEY = b"curation.gaps"  # the Parquet key-value entry holding what the file describes
# Texts of one pair (--text-columns) are joined with a lone "." between them: spaced, it is a piece of
# its own that is no word, so no n-gram spans two texts, and the pair still counts each n-gram once.
TEXT_JOINER = "\n.\n"
OUTPUT_SCHEMA_FIELDS = [
    pa.field("rank", pa.int32()),
    pa.field("ngram", pa.string()),
    pa.field("words", pa.int8()),
    pa.field("count", pa.int64()),
    pa.field("unmatched", pa.int64()),
    pa.field("covered", pa.int64()),
    pa.field("examples", pa.list_(pa.string())),
]


@dataclass(frozen=True)
class GapsRequest:
    """One ``curation gaps``: what to count and how to choose."""

    run_dir: str
    sizes: tuple[int, ...] = (1, 2)
    top: int = DEFAULT_TOP
    min_count: int = DEFAULT_MIN_COUNT
    only_unmatched: bool = False
    rank_by: str = "count"
    stop_words: frozenset[str] = frozenset()
    stop_words_source: str = "default"
    language: str | None = None
    examples: int = DEFAULT_EXAMPLES
    partitions: int = 16
    max_rows: int = 2_000_000
    batch_rows: int = 100_000
    scratch: str | None = None

    def check(self) -> None:
        if not self.sizes or any(n < 1 or n > 4 for n in self.sizes):
            raise CurationError(f"--n takes n-gram sizes from 1 to 4, got {' '.join(map(str, self.sizes))}")
        if self.rank_by not in RANKINGS:
            raise CurationError(f"--rank-by is one of {', '.join(RANKINGS)}, got {self.rank_by}")
        if self.top < 1 or self.min_count < 1 or self.examples < 0:
            raise CurationError("--top and --min-count must be at least 1, --examples at least 0")


@dataclass(frozen=True)
class _Config:
    """What every worker needs (picklable)."""

    root: str
    request: GapsRequest
    scratch: str
    stamp: str = ""  # the run's plan and counts as the driver saw them: what the workers' caches key on
    chosen: tuple[str, ...] = ()  # pass 2: the chosen keys, best first
    languages: tuple[str, ...] = ()  # pass 2, worldwide: each chosen key's language


@dataclass
class _Counted:
    """A shard's first pass: its spill files per partition, and what it read."""

    files: list[list[str]]
    captions: int
    unmatched: int


@dataclass
class _Reduced:
    """A partition's totals: its best rows, and how many gaps it holds at all."""

    best: pa.Table
    gaps: int
    entries_seen: int


@dataclass
class _Covered:
    """A shard's second pass: per rank the unmatched captions whose best rank it is, per rank its
    unmatched captions, and its first examples."""

    best_rank: np.ndarray
    hits: np.ndarray
    examples: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gaps:
    """The result: the chosen n-grams (the output table) and what describes them."""

    table: pa.Table
    summary: dict


# --------------------------------------------------------------------------------------------------
# Reading a shard's captions
# --------------------------------------------------------------------------------------------------


def _text_columns(plan: Plan) -> list[str]:
    return list(plan.columns.texts) or [plan.columns.text]


def _captions(
    run: RunDir, plan: Plan, shard: int, request: GapsRequest, pairs: str = "all"
) -> tuple[pa.Array, np.ndarray, pa.Array | None]:
    """The shard's captions (a pair's texts joined), whether each pair matched nothing, and in a
    worldwide run each caption's language; restricted to one language, and to the ``pairs`` that are
    "unmatched" or "matched" (default: "all")."""
    texts = _text_columns(plan)
    columns = [*texts, ENTRY_IDS] + ([CAPTION_LANGUAGE] if plan.worldwide else [])
    table = PairReader(run, plan).table(shard, columns)
    unmatched = pc.equal(pc.list_value_length(table.column(ENTRY_IDS)), 0)
    unmatched = pc.fill_null(unmatched, True)
    keep = None
    if plan.worldwide:  # a caption with no language matches nothing, whatever the metadata holds
        keep = pc.is_valid(table.column(CAPTION_LANGUAGE))
    if request.language is not None:
        keep = pc.fill_null(pc.equal(table.column(CAPTION_LANGUAGE), request.language), False)
    if pairs != "all":
        which = unmatched if pairs == "unmatched" else pc.invert(unmatched)
        keep = which if keep is None else pc.and_(keep, which)
    if keep is not None:
        table = table.filter(keep)
        unmatched = pc.filter(unmatched, keep)
    if len(texts) == 1:
        caption = table.column(texts[0])
    else:
        caption = pc.binary_join_element_wise(
            *[pc.cast(table.column(name), pa.string()) for name in texts], TEXT_JOINER, null_handling="skip"
        )
    caption = caption.combine_chunks() if isinstance(caption, pa.ChunkedArray) else caption
    languages = table.column(CAPTION_LANGUAGE).combine_chunks() if plan.worldwide else None
    return caption, np.asarray(pc.fill_null(unmatched, True), dtype=bool), languages


@lru_cache(maxsize=4)
def _run(root: str, stamp: str) -> tuple[RunDir, Plan]:
    run = RunDir(Path(root))
    return run, run.plan()


def _stamp(run: RunDir) -> str:
    """When the run's plan and entry counts were written: a run matched again is read again."""
    return "-".join(str(path.stat().st_mtime_ns) for path in (run.plan_json, run.entry_counts))


# --------------------------------------------------------------------------------------------------
# Pass 1: count, then reduce partition by partition
# --------------------------------------------------------------------------------------------------


def count_shard(shard: int, config: _Config) -> _Counted:
    """Count the n-grams of one shard's captions; spill them all (the files outlive the worker)."""
    request = config.request
    run, plan = _run(config.root, config.stamp)
    which = "unmatched" if request.only_unmatched else "all"
    captions, unmatched, languages = _captions(run, plan, shard, request, which)
    counter = KeyCounter(
        Path(config.scratch) / f"shard-{shard:05d}", "grams", request.partitions, request.max_rows, GRAM_SCHEMA
    )
    for start in range(0, len(captions), request.batch_rows):
        stop = start + request.batch_rows
        counter.add(
            count_grams(
                captions[start:stop],
                unmatched[start:stop],
                request.sizes,
                request.stop_words,
                None if languages is None else languages[start:stop],
            )
        )
    counter.spill()
    return _Counted([[str(path) for path in files] for files in counter.files], len(captions), int(unmatched.sum()))


@lru_cache(maxsize=2)
def _entry_keys(root: str, stamp: str, partitions: int) -> tuple[pa.Array, np.ndarray]:
    """The metadata's entries as gap keys (worldwide: language, tab, entry) and their partitions."""
    table = read_parquet(RunDir(Path(root)).entry_counts)
    keys = table.column("entry")
    if ENTRY_LANGUAGE in table.column_names:
        keys = pc.binary_join_element_wise(table.column(ENTRY_LANGUAGE), keys, LANGUAGE_MARK)
    keys = keys.combine_chunks()
    return keys, partition_ids(keys, partitions)


def reduce_part(task: tuple[int, list[str]], config: _Config) -> _Reduced:
    """One partition's totals, less the metadata's entries and the rare n-grams; its best ``top``."""
    part, files = task
    request = config.request
    release_freed_memory()  # what counting freed: else this worker's peak is the two stages' added up
    keys, parts = _entry_keys(config.root, config.stamp, request.partitions)
    entries = keys.filter(pa.array(parts == part))
    best: list[pa.Table] = []
    gaps = seen = 0
    scratch = Path(config.scratch) / f"reduce-{part:04d}"
    budget = request.max_rows * REDUCE_ROWS
    for totals in reduce_bounded([Path(f) for f in files], budget, scratch, schema=GRAM_SCHEMA):
        is_entry = pc.is_in(totals.column(KEY), value_set=entries)
        seen += pc.sum(is_entry).as_py() or 0
        totals = totals.filter(pc.invert(is_entry))
        totals = totals.filter(pc.greater_equal(totals.column(_rank_column(request)), request.min_count))
        gaps += totals.num_rows
        best.append(_best(totals, request.top, _rank_column(request)))
    shutil.rmtree(scratch, ignore_errors=True)
    return _Reduced(
        _best(pa.concat_tables(best) if best else GRAM_SCHEMA.empty_table(), request.top, _rank_column(request)),
        gaps,
        seen,
    )


def _rank_column(request: GapsRequest) -> str:
    return PAIRS if request.rank_by == "count" else UNMATCHED


def _best(table: pa.Table, top: int, column: str) -> pa.Table:
    """The ``top`` rows with the largest ``column``, ties by the other count then by key: a total
    order, so the choice does not depend on partitions or workers."""
    if table.num_rows > top:
        values = table.column(column).to_numpy()
        floor = np.partition(values, table.num_rows - top)[table.num_rows - top]
        table = table.filter(pa.array(values >= floor))
    other = UNMATCHED if column == PAIRS else PAIRS
    ordered = table.sort_by([(column, "descending"), (other, "descending"), (KEY, "ascending")])
    return ordered.slice(0, top)


# --------------------------------------------------------------------------------------------------
# Pass 2: match the unmatched captions against the chosen n-grams
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _gap_matcher(chosen: tuple[str, ...], languages: tuple[str, ...]) -> matchers.Matcher:
    """The chosen n-grams as a metadata, matched by the run's own rule."""
    if languages:
        return matchers.WorldwideMatcher(list(chosen), list(languages))
    return matchers.TokenMatcher(token_matcher.build_tables(list(chosen)))


def cover_shard(shard: int, config: _Config) -> _Covered:
    """Which chosen n-grams each unmatched caption of the shard would match, as ranks."""
    run, plan = _run(config.root, config.stamp)
    captions, _, languages = _captions(run, plan, shard, config.request, "unmatched")
    ids, rows = _matches(config, captions, languages)
    ranks = len(config.chosen)
    firsts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]])) if len(rows) else rows
    covered = _Covered(np.bincount(ids[firsts], minlength=ranks), np.bincount(ids, minlength=ranks))
    covered.examples = _first_captions(captions, ids, rows, config.request.examples)
    return covered


def _matches(config: _Config, captions: pa.Array, languages: pa.Array | None) -> tuple[np.ndarray, np.ndarray]:
    """(rank, caption row) of every chosen n-gram each caption would match: by caption, ranks ascending."""
    found = _gap_matcher(config.chosen, config.languages).match_batch(captions, languages)
    lengths = pc.list_value_length(found).to_numpy(zero_copy_only=False)
    ids = found.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, np.repeat(np.arange(len(captions)), lengths)


def _first_captions(captions: pa.Array, ids: np.ndarray, rows: np.ndarray, wanted: int) -> dict[int, list[str]]:
    """Per rank, the first ``wanted`` captions (in pool order) that it matches."""
    if not wanted or not len(ids):
        return {}
    order = np.argsort(ids, kind="stable")  # by rank, then by row
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))
    ends = np.append(starts[1:], len(order))
    return {
        int(sorted_ids[start]): captions.take(pa.array(rows[order[start : min(end, start + wanted)]])).to_pylist()
        for start, end in zip(starts, ends)
    }


def matched_examples(shard: int, config: _Config) -> dict[int, list[str]]:
    """Examples among the shard's matched captions, for n-grams few unmatched captions hold."""
    run, plan = _run(config.root, config.stamp)
    captions, _, languages = _captions(run, plan, shard, config.request, "matched")
    ids, rows = _matches(config, captions, languages)
    return _first_captions(captions, ids, rows, config.request.examples)


# --------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------


Bar = Callable[[str, int], Callable[[int], None]]  # (what, total) -> advance that stage by a count


def find_gaps(request: GapsRequest, root: Path, engine: Engine, bar: Bar) -> Gaps:
    """Both passes over the run at ``root`` (a local directory or a local copy of one in a store).
    ``bar(what, total)`` gives a function that advances that stage's progress by a number of items."""
    request.check()
    started = time.monotonic()
    run = RunDir(root)
    plan = run.plan()
    if request.language is not None and not plan.worldwide:
        raise CurationError("--language is for worldwide runs (their metadata has languages); this run has none")
    if request.language is not None and request.language not in (plan.languages or ()):
        raise CurationError(
            f"the run's metadata has no language {request.language}; it has {', '.join(plan.languages or ())}"
        )
    shards = plan.shard_indices
    timings: dict[str, float] = {}
    counted, reduced = _count(request, root, shards, engine, bar, timings)
    parts = [r.best for r in reduced]
    best = _best(pa.concat_tables(parts) if parts else GRAM_SCHEMA.empty_table(), request.top, _rank_column(request))
    keys = best.column(KEY).to_pylist()
    languages: list[str] = []
    if plan.worldwide and keys:
        languages, keys = (list(column) for column in zip(*(key.split(LANGUAGE_MARK, 1) for key in keys)))
    chosen = _Config(str(root), request, "", _stamp(run), tuple(keys), tuple(languages))
    best_rank, hits, examples = _cover(chosen, shards, best.column(PAIRS).to_pylist(), engine, bar, timings)
    columns = {
        "rank": pa.array(np.arange(1, len(keys) + 1), pa.int32()),
        "ngram": pa.array(keys, pa.string()),
        **({"language": pa.array(languages, pa.string())} if plan.worldwide else {}),
        "words": pa.array([key.count(" ") + 1 for key in keys], pa.int8()),
        "count": best.column(PAIRS),
        "unmatched": best.column(UNMATCHED),
        "covered": pa.array(np.cumsum(best_rank), pa.int64()),
        "examples": pa.array([examples.get(rank, []) for rank in range(len(keys))], pa.list_(pa.string())),
    }
    captions = sum(c.captions for c in counted)
    summary = {
        "run_dir": request.run_dir,
        "n": list(request.sizes),
        "top": request.top,
        "min_count": request.min_count,
        "only_unmatched": request.only_unmatched,
        "rank_by": request.rank_by,
        "stop_words": request.stop_words_source,
        "language": request.language,
        "pairs_read": captions,
        "unmatched_pairs_read": sum(c.unmatched for c in counted),
        "gaps": sum(r.gaps for r in reduced),
        "entries_seen": sum(r.entries_seen for r in reduced),
        "chosen": len(keys),
        "unmatched_covered": int(best_rank.sum()),
        "would_match": hits.tolist() == best.column(UNMATCHED).to_pylist(),
        "seconds": round(time.monotonic() - started, 3),
        "timings": {name: round(value, 3) for name, value in timings.items()},
    }
    if not plan.worldwide and not summary["would_match"]:
        raise CurationError(
            "internal check failed: the chosen n-grams do not match the unmatched captions they were counted in"
        )
    return Gaps(pa.table(columns), summary)


def _add_matched_examples(
    examples: dict[int, list[str]], config: _Config, shards: Sequence[int], holders: Sequence[int]
) -> None:
    """Examples for the n-grams that fewer unmatched captions hold than examples are wanted: matched
    captions of the first ``MATCHED_EXAMPLE_SHARDS`` shards, read in the driver until each n-gram has
    as many as it can have (its pairs, ``holders``, or the number wanted)."""
    wanted = config.request.examples
    for shard in shards[:MATCHED_EXAMPLE_SHARDS]:
        if all(len(examples.get(rank, [])) >= min(wanted, n) for rank, n in enumerate(holders)):
            return
        for rank, texts in matched_examples(shard, config).items():
            have = examples.setdefault(rank, [])
            have.extend(texts[: wanted - len(have)])


def _count(
    request: GapsRequest, root: Path, shards: list[int], engine: Engine, bar: Bar, timings: dict[str, float]
) -> tuple[list[_Counted], list[_Reduced]]:
    """Pass 1: count every shard, then reduce every partition; the spilled files go with it."""
    scratch = Path(tempfile.mkdtemp(prefix="gaps-", dir=request.scratch))
    try:
        config = _Config(str(root), request, str(scratch), _stamp(RunDir(root)))
        clock = time.monotonic()
        step = bar("count n-grams", len(shards))
        counted = engine.map(count_shard, shards, config, lambda _, __: step(1))
        tasks = [(part, [f for shard in counted for f in shard.files[part]]) for part in range(request.partitions)]
        tasks = [task for task in tasks if task[1]]
        timings["count_s"], clock = time.monotonic() - clock, time.monotonic()
        step = bar("reduce", len(tasks))
        reduced = engine.map(reduce_part, tasks, config, lambda _, __: step(1))
        timings["reduce_s"] = time.monotonic() - clock
        return counted, reduced
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cover(
    chosen: _Config, shards: list[int], holders: list[int], engine: Engine, bar: Bar, timings: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, dict[int, list[str]]]:
    """Pass 2: per rank, the unmatched captions whose best rank it is and those it matches; examples."""
    ranks, wanted = len(chosen.chosen), chosen.request.examples
    best_rank, hits = np.zeros(ranks, np.int64), np.zeros(ranks, np.int64)
    examples: dict[int, list[str]] = {}
    if not ranks:
        return best_rank, hits, examples
    clock = time.monotonic()
    step = bar("cover", len(shards))
    for covered in engine.map(cover_shard, shards, chosen, lambda _, __: step(1)):
        best_rank += covered.best_rank
        hits += covered.hits
        for rank, texts in covered.examples.items():
            have = examples.setdefault(rank, [])
            have.extend(texts[: wanted - len(have)])
    timings["cover_s"], clock = time.monotonic() - clock, time.monotonic()
    if wanted:
        _add_matched_examples(examples, chosen, shards, holders)
        timings["examples_s"] = time.monotonic() - clock
    return best_rank, hits, examples


def with_summary(gaps: Gaps) -> pa.Table:
    """The table with its summary in the Parquet file's key-value metadata."""
    return gaps.table.replace_schema_metadata({METADATA_KEY: json.dumps(gaps.summary).encode()})


def read_gaps(path: str | Path) -> Gaps:
    """A gaps file as ``curation gaps`` wrote it, or a one-line error."""
    try:
        table = pq.read_table(storage.open_input(str(path)) if storage.is_uri(str(path)) else path)
    except (OSError, pa.ArrowException) as error:
        raise CurationError(f"cannot read gaps file {path}: {storage.first_line(error)}") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise CurationError(f"{path} is not a file of `curation gaps` (no {METADATA_KEY.decode()} metadata)")
    return Gaps(table.replace_schema_metadata(None), json.loads(raw))


def write_gaps(gaps: Gaps, target: str | Path) -> str:
    """The table to a local path (atomically) or a URI (made locally, uploaded whole)."""
    table = with_summary(gaps)
    if storage.is_uri(str(target)):
        with tempfile.TemporaryDirectory(prefix="gaps-") as scratch:
            local = Path(scratch) / storage.name_of(str(target))
            pq.write_table(table, local)
            storage.upload(local, str(target))
        return str(target)
    atomic_write_table(Path(target), table)
    return str(target)


def extra_entries(rows: pa.Table) -> str:
    """The n-grams of ``rows`` (a gaps table, or the rows of it a user chose) one per line, as
    ``curation-metadata build --extra`` reads them: one language's list, so rows of several are refused."""
    if "language" in rows.column_names and len(set(rows.column("language").to_pylist())) > 1:
        raise CurationError(
            "these gaps hold several languages; an extra-entries file is one language's: run gaps with --language CODE"
        )
    chosen = rows.column("ngram").to_pylist()
    bad = [ngram for ngram in chosen if "\n" in ngram or "\r" in ngram or not ngram.strip()]
    if bad:
        raise CurationError(f"{bad[0]!r} cannot be an entry line")
    return "".join(f"{ngram}\n" for ngram in dict.fromkeys(chosen))


def gaps_lines(gaps: Gaps, shown: int = 15) -> list[str]:
    """What the terminal shows: what was read, then the best n-grams."""
    summary, table = gaps.summary, gaps.table
    unmatched = summary["unmatched_pairs_read"]
    covered = summary["unmatched_covered"]
    lines = [
        f"read {summary['pairs_read']:,} pairs ({unmatched:,} unmatched); {summary['gaps']:,} n-grams held by at "
        f"least {summary['min_count']:,} pairs are not entries ({summary['entries_seen']:,} that are were left out)",
        f"the {summary['chosen']:,} kept would match {covered:,} of the unmatched pairs "
        f"({covered / max(unmatched, 1):.1%}) if added",
    ]
    if not table.num_rows:
        return lines
    lines.append(f"{'rank':>5}  {'pairs':>10}  {'unmatched':>10}  {'covered':>10}  n-gram")
    language = table.column("language").to_pylist() if "language" in table.column_names else None
    for row in range(min(shown, table.num_rows)):
        ngram = table.column("ngram")[row].as_py()
        if language is not None:
            ngram = f"{ngram}  [{language[row]}]"
        lines.append(
            f"{row + 1:>5}  {table.column('count')[row].as_py():>10,}  {table.column('unmatched')[row].as_py():>10,}  "
            f"{table.column('covered')[row].as_py():>10,}  {ngram}"
        )
    return lines
