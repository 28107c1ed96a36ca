"""curation-metadata: build, fetch, inspect and compare metadata entry lists, with one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from metadata import files
from metadata.build import BuildRequest, build
from metadata.fetch import DEFAULT_URL, FetchError, default_cache_dir, fetch
from metadata.loading import MetadataError, fingerprint, load_metadata
from metadata.merge import SOURCE_ORDER, parse_budgets, render_table
from metadata.report import diff, render_diff, render_stats, stats
from metadata.wikipedia import count_dump
from metadata.worldwide import language_code, merge_languages, parse_input, render_language_table
from studio_common.argtypes import (
    EXIT_USAGE,
    OneLineParser,
    checked,
    finite_number,
    non_negative_int,
    positive_int,
    positive_number,
)

EXIT_FAILED = 1  # a download or a write that did not succeed
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Metadata for MetaCLIP-style curation ("Demystifying CLIP Data", Xu et al., ICLR 2024): the list of
entries that captions are matched against. Load MetaCLIP's released list or build your own from the
paper's sources, keeping where every entry came from.

  build            entries from WordNet, Wikipedia (unigrams, PMI bigrams, popular titles), your own
                   extra entries, and the numbers 0-99; writes JSON (MetaCLIP's format) or Parquet
                   (entry, sources)
  count-wikipedia  count unigrams and bigrams of a pages-articles .xml.bz2 dump once, so that build
                   can try thresholds in seconds
  fetch            download MetaCLIP's released metadata.json (500,000 entries) into a cache
  stats            what a list holds: entries, words per entry, entries that can never match, sources
  diff             what changed between two lists: added, removed, changed ids, per source
  merge-languages  concatenate per-language lists into one worldwide list (MetaCLIP 2): Parquet with
                   entry, language and sources

Example:  curation-metadata build --wordnet /usr/share/wordnet --out metadata.json
Exit codes: 0 done, 1 a download or write failed, 2 bad input (the message says which)."""


sha256_hex = checked(
    str.lower, lambda v: len(v) == 64 and all(c in "0123456789abcdef" for c in v), "expected 64 hexadecimal digits"
)


def _codes(text: str) -> list[str]:
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if not codes:
        raise argparse.ArgumentTypeError(f"expected domain codes such as en or en,en.m, got {text!r}")
    return codes


