"""One function per stage over one shard. A stage gets a shard description and a frozen config, never
live objects, so an engine may run it in this process, another process or another machine.

Each stage skips work whose output is already complete, which is what makes a killed run resumable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation import balancing, counting, keys, matchers, mirror, worldwide
from curation.keep_rule import KeepAt
from curation.pool import Shard, iter_shard_batches, open_parquet
from curation.preview_files import PieceBuilder, has_piece
from curation.rundir import (
    CAPTION_LANGUAGE,
    ENTRY_IDS,
    PAIR_KEY,
    PICKED_COLUMN,
    PICKED_TEXT,
    THRESHOLD,
    RunDir,
    atomic_parquet_writer,
    atomic_write_json,
    atomic_write_table,
    part_name,
    read_json,
)
from curation.shard_stats import RowStats, ShardStats
from metadata import fingerprint, load_metadata
from studio_common.errors import CurationError


@dataclass(frozen=True)
class MatchConfig:
    root: str  # the run directory as named: a local path, or a URI (each process works on its own copy)
    metadata_path: str
    metadata_fingerprint: str
    drop_invalid_entries: bool
    text_column: str
    id_column: str | None
    url_column: str | None
    batch_rows: int
    matcher: str = matchers.DEFAULT_MATCHER
    # Worldwide runs (the metadata has languages): where captions' languages come from, a pool column
    # or (None) language identification, and the identifier-to-metadata code overrides.
    language_column: str | None = None
    language_overrides: tuple[tuple[str, str], ...] = ()
    # Several texts per image (--text-columns): each is matched and counted, one matched text per
    # image is picked by a hash of its pair key, and the image is kept by that text's entries.
    text_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class BalanceConfig:
    root: str
    seed: int
    keep: KeepAt  # which pairs are kept: at the run's t, or at each language's (curation/keep_rule.py)
    destination: str  # the folder of the curated parts, relative to the run directory
    n_entries: int
    sample_rate: float | None = None  # make the shard's preview piece with this sample rate (None: no)
    languages: tuple[str, ...] | None = None  # worldwide runs: the metadata's languages, sorted (preview pieces)


@dataclass(frozen=True)
class PreviewConfig:
    root: str
    seed: int
    sample_rate: float
    languages: tuple[str, ...] | None = None  # worldwide runs: the metadata's languages, sorted


# Per-process caches: an engine worker prepares its matcher once and reuses it for every shard.
_MATCHERS: dict[tuple[str, str, str], tuple[int, matchers.Matcher]] = {}
_COUNTS: dict[tuple[str, int, int], np.ndarray] = {}


def shard_matcher(config: MatchConfig) -> tuple[int, matchers.Matcher]:
    """(number of entries, matcher) for this process: the token tables mapped from the run
    directory, or an Aho-Corasick automaton built from the metadata file."""
    cache_key = (config.root, config.matcher, config.metadata_fingerprint)
    if cache_key not in _MATCHERS:
        _MATCHERS.clear()
        if config.matcher == "tokens":
            run = mirror.open_run(config.root)
            mirror.fetch_tree(run, run.matcher_tables)
            tables = matchers.load_tables(run.root, config.metadata_fingerprint)
            _MATCHERS[cache_key] = (int(tables.n_entries[0]), matchers.TokenMatcher(tables))
        else:
            metadata = load_metadata(config.metadata_path, drop_invalid=config.drop_invalid_entries)
            if fingerprint(metadata.entries, metadata.languages) != config.metadata_fingerprint:
                raise CurationError(
                    f"metadata {config.metadata_path} changed since this run started; "
                    "restore it or start a new run in another directory"
                )
            matcher = (
                matchers.AhoCorasickMatcher(metadata.entries)
                if config.matcher != matchers.WORLDWIDE
                else matchers.WorldwideMatcher(metadata.entries, metadata.languages)
            )
            _MATCHERS[cache_key] = (len(metadata.entries), matcher)
    return _MATCHERS[cache_key]


def entry_counts(root: str) -> np.ndarray:
    """The run's global counts, read once per process (and again only if the file changes)."""
    run = mirror.open_run(root)
    path = run.entry_counts
    mirror.fetch(run, path)
    stat = path.stat()
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if cache_key not in _COUNTS:
        _COUNTS.clear()
        _COUNTS[cache_key] = pq.read_table(path, columns=["count"]).column("count").to_numpy()
    return _COUNTS[cache_key]


