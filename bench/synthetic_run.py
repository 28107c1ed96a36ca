"""Write a run directory of up to a billion pairs directly, as `python -m curation run` would leave it.

Matching a real pool of MetaCLIP's size (1B pairs and more) cannot be done on a benchmark machine, yet
the dashboard and `stats`/`balance` must be measured at that size. Their inputs are the run directory
alone, so this script writes one without any pool or matching: every pair's entry list is drawn from a
MetaCLIP-like law, its caption is made to agree with that list, and the counts, shard files, keep
thresholds, plan.json and run.json follow exactly as the engine computes them.

Shape (defaults): `--entries` single-word entries (pseudo-words of bench/generate_pool.py, 15%
Capitalised, then the numbers "0".."99") in DIR/metadata.json. Half of the pairs match nothing. A
matched pair holds 1 + NegativeBinomial(r=2, mean 2.5) distinct entries, capped at 30: 3.5 on average,
with a tail to the cap. Entries come from a Zipf-Mandelbrot law, (rank + 30)^-s, over 80% of the
entries (the other 20% are never drawn; MetaCLIP found 114k of 500k matching nothing), shorter words
ranked first, with s solved so that the top 3% of the entries hold 94% of the draws. At 1B pairs that
puts about 4,600 entries above 20,000 matches (MetaCLIP: 16k at 1.6B matched pairs, 3.2 times our
matches). synthetic.json reports the realised shape.

Files, as docs/design.md ("The run directory") describes them:
  DIR/metadata.json                      the entry list (JSON list of unique strings)
  DIR/pool/part-NNNNN.parquet            the pool: one file per shard of --shard-rows rows, one row
                                         group: id (int64, the row number), url ("u/<id>"; --no-url
                                         drops it), text (the pair's entries joined by spaces,
                                         "img-<id>" when unmatched)
  DIR/index/part-NNNNN.parquet           the run's index of that shard: pair_key (uint64,
                                         curation.keys.hash_keys of the id, as the engine makes it),
                                         entry_ids (list<int32>, ascending, unique)
  DIR/shards/NNNNN.counts.parquet, NNNNN.json    per-shard counts and stats, as the match stage writes
  DIR/entry_counts.parquet               entry_id, entry, count: exact counts over all pairs
  DIR/thresholds/seed-S/part-NNNNN.parquet       k from curation.balancing.keep_thresholds
  DIR/plan.json                          as a run of the engine writes it (curation.plan), its pool DIR/pool
  DIR/run.json                           curation.runner.write_run_record, kept and expected at --t
  DIR/synthetic.json                     parameters, design, realised shape, timings, bytes on disk
The pool sits inside DIR only so that one folder holds everything; the run reads it as any pool. No
curated manifest is written (`curation export` writes one). Nor is preview/seed-S, which `stats` and
the dashboard build on first use (so that its build can be timed); --preview has the engine build it.

Two passes over the shards, on --workers spawned processes (the engine's local engine): the first draws
each shard from (seed, shard index) alone and writes its pool file, index part, counts and stats; the
second, once the global counts are known, reads each index part back and writes its keep
thresholds. Any worker count gives the same files. Memory holds a shard per worker and the per-entry
counts, whatever the size. Every file is written under a temporary name and renamed; started again, the
same command skips the shards that are done. Thresholds of another seed: `python -m curation balance
DIR --t T --seed S2` (the engine's balance).

Usage:
    PYTHONPATH=. .venv/bin/python bench/synthetic_run.py --rows 10000000 --out /tmp/bench/synthetic_10m
        [--entries 500000] [--seed 0] [--shard-rows 100000] [--t 20000] [--workers 2] [--no-url]
        [--preview]
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for _path in (str(REPO), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from generate_pool import ENTRY_CONSONANTS, NUMBER_ENTRIES, capitalize_some, cdf, pseudo_words, top_share  # noqa: E402

from curation import balancing, counting, keys, stages  # noqa: E402
from curation.mirror import exclusive  # noqa: E402
from curation.pairs import index_schema  # noqa: E402
from curation.plan import Plan, PlanColumns, PlanMetadata, write_plan  # noqa: E402
from curation.pool import Shard, file_signature  # noqa: E402
from curation.rundir import (  # noqa: E402
    ENTRY_IDS,
    LOCK_NAME,
    PAIR_KEY,
    THRESHOLD,
    RunDir,
    atomic_parquet_writer,
    atomic_write_json,
    atomic_write_table,
    part_name,
    read_json,
    remove_leftovers,
)
from curation.runner import Execution, build_preview, write_run_record  # noqa: E402
from curation.shard_stats import RowStats, ShardStats  # noqa: E402
from metadata import fingerprint, load_entries  # noqa: E402
from studio_common.errors import CurationError  # noqa: E402

SYNTHETIC_JSON = "synthetic.json"
BILLION = 1_000_000_000
HEAD_T = 20_000  # MetaCLIP's t: "entries above 20k matches" is measured against it
LOW_32 = np.uint64(0xFFFFFFFF)
MAX_SHARD_ROWS = 10_000_000  # a shard's entry lists stay far below list<int32>'s 2**31 values

# Parquet settings, measured on shards of 100,000 pairs (bench/README.md): zstd; dictionary pages only
# where values repeat (entry ids, per-shard counts); the sequential ids as deltas and the urls as
# shared prefixes. pair_key and k are random bits that nothing compresses.
POOL_OPTIONS = {
    "compression": "zstd",
    "use_dictionary": False,
    "column_encoding": {"id": "DELTA_BINARY_PACKED", "url": "DELTA_BYTE_ARRAY"},
}
INDEX_OPTIONS = {"compression": "zstd", "use_dictionary": ["entry_ids.list.element"]}
THRESHOLD_OPTIONS = {"compression": "zstd", "use_dictionary": False}
COUNTS_OPTIONS = {
    "compression": "zstd",
    "use_dictionary": ["count"],
    "column_encoding": {"entry_id": "DELTA_BINARY_PACKED"},
}


@dataclass(frozen=True)
class Shape:
    """The law the pairs are drawn from; the defaults follow the MetaCLIP paper."""

    match_share: float = 0.5  # pairs with at least one entry
    matches_per_matched: float = 3.5  # mean entries per matched pair: 1 + NegativeBinomial
    dispersion: float = 2.0  # the negative binomial's r: smaller gives a longer tail
    max_matches: int = 30  # entries per pair are capped here
    head_fraction: float = 0.03  # the top 3% of the entries ...
    head_share: float = 0.94  # ... hold this share of the draws (the Zipf exponent is solved for it)
    dead_share: float = 0.20  # entries never drawn
    zipf_offset: float = 30.0  # Zipf-Mandelbrot offset q in (rank + q)^-s


@dataclass(frozen=True)
class Config:
    """What a worker needs: small and picklable (the law itself is rebuilt once per process)."""

    root: str
    rows: int
    shard_rows: int
    entries: int
    seed: int
    url: bool
    t: float
    shape: Shape = field(default_factory=Shape)

    def shard_count(self) -> int:
        return -(-self.rows // self.shard_rows)

    def shard_span(self, index: int) -> tuple[int, int]:
        start = index * self.shard_rows
        return start, min(self.shard_rows, self.rows - start)

    def generation(self) -> dict:
        """The parameters that decide the content; a resumed run must have the same."""
        return {
            "rows": self.rows,
            "entries": self.entries,
            "seed": self.seed,
            "shard_rows": self.shard_rows,
            "url": self.url,
            "shape": asdict(self.shape),
        }


# --------------------------------------------------------------------------------------------------
# Entries and their law
# --------------------------------------------------------------------------------------------------


def make_entries(n_entries: int, seed: int) -> list[str]:
    """Unique single-word entries: pseudo-words (15% Capitalised), then "0".."99". Single words only,
    so a caption of entries joined by spaces matches exactly those entries."""
    rng = np.random.default_rng([seed, 0])
    words = pseudo_words(rng, n_entries - len(NUMBER_ENTRIES), ENTRY_CONSONANTS, {1: 0.06, 2: 0.42, 3: 0.40, 4: 0.12})
    return capitalize_some(rng, words, 0.15) + list(NUMBER_ENTRIES)


@dataclass(frozen=True)
class Law:
    probabilities: np.ndarray  # per entry id, per draw
    cdf: np.ndarray
    exponent: float
    dead: int


def entry_law(entries: list[str], seed: int, shape: Shape) -> Law:
    """Zipf-Mandelbrot over the live entries, shorter words ranked first (as in real text); the
    exponent is bisected until the top head_fraction of all entries hold head_share of the draws."""
    n = len(entries)
    rng = np.random.default_rng([seed, 2])
    dead = rng.choice(n, size=int(round(shape.dead_share * n)), replace=False)
    alive = np.ones(n, dtype=bool)
    alive[dead] = False
    live = np.flatnonzero(alive)
    lengths = np.fromiter((len(e) for e in entries), dtype=np.float64, count=n)
    order = live[np.argsort(lengths[live] + rng.normal(0.0, 2.5, size=len(live)), kind="stable")]
    ranks = np.arange(1, len(order) + 1, dtype=np.float64)
    head = max(1, int(math.ceil(shape.head_fraction * n)))

    def law(s: float) -> np.ndarray:
        p = np.zeros(n)
        p[order] = (ranks + shape.zipf_offset) ** -s
        return p / p.sum()

    low, high = 0.3, 5.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if top_share(law(middle), head) < shape.head_share else (low, middle)
    p = law(high)
    return Law(probabilities=p, cdf=cdf(p), exponent=high, dead=len(dead))


_CACHE: dict[tuple, tuple[pa.Array, Law]] = {}


def prepared(config: Config) -> tuple[pa.Array, Law]:
    """The entries (as Arrow strings) and the law, built once per process from metadata.json."""
    key = (config.root, config.entries, config.seed, config.shape)
    if key not in _CACHE:
        _CACHE.clear()
        entries = load_entries(str(Path(config.root) / "metadata.json"))
        _CACHE[key] = (pa.array(entries, pa.string()), entry_law(entries, config.seed, config.shape))
    return _CACHE[key]


# --------------------------------------------------------------------------------------------------
# Pass 1: annotated parts, shard counts and stats
# --------------------------------------------------------------------------------------------------


def draw(rng: np.random.Generator, cdf_: np.ndarray, size: int) -> np.ndarray:
    """generate_pool.draw (inverse-CDF sampling), with the same result twice as fast: the uniforms are
    looked up in ascending order, which keeps the binary search in cache."""
    uniforms = rng.random(size)
    order = np.argsort(uniforms)
    found = np.empty(size, dtype=np.int64)
    found[order] = np.searchsorted(cdf_, uniforms[order], side="right")
    return np.minimum(found, len(cdf_) - 1)


def draw_entry_lists(config: Config, law: Law, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values): each pair's entries, ascending and distinct, drawn from the law.

    A pair's entries are drawn with replacement and repeats are drawn again (a few rounds suffice: a
    repeat needs the same head entry twice); anything still repeated after 20 rounds is dropped.
    """
    shape = config.shape
    matched = rng.random(n) < shape.match_share
    mean_extra = shape.matches_per_matched - 1.0
    extra = rng.negative_binomial(shape.dispersion, shape.dispersion / (shape.dispersion + mean_extra), n)
    sizes = np.where(matched, 1 + np.minimum(extra, shape.max_matches - 1), 0)
    # Each slot as (pair << 32 | entry): one sort orders pairs and their entries, and shows repeats.
    slots = np.repeat(np.arange(n, dtype=np.uint64), sizes) << np.uint64(32)
    slots |= draw(rng, law.cdf, len(slots)).astype(np.uint64)
    for _ in range(20):
        slots.sort(kind="stable")  # timsort: the slots are ordered by pair already
        repeated = np.flatnonzero(slots[1:] == slots[:-1]) + 1
        if not len(repeated):
            break
        slots[repeated] = (slots[repeated] & ~LOW_32) | draw(rng, law.cdf, len(repeated)).astype(np.uint64)
    else:
        slots = np.unique(slots)
    owner, values = slots >> np.uint64(32), slots & LOW_32
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(owner.astype(np.int64), minlength=n), out=offsets[1:])
    return offsets, values.astype(np.int32)


