"""Popular Wikipedia titles: views summed over Wikimedia's hourly pageview files.

Files: ``pageviews-YYYYMMDD-HHMMSS.gz`` from https://dumps.wikimedia.org/other/pageviews/, one line per
(project, page) and hour: ``domain_code page_title count_views total_response_size``, separated by
single spaces. ``domain_code`` names language and project: ``en`` is English Wikipedia on desktop,
``en.m`` its mobile site, ``en.b`` English Wikibooks, ``de`` German Wikipedia.

Titles are as the page's URL spells them: percent-escapes are decoded (``Barack_Obama%27s`` and
``Barack_Obama's`` are one title) and underscores become spaces, so a title reads as an article's title
does. We sum ``count_views`` per decoded title over every line whose code is one of the chosen codes
(MetaCLIP used ``en``, 26 sampled days) and keep titles with at least ``min_views`` views, most viewed
first. ``Main_Page`` (the front page) and ``-`` (no title) are never titles. Titles in a namespace other
than articles (``Special:``, ``File:``, ``Talk:``...) are left out unless asked for; only English and
canonical namespace names are recognised. Lines that do not
have four fields or whose count is not a whole number are skipped, counted and reported (never silent).

Files are streamed with Arrow's CSV reader and the sums kept in a ``KeyCounter``, so a month of hours
fits in bounded memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv
from tqdm import tqdm

from metadata.loading import MetadataError
from metadata.namespaces import NAMESPACE_PATTERN
from metadata.spill import COUNT_SCHEMA, KeyCounter, reduce_bounded

COLUMNS = ["code", "title", "views", "size"]
NOT_TITLES = pa.array(["Main Page", "-"], pa.string())  # views of the front page, and of no page at all
FILE_NAME = re.compile(r"^pageviews-(\d{8})-(\d{6})\.gz$")


@dataclass
class PageviewStats:
    files: int = 0
    rows: int = 0  # well-formed rows read, every code
    selected_rows: int = 0  # rows of the chosen codes with a valid count
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    namespaced_rows: int = 0
    main_page_rows: int = 0  # rows for the front page or for no page at all ("-")
    below_hourly_rows: int = 0
    hours: list[str] = field(default_factory=list)
    unnamed_files: list[str] = field(default_factory=list)  # not called pageviews-YYYYMMDD-HHMMSS.gz
    codes_seen: set[str] = field(default_factory=set)  # a few codes, to help after a wrong --language

    def note_malformed(self, what: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < 5:
            self.malformed_examples.append(what)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "rows": self.rows,
            "selected_rows": self.selected_rows,
            "malformed_rows": self.malformed,
            "malformed_examples": self.malformed_examples,
            "namespaced_rows": self.namespaced_rows,
            "main_page_rows": self.main_page_rows,
            "below_hourly_rows": self.below_hourly_rows,
            "first_hour": min(self.hours) if self.hours else None,
            "last_hour": max(self.hours) if self.hours else None,
            "distinct_days": len({h[:8] for h in self.hours}),
        }


@dataclass
class PopularTitles:
    entries: list[str]
    views: list[int]
    distinct_titles: int
    stats: PageviewStats


def _check_files(paths: Sequence[str | Path]) -> list[Path]:
    if not paths:
        raise MetadataError("no pageview files given")
    checked: list[Path] = []
    seen: dict[Path, str] = {}
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise MetadataError(f"pageview file not found: {path}")
        resolved = path.resolve()
        if resolved in seen:
            raise MetadataError(f"pageview file given twice: {path} (its views would be counted twice)")
        seen[resolved] = str(path)
        with path.open("rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise MetadataError(
                    f"pageview file {path} is not gzip-compressed (expected pageviews-YYYYMMDD-HHMMSS.gz)"
                )
        checked.append(path)
    return checked


def _batches(path: Path, stats: PageviewStats):
    """Record batches of one file (all columns as strings); malformed rows are noted and skipped."""

    def invalid(row) -> str:
        text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
        stats.note_malformed(f"{path.name} row {row.number}: {row.actual_columns} fields in {text!r}")
        return "skip"

    read = csv.ReadOptions(column_names=COLUMNS, block_size=1 << 24, use_threads=False)
    parse = csv.ParseOptions(
        delimiter=" ",
        quote_char=False,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=True,
        invalid_row_handler=invalid,
    )
    convert = csv.ConvertOptions(
        column_types={name: pa.string() for name in COLUMNS},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = csv.open_csv(
            pa.input_stream(str(path), compression="gzip"),
            read_options=read,
            parse_options=parse,
            convert_options=convert,
        )
        yield from reader
    except (pa.ArrowException, OSError, EOFError) as error:
        raise MetadataError(f"pageview file {path} cannot be read: {error}") from None


def _unquote(title: str) -> str:
    return unquote(title, errors="replace")


def decode_titles(titles: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Titles with their percent-escapes decoded (``Barack_Obama%27s`` is ``Barack_Obama's``), as UTF-8;
    only the titles holding a ``%`` take the Python step."""
    array = titles.combine_chunks() if isinstance(titles, pa.ChunkedArray) else titles
    hits = pc.fill_null(pc.match_substring(array, "%"), False)
    if not pc.any(hits).as_py():
        return array
    decoded = pa.array([_unquote(title) for title in array.filter(hits).to_pylist()], array.type)
    return pc.replace_with_mask(array, hits, decoded)