def repeating_columns(batch: pa.RecordBatch) -> list[str]:
    """Flat columns whose values repeat in this batch: the ones worth Parquet dictionary pages.

    Trying a dictionary on unique values (ids, urls, captions, pair keys) costs time for nothing, a
    seventh of the write on alt-text pools; on the entry id lists it saves 4% of the file for as much
    time, so nested columns go without.
    """
    return [
        name
        for name, column in zip(batch.schema.names, batch.columns)
        if not pa.types.is_nested(column.type) and pc.count_distinct(column).as_py() * 2 <= len(column)
    ]


def write_part(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Stream batches into one Parquet part that appears whole; encodings chosen on the first batch."""
    batches = iter(batches)
    first = next(batches, None)
    options = {"use_dictionary": repeating_columns(first)} if first is not None and len(first) else {}
    with atomic_parquet_writer(path, schema, **options) as writer:
        for batch in chain([first] if first is not None else [], batches):
            writer.write_batch(batch)


def annotated_schema(pool_schema: pa.Schema, worldwide: bool = False, several_texts: bool = False) -> pa.Schema:
    schema = pool_schema.append(pa.field(ENTRY_IDS, pa.list_(pa.int32()))).append(pa.field(PAIR_KEY, pa.uint64()))
    if worldwide:
        schema = schema.append(pa.field(CAPTION_LANGUAGE, pa.string()))
    if several_texts:
        schema = schema.append(pa.field(PICKED_TEXT, pa.string())).append(pa.field(PICKED_COLUMN, pa.string()))
    return schema


PICK_SALT = 0x5049434B  # makes the text picks independent of the keep draws and the preview's sample


def picked_texts(matched: np.ndarray, pair_keys: np.ndarray) -> np.ndarray:
    """Which text each image is kept by: among its matched texts (``matched``: rows x texts, bool),
    the one at position splitmix64(key XOR salt) mod their number, in column order; -1 when none
    matched. Fixed per pair, so the subsets stay nested as t grows."""
    n_matched = matched.sum(axis=1)
    draw = balancing.splitmix64(np.asarray(pair_keys, dtype=np.uint64) ^ np.uint64(PICK_SALT))
    position = (draw % np.maximum(n_matched, 1).astype(np.uint64)).astype(np.int64)
    rank = np.cumsum(matched, axis=1) - 1  # the position of each matched text among its row's matched ones
    hit = matched & (rank == position[:, None])
    return np.where(n_matched > 0, hit.argmax(axis=1), -1)


def caption_languages(
    batch: pa.RecordBatch, texts: pa.Array, config: MatchConfig, available: frozenset[str]
) -> pa.Array:
    """The metadata language each caption is matched in: its pool column's code, or the identified
    one, mapped to the metadata's codes (``other``, or null when the metadata has no such language)."""
    from curation import languages

    if config.language_column is not None:
        codes = pc.cast(batch.column(config.language_column), pa.string()).to_pylist()
    else:
        codes = languages.identify(texts.to_pylist())
    overrides = dict(config.language_overrides)
    mapped = {code: languages.metadata_language(code or "", available, overrides) for code in set(codes)}
    return pa.array([mapped[code] for code in codes], type=pa.string())


def _pair_keys(batch: pa.RecordBatch, texts: pa.Array, config: MatchConfig) -> np.ndarray:
    if config.id_column is not None:
        key_texts = keys.id_key_texts(batch.column(config.id_column), config.id_column)
    else:
        urls = batch.column(config.url_column) if config.url_column else None
        key_texts = keys.content_key_texts(urls, texts)
    return keys.hash_keys(key_texts)


@dataclass
class _MatchTally:
    """What one shard's match reports, gathered while its batches stream past."""

    counts: np.ndarray
    stats: RowStats = RowStats()


def _batch_stats(texts: pa.Array, entry_ids: pa.Array) -> RowStats:
    sizes = pc.list_value_length(entry_ids)
    empty = int(pc.sum(pc.or_kleene(pc.is_null(texts), pc.equal(texts, ""))).as_py() or 0) if len(texts) else 0
    matched = int(pc.sum(pc.greater(sizes, 0)).as_py() or 0)
    return RowStats(
        rows=len(texts),
        matched=matched,
        unmatched=len(texts) - matched - empty,
        null_or_empty_text=empty,
        matches=int(pc.sum(sizes).as_py() or 0),
    )


def _languages(
    batch: pa.RecordBatch, texts: pa.Array, config: MatchConfig, matcher: matchers.Matcher
) -> pa.Array | None:
    """Each caption's language when the matcher matches per language, else None."""
    return None if matcher.languages is None else caption_languages(batch, texts, config, matcher.languages)


def _annotated_batches(
    shard: Shard, config: MatchConfig, matcher: matchers.Matcher, schema: pa.Schema, tally: _MatchTally
) -> Iterator[pa.RecordBatch]:
    """The shard's batches with entry ids and pair keys; row accounting and counts added as they pass."""
    for batch in iter_shard_batches(shard, config.batch_rows):
        if config.text_columns:
            yield _several_texts_batch(batch, config, matcher, schema, tally)
            continue
        texts = pc.cast(batch.column(config.text_column), pa.string())
        languages = _languages(batch, texts, config, matcher)
        entry_ids = matcher.match_batch(texts, languages)
        extra = [] if languages is None else [languages]
        pair_keys = _pair_keys(batch, texts, config)
        tally.stats += _batch_stats(texts, entry_ids)
        tally.counts += counting.count_entries(entry_ids, len(tally.counts))
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, entry_ids, pa.array(pair_keys, type=pa.uint64()), *extra], schema=schema
        )


