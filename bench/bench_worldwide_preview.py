"""Worldwide preview benchmark: what answering at a new t costs when every language has its own t.

On a realistic pool (bench/realistic_pool.py: captions grown from real web alt-texts, 500,000
entries), two runs of `python -m curation run` (1 worker): MetaCLIP 1 with the plain entry list, and
worldwide with the same entries spread over LANGUAGES languages (half `en`, the rest Zipf-like, each
entry in one language by a hash of its text) and each caption given a language by the same kind of
draw (a pool column). The captions stay English alt-text: a caption drawn `de` is matched against the
entries drawn `de`, so the worldwide run has the shape of a worldwide one (many languages, each with
its own counts and t) while its text stays real. Then, in this process, both previews are opened and
every answer the Balance and Languages pages ask for is timed at ten t from 100 to 100,000 (log
spaced): median and worst per answer. The worldwide sizes are checked against an exact pass over the
run (`Run.languages_at`) at two t.

Usage:
    python bench/bench_worldwide_preview.py --rows 1000000 --entries 500000 --workdir /tmp/bench
Writes bench/results/worldwide_preview.json and bench/results/worldwide_preview.md.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_engine import ensure_pool, environment, fresh, run_measured, wait_for_quiet, write_results
from bench_worldwide import pool_arguments

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation import preview_files  # noqa: E402
from curation.rundir import RunDir  # noqa: E402
from curation.summary import Run  # noqa: E402

# Wikipedia codes of large editions, in rough order of size; `en` first.
CODES = (
    "en de fr es ja ru it zh pt pl nl ar fa uk sv vi id ko he tr cs fi hu no ro da th el bg ca "
    "sr ms hr sk lt sl et lv hi bn ta ur eu gl hy ka az kk be uz mk sq is cy ga af sw tl mr"
).split()
LANGUAGES = len(CODES)
TS = np.geomspace(100, 100_000, 10)


def language_of(keys: np.ndarray) -> np.ndarray:
    """Half `en`, the rest over the other codes with weights 1/rank: a stable draw from 64-bit keys."""
    weights = 1.0 / np.arange(1, LANGUAGES)
    cumulative = np.concatenate(([0.5], 0.5 + 0.5 * np.cumsum(weights) / weights.sum()))
    draw = (keys >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.minimum(np.searchsorted(cumulative, draw, side="right"), LANGUAGES - 1)


def text_keys(texts: list[str | None]) -> np.ndarray:
    import xxhash

    return np.array([xxhash.xxh64_intdigest((text or "").encode()) for text in texts], dtype=np.uint64)


def worldwide_inputs(pool: Path, workdir: Path) -> tuple[Path, Path]:
    target = workdir / f"{pool.name}-multilingual"
    metadata, pool_dir = target / "metadata.parquet", target / "pool"
    if not metadata.exists():
        entries = json.loads((pool / "metadata.json").read_text())
        target.mkdir(parents=True, exist_ok=True)
        codes = np.array(CODES)[language_of(text_keys(entries))]
        pq.write_table(pa.table({"entry": entries, "language": codes.tolist()}), metadata)
    if not pool_dir.exists():
        pool_dir.mkdir(parents=True)
        for part in sorted((pool / "pool").glob("*.parquet")):
            table = pq.read_table(part)
            keys = text_keys([f"{i}:{part.name}" for i in range(table.num_rows)])
            codes = np.array(CODES)[language_of(keys)]
            pq.write_table(
                table.append_column("lang", pa.array(codes.tolist())), pool_dir / part.name, row_group_size=100_000
            )
    return metadata, pool_dir


def timed(function, ts: np.ndarray) -> dict:
    """Median and worst milliseconds of one answer over the t grid (each t new to every cache)."""
    times = []
    for t in ts:
        started = time.perf_counter()
        function(float(t))
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "worst_ms": round(max(times), 2)}


def answers(preview, worldwide: bool) -> dict:
    top = np.argsort(preview.counts)[::-1][:40]
    measured = {
        "size_at": timed(preview.size_at, TS),
        "head_tail": timed(preview.head_tail, TS * 1.01),
        "expected_size_at": timed(preview.expected_size_at, TS * 1.02),
        "kept_counts (40 entries)": timed(lambda t: preview.kept_counts(top, t), TS * 1.03),
        "balanced_counts (every entry)": timed(preview.balanced_counts, TS * 1.04),
        "t_for_size": timed(lambda t: preview.t_for_size(int(preview.size_at(t) * 0.9)), TS * 1.05),
    }
    if worldwide:
        measured["language_rows"] = timed(preview.language_rows, TS * 1.06)
    return measured


def markdown(report: dict) -> str:
    lines = [
        "# Answers at a new t: MetaCLIP 1 against worldwide (a t per language)",
        "",
        f"{report['rows']:,} pairs from bench/realistic_pool.py, {report['entries']:,} entries; worldwide: the same "
        f"entries and captions spread over {LANGUAGES} languages (half `en`). Each answer timed at ten t from 100 to "
        f"100,000, new to every cache; measured {report['environment']['date']} "
        f"(commit {report['environment']['commit'][:10]}).",
        "",
        "| | MetaCLIP 1 | worldwide |",
        "|---|---:|---:|",
        f"| run (1 worker), wall s | {report['runs']['metaclip1']['wall_s']:.1f} | "
        f"{report['runs']['worldwide']['wall_s']:.1f} |",
        f"| matched pairs | {report['matched_pairs']['metaclip1']:,} | {report['matched_pairs']['worldwide']:,} |",
        f"| open the preview, s | {report['open_s']['metaclip1']:.2f} | {report['open_s']['worldwide']:.2f} |",
    ]
    for name in report["answers"]["worldwide"]:
        one = report["answers"]["metaclip1"].get(name)
        world = report["answers"]["worldwide"][name]
        cell = f"{one['median_ms']:.1f} / {one['worst_ms']:.1f}" if one else "-"
        lines.append(f"| {name}, median / worst ms | {cell} | {world['median_ms']:.1f} / {world['worst_ms']:.1f} |")
    lines += [
        "",
        f"Peak RSS of this process after both: {report['peak_rss_mib']:,.0f} MiB. Worldwide sizes equal an "
        f"exact pass over the run at t = {', '.join(f'{t:g}' for t in report['checked_t'])}: "
        f"{report['exact']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = pool_arguments(__doc__.split("\n\n")[0]).parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pool, _ = ensure_pool(args.workdir, args.rows, args.entries, 0)
    metadata, pool_dir = worldwide_inputs(pool, args.workdir)
    runs, specs = (
        {},
        {
            "metaclip1": ["--pool", str(pool / "pool"), "--metadata", str(pool / "metadata.json")],
            "worldwide": ["--pool", str(pool_dir), "--metadata", str(metadata), "--language-column", "lang"],
        },
    )
    for name, spec in specs.items():
        out = fresh(args.workdir / "worldwide-preview-runs" / name, args.workdir)
        wait_for_quiet(args.quiet_wait)
        measured = run_measured(
            [
                sys.executable,
                "-m",
                "curation",
                "run",
                *spec,
                "--t",
                f"{args.t:g}",
                "--seed",
                "0",
                "--out",
                str(out),
                "--workers",
                "1",
                "--quiet",
            ],
            args.workdir / "worldwide-preview-logs" / f"{name}.log",
        )
        runs[name] = {"wall_s": measured.wall_s, "out": out}
    report: dict = {
        "rows": args.rows,
        "entries": args.entries,
        "environment": environment(),
        "answers": {},
        "open_s": {},
        "matched_pairs": {},
        "runs": {k: {"wall_s": v["wall_s"]} for k, v in runs.items()},
    }
    for name, run in runs.items():
        wait_for_quiet(args.quiet_wait)
        started = time.perf_counter()
        preview = preview_files.open_preview(RunDir(run["out"]), 0)
        report["open_s"][name] = time.perf_counter() - started
        report["matched_pairs"][name] = preview.matched_pairs
        report["answers"][name] = answers(preview, name == "worldwide")
    world = Run(runs["worldwide"]["out"])
    report["checked_t"] = [1000.0, args.t]
    report["exact"] = all(
        world.preview(0).size_at(t) == sum(row["kept"] for row in world.languages_at(t, 0)) for t in report["checked_t"]
    )
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results("worldwide_preview", report, markdown(report))
    print(markdown(report))
    if not report["exact"]:
        raise SystemExit("the worldwide preview's sizes differ from an exact pass over the run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
