"""Compare benchmark: `curation compare` (curation/compare.py) on two runs of one 10M-pair pool.

A is written by bench/synthetic_run.py (MetaCLIP-shaped: 500,000 single-word entries, half the pairs
matched, 3.5 entries per matched pair; its preview built). B is a real run of the engine
(`python -m curation run`, 2 workers) over A's own pool files with an edited metadata: A's list with
EDITED entries removed at random and EDITED entries added, each added entry a bigram of two entries
seen next to each other in a caption of A's first shard, so every added entry matches (the captions are
entries joined by spaces). That is what a researcher's edit looks like to `compare`: the same pool (so
the pairs are compared row by row), entries only in A and only in B, counts that differ per pair, pairs
kept by one run only. One caveat: synthetic_run writes one file of one row group per shard, so B's
shards have A's sizes (the alignment of unequal shards is tested in tests/test_compare.py).

Measured, each in a fresh process (the page cache warm: both runs were just written or read):
- `python -m curation compare A B --t 20000`: wall, CPU and peak RSS, fastest of --repeats;
- the Compare page through AppTest in one process: B typed (both runs read once), then a new t per
  rerun, each figure checked against compare_runs;
- the phases in one process: opening both runs (records, plans, previews), the entry tables joined by
  text, the pairs read and aligned (thresholds only: float64 k per pair), the answer at t, then at
  ten new t (what the dashboard's Compare page asks from its cached arrays), and the pickle round trip
  of one answer (what st.cache_data would cost per rerun: why dashboard/data.py keeps answers as
  resources).

Usage:
    python bench/bench_compare.py --rows 10000000 --workdir /tmp/bench-compare [--keep]
Writes bench/results/compare.json and bench/results/compare.md; removes the workdir's runs unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_engine import environment, run_measured, wait_for_quiet, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T = 20_000.0
EDITED = 5_000  # entries removed, and entries added
NEW_TS = np.geomspace(100, 100_000, 10)


def edited_metadata(run: Path, out: Path, edited: int, seed: int = 7) -> dict:
    """A's metadata with ``edited`` entries removed at random and ``edited`` bigrams added (two entries
    next to each other in a caption of shard 0, not already an entry)."""
    entries = json.loads((run / "metadata.json").read_text())
    rng = np.random.default_rng(seed)
    removed = set(rng.choice(len(entries), edited, replace=False).tolist())
    lists = pq.read_table(run / "index" / "part-00000.parquet", columns=["entry_ids"]).column(0).combine_chunks()
    offsets, values = lists.offsets.to_numpy(), lists.values.to_numpy()
    starts = rng.permutation(np.flatnonzero(np.diff(offsets) >= 2))
    known, added = set(entries), []
    for pair in starts:
        k = offsets[pair] + rng.integers(0, offsets[pair + 1] - offsets[pair] - 1)
        text = f"{entries[values[k]]} {entries[values[k + 1]]}"
        if text not in known:
            known.add(text)
            added.append(text)
        if len(added) == edited:
            break
    out.write_text(json.dumps([e for i, e in enumerate(entries) if i not in removed] + added))
    return {"entries": len(entries), "removed": len(removed), "added": len(added)}


def phases(a: str, b: str) -> dict:
    """compare_runs' phases in this process (run with --phases in a fresh one)."""
    started = time.perf_counter()
    from curation.compare import Comparer

    imported = time.perf_counter()
    comparer = Comparer(a, b)
    opened = time.perf_counter()
    entries = comparer.entries
    joined = time.perf_counter()
    pairs = comparer.pairs
    aligned = time.perf_counter()
    first = comparer.at(T)
    answered = time.perf_counter()
    lines = first.lines(10)
    printed = time.perf_counter()
    new_t = []
    for t in NEW_TS:
        begin = time.perf_counter()
        comparer.at(float(t))
        new_t.append((time.perf_counter() - begin) * 1000)
    begin = time.perf_counter()
    pickle.loads(pickle.dumps(first))
    pickled = (time.perf_counter() - begin) * 1000
    return {
        "import_s": round(imported - started, 3),
        "open_s": round(opened - imported, 3),
        "entries_join_s": round(joined - opened, 3),
        "pairs_read_s": round(aligned - joined, 3),
        "at_t_s": round(answered - aligned, 3),
        "text_s": round(printed - answered, 3),
        "total_s": round(printed - started, 3),
        "new_t_median_ms": round(statistics.median(new_t), 1),
        "new_t_worst_ms": round(max(new_t), 1),
        "pickle_round_trip_ms": round(pickled, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "joined_entries": len(entries),
        "aligned_pairs": None if pairs is None else pairs.pairs,
        "pairs_matched_in_either": None if pairs is None else len(pairs.k_a),
        "figures": first.as_json(top=3),
        "text": lines,
    }


def dashboard(a: str, b: str) -> dict:
    """The Compare page through AppTest (run with --dashboard in a fresh process, the runs directory set
    to the runs' folder): the open run A, then B typed (both runs read, once), then a new t per rerun."""
    from streamlit.testing.v1 import AppTest

    from curation.compare import Comparer

    def timed(action) -> float:
        begin = time.perf_counter()
        action()
        if at.exception or at.error:
            raise SystemExit(f"the page failed: {[e.message for e in at.exception] + [e.value for e in at.error]}")
        return round(time.perf_counter() - begin, 3)

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=900)
    at.session_state["run_dir"] = a
    steps = {"overview_s": timed(at.run), "compare_page_s": timed(lambda: at.switch_page("views/compare.py").run())}
    steps["run_b_read_s"] = timed(lambda: at.text_input(key="compare_b_box").set_value(b).run())
    reruns, shown = [], []
    for t in NEW_TS:
        reruns.append(timed(lambda t=t: at.number_input(key="t_box").set_value(float(t)).run()) * 1000)
        shown.append(next(m.value for m in at.metric if m.label == "Kept by B only"))
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # before the check reads the runs
    comparer = Comparer(a, b)
    expected = [f"{comparer.at(float(t)).pairs.kept_by_b_only:,}" for t in NEW_TS]
    return {
        **steps,
        "new_t_median_ms": round(statistics.median(reruns), 0),
        "new_t_worst_ms": round(max(reruns), 0),
        "mismatches": sum(x != y for x, y in zip(shown, expected)),
        "peak_rss_mib": peak,
    }