def _several_texts_batch(
    batch: pa.RecordBatch, config: MatchConfig, matcher: matchers.Matcher, schema: pa.Schema, tally: _MatchTally
) -> pa.RecordBatch:
    """One batch of images with several texts each: every text matched (in its own language) and
    counted; the image annotated with its picked text's entries, language, text and column."""
    columns = [pc.cast(batch.column(name), pa.string()) for name in config.text_columns]
    found, languages = [], []
    for texts in columns:
        languages.append(_languages(batch, texts, config, matcher))
        found.append(matcher.match_batch(texts, languages[-1]))
        tally.counts += counting.count_entries(found[-1], len(tally.counts))
    pair_keys = _pair_keys(batch, columns[0], config)
    lengths = np.stack([pc.list_value_length(ids).to_numpy(zero_copy_only=False) for ids in found], axis=1)
    picks = picked_texts(lengths > 0, pair_keys)
    chosen = np.maximum(picks, 0)  # an image with no matched text: its first text's row (empty lists)

    def pick(arrays: list[pa.Array]) -> pa.Array:
        return pa.concat_arrays(arrays).take(pa.array(np.arange(len(batch)) + len(batch) * chosen, type=pa.int64()))

    entry_ids = pick(found)
    blank = np.all([pc.fill_null(pc.equal(t, ""), True).to_numpy(zero_copy_only=False) for t in columns], axis=0)
    matched = int((picks >= 0).sum())
    tally.stats += RowStats(
        rows=len(batch),
        matched=matched,
        null_or_empty_text=int(blank.sum()),
        unmatched=len(batch) - matched - int(blank.sum()),
        matches=int(lengths.sum()),
    )
    names = pa.array(np.asarray(config.text_columns, dtype=object)[chosen], type=pa.string())
    extra = [] if matcher.languages is None else [pick(languages)]
    return pa.RecordBatch.from_arrays(
        [
            *batch.columns,
            entry_ids,
            pa.array(pair_keys, type=pa.uint64()),
            *extra,
            pc.if_else(pa.array(picks >= 0), pick(columns), pa.nulls(len(batch), pa.string())),
            pc.if_else(pa.array(picks >= 0), names, pa.nulls(len(batch), pa.string())),
        ],
        schema=schema,
    )


def read_marker(path: Path) -> ShardStats:
    """A matched shard's stats from its marker; a marker that is not one is refused in one line."""
    try:
        return ShardStats.from_json(read_json(path))
    except (KeyError, TypeError, ValueError):
        raise CurationError(f"{path} is not a shard marker; remove it and run the match again") from None


