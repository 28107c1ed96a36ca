"""Benchmark the curation engine on pools that look like real web alt-text: matchers, commands, memory, disk.

For each size it measures, on one pool made by bench/realistic_pool.py (generated if absent):
  a) the matchers on one core with the texts in memory: MetaCLIP's per-text reference loop (spacing,
     automaton.iter, a set), the engine's Aho-Corasick matcher and its token matcher, on the same
     texts, in texts per second, with their build times; all three must give identical results;
  b) `python -m curation match` with the token matcher on 1 and 2 workers (and the Aho-Corasick
     matcher on 1 worker, on pools up to --aho-corasick-max-rows): the speed-up of 2 workers, and
     pairs/s of the whole command on 1 worker against the reference loop's texts/s of (a);
  c) `python -m curation run ... --t 20000 --seed 0` on 1 and 2 workers: wall time, CPU seconds of the
     process tree and peak memory (the current code's `run` ends with its curated manifest);
     b) and c) run --repeat times each, interleaved, and the fastest counts (a VM's neighbours move
     single figures by 10-20%);
  d) `python -m curation balance RUN --t 5000` on 2 workers: a new t on the finished run, no re-matching;
  e) `python -m curation export RUN --t 5000 --columns img2dataset`: rows per second per core;
  f) the bytes of the run directory by top-level part (per pair, and against the pool's bytes), with
     the curated rows (manifests/, or format 1's curated/) listed aside.

With --baseline REV every command also runs with the code of REV (e.g. 5494bc7, the last format-1 code),
checked out once in a git worktree inside the work directory, interleaved with the current code on the
same pools, so that the report shows issue 22's targets with the figures before and now from one run
on one machine. Each code's commands run from its own tree with PYTHONPATH at it; where each imports
its packages from is checked, and so is each run directory's layout (format 1: annotated/, format 2:
index/). Both must curate the same pairs at t and export the same rows at the new t.

Peak memory is the maximum over time of the summed VmRSS of the CLI process and all its descendants,
sampled every 0.1 s from /proc. Summed RSS counts pages shared between processes more than once, so
it overstates the real footprint a little; each process's own peak (VmHWM) is recorded too, which
catches spikes shorter than the sampling period. CPU is the command's rusage plus that of its
descendants that outlive it (the local engine's fork server and workers), which the benchmark adopts
(PR_SET_CHILD_SUBREAPER) and reaps.

Usage:
    python bench/bench_engine.py --sizes 4000000 10000000 --entries 500000 --workdir /tmp/bench --baseline 5494bc7
Writes bench/results/engine.json and bench/results/engine.md, or into --results-dir (results are
rewritten after each size, so a long run that is stopped keeps the sizes it finished).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Where write_results puts NAME.json and NAME.md: bench/results, or BENCH_RESULTS_DIR (smoke runs
# write there, so that their figures never replace the committed ones).
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results")
sys.path.insert(0, str(REPO))

from curation import matching, token_matcher  # noqa: E402
from curation.export import run_manifest_name  # noqa: E402
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
    adopted_processes: int = 0  # descendants that outlived the command, reaped here (their CPU is in cpu_s)


PR_SET_CHILD_SUBREAPER = 36  # prctl(2): orphaned descendants are re-parented to this process, not init


def _set_subreaper(on: bool) -> bool:
    """Make this process adopt the orphans of the commands it starts (Linux); False where it cannot."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(known: set[int], timeout_s: float) -> tuple[float, int]:
    """(CPU seconds, processes) of the command's descendants that outlived it and were adopted here.

    The local engine's workers are forked by multiprocessing's fork server, which reaps them; the
    command exits without waiting for the fork server, so without adoption the CPU of the fork server
    and of every worker never reaches the command's rusage. A process adopted here is waited for (at
    most `timeout_s` in all), and its rusage carries the workers it reaped. ``known``: children of
    this process that are not the command's (left alone).
    """
    cpu, reaped, deadline = 0.0, 0, time.monotonic() + timeout_s
    while True:
        orphans = set(parent_map().get(os.getpid(), [])) - known
        if not orphans or time.monotonic() > deadline:
            return cpu, reaped
        for pid in orphans:
            try:
                done, _, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                known.add(pid)  # not a child any more (reaped elsewhere)
                continue
            if done:
                cpu += usage.ru_utime + usage.ru_stime
                reaped += 1
        time.sleep(0.005)