def pool_schema(url: bool) -> pa.Schema:
    return pa.schema([("id", pa.int64())] + ([("url", pa.string())] if url else []) + [("text", pa.string())])


def make_shard(config: Config, index: int) -> tuple[pa.Table, pa.Table]:
    """Shard ``index`` of the run (its pool rows, its index), from (seed, index) alone: any worker, any
    order, the same tables."""
    entries, law = prepared(config)
    start, n = config.shard_span(index)
    rng = np.random.default_rng([config.seed, 1, index])
    offsets, values = draw_entry_lists(config, law, rng, n)
    entry_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    ids = pa.array(np.arange(start, start + n, dtype=np.int64))
    decimal = pc.cast(ids, pa.string())
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), entries.take(pa.array(values))), " ")
    texts = pc.if_else(
        pc.greater(pc.list_value_length(entry_ids), 0), joined, pc.binary_join_element_wise("img-", decimal, "")
    )
    pair_keys = keys.hash_keys(keys.id_key_texts(ids, "id"))  # exactly the engine's pair keys
    columns = [ids] + ([pc.binary_join_element_wise("u/", decimal, "")] if config.url else []) + [texts]
    pool = pa.Table.from_arrays(columns, schema=pool_schema(config.url))
    index_table = pa.Table.from_arrays(
        [pa.array(pair_keys, type=pa.uint64()), entry_ids], schema=index_schema(worldwide=False, several_texts=False)
    )
    return pool, index_table