def bytes_read(run: Path) -> int:
    """What compare reads of a run besides its preview: thresholds, entry counts."""
    parts = list((run / "thresholds").rglob("*.parquet")) + [run / "entry_counts.parquet"]
    return sum(p.stat().st_size for p in parts)


def markdown(report: dict) -> str:
    cli, split, page = report["cli"], report["phases"], report["dashboard"]
    figures = split["figures"]
    a, b, pairs = figures["a"], figures["b"], figures["pairs"]
    runs = report["runs"]
    made_b = f", {runs['b_run']['wall_s']:.0f} s" if "b_run" in runs else ""
    lines = [
        "# Comparing two runs (`curation compare`)",
        "",
        f"{report['rows']:,} pairs, one pool. A: bench/synthetic_run.py ({report['edit']['entries']:,} entries). B: "
        f"`python -m curation run` over A's pool files (2 workers{made_b}) with A's metadata "
        f"less {report['edit']['removed']:,} entries drawn at random plus {report['edit']['added']:,} bigrams of "
        "entries seen side by side in A's captions (each matches). t = 20000. Measured "
        f"{report['environment']['date']} (commit {report['environment']['commit'][:10]}), "
        f"{report['environment']['cpus']} cores, page cache warm.",
        "",
        "| | |",
        "|---|---:|",
        f"| `curation compare A B --t 20000`, wall s (fastest of {len(cli)}) | **{min(m['wall_s'] for m in cli):.2f}** |",
        f"| the same, every wall s | {', '.join(format(m['wall_s'], '.2f') for m in cli)} |",
        f"| its CPU s / peak RSS MiB | {cli[0]['cpu_s']:.2f} / {max(m['peak_tree_rss_mib'] for m in cli):,.0f} |",
        f"| in one process: imports s | {split['import_s']:.2f} |",
        f"| open both runs (records, plans, previews) s | {split['open_s']:.2f} |",
        f"| entry tables joined by text ({split['joined_entries']:,} entries) s | {split['entries_join_s']:.2f} |",
        f"| pairs read and aligned ({split['aligned_pairs']:,} rows, {split['pairs_matched_in_either']:,} matched "
        f"in either) s | {split['pairs_read_s']:.2f} |",
        f"| the answer at t s | {split['at_t_s']:.2f} |",
        f"| a new t from the read arrays (dashboard), median / worst ms | {split['new_t_median_ms']:.0f} / "
        f"{split['new_t_worst_ms']:.0f} |",
        f"| pickle round trip of one answer ms (what st.cache_data would add per rerun; the page keeps answers "
        f"as resources) | {split['pickle_round_trip_ms']:.0f} |",
        f"| peak RSS of that process MiB | {split['peak_rss_mib']:,.0f} |",
        f"| Compare page (AppTest): B typed, both runs read, s | {page['run_b_read_s']:.2f} |",
        f"| Compare page: a new t, whole page rerun, median / worst ms | {page['new_t_median_ms']:.0f} / "
        f"{page['new_t_worst_ms']:.0f} |",
        f"| Compare page: peak RSS MiB, figures that differ from compare_runs | {page['peak_rss_mib']:,.0f}, "
        f"{page['mismatches']} |",
        f"| thresholds and entry counts on disk, A + B MB | {(runs['a_bytes'] + runs['b_bytes']) / 1e6:,.0f} |",
        "",
        "What it found:",
        "",
        "| | A | B |",
        "|---|---:|---:|",
        f"| kept at t | {a['kept']:,} | {b['kept']:,} |",
        f"| matched pairs | {a['matched_pairs']:,} | {b['matched_pairs']:,} |",
        f"| head / tail entries | {a['head_entries']:,} / {a['tail_entries']:,} | {b['head_entries']:,} / "
        f"{b['tail_entries']:,} |",
        f"| entries only here | {figures['entries']['only_in_a']:,} | {figures['entries']['only_in_b']:,} |",
        f"| pairs kept here only | {pairs['kept_by_a_only']:,} | {pairs['kept_by_b_only']:,} |",
        "",
        f"Kept by both: {pairs['kept_by_both']:,}; entries that change side at t: {figures['entries']['flips']:,}.",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-compare"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--keep", action="store_true", help="keep the runs in the workdir")
    parser.add_argument("--phases", nargs=2, metavar=("A", "B"), help=argparse.SUPPRESS)
    parser.add_argument("--dashboard", nargs=2, metavar=("A", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phases:
        print(json.dumps(phases(*args.phases)))
        return 0
    if args.dashboard:
        print(json.dumps(dashboard(*args.dashboard)))
        return 0

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    a, b, logs = work / "a", work / "b", work / "logs"
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs: dict = {}
    if not (a / "run.json").exists():
        runs["a_run"] = run_measured(
            [python, str(ROOT / "bench" / "synthetic_run.py"), "--rows", str(args.rows), "--entries",
             str(args.entries), "--out", str(a), "--t", str(T), "--preview"],
            logs / "a.log", env=env,
        ).__dict__  # fmt: skip
    edit = edited_metadata(a, work / "edited.json", EDITED)
    if not (b / "run.json").exists():
        runs["b_run"] = run_measured(
            [python, "-m", "curation", "run", "--pool", str(a / "pool"), "--metadata", str(work / "edited.json"),
             "--t", str(T), "--no-manifest", "--workers", "2", "--quiet", "--out", str(b)],
            logs / "b.log", env=env,
        ).__dict__  # fmt: skip
    runs["a_bytes"], runs["b_bytes"] = bytes_read(a), bytes_read(b)

    command = [python, "-m", "curation", "compare", str(a), str(b), "--t", str(T)]
    cli = []
    for index in range(args.repeats):
        wait_for_quiet(args.quiet_wait)
        cli.append(run_measured(command, logs / f"compare-{index}.log", env=env).__dict__)
    wait_for_quiet(args.quiet_wait)
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--phases", str(a), str(b)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wait_for_quiet(args.quiet_wait)
    page_env = {**env, **{f"CURATION_{name}_DIR": str(work / name.lower()) for name in ("EXPORT", "JOBS")}}
    page = subprocess.run(
        [python, str(Path(__file__).resolve()), "--dashboard", str(a), str(b)],
        env={**page_env, "CURATION_RUNS_DIR": str(work)}, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = {
        "rows": args.rows,
        "entries": args.entries,
        "t": T,
        "edit": edit,
        "runs": runs,
        "cli": cli,
        "phases": json.loads(done.stdout),
        "dashboard": json.loads(page.stdout.strip().splitlines()[-1]),
        "command": f"python bench/bench_compare.py --rows {args.rows} --workdir {args.workdir}",
        "environment": environment(),
    }
    write_results("compare", report, markdown(report))
    print(markdown(report))
    print("\n".join(report["phases"]["text"]))
    if not args.keep:
        for path in (a, b, logs, work / "edited.json", work / "export", work / "jobs"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