def run_measured(
    argv: list[str], log_path: Path, cwd: Path = REPO, env: dict[str, str] | None = None, shown: str | None = None
) -> Measured:
    """Run a command to completion; fail loudly (with its log) if it fails.

    CPU is the whole process tree's: the command's rusage (itself and the children it reaped) plus
    its descendants that outlived it, adopted and reaped here (see _reap_orphans). ``env``: the
    command's environment (default: this process's); ``shown``: the command as reported."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    known = set(parent_map().get(os.getpid(), []))
    adopting = _set_subreaper(True)
    busy_before, own_before = machine_busy_s(), time.process_time()  # own: the sampler thread
    try:
        with open(log_path, "w") as log:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
            with TreeMemory(proc.pid) as memory:
                # rusage covers the child and its reaped workers. Its ru_maxrss is not used: Linux carries
                # the parent's peak across fork/exec into it, so it reports this script's own size.
                _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        orphans_cpu, orphans = _reap_orphans(known | {proc.pid}, 30.0) if adopting else (0.0, 0)
    finally:
        if adopting:
            _set_subreaper(False)
    cpu = usage.ru_utime + usage.ru_stime + orphans_cpu
    own = time.process_time() - own_before
    other = machine_busy_s() - busy_before - own - cpu
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(argv)}\n{log_path.read_text()[-3000:]}")
    return Measured(
        command=shown or display_command(argv),
        wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        peak_tree_rss_mib=round(memory.peak_sum_kib / 1024, 1),
        peak_single_rss_mib=round(max(memory.hwm_kib.values(), default=0) / 1024, 1),
        sum_of_process_peaks_mib=round(sum(memory.hwm_kib.values()) / 1024, 1),
        peak_processes=memory.peak_processes,
        samples=memory.samples,
        sampler_cpu_s=round(own, 2),
        load_average_before=round(load, 2),
        other_cpu_s=round(max(other, 0.0), 2),
        log=str(log_path),
        adopted_processes=orphans,
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
# The code the commands run: the working tree ("now"), and a baseline revision in a git worktree
# --------------------------------------------------------------------------------------------------

PACKAGES = ("curation", "metadata", "studio_common")  # what `python -m curation` imports from a tree
PER_PAIR_PART = {1: "annotated", 2: "index"}  # where a run directory of each format keeps its per-pair part


@dataclass(frozen=True)
class Code:
    """One version of the engine: the commands run with `cwd` and PYTHONPATH at its tree, so that
    `python -m curation` imports its packages (checked once, and by every run directory's layout)."""

    key: str  # "now" or "before"
    label: str  # as the tables name it
    root: Path
    commit: str
    format_version: int  # the run directory format it writes (FORMAT_VERSION of its curation/rundir.py)
    changed: tuple[str, ...] = ()  # files of its packages that differ from the commit (the working tree only)

    @property
    def env(self) -> dict[str, str]:
        inherited = os.environ.get("PYTHONPATH")
        # Bytecode is cached, as on a user's machine: a sandbox that sets PYTHONDONTWRITEBYTECODE would
        # have every command compile the package again (0.2-0.3 s: a fifth of a new t).
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**environment, "PYTHONPATH": str(self.root) + (os.pathsep + inherited if inherited else "")}

    def shown(self, argv: list[str]) -> str:
        """The command as it ran: from the tree's root, with PYTHONPATH at it."""
        return f"cd {shlex.quote(str(self.root))} && PYTHONPATH={shlex.quote(str(self.root))} {display_command(argv)}"

    @property
    def per_pair_part(self) -> str:
        return PER_PAIR_PART.get(self.format_version, "index")


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def format_version_of(root: Path) -> int:
    """FORMAT_VERSION in the tree's curation/rundir.py (1 where it has none: format 1 never read it)."""
    found = re.search(r"^FORMAT_VERSION = (\d+)", (root / "curation" / "rundir.py").read_text(), re.MULTILINE)
    return int(found.group(1)) if found else 1


def working_tree() -> Code:
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *PACKAGES).splitlines()
    return Code("now", "now", REPO, git("rev-parse", "HEAD"), format_version_of(REPO), tuple(changed))


def baseline(rev: str, workdir: Path) -> Code:
    """REV checked out (detached) in a git worktree inside the workdir: made once, reused after."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = workdir / f"baseline-{commit[:12]}"
    if (tree / ".git").exists():
        if git("rev-parse", "HEAD", cwd=tree) != commit:
            git("checkout", "--quiet", "--detach", commit, cwd=tree)
    else:
        print(f"git worktree add --detach {tree} {commit[:12]}", flush=True)
        # --force: a worktree registered at this path whose folder was removed since is made again
        git("worktree", "add", "--force", "--detach", str(tree), commit)
    return Code("before", f"before ({rev})", tree, commit, format_version_of(tree))


def check_imports(code: Code) -> dict[str, str]:
    """Where `python -m curation` from the code's tree takes its packages; each must be inside the tree."""
    probe = "import json, " + ", ".join(PACKAGES) + "; print(json.dumps({m.__name__: m.__file__ for m in ["
    probe += ", ".join(PACKAGES) + "]}))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=code.root, env=code.env, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    for name, path in found.items():
        if code.root.resolve() not in Path(path).resolve().parents:
            raise SystemExit(f"{code.label}: `{name}` is imported from {path}, not from {code.root}")
    return found