def pool_part(run: RunDir, index: int) -> Path:
    return run.root / "pool" / part_name(index)


def write_single_group(path: Path, table: pa.Table, options: dict) -> None:
    with atomic_parquet_writer(path, table.schema, **options) as writer:
        writer.write_table(table, row_group_size=max(1, table.num_rows))


def generate_shard(index: int, config: Config) -> ShardStats:
    """Pass 1 over one shard: pool file, index part, sparse counts, then the stats that mark it done."""
    run = RunDir(Path(config.root))
    marker = run.shard_marker(index)
    if marker.exists():
        return stages.read_marker(marker)
    pool, table = make_shard(config, index)
    path = pool_part(run, index)
    options = dict(POOL_OPTIONS)
    options["column_encoding"] = {
        name: encoding for name, encoding in POOL_OPTIONS["column_encoding"].items() if name in pool.column_names
    }
    write_single_group(path, pool, options)
    write_single_group(run.index_part(index), table, INDEX_OPTIONS)
    entry_ids = table.column(ENTRY_IDS).combine_chunks()
    counts = counting.count_entries(entry_ids, config.entries)
    sizes = pc.list_value_length(entry_ids)
    matched = int(pc.sum(pc.greater(sizes, 0)).as_py() or 0)
    nonzero = np.flatnonzero(counts)
    write_single_group(
        run.shard_counts(index),
        pa.table({"entry_id": pa.array(nonzero.astype(np.int32)), "count": pa.array(counts[nonzero])}),
        COUNTS_OPTIONS,
    )
    stats = ShardStats(
        index,
        str(path),
        "tokens",
        RowStats(rows=table.num_rows, matched=matched, unmatched=table.num_rows - matched, matches=int(counts.sum())),
    )
    atomic_write_json(marker, stats.as_json())
    return stats


