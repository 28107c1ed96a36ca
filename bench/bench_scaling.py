"""Scaling benchmark: does `curation run` stay linear in the pool size, and what do more workers buy?

For each size (default 1M, 3M and 10M pairs from bench/realistic_pool.py, 500,000 entries) and each execution
(local engine with 1 and 2 workers, Ray engine with a local Ray of 2 CPUs) it runs

    python -m curation run --pool P --metadata M --t 20000 --seed 0 --out RUN --quiet <execution>

(--repeat times, 2 by default, keeping the fastest: the machine is shared) and records wall time, CPU
time and peak memory (summed RSS of the process tree sampled every 0.1 s, with the helpers of
bench_engine.py), plus the peak of each kind of process: the CLI (driver), its stage workers, and
Ray's own services. Then, per execution, the growth ratio (seconds per pair at a
size over seconds per pair at the smallest size: 1.0 is perfectly linear) and, per size, the speed-up
over the local engine with one worker. Every execution of a size must produce the same curated set (the
ids in the curated manifest `run` ends with), entry counts and keep thresholds: the benchmark checks it
and fails otherwise.

A worker's memory is measured on its own too: one process maps the matcher tables of the metadata and
matches one shard, at several batch sizes (RSS after imports, after the matcher, and peak).

Usage:
    python bench/bench_scaling.py --sizes 1000000 3000000 10000000 --entries 500000 --workdir /tmp/bench
Writes bench/results/scaling.json and bench/results/scaling.md (rewritten after every size).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import bench_engine
import numpy as np
import pyarrow.parquet as pq
from bench_engine import (
    REPO,
    ensure_pool,
    environment,
    fresh,
    read_run_json,
    run_measured,
    wait_for_quiet,
    write_results,
)

from curation.export import run_manifest_name  # bench_engine has put the repository on sys.path

EXECUTIONS = {
    "local-1": ["--engine", "local", "--workers", "1"],
    "local-2": ["--engine", "local", "--workers", "2"],
    "ray-2": ["--engine", "ray", "--workers", "2"],
}
LABELS = {"local-1": "local, 1 worker", "local-2": "local, 2 workers", "ray-2": "Ray, 2 CPUs"}
STAGE_TIMINGS = ("match_s", "count_s", "balance_s")
PROBE_BATCHES = (10_000, 50_000, 100_000)


# --------------------------------------------------------------------------------------------------
# Which process is which: peaks per role, read beside bench_engine's own sampling
# --------------------------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """User + system CPU clock ticks a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def role_of(pid: int) -> str:
    """driver, worker (a process that runs stages), ray (Ray's own services) or other."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if command.startswith("ray::IDLE") or command.startswith("ray::_run_stage"):
        return "worker"
    if "multiprocessing.spawn" in command or "multiprocessing.forkserver" in command:
        return "worker"
    if "-m curation" in command:
        return "driver"
    if "ray" in command:
        return "ray"
    return "other"


@contextmanager
def process_roles() -> Iterator[dict[int, dict]]:
    """Wrap bench_engine.rss_kib so that every sample also notes the process's role and own peak.

    A Ray worker renames itself once it starts (its title becomes ray::IDLE), so the role seen last is kept.
    """
    seen: dict[int, dict] = {}
    original = bench_engine.rss_kib

    def recording(pid: int) -> tuple[int, int]:
        rss, hwm = original(pid)
        if hwm:
            entry = seen.setdefault(pid, {"role": "other", "hwm_kib": 0, "cpu_ticks": 0})
            role = role_of(pid)
            if role != "other":
                entry["role"] = role
            entry["hwm_kib"] = max(entry["hwm_kib"], hwm)
            entry["cpu_ticks"] = max(entry["cpu_ticks"], cpu_ticks(pid))
        return rss, hwm

    bench_engine.rss_kib = recording
    try:
        yield seen
    finally:
        bench_engine.rss_kib = original


def role_summary(seen: dict[int, dict]) -> dict:
    """Per role: number of processes, the largest single peak and the sum of peaks (MiB), CPU seconds.

    CPU is read from /proc at each sample, so the last 0.1 s of each process is missed; unlike the
    rusage of bench_engine it also counts Ray's processes, which the CLI does not reap.
    """
    summary: dict[str, dict] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in seen.values():
        role = summary.setdefault(
            entry["role"], {"processes": 0, "max_peak_mib": 0.0, "sum_peaks_mib": 0.0, "cpu_s": 0.0}
        )
        mib = entry["hwm_kib"] / 1024
        role["processes"] += 1
        role["max_peak_mib"] = round(max(role["max_peak_mib"], mib), 1)
        role["sum_peaks_mib"] = round(role["sum_peaks_mib"] + mib, 1)
        role["cpu_s"] = round(role["cpu_s"] + entry["cpu_ticks"] / tick, 2)
    return summary


# --------------------------------------------------------------------------------------------------
# One run, and the check that every execution of a size curates the same set
# --------------------------------------------------------------------------------------------------


def run_once(pool: Path, name: str, rows: int, workdir: Path, t: float, seed: int, quiet_wait: float) -> dict:
    run_dir = fresh(workdir / "runs" / f"scaling-{rows}-{name}", workdir)
    argv = [
        sys.executable,
        "-m",
        "curation",
        "run",
        "--pool",
        str(pool / "pool"),
        "--metadata",
        str(pool / "metadata.json"),
        "--t",
        f"{t:g}",
        "--seed",
        str(seed),
        "--out",
        str(run_dir),
        "--quiet",
        *EXECUTIONS[name],
    ]
    waited = wait_for_quiet(quiet_wait)
    with process_roles() as seen:
        measured = run_measured(argv, workdir / "logs" / f"scaling-{rows}-{name}.log")
    record = read_run_json(run_dir)
    timings = record["timings"]
    in_stages = sum(timings.get(k, 0.0) for k in STAGE_TIMINGS)
    return {
        "execution": name,
        "run_dir": str(run_dir),
        "waited_for_quiet_s": waited,
        "measured": asdict(measured),
        "timings": timings,
        "outside_stages_s": round(timings["total_s"] - in_stages, 2),  # engine start and stop, planning
        "rows": record["rows"],
        "roles": role_summary(seen),
    }


def result_digest(run_dir: Path, t: float, seed: int) -> dict:
    """What must not depend on the execution: counts, every keep threshold, the curated ids (read from
    the curated manifest `run` ends with, in the pool's order)."""

    def column(directory: Path, name: str) -> np.ndarray:
        parts = sorted(directory.glob("*.parquet"))
        return np.concatenate([pq.read_table(p, columns=[name]).column(0).to_numpy() for p in parts])

    return {
        "counts": pq.read_table(run_dir / "entry_counts.parquet", columns=["count"]).column(0).to_numpy(),
        "k": column(run_dir / "thresholds" / f"seed-{seed}", "k"),
        "curated_ids": pq.read_table(run_dir / "manifests" / run_manifest_name(t, seed), columns=["id"])
        .column(0)
        .to_numpy(),
    }


def same_result(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[name], b[name]) for name in a)


