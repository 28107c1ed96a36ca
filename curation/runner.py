"""A curation run as a sequence of stages over shards: plan, match, count, threshold, select.

Every stage skips shards whose outputs are complete, so the same command started again after a kill
resumes, and ends with the same files as a run that was never interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation import counting, languages, matchers, preview_files, stages
from curation.arrow_bytes import string_array
from curation.engines import Engine, make_engine
from curation.keep_rule import KeepRule
from curation.plan import Plan, PlanColumns, PlanMetadata, plan_differences
from curation.pool import (
    file_signature,
    inspect_pool,
    open_parquet,
    plan_shards,
    resolve_files,
)
from curation.rundir import (
    ENTRY_LANGUAGE,
    FORMAT_VERSION,
    RunDir,
    read_json,
    read_parquet,
    remove_leftovers,
)
from curation.shard_stats import LanguageDecisions, RowStats
from metadata import Metadata, MetadataError, fingerprint, load_metadata
from studio_common import storage
from studio_common.errors import CurationError
from studio_common.progress import Bar, progress_bar

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Execution:
    """How stages run: shared by every command."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    engine: str = "local"
    progress: bool = True
    ray_address: str | None = None  # --engine ray: the cluster to join (default: a local Ray)

    def start(self) -> Engine:
        """The engine, not yet entered: nothing runs (and no Ray starts) until ``with``."""
        options = {"address": self.ray_address} if self.engine == "ray" else {}
        return make_engine(self.engine, self.workers, **options)


@dataclass(frozen=True)
class MatchRequest:
    pool: str
    metadata: str
    out: str
    text_column: str | None = None
    id_column: str | None = None
    content_key: bool = False
    drop_invalid_entries: bool = False
    shard_rows: int = 100_000
    batch_rows: int = 50_000
    matcher: str = matchers.DEFAULT_MATCHER
    language_column: str | None = None  # worldwide metadata: the pool's language column (None: identify)
    language_overrides: tuple[tuple[str, str], ...] = ()  # identifier code -> metadata code
    language_identifier: str | None = None  # worldwide, no language column: languages.DEFAULT_IDENTIFIER
    text_columns: tuple[str, ...] = ()  # several texts per image (alt, title, ...): --text-columns


def _bar(total: int, desc: str, unit: str, execution: Execution) -> Bar:
    return progress_bar(total, desc, unit, execution.progress)


def _load_metadata(path: str, drop_invalid: bool) -> Metadata:
    """The run's entries, or one line: an unusable list, or one without entries in any format (a run
    over none would match nothing and still end as if it had curated)."""
    try:
        metadata = load_metadata(path, drop_invalid=drop_invalid)
    except MetadataError as error:
        raise CurationError(str(error)) from None
    if not metadata.entries:
        dropped = " once --drop-invalid-entries skips the empty and repeated ones" if drop_invalid else ""
        raise CurationError(f"metadata {path} holds no entries{dropped}; a run needs at least one to match against")
    return metadata


def _language_column(files: list[str], request: MatchRequest, metadata: Metadata) -> str | None:
    if request.language_column is None:
        return None
    if metadata.languages is None:
        raise CurationError(
            "--language-column needs worldwide metadata: a Parquet file with 'entry' and 'language' columns"
        )
    _schemas_with(files, [request.language_column])
    return request.language_column


def _identifier(request: MatchRequest, metadata: Metadata) -> str | None:
    """The language identifier of a worldwide run that reads no language column (None otherwise)."""
    if request.language_identifier is not None:
        if metadata.languages is None:
            raise CurationError(
                "--language-identifier needs worldwide metadata: a Parquet file with 'entry' and 'language' columns"
            )
        if request.language_column is not None:
            raise CurationError(
                "--language-identifier and --language-column: the column gives every caption's language, "
                "so nothing is identified; give one of them"
            )
    if metadata.languages is None or request.language_column is not None:
        return None
    return request.language_identifier or languages.DEFAULT_IDENTIFIER


def _schemas_with(files: list[str], names: list[str]) -> list[tuple[str, pa.Schema]]:
    """(file, schema) of every pool file, each holding every named column, or a one-line error."""
    schemas = [(path, open_parquet(path).schema_arrow) for path in files]
    for path, schema in schemas:
        for name in names:
            if name not in schema.names:
                raise CurationError(f"the pool has no column '{name}' ({path}: {', '.join(schema.names)})")
    return schemas