# --------------------------------------------------------------------------------------------------
# Pass 2: keep thresholds from the global counts
# --------------------------------------------------------------------------------------------------


def threshold_shard(index: int, config: Config) -> dict:
    """Pass 2 over one shard: its keep thresholds (unless on disk), kept and expected sizes at t, and
    the histogram of entries per pair. Reads the part's entry_ids and pair_key back: 5-8 ms a shard of
    100,000 pairs, where drawing its entry lists and hashing its pair keys again takes about 50 ms."""
    run = RunDir(Path(config.root))
    counts = stages.entry_counts(config.root)
    part = pq.read_table(run.index_part(index), columns=[ENTRY_IDS, PAIR_KEY])
    entry_ids = part.column(ENTRY_IDS).combine_chunks()
    path = run.threshold_part(config.seed, index)
    if path.exists():
        thresholds = stages.read_thresholds(config.root, config.seed, index)
    else:
        pair_keys = part.column(PAIR_KEY).to_numpy()
        thresholds = balancing.keep_thresholds(entry_ids, pair_keys, counts, config.seed)
        write_single_group(path, pa.table({THRESHOLD: pa.array(thresholds, type=pa.float64())}), THRESHOLD_OPTIONS)
    sizes = pc.list_value_length(entry_ids).to_numpy(zero_copy_only=False)
    return {
        "shard": index,
        "kept": int(balancing.kept_mask(thresholds, config.t).sum()),
        "expected": float(balancing.keep_probabilities(entry_ids, counts, config.t).sum()),
        "sizes": np.bincount(sizes, minlength=config.shape.max_matches + 1).tolist(),
    }


