"""Wikipedia unigrams and bigrams: one streaming pass over a pages-articles dump, then thresholds.

Counting (``count_dump``) reads a ``pages-articles*.xml.bz2`` dump once and writes the counts to Parquet
(``unigrams.parquet``: token, count; ``bigrams.parquet``: bigram "w1 w2", count; ``counts.json``: what was
read). Choosing entries (``frequent_unigrams``, ``pmi_bigrams``) reads those files, so thresholds can be
changed in seconds without recounting.

Parallelism (processes of the ``spawn`` context, ``workers`` of them):
- a *multistream* dump (Wikipedia's ``pages-articles-multistream.xml.bz2``: many bz2 streams, 100 pages
  each) is split into byte ranges of whole streams; each worker decompresses and counts its own ranges.
  Pages cut by a range boundary travel back as fragments and are stitched and counted in order;
- a single-stream dump is decompressed by the main process, cut at page boundaries into chunks, and the
  workers parse and count the chunks.
Memory stays bounded: each worker aggregates in Arrow and spills hash partitions to disk past
``max_rows`` rows (``metadata.spill``); the totals are reduced one partition at a time.

Tokens and bigrams are defined in ``metadata.wikitext``; in a language written without spaces
(``zhwiki-...``, or ``language=``) the tokens of its script are cut into words by ``metadata.segment``, in
each worker. Bigram PMI, as NLTK's ``BigramAssocMeasures.pmi`` that MetaCLIP's script uses:
``PMI(w1 w2) = log2(c(w1 w2) * N / (c(w1) * c(w2)))`` with c the counts of this pass and N the total
number of tokens. Because c(w1 w2) <= min(c(w1), c(w2)), PMI <= log2(N): a threshold of 30 needs
N > 2^30 (about 1.07 billion tokens, English Wikipedia has several billion) and then selects pairs of
rare words that nearly always occur together.
"""

from __future__ import annotations

import bz2
import json
import math
import multiprocessing as mp
import os
import queue
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from metadata import files
from metadata.loading import MetadataError
from metadata.segment import (
    Segmenter,
    counts_language,
    describe,
    language_of_dump,
    require_spec,
    segment_tokens,
    segmenter_for,
)
from metadata.spill import COUNT_SCHEMA, KeyCounter, reduce_bounded
from metadata.wikitext import BREAK_MARK, PageStats, article_tokens

TOKENIZER_VERSION = 2  # bump when wikitext's rules change: counts of different versions do not mix
STREAM_START = re.compile(rb"BZh[1-9]1AY&SY")  # bz2 stream header followed by the first block's magic
UNIGRAMS, BIGRAMS, RECORD = "unigrams.parquet", "bigrams.parquet", "counts.json"
PAGE_START, PAGE_END = b"<page>", b"</page>"


# --- pure pieces -----------------------------------------------------------------------------------------