def _text_columns(files: list[str], names: tuple[str, ...]) -> list[str]:
    """--text-columns: every column in every file, holding strings, each named once."""
    if len(set(names)) != len(names):
        raise CurationError(f"--text-columns names a column twice: {','.join(names)}")
    for path, schema in _schemas_with(files, list(names)):
        for name in names:
            kind = schema.field(name).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
                raise CurationError(f"text column '{name}' in {path} holds {kind}, not strings")
    return list(names)


def _make_plan(request: MatchRequest, metadata: Metadata, log: Log) -> Plan:
    # Local files by absolute path: the run reads its pool again whenever pairs are read back
    # (curation/pairs.py), from whatever folder that happens in.
    files = [path if storage.is_uri(path) else os.path.abspath(path) for path in resolve_files(request.pool)]
    entries = metadata.entries
    texts = _text_columns(files, request.text_columns) if request.text_columns else []
    info = inspect_pool(files, texts[0] if texts else request.text_column, request.id_column, request.content_key)
    language_column = _language_column(files, request, metadata)
    if info.text_column_detected:
        log(f"using text column '{info.text_column}' (the pool has no 'text' column)")
    key = (
        f"id column '{info.id_column}'"
        if info.id_column
        else "content: " + (f"{info.url_column} + newline + " if info.url_column else "") + info.text_column
    )
    return Plan(
        pool=request.pool,
        files=tuple(file_signature(path) for path in files),
        rows=info.rows,
        metadata=PlanMetadata(
            path=request.metadata if storage.is_uri(request.metadata) else str(Path(request.metadata).resolve()),
            entries=len(entries),
            fingerprint=fingerprint(entries, metadata.languages),
            drop_invalid_entries=request.drop_invalid_entries,
            languages=tuple(sorted(set(metadata.languages))) if metadata.languages else None,
        ),
        columns=PlanColumns(
            info.text_column,
            info.id_column,
            info.url_column,
            language_column,
            tuple(texts),
            _identifier(request, metadata),
            request.language_overrides if metadata.languages is not None else (),
        ),
        pair_key=key,
        shard_rows=request.shard_rows,
        shards=tuple(plan_shards(files, request.shard_rows)),
    )


def _settle_plan(run: RunDir, plan: Plan) -> Plan:
    """Start a new run, or resume one made from the same pool, metadata and columns."""
    if run.fetch(run.plan_json):
        previous = run.plan()
        differences = plan_differences(previous, plan)
        if differences:
            raise CurationError(
                f"{run.spec} holds a run with other {' and '.join(differences)}; "
                "choose another --out, or remove that directory to start afresh"
            )
        return previous
    if run.contents():
        raise CurationError(f"{run.spec} exists and is not a run directory; choose another --out")
    run.make()
    run.write_plan(plan)
    return plan


def match_pool(request: MatchRequest, execution: Execution, engine: Engine, log: Log = _stderr) -> dict:
    """Index every pair (its key and entry ids) and count matches per entry; returns the match part of run.json."""
    started = time.perf_counter()
    run = RunDir.open(request.out)
    metadata = _load_metadata(request.metadata, request.drop_invalid_entries)
    entries = metadata.entries
    matcher = request.matcher if metadata.languages is None else matchers.WORLDWIDE  # per-language keys
    plan = _settle_plan(run, _make_plan(request, metadata, log))
    remove_leftovers(run.root)
    run.fetch_tree(run.shard_outputs)  # the markers (and counts) of shards done before: trusted from the store
    shards = list(plan.shards)
    config = stages.MatchConfig(
        root=run.spec,
        metadata_path=plan.metadata.path,
        metadata_fingerprint=plan.metadata.fingerprint,
        drop_invalid_entries=request.drop_invalid_entries,
        text_column=plan.columns.text,
        id_column=plan.columns.id,
        url_column=plan.columns.url,
        batch_rows=request.batch_rows,
        matcher=matcher,
        language_column=plan.columns.language,
        language_identifier=plan.columns.identifier,
        language_overrides=plan.columns.language_map,
        text_columns=plan.columns.texts,
    )
    done = [s for s in shards if run.shard_marker(s.index).exists()]
    if done:
        log(f"resuming: {len(done)} of {len(shards)} shards already matched")
    tables_s = 0.0
    if matcher == "tokens" and len(done) < len(shards):
        tables = matchers.tables_dir(run.root)
        run.fetch_tree(tables)
        tables_s = matchers.ensure_tables(run.root, entries, plan.metadata.fingerprint)
        if tables_s:
            run.publish_tree(tables, last="tables.json")
    with _bar(plan.rows, "match", "pairs", execution) as bar:
        results = engine.map(stages.match_shard, shards, config, lambda shard, _: bar.update(shard.rows))
    matched_at = time.perf_counter()
    run.fetch_tree(run.shard_outputs)  # in a store: one listing, and the counts copied in parallel
    counts = counting.merge_counts((stages.shard_counts(run, s.index, len(entries)) for s in shards), len(entries))
    table = pa.table(
        {
            "entry_id": pa.array(np.arange(len(entries), dtype=np.int32)),
            "entry": string_array(entries),
            "count": pa.array(counts, type=pa.int64()),
        }
    )
    if metadata.languages is not None:
        table = table.append_column(ENTRY_LANGUAGE, string_array(metadata.languages))
    run.write_table(run.entry_counts, table)
    totals = sum((result.rows for result in results), RowStats())
    if totals.rows != plan.rows or not totals.accounted:
        raise CurationError(f"row accounting failed in {run.root}: {totals.as_run_rows()}; remove it and run again")
    decided = [result.languages for result in results]
    return {
        "rows": totals.as_run_rows(),
        # worldwide runs: how captions got their languages, when every shard's marker says (markers
        # written before this was recorded do not)
        **(
            {"language_decisions": sum(decided, LanguageDecisions()).as_json()}
            if plan.worldwide and None not in decided
            else {}
        ),
        "resumed_shards": len(done),
        "matcher": matcher,
        "timings": {
            "match_s": round(matched_at - started, 3),
            "matcher_tables_s": round(tables_s, 3),
            "count_s": round(time.perf_counter() - matched_at, 3),
        },
    }