# --------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settle(run: RunDir, config: Config) -> dict:
    """A new directory, or the same generation resumed; anything else is refused."""
    record_path = run.root / SYNTHETIC_JSON
    if record_path.exists():
        record = read_json(record_path)
        previous = record.get("parameters", {}).get("generation", {})
        changed = [
            f"{name} {previous.get(name)} (not {value})"
            for name, value in config.generation().items()
            if previous.get(name) != value
        ]
        if changed:
            raise CurationError(
                f"{run.root} holds a synthetic run with other parameters: {'; '.join(changed)}; "
                "choose another --out, or remove that directory to start afresh"
            )
        return record
    if run.root.exists() and any(p.name != LOCK_NAME for p in run.root.iterdir()):
        raise CurationError(f"{run.root} exists and is not a synthetic run directory; choose another --out")
    run.make()
    record = {"status": "generating", "parameters": {"generation": config.generation()}}
    atomic_write_json(record_path, record)
    return record


def write_metadata(run: RunDir, config: Config) -> list[str]:
    path = run.root / "metadata.json"
    if path.exists():
        entries = load_entries(str(path))
        if len(entries) != config.entries:
            raise CurationError(f"{path} holds {len(entries):,} entries, not {config.entries:,}; remove {run.root}")
        return entries
    entries = make_entries(config.entries, config.seed)
    atomic_write_json(path, entries)
    return entries


def make_plan(run: RunDir, config: Config, entries: list[str]) -> Plan:
    """The plan a run of the engine would make of DIR/pool."""
    parts = [str(pool_part(run, i)) for i in range(config.shard_count())]
    return Plan(
        pool=str(run.root / "pool"),
        files=tuple(file_signature(path) for path in parts),
        rows=config.rows,
        metadata=PlanMetadata(str((run.root / "metadata.json").resolve()), len(entries), fingerprint(entries)),
        columns=PlanColumns("text", "id", "url" if config.url else None),
        pair_key="id column 'id'",
        shard_rows=config.shard_rows,
        shards=tuple(Shard(i, path, (0,), config.shard_span(i)[1]) for i, path in enumerate(parts)),
    )


def bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def disk_usage(run: RunDir, rows: int) -> dict:
    """Bytes on disk: the parts that grow with the pairs (per pair, and projected to 1B pairs) and the
    fixed ones. Files other tools add later (a preview, manifests/) are listed but not projected."""
    growing = {name: bytes_under(run.root / name) for name in ("pool", "index", "thresholds", "shards")}
    fixed = {
        name: bytes_under(run.root / name)
        for name in ("metadata.json", "entry_counts.parquet", "plan.json", "run.json")
    }
    other = {
        p.name: bytes_under(p)
        for p in sorted(run.root.iterdir())
        if p.name not in growing and p.name not in fixed and p.name != SYNTHETIC_JSON
    }
    per_pair = sum(growing.values()) / rows
    return {
        "growing_bytes": growing,
        "fixed_bytes": fixed,
        "other_bytes": other,
        "total_bytes": bytes_under(run.root),
        "bytes_per_pair": {
            **{name: round(size / rows, 3) for name, size in growing.items()},
            "total": round(per_pair, 3),
        },
        "projected_bytes_at_1B": int(per_pair * BILLION + sum(fixed.values())),
    }


def realised_shape(counts: np.ndarray, rows: int, matched: int, sizes: np.ndarray, law: Law, shape: Shape) -> dict:
    matches = int(counts.sum())
    head = max(1, int(math.ceil(shape.head_fraction * len(counts))))
    per_row = float(matches / rows)
    expected_at = lambda pairs: law.probabilities * per_row * pairs  # noqa: E731 (ignores repeat redraws)
    scaled_threshold = HEAD_T * rows / BILLION
    return {
        "pairs": rows,
        "matched_pairs": matched,
        "matched_share": round(matched / rows, 6),
        "matches": matches,
        "matches_per_matched_pair": round(matches / matched, 4) if matched else 0.0,
        "entries_per_pair_histogram_0_to_max": [int(x) for x in sizes],
        "max_entries_per_pair": int(np.flatnonzero(sizes)[-1]) if sizes.any() else 0,
        "entries_above_20k_matches": int((counts > HEAD_T).sum()),
        "entries_with_no_match": int((counts == 0).sum()),
        "top_3pct_share_of_matches": round(top_share(counts.astype(np.float64), head), 4) if matches else 0.0,
        "top_entry_matches": int(counts.max()) if len(counts) else 0,
        "projected_to_1B": {
            "entries_above_20k_from_counts": int((counts > scaled_threshold).sum()),
            "entries_above_20k_from_law": int((expected_at(BILLION) > HEAD_T).sum()),
            "entries_with_no_match_from_law": int(round(float(np.exp(-expected_at(BILLION)).sum()))),
            "note": "from counts: entries whose count here exceeds 20,000 * pairs / 1B; from law: expected"
            " counts at 1B pairs (Poisson for no match)",
        },
    }