def check_layout(run_dir: Path, code: Code) -> str:
    """The run directory shows which code wrote it: format 1 has annotated/, format 2 index/ (and
    run.json's format_version). Returns the per-pair part's name."""
    expected = code.per_pair_part
    others = [p for p in PER_PAIR_PART.values() if p != expected and (run_dir / p).exists()]
    version = read_run_json(run_dir).get("format_version", 1)
    if not (run_dir / expected).is_dir() or others or version != code.format_version:
        raise SystemExit(
            f"{run_dir} was not written by {code.label}'s code (format {code.format_version}, {expected}/): "
            f"it has {sorted(p.name for p in run_dir.iterdir())}, format_version {version}"
        )
    return expected


# --------------------------------------------------------------------------------------------------
# (b)-(e) The commands
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


def balance_command(run_dir: Path, t: float) -> list[str]:
    return [sys.executable, "-m", "curation", "balance", str(run_dir), "--t", f"{t:g}", "--workers", "2", "--quiet"]


def export_command(run_dir: Path, t: float, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "curation",
        "export",
        str(run_dir),
        "--t",
        f"{t:g}",
        "--columns",
        "img2dataset",
        "--out",
        str(out),
        "--quiet",
    ]


def measured_run(argv: list[str], run_dir: Path, log: Path, quiet_wait: float, code: Code | None = None) -> dict:
    wait_for_quiet(quiet_wait)
    if code is None:
        measured = run_measured(argv, log)
    else:
        measured = run_measured(argv, log, cwd=code.root, env=code.env, shown=code.shown(argv))
    record = read_run_json(run_dir)
    return {"command": asdict(measured), "timings": record["timings"], "rows": record["rows"]}


def fastest(runs: list[dict]) -> dict:
    """The fastest of a case's runs, with every run's wall time."""
    return min(runs, key=lambda r: r["command"]["wall_s"]) | {"all_wall_s": [r["command"]["wall_s"] for r in runs]}


def bench_commands(
    pool: Path, rows: int, workdir: Path, logs: Path, args: argparse.Namespace, codes: list[Code]
) -> dict[str, dict]:
    """match on 1 and 2 workers (and the Aho-Corasick matcher on 1, current code only), run on 1 and 2,
    for every code. Each case runs --repeat times, the cases and the codes interleaved (one code's run
    right after the other's) so that a disturbance of the machine hits them alike; the fastest of each
    is reported (all wall times are kept in the JSON). Only the run on 2 workers is kept on disk."""
    cases = [("match_tokens_1", "match", 1, "tokens"), ("match_tokens_2", "match", 2, "tokens")]
    if rows <= args.aho_corasick_max_rows:
        cases.append(("match_aho_corasick_1", "match", 1, "aho-corasick"))
    cases += [("run_tokens_1", "run", 1, "tokens"), ("run_tokens_2", "run", 2, "tokens")]
    tries: dict[str, dict[str, list[dict]]] = {code.key: {} for code in codes}
    for attempt in range(args.repeat):
        for name, verb, workers, matcher in cases:
            for code in codes:
                if matcher == "aho-corasick" and (attempt or code.key != "now"):
                    continue  # the slow reference matcher runs once, on the current code
                run_dir = fresh(workdir / "runs" / f"{code.key}-{name}-{rows}", workdir)
                print(f"[{rows:,}] {code.label}: {name} ({attempt + 1}/{args.repeat})", flush=True)
                t = args.t if verb == "run" else None
                result = measured_run(
                    command(verb, pool, run_dir, workers, matcher, t, args.seed),
                    run_dir,
                    logs / f"{code.key}-{name}-{rows}-{attempt}.log",
                    args.quiet_wait,
                    code,
                )
                result["per_pair_part"] = check_layout(run_dir, code)
                tries[code.key].setdefault(name, []).append(result)
                if name != "run_tokens_2":
                    shutil.rmtree(run_dir, ignore_errors=True)
    return {key: {name: fastest(runs) for name, runs in by_name.items()} for key, by_name in tries.items()}