def selected_views(
    batch: pa.RecordBatch,
    codes: Sequence[str],
    min_hourly: int,
    keep_namespaces: bool,
    stats: PageviewStats,
    where: str,
) -> pa.Table:
    """(title with spaces, views) of the batch's rows for ``codes``; bad counts are noted and skipped."""
    stats.rows += batch.num_rows
    if len(stats.codes_seen) < 20:
        stats.codes_seen.update(pc.unique(batch.column("code")).to_pylist()[: 20 - len(stats.codes_seen)])
    rows = batch.filter(pc.is_in(batch.column("code"), pa.array(list(codes), pa.string())))
    valid = pc.match_substring_regex(rows.column("views"), r"^[0-9]{1,15}$")
    if not pc.all(valid).as_py():
        bad = rows.filter(pc.invert(valid))
        for code, title, views in zip(*(bad.column(c).to_pylist() for c in ("code", "title", "views"))):
            stats.note_malformed(f"{where}: view count {views!r} is not a whole number ({code} {title})")
        rows = rows.filter(valid)
    views = pc.cast(rows.column("views"), pa.int64())
    titles = pc.replace_substring(decode_titles(rows.column("title")), "_", " ")
    front = pc.is_in(titles, NOT_TITLES)
    if pc.any(front).as_py():
        stats.main_page_rows += int(pc.sum(front).as_py())
        titles, views = titles.filter(pc.invert(front)), views.filter(pc.invert(front))
    if not keep_namespaces:
        outside = pc.match_substring_regex(titles, NAMESPACE_PATTERN)
        stats.namespaced_rows += int(pc.sum(outside).as_py() or 0)
        titles, views = titles.filter(pc.invert(outside)), views.filter(pc.invert(outside))
    if min_hourly > 1:
        enough = pc.greater_equal(views, min_hourly)
        stats.below_hourly_rows += len(views) - int(pc.sum(enough).as_py() or 0)
        titles, views = titles.filter(enough), views.filter(enough)
    stats.selected_rows += len(views)
    table = pa.table({"key": titles, "count": views}, schema=COUNT_SCHEMA)
    summed = table.group_by("key", use_threads=False).aggregate([("count", "sum")])
    return pa.table({"key": summed.column("key"), "count": summed.column("count_sum")}, schema=COUNT_SCHEMA)


def popular_titles(
    paths: Sequence[str | Path],
    min_views: int = 70,
    codes: Sequence[str] = ("en",),
    min_hourly: int = 1,
    keep_namespaces: bool = False,
    partitions: int = 16,
    max_rows: int = 2_000_000,
    progress: bool = True,
    work_dir: str | Path | None = None,
) -> PopularTitles:
    """Titles with at least ``min_views`` views summed over ``paths`` for the ``codes``, most viewed
    first (ties in code-point order). ``min_hourly`` > 1 ignores hours with fewer views, as MetaCLIP's
    script did with 50."""
    files = _check_files(paths)
    stats = PageviewStats()
    spill_dir = Path(tempfile.mkdtemp(prefix="pageviews-", dir=work_dir))
    try:
        counter = KeyCounter(spill_dir, "views", partitions, max_rows)
        for path in tqdm(files, desc="pageview files", unit="file", disable=not progress):
            stats.files += 1
            named = FILE_NAME.match(path.name)
            if named:
                stats.hours.append(named.group(1) + named.group(2))
            else:
                stats.unnamed_files.append(path.name)
            for batch in _batches(path, stats):
                counter.add(selected_views(batch, codes, min_hourly, keep_namespaces, stats, path.name))
        counter.spill()
        if stats.selected_rows == 0:
            seen = ", ".join(sorted(stats.codes_seen)) or "none"
            raise MetadataError(
                f"no pageview rows for {'/'.join(codes)} in {len(files)} file(s) (empty source; codes seen: {seen})"
            )
        kept: list[pa.Table] = []
        distinct = 0
        for files_of_part in counter.files:
            if not files_of_part:
                continue
            for totals in reduce_bounded(files_of_part, max_rows, spill_dir / "split"):
                distinct += totals.num_rows
                kept.append(totals.filter(pc.greater_equal(totals.column("count"), min_views)))
        table = pa.concat_tables(kept) if kept else COUNT_SCHEMA.empty_table()
        table = table.sort_by([("count", "descending"), ("key", "ascending")])
        return PopularTitles(table.column("key").to_pylist(), table.column("count").to_pylist(), distinct, stats)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