def run_pass(engine, stage, config: Config, desc: str, on_result=None) -> list:
    indices = list(range(config.shard_count()))
    with tqdm(total=config.rows, desc=desc, unit="pairs", unit_scale=True, file=sys.stderr, dynamic_ncols=True) as bar:

        def landed(index: int, result: dict) -> None:
            if on_result is not None:
                on_result(index, result)
            bar.update(config.shard_span(index)[1])

        return engine.map(stage, indices, config, landed)


def generate(config: Config, workers: int, preview: bool, command: str) -> dict:
    started = time.perf_counter()
    run = RunDir(Path(config.root))
    with exclusive(run):
        record = settle(run, config)
        remove_leftovers(run.root)
        entries = write_metadata(run, config)
        _, law = prepared(config)
        prepared_at = time.perf_counter()
        execution = Execution(workers=workers, engine="local")
        counts = np.zeros(config.entries, dtype=np.int64)
        done = sum(run.shard_marker(i).exists() for i in range(config.shard_count()))
        if done:
            log(f"resuming: {done} of {config.shard_count()} shards already written")

        def add_counts(index: int, _: ShardStats) -> None:
            counts[:] += stages.shard_counts(run, index, config.entries)

        with execution.start() as engine:
            results = run_pass(engine, generate_shard, config, "pool and index", add_counts)
            generated_at = time.perf_counter()
            totals = sum((result.rows for result in results), RowStats())
            if totals.rows != config.rows or totals.matches != int(counts.sum()):
                raise CurationError(
                    f"row accounting failed in {run.root}: {totals.as_run_rows()}; remove it and run again"
                )
            write_plan(run.plan_json, make_plan(run, config, entries))
            atomic_write_table(
                run.entry_counts,
                pa.table(
                    {
                        "entry_id": pa.array(np.arange(config.entries, dtype=np.int32)),
                        "entry": pa.array(entries, type=pa.string()),
                        "count": pa.array(counts, type=pa.int64()),
                    }
                ),
            )
            counted_at = time.perf_counter()
            passes = run_pass(engine, threshold_shard, config, f"thresholds (seed {config.seed})")
            thresholds_at = time.perf_counter()
            balance = {
                "t": config.t,
                "seed": config.seed,
                "kept": sum(r["kept"] for r in passes),
                "expected_kept": round(sum(r["expected"] for r in passes), 3),
                "expected_kept_margin": 0.0,  # exact: summed over every pair
                "head_tail": counting.head_tail(counts, config.t).as_dict(),
                "timings": {"balance_s": round(thresholds_at - counted_at, 3)},
            }
            previewed_at = time.perf_counter()
            if preview:  # the engine's preview files, as balance makes them
                build_preview(config.root, config.seed, execution, engine)
        finished = time.perf_counter()
        match = {
            "rows": totals.as_run_rows(),
            "resumed_shards": done,
            "matcher": "tokens",
            "timings": {
                "match_s": round(generated_at - prepared_at, 3),
                "matcher_tables_s": 0.0,
                "count_s": round(counted_at - generated_at, 3),
                "total_s": round(finished - started, 3),
            },
        }
        write_run_record(config.root, execution, match, balance, command)
        sizes = np.sum([r["sizes"] for r in passes], axis=0)
        record.update(
            {
                "status": "complete",
                "command": command,
                "parameters": {
                    "generation": config.generation(),
                    "t": config.t,
                    "workers": workers,
                    "preview": preview,
                    "pool_parquet": repr(POOL_OPTIONS),
                    "index_parquet": repr(INDEX_OPTIONS),
                    "thresholds_parquet": repr(THRESHOLD_OPTIONS),
                },
                "design": {
                    "zipf_exponent": round(law.exponent, 6),
                    "zipf_offset": config.shape.zipf_offset,
                    "entries_never_drawn": law.dead,
                },
                "realised": realised_shape(counts, config.rows, totals.matched, sizes, law, config.shape),
                "kept_at_t": {"t": config.t, "kept": balance["kept"], "expected_kept": balance["expected_kept"]},
                "timings_s": {
                    "metadata_and_law": round(prepared_at - started, 3),
                    "pool_index_and_shard_counts": round(generated_at - prepared_at, 3),
                    "entry_counts_and_plan": round(counted_at - generated_at, 3),
                    "thresholds": round(thresholds_at - counted_at, 3),
                    "preview": round(finished - previewed_at, 3) if preview else None,
                    "total": round(finished - started, 3),
                },
                "resumed_shards": done,
            }
        )
        record["disk"] = disk_usage(run, config.rows)
        atomic_write_json(run.root / SYNTHETIC_JSON, record)
        return record