# --------------------------------------------------------------------------------------------------
# One worker's memory: the matcher of the metadata, then one shard at several batch sizes
# --------------------------------------------------------------------------------------------------


def probe_worker(pool: Path, out: Path, batch_rows: int) -> dict:
    """Runs in a fresh process (see --probe): what one stage worker holds while matching a shard."""
    sys.path.insert(0, str(REPO))
    from curation import matchers, stages
    from curation.pool import plan_shards, resolve_files
    from metadata import fingerprint, load_entries

    def own_kib(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    metadata = pool / "metadata.json"
    shard = plan_shards(resolve_files(str(pool / "pool")), 100_000)[0]
    entries = load_entries(str(metadata))
    config = stages.MatchConfig(
        root=str(out),
        metadata_path=str(metadata),
        metadata_fingerprint=fingerprint(entries),
        drop_invalid_entries=False,
        text_column="text",
        id_column="id",
        url_column="url",
        batch_rows=batch_rows,
    )
    matchers.ensure_tables(out, entries, config.metadata_fingerprint)  # what the driver does once per run
    del entries
    after_imports = own_kib("VmRSS")
    stages.shard_matcher(config)
    after_matcher = own_kib("VmRSS")
    stages.match_shard(shard, config)
    return {
        "batch_rows": batch_rows,
        "shard_rows": shard.rows,
        "rss_after_imports_mib": round(after_imports / 1024, 1),
        "rss_after_matcher_mib": round(after_matcher / 1024, 1),
        "peak_mib": round(own_kib("VmHWM") / 1024, 1),
    }


def measure_worker(pool: Path, workdir: Path) -> list[dict]:
    results = []
    for batch_rows in PROBE_BATCHES:
        out = fresh(workdir / "runs" / f"probe-{batch_rows}", workdir)
        done = subprocess.run(
            [sys.executable, __file__, "--probe", str(pool), str(out), str(batch_rows)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout))
        shutil.rmtree(out, ignore_errors=True)
    return results


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def derive(report: dict) -> None:
    """Growth ratios (per execution, against the smallest size) and speed-ups (per size, against local-1)."""
    sizes = report["sizes"]
    if not sizes:
        return
    base = sizes[0]
    for size in sizes:
        for name, run in size["runs"].items():
            per_pair = run["measured"]["wall_s"] / size["rows"]
            base_run = base["runs"].get(name)
            run["s_per_million_pairs"] = round(per_pair * 1e6, 2)
            in_stages = sum(run["timings"].get(k, 0.0) for k in STAGE_TIMINGS) / size["rows"]
            base_stages = (
                sum(base_run["timings"].get(k, 0.0) for k in STAGE_TIMINGS) / base["rows"] if base_run else None
            )
            run["stage_growth_vs_smallest"] = round(in_stages / base_stages, 3) if base_stages else None
            run["growth_vs_smallest"] = (
                round(per_pair / (base_run["measured"]["wall_s"] / base["rows"]), 3) if base_run else None
            )
            one = size["runs"].get("local-1")
            run["speedup_vs_local_1"] = round(one["measured"]["wall_s"] / run["measured"]["wall_s"], 2) if one else None


def summary_table(report: dict) -> list[str]:
    """The table that goes into the README: time (peak memory), speed-ups, growth."""
    names = [n for n in EXECUTIONS if any(n in s["runs"] for s in report["sizes"])]
    faster = [n for n in names if n != "local-1"]
    smallest = report["sizes"][0]["rows"] / 1e6 if report["sizes"] else 0
    lines = [
        "| pairs | "
        + " | ".join(f"{LABELS[n]}: s (peak GiB)" for n in names)
        + " | "
        + " | ".join(f"speed-up, {LABELS[n]}" for n in faster)
        + f" | time per pair vs {smallest:g}M: "
        + " / ".join(LABELS[n] for n in names)
        + " |",
        "|---:|" + "---:|" * (len(names) + len(faster) + 1),
    ]
    for size in report["sizes"]:
        runs = size["runs"]
        times = [
            f"{runs[n]['measured']['wall_s']:.1f} ({runs[n]['measured']['peak_tree_rss_mib'] / 1024:.2f})"
            if n in runs
            else "-"
            for n in names
        ]
        speedups = [f"{runs[n]['speedup_vs_local_1']:.2f}x" if n in runs else "-" for n in faster]
        growth = " / ".join(f"{runs[n]['growth_vs_smallest']:.2f}" if n in runs else "-" for n in names)
        lines.append(f"| {size['rows']:,} | " + " | ".join(times + speedups) + f" | {growth} |")
    return lines


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Scaling benchmark",
        "",
        f"{env['date']}, commit {env['commit']}, {env['cpus']} cores, {env['memory_gib']} GiB, Python {env['python']}, "
        f"pyarrow {env['pyarrow']}, pyahocorasick {env['pyahocorasick']}, ray {report['ray_version']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Each cell: `python -m curation run --t {report['t']:g} --seed {report['seed']}` end to end (process start "
        "to exit, including a Ray start for Ray), and in brackets the peak of the summed RSS of the whole process "
        f"tree (CLI, stage workers and, for Ray, Ray's own services), sampled every 0.1 s. Pools from "
        f"`bench/realistic_pool.py` (captions grown from real alt-texts) with a {report['entries']:,}-entry "
        "metadata. Speed-up: local with 1 worker "
        "over the execution. Growth: seconds per pair at a size over seconds per pair at the smallest size "
        "(1.00 is linear). Every execution of a size curated the identical set (same entry counts, keep "
        "thresholds and curated ids, the ids read from the run's curated manifest): checked by the benchmark.",
        "",
        *summary_table(report),
        "",
        "Growth of the stages alone (match, count, balance: no process or Ray start), seconds per "
        "pair against the smallest size: "
        + "; ".join(
            f"{size['rows'] / 1e6:g}M: "
            + " / ".join(f"{run['stage_growth_vs_smallest']:.2f}" for run in size["runs"].values())
            for size in report["sizes"]
        )
        + " ("
        + " / ".join(LABELS[n] for n in report["sizes"][0]["runs"])
        + ").",
        "",
        "## Every run",
        "",
        "| pairs | execution | wall s | CPU s (tree) | match / count / balance s | outside stages s "
        "| peak tree MiB | driver peak MiB | worker peak MiB (processes) | Ray services MiB (processes) "
        "| other CPU s |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        for name, run in size["runs"].items():
            m, timings, roles = run["measured"], run["timings"], run["roles"]
            stages_cell = " / ".join(f"{timings.get(k, 0):.1f}" for k in STAGE_TIMINGS)
            driver = roles.get("driver", {}).get("max_peak_mib", 0)
            worker = roles.get("worker")
            worker_cell = f"{worker['max_peak_mib']:,.0f} ({worker['processes']})" if worker else "in the driver"
            ray = roles.get("ray")
            ray_cell = f"{ray['sum_peaks_mib']:,.0f} ({ray['processes']})" if ray else "-"
            tree_cpu = sum(r.get("cpu_s", 0.0) for r in roles.values())
            # bench_engine counts as "other" the CPU of processes the CLI does not reap (Ray's): take it back.
            other = max(0.0, m["other_cpu_s"] - max(0.0, tree_cpu - m["cpu_s"]))
            lines.append(
                f"| {size['rows']:,} | {LABELS[name]} | {m['wall_s']:.1f} | {tree_cpu:.1f} | {stages_cell} "
                f"| {run['outside_stages_s']:.1f} | {m['peak_tree_rss_mib']:,.0f} | {driver:,.0f} "
                f"| {worker_cell} | {ray_cell} | {other:.1f} |"
            )
    lines += [
        "",
        "Worker peak: the largest VmHWM of one process that ran stages (local: a spawned worker; Ray: a "
        "`ray::` worker); with one local worker the stages run in the driver. Ray services: the sum of the "
        "peaks of gcs_server, raylet and Ray's agents. CPU s: summed over the process tree from /proc "
        "(Ray's processes included). Other CPU s: what the rest of the machine used during "
        "the run, less the CPU of the run's own processes (well above 0: the figures were disturbed).",
        "",
    ]
    if report.get("worker"):
        lines += [
            "## One worker's memory",
            "",
            f"One process maps the matcher tables of the {report['entries']:,}-entry metadata and matches one "
            "shard, as a stage worker does (`bench_scaling.py --probe`).",
            "",
            "| batch rows | shard rows | RSS after imports MiB | after the matcher MiB | peak MiB |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in report["worker"]:
            lines.append(
                f"| {row['batch_rows']:,} | {row['shard_rows']:,} | {row['rss_after_imports_mib']:,.0f} "
                f"| {row['rss_after_matcher_mib']:,.0f} | {row['peak_mib']:,.0f} |"
            )
        lines.append("")
    lines += ["## Commands", ""]
    for size in report["sizes"]:
        for name, run in size["runs"].items():
            lines.append(f"- {size['rows']:,} {LABELS[name]}: `{run['measured']['command']}`")
    return "\n".join(lines) + "\n"


def save(report: dict) -> None:
    derive(report)
    write_results("scaling", report, markdown(report))


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    p.add_argument("--entries", type=int, default=500_000)
    p.add_argument("--executions", nargs="+", choices=list(EXECUTIONS), default=list(EXECUTIONS))
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument("--seed", type=int, default=0, help="seed of the generated pools and of the runs")
    p.add_argument("--t", type=float, default=20_000)
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait at most for an idle machine before each run (0: never)",
    )
    p.add_argument("--repeat", type=int, default=2, help="runs per execution and size; the fastest is reported")
    p.add_argument("--keep-runs", action="store_true", help="keep the run directories (large) in the workdir")
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    if args.workdir == REPO or REPO in args.workdir.parents:
        p.error("--workdir must be outside the repository")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe_worker(Path(argv[1]), Path(argv[2]), int(argv[3]))))
        return 0
    args = parse_args(argv)
    if "ray-2" in args.executions:
        try:
            ray_version = importlib.metadata.version("ray")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit("the Ray execution needs Ray: pip install -r requirements-ray.txt") from None
    else:
        ray_version = "not used"
    report = {
        "command": "python bench/bench_scaling.py " + shlex.join(argv),
        "environment": environment(),
        "ray_version": ray_version,
        "entries": args.entries,
        "t": args.t,
        "seed": args.seed,
        "sizes": [],
        "worker": [],
    }
    for rows in args.sizes:
        pool, _ = ensure_pool(args.workdir, rows, args.entries, args.seed)
        size = {"rows": rows, "pool": str(pool), "runs": {}}
        report["sizes"].append(size)
        reference = None
        # Repetitions go round the executions, so that a busy spell on the machine hits them alike;
        # the fastest repetition of each is reported (the others' times are kept in the JSON).
        for repetition in range(args.repeat):
            for name in args.executions:
                print(f"[{rows:,}] {LABELS[name]} ({repetition + 1}/{args.repeat})", flush=True)
                run = run_once(pool, name, rows, args.workdir, args.t, args.seed, args.quiet_wait)
                digest = result_digest(Path(run["run_dir"]), args.t, args.seed)
                if reference is None:
                    reference = digest
                elif not same_result(reference, digest):
                    raise SystemExit(
                        f"{LABELS[name]} curated another set than {LABELS[args.executions[0]]} at {rows:,} pairs"
                    )
                if not args.keep_runs:
                    shutil.rmtree(run["run_dir"], ignore_errors=True)
                best = size["runs"].get(name)
                walls = (best["all_wall_s"] if best else []) + [run["measured"]["wall_s"]]
                if best is None or run["measured"]["wall_s"] < best["measured"]["wall_s"]:
                    best = run
                best["all_wall_s"] = walls
                best["same_result_as_first"] = True
                size["runs"][name] = best
                save(report)
        if not report["worker"]:
            report["worker"] = measure_worker(pool, args.workdir)
        save(report)
        print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