def match_shard(shard: Shard, config: MatchConfig) -> ShardStats:
    """Annotate one shard with entry ids and pair keys, and count its matches per entry."""
    run = mirror.open_run(config.root)
    marker = run.shard_marker(shard.index)
    if mirror.fetch(run, marker):
        return read_marker(marker)
    n_entries, matcher = shard_matcher(config)
    schema = annotated_schema(
        open_parquet(shard.path).schema_arrow, config.matcher == matchers.WORLDWIDE, bool(config.text_columns)
    )
    tally = _MatchTally(counts=np.zeros(n_entries, dtype=np.int64))
    write_part(run.annotated_part(shard.index), schema, _annotated_batches(shard, config, matcher, schema, tally))
    if tally.stats.rows != shard.rows:
        raise CurationError(f"{shard.path} yielded {tally.stats.rows} rows where its footer says {shard.rows}")
    nonzero = np.flatnonzero(tally.counts)
    atomic_write_table(
        run.shard_counts(shard.index),
        pa.table({"entry_id": pa.array(nonzero.astype(np.int32)), "count": pa.array(tally.counts[nonzero])}),
    )
    stats = ShardStats(shard.index, shard.path, config.matcher, tally.stats)
    atomic_write_json(marker, stats.as_json())
    mirror.publish(run, run.annotated_part(shard.index), keep_copy=False)
    mirror.publish(run, run.shard_counts(shard.index))
    mirror.publish(run, marker)  # last: it says the shard is done
    return stats


def shard_counts(run: RunDir, shard: int, n_entries: int) -> np.ndarray:
    """One shard's dense counts, from its sparse file (for a run in a store: the local copy, made
    current by the caller with one listing of shards/)."""
    table = pq.read_table(run.shard_counts(shard))
    counts = np.zeros(n_entries, dtype=np.int64)
    counts[table.column("entry_id").to_numpy()] = table.column("count").to_numpy()
    return counts


def read_thresholds(root: str, seed: int, shard: int) -> np.ndarray:
    run = mirror.open_run(root)
    path = run.threshold_part(seed, shard)
    mirror.fetch(run, path)
    return pq.read_table(path, columns=[THRESHOLD]).column(THRESHOLD).to_numpy()


BALANCE_BATCH_ROWS = 65_536


@dataclass
class _BalanceTally:
    """What one shard's balance reports, gathered while its batches stream past."""

    kept_counts: np.ndarray
    kept: int = 0
    expected: float = 0.0
    thresholds: list[np.ndarray] = field(default_factory=list)  # computed here (first time for the seed)
    pair_keys: list[np.ndarray] = field(default_factory=list)
    piece: PieceBuilder | None = None  # the shard's preview piece, when one is wanted
    languages: dict[str, list] = field(default_factory=dict)  # worldwide: [pairs, matched, kept, expected]


def _kept_batches(
    batches: Iterable[pa.RecordBatch],
    stored: np.ndarray | None,
    counts: np.ndarray,
    config: BalanceConfig,
    tally: _BalanceTally,
) -> Iterator[pa.RecordBatch]:
    """The rows kept at t of each annotated batch; thresholds from ``stored`` or computed."""
    start = 0
    for batch in batches:
        entry_ids = batch.column(ENTRY_IDS)
        if stored is None:
            pair_keys = batch.column(PAIR_KEY).to_numpy()
            thresholds = balancing.keep_thresholds(entry_ids, pair_keys, counts, config.seed)
            tally.thresholds.append(thresholds)
            tally.pair_keys.append(pair_keys)
        else:
            thresholds = stored[start : start + len(batch)]
        start += len(batch)
        languages = batch.column(CAPTION_LANGUAGE) if config.keep.worldwide else None
        t = config.keep.pair_t(languages)
        if tally.piece is not None:
            tally.piece.add(entry_ids, batch.column(PAIR_KEY).to_numpy(), thresholds, languages)
        keep = config.keep.keeps(thresholds, t)
        tally.kept += int(keep.sum())
        tally.kept_counts += balancing.balanced_counts(entry_ids, thresholds, t, config.n_entries)
        expected = balancing.keep_probabilities(entry_ids, counts, t)
        tally.expected += float(expected.sum())
        if languages is not None:
            worldwide.tally_languages(tally.languages, languages, entry_ids, keep, expected)
        if keep.any():
            yield batch.filter(pa.array(keep))