def positive_int(text: str) -> int:
    """An integer, also written 1_000_000 or 1e9."""
    try:
        number = float(text.replace("_", ""))
        value = int(text.replace("_", "")) if text.replace("_", "").lstrip("+-").isdigit() else int(number)
        if value != number:
            raise ValueError
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        prog="bench/synthetic_run.py",
        description="\n\n".join(doc[:3]),
        epilog="\n\n".join(doc[3:5]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=positive_int, required=True, help="pairs in the run (up to 1e9 and more)")
    parser.add_argument("--out", required=True, help="the run directory to write (new, or one to resume)")
    parser.add_argument("--entries", type=positive_int, default=500_000, help="metadata entries (default: 500000)")
    parser.add_argument(
        "--seed", type=int, default=0, help="draws the entries, the pairs and the keep thresholds (default: 0)"
    )
    parser.add_argument(
        "--shard-rows",
        type=positive_int,
        default=100_000,
        help="rows per shard (pool file and index part), one row group each (default: 100000)",
    )
    parser.add_argument(
        "--t", type=positive_float, default=20_000.0, help="t for kept and expected in run.json (default: 20000)"
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--no-url", dest="url", action="store_false", help="leave out the url column")
    parser.add_argument(
        "--preview",
        action="store_true",
        help="also build the engine's preview files (preview/seed-S), which `balance` writes "
        "and `stats` and the dashboard otherwise build on first use",
    )
    args = parser.parse_args(argv)
    if args.shard_rows > MAX_SHARD_ROWS:
        parser.error(f"--shard-rows must be at most {MAX_SHARD_ROWS:,}")
    if args.entries < 1000:
        parser.error("--entries must be at least 1000 (the last 100 are the numbers 0..99)")
    if not 0 <= args.seed < 2**63:
        parser.error("--seed must be between 0 and 2**63 - 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(
        root=str(Path(args.out).resolve()),
        rows=args.rows,
        shard_rows=args.shard_rows,
        entries=args.entries,
        seed=args.seed,
        url=args.url,
        t=args.t,
    )
    command = shlex.join(["python", "bench/synthetic_run.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        record = generate(config, args.workers, args.preview, command)
    except CurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.strerror or error} ({error.filename or args.out})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; run the same command again to resume", file=sys.stderr)
        return 130
    shape = record["realised"]
    print(f"synthetic run: {config.root}")
    print(
        f"pairs {shape['pairs']:,}, matched {shape['matched_share']:.1%}, "
        f"{shape['matches_per_matched_pair']:.2f} entries per matched pair, "
        f"{shape['entries_above_20k_matches']:,} entries above 20k matches, "
        f"{shape['entries_with_no_match']:,} with none"
    )
    kept = record["kept_at_t"]
    print(f"kept at t={config.t:g}: {kept['kept']:,} (expected {kept['expected_kept']:,.1f})")
    disk = record["disk"]
    print(
        f"{disk['total_bytes'] / 1e9:.2f} GB on disk, {disk['bytes_per_pair']['total']:.1f} bytes per pair "
        f"in pool/, index/, thresholds/ and shards/ ({disk['projected_bytes_at_1B'] / 1e9:.1f} GB at 1B pairs); "
        f"{record['timings_s']['total']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