def bench_new_t(rows: int, workdir: Path, logs: Path, args: argparse.Namespace, codes: list[Code]) -> dict[str, dict]:
    """(d) `balance --t NEW_T` on each code's finished run (2 workers), and (e) `export --t NEW_T
    --columns img2dataset` from it, --repeat times, interleaved, the fastest counting.

    Every balance starts where `run` left the run directory: from the second try on, an unmeasured
    `balance --t T` first puts the run's own t back (format 1 would otherwise find its curated rows
    at the new t written already, and only read the entry lists)."""
    balances: dict[str, list[dict]] = {code.key: [] for code in codes}
    exports: dict[str, list[dict]] = {code.key: [] for code in codes}
    for attempt in range(args.repeat):
        for code in codes:
            run_dir = workdir / "runs" / f"{code.key}-run_tokens_2-{rows}"
            if attempt:
                subprocess.run(
                    balance_command(run_dir, args.t), cwd=code.root, env=code.env, check=True, stdout=subprocess.DEVNULL
                )
            print(f"[{rows:,}] {code.label}: balance at t={args.new_t:g} ({attempt + 1}/{args.repeat})", flush=True)
            balances[code.key].append(
                measured_run(
                    balance_command(run_dir, args.new_t),
                    run_dir,
                    logs / f"{code.key}-balance-{rows}-{attempt}.log",
                    args.quiet_wait,
                    code,
                )
            )
        for code in codes:
            run_dir = workdir / "runs" / f"{code.key}-run_tokens_2-{rows}"
            out = workdir / "exports" / f"{code.key}-{rows}-t{args.new_t:g}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            for path in (out, out.with_name(out.name + ".provenance.json")):
                path.unlink(missing_ok=True)
            print(f"[{rows:,}] {code.label}: export at t={args.new_t:g} ({attempt + 1}/{args.repeat})", flush=True)
            wait_for_quiet(args.quiet_wait)
            argv = export_command(run_dir, args.new_t, out)
            measured = run_measured(
                argv, logs / f"{code.key}-export-{rows}-{attempt}.log", code.root, code.env, code.shown(argv)
            )
            exported = pq.ParquetFile(out).metadata.num_rows
            exports[code.key].append(
                {
                    "command": asdict(measured),
                    "out": str(out),
                    "rows": exported,
                    "rows_per_s": round(exported / measured.wall_s),
                    "rows_per_cpu_s": round(exported / measured.cpu_s) if measured.cpu_s else None,
                }
            )
    return {
        code.key: {"balance_2": fastest(balances[code.key]), "export_img2dataset": fastest(exports[code.key])}
        for code in codes
    }


# --------------------------------------------------------------------------------------------------
# (f) What the run directory holds, and whether both codes curated the same pairs
# --------------------------------------------------------------------------------------------------

# Top-level parts of a run directory, in the order the report lists them; the curated rows (format 2's
# manifests/, format 1's curated/) are counted aside. Anything else (plan.json, run.json, the counts,
# format 1's balanced_counts.parquet, the lock) is "the rest".
PARTS = ("index", "thresholds", "preview", "shards", "matcher", "the rest")
ASIDE = ("manifests", "curated", ".curated-staging", ".curated-retired")


def tree_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (sizes, not blocks: what the pool is measured in)."""
    if not path.is_dir():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(folder, name)).st_size for folder, _, names in os.walk(path) for name in names)


def pool_bytes(pool: Path) -> int:
    return sum(p.stat().st_size for p in (pool / "pool").glob("*.parquet"))


def run_dir_bytes(run_dir: Path, pairs: int, pool: int) -> dict:
    """Bytes of a run directory by top-level part, per pair and against the pool's bytes."""
    by_name = {entry.name: tree_bytes(entry) for entry in sorted(run_dir.iterdir())}
    parts = dict.fromkeys(PARTS, 0)
    aside = 0
    for name, size in by_name.items():
        if name in ASIDE:
            aside += size
        elif name in ("index", "annotated"):
            parts["index"] += size
        elif name in parts:
            parts[name] += size
        else:
            parts["the rest"] += size
    total = sum(parts.values())
    return {
        "by_name": by_name,
        "parts": parts,
        "parts_bytes_per_pair": {name: round(size / pairs, 2) for name, size in parts.items()},
        "total": total,
        "total_bytes_per_pair": round(total / pairs, 2),
        "total_vs_pool": round(total / pool, 3),
        "curated_aside": aside,
        "curated_aside_bytes_per_pair": round(aside / pairs, 2),
        "curated_aside_vs_pool": round(aside / pool, 3),
    }


def curated_pair_keys(run_dir: Path, t: float, seed: int) -> np.ndarray:
    """Sorted pair keys of the pairs kept at (t, seed): the curated manifest `run` ends with (format 2),
    or the curated/ parts (format 1)."""
    manifest = run_dir / "manifests" / run_manifest_name(t, seed)
    source = manifest if manifest.exists() else run_dir / "curated"
    return np.sort(pq.read_table(source, columns=["pair_key"]).column(0).to_numpy())


