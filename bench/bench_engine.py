"""Benchmark the curation engine on pools that look like real web alt-text: matchers, commands, memory.

For each size it measures, on one pool made by bench/realistic_pool.py (generated if absent):
  a) the matchers on one core with the texts in memory: MetaCLIP's per-text reference loop (spacing,
     automaton.iter, a set), the engine's Aho-Corasick matcher and its token matcher, on the same
     texts, in texts per second, with their build times; all three must give identical results;
  b) `python -m curation match` with the token matcher on 1 and 2 workers (and the Aho-Corasick
     matcher on 1 worker, on pools up to --aho-corasick-max-rows);
  c) `python -m curation run ... --t 20000 --seed 0` on 1 and 2 workers: wall time and peak memory;
     b) and c) run --repeat times each, interleaved, and the fastest counts (a VM's neighbours move
     single figures by 10-20% here);
  d) `python -m curation balance RUN --t 5000` on 2 workers: a new t, with no re-matching.

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

import pyarrow as pa
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(REPO))

from curation import matching, token_matcher  # noqa: E402
from curation.matching import build_automaton, spacing  # noqa: E402  (the reference's own pieces)

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
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(argv)}\n{log_path.read_text()[-3000:]}")
    return Measured(
        command=display_command(argv),
        wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_tree_rss_mib=round(memory.peak_sum_kib / 1024, 1),
        peak_single_rss_mib=round(max(memory.hwm_kib.values(), default=0) / 1024, 1),
        sum_of_process_peaks_mib=round(sum(memory.hwm_kib.values()) / 1024, 1),
        peak_processes=memory.peak_processes,
        samples=memory.samples,
        sampler_cpu_s=round(own, 2),
        load_average_before=round(load, 2),
        other_cpu_s=round(max(other, 0.0), 2),
        log=str(log_path),
    )


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), to detect concurrent load."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


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


def display_command(argv: list[str]) -> str:
    """The command as a user would type it from the repository root."""
    shown = ["python" if a == sys.executable else a for a in argv]
    return shlex.join(shown)


# --------------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------------


def ensure_pool(workdir: Path, rows: int, entries: int, seed: int, real_data: Path | None = None) -> tuple[Path, dict]:
    """Generate the realistic pool once per (rows, entries, seed); reuse it when its realism.json exists."""
    pool = workdir / f"real_rows{rows}_entries{entries}_seed{seed}"
    report = pool / "realism.json"
    if not report.exists():
        argv = [
            sys.executable,
            str(BENCH_DIR / "realistic_pool.py"),
            "--rows",
            str(rows),
            "--entries",
            str(entries),
            "--seed",
            str(seed),
            "--out",
            str(pool),
            "--overwrite",
        ]
        if real_data is not None:
            argv += ["--real-data", str(real_data)]
        print(f"generating {pool}", flush=True)
        subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return pool, json.loads(report.read_text())


def read_texts(pool_dir: Path, rows: int) -> pa.Array:
    """The first ``rows`` texts of the pool in file order, as one Arrow string array."""
    chunks, have = [], 0
    for path in sorted(pool_dir.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000, columns=["text"]):
            chunks.append(batch.column(0))
            have += len(batch)
            if have >= rows:
                return pa.concat_arrays(chunks)[:rows]
    return pa.concat_arrays(chunks)


# --------------------------------------------------------------------------------------------------
# (a) The matchers themselves, one core, in memory
# --------------------------------------------------------------------------------------------------


def reference_loop(automaton, texts: list[str | None]) -> tuple[float, list[list[int]]]:
    """MetaCLIP's per-text loop: spacing, automaton.iter and a set of ids per text (sorted for comparing)."""
    scan = automaton.iter
    out = []
    start = time.perf_counter()
    for text in texts:
        out.append({entry_id for _, entry_id in scan(spacing(text))} if text else set())
    seconds = time.perf_counter() - start
    return seconds, [sorted(ids) for ids in out]


def batched(match_batch, texts: pa.Array, batch_rows: int) -> tuple[float, list[list[int]]]:
    start = time.perf_counter()
    parts = [match_batch(texts[i : i + batch_rows]) for i in range(0, len(texts), batch_rows)]
    seconds = time.perf_counter() - start
    return seconds, [ids for part in parts for ids in part.to_pylist()]


