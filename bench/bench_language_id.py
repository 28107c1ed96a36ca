"""Language identification benchmark: accuracy per language and captions per CPU-second, every identifier
side by side on the same real captions in one run.

Captions with a known language (../shared/data/multilingual, real human captions): Multi30k's training
captions in en, de, fr and cs (29,000 each) and COCO-CN's in zh (4,712). Speed is also measured on 10,000
real web alt-texts (../shared/data/alt_text_10k.parquet; no language labels), which are shorter and
repeat more than written sentences. Each identifier runs in this process on one core; the figure is
captions per CPU-second (time.process_time), the best of --repeat passes.

Identifiers: the studio's two (`lid176-scripts`, the default, and `lid176`, as `run
--language-identifier` names them), and three others for comparison when installed (bench/requirements.txt):
pycld2 (CLD2), cld3-py (CLD3, its `gcld3` module) and lingua with all its languages. lingua is ~50x slower
than the rest, so it reads the first --slow-per-language captions of each language only (its accuracy
is over those; the others' over all).

A Chinese caption counts as right when the identifier names Chinese (zh; CLD2's zh-Hant too); the
column "zh, varieties too" also counts Wu and Cantonese (lid.176's wuu and yue), which a run without
lists of their own matches against the Chinese entries (curation.languages.FALLBACKS).

Usage:
    python bench/bench_language_id.py --repeat 2
Writes bench/results/language_id.json and bench/results/language_id.md.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench_engine import REPO, environment, write_results

from curation import languages  # bench_engine has put the repository on sys.path

DATA = REPO.parent / "shared" / "data"
LANGUAGES = ("en", "de", "fr", "cs", "zh")
CHINESE = {"zh", "zh-Hant", "wuu", "yue"}
Identifier = Callable[[list[str]], list[str]]


def labelled_captions(folder: Path) -> dict[str, list[str]]:
    """Real captions by their language (the files' provenance: ../shared/data/multilingual)."""
    captions: dict[str, list[str]] = {}
    for code in LANGUAGES[:-1]:
        with gzip.open(folder / f"multi30k_train.{code}.gz", "rt", encoding="utf-8") as lines:
            captions[code] = [line.rstrip("\n") for line in lines]
    with open(folder / "coco-cn_ext.icap2020.txt", encoding="utf-8") as lines:
        captions["zh"] = [line.rstrip("\n").partition("\t")[2] for line in lines if "\t" in line]
    return captions


def studio(identifier: str) -> Identifier:
    return lambda texts: languages.identify(texts, identifier)


def cld2() -> Identifier | None:
    try:
        import pycld2
    except ImportError:
        return None

    def one(text: str) -> str:
        try:
            return pycld2.detect(text)[2][0][1]
        except pycld2.error:  # CLD2 refuses some valid text (control characters) as "invalid UTF-8"
            return "un"

    return lambda texts: [one(text) for text in texts]


def cld3() -> Identifier | None:
    try:
        import gcld3
    except ImportError:
        return None
    model = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    return lambda texts: [model.FindLanguage(text).language for text in texts]


def lingua() -> Identifier | None:
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        return None
    detector = LanguageDetectorBuilder.from_all_languages().build()

    def one(text: str) -> str:
        found = detector.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found is not None else ""

    return lambda texts: [one(text) for text in texts]


def per_cpu_second(identify: Identifier, texts: list[str], repeat: int) -> tuple[float, list[str]]:
    best, codes = 0.0, []
    for _ in range(repeat):
        started = time.process_time()
        codes = identify(texts)
        best = max(best, len(texts) / max(time.process_time() - started, 1e-9))
    return best, codes


def measure(name: str, identify: Identifier, captions: dict[str, list[str]], alt_texts: list[str], repeat: int) -> dict:
    everything = [text for code in LANGUAGES for text in captions[code]]
    speed, codes = per_cpu_second(identify, everything, repeat)
    result: dict = {"identifier": name, "captions": len(everything), "captions_per_cpu_s": round(speed)}
    start = 0
    for code in LANGUAGES:
        found = Counter(codes[start : start + len(captions[code])])
        start += len(captions[code])
        total = sum(found.values())
        right = sum(found[c] for c in ("zh", "zh-Hant")) if code == "zh" else found[code]
        result[code] = round(right / total, 4)
        result[f"{code}_confused_with"] = [c for c, _ in found.most_common(4) if c != code][:3]
    zh_found = Counter(codes[start - len(captions["zh"]) :])
    result["zh_with_varieties"] = round(sum(zh_found[c] for c in CHINESE) / len(captions["zh"]), 4)
    if alt_texts:
        result["alt_text_captions_per_cpu_s"] = round(per_cpu_second(identify, alt_texts, repeat)[0])
    return result


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Caption language identification on real captions",
        "",
        f"Share of each language's captions identified as that language, and captions per CPU-second on one "
        f"core (best of {report['repeat']}); measured {env['date']} (commit {env['commit'][:10]}). Captions: "
        f"Multi30k train en/de/fr/cs ({report['per_language']['en']:,} each), COCO-CN zh "
        f"({report['per_language']['zh']:,}); speed also on 10,000 real web alt-texts.",
        "",
        "| identifier | en | de | fr | cs | zh | zh, varieties too | captions/CPU-s | web alt-texts/CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["identifiers"]:
        subset = f" (first {row['per_language']:,} of each)" if row.get("per_language") else ""
        lines.append(
            f"| {row['identifier']}{subset} | "
            + " | ".join(f"{row[code]:.2%}" for code in LANGUAGES)
            + f" | {row['zh_with_varieties']:.2%} | {row['captions_per_cpu_s']:,} | "
            + (f"{row['alt_text_captions_per_cpu_s']:,}" if "alt_text_captions_per_cpu_s" in row else "–")
            + " |"
        )
    lines += ["", "What each confused most (after its right answer):", ""]
    for row in report["identifiers"]:
        confused = "; ".join(f"{code} -> {', '.join(row[f'{code}_confused_with']) or '–'}" for code in LANGUAGES)
        lines.append(f"- {row['identifier']}: {confused}")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="passes per identifier; the fastest is kept")
    parser.add_argument(
        "--slow-per-language", type=int, default=1000, help="captions per language for lingua (default 1,000)"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (multilingual/ inside)")
    args = parser.parse_args(argv)
    if not (args.data / "multilingual" / "coco-cn_ext.icap2020.txt").exists():
        print(f"no labelled captions under {args.data / 'multilingual'}: nothing to measure", file=sys.stderr)
        return 1
    captions = labelled_captions(args.data / "multilingual")
    alt_path = args.data / "alt_text_10k.parquet"
    alt_texts: list[str] = []
    if alt_path.exists():
        import pyarrow.parquet as pq

        alt_texts = [t for t in pq.read_table(alt_path, columns=["text"]).column("text").to_pylist() if t]
    rows = []
    for name in languages.IDENTIFIERS:
        rows.append(measure(name, studio(name), captions, alt_texts, args.repeat))
        print(rows[-1], file=sys.stderr)
    for name, make in (("pycld2 0.42", cld2), ("CLD3 (cld3-py 3.1.0)", cld3)):
        identify = make()
        if identify is not None:
            rows.append(measure(name, identify, captions, alt_texts, args.repeat))
            print(rows[-1], file=sys.stderr)
    identify = lingua()
    if identify is not None:
        few = {code: texts[: args.slow_per_language] for code, texts in captions.items()}
        rows.append(
            {**measure("lingua 2.1, all languages", identify, few, [], 1), "per_language": args.slow_per_language}
        )
        print(rows[-1], file=sys.stderr)
    report = {
        "environment": environment(),
        "repeat": args.repeat,
        "per_language": {code: len(texts) for code, texts in captions.items()},
        "identifiers": rows,
        "command": "python bench/bench_language_id.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_results("language_id", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