def same_exports(a: Path, b: Path) -> bool:
    """Two img2dataset manifests hold the same rows in the same order (one column at a time)."""
    if pq.ParquetFile(a).schema_arrow.names != pq.ParquetFile(b).schema_arrow.names:
        return False
    return all(
        pq.read_table(a, columns=[name]).column(0).equals(pq.read_table(b, columns=[name]).column(0))
        for name in pq.ParquetFile(a).schema_arrow.names
    )


def compare_codes(curated: dict[str, np.ndarray], commands: dict[str, dict]) -> dict:
    """Both codes curated the same pairs at the run's t (``curated``: each code's sorted pair keys, read
    before the new t: format 1's balance rewrites curated/), and exported the same rows at the new t."""
    exports = [Path(c["export_img2dataset"]["out"]) for c in commands.values()]
    return {
        "curated_pairs": {key: len(keys) for key, keys in curated.items()},
        "same_curated_pairs": all(np.array_equal(keys, curated["now"]) for keys in curated.values()),
        "same_export": len(exports) < 2 or same_exports(*exports),
    }


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


# Issue 22's targets. Per 10M pairs for `run`; the other sizes get them pro rata (marked so).
RUN_WALL_S_PER_10M, RUN_CPU_S_PER_10M, RUN_PEAK_GB = 15.0, 36.0, 1.5
MATCH_VS_REFERENCE, MATCH_SPEEDUP_2W = 5.0, 1.8
RUN_DIR_VS_POOL, BALANCE_S, EXPORT_ROWS_PER_CORE_S = 1.0, 1.0, 1_000_000


def target_rows(size: dict) -> list[tuple[str, str, dict[str, str]]]:
    """(figure, target, {code: cell}) rows of the targets table for one size."""
    rows, k = size["rows"], size["matchers"]
    pro_rata = "" if rows == 10_000_000 else " (pro rata; the target is at 10M)"
    pool_b = size["pool_bytes"]
    figures: dict[str, dict[str, str]] = {}

    def put(figure: str, key: str, value: str) -> None:
        figures.setdefault(figure, {})[key] = value

    for key, c in size["commands"].items():
        m1, m2 = c["match_tokens_1"]["command"]["wall_s"], c["match_tokens_2"]["command"]["wall_s"]
        run2 = c["run_tokens_2"]["command"]
        b = size["run_dir_bytes"][key]
        balance, export = c["balance_2"], c["export_img2dataset"]
        put("run directory / pool bytes, manifests aside", key, f"{b['total_vs_pool']:.2f}x")
        put(
            "run directory, bytes per pair (manifests aside)",
            key,
            f"{b['total_bytes_per_pair']:.1f} (pool {pool_b / rows:.1f})",
        )
        put(
            "curated rows at t aside (curated/ before, the manifest now), bytes per pair",
            key,
            f"{b['curated_aside_bytes_per_pair']:.1f} ({b['curated_aside_vs_pool']:.2f}x the pool)",
        )
        put("`match` 1 worker, pairs/s / reference loop texts/s", key, f"{rows / m1 / k['reference_texts_per_s']:.2f}x")
        put("`match` 2 workers / 1 worker", key, f"{m1 / m2:.2f}x")
        put(f"`run --t {size['t']:g}` 2 workers, wall s", key, f"{run2['wall_s']:.1f}")
        put(f"`run --t {size['t']:g}` 2 workers, CPU s (process tree)", key, f"{run2['cpu_s']:.1f}")
        put(
            f"`run --t {size['t']:g}` 2 workers, peak RSS GB",
            key,
            f"{run2['peak_tree_rss_mib'] * 2**20 / 1e9:.2f}",
        )
        put(
            f"`balance --t {size['balance_t']:g}` (a new t), wall s (in the command)",
            key,
            f"{balance['command']['wall_s']:.2f} ({balance['timings'].get('balance_s', float('nan')):.2f})",
        )
        put(
            f"`export --t {size['balance_t']:g} --columns img2dataset`, rows/s per core",
            key,
            f"{export['rows_per_cpu_s']:,} ({export['rows_per_s']:,} per wall s)",
        )
    targets = {
        "run directory / pool bytes, manifests aside": f"≤ {RUN_DIR_VS_POOL:.1f}x",
        "run directory, bytes per pair (manifests aside)": "-",
        "curated rows at t aside (curated/ before, the manifest now), bytes per pair": "-",
        "`match` 1 worker, pairs/s / reference loop texts/s": f"≥ {MATCH_VS_REFERENCE:g}x",
        "`match` 2 workers / 1 worker": f"≥ {MATCH_SPEEDUP_2W:g}x (on 4M pairs)",
        f"`run --t {size['t']:g}` 2 workers, wall s": f"≤ {RUN_WALL_S_PER_10M * rows / 1e7:.1f}{pro_rata}",
        f"`run --t {size['t']:g}` 2 workers, CPU s (process tree)": f"≤ {RUN_CPU_S_PER_10M * rows / 1e7:.1f}{pro_rata}",
        f"`run --t {size['t']:g}` 2 workers, peak RSS GB": f"≤ {RUN_PEAK_GB:g}",
        f"`balance --t {size['balance_t']:g}` (a new t), wall s (in the command)": f"≤ {BALANCE_S:g} at any size",
        f"`export --t {size['balance_t']:g} --columns img2dataset`, rows/s per core": f"≥ {EXPORT_ROWS_PER_CORE_S:,}",
    }
    return [(figure, targets[figure], cells) for figure, cells in figures.items()]