def _matched_run(run: RunDir, out: str) -> Plan:
    """The plan of a run whose every shard is matched; anything less refused in one line."""
    if not run.fetch(run.plan_json) or not run.fetch(run.entry_counts):
        raise CurationError(f"{out} is not a matched run directory; run `curation match` first")
    plan = run.plan()
    run.fetch_tree(run.shard_outputs)
    missing = [s.index for s in plan.shards if not run.shard_marker(s.index).exists()]
    if missing:
        raise CurationError(f"{out}: {len(missing)} shards are not matched yet; run the match again to resume")
    return plan


def _previewed(run: RunDir, seed: int) -> bool:
    return run.fetch(run.preview(seed) / preview_files.SUMMARY) and preview_files.is_complete(run, seed)


def selection_needs_a_pass(out: str, seed: int) -> bool:
    """Whether selecting a t of this seed must first read the run's index (its thresholds or preview
    are missing): a command starts its workers only then."""
    run = RunDir.open(out)
    if not run.fetch(run.plan_json):
        return True
    return not (_previewed(run, seed) and run.has_thresholds(seed, run.plan()))


def _thresholds_and_preview(
    run: RunDir,
    plan: Plan,
    seed: int,
    execution: Execution,
    engine: Engine,
    sample_pairs: int,
    rebuild: bool = False,
    on_progress: StepProgress | None = None,
) -> None:
    """The seed's keep thresholds and preview, each made once (one pass over the index for both);
    nothing to do when both are complete."""
    shards = plan.shard_indices
    if rebuild:
        run.remove_tree(run.preview_pieces(seed))
    previewed = not rebuild and _previewed(run, seed)
    if previewed and run.has_thresholds(seed, plan):
        return
    remove_leftovers(run.root)
    rate = None if previewed else preview_files.sample_rate(_matched_pairs(run, shards), sample_pairs)
    config = stages.ThresholdConfig(root=run.spec, seed=seed, sample_rate=rate, languages=plan.languages)
    rows = {s.index: s.rows for s in plan.shards}
    with _bar(plan.rows, f"keep thresholds (seed {seed})", "pairs", execution) as bar:

        def landed(shard: int, _: object) -> None:
            bar.update(rows[shard])
            if on_progress:
                on_progress("reading entry lists and thresholds", bar.n, plan.rows)

        engine.map(stages.threshold_shard, shards, config, landed)
    if rate is not None:
        _merge_preview(run, seed, shards, rate, execution, on_progress, plan.languages)