def _add_build(commands: argparse._SubParsersAction) -> None:
    build_parser = commands.add_parser(
        "build",
        help="build entries from WordNet, Wikipedia, pageviews, extra entries and numbers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Build an entry list from any of the paper's sources, merged in this order: WordNet synsets, Wikipedia
unigrams, Wikipedia bigrams, Wikipedia titles, extra entries, numbers "0".."99". An entry keeps the
position of its first source and records every source it came from. Empty and punctuation-only
entries are dropped (and counted); a table of entries per source and their overlaps is printed.

Output: a PATH ending in .json gets MetaCLIP's format (a JSON list of strings); any other PATH gets
Parquet with columns entry (string) and sources (list of strings), plus the build report in the file
metadata. Give several PATHs to write both.""",
        epilog="""\
examples:
  curation-metadata build --wordnet /usr/share/wordnet --out metadata.json
  curation-metadata count-wikipedia enwiki-latest-pages-articles-multistream.xml.bz2 --out counts/
  curation-metadata build --wordnet /usr/share/wordnet --wikipedia-counts counts/ \\
      --pageviews pageviews/*.gz --extra mine.txt --budget wiki_title=50000 --out m.json m.parquet""",
    )
    build_parser.add_argument(
        "--out",
        nargs="+",
        required=True,
        metavar="PATH",
        help="where to write: .json = MetaCLIP's JSON list, anything else = Parquet "
        "(entry, sources); several paths write several files",
    )
    build_parser.add_argument(
        "--entry-language",
        type=language_code,
        metavar="CODE",
        help="tag every entry with this language (a Wikipedia code such as de, zh or "
        "other): the Parquet output gets a language column, making it a MetaCLIP 2 "
        "worldwide list (merge several with merge-languages); .json outputs are "
        "refused, as a JSON list cannot hold languages. Wikipedia counts must be of "
        "this language (counts.json; a --wikipedia-dump is counted in it, its words "
        "segmented for zh, ja, th, lo). Not to be confused with --language, which only "
        "chooses whose pageviews are counted",
    )
    src = build_parser.add_argument_group("sources (at least one)")
    src.add_argument(
        "--wordnet",
        metavar="DIR",
        help="WordNet 3.0 database directory with data.noun/verb/adj/adv (Debian's wordnet-base: "
        "/usr/share/wordnet); every synset's name: first lemma, lower case, marker such as "
        "(p) removed, underscores as spaces, dots kept",
    )
    src.add_argument(
        "--omw",
        metavar="DIR",
        help="another language's WordNet, as MetaCLIP 2: the lemmas of the Open Multilingual Wordnet tab "
        "file wn-data-<code>.tab found under DIR (an omw-data checkout or NLTK's omw-1.4 folder), for "
        "--wordnet-language (default: --entry-language); underscores as spaces, '+' removed, case kept",
    )
    src.add_argument(
        "--wordnet-language",
        type=language_code,
        metavar="CODE",
        help="with --omw: the Wikipedia code of the language (zh reads cmn, ja jpn, fr fra, sq als, ...; "
        "MetaCLIP 2's 30 languages)",
    )
    src.add_argument(
        "--wikipedia-counts", metavar="DIR", help="counts made by `count-wikipedia` (the fast way to try thresholds)"
    )
    src.add_argument(
        "--wikipedia-dump",
        metavar="FILE",
        help="a pages-articles .xml.bz2 dump to count now (see count-wikipedia; --counts-out keeps the counts)",
    )
    src.add_argument(
        "--pageviews",
        nargs="+",
        metavar="FILE",
        help="hourly pageview files pageviews-YYYYMMDD-HHMMSS.gz; views are summed per title",
    )
    src.add_argument(
        "--extra", metavar="FILE", help="your own entries: a JSON list or one entry per line (kept in file order)"
    )
    thresholds = build_parser.add_argument_group("thresholds (the paper's values are the defaults)")
    thresholds.add_argument(
        "--min-unigram",
        metavar="N",
        type=positive_int,
        default=100,
        help="keep Wikipedia tokens seen at least this often (default: %(default)s)",
    )
    thresholds.add_argument(
        "--min-pmi",
        metavar="PMI",
        type=finite_number,
        default=30.0,
        help="keep bigrams with PMI = log2(c(w1 w2) N / (c(w1) c(w2))) at least this "
        "(default: %(default)s; needs N > 2^PMI tokens, so lower it for small dumps)",
    )
    thresholds.add_argument(
        "--min-bigram-count",
        metavar="N",
        type=positive_int,
        default=1,
        help="and seen at least this often (default: %(default)s, as the paper)",
    )
    thresholds.add_argument(
        "--min-views",
        metavar="N",
        type=positive_int,
        default=70,
        help="keep titles with at least this many views in all files (default: %(default)s)",
    )
    thresholds.add_argument(
        "--language",
        type=_codes,
        default=["en"],
        metavar="CODES",
        help="pageview domain codes to sum, comma-separated: en = English Wikipedia on "
        "desktop (MetaCLIP's choice), en.m = its mobile site (default: en); to tag the "
        "built entries with a language, use --entry-language",
    )
    thresholds.add_argument(
        "--min-hourly-views",
        metavar="N",
        type=positive_int,
        default=1,
        help="ignore hours with fewer views for a title (MetaCLIP's script used 50; "
        "default: %(default)s = count every view)",
    )
    thresholds.add_argument(
        "--keep-namespaces",
        action="store_true",
        help="keep titles such as Special:Search or File:X.jpg (dropped by default)",
    )
    shaping = build_parser.add_argument_group("shaping")
    shaping.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="SOURCE=N",
        help=f"keep at most N entries of SOURCE (its first N: most frequent or most viewed "
        f"first); sources: {', '.join(SOURCE_ORDER)}; repeat for several",
    )
    shaping.add_argument("--no-numbers", action="store_true", help='leave out the numbers "0".."99"')
    execution = build_parser.add_argument_group("execution")
    execution.add_argument("--counts-out", metavar="DIR", help="with --wikipedia-dump: keep the counts here")
    execution.add_argument(
        "--workers",
        metavar="N",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="processes for counting a dump (default: all cores, %(default)s here)",
    )
    execution.add_argument("--report", metavar="PATH", help="also write the build report (JSON) here")
    execution.add_argument("--quiet", action="store_true", help="no progress bars, no table")


def _add_count(commands: argparse._SubParsersAction) -> None:
    count = commands.add_parser(
        "count-wikipedia",
        help="count unigrams and bigrams of a Wikipedia dump once",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
One streaming pass over a pages-articles XML dump compressed with bzip2 (multistream or not), on all
cores and in bounded memory. Articles only (namespace 0, no redirects); markup is stripped; tokens are
words (letters, digits, inner hyphens and apostrophes, case kept) and bigrams are two tokens separated
by spaces only. In a language written without spaces (zh, ja, th, lo; from the dump's file name or
--language) a segmenter cuts the tokens of its script into words. Writes DIR/unigrams.parquet (token,
count), DIR/bigrams.parquet (bigram, count) and DIR/counts.json (pages, malformed pages, tokens,
language and segmenter, timings); `build --wikipedia-counts DIR` then applies thresholds without recounting.""",
        epilog="example: curation-metadata count-wikipedia enwiki-20240601-pages-articles-multistream.xml.bz2 "
        "--out counts/enwiki-20240601",
    )
    count.add_argument("dump", help="pages-articles*.xml.bz2 (the multistream variant parallelises best)")
    count.add_argument("--out", required=True, metavar="DIR", help="directory for the counts")
    count.add_argument(
        "--language",
        type=language_code,
        metavar="CODE",
        help="the dump's Wikipedia language code (default: from its file name, zhwiki-... is zh); a language "
        "written without spaces (zh, ja, th, lo, ...) has its words cut by a segmenter, recorded in counts.json",
    )
    count.add_argument(
        "--workers",
        metavar="N",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="worker processes (default: all cores, %(default)s here)",
    )
    count.add_argument(
        "--partitions",
        metavar="N",
        type=positive_int,
        default=16,
        help="hash partitions of the spilled counts; more = less memory at the end (default: %(default)s)",
    )
    count.add_argument(
        "--max-rows",
        metavar="N",
        type=positive_int,
        default=2_000_000,
        help="distinct keys a worker holds before spilling to disk: the memory knob, about "
        "250 bytes each (default: %(default)s)",
    )
    count.add_argument(
        "--chunk-mb", metavar="MB", type=positive_number, default=4.0, help="XML per task, in MB (default: %(default)s)"
    )
    count.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_merge_languages(commands: argparse._SubParsersAction) -> None:
    merge_parser = commands.add_parser(
        "merge-languages",
        help="merge per-language lists into one worldwide list (MetaCLIP 2)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Concatenate per-language entry lists into one worldwide list for MetaCLIP 2 curation: a Parquet table
with columns entry, language and (when an input records them) sources. Rows keep the order of the
inputs as given, each input in its own order; an entry's id is its row. An entry may repeat across
languages (each time with its own id) but not within one: a repeat is an error naming both ids, and
an empty entry one naming its row, unless --drop-invalid-entries skips them (a repeat keeps its first).
Prints entries per language.

Each INPUT is CODE=PATH (every row of PATH gets language CODE) or PATH alone for a Parquet file that
already has a language column (kept; CODE=PATH replaces it). PATH is a JSON list, a Parquet table or
a text file with one entry per line. The text before the first = is the code; write a path that
contains = as ./PATH.""",
        epilog="""\
examples:
  curation-metadata build --wordnet /usr/share/wordnet --entry-language en --out en.parquet
  curation-metadata merge-languages en=en.parquet de=de.json zh=zh.txt --out worldwide.parquet
  curation-metadata merge-languages worldwide.parquet other=other.txt --out worldwide2.parquet""",
    )
    merge_parser.add_argument(
        "inputs",
        nargs="+",
        type=parse_input,
        metavar="INPUT",
        help="CODE=PATH, or PATH of a Parquet file with a language column",
    )
    merge_parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="the worldwide list to write (Parquet; written whole or not at all)",
    )
    merge_parser.add_argument(
        "--drop-invalid-entries",
        action="store_true",
        help="skip empty entries and repeats within a language (counted in the table) instead of refusing them",
    )
    merge_parser.add_argument("--quiet", action="store_true", help="no table")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="curation-metadata", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    _add_build(commands)
    _add_count(commands)
    _add_merge_languages(commands)

    fetch_parser = commands.add_parser(
        "fetch",
        help="download MetaCLIP's released metadata.json into a cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Download MetaCLIP's released entry list (a JSON list of 500,000 strings) from
{DEFAULT_URL}
into a cache directory, with a progress bar. The file is checked before it is put in place: its size
against Content-Length (and --size), its sha256 against --sha256 when given, and that it is a JSON list
of distinct non-empty strings. What was observed (bytes, sha256, entries) is recorded beside it in
NAME.fetch.json; a second fetch reuses the cached file when it still matches. Prints the file's path.""",
        epilog='example: curation run --pool POOL --metadata "$(curation-metadata fetch --quiet)" ...',
    )
    fetch_parser.add_argument("--url", default=DEFAULT_URL, help="where to download from (default: MetaCLIP's)")
    fetch_parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache directory (default: $CURATION_CACHE or {default_cache_dir()})",
    )
    fetch_parser.add_argument("--sha256", metavar="HEX", type=sha256_hex, help="expected sha256 of the file (hex)")
    fetch_parser.add_argument("--size", metavar="N", type=positive_int, help="expected size in bytes")
    fetch_parser.add_argument("--force", action="store_true", help="download even if a verified copy is cached")
    fetch_parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_number,
        default=60.0,
        help="seconds to wait for the server before giving up (default: %(default)s)",
    )
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress bar; print only the path")

    stats_parser = commands.add_parser(
        "stats",
        help="entries, words per entry, never-matching entries, sources and overlaps",
        description="Describe an entry list: a JSON list, a text file (one entry per line) or a Parquet "
        "table from build (which also gives the per-source table with overlaps).",
    )
    stats_parser.add_argument("file", help="metadata file (.json, .parquet, or one entry per line)")
    stats_parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    stats_parser.add_argument("--examples", metavar="N", type=non_negative_int, default=5, help="examples to show")

    diff_parser = commands.add_parser(
        "diff",
        help="added, removed and re-numbered entries between two lists, per source",
        description="Compare two entry lists A and B (any format stats reads): entries added in B, removed "
        "from A, entries whose id (position) changed, and with Parquet inputs the same per source.",
    )
    diff_parser.add_argument("a", help="the old list")
    diff_parser.add_argument("b", help="the new list")
    diff_parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff_parser.add_argument("--examples", metavar="N", type=non_negative_int, default=10, help="examples to show")
    return parser


# --- commands ---------------------------------------------------------------------------------------------


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _refuse_directory(path: str, suffixes: str) -> None:
    if Path(path).is_dir():
        raise MetadataError(f"--out {path} is a directory; give a file name ending in {suffixes}")


def run_build(args: argparse.Namespace) -> int:
    for path in args.out:
        _refuse_directory(path, ".json or .parquet")
        if args.entry_language and files.is_json_path(path):
            raise MetadataError(
                f"--out {path}: a JSON list cannot hold the entries' language; with --entry-language write .parquet"
            )
    if args.counts_out and not args.wikipedia_dump:
        raise MetadataError("--counts-out only applies with --wikipedia-dump")
    started = time.perf_counter()
    request = BuildRequest(
        wordnet=args.wordnet,
        omw=args.omw,
        wordnet_language=args.wordnet_language,
        wikipedia_counts=args.wikipedia_counts,
        wikipedia_dump=args.wikipedia_dump,
        counts_out=args.counts_out,
        min_unigram=args.min_unigram,
        min_pmi=args.min_pmi,
        min_bigram_count=args.min_bigram_count,
        pageviews=args.pageviews or (),
        min_views=args.min_views,
        codes=args.language,
        min_hourly_views=args.min_hourly_views,
        keep_namespaces=args.keep_namespaces,
        extra=args.extra,
        numbers=not args.no_numbers,
        budgets=parse_budgets(args.budget),
        entry_language=args.entry_language,
        workers=args.workers,
        progress=not args.quiet,
    )
    built = build(request)
    merged = built.merged
    languages = None if args.entry_language is None else [args.entry_language] * len(merged.entries)
    info = {
        **built.info(),
        "fingerprint": fingerprint(merged.entries, languages),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if languages is not None:
        info["language"] = args.entry_language
    for path in args.out:
        kind = files.write_entries(path, merged.entries, merged.sources, info, languages)
        tagged = "" if languages is None else f", language {args.entry_language}"
        print(f"wrote {path} ({kind}, {len(merged.entries):,} entries{tagged})")
    if args.report:
        files.write_json(args.report, info)
    if not args.quiet:
        print(render_table(merged.sources, len(merged.entries), merged.reports))
        wordnet = built.notes.get("wordnet")
        if wordnet and "omw_code" in wordnet:
            print(
                f"wordnet: {wordnet['wordnet']} ({wordnet['omw_code']}, licence {wordnet['license']!r}), "
                f"{wordnet['lemma_lines']:,} lemma lines, {wordnet['distinct_lemmas']:,} distinct lemmas "
                f"({wordnet['plus_removed']:,} held '+', removed) from {wordnet['file']}"
            )
        elif wordnet:
            print(
                f"wordnet: {wordnet['synsets']:,} synsets, {wordnet['distinct_names']:,} distinct names "
                f"({wordnet['names_with_a_dot']} with a dot, kept whole; MetaCLIP's cut at the first dot "
                f"would give {wordnet['metaclip_cut_at_first_dot']:,})"
            )
        title = built.notes.get("wiki_title")
        if title and title.get("malformed_rows"):
            print(
                f"pageviews: skipped {title['malformed_rows']:,} malformed rows, e.g. {title['malformed_examples'][0]}"
            )
        print(f"fingerprint {info['fingerprint']}")
    return 0


def run_count(args: argparse.Namespace) -> int:
    summary = count_dump(
        args.dump,
        args.out,
        workers=args.workers,
        partitions=args.partitions,
        chunk_mb=args.chunk_mb,
        max_rows=args.max_rows,
        progress=not args.quiet,
        language=args.language,
    )
    r = summary.record
    print(
        f"counted {r['articles']:,} articles ({r['disambiguation']:,} of them disambiguation pages) of "
        f"{r['pages']:,} pages ({r['redirects']:,} redirects, "
        f"{r['other_namespace']:,} in other namespaces, {r['malformed']:,} malformed) in {r['seconds']:.1f} s "
        f"({r['dump_bytes'] / 1e6 / max(r['seconds'], 1e-9):.1f} MB/s of dump)"
    )
    print(
        f"{r['tokens']:,} tokens, {r['distinct_unigrams']:,} distinct unigrams, "
        f"{r['distinct_bigrams']:,} distinct bigrams -> {args.out}"
    )
    if r["segmenter"]:
        versions = ", ".join(f"{name} {version}" for name, version in r["segmenter"]["packages"].items())
        print(f"language {r['language']} ({r['language_from']}): words cut by {versions}")
    elif r["language"] is None:
        print("language unknown (the dump's file name does not say): not segmented; --language CODE says it")
    if r["malformed"]:
        print(f"skipped {r['malformed']:,} malformed pages, e.g. {r['malformed_examples'][0]}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    result = fetch(
        args.url,
        args.cache_dir,
        expected_sha256=args.sha256,
        expected_size=args.size,
        force=args.force,
        timeout=args.timeout,
        progress=not args.quiet,
    )
    how = "downloaded" if result.downloaded else "already cached, verified"
    _say(args.quiet, f"{how}: {result.entries:,} entries, {result.size:,} bytes, sha256 {result.sha256}")
    print(result.path)
    return 0


def run_merge_languages(args: argparse.Namespace) -> int:
    _refuse_directory(args.out, ".parquet")
    if files.is_json_path(args.out):
        raise MetadataError(f"--out {args.out}: a JSON list cannot hold the entries' language; write .parquet")
    merged = merge_languages(args.inputs, drop_invalid=args.drop_invalid_entries)
    info = merged.info()
    files.write_entries_parquet(
        args.out, merged.entries, merged.sources, info, merged.languages, info_key="metadata.merge"
    )
    print(
        f"wrote {args.out} (parquet, {len(merged.entries):,} entries in {len(info['languages'])} languages"
        f"{', with sources' if merged.sources is not None else ''})"
    )
    if not args.quiet:
        print(render_language_table(merged.entries, merged.languages, merged.reports))
        print(f"fingerprint {info['fingerprint']}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    metadata = load_metadata(args.file)
    result = stats(metadata, examples=args.examples)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render_stats(args.file, metadata, result))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    result = diff(load_metadata(args.a), load_metadata(args.b), examples=args.examples)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render_diff(args.a, args.b, result))
    return 0


COMMANDS = {
    "build": run_build,
    "count-wikipedia": run_count,
    "fetch": run_fetch,
    "stats": run_stats,
    "diff": run_diff,
    "merge-languages": run_merge_languages,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except MetadataError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
