"""One function per stage over one shard. A stage gets a shard description and a frozen config, never
live objects, so an engine may run it in this process, another process or another machine.

Each stage skips work whose output is already complete, which is what makes a killed run resumable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import balancing, counting, keys, matchers
from curation.keep_rule import KeepAt, KeepRule
from curation.pairs import PairReader, index_schema
from curation.pool import Shard, iter_shard_batches, open_parquet
from curation.preview_files import PieceBuilder, has_piece
from curation.rundir import (
    CAPTION_LANGUAGE,
    ENTRY_IDS,
    PAIR_KEY,
    THRESHOLD,
    RunDir,
    atomic_parquet_writer,
    numbers,
    read_json,
    read_parquet,
)
from curation.shard_stats import LanguageDecisions, RowStats, ShardStats
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
    # or (None) the identifier named, and the identifier-to-metadata code overrides.
    language_column: str | None = None
    language_identifier: str | None = None
    language_overrides: tuple[tuple[str, str], ...] = ()
    # Several texts per image (--text-columns): each is matched and counted, one matched text per
    # image is picked by a hash of its pair key, and the image is kept by that text's entries.
    text_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManifestConfig:
    """The curated manifest folder manifests/NAME/ at (t, seed): one part per shard, the pairs kept
    with the asked columns (each pair at its language's t in a worldwide run, by the run's record)."""

    root: str
    name: str
    t: float
    seed: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ThresholdConfig:
    """A seed's keep thresholds and (``sample_rate`` not None) the shards' pieces of its preview."""

    root: str
    seed: int
    sample_rate: float | None = None
    languages: tuple[str, ...] | None = None  # worldwide runs: the metadata's languages, sorted (preview pieces)


# Per-process caches: an engine worker prepares its matcher once and reuses it for every shard.
_MATCHERS: dict[tuple[str, str, str], tuple[int, matchers.Matcher]] = {}
_COUNTS: dict[tuple[str, int, int], np.ndarray] = {}
_RULES: dict[tuple, tuple[PairReader, KeepAt]] = {}


def shard_matcher(config: MatchConfig) -> tuple[int, matchers.Matcher]:
    """(number of entries, matcher) for this process: the token tables mapped from the run
    directory, or an Aho-Corasick automaton built from the metadata file."""
    cache_key = (config.root, config.matcher, config.metadata_fingerprint)
    if cache_key not in _MATCHERS:
        _MATCHERS.clear()
        if config.matcher == "tokens":
            run = RunDir.open(config.root)
            run.fetch_tree(run.matcher_tables)
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
    run = RunDir.open(root)
    path = run.entry_counts
    run.fetch(path)
    stat = path.stat()
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if cache_key not in _COUNTS:
        _COUNTS.clear()
        _COUNTS[cache_key] = numbers(read_parquet(path, columns=["count"]).column("count"))
    return _COUNTS[cache_key]


def repeating_columns(batch: pa.RecordBatch | pa.Table) -> list[str]:
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


# Parts (index, manifests) are compressed with zstd: on alt-text columns and entry id lists it costs
# the CPU of pyarrow's default, snappy, and its files are a quarter smaller (measured on a realistic
# pool: 130 against 177 bytes a row for a manifest's every column).
PART_COMPRESSION = "zstd"


def write_part(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Stream batches into one Parquet part that appears whole; encodings chosen on the first batch."""
    batches = iter(batches)
    first = next(batches, None)
    options = {"use_dictionary": repeating_columns(first)} if first is not None and len(first) else {}
    with atomic_parquet_writer(path, schema, compression=PART_COMPRESSION, **options) as writer:
        for batch in chain([first] if first is not None else [], batches):
            writer.write_batch(batch)


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
) -> tuple[pa.Array, LanguageDecisions]:
    """The metadata language each caption is matched in (its pool column's code, or the identified
    one, mapped to the metadata's codes: ``other``, or null when the metadata has no such language),
    and how each was decided."""
    from curation import languages

    if config.language_column is not None:
        codes = [code or "" for code in pc.cast(batch.column(config.language_column), pa.string()).to_pylist()]
        sources: Iterable[str] = repeat(languages.FROM_COLUMN)
    else:
        identified = languages.identify_decided(
            texts.to_pylist(), config.language_identifier or languages.DEFAULT_IDENTIFIER
        )
        codes, sources = identified.codes, identified.sources
    overrides = dict(config.language_overrides)
    resolved = {code: languages.resolve(code, available, overrides) for code in set(codes)}
    decisions = LanguageDecisions.tally((source, code, *resolved[code]) for source, code in zip(sources, codes))
    return pa.array([resolved[code][0] for code in codes], type=pa.string()), decisions


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
    languages: LanguageDecisions | None = None  # worldwide runs: how captions got their languages


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
    batch: pa.RecordBatch, texts: pa.Array, config: MatchConfig, matcher: matchers.Matcher, tally: _MatchTally
) -> pa.Array | None:
    """Each caption's language when the matcher matches per language (how each was decided added to
    the tally), else None."""
    if matcher.languages is None:
        return None
    found, decisions = caption_languages(batch, texts, config, matcher.languages)
    tally.languages = decisions if tally.languages is None else tally.languages + decisions
    return found


