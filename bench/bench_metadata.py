"""Benchmark: Wikipedia dump counting throughput (MB of compressed dump per second), 1 and 2 workers.

Generates a synthetic pages-articles dump shaped like the real one (XML with siteinfo, articles with
templates, references, links, tables, headings; redirects and talk pages; a Zipf vocabulary) in a work
directory outside the repository, in both layouts Wikipedia publishes: multistream (bz2 streams of 100
pages) and single-stream. Then times `python -m metadata count-wikipedia` on each with --workers 1 and 2,
and writes bench/results/metadata.json and bench/results/metadata.md.

    python bench/bench_metadata.py --workdir /tmp/bench-metadata --size-mb 300
"""

from __future__ import annotations

import argparse
import bz2
import json
import multiprocessing as mp
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGES_PER_STREAM = 100  # as in Wikipedia's multistream dumps
SYLLABLES = [
    "ka",
    "to",
    "ri",
    "mo",
    "ne",
    "sa",
    "lu",
    "vi",
    "de",
    "po",
    "an",
    "el",
    "or",
    "in",
    "us",
    "ta",
    "be",
    "go",
    "ha",
    "ji",
    "ku",
    "la",
    "mi",
    "no",
    "pe",
    "qu",
    "ro",
    "si",
    "tu",
    "we",
]
HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>enwiki</dbname>
    <base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.41</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
    </namespaces>
  </siteinfo>
"""
FOOTER = "</mediawiki>\n"


def vocabulary(size: int, seed: int) -> np.ndarray:
    """Distinct pseudo-words, shorter ones first (they get the high Zipf ranks, as in real text)."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    length = 1
    while len(words) < size:
        for _ in range(size * 2):
            word = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), length))
            words.setdefault(word, None)
            if len(words) >= size:
                break
        length += 1
    out = np.array(list(words), dtype=object)
    capital = rng.random(len(out)) < 0.12
    out[capital] = [w.capitalize() for w in out[capital]]
    return out


class PageWriter:
    """Random article XML from a Zipf law over the vocabulary."""

    def __init__(self, words: np.ndarray, seed: int) -> None:
        self.words = words
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, len(words) + 1)
        weights = 1.0 / ranks**1.07
        self.cdf = np.cumsum(weights) / weights.sum()
        self.buffer: list[str] = []
        self.at = 0
        self.rolls: list[float] = []

    def draw(self, n: int) -> list[str]:
        """n words, Zipf-distributed (drawn in bulk: one numpy call per 64k words)."""
        if self.at + n > len(self.buffer):
            self.buffer = self.words[np.searchsorted(self.cdf, self.rng.random(1 << 16))].tolist()
            self.at = 0
        self.at += n
        return self.buffer[self.at - n : self.at]

    def roll(self) -> float:
        if not self.rolls:
            self.rolls = self.rng.random(1 << 14).tolist()
        return self.rolls.pop()

    def sentence(self) -> str:
        words = self.draw(6 + int(self.roll() * 22))
        roll = [self.roll() for _ in range(4)]
        if roll[0] < 0.35:
            i = int(self.roll() * (len(words) - 1))
            words[i] = f"[[{words[i]} {words[i + 1]}|{words[i]}]]" if roll[1] < 0.5 else f"[[{words[i]}]]"
        if roll[2] < 0.2:
            words[-1] += (
                f"&lt;ref&gt;{{{{cite web|title={' '.join(self.draw(4))}|url=https://example.org/{words[0]}}}}}&lt;/ref&gt;"
            )
        if roll[3] < 0.15:
            words[0] = f"'''{words[0]}'''"
        text = " ".join(words)
        end = [".", ".", ".", ",", ";", " (" + self.draw(1)[0] + ")."][int(self.roll() * 6)]
        return text[:1].upper() + text[1:] + end

    def article(self) -> str:
        paragraphs = []
        paragraphs.append("{{Infobox thing|name=" + " ".join(self.draw(2)) + "|size={{convert|3|km}}}}")
        for section in range(1 + int(self.roll() * 5)):
            if section:
                paragraphs.append(f"== {' '.join(self.draw(2))} ==")
            paragraphs.append(" ".join(self.sentence() for _ in range(2 + int(self.roll() * 7))))
        if self.roll() < 0.2:
            paragraphs.append("{| class=&quot;wikitable&quot;\n|-\n| " + " || ".join(self.draw(6)) + "\n|}")
        paragraphs.append("[[Category:" + " ".join(self.draw(2)) + "]]")
        return "\n\n".join(paragraphs)

    def page(self, page_id: int) -> str:
        title = " ".join(self.draw(2)).capitalize()
        roll = self.roll()
        if roll < 0.08:
            namespace, body, extra = 0, f"#REDIRECT [[{' '.join(self.draw(2))}]]", '    <redirect title="x" />\n'
        elif roll < 0.12:
            namespace, body, extra = 1, self.sentence(), ""
            title = "Talk:" + title
        else:
            namespace, body, extra = 0, self.article(), ""
        return (
            f"  <page>\n    <title>{title}</title>\n    <ns>{namespace}</ns>\n    <id>{page_id}</id>\n{extra}"
            f"    <revision>\n      <id>{page_id * 7}</id>\n      <model>wikitext</model>\n"
            f"      <format>text/x-wiki</format>\n"
            f'      <text bytes="{len(body)}" xml:space="preserve">{body}</text>\n'
            f"    </revision>\n  </page>\n"
        )