def markdown(report: dict) -> str:
    """engine.md: the targets before and now, the matchers, the commands, the run directory's bytes,
    the realism check, then the exact commands."""
    env = report["environment"]
    codes = report["codes"]
    keys = sorted(codes, key=lambda key: key != "before")  # "target / before / now"
    labels = {key: codes[key]["label"] for key in keys}
    lines = [
        "# Engine benchmark",
        "",
        f"{env['date']}, commit {env['commit']}, {env['cpus']} cores, {env['memory_gib']} GiB, "
        f"Python {env['python']}, numpy {env['numpy']}, pyarrow {env['pyarrow']}, "
        f"pyahocorasick {env['pyahocorasick']}.",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    for key in keys:
        code = codes[key]
        changed = f"; files changed against it: {', '.join(code['changed'])}" if code["changed"] else ""
        lines.append(
            f"- **{code['label']}**: commit {code['commit'][:12]} in `{code['root']}` (run directory format "
            f"{code['format_version']}: per pair `{code['per_pair_part']}/`){changed}"
        )
    lines += [
        "",
        "Both run the same commands on the same machine in one run, interleaved (`cd TREE && PYTHONPATH=TREE "
        "python -m curation ...`; that each imports its own tree is checked, and every run directory is checked "
        "to have its format's layout). "
        f"Pools from `bench/realistic_pool.py`: captions grown from real web alt-texts, a {report['entries']:,}-entry "
        "metadata of WordNet names, common English words with capitalised variants, real bigrams and the numbers "
        "0-99 (the realism check is at the end).",
        "",
        "## Issue 22's targets",
        "",
        "| pairs | figure | target | " + " | ".join(labels[k] for k in keys) + " |",
        "|---:|---|---|" + "---:|" * len(keys),
    ]
    for size in report["sizes"]:
        for figure, target, cells in target_rows(size):
            lines.append(
                f"| {size['rows']:,} | {figure} | {target} | " + " | ".join(cells.get(k, "-") for k in keys) + " |"
            )
    lines += [
        "",
        "`match` against the reference: pairs per second of the whole `match` command on 1 worker (start-up, "
        "reading the pool, writing the run directory included) over the texts per second of MetaCLIP's per-text "
        "loop on one core with the texts in memory (below). `run` includes its curated manifest where the code "
        "writes one (format 2: `manifests/`; format 1 wrote `curated/` instead). CPU s: the whole process tree "
        "(the command's rusage, and its fork server and workers, which outlive it: adopted and reaped by the "
        "benchmark). `balance`: the whole command, and in brackets the balance itself (`balance_s` of run.json). "
        "Export per core: rows over the CPU seconds of the command.",
        "",
    ]
    for size in report["sizes"]:
        same = size.get("same")
        if same:
            lines.append(
                f"- {size['rows']:,} pairs: the same curated pairs at t={report['t']:g} "
                f"({', '.join(f'{labels[k]} {n:,}' for k, n in same['curated_pairs'].items())}): "
                f"{'yes' if same['same_curated_pairs'] else 'NO'}; the same rows exported at "
                f"t={report['balance_t']:g}: {'yes' if same['same_export'] else 'NO'}"
            )
    lines += [
        "",
        "## The matchers, one core, texts in memory",
        "",
        "Reference: MetaCLIP's per-text loop (spacing, `automaton.iter`, a set). Aho-Corasick and tokens: the "
        "engine's two matchers on Arrow batches (the current code's). All three on the same texts; results "
        "compared exactly.",
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
        "part of the run directory, the matcher tables' build included.",
        "",
        "| pairs | code | `match` tokens, 1 worker | `match` tokens, 2 workers | speed-up (efficiency) "
        "| match stage (whole command) / reference, 1 worker | `match` Aho-Corasick, 1 worker | `run`, 1 worker "
        "| `run`, 2 workers | speed-up (efficiency) | CPU s `run` 2 workers | peak RSS `run` 2 workers GiB "
        "| `balance` new t, 2 workers | / run's match stage | `export` new t |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        k, rows = size["matchers"], size["rows"]
        for key in keys:
            c = size["commands"][key]
            m1, m2 = c["match_tokens_1"]["command"]["wall_s"], c["match_tokens_2"]["command"]["wall_s"]
            r1, r2 = c["run_tokens_1"]["command"]["wall_s"], c["run_tokens_2"]["command"]["wall_s"]
            aho = c.get("match_aho_corasick_1")
            aho_cell = f"{aho['command']['wall_s']:.1f} s" if aho else "not run"
            stage_ratio = (rows / c["match_tokens_1"]["timings"]["match_s"]) / k["reference_texts_per_s"]
            wall_ratio = (rows / m1) / k["reference_texts_per_s"]
            balance = c["balance_2"]["command"]["wall_s"]
            export = c["export_img2dataset"]
            run_match = c["run_tokens_2"]["timings"]["match_s"]
            lines.append(
                f"| {rows:,} | {labels[key]} | {m1:.1f} s | {m2:.1f} s | {m1 / m2:.2f}x ({m1 / m2 / 2:.0%}) "
                f"| {stage_ratio:.2f}x ({wall_ratio:.2f}x) "
                f"| {aho_cell} | {r1:.1f} s | {r2:.1f} s "
                f"| {r1 / r2:.2f}x ({r1 / r2 / 2:.0%}) | {c['run_tokens_2']['command']['cpu_s']:.1f} "
                f"| {peak_gib(c['run_tokens_2']['command'])} "
                f"| {balance:.2f} s | {balance / run_match:.0%} | {export['command']['wall_s']:.1f} s |"
            )
    lines += ["", "Kept at the run's t and at the new t (realised, expected):", ""]
    for size in report["sizes"]:
        for key in keys:
            c = size["commands"][key]
            run_rows, balance_rows = c["run_tokens_2"]["rows"], c["balance_2"]["rows"]
            lines.append(
                f"- {size['rows']:,} pairs, {labels[key]}: t={report['t']:g} keeps {run_rows['kept']:,} "
                f"({run_rows['expected_kept']:,.0f} expected); t={report['balance_t']:g} keeps "
                f"{balance_rows['kept']:,} ({balance_rows['expected_kept']:,.0f} expected; "
                f"{c['export_img2dataset']['rows']:,} exported); "
                f"{run_rows['matches'] / run_rows['in']:.2f} matches per pair, "
                f"{run_rows['matched'] / run_rows['in']:.1%} matched"
            )
    lines += [
        "",
        "## What the run directory holds",
        "",
        f"The run directory of `run --t {report['t']:g}` on 2 workers, before any new t, by top-level part: MB "
        "and, in brackets, bytes per pair. The per-pair part is `index/` in format 2 (pair key and entry ids) and "
        "`annotated/` in format 1 (every pool column again, with the entry ids and pair key). The rest: plan.json, "
        "run.json, entry_counts.parquet (format 1 also balanced_counts.parquet). The curated rows at t are "
        "listed aside: format 2's manifest in `manifests/`, format 1's `curated/`.",
        "",
        "| pairs | code | pool | " + " | ".join(PARTS) + " | total, manifests aside | / pool | aside: curated rows |",
        "|---:|---|" + "---:|" * (len(PARTS) + 4),
    ]
    for size in report["sizes"]:
        rows = size["rows"]

        def cell(n: int, rows: int = rows) -> str:
            return f"{n / 1e6:,.1f} ({n / rows:.1f})"

        for key in keys:
            b = size["run_dir_bytes"][key]
            lines.append(
                f"| {rows:,} | {labels[key]} | {cell(size['pool_bytes'])} | "
                + " | ".join(cell(b["parts"][p]) for p in PARTS)
                + f" | {cell(b['total'])} | **{b['total_vs_pool']:.2f}x** | {cell(b['curated_aside'])} "
                f"({b['curated_aside_vs_pool']:.2f}x) |"
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
        "## Exact commands",
        "",
        "CPU s is the command's own CPU time (all its processes); other CPU s is what the rest of the machine "
        "used meanwhile (well above 0: the figures were disturbed). Before each measurement the benchmark "
        "waits (up to --quiet-wait seconds) for the machine to be idle. Before the second and later `balance`, "
        f"an unmeasured `balance --t {report['t']:g}` puts the run's own t back.",
        "",
    ]
    for size in report["sizes"]:
        k = size["matchers"]
        lines.append(
            f"- {size['rows']:,} matchers in memory (other CPU s {k['other_cpu_s']}): see `bench_matchers` "
            "in bench/bench_engine.py"
        )
        for key in keys:
            for name, c in size["commands"][key].items():
                m = c["command"]
                lines.append(
                    f"- {size['rows']:,} {labels[key]} {name} ({m['wall_s']:.2f} s wall, {m['cpu_s']:.1f} CPU s, peak "
                    f"{m['peak_tree_rss_mib']:,.0f} MiB, other CPU s {m['other_cpu_s']}): `{m['command']}`"
                )
    return "\n".join(lines) + "\n"


def write_results(name: str, report: dict, text: str, directory: Path | None = None) -> None:
    """A benchmark's figures as NAME.json and its Markdown as NAME.md in bench/results (or `directory`)."""
    directory = directory or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (directory / f"{name}.md").write_text(text)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4_000_000, 10_000_000])
    p.add_argument("--entries", type=int, default=500_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run every command with the code of this git revision (e.g. 5494bc7), checked out in a "
        "worktree WORKDIR/baseline-COMMIT (made once, reused), interleaved with the current code",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="where engine.json and engine.md go (default: bench/results, or $BENCH_RESULTS_DIR; "
        "give smoke runs another folder)",
    )
    p.add_argument(
        "--real-data",
        type=Path,
        help="the real alt-texts realistic_pool.py grows captions from (default: its own default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated pools and of the run")
    p.add_argument("--t", type=float, default=20_000)
    p.add_argument("--new-t", type=float, default=5_000, help="t of the re-balance and of the export")
    p.add_argument(
        "--matcher-rows",
        type=int,
        default=500_000,
        help="texts the in-memory matcher comparison times (default: %(default)s)",
    )
    p.add_argument("--batch-rows", type=int, default=50_000, help="batch of the in-memory matchers (the CLI's default)")
    p.add_argument(
        "--repeat", type=int, default=2, help="runs of each match, run, balance and export command; the fastest counts"
    )
    p.add_argument(
        "--aho-corasick-max-rows",
        type=int,
        default=1_000_000,
        help="largest pool on which `match --matcher aho-corasick` is timed too (it is slow; current code only)",
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
    started = time.perf_counter()
    logs = args.workdir / "logs"
    args.workdir.mkdir(parents=True, exist_ok=True)
    codes = [working_tree()] + ([baseline(args.baseline, args.workdir)] if args.baseline else [])
    report = {
        "command": "python bench/bench_engine.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "environment": environment(),
        "codes": {},
        "entries": args.entries,
        "t": args.t,
        "balance_t": args.new_t,
        "sizes": [],
    }
    for code in codes:
        report["codes"][code.key] = asdict(code) | {"per_pair_part": code.per_pair_part, "imports": check_imports(code)}
    for rows in args.sizes:
        pool, realism = ensure_pool(args.workdir, rows, args.entries, args.seed, args.real_data)
        print(f"[{rows:,}] matchers in memory", flush=True)
        matchers_report = bench_matchers(pool, min(rows, args.matcher_rows), args.batch_rows, args.quiet_wait)
        commands = bench_commands(pool, rows, args.workdir, logs, args, codes)
        pool_b = pool_bytes(pool)
        run_dirs = {
            code.key: run_dir_bytes(args.workdir / "runs" / f"{code.key}-run_tokens_2-{rows}", rows, pool_b)
            for code in codes
        }
        curated = {
            code.key: curated_pair_keys(args.workdir / "runs" / f"{code.key}-run_tokens_2-{rows}", args.t, args.seed)
            for code in codes
        }
        for key, measured in bench_new_t(rows, args.workdir, logs, args, codes).items():
            commands[key].update(measured)
        size = {
            "rows": rows,
            "t": args.t,
            "balance_t": args.new_t,
            "pool": str(pool),
            "pool_bytes": pool_b,
            "realism": realism_summary(realism),
            "matchers": matchers_report,
            "commands": commands,
            "run_dir_bytes": run_dirs,
        }
        size["same"] = compare_codes(curated, commands)
        report["sizes"].append(size)
        report["elapsed_s"] = round(time.perf_counter() - started, 1)
        write_results("engine", report, markdown(report), args.results_dir)
        print(markdown(report), flush=True)
        if not (size["same"]["same_curated_pairs"] and size["same"]["same_export"]):
            raise SystemExit(f"the codes curated or exported different pairs at {rows:,} pairs (see the report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