def balance_shard(shard: int, config: BalanceConfig) -> dict:
    """One annotated shard at t: its keep thresholds (computed once per seed), the rows kept at t, and
    the shard's kept and expected sizes and kept matches per entry, all from one read of the shard.

    Thresholds and kept rows are separate files, each skipped when already complete, so a killed
    balance resumes; when both exist only the entry lists are read again, for the sizes.
    """
    run = mirror.open_run(config.root)
    counts = entry_counts(config.root)
    thresholds_path = run.threshold_part(config.seed, shard)
    stored = read_thresholds(config.root, config.seed, shard) if mirror.fetch(run, thresholds_path) else None
    destination = run.root / config.destination / part_name(shard)
    source = open_parquet(mirror.readable(run, run.annotated_part(shard)))
    tally = _BalanceTally(kept_counts=np.zeros(config.n_entries, dtype=np.int64))
    piece_path = run.preview_piece(config.seed, shard)
    if config.sample_rate is not None and not (
        mirror.fetch(run, piece_path) and has_piece(piece_path, config.sample_rate)
    ):
        tally.piece = PieceBuilder(config.seed, config.sample_rate, config.languages)
    if mirror.has(run, destination):
        wanted = [ENTRY_IDS, PAIR_KEY] + ([CAPTION_LANGUAGE] if config.keep.worldwide else [])
        batches = source.iter_batches(batch_size=BALANCE_BATCH_ROWS, columns=wanted)
        for _ in _kept_batches(batches, stored, counts, config, tally):
            pass  # the kept rows are on disk already: only the sizes are wanted
    else:
        batches = source.iter_batches(batch_size=BALANCE_BATCH_ROWS)
        write_part(destination, source.schema_arrow, _kept_batches(batches, stored, counts, config, tally))
        mirror.publish(run, destination, keep_copy=False)
    if stored is None:
        atomic_write_table(
            thresholds_path,
            pa.table(
                {
                    PAIR_KEY: pa.array(
                        np.concatenate(tally.pair_keys) if tally.pair_keys else np.zeros(0, np.uint64), type=pa.uint64()
                    ),
                    THRESHOLD: pa.array(
                        np.concatenate(tally.thresholds) if tally.thresholds else np.zeros(0), type=pa.float64()
                    ),
                }
            ),
            use_dictionary=False,
        )  # both columns are (nearly) unique: dictionary pages only add bytes
        mirror.publish(run, thresholds_path, keep_copy=False)
    mirror.discard(run, thresholds_path)
    if tally.piece is not None:
        tally.piece.write(piece_path)
        mirror.publish(run, piece_path, keep_copy=False)
    mirror.discard(run, piece_path)
    nonzero = np.flatnonzero(tally.kept_counts)
    return {
        "shard": shard,
        "kept": tally.kept,
        "expected": tally.expected,
        "languages": tally.languages,
        "kept_entry_ids": nonzero,
        "kept_entry_counts": tally.kept_counts[nonzero],
    }


def preview_shard(shard: int, config: PreviewConfig) -> int:
    """One shard's preview piece, from its entry lists and stored thresholds (runs made before the
    balance stage made pieces, or a preview rebuilt with another sample size)."""
    run = mirror.open_run(config.root)
    path = run.preview_piece(config.seed, shard)
    if mirror.fetch(run, path) and has_piece(path, config.sample_rate):
        mirror.discard(run, path)
        return shard
    stored = read_thresholds(config.root, config.seed, shard)
    mirror.discard(run, run.threshold_part(config.seed, shard))
    builder = PieceBuilder(config.seed, config.sample_rate, config.languages)
    start = 0
    part = open_parquet(mirror.readable(run, run.annotated_part(shard)))
    columns = [ENTRY_IDS, PAIR_KEY] + ([CAPTION_LANGUAGE] if config.languages else [])
    for batch in part.iter_batches(batch_size=BALANCE_BATCH_ROWS, columns=columns):
        builder.add(
            batch.column(ENTRY_IDS),
            batch.column(PAIR_KEY).to_numpy(),
            stored[start : start + len(batch)],
            batch.column(CAPTION_LANGUAGE) if config.languages else None,
        )
        start += len(batch)
    builder.write(path)
    mirror.publish(run, path, keep_copy=False)
    return shard