def _read_columns(config: MatchConfig) -> list[str]:
    """The pool columns matching reads: texts, the key's columns, the language's; never the others."""
    texts = list(config.text_columns) or [config.text_column]
    others = [config.id_column] if config.id_column is not None else [config.url_column]
    return [c for c in dict.fromkeys([*texts, *others, config.language_column]) if c is not None]


def _index_batches(
    shard: Shard, config: MatchConfig, matcher: matchers.Matcher, schema: pa.Schema, tally: _MatchTally
) -> Iterator[pa.RecordBatch]:
    """The shard's index, batch by batch (pair keys, entry ids; languages, picked columns); row
    accounting and counts added as they pass."""
    for batch in iter_shard_batches(shard, config.batch_rows, _read_columns(config)):
        if config.text_columns:
            yield _several_texts_batch(batch, config, matcher, schema, tally)
            continue
        texts = pc.cast(batch.column(config.text_column), pa.string())
        languages = _languages(batch, texts, config, matcher, tally)
        entry_ids = matcher.match_batch(texts, languages)
        extra = [] if languages is None else [languages]
        pair_keys = _pair_keys(batch, texts, config)
        tally.stats += _batch_stats(texts, entry_ids)
        tally.counts += counting.count_entries(entry_ids, len(tally.counts))
        yield pa.RecordBatch.from_arrays([pa.array(pair_keys, type=pa.uint64()), entry_ids, *extra], schema=schema)


def _several_texts_batch(
    batch: pa.RecordBatch, config: MatchConfig, matcher: matchers.Matcher, schema: pa.Schema, tally: _MatchTally
) -> pa.RecordBatch:
    """One batch of images with several texts each: every text matched (in its own language) and
    counted; the image indexed with its picked text's entries, language and column."""
    columns = [pc.cast(batch.column(name), pa.string()) for name in config.text_columns]
    found, languages = [], []
    for texts in columns:
        languages.append(_languages(batch, texts, config, matcher, tally))
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
            pa.array(pair_keys, type=pa.uint64()),
            entry_ids,
            *extra,
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
    """Index one shard (pair keys, entry ids) and count its matches per entry."""
    run = RunDir.open(config.root)
    marker = run.shard_marker(shard.index)
    if run.fetch(marker):
        return read_marker(marker)
    n_entries, matcher = shard_matcher(config)
    schema = index_schema(matcher.languages is not None, bool(config.text_columns))
    tally = _MatchTally(counts=np.zeros(n_entries, dtype=np.int64))
    write_part(run.index_part(shard.index), schema, _index_batches(shard, config, matcher, schema, tally))
    if tally.stats.rows != shard.rows:
        raise CurationError(f"{shard.path} yielded {tally.stats.rows} rows where its footer says {shard.rows}")
    run.publish(run.index_part(shard.index), keep_copy=False)
    nonzero = np.flatnonzero(tally.counts)
    run.write_table(
        run.shard_counts(shard.index),
        pa.table({"entry_id": pa.array(nonzero.astype(np.int32)), "count": pa.array(tally.counts[nonzero])}),
    )
    if matcher.languages is not None and tally.languages is None:  # a shard without rows
        tally.languages = LanguageDecisions()
    stats = ShardStats(shard.index, shard.path, config.matcher, tally.stats, tally.languages)
    run.write_json(marker, stats.as_json())  # last: it says the shard is done
    return stats


def shard_counts(run: RunDir, shard: int, n_entries: int) -> np.ndarray:
    """One shard's dense counts, from its sparse file (for a run in a store: the local copy, made
    current by the caller with one listing of shards/)."""
    table = read_parquet(run.shard_counts(shard))
    counts = np.zeros(n_entries, dtype=np.int64)
    counts[table.column("entry_id").to_numpy()] = table.column("count").to_numpy()
    return counts