def count_tokens(tokens: pa.Array | list[str]) -> tuple[pa.Table, pa.Table]:
    """(unigram counts, bigram counts) of tokens with break marks.

    Tokens are dictionary-encoded once; a bigram is then a pair of integers, counted as one int64
    (``first * vocabulary + second``), and only distinct pairs are turned back into strings."""
    if len(tokens) == 0:
        return COUNT_SCHEMA.empty_table(), COUNT_SCHEMA.empty_table()
    array = tokens if isinstance(tokens, pa.Array) else pa.array(tokens, pa.string())
    encoded = pc.dictionary_encode(array)
    words = encoded.dictionary.cast(pa.string())
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    size = len(words)
    counts = np.bincount(ids, minlength=size)
    mark = pc.index(words, BREAK_MARK).as_py()
    keep = np.ones(size, dtype=bool)
    if mark >= 0:
        keep[mark] = False
    unigrams = pa.table({"key": words.filter(pa.array(keep)), "count": pa.array(counts[keep])}, schema=COUNT_SCHEMA)
    first, second = ids[:-1], ids[1:]
    joined = (first != mark) & (second != mark)
    pairs = pc.value_counts(pa.array(first[joined] * size + second[joined]))
    codes = pairs.field("values").to_numpy()
    text = pc.binary_join_element_wise(
        words.take(pa.array(codes // size)), words.take(pa.array(codes % size)), pa.scalar(" ", pa.string())
    )
    bigrams = pa.table({"key": text, "count": pairs.field("counts").cast(pa.int64())}, schema=COUNT_SCHEMA)
    return unigrams, bigrams


def split_fragments(data: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """(head, complete pages, tail, whether a page starts here) of a decompressed range.

    ``head`` ends where the first page starts and belongs with the previous range's tail; ``tail`` starts
    after the last complete page (or at the first page start, when no page is complete here)."""
    first = data.find(PAGE_START)
    if first < 0:
        return data, b"", b"", False
    last = data.rfind(PAGE_END)
    end = last + len(PAGE_END) if last >= 0 else 0
    if end > first:
        return data[:first], data[first:end], data[end:], True
    return data[:first], b"", data[first:], True


class Stitcher:
    """Joins the tails and heads of consecutive ranges, which may arrive out of order, into texts that
    hold whole pages; ``finish`` returns whatever is left after the last range."""

    def __init__(self) -> None:
        self.carry = b""
        self.next = 0
        self.waiting: dict[int, tuple[bytes, bytes, bool]] = {}

    def add(self, index: int, head: bytes, tail: bytes, page_starts: bool) -> list[bytes]:
        self.waiting[index] = (head, tail, page_starts)
        ready: list[bytes] = []
        while self.next in self.waiting:
            head, tail, page_starts = self.waiting.pop(self.next)
            self.next += 1
            if page_starts:
                joined = self.carry + head
                if PAGE_START in joined or PAGE_END in joined:
                    ready.append(joined)
                self.carry = tail
            else:
                self.carry += head
        return ready

    def finish(self) -> bytes:
        rest, self.carry = self.carry, b""
        return rest if (PAGE_START in rest or PAGE_END in rest) else b""


def decompress_streams(data: bytes, where: str) -> bytes:
    """Decompress whole concatenated bz2 streams; truncation and trailing garbage are errors."""
    out: list[bytes] = []
    while data:
        decompressor = bz2.BZ2Decompressor()
        try:
            out.append(decompressor.decompress(data))
        except OSError as error:
            raise MetadataError(f"{where}: not valid bzip2 data ({error})") from None
        if not decompressor.eof:
            raise MetadataError(f"{where}: a bzip2 stream is truncated (the dump is incomplete?)")
        data = decompressor.unused_data
        if data and not data.startswith(b"BZh"):
            raise MetadataError(f"{where}: {len(data)} bytes of trailing data that is not bzip2")
    return b"".join(out)


def find_streams(path: Path, block: int = 16 << 20, progress: bool = False) -> list[int]:
    """Byte offsets where a bz2 stream starts (only the first for a single-stream file)."""
    starts: list[int] = []
    overlap = 9
    size = path.stat().st_size
    with (
        path.open("rb") as handle,
        tqdm(
            total=size, unit="B", unit_scale=True, desc="finding bz2 streams", disable=not progress, mininterval=0.5
        ) as bar,
    ):
        position, previous = 0, b""
        while True:
            data = handle.read(block)
            if not data:
                break
            window = previous + data
            base = position - len(previous)
            for found in STREAM_START.finditer(window):
                offset = base + found.start()
                if not starts or offset > starts[-1]:
                    starts.append(offset)
            previous = window[-overlap:]
            position += len(data)
            bar.update(len(data))
    return starts


def is_multistream(path: Path, probe: int = 2 << 20) -> bool:
    """True when the first bz2 stream ends before the file does (Wikipedia's multistream dumps start
    with a small stream holding the siteinfo header). Reads at most ``probe`` compressed bytes, so a
    single-stream dump is not decompressed twice."""
    decompressor = bz2.BZ2Decompressor()
    consumed = 0
    with path.open("rb") as handle:
        while consumed < probe and not decompressor.eof:
            block = handle.read(1 << 16)
            if not block:
                return False
            consumed += len(block)
            try:
                decompressor.decompress(block, max_length=0)
                while not decompressor.eof and not decompressor.needs_input:
                    decompressor.decompress(b"", max_length=1 << 20)
            except OSError:
                return False  # reported properly by the counting pass
    return decompressor.eof and (bool(decompressor.unused_data) or consumed < path.stat().st_size)


def plan_ranges(starts: list[int], size: int, target: int) -> list[tuple[int, int]]:
    """Consecutive byte ranges of whole streams, each about ``target`` bytes (at least one stream)."""
    ranges: list[tuple[int, int]] = []
    begin = 0  # from the first byte, even if the first stream is an empty one the scan did not see
    for stop in [*starts[1:], size]:
        if stop - begin >= target:
            ranges.append((begin, stop))
            begin = stop
    if begin < size:
        ranges.append((begin, size))
    return ranges


# --- the counting work, in a worker process or inline ---------------------------------------------------


@dataclass
class WorkerReport:
    worker: int
    stats: PageStats
    uncompressed_bytes: int
    unigram_files: list[list[Path]]
    bigram_files: list[list[Path]]


class DumpCounter:
    """Counts what one process is given: text chunks of whole pages, or byte ranges of whole streams."""

    def __init__(
        self, dump: Path, spill_dir: Path, worker: int, partitions: int, max_rows: int, language: str | None = None
    ):
        self.dump = dump
        self.segmenter: Segmenter | None = segmenter_for(language)  # loaded once per process
        self.worker = worker
        self.stats = PageStats()
        self.uncompressed_bytes = 0
        directory = spill_dir / f"worker-{worker:03d}"
        self.unigrams = KeyCounter(directory, "unigram", partitions, max_rows)
        self.bigrams = KeyCounter(directory, "bigram", partitions, max_rows)

    def count_pages(self, data: bytes) -> None:
        tokens = article_tokens(data.decode("utf-8", errors="replace"), self.stats)
        if self.segmenter is not None:
            tokens = segment_tokens(tokens, self.segmenter)
        unigrams, bigrams = count_tokens(tokens)
        self.unigrams.add(unigrams)
        self.bigrams.add(bigrams)

    def count_range(self, start: int, stop: int) -> tuple[bytes, bytes, bool]:
        with self.dump.open("rb") as handle:
            handle.seek(start)
            compressed = handle.read(stop - start)
        data = decompress_streams(compressed, f"{self.dump} bytes {start}-{stop}")
        self.uncompressed_bytes += len(data)
        head, body, tail, page_starts = split_fragments(data)
        if body:
            self.count_pages(body)
        return head, tail, page_starts

    def run(self, task: tuple) -> tuple:
        """One task -> one result message (the same protocol inline and across processes)."""
        if task[0] == "range":
            _, index, start, stop = task
            head, tail, page_starts = self.count_range(start, stop)
            return ("range", index, stop - start, head, tail, page_starts)
        _, index, data, fresh = task
        if fresh:  # decompressed by the main process; stitched fragments were counted with their range
            self.uncompressed_bytes += len(data)
        self.count_pages(data)
        return ("text", index, 0, b"", b"", False)

    def finish(self) -> WorkerReport:
        self.unigrams.spill()
        self.bigrams.spill()
        return WorkerReport(self.worker, self.stats, self.uncompressed_bytes, self.unigrams.files, self.bigrams.files)


def reduce_task(task: tuple) -> tuple:
    """("reduce", kind, partition, spill files, output path, max rows) -> ("reduced", kind, partition, rows,
    path): the partition's totals, written to ``output path`` piece by piece (bounded memory)."""
    _, kind, part, spill_files, out, max_rows = task
    rows = 0
    out = Path(out)
    with pq.ParquetWriter(out, COUNT_SCHEMA, compression="none") as writer:
        for table in reduce_bounded([Path(f) for f in spill_files], max_rows, out.with_suffix(".scratch")):
            writer.write_table(table)
            rows += table.num_rows
    shutil.rmtree(out.with_suffix(".scratch"), ignore_errors=True)
    return ("reduced", kind, part, rows, str(out))


def _worker_main(
    tasks: mp.Queue,
    results: mp.Queue,
    barrier,
    dump: str,
    spill_dir: str,
    worker: int,
    partitions: int,
    max_rows: int,
    language: str | None = None,
) -> None:
    """Worker loop in two phases: count tasks until a None (then the report), wait for every worker
    to get its own None, then reduce tasks until a second None. An exception travels back as one line."""
    try:
        counter = DumpCounter(Path(dump), Path(spill_dir), worker, partitions, max_rows, language)
        while (task := tasks.get()) is not None:
            results.put(counter.run(task))
        results.put(("done", counter.finish()))
        barrier.wait()
        while (task := tasks.get()) is not None:
            results.put(reduce_task(task))
    except MetadataError as error:
        results.put(("failed", worker, str(error)))
    except Exception as error:  # noqa: BLE001 - reported to the main process, which stops the count
        results.put(("failed", worker, f"worker {worker}: {type(error).__name__}: {error}"))


# --- producing tasks ----------------------------------------------------------------------------------------


def _text_chunks(dump: Path, chunk_bytes: int, progress: Callable[[int], None]) -> Iterator[tuple]:
    """Single-stream dump: decompress here and cut after a page end every ``chunk_bytes`` or so."""
    index = 0
    with dump.open("rb") as raw:
        stream = bz2.BZ2File(raw)
        buffer = bytearray()
        seen = 0
        while True:
            try:
                block = stream.read(1 << 20)
            except EOFError:
                raise MetadataError(
                    f"{dump} is truncated: the bzip2 stream ends early (incomplete download?)"
                ) from None
            except OSError as error:
                raise MetadataError(f"{dump}: not valid bzip2 data ({error})") from None
            progress(raw.tell() - seen)
            seen = raw.tell()
            if not block:
                if buffer:
                    yield ("text", index, bytes(buffer), True)
                return
            buffer += block
            if len(buffer) >= chunk_bytes:
                cut = buffer.rfind(PAGE_END)
                if cut >= 0:
                    cut += len(PAGE_END)
                    yield ("text", index, bytes(buffer[:cut]), True)
                    index += 1
                    del buffer[:cut]


@dataclass
class CountSummary:
    """What ``count_dump`` wrote and saw (also saved as counts.json)."""

    record: dict
    out_dir: Path


def _check_dump(dump: Path) -> None:
    if not dump.exists():
        raise MetadataError(f"wikipedia dump not found: {dump}")
    if dump.is_dir():
        raise MetadataError(f"wikipedia dump is a directory, expected a .xml.bz2 file: {dump}")
    with dump.open("rb") as handle:
        magic = handle.read(3)
    if magic != b"BZh":
        raise MetadataError(f"wikipedia dump {dump} is not a bzip2 file (expected a pages-articles*.xml.bz2 dump)")
    encoding = _foreign_encoding(dump)
    if encoding:
        raise MetadataError(
            f"wikipedia dump {dump} is {encoding} text, but MediaWiki dumps are UTF-8: convert it "
            f"first (bzcat DUMP | iconv -f {encoding} -t UTF-8 | bzip2 > DUMP-utf8.xml.bz2)"
        )


def _foreign_encoding(dump: Path, probe: int = 1 << 12) -> str | None:
    """The name of the encoding when the dump's first bytes are UTF-16 or UTF-32 (a byte-order mark, or the
    zero bytes that ASCII markup has in those encodings), else None."""
    decompressor = bz2.BZ2Decompressor()
    start = b""
    with dump.open("rb") as handle:
        try:
            while len(start) < probe and not decompressor.eof and (block := handle.read(1 << 16)):
                start += decompressor.decompress(block, max_length=probe - len(start))
        except OSError:
            return None  # reported properly by the counting pass
    if start.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"  # a byte-order mark, which iconv reads
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    for head, name in (
        (b"<\x00\x00\x00", "UTF-32LE"),
        (b"\x00\x00\x00<", "UTF-32BE"),
        (b"<\x00", "UTF-16LE"),
        (b"\x00<", "UTF-16BE"),
    ):
        if start.startswith(head):
            return name
    return None


def count_dump(
    dump: str | Path,
    out_dir: str | Path,
    workers: int | None = None,
    partitions: int = 16,
    chunk_mb: float = 4.0,
    max_rows: int = 2_000_000,
    progress: bool = True,
    range_bytes: int | None = None,
    language: str | None = None,
) -> CountSummary:
    """Count unigrams and bigrams of the dump's articles into ``out_dir`` (see the module docstring).

    ``chunk_mb``: XML per task; ``range_bytes``: compressed bytes per task of a multistream dump
    (default: a quarter of ``chunk_mb``, bz2 expanding text about four times). ``language``: the dump's
    Wikipedia code (default: from its file name, ``zhwiki-...``); a language written without spaces gets
    its words cut by ``metadata.segment``, and one without an offline segmenter is refused."""
    dump, out_dir = Path(dump), Path(out_dir)
    _check_dump(dump)
    language_from = "given by --language" if language else None
    if language is None:
        language = language_of_dump(dump)
        language_from = "from the dump's file name" if language else None
    spec = require_spec(language)  # refused before any work; loaded by each counting process
    segmenter = describe(spec) if spec else None
    workers = max(1, workers or os.cpu_count() or 1)
    started = time.perf_counter()
    size = dump.stat().st_size
    starts = find_streams(dump, progress=progress) if is_multistream(dump) else [0]
    multistream = len(starts) > 1
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RECORD).unlink(missing_ok=True)  # older counts here are no longer complete
    spill_dir = Path(tempfile.mkdtemp(prefix=".spill-", dir=out_dir))
    bar = tqdm(total=size, unit="B", unit_scale=True, desc="counting dump", disable=not progress, mininterval=0.5)
    try:
        if multistream:
            target = range_bytes or max(1 << 16, int(chunk_mb * (1 << 20) / 4))
            ranges = plan_ranges(starts, size, target)
            tasks: Iterator[tuple] = (("range", i, a, b) for i, (a, b) in enumerate(ranges))
        else:
            tasks = _text_chunks(dump, max(1, int(chunk_mb * (1 << 20))), bar.update)
        run = _run_inline if workers == 1 else _run_processes
        reports, reduced = run(tasks, dump, spill_dir, workers, partitions, max_rows, bar, language)
        bar.close()
        stats = PageStats()
        uncompressed = 0
        for report in reports:
            stats.add(report.stats)
            uncompressed += report.uncompressed_bytes
        if stats.pages == 0:
            raise MetadataError(f"wikipedia dump {dump} holds no <page> elements (expected a pages-articles XML dump)")
        tokens, distinct_unigrams = _write_counts(out_dir / UNIGRAMS, "token", reduced["unigram"])
        bigram_total, distinct_bigrams = _write_counts(out_dir / BIGRAMS, "bigram", reduced["bigram"])
        record = {
            "dump": str(dump.resolve()),
            "dump_bytes": size,
            "format": "multistream" if multistream else "single-stream",
            "streams": len(starts),
            "uncompressed_bytes": uncompressed,
            "tokenizer_version": TOKENIZER_VERSION,
            "language": language,
            "language_from": language_from,
            "segmenter": segmenter,
            **stats.as_dict(),
            "tokens": tokens,
            "bigram_occurrences": bigram_total,
            "distinct_unigrams": distinct_unigrams,
            "distinct_bigrams": distinct_bigrams,
            "workers": workers,
            "partitions": partitions,
            "seconds": round(time.perf_counter() - started, 3),
        }
        files.write_json(out_dir / RECORD, record)  # last: its presence marks complete counts
        return CountSummary(record, out_dir)
    finally:
        bar.close()
        shutil.rmtree(spill_dir, ignore_errors=True)


Reduced = dict[str, list[tuple[Path, int, int]]]  # kind -> per partition (file, partition, rows)


def _reduce_tasks(reports: list[WorkerReport], partitions: int, spill_dir: Path, max_rows: int) -> list[tuple]:
    tasks = []
    for kind in ("unigram", "bigram"):
        for part in range(partitions):
            spill_files = [
                str(path)
                for report in reports
                for path in (report.unigram_files if kind == "unigram" else report.bigram_files)[part]
            ]
            if spill_files:
                tasks.append(
                    ("reduce", kind, part, spill_files, str(spill_dir / f"total-{kind}-{part:04d}.parquet"), max_rows)
                )
    return tasks


def _collect(reduced: Reduced, message: tuple) -> None:
    _, kind, part, rows, out = message
    reduced[kind].append((Path(out), part, rows))


def _sorted(reduced: Reduced) -> Reduced:
    return {kind: sorted(items, key=lambda item: item[1]) for kind, items in reduced.items()}


def _run_inline(
    tasks: Iterator[tuple],
    dump: Path,
    spill_dir: Path,
    workers: int,
    partitions: int,
    max_rows: int,
    bar: tqdm,
    language: str | None,
) -> tuple[list[WorkerReport], Reduced]:
    counter = DumpCounter(dump, spill_dir, 0, partitions, max_rows, language)
    stitcher = Stitcher()
    for task in tasks:
        result = counter.run(task)
        if result[0] == "range":
            bar.update(result[2])
            for fragment in stitcher.add(result[1], result[3], result[4], result[5]):
                counter.count_pages(fragment)
    rest = stitcher.finish()
    if rest:
        counter.count_pages(rest)
    reports = [counter.finish()]
    reduced: Reduced = {"unigram": [], "bigram": []}
    jobs = _reduce_tasks(reports, partitions, spill_dir, max_rows)
    for job in jobs:
        _collect(reduced, reduce_task(job))
    return reports, _sorted(reduced)


def _run_processes(
    tasks: Iterator[tuple],
    dump: Path,
    spill_dir: Path,
    workers: int,
    partitions: int,
    max_rows: int,
    bar: tqdm,
    language: str | None,
) -> tuple[list[WorkerReport], Reduced]:
    context = mp.get_context("spawn")
    task_queue: mp.Queue = context.Queue()
    results: mp.Queue = context.Queue()
    barrier = context.Barrier(workers)
    processes = [
        context.Process(
            target=_worker_main,
            daemon=True,
            args=(task_queue, results, barrier, str(dump), str(spill_dir), worker, partitions, max_rows, language),
        )
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        reports = _drive(tasks, task_queue, results, processes, bar)
        jobs = _reduce_tasks(reports, partitions, spill_dir, max_rows)
        for job in jobs:
            task_queue.put(job)
        reduced: Reduced = {"unigram": [], "bigram": []}
        for _ in jobs:
            message = _receive(results, processes)
            if message[0] == "failed":
                raise MetadataError(message[2])
            _collect(reduced, message)
        for _ in processes:
            task_queue.put(None)
        for process in processes:
            process.join(timeout=30)
        return reports, _sorted(reduced)
    finally:
        barrier.abort()
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


def _receive(results: mp.Queue, processes: list) -> tuple:
    """The next result; a worker that died without a word is an error, not a hang."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            for worker, process in enumerate(processes):
                if not process.is_alive() and process.exitcode not in (0, None):
                    raise MetadataError(f"counting worker {worker} died (exit code {process.exitcode})") from None


def _drive(
    tasks: Iterator[tuple], task_queue: mp.Queue, results: mp.Queue, processes: list, bar: tqdm
) -> list[WorkerReport]:
    """Keep about two tasks per worker in flight, stitch range fragments in order, collect reports."""
    limit = 2 * len(processes)
    waiting: deque[tuple] = deque()
    stitcher = Stitcher()
    exhausted = stitched = False
    in_flight = 0
    while True:
        while in_flight < limit:
            if waiting:
                task = waiting.popleft()
            elif not exhausted:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    continue
            else:
                break
            task_queue.put(task)
            in_flight += 1
        if in_flight == 0 and exhausted and not waiting:
            if stitched:
                break
            stitched = True
            rest = stitcher.finish()
            if rest:
                waiting.append(("text", "rest", rest, False))
            continue
        message = _receive(results, processes)
        if message[0] == "failed":
            raise MetadataError(message[2])
        in_flight -= 1
        if message[0] == "range":
            bar.update(message[2])
            for fragment in stitcher.add(message[1], message[3], message[4], message[5]):
                waiting.append(("text", "fragment", fragment, False))
    for _ in processes:
        task_queue.put(None)
    reports: list[WorkerReport] = []
    while len(reports) < len(processes):
        message = _receive(results, processes)
        if message[0] == "failed":
            raise MetadataError(message[2])
        reports.append(message[1])
    return reports


def _write_counts(path: Path, key_name: str, reduced: list[tuple[Path, int, int]]) -> tuple[int, int]:
    """Concatenate the reduced partitions into one Parquet file (a row group each), atomically.
    Returns (sum of counts, distinct keys)."""
    schema = pa.schema([pa.field(key_name, pa.string()), pa.field("count", pa.int64())])
    total = distinct = 0
    with files.atomic_path(path) as temporary:
        with pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
            for part_file, _, _ in reduced:
                for batch in pq.ParquetFile(part_file).iter_batches(batch_size=1 << 20):
                    total += int(pc.sum(batch.column("count")).as_py() or 0)
                    distinct += batch.num_rows
                    writer.write_table(pa.Table.from_batches([batch]).rename_columns([key_name, "count"]))
    return total, distinct


# --- from counts to entries -----------------------------------------------------------------------------


def read_record(counts_dir: str | Path) -> dict:
    """counts.json of a finished count, after checking the count files are there and that they were
    tokenized and segmented as this code does (``language``: the counts' language, None when unknown)."""
    counts_dir = Path(counts_dir)
    if not counts_dir.is_dir():
        raise MetadataError(
            f"wikipedia counts directory not found: {counts_dir} "
            "(make it with `curation-metadata count-wikipedia DUMP --out DIR`)"
        )
    record_path = counts_dir / RECORD
    if not record_path.is_file():
        raise MetadataError(f"{counts_dir} has no {RECORD}: not a finished `count-wikipedia` output")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MetadataError(f"{record_path} is not valid JSON: {error}") from None
    for name in (UNIGRAMS, BIGRAMS):
        if not (counts_dir / name).is_file():
            raise MetadataError(f"{counts_dir} lacks {name}")
    if record.get("tokenizer_version") != TOKENIZER_VERSION:
        raise MetadataError(
            f"{counts_dir} was counted with tokenizer version {record.get('tokenizer_version')}, "
            f"this code uses {TOKENIZER_VERSION}: count the dump again"
        )
    record["language"] = counts_language(record, str(counts_dir))  # as checked; see metadata.segment
    if not record.get("tokens"):
        raise MetadataError(f"wikipedia counts in {counts_dir} hold no tokens (empty source)")
    return record


def frequent_unigrams(counts_dir: str | Path, min_count: int) -> list[str]:
    """Tokens seen at least ``min_count`` times, most frequent first (ties in code-point order)."""
    counts_dir = Path(counts_dir)
    read_record(counts_dir)
    kept = [
        batch.filter(pc.greater_equal(batch.column("count"), min_count))
        for batch in pq.ParquetFile(counts_dir / UNIGRAMS).iter_batches(batch_size=1 << 20)
    ]
    table = pa.Table.from_batches(kept, schema=pq.read_schema(counts_dir / UNIGRAMS))
    table = table.sort_by([("count", "descending"), ("token", "ascending")])
    return table.column("token").to_pylist()


def exact_pmi(count: np.ndarray, c1: np.ndarray, c2: np.ndarray, log_total: float) -> np.ndarray:
    """log2(count * N / (c1 * c2)), computed from the fraction count / (c1 * c2) in lowest terms p / q.

    Bigrams whose PMI is exactly equal have the same p and q, and so get the same float whatever the
    order of their words or a common factor (1/(5*11) and 1/(11*5), 3/(15*6) and 1/(5*6)); a formula that
    sums four logarithms leaves them an ulp apart, which would order ties by rounding noise."""
    count, c1, c2 = count.astype(np.int64), c1.astype(np.int64), c2.astype(np.int64)
    common = np.gcd(count, c1)
    count, c1 = count // common, c1 // common
    common = np.gcd(count, c2)
    count, c2 = count // common, c2 // common
    # a product of two exact floats is correctly rounded, so equal q give equal floats
    return np.log2(count.astype(np.float64)) - np.log2(c1.astype(np.float64) * c2.astype(np.float64)) + log_total


def pmi_table(counts_dir: str | Path, min_pmi: float, min_count: int = 1) -> pa.Table:
    """Bigrams with PMI >= ``min_pmi`` and count >= ``min_count``: (bigram, count, pmi), highest PMI first,
    equal PMIs (``exact_pmi``) in code-point order of the bigram.

    Only words seen at most N / 2^min_pmi times can be part of such a bigram (PMI <= log2(N / c(w)) for
    each of its words), so only those words' counts are looked up."""
    counts_dir = Path(counts_dir)
    record = read_record(counts_dir)
    total = int(record["tokens"])
    log_total = math.log2(total)
    ceiling = total / 2.0**min_pmi
    words = []
    for batch in pq.ParquetFile(counts_dir / UNIGRAMS).iter_batches(batch_size=1 << 20):
        words.append(batch.filter(pc.less_equal(batch.column("count"), ceiling)))
    vocabulary = pa.Table.from_batches(words, schema=pq.read_schema(counts_dir / UNIGRAMS))
    first = pa.table({"w1": vocabulary.column("token"), "c1": vocabulary.column("count")})
    second = pa.table({"w2": vocabulary.column("token"), "c2": vocabulary.column("count")})
    schema = pa.schema([("bigram", pa.string()), ("count", pa.int64()), ("pmi", pa.float64())])
    found: list[pa.Table] = []
    if vocabulary.num_rows:
        for batch in pq.ParquetFile(counts_dir / BIGRAMS).iter_batches(batch_size=1 << 22):
            batch = batch.filter(pc.greater_equal(batch.column("count"), min_count))
            if batch.num_rows == 0:
                continue
            parts = pc.split_pattern(batch.column("bigram"), " ", max_splits=1)
            table = pa.table(
                {
                    "bigram": batch.column("bigram"),
                    "count": batch.column("count"),
                    "w1": pc.list_element(parts, 0),
                    "w2": pc.list_element(parts, 1),
                }
            )
            table = table.join(first, "w1", join_type="inner").join(second, "w2", join_type="inner")
            if table.num_rows == 0:
                continue
            pmi = exact_pmi(
                table.column("count").to_numpy(),
                table.column("c1").to_numpy(),
                table.column("c2").to_numpy(),
                log_total,
            )
            keep = pmi >= min_pmi
            if keep.any():
                found.append(
                    pa.table(
                        {
                            "bigram": table.column("bigram").filter(pa.array(keep)),
                            "count": table.column("count").filter(pa.array(keep)),
                            "pmi": pa.array(pmi[keep]),
                        },
                        schema=schema,
                    )
                )
    result = pa.concat_tables(found) if found else schema.empty_table()
    return result.sort_by([("pmi", "descending"), ("bigram", "ascending")])


def pmi_bigrams(counts_dir: str | Path, min_pmi: float, min_count: int = 1) -> list[str]:
    """Entries of ``pmi_table``: bigrams "w1 w2" with PMI >= ``min_pmi``, highest PMI first."""
    return pmi_table(counts_dir, min_pmi, min_count).column("bigram").to_pylist()
