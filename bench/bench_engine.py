"""Benchmark the curation engine on generated pools: match throughput, end-to-end time and memory.

For each size it measures, on one generated pool (made by bench/generate_pool.py if absent):
  a) `python -m curation match ... --workers 1` against a plain per-text reference loop run in memory
     on the same texts (texts read and automaton built outside the timing), in texts per second;
  b) `python -m curation run ... --t 20000 --seed 0` with the default workers: wall time and peak
     memory of the whole process tree;
  c) `python -m curation balance RUN --t 5000`: a new t on the same seed, with no re-matching.

Peak memory is the maximum over time of the summed VmRSS of the CLI process and all its descendants,
sampled every 0.1 s from /proc. Summed RSS counts pages shared between processes more than once, so
it overstates the real footprint a little; each process's own peak (VmHWM) is recorded too, which
catches spikes shorter than the sampling period.

Usage:
    python bench/bench_engine.py --sizes 1000000 10000000 --entries 500000 --workdir /tmp/bench
Writes bench/results/engine.json and bench/results/engine.md (results are rewritten after each size,
so a long run that is stopped keeps the sizes it finished).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from generate_pool import build_automaton, spaced  # noqa: E402  (the plain reference matcher)

SAMPLE_SECONDS = 0.1


# --------------------------------------------------------------------------------------------------
# Running a command while watching the memory of its process tree
# --------------------------------------------------------------------------------------------------


def parent_map() -> dict[int, list[int]]:
    """Children of every process, from /proc/*/stat (the comm field may hold spaces or parentheses)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                after_comm = f.read().rpartition(b")")[2].split()
        except OSError:
            continue  # the process ended while we looked
        children.setdefault(int(after_comm[1]), []).append(int(entry.name))
    return children


def tree_pids(root: int) -> list[int]:
    """The root process and all its descendants, right now."""
    children = parent_map()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB: now and its own peak so far (0, 0 when it is gone)."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break  # VmRSS follows VmHWM
    except OSError:
        pass
    return rss, hwm


@dataclass
class TreeMemory:
    """Peak summed RSS of a process tree, sampled on a background thread.

    Sampling can miss a spike shorter than the period, so each process's own high-water mark (VmHWM)
    is kept too: their sum bounds the tree's peak from above (the peaks may not coincide).
    """

    root: int
    peak_sum_kib: int = 0
    peak_processes: int = 0
    samples: int = 0
    hwm_kib: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = tree_pids(self.root)
            total = 0
            for pid in pids:
                rss, hwm = rss_kib(pid)
                total += rss
                self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), hwm)
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            self.peak_processes = max(self.peak_processes, len(pids))
            self.samples += 1
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class Measured:
    """What one command cost."""

    command: str
    wall_s: float
    cpu_s: float
    peak_tree_rss_mib: float
    peak_single_rss_mib: float  # largest process: the highest VmHWM seen
    sum_of_process_peaks_mib: float  # upper bound of the tree's peak (VmHWM of each process, summed)
    peak_processes: int
    samples: int
    sampler_cpu_s: float  # what watching the tree cost this process
    load_average_before: float  # 1-minute load: other work on the machine skews the figures
    other_cpu_s: float  # CPU seconds the rest of the machine used meanwhile (0 on a quiet machine)
    log: str


def run_measured(argv: list[str], log_path: Path, cwd: Path = REPO) -> Measured:
    """Run a command to completion; fail loudly (with its log) if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    busy_before, own_before = machine_busy_s(), time.process_time()  # own: the sampler thread
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        with TreeMemory(proc.pid) as memory:
            # rusage covers the child and its reaped workers. Its ru_maxrss is not used: Linux carries
            # the parent's peak across fork/exec into it, so it reports this script's own size.
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    own = time.process_time() - own_before
    other = machine_busy_s() - busy_before - own - (usage.ru_utime + usage.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(argv)}\n"
                         f"{log_path.read_text()[-3000:]}")
    return Measured(
        command=display_command(argv), wall_s=round(wall, 3), cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_tree_rss_mib=round(memory.peak_sum_kib / 1024, 1),
        peak_single_rss_mib=round(max(memory.hwm_kib.values(), default=0) / 1024, 1),
        sum_of_process_peaks_mib=round(sum(memory.hwm_kib.values()) / 1024, 1),
        peak_processes=memory.peak_processes, samples=memory.samples, sampler_cpu_s=round(own, 2),
        load_average_before=round(load, 2),
        other_cpu_s=round(max(other, 0.0), 2), log=str(log_path))


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), to detect concurrent load."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def display_command(argv: list[str]) -> str:
    """The command as a user would type it from the repository root."""
    shown = ["python" if a == sys.executable else a for a in argv]
    return shlex.join(shown)


# --------------------------------------------------------------------------------------------------
# Pools and the reference loop
# --------------------------------------------------------------------------------------------------


def ensure_pool(workdir: Path, rows: int, entries: int, seed: int) -> tuple[Path, dict]:
    """Generate the pool once per (rows, entries, seed); reuse it when its generation.json exists."""
    pool = workdir / f"rows{rows}_entries{entries}_seed{seed}"
    report = pool / "generation.json"
    if not report.exists():
        argv = [sys.executable, str(BENCH_DIR / "generate_pool.py"), "--rows", str(rows), "--entries",
                str(entries), "--seed", str(seed), "--out", str(pool), "--overwrite"]
        print(f"generating {pool}", flush=True)
        subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return pool, json.loads(report.read_text())


def read_texts(pool_dir: Path) -> list[str | None]:
    """All texts in file order, as Python strings (the reference's input)."""
    texts: list[str | None] = []
    for path in sorted(pool_dir.glob("part-*.parquet")):
        texts.extend(pq.read_table(path, columns=["text"]).column(0).to_pylist())
    return texts


def reference_loop(automaton, texts: list[str | None]) -> tuple[float, int, float]:
    """Timed plain loop: spacing, automaton.iter and a set of ids per text.

    Returns (seconds, matches, CPU seconds the rest of the machine used meanwhile).
    """
    scan = automaton.iter
    matches = 0
    busy, own = machine_busy_s(), time.process_time()
    start = time.perf_counter()
    for text in texts:
        if text:
            matches += len({entry_id for _, entry_id in scan(spaced(text))})
    seconds = time.perf_counter() - start
    other = machine_busy_s() - busy - (time.process_time() - own)
    return seconds, matches, max(other, 0.0)


def wait_for_quiet(max_wait_s: float, idle_below: float = 0.15, window_s: float = 2.0) -> float:
    """Wait until other work uses less than `idle_below` of a core; returns the seconds waited.

    Development machines run tests beside benchmarks; two cores leave no headroom, so a busy
    neighbour changes the figures more than anything in the engine.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait_s:
        busy = machine_busy_s()
        time.sleep(window_s)
        if (machine_busy_s() - busy) / window_s < idle_below:
            break
    return round(time.perf_counter() - start, 1)


# --------------------------------------------------------------------------------------------------
# One size
# --------------------------------------------------------------------------------------------------


def fresh(path: Path, workdir: Path) -> Path:
    """An empty run directory path inside the workdir (old results of this benchmark are removed)."""
    if workdir.resolve() not in path.resolve().parents:
        raise SystemExit(f"refusing to clear {path}: not inside the workdir {workdir}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def read_run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def bench_match(pool: Path, rows: int, workdir: Path, logs: Path, quiet_wait: float) -> dict:
    """(a) match stage on one worker vs the in-memory reference loop on the same texts."""
    run_dir = fresh(workdir / "runs" / f"match-{rows}", workdir)
    cli = [sys.executable, "-m", "curation", "match", "--pool", str(pool / "pool"), "--metadata",
           str(pool / "metadata.json"), "--out", str(run_dir), "--workers", "1", "--quiet"]
    wait_for_quiet(quiet_wait)
    engine = run_measured(cli, logs / f"match-{rows}.log")
    record = read_run_json(run_dir)

    entries = json.loads((pool / "metadata.json").read_text())
    automaton = build_automaton(entries)
    texts = read_texts(pool / "pool")
    wait_for_quiet(quiet_wait)
    ref_s, ref_matches, ref_other = reference_loop(automaton, texts)
    del texts, automaton, entries
    gc.collect()

    engine_rate = rows / engine.wall_s
    stage_rate = rows / record["timings"]["match_s"]
    ref_rate = rows / ref_s
    return {
        "engine": asdict(engine),
        "engine_timings": record["timings"],
        "engine_matches": record["rows"]["matches"],
        "reference_s": round(ref_s, 3),
        "reference_other_cpu_s": round(ref_other, 2),
        "reference_matches": ref_matches,
        "matches_agree": ref_matches == record["rows"]["matches"],
        "engine_texts_per_s_wall": round(engine_rate),
        "engine_texts_per_s_match_stage": round(stage_rate),
        "reference_texts_per_s": round(ref_rate),
        "ratio_wall": round(engine_rate / ref_rate, 3),
        "ratio_match_stage": round(stage_rate / ref_rate, 3),
        "engine_texts_per_cpu_s": round(rows / engine.cpu_s),
    }


def bench_run_and_balance(pool: Path, rows: int, workdir: Path, logs: Path, t: float, new_t: float,
                          seed: int, quiet_wait: float) -> dict:
    """(b) end-to-end run with the default workers, then (c) a re-balance at a new t."""
    run_dir = fresh(workdir / "runs" / f"run-{rows}", workdir)
    cli = [sys.executable, "-m", "curation", "run", "--pool", str(pool / "pool"), "--metadata",
           str(pool / "metadata.json"), "--t", f"{t:g}", "--seed", str(seed), "--out", str(run_dir), "--quiet"]
    wait_for_quiet(quiet_wait)
    run = run_measured(cli, logs / f"run-{rows}.log")
    run_record = read_run_json(run_dir)
    balance_cli = [sys.executable, "-m", "curation", "balance", str(run_dir), "--t", f"{new_t:g}", "--quiet"]
    wait_for_quiet(quiet_wait)
    balance = run_measured(balance_cli, logs / f"balance-{rows}.log")
    balance_record = read_run_json(run_dir)
    return {
        "run": asdict(run),
        "run_workers": run_record["engine"]["workers"],
        "run_timings": run_record["timings"],
        "run_rows": run_record["rows"],
        "balance": asdict(balance),
        "balance_timings": {k: balance_record["timings"].get(k) for k in ("threshold_s", "select_s")},
        "balance_rows": {k: balance_record["rows"].get(k) for k in ("kept", "expected_kept")},
        "balance_t": new_t,
    }


def shape_summary(generation: dict) -> dict:
    """The pool's shape, as generate_pool.py measured it."""
    shape = generation.get("shape_on_sample", {})
    return {
        "text_chars_mean": round(generation["realised"]["text_chars_mean"], 1),
        "text_chars_median": generation["realised"]["text_chars_median"],
        "bytes_on_disk": generation["realised"]["bytes_on_disk"],
        "generation_s": generation["timing_seconds"]["total_generation"],
        "sample_rows": shape.get("sample_rows"),
        "matched_share": shape.get("matched_share"),
        "mean_matches_per_matched_text": shape.get("mean_matches_per_matched_text"),
        "design_head_share": shape.get("design_head_share_of_sample_matches"),
        "dead_entries": generation["design"]["dead_entries"],
    }


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def environment() -> dict:
    """Where the figures come from, so they can be compared with later runs."""
    import numpy
    import pyarrow

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (subprocess.CalledProcessError, OSError):
        commit = "none (no commit yet)"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "pyahocorasick": importlib.metadata.version("pyahocorasick"),
    }


def peak_cell(m: dict) -> str:
    """Sampled tree peak / largest process / sum of process peaks, in MiB."""
    hwm = m.get("sum_of_process_peaks_mib")
    return (f"{m['peak_tree_rss_mib']:,.0f} / {m['peak_single_rss_mib']:,.0f}"
            + (f" / {hwm:,.0f}" if hwm is not None else ""))


def markdown(report: dict) -> str:
    """engine.md: one table of the headline figures, then the exact commands."""
    env = report["environment"]
    lines = [
        "# Engine benchmark",
        "",
        f"{env['date']}, commit {env['commit']}, {env['cpus']} cores, {env['memory_gib']} GiB, "
        f"Python {env['python']}, pyarrow {env['pyarrow']}, pyahocorasick {env['pyahocorasick']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        "Pools from `bench/generate_pool.py` (synthetic, MetaCLIP-like shape), metadata of "
        f"{report['entries']:,} entries. Match: `curation match --workers 1` against a per-text reference "
        "loop in memory (spacing, `automaton.iter`, a set), texts read and automaton built outside its "
        "timing. Peak memory: summed VmRSS of the CLI and its child processes, sampled every 0.1 s "
        "(shared pages count in every process that maps them, so the sum overstates a little).",
        "",
        "| pairs | match, 1 worker: wall s | engine texts/s: wall (stage) | reference texts/s "
        "| engine / reference: wall (stage) | run t=20000: wall s | run workers "
        "| run match stage texts/s (/ reference) | run peak RSS MiB "
        f"| balance t={report['balance_t']:g}: wall s | balance peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        m, r = size["match"], size["end_to_end"]
        lines.append(
            f"| {size['rows']:,} | {m['engine']['wall_s']:.1f} "
            f"| {m['engine_texts_per_s_wall']:,} ({m['engine_texts_per_s_match_stage']:,}) "
            f"| {m['reference_texts_per_s']:,} | {m['ratio_wall']:.2f} ({m['ratio_match_stage']:.2f}) "
            f"| {r['run']['wall_s']:.1f} | {r['run_workers']} "
            f"| {size['rows'] / r['run_timings']['match_s']:,.0f} "
            f"({size['rows'] / r['run_timings']['match_s'] / m['reference_texts_per_s']:.2f}) "
            f"| {peak_cell(r['run'])} "
            f"| {r['balance']['wall_s']:.1f} | {peak_cell(r['balance'])} |")
    lines += ["", "Peak RSS cells: sampled tree sum / largest single process / sum of each process's own peak "
              "(an upper bound; a spike shorter than 0.1 s shows only in the last two)."]
    lines += ["", "Target: match stage at least 2x the reference per core (ratio >= 2).", "",
              "| pairs | matched share | matches / matched text | head share (top 3%) | text chars mean / median "
              "| pool MB | generation s | matches agree |", "|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for size in report["sizes"]:
        s, m = size["pool_shape"], size["match"]
        lines.append(
            f"| {size['rows']:,} | {s['matched_share']:.3f} | {s['mean_matches_per_matched_text']:.2f} "
            f"| {s['design_head_share']:.3f} | {s['text_chars_mean']} / {s['text_chars_median']} "
            f"| {s['bytes_on_disk'] / 1e6:,.0f} | {s['generation_s']:.1f} "
            f"| {'yes' if m['matches_agree'] else 'NO'} |")
    lines += ["", "Shape columns are measured on the first 50,000 rows with the reference matcher.", "",
              "## Exact commands (run from the repository root)", "",
              "CPU s is the command's own CPU time (all its processes); other CPU s is what the rest of the "
              "machine used meanwhile: well above 0, the figures were disturbed by other work. Before each "
              "measurement the benchmark waits (up to --quiet-wait seconds) for the machine to be idle.", ""]
    for size in report["sizes"]:
        m = size["match"]
        lines.append(f"- {size['rows']:,} reference loop ({m['reference_s']:.1f} s, other CPU s "
                     f"{m.get('reference_other_cpu_s', 'n/a')}): in-process, see `reference_loop` in "
                     "bench/bench_engine.py")
        for label, m in (("match", size["match"]["engine"]), ("run", size["end_to_end"]["run"]),
                         ("balance", size["end_to_end"]["balance"])):
            other = m.get("other_cpu_s", "n/a")
            lines.append(f"- {size['rows']:,} {label} ({m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} CPU s, "
                         f"other CPU s {other}): `{m['command']}`")
    return "\n".join(lines) + "\n"


def write_results(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "engine.md").write_text(markdown(report))


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--entries", type=int, default=500_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument("--seed", type=int, default=0, help="seed of the generated pools and of the run")
    p.add_argument("--t", type=float, default=20_000)
    p.add_argument("--new-t", type=float, default=5_000, help="t of the re-balance")
    p.add_argument("--quiet-wait", type=float, default=120.0,
                   help="seconds to wait at most for an idle machine before each measurement (0: never)")
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    if args.workdir == REPO or REPO in args.workdir.parents:
        p.error("--workdir must be outside the repository")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs = args.workdir / "logs"
    report = {
        "command": "python bench/bench_engine.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "environment": environment(),
        "entries": args.entries,
        "t": args.t,
        "balance_t": args.new_t,
        "sizes": [],
    }
    for rows in args.sizes:
        pool, generation = ensure_pool(args.workdir, rows, args.entries, args.seed)
        print(f"[{rows:,}] match stage vs reference", flush=True)
        match = bench_match(pool, rows, args.workdir, logs, args.quiet_wait)
        print(f"[{rows:,}] end-to-end run and re-balance", flush=True)
        end_to_end = bench_run_and_balance(pool, rows, args.workdir, logs, args.t, args.new_t, args.seed,
                                           args.quiet_wait)
        report["sizes"].append({"rows": rows, "pool": str(pool), "pool_shape": shape_summary(generation),
                                "match": match, "end_to_end": end_to_end})
        write_results(report)
        print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