def read_thresholds(root: str, seed: int, shard: int) -> np.ndarray:
    run = RunDir.open(root)
    path = run.threshold_part(seed, shard)
    run.fetch(path)
    return read_parquet(path, columns=[THRESHOLD]).column(THRESHOLD).to_numpy()


INDEX_BATCH_ROWS = 65_536


def threshold_shard(shard: int, config: ThresholdConfig) -> int:
    """One shard's keep thresholds for the seed (computed once: they do not depend on t) and, when
    asked, its preview piece; both from one read of the shard's index. Each is skipped when complete,
    so a killed balance resumes."""
    run = RunDir.open(config.root)
    thresholds_path = run.threshold_part(config.seed, shard)
    stored = read_thresholds(config.root, config.seed, shard) if run.fetch(thresholds_path) else None
    piece_path = run.preview_piece(config.seed, shard)
    piece = None
    if config.sample_rate is not None and not (run.fetch(piece_path) and has_piece(piece_path, config.sample_rate)):
        piece = PieceBuilder(config.seed, config.sample_rate, config.languages)
    if stored is not None and piece is None:
        run.discard(thresholds_path)
        run.discard(piece_path)
        return shard
    counts = entry_counts(config.root) if stored is None else None
    columns = [ENTRY_IDS, PAIR_KEY] + ([CAPTION_LANGUAGE] if config.languages else [])
    index = open_parquet(run.readable(run.index_part(shard)))
    computed, start = [], 0
    for batch in index.iter_batches(batch_size=INDEX_BATCH_ROWS, columns=columns):
        entry_ids, pair_keys = batch.column(ENTRY_IDS), batch.column(PAIR_KEY).to_numpy()
        if stored is None:
            thresholds = balancing.keep_thresholds(entry_ids, pair_keys, counts, config.seed)
            computed.append(thresholds)
        else:
            thresholds = stored[start : start + len(batch)]
        start += len(batch)
        if piece is not None:
            piece.add(entry_ids, pair_keys, thresholds, batch.column(CAPTION_LANGUAGE) if config.languages else None)
    if stored is None:
        values = np.concatenate(computed) if computed else np.zeros(0)
        # Nearly unique values: dictionary pages would only add bytes.
        run.write_table(
            thresholds_path,
            pa.table({THRESHOLD: pa.array(values, type=pa.float64())}),
            keep_copy=False,
            use_dictionary=False,
        )
    run.discard(thresholds_path)
    if piece is not None:
        piece.write(piece_path)
        run.publish(piece_path, keep_copy=False)
    run.discard(piece_path)
    return shard


def kept_rows(pairs: PairReader, keep: KeepAt, seed: int, shard: int, columns: Sequence[str]) -> pa.Table | None:
    """The shard's pairs kept at the rule's t with the asked columns (None when none is)."""
    thresholds = read_thresholds(pairs.run.spec, seed, shard)
    languages = pairs.index(shard, [CAPTION_LANGUAGE]).column(CAPTION_LANGUAGE) if keep.worldwide else None
    kept = keep.keeps(thresholds, keep.pair_t(languages))
    return pairs.table(shard, columns, kept) if kept.any() else None


def _reader_and_rule(run: RunDir, t: float) -> tuple[PairReader, KeepAt]:
    """The pair reader and the keep rule at t, made once per process for a run's shards (again if
    the run's record or counts change)."""
    for path in (run.plan_json, run.run_json, run.entry_counts):
        run.fetch(path)
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (run.plan_json, run.run_json, run.entry_counts))
    cache_key = (str(run.root), t, stamps)
    if cache_key not in _RULES:
        _RULES.clear()
        _RULES[cache_key] = (PairReader(run), KeepRule.of_run(run).at(t))
    return _RULES[cache_key]


def manifest_shard(shard: int, config: ManifestConfig) -> int:
    """Write one shard's part of a curated manifest folder; returns its rows. A part that exists is
    complete (it appears whole), so a killed manifest resumes."""
    run = RunDir.open(config.root)
    part = run.manifest_part(config.name, shard)
    if run.fetch(part):
        rows = open_parquet(part).metadata.num_rows
        run.discard(part)
        return rows
    pairs, keep = _reader_and_rule(run, config.t)
    run.fetch(run.index_part(shard))
    table = kept_rows(pairs, keep, config.seed, shard, config.columns)
    schema = pa.schema([pairs.schema.field(name) for name in config.columns])
    write_part(part, schema, [] if table is None else table.to_batches())
    run.publish(part, keep_copy=False)
    run.discard(run.index_part(shard))
    run.discard(run.threshold_part(config.seed, shard))
    return 0 if table is None else table.num_rows
