"""What the provenance's exact expected size costs an export: `write_manifest` at a new t, and
`Run.expected_size_at` (the pass it now includes) alone, side by side on the same run, in rounds.

    python bench/generate_pool.py --rows 2000000 --entries 500000 --out /tmp/bench/p2m --workers 2
    curation run --pool /tmp/bench/p2m/pool --metadata /tmp/bench/p2m/metadata.json --t 200 --out /tmp/bench/r2m
    python bench/bench_export_cost.py /tmp/bench/r2m --t 5000 [--rounds 3] [--out bench/results/export_cost.md]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from curation import Run
from curation.export import write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--t", type=float, default=5000.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = Run(args.run_dir)
    pairs = run.record.get("rows", {}).get("in", 0)
    lines = []
    with tempfile.TemporaryDirectory(prefix="export-cost-") as scratch:
        for round_ in range(args.rounds):
            start = time.perf_counter()
            made = write_manifest(args.run_dir, Path(scratch) / f"m{round_}.parquet", args.t, run.seed or 0)
            export_s = time.perf_counter() - start
            start = time.perf_counter()
            expected = Run(args.run_dir).expected_size_at(args.t)
            expected_s = time.perf_counter() - start
            lines.append(f"| {round_ + 1} | {export_s:.2f} | {expected_s:.2f} | {made.rows:,} | {expected:,.1f} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = "\n".join(
        [
            "# Export: the cost of the exact expected size in its provenance",
            "",
            f"commit {commit}, run of {pairs:,} pairs (bench/generate_pool.py), t = {args.t:g}, 2 cores.",
            "",
            "| round | export s (all of it) | expected size pass alone s | rows exported | expected kept |",
            "|---:|---:|---:|---:|---:|",
            *lines,
            "",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