def bench_matchers(pool: Path, rows: int, batch_rows: int, quiet_wait: float) -> dict:
    """Texts per second of one core for the reference loop, the Aho-Corasick and the token matcher on
    the same texts (already in memory), their build times, and whether all three agree exactly."""
    entries = json.loads((pool / "metadata.json").read_text())
    texts = read_texts(pool / "pool", rows)
    python_texts = texts.to_pylist()
    gc.collect()
    wait_for_quiet(quiet_wait)
    busy, own = machine_busy_s(), time.process_time()
    started = time.perf_counter()
    automaton = build_automaton(entries)
    automaton_s = time.perf_counter() - started
    started = time.perf_counter()
    tables = token_matcher.build_tables(entries)
    tables_s = time.perf_counter() - started
    reference_s, expected = reference_loop(automaton, python_texts)
    aho_s, aho_out = batched(lambda batch: matching.match_batch(automaton, batch), texts, batch_rows)
    tokens_s, tokens_out = batched(lambda batch: token_matcher.match_batch(tables, batch), texts, batch_rows)
    other = machine_busy_s() - busy - (time.process_time() - own)
    matches = sum(len(ids) for ids in expected)
    return {
        "texts": len(python_texts),
        "batch_rows": batch_rows,
        "matches_per_text": round(matches / len(python_texts), 3),
        "automaton_build_s": round(automaton_s, 3),
        "token_tables_build_s": round(tables_s, 3),
        "reference_s": round(reference_s, 3),
        "aho_corasick_s": round(aho_s, 3),
        "tokens_s": round(tokens_s, 3),
        "reference_texts_per_s": round(len(python_texts) / reference_s),
        "aho_corasick_texts_per_s": round(len(python_texts) / aho_s),
        "tokens_texts_per_s": round(len(python_texts) / tokens_s),
        "tokens_vs_reference": round(reference_s / tokens_s, 2),
        "aho_corasick_vs_reference": round(reference_s / aho_s, 2),
        "all_agree": expected == aho_out == tokens_out,
        "other_cpu_s": round(max(other, 0.0), 2),
    }


# --------------------------------------------------------------------------------------------------
# (b)-(d) The commands
# --------------------------------------------------------------------------------------------------


def fresh(path: Path, workdir: Path) -> Path:
    """An empty run directory path inside the workdir (old results of this benchmark are removed)."""
    if workdir.resolve() not in path.resolve().parents:
        raise SystemExit(f"refusing to clear {path}: not inside the workdir {workdir}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def read_run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def command(
    verb: str, pool: Path, run_dir: Path, workers: int, matcher: str = "tokens", t: float | None = None, seed: int = 0
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "curation",
        verb,
        "--pool",
        str(pool / "pool"),
        "--metadata",
        str(pool / "metadata.json"),
        "--out",
        str(run_dir),
        "--workers",
        str(workers),
        "--matcher",
        matcher,
        "--quiet",
    ]
    return argv + (["--t", f"{t:g}", "--seed", str(seed)] if t is not None else [])


def measured_run(argv: list[str], run_dir: Path, log: Path, quiet_wait: float) -> dict:
    wait_for_quiet(quiet_wait)
    measured = run_measured(argv, log)
    record = read_run_json(run_dir)
    return {"command": asdict(measured), "timings": record["timings"], "rows": record["rows"]}


def bench_commands(pool: Path, rows: int, workdir: Path, logs: Path, args: argparse.Namespace) -> dict:
    """match on 1 and 2 workers (and the reference matcher on 1), run on 1 and 2, balance at a new t.

    Each match and run command runs --repeat times, the cases interleaved so that a disturbance of the
    machine hits them alike; the fastest of each is reported (all are kept in the JSON)."""
    cases = [("match_tokens_1", "match", 1, "tokens"), ("match_tokens_2", "match", 2, "tokens")]
    if rows <= args.aho_corasick_max_rows:
        cases.append(("match_aho_corasick_1", "match", 1, "aho-corasick"))
    cases += [("run_tokens_1", "run", 1, "tokens"), ("run_tokens_2", "run", 2, "tokens")]
    tries: dict[str, list[dict]] = {name: [] for name, *_ in cases}
    for attempt in range(args.repeat):
        for name, verb, workers, matcher in cases:
            if matcher == "aho-corasick" and attempt:
                continue  # the slow reference matcher runs once
            run_dir = fresh(workdir / "runs" / f"{name}-{rows}", workdir)
            print(f"[{rows:,}] {name} ({attempt + 1}/{args.repeat})", flush=True)
            t = args.t if verb == "run" else None
            tries[name].append(
                measured_run(
                    command(verb, pool, run_dir, workers, matcher, t, args.seed),
                    run_dir,
                    logs / f"{name}-{rows}-{attempt}.log",
                    args.quiet_wait,
                )
            )
    out = {
        name: min(runs, key=lambda r: r["command"]["wall_s"]) | {"all_wall_s": [r["command"]["wall_s"] for r in runs]}
        for name, runs in tries.items()
    }
    run_dir = workdir / "runs" / f"run_tokens_2-{rows}"
    print(f"[{rows:,}] balance at t={args.new_t:g}", flush=True)
    balance = [
        sys.executable,
        "-m",
        "curation",
        "balance",
        str(run_dir),
        "--t",
        f"{args.new_t:g}",
        "--workers",
        "2",
        "--quiet",
    ]
    out["balance_2"] = measured_run(balance, run_dir, logs / f"balance-{rows}.log", args.quiet_wait)
    return out


