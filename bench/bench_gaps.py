"""Benchmark `curation gaps`: the n-grams no entry covers, on a realistic pool of web alt-text.

The pool is bench/realistic_pool.py's (captions grown from 10,000 real alt-texts, checked against them
in its realism.json; 500,000 entries of WordNet names, common words, capitalised words, real bigrams
and numbers). It is curated once with `curation run` (the token matcher, t = 20,000), then

    python -m curation gaps RUN --out OUT.parquet --workers W --quiet

runs with 1 and 2 local workers, interleaved, --repeat times (the fastest kept), after waiting for the
machine to be quiet. Wall time, CPU of the whole process tree and the peak of the tree's summed RSS
(sampled from /proc every 0.1 s) come from bench_engine.run_measured. The tables both worker counts
write must be identical (checked): the result does not depend on the workers.

Usage:
    python bench/bench_gaps.py --rows 10000000 --workdir /tmp/bench --repeat 2
Writes bench/results/gaps.json and bench/results/gaps.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
from bench_engine import ensure_pool, environment, fastest, run_measured, wait_for_quiet, write_results


def ensure_run(generated: Path, workdir: Path, rows: int, t: float) -> Path:
    """The realistic pool's run (made once, reused while its plan names this pool)."""
    out, pool = workdir / "gaps-runs" / f"run-{rows}", generated / "pool"
    if (out / "run.json").exists() and json.loads((out / "plan.json").read_text())["pool"] == str(pool):
        return out
    argv = [sys.executable, "-m", "curation", "run", "--pool", str(pool), "--metadata"]
    argv += [str(generated / "metadata.json"), "--t", f"{t:g}", "--out", str(out), "--quiet"]
    run_measured(argv, workdir / "gaps-logs" / f"run-{rows}.log")
    return out


def markdown(report: dict) -> str:
    lines = [
        "# `curation gaps` on a realistic pool",
        "",
        f"{report['rows']:,} pairs from bench/realistic_pool.py ({report['entries']:,} entries), run at t = "
        f"{report['t']:g}; `curation gaps RUN` with its defaults (unigrams and bigrams, top 1,000, min count 2, "
        f"the shipped stop-words); fastest of {report['repeat']} interleaved runs; measured "
        f"{report['environment']['date']} (commit {report['environment']['commit'][:10]}).",
        "",
        "| workers | wall s | CPU s | pairs/s | peak tree MiB | all wall s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, best in report["cases"].items():
        c = best["command"]
        lines.append(
            f"| {workers} | {c['wall_s']:.1f} | {c['cpu_s']:.1f} | {report['rows'] / c['wall_s']:,.0f} | "
            f"{c['peak_tree_rss_mib']:,.0f} | {', '.join(f'{w:.1f}' for w in best['all_wall_s'])} |"
        )
    s = report["summary"]
    lines += [
        "",
        f"Read {s['pairs_read']:,} pairs ({s['unmatched_pairs_read']:,} unmatched); {s['gaps']:,} n-grams held by "
        f"at least {s['min_count']} pairs are not entries; the top {s['chosen']:,} would match "
        f"{s['unmatched_covered']:,} unmatched pairs if added. Both worker counts wrote the identical table: "
        f"{report['identical']}. Top five: {', '.join(report['top'])}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--t", type=float, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--quiet-wait", type=float, default=60)
    args = parser.parse_args(argv)
    pool, _ = ensure_pool(args.workdir, args.rows, args.entries, 0)
    run = ensure_run(pool, args.workdir, args.rows, args.t)
    tries: dict[str, list[dict]] = {}
    tables = {}
    for attempt in range(args.repeat):
        for workers in (1, 2):
            out = args.workdir / "gaps-runs" / f"gaps-{args.rows}-{workers}.parquet"
            print(f"{workers} workers ({attempt + 1}/{args.repeat})", flush=True)
            wait_for_quiet(args.quiet_wait)
            argv = [sys.executable, "-m", "curation", "gaps", str(run), "--out", str(out)]
            argv += ["--workers", str(workers), "--quiet"]
            measured = run_measured(argv, args.workdir / "gaps-logs" / f"gaps-{workers}-{attempt}.log")
            tries.setdefault(str(workers), []).append({"command": asdict(measured)})
            tables[workers] = pq.read_table(out)
    summary = json.loads(tables[1].schema.metadata[b"curation.gaps"])
    report = {
        "rows": args.rows,
        "entries": args.entries,
        "t": args.t,
        "repeat": args.repeat,
        "environment": environment(),
        "cases": {workers: fastest(runs) for workers, runs in tries.items()},
        "summary": {k: v for k, v in summary.items() if k != "seconds"},
        "identical": tables[1].replace_schema_metadata(None).equals(tables[2].replace_schema_metadata(None)),
        "top": tables[1].column("ngram").to_pylist()[:5],
    }
    write_results("gaps", report, markdown(report))
    print(markdown(report))
    if not report["identical"]:
        raise SystemExit("1 and 2 workers wrote different tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