def _stream_group(args: tuple[int, int, int, int]) -> tuple[bytes, bytes]:
    """(compressed streams of PAGES_PER_STREAM pages each, the XML) for pages [first, first + count)."""
    first, count, seed, vocabulary_size = args
    writer = PageWriter(_WORDS[vocabulary_size], seed + first)
    out, raw = [], []
    for start in range(first, first + count, PAGES_PER_STREAM):
        text = "".join(writer.page(i) for i in range(start, min(start + PAGES_PER_STREAM, first + count)))
        data = text.encode("utf-8")
        raw.append(data)
        out.append(bz2.compress(data, 9))
    return b"".join(out), b"".join(raw)


_WORDS: dict[int, np.ndarray] = {}


def _init(vocabulary_size: int, seed: int) -> None:
    _WORDS[vocabulary_size] = vocabulary(vocabulary_size, seed)


def write_dumps(workdir: Path, size_mb: float, seed: int, workers: int, vocabulary_size: int) -> dict:
    """multistream.xml.bz2 and single.xml.bz2 with the same pages; stops once the multistream file
    reaches ``size_mb``. The single-stream file is recompressed from the same text as one stream."""
    workdir.mkdir(parents=True, exist_ok=True)
    multi, single = workdir / "pages-articles-multistream.xml.bz2", workdir / "pages-articles.xml.bz2"
    group = 2000
    started = time.perf_counter()
    raw_total = 0
    pages = 0
    compressor = bz2.BZ2Compressor(9)
    with (
        mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(vocabulary_size, seed)) as pool,
        multi.open("wb") as out,
        single.open("wb") as out_single,
    ):
        out.write(bz2.compress(HEADER.encode(), 9))
        out_single.write(compressor.compress(HEADER.encode()))
        first = 1
        while out.tell() < size_mb * 1e6:
            batch = [(first + k * group, group, seed, vocabulary_size) for k in range(workers * 4)]
            first += group * workers * 4
            for data, raw in pool.imap(_stream_group, batch):
                out.write(data)
                out_single.write(compressor.compress(raw))
                raw_total += len(raw)
                pages += group
            print(f"  generated {out.tell() / 1e6:,.0f} MB", file=sys.stderr)
        out.write(bz2.compress(FOOTER.encode(), 9))
        out_single.write(compressor.compress(FOOTER.encode()))
        out_single.write(compressor.flush())
    return {
        "multistream": str(multi),
        "single_stream": str(single),
        "pages": pages,
        "multistream_bytes": multi.stat().st_size,
        "single_stream_bytes": single.stat().st_size,
        "uncompressed_bytes": raw_total,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _tree(root: int) -> list[int]:
    """root and all its descendants, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sampled(command: list[str]) -> int:
    """Run command; return the peak of the summed RSS of its process tree (KiB), sampled every 0.2 s."""
    process = subprocess.Popen(command, cwd=ROOT)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_rss_kib(pid) for pid in _tree(process.pid)))
        time.sleep(0.2)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return peak


def time_count(dump: Path, workers: int, out: Path) -> dict:
    """Run the CLI as a user would and read its counts.json."""
    command = [
        sys.executable,
        "-m",
        "metadata",
        "count-wikipedia",
        str(dump),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
    ]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    peak_kib = run_sampled(command)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = json.loads((out / "counts.json").read_text())
    size = dump.stat().st_size
    return {
        "command": shlex.join(["python"] + command[1:]),
        "workers": workers,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / 1e6 / seconds, 2),
        "uncompressed_mb_per_s": round(record["uncompressed_bytes"] / 1e6 / seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "mb_per_cpu_s": round(size / 1e6 / cpu, 2),
        "load_average_before": round(load, 2),
        "peak_rss_mb": round(peak_kib / 1024),
        "tokens": record["tokens"],
        "distinct_unigrams": record["distinct_unigrams"],
        "distinct_bigrams": record["distinct_bigrams"],
        "articles": record["articles"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/bench-metadata"),
        help="where the dumps and counts go (never the repository)",
    )
    parser.add_argument("--size-mb", type=float, default=300, help="compressed size of the generated dump")
    parser.add_argument("--vocabulary", type=int, default=300_000, help="distinct words in the generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reuse", action="store_true", help="reuse dumps already in the work directory")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite bench/results/metadata.md from metadata.json, without running anything",
    )
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads((RESULTS / "metadata.json").read_text()))
        return
    workdir = args.workdir.resolve()
    if ROOT in workdir.parents or workdir == ROOT:
        parser.error("--workdir must be outside the repository")
    info_path = workdir / "dumps.json"
    if args.reuse and info_path.exists():
        dumps = json.loads(info_path.read_text())
    else:
        print(f"generating a {args.size_mb:g} MB dump in {workdir} ...", file=sys.stderr)
        dumps = write_dumps(workdir, args.size_mb, args.seed, os.cpu_count() or 1, args.vocabulary)
        info_path.write_text(json.dumps(dumps, indent=2))
    runs = []
    for layout in ("multistream", "single_stream"):
        for workers in args.workers:
            print(f"counting {layout} with {workers} worker(s) ...", file=sys.stderr)
            result = time_count(Path(dumps[layout]), workers, workdir / f"counts-{layout}-{workers}")
            result["layout"] = layout
            result["dump_mb"] = round(Path(dumps[layout]).stat().st_size / 1e6, 1)
            runs.append(result)
            print(f"  {result['mb_per_s']} MB/s", file=sys.stderr)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": "python bench/bench_metadata.py " + shlex.join(sys.argv[1:]),
        "dumps": dumps,
        "runs": runs,
    }
    write_report(report)


def write_report(report: dict) -> None:
    """bench/results/metadata.json and the Markdown table made from it."""
    runs, dumps = report["runs"], report["dumps"]
    first = runs[0]
    keys = ("articles", "tokens", "distinct_unigrams", "distinct_bigrams")
    report["identical_counts"] = same = all(all(run[k] == first[k] for k in keys) for run in runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metadata.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Wikipedia dump counting throughput",
        "",
        f"Command: `{report['command']}` on {report['machine']['cpus']} cores "
        f"(Python {report['machine']['python']})"
        + (
            " (the dumps were generated by an earlier run of the same command without --reuse)."
            if "--reuse" in report["command"]
            else "."
        ),
        f"Synthetic pages-articles dump: {dumps['pages']:,} pages, "
        f"{dumps['uncompressed_bytes'] / 1e6:,.0f} MB of XML; "
        f"multistream {dumps['multistream_bytes'] / 1e6:,.0f} MB, "
        f"single-stream {dumps['single_stream_bytes'] / 1e6:,.0f} MB compressed.",
        "",
        "| layout | workers | seconds | MB/s of dump | MB/s of XML | CPU s | MB of dump per CPU s "
        "| peak RSS (MB, all processes) | load before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run['layout']} | {run['workers']} | {run['seconds']} | **{run['mb_per_s']}** | "
            f"{run['uncompressed_mb_per_s']} | {run['cpu_seconds']} | {run['mb_per_cpu_s']} | "
            f"{run['peak_rss_mb']:,} | {run['load_average_before']} |"
        )
    lines += [
        "",
        f"Counts ({'identical in every run' if same else 'DIFFERENT between runs'}): "
        f"{first['articles']:,} articles, {first['tokens']:,} tokens, "
        f"{first['distinct_unigrams']:,} distinct unigrams, {first['distinct_bigrams']:,} distinct bigrams.",
    ]
    lines += [
        "",
        "Each run: `" + first["command"].replace(" --workers 1", " --workers N") + "` (default "
        "--max-rows: a worker holds at most that many distinct keys per kind before spilling hash "
        "partitions to disk). The machine is shared with other work: the load average before each "
        "run is shown, and CPU seconds are the steadier guide to cost.",
    ]
    (RESULTS / "metadata.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