def realism_summary(realism: dict) -> dict:
    """Real alt-texts against the generated captions, as realistic_pool.py measured them."""
    figures = realism["realism"]["figures"]
    keep = (
        "chars",
        "tokens",
        "matches",
        "zero_match_share",
        "top_3pct_share",
        "non_ascii_share",
        "wrapped_punctuation_share",
        "distinct_text_share",
    )
    return {side: {k: figures[side].get(k) for k in keep} for side in ("real", "generated")}


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def environment() -> dict:
    """Where the figures come from, so they can be compared with later runs."""
    import numpy
    import pyarrow

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
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


def peak_gib(m: dict) -> str:
    return f"{m['peak_tree_rss_mib'] / 1024:.2f}"


def markdown(report: dict) -> str:
    """engine.md: the headline tables, the realism check, then the exact commands."""
    env = report["environment"]
    lines = [
        "# Engine benchmark",
        "",
        f"{env['date']}, commit {env['commit']}, {env['cpus']} cores, {env['memory_gib']} GiB, "
        f"Python {env['python']}, numpy {env['numpy']}, pyarrow {env['pyarrow']}, "
        f"pyahocorasick {env['pyahocorasick']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Pools from `bench/realistic_pool.py`: captions grown from real web alt-texts, a {report['entries']:,}-entry "
        "metadata of WordNet names, common English words with capitalised variants, real bigrams and the numbers "
        "0-99 (the realism check is at the end).",
        "",
        "## The matchers, one core, texts in memory",
        "",
        "Reference: MetaCLIP's per-text loop (spacing, `automaton.iter`, a set). Aho-Corasick and tokens: the "
        "engine's two matchers on Arrow batches. All three on the same texts; results compared exactly.",
        "",
        "| pairs in pool | texts timed | matches / text | reference texts/s | Aho-Corasick texts/s | tokens texts/s "
        "| tokens / reference | build: automaton s | build: token tables s | identical |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for size in report["sizes"]:
        k = size["matchers"]
        lines.append(
            f"| {size['rows']:,} | {k['texts']:,} | {k['matches_per_text']:.2f} | {k['reference_texts_per_s']:,} "
            f"| {k['aho_corasick_texts_per_s']:,} | {k['tokens_texts_per_s']:,} | **{k['tokens_vs_reference']:.2f}x** "
            f"| {k['automaton_build_s']:.2f} | {k['token_tables_build_s']:.2f} | {'yes' if k['all_agree'] else 'NO'} |"
        )
    lines += [
        "",
        "## The commands (Parquet in, run directory out)",
        "",
        "Wall seconds of the whole command (start-up included), the fastest of --repeat runs; peak RSS is the summed "
        "RSS of the command and its "
        "worker processes, sampled every 0.1 s (pages shared between processes, such as the mapped matcher tables, "
        "count once per process). The match stage is `match_s` of run.json: from the first Parquet read to the last "
        "annotated part, the matcher tables' build included.",
        "",
        "| pairs | `match` tokens, 1 worker | `match` tokens, 2 workers | speed-up (efficiency) "
        "| match stage (whole command) / reference, 1 worker | `match` Aho-Corasick, 1 worker | `run`, 1 worker | `run`, 2 workers "
        "| speed-up (efficiency) | peak RSS `run` 2 workers GiB | `balance` new t, 2 workers | / run's match stage |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        c, k, rows = size["commands"], size["matchers"], size["rows"]
        m1, m2 = c["match_tokens_1"]["command"]["wall_s"], c["match_tokens_2"]["command"]["wall_s"]
        r1, r2 = c["run_tokens_1"]["command"]["wall_s"], c["run_tokens_2"]["command"]["wall_s"]
        aho = c.get("match_aho_corasick_1")
        aho_cell = f"{aho['command']['wall_s']:.1f} s" if aho else "not run"
        stage_ratio = (rows / c["match_tokens_1"]["timings"]["match_s"]) / k["reference_texts_per_s"]
        wall_ratio = (rows / m1) / k["reference_texts_per_s"]
        balance = c["balance_2"]["command"]["wall_s"]
        run_match = c["run_tokens_2"]["timings"]["match_s"]
        lines.append(
            f"| {rows:,} | {m1:.1f} s | {m2:.1f} s | {m1 / m2:.2f}x ({m1 / m2 / 2:.0%}) "
            f"| {stage_ratio:.2f}x ({wall_ratio:.2f}x) "
            f"| {aho_cell} | {r1:.1f} s | {r2:.1f} s "
            f"| {r1 / r2:.2f}x ({r1 / r2 / 2:.0%}) | {peak_gib(c['run_tokens_2']['command'])} "
            f"| {balance:.1f} s | {balance / run_match:.0%} |"
        )
    lines += ["", "Kept at the run's t and at the new t (realised, expected):", ""]
    for size in report["sizes"]:
        c = size["commands"]
        run_rows, balance_rows = c["run_tokens_2"]["rows"], c["balance_2"]["rows"]
        lines.append(
            f"- {size['rows']:,} pairs: t={report['t']:g} keeps {run_rows['kept']:,} "
            f"({run_rows['expected_kept']:,.0f} expected); t={report['balance_t']:g} keeps "
            f"{balance_rows['kept']:,} ({balance_rows['expected_kept']:,.0f} expected); "
            f"{run_rows['matches'] / run_rows['in']:.2f} matches per pair, "
            f"{run_rows['matched'] / run_rows['in']:.1%} matched"
        )
    lines += [
        "",
        "## Does the generated text look like real alt-text?",
        "",
        "`realistic_pool.py` compares the first 50,000 generated captions with the 10,000 real alt-texts "
        "it grew them from, matching both against the same metadata with the reference matcher:",
        "",
        "| pairs | side | chars mean / median / p99 | tokens mean | matches / caption mean / median / p99 "
        "| no match | top 3% of entries hold | non-ASCII | with , . ; : ? ! ` |",
        "|---:|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        for side, f in size["realism"].items():
            lines.append(
                f"| {size['rows']:,} | {side} | {f['chars']['mean']:.1f} / {f['chars']['median']:.0f} / "
                f"{f['chars']['p99']:.0f} | {f['tokens']['mean']:.2f} | {f['matches']['mean']:.2f} / "
                f"{f['matches']['median']:.0f} / {f['matches']['p99']:.0f} | {f['zero_match_share']:.1%} "
                f"| {f['top_3pct_share']:.1%} | {f['non_ascii_share']:.1%} | {f['wrapped_punctuation_share']:.1%} |"
            )
    lines += [
        "",
        "## Exact commands (run from the repository root)",
        "",
        "CPU s is the command's own CPU time (all its processes); other CPU s is what the rest of the machine "
        "used meanwhile (well above 0: the figures were disturbed). Before each measurement the benchmark "
        "waits (up to --quiet-wait seconds) for the machine to be idle.",
        "",
    ]
    for size in report["sizes"]:
        k = size["matchers"]
        lines.append(
            f"- {size['rows']:,} matchers in memory (other CPU s {k['other_cpu_s']}): see `bench_matchers` "
            "in bench/bench_engine.py"
        )
        for name, c in size["commands"].items():
            m = c["command"]
            lines.append(
                f"- {size['rows']:,} {name} ({m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} CPU s, peak "
                f"{m['peak_tree_rss_mib']:,.0f} MiB, other CPU s {m['other_cpu_s']}): `{m['command']}`"
            )
    return "\n".join(lines) + "\n"


def write_results(name: str, report: dict, text: str) -> None:
    """A benchmark's figures as results/NAME.json and its Markdown as results/NAME.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(text)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--entries", type=int, default=500_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument(
        "--real-data",
        type=Path,
        help="the real alt-texts realistic_pool.py grows captions from (default: its own default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated pools and of the run")
    p.add_argument("--t", type=float, default=20_000)
    p.add_argument("--new-t", type=float, default=5_000, help="t of the re-balance")
    p.add_argument(
        "--matcher-rows",
        type=int,
        default=500_000,
        help="texts the in-memory matcher comparison times (default: %(default)s)",
    )
    p.add_argument("--batch-rows", type=int, default=50_000, help="batch of the in-memory matchers (the CLI's default)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each match and run command; the fastest counts")
    p.add_argument(
        "--aho-corasick-max-rows",
        type=int,
        default=1_000_000,
        help="largest pool on which `match --matcher aho-corasick` is timed too (it is slow)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait at most for an idle machine before each measurement (0: never)",
    )
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
        pool, realism = ensure_pool(args.workdir, rows, args.entries, args.seed, args.real_data)
        print(f"[{rows:,}] matchers in memory", flush=True)
        matchers_report = bench_matchers(pool, min(rows, args.matcher_rows), args.batch_rows, args.quiet_wait)
        commands = bench_commands(pool, rows, args.workdir, logs, args)
        report["sizes"].append(
            {
                "rows": rows,
                "pool": str(pool),
                "realism": realism_summary(realism),
                "matchers": matchers_report,
                "commands": commands,
            }
        )
        write_results("engine", report, markdown(report))
        print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