def balance_run(
    out: str,
    t: float,
    seed: int,
    execution: Execution,
    engine: Engine,
    sample_pairs: int = preview_files.DEFAULT_SAMPLE_PAIRS,
    reference_language: str = "en",
    t_overrides: Mapping[str, float] | None = None,
) -> dict:
    """Select (t, seed): the seed's keep thresholds and preview are made once, and every figure at t
    is read from them; no pair is read or written again for a new t. Returns the balance part of run.json.

    A worldwide run (its metadata has languages) keeps a pair of language L at L's t, set from the
    reference language's t (curation/keep_rule.py); ``t_overrides`` fix some languages' t."""
    started = time.perf_counter()
    run = RunDir.open(out)
    plan = _matched_run(run, out)
    _thresholds_and_preview(run, plan, seed, execution, engine, sample_pairs)
    rule = KeepRule.from_table(
        read_parquet(run.entry_counts), {"reference_language": reference_language, "t_language": t_overrides}
    )
    preview = preview_files.open_preview(run, seed, rule)
    expected = preview.expected_size_at(t)
    balance = {
        "t": t,
        "seed": seed,
        "kept": preview.size_at(t),
        "expected_kept": round(expected.value, 3),
        "expected_kept_margin": round(expected.margin, 3),
        "head_tail": rule.head_tail(t).as_dict(),
        "timings": {"balance_s": round(time.perf_counter() - started, 3)},
    }
    if rule.worldwide:
        balance.update(rule.parameters)
        balance["languages"] = preview.language_rows(t)
    return balance


def _matched_pairs(run: RunDir, shards: list[int]) -> int:
    """Matched pairs over the whole run, from the shards' stats (what sizes the preview's sample)."""
    return sum(stages.read_marker(run.shard_marker(shard)).rows.matched for shard in shards)


StepProgress = Callable[[str, int, int], None]  # (what, done, total): for a progress bar that is not tqdm's


def _merge_preview(
    run: RunDir,
    seed: int,
    shards: list[int],
    rate: float,
    execution: Execution,
    on_progress: StepProgress | None = None,
    languages: tuple[str, ...] | None = None,
) -> dict:
    with _bar(1, "preview", "steps", execution) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if on_progress:
                on_progress("sorting the keep thresholds", done, total)

        run.fetch_tree(run.preview_pieces(seed))
        summary = preview_files.merge(run, seed, shards, rate, progress, languages)
    run.unpublish_tree(run.preview(seed))  # the old preview goes first, the new preview.json last
    run.publish_tree(run.preview(seed), last=preview_files.SUMMARY)
    run.remove_tree(run.preview_pieces(seed))
    return summary


def build_preview(
    out: str,
    seed: int,
    execution: Execution,
    engine: Engine,
    sample_pairs: int = preview_files.DEFAULT_SAMPLE_PAIRS,
    rebuild: bool = False,
    on_progress: StepProgress | None = None,
) -> dict:
    """The seed's preview files, from its thresholds and the entry lists (for runs whose balance made
    none, or to change the sample's size); returns preview.json. Shards done before are kept."""
    run = RunDir.open(out)
    plan = _matched_run(run, out)
    if not run.has_thresholds(seed, plan):
        raise CurationError(
            f"{out} has no keep thresholds for seed {seed}; run `curation balance {out} --t T --seed {seed}` first"
        )
    _thresholds_and_preview(run, plan, seed, execution, engine, sample_pairs, rebuild, on_progress)
    return preview_files.describe(run, seed)


def write_run_record(out: str, execution: Execution, match: dict | None, balance: dict | None, command: str) -> dict:
    """run.json: what was asked, what the pool held, what was kept; merged with what is there."""
    run = RunDir.open(out)
    record = read_json(run.run_json) if run.fetch(run.run_json) else {}
    run.fetch(run.plan_json)
    plan = run.plan()
    record.update(
        {
            "format_version": FORMAT_VERSION,
            "status": "complete" if (balance or record.get("balance")) else "matched",
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "pool": {"spec": plan.pool, "files": len(plan.files), "rows": plan.rows, "shards": len(plan.shards)},
            "metadata": plan.metadata.as_json(),
            "columns": plan.columns.as_json(plan.worldwide),
            "pair_key": plan.pair_key,
            "engine": {"name": execution.engine, "workers": execution.workers},
        }
    )
    timings = dict(record.get("timings", {}))
    if match is not None:
        record["rows"] = match["rows"]
        if "language_decisions" in match:
            record["language_decisions"] = match["language_decisions"]
        else:
            record.pop("language_decisions", None)
        record["resumed_shards"] = match["resumed_shards"]
        record["matcher"] = match["matcher"]
        timings.update(match["timings"])
    if balance is not None:
        record["parameters"] = {"t": balance["t"], "seed": balance["seed"]}
        record["rows"] = {
            **record.get("rows", {}),
            **{key: balance[key] for key in ("kept", "expected_kept", "expected_kept_margin")},
        }
        record["balance"] = balance["head_tail"]
        if "languages" in balance:
            record["parameters"]["reference_language"] = balance["reference_language"]
            record["parameters"]["t_language"] = balance["t_language"]
            record["languages"] = balance["languages"]
        timings.update(balance["timings"])
    record["timings"] = timings
    run.write_json(run.run_json, record)
    return record
