"""Benchmark the dashboard: a new t on the Balance page at 1M and 10M pairs, the preview build, cold start.

  a) What one rerun of the Balance page computes for a new t, on the run directory of each size:
     `BalancePreview.size_at`, `expected_size_at` and `head_tail` (the metrics), plus what the rest of
     the page draws (the kept counts of the charted entries and the three plotly figures), each timed alone; and the whole
     page rerun through streamlit.testing's AppTest (set `t`, run). Medians over t values spread on a
     log scale between 1 and the largest entry count, and the worst t. The same reruns are also timed
     in headless Chromium (Enter pressed until "Kept pairs" shows the exact size), beside the floor
     of a two-widget Streamlit app measured the same way.
  b) The one-off cost of the preview: the keep thresholds and entry lists read through
     curation/query.py, then `BalancePreview.build`; time and RSS before / after (and peak).
  c) Cold start on the bundled sample: from starting `streamlit run dashboard/app.py` until the Overview
     shows its metrics in headless Chromium (Debian's /usr/bin/chromium, driven by playwright), with a
     fresh CURATION_RUNS_DIR (the sample is curated on first start) and with the sample already there.

(a) and (b) run in a fresh child process per size, so memory figures are not mixed between sizes.
Run directories are `WORKDIR/runs/run-N` (as bench/bench_engine.py leaves them); missing ones are made
with `python -m curation run --t 20000 --seed 0` on pools from bench/generate_pool.py. Nothing large is
written into the repository: dashboard state (recent runs, jobs, exports, sample runs) goes to
WORKDIR/dashboard.

Usage (from the repository root, on a quiet machine):
    python bench/bench_dashboard.py --sizes 1000000 10000000 --workdir /tmp/bench
Writes bench/results/dashboard.json and bench/results/dashboard.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
APP = REPO / "dashboard" / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TARGET_NEW_T_MS = 100.0  # at 10M pairs
TARGET_COLD_S = 5.0  # on the sample
ENTRIES = 500_000
RUN_T = 20_000
SEED = 0
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from bench_engine import machine_busy_s, wait_for_quiet  # noqa: E402
from dashboard.local_server import serve  # noqa: E402


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def status_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in KiB."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(line.split()[1])
    return found


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


class OtherLoad:
    """CPU seconds the rest of the machine used during a block (0 on a quiet machine)."""

    def __enter__(self) -> OtherLoad:
        self._busy, self._own = machine_busy_s(), time.process_time()
        self._children = os.times().children_user + os.times().children_system
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        times = os.times()
        own = time.process_time() - self._own + times.children_user + times.children_system - self._children
        self.wall_s = time.perf_counter() - self._start
        self.other_cpu_s = round(max(machine_busy_s() - self._busy - own, 0.0), 2)


def timed_ms(function, *args, repeats: int = 5) -> float:
    """Median wall time of `repeats` calls, in milliseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def log_ts(top: float, n: int) -> list[float]:
    """n values of t from 1 to `top`, evenly spaced on a log scale, with 4 significant digits."""
    import numpy as np

    return sorted({float(f"{t:.4g}") for t in np.geomspace(1.0, max(top, 10.0), n)})


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2)}


def child(mode: str, run_dir: Path, options: dict, env: dict | None = None) -> dict:
    """Run this script in a fresh process for one measurement; its last stdout line is JSON."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--run", str(run_dir),
            "--child-options", json.dumps(options)]
    result = subprocess.run(argv, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"child {mode} on {run_dir} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------------


def run_is_complete(run_dir: Path, seed: int) -> bool:
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return record.get("status") == "complete" and (run_dir / "thresholds" / f"seed-{seed}").is_dir()


def ensure_run(workdir: Path, rows: int) -> tuple[Path, str | None]:
    """WORKDIR/runs/run-N, made the way bench_engine.py makes it when it is missing.
    Returns (run directory, the command that made it here or None when it was already there)."""
    run_dir = workdir / "runs" / f"run-{rows}"
    if run_is_complete(run_dir, SEED):
        return run_dir, None
    pool = workdir / f"rows{rows}_entries{ENTRIES}_seed{SEED}"
    if not (pool / "generation.json").exists():
        argv = [sys.executable, str(BENCH_DIR / "generate_pool.py"), "--rows", str(rows), "--entries", str(ENTRIES),
                "--seed", str(SEED), "--out", str(pool), "--overwrite"]
        print(f"generating {pool}", flush=True)
        subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an incomplete run of this benchmark's own work directory
    argv = [sys.executable, "-m", "curation", "run", "--pool", str(pool / "pool"), "--metadata",
            str(pool / "metadata.json"), "--t", str(RUN_T), "--seed", str(SEED), "--out", str(run_dir), "--quiet"]
    print(f"curating {run_dir}", flush=True)
    subprocess.run(argv, check=True, cwd=REPO)
    return run_dir, shlex.join(["python" if a == sys.executable else a for a in argv])


# --------------------------------------------------------------------------------------------------
# (a) functions per t and (b) the build: one child process per size
# --------------------------------------------------------------------------------------------------


def child_preview(run_dir: Path, options: dict) -> dict:
    import numpy as np
    import pyarrow  # noqa: F401  (imported before the first RSS reading, like the dashboard has it)

    from curation.preview import BalancePreview
    from curation.query import RunQuery, connect
    from dashboard import charts

    seed = options["seed"]
    gc.collect()
    before = status_kib()
    steps = {}
    start = time.perf_counter()
    connection = connect(run_dir)
    query = RunQuery(connection.cursor(), run_dir)
    steps["connect_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    counts = query.entry_counts().column("count").to_numpy()
    steps["entry_counts_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    thresholds = query.thresholds(seed)
    steps["thresholds_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    entry_lists = query.entry_lists()
    steps["entry_lists_s"] = time.perf_counter() - mark
    loaded = status_kib()
    mark = time.perf_counter()
    preview = BalancePreview.build(entry_lists, thresholds, counts)
    steps["build_s"] = time.perf_counter() - mark
    total_s = time.perf_counter() - start
    built = status_kib()
    del entry_lists, thresholds
    gc.collect()
    retained = status_kib()
    arrays_bytes = sum(getattr(preview, name).nbytes for name in (
        "counts", "sorted_thresholds", "min_counts", "negated_min_counts", "offsets", "flat_entries",
        "flat_inverse_counts", "flat_rows", "pair_thresholds"))

    rebuild = []
    for _ in range(options["build_repeats"]):  # again, with the files in the page cache
        mark = time.perf_counter()
        query = RunQuery(connection.cursor(), run_dir)
        BalancePreview.build(query.entry_lists(), query.thresholds(seed), query.entry_counts().column("count").to_numpy())
        rebuild.append(time.perf_counter() - mark)
        gc.collect()

    entries = query.entry_counts().to_pandas()
    names = entries["entry"].to_numpy()
    top = charts.top_entries(preview.counts)
    ts = log_ts(float(counts.max()), options["n_ts"])
    repeats = options["repeats"]
    for function in (preview.size_at, preview.expected_size_at, preview.head_tail):
        function(ts[len(ts) // 2] * 1.01)  # warm-up, away from the measured values
    preview.kept_counts(top, ts[len(ts) // 2] * 1.01)  # builds the top entries' slots once
    per_t = []
    for t in ts:
        kept = preview.kept_counts(top, t)
        row = {
            "t": t,
            "size": preview.size_at(t),
            "expected": round(preview.expected_size_at(t), 1),
            "at_risk_pairs": int(np.searchsorted(preview.negated_min_counts, -t, side="left")),
            "size_at_ms": timed_ms(preview.size_at, t, repeats=repeats),
            "expected_size_at_ms": timed_ms(preview.expected_size_at, t, repeats=repeats),
            "head_tail_ms": timed_ms(preview.head_tail, t, repeats=repeats),
            "balanced_counts_ms": timed_ms(lambda: preview.kept_counts(top, t), repeats=repeats),
            "charts_ms": timed_ms(lambda: (charts.counts_by_rank(preview.counts, [t]),
                                           charts.cumulative_matches(preview.counts, [t]),
                                           charts.before_after(names[charts.top_entries(preview.counts)],
                                                               preview.counts[top], kept, t)),
                                  repeats=max(repeats // 2, 1)),
        }
        row["metrics_ms"] = row["size_at_ms"] + row["expected_size_at_ms"] + row["head_tail_ms"]
        row["page_compute_ms"] = row["metrics_ms"] + row["balanced_counts_ms"] + row["charts_ms"]
        per_t.append({k: round(v, 3) if isinstance(v, float) and k != "t" else v for k, v in per_t_row_order(row)})
    return {
        "pairs": preview.pairs,
        "matched_pairs": preview.matched_pairs,
        "flat_slots": int(len(preview.flat_entries)),
        "entries": int(len(counts)),
        "max_count": int(counts.max()),
        "build": {
            "first_s": round(total_s, 3),
            "steps_s": {k: round(v, 3) for k, v in steps.items()},
            "again_s": [round(s, 3) for s in rebuild],
            "rss_before_mib": mib(before["VmRSS"]),
            "rss_loaded_mib": mib(loaded["VmRSS"]),
            "rss_after_build_mib": mib(built["VmRSS"]),
            "rss_retained_mib": mib(retained["VmRSS"]),
            "peak_rss_mib": mib(built["VmHWM"]),
            "preview_arrays_mib": round(arrays_bytes / 2**20, 1),
        },
        "per_t": per_t,
    }


def per_t_row_order(row: dict):
    keys = ["t", "size", "expected", "at_risk_pairs", "size_at_ms", "expected_size_at_ms", "head_tail_ms",
            "metrics_ms", "balanced_counts_ms", "charts_ms", "page_compute_ms"]
    return [(k, row[k]) for k in keys]


# --------------------------------------------------------------------------------------------------
# (a) the whole Balance page rerun, through AppTest
# --------------------------------------------------------------------------------------------------


def child_apptest(run_dir: Path, options: dict) -> dict:
    """Open the run, go to Balance (which builds the preview), then set t and rerun, timing each run."""
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from curation import Run

    run = Run(run_dir)
    sorted_thresholds = run.sorted_thresholds(options["seed"])

    def exact(t: float) -> str:
        return f"{int(np.searchsorted(sorted_thresholds, t, side='left')):,}"

    def kept_metric(at: AppTest) -> str:
        return next(m.value for m in at.metric if m.label == "Kept pairs")

    def check(at: AppTest, where: str) -> None:
        if at.exception:
            raise SystemExit(f"{where}: {[e.message for e in at.exception]}")

    at = AppTest.from_file(str(APP), default_timeout=900)
    at.session_state["run_dir"] = str(run_dir)
    start = time.perf_counter()
    at.run()
    first_overview_s = time.perf_counter() - start
    check(at, "overview")
    start = time.perf_counter()
    at.switch_page("views/balance.py").run()
    first_balance_s = time.perf_counter() - start
    check(at, "balance")
    rss_after_first_balance = status_kib()

    ts = log_ts(float(run.counts.max()), options["n_ts"])
    rounds = options["rounds"]
    per_t = {t: [] for t in ts}
    mismatches = []
    for round_ in range(rounds):
        for t in ts:
            t_run = t * (1 + 1e-3 * round_)  # a value not seen before: the page's per-t caches miss
            widget = at.number_input(key="t").set_value(t_run)
            start = time.perf_counter()
            widget.run()
            per_t[t].append((time.perf_counter() - start) * 1000)
            check(at, f"t={t_run}")
            if kept_metric(at) != exact(t_run):
                mismatches.append({"t": t_run, "shown": kept_metric(at), "exact": exact(t_run)})
    seen = []  # the same t again: cached expected size and balanced counts, the page's floor
    for t in ts:
        widget = at.number_input(key="t").set_value(t)
        start = time.perf_counter()
        widget.run()
        seen.append((time.perf_counter() - start) * 1000)
    medians = {t: statistics.median(v) for t, v in per_t.items()}
    return {
        "first_overview_s": round(first_overview_s, 3),
        "first_balance_s": round(first_balance_s, 3),
        "rss_after_first_balance_mib": mib(rss_after_first_balance["VmRSS"]),
        "rounds": rounds,
        "per_t_ms": [{"t": t, "median_ms": round(medians[t], 1), "runs_ms": [round(x, 1) for x in per_t[t]]}
                     for t in ts],
        "new_t_ms": summary(list(medians.values())),
        "seen_t_ms": summary(seen),
        "kept_pairs_mismatches": mismatches,
    }


# --------------------------------------------------------------------------------------------------
# (c) cold start in headless Chromium
# --------------------------------------------------------------------------------------------------


@contextmanager
def streamlit_server(dirs: dict[str, Path]):
    """The dashboard on a free port with the given runs / exports / jobs directories.
    Yields (url, the perf_counter when it was started, seconds until /_stcore/health answered)."""
    env = {**os.environ, "CURATION_RUNS_DIR": str(dirs["runs"]), "CURATION_EXPORT_DIR": str(dirs["exports"]),
           "CURATION_JOBS_DIR": str(dirs["jobs"])}
    with serve(dirs["base"] / "streamlit.log", env) as served:
        yield served.url, served.started, served.health_s


def cold_start_once(browser, dirs: dict[str, Path]) -> dict:
    """Start the server, open the app, wait for the Overview's metrics; the server is stopped after."""
    from playwright.sync_api import expect

    page = browser.new_page()
    try:
        with streamlit_server(dirs) as (url, start, health_s):
            page.goto(url)
            values = page.get_by_test_id("stMetricValue")
            expect(values.first).to_have_text("30,000", timeout=180_000)  # Pool rows of the sample
            expect(values).to_have_count(8, timeout=60_000)
            expect(values.last).not_to_be_empty(timeout=60_000)
            metrics_s = time.perf_counter() - start
            expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning",
                                                                   timeout=60_000)
            done_s = time.perf_counter() - start
            errors = page.get_by_test_id("stException").count()
    finally:
        page.close()
    return {"health_s": round(health_s, 3), "metrics_s": round(metrics_s, 3), "script_done_s": round(done_s, 3),
            "exceptions_on_page": errors}


METRIC_SHOWS = """([label, want]) => {
  for (const metric of document.querySelectorAll('[data-testid="stMetric"]')) {
    const name = metric.querySelector('[data-testid="stMetricLabel"]');
    if (name && name.textContent.trim() === label) {
      const value = metric.querySelector('[data-testid="stMetricValue"]');
      return value !== null && value.textContent.trim() === want;
    }
  }
  return false;
}"""
SCRIPT_DONE = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'"""


def browser_new_t(run_dir: Path, rows: int, n_ts: int, rounds: int, workdir: Path) -> dict:
    """The same as the AppTest reruns, seen from headless Chromium: type t, press Enter, and time until
    "Kept pairs" shows the exact size (checked every animation frame), then until the run has ended."""
    import numpy as np
    from playwright.sync_api import expect, sync_playwright

    from curation import Run

    run = Run(run_dir)
    sorted_thresholds = run.sorted_thresholds(SEED)
    ts = log_ts(float(run.counts.max()), n_ts)
    base = Path(tempfile.mkdtemp(prefix="browser-", dir=workdir / "dashboard"))
    dirs = {"base": base, "runs": base / "runs", "exports": base / "exports", "jobs": base / "jobs"}
    (dirs["runs"]).mkdir()
    sample = workdir / "dashboard" / "cold" / "runs-0" / "sample"
    if sample.is_dir():  # the app opens on the sample first; skip curating it again when it exists
        shutil.copytree(sample, dirs["runs"] / "sample")
    per_t: dict[float, list[tuple[float, float]]] = {t: [] for t in ts}
    with sync_playwright() as playwright, streamlit_server(dirs) as (url, _, _):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect(page.get_by_test_id("stMetricValue").first).to_have_text("30,000", timeout=180_000)
            run_input = page.get_by_label("Run directory", exact=True)
            expect(run_input).not_to_have_value("")  # its value has arrived: typing now is not overwritten
            run_input.fill(str(run_dir))
            run_input.press("Enter")
            expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{rows:,}", timeout=300_000)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Balance").click()
            expect(page.get_by_test_id("stMetric").filter(has_text="Kept pairs")).to_be_visible(timeout=300_000)
            page.wait_for_function(SCRIPT_DONE, timeout=300_000)
            t_input = page.get_by_label("t", exact=True)
            for round_ in range(rounds):
                for t in ts:
                    typed = f"{t * (1 + 1e-3 * round_):.6g}"  # a new value each round: no cached answer
                    want = f"{int(np.searchsorted(sorted_thresholds, float(typed), side='left')):,}"
                    t_input.fill(typed)
                    start = time.perf_counter()
                    t_input.press("Enter")
                    page.wait_for_function(METRIC_SHOWS, arg=["Kept pairs", want], polling="raf", timeout=120_000)
                    shown = time.perf_counter() - start
                    page.wait_for_function(SCRIPT_DONE, polling="raf", timeout=120_000)
                    done = time.perf_counter() - start
                    per_t[t].append((shown * 1000, done * 1000))
            errors = page.get_by_test_id("stException").count()
        finally:
            browser.close()
    shutil.rmtree(base, ignore_errors=True)
    shown_medians = {t: statistics.median(x[0] for x in v) for t, v in per_t.items()}
    done_medians = {t: statistics.median(x[1] for x in v) for t, v in per_t.items()}
    return {
        "rounds": rounds,
        "per_t_ms": [{"t": t, "metrics_shown_ms": round(shown_medians[t], 1), "script_done_ms": round(done_medians[t], 1)}
                     for t in ts],
        "metrics_shown_ms": summary(list(shown_medians.values())),
        "script_done_ms": summary(list(done_medians.values())),
        "exceptions_on_page": errors,
    }


FLOOR_APP = """import streamlit as st
st.number_input("t", key="t", value=200.0, format="%g")
st.metric("Kept pairs", f"{int(st.session_state.t * 3):,}")
"""


def browser_floor(workdir: Path, n: int = 15) -> dict:
    """The same measurement on a two-widget Streamlit app (a number input and a metric): what Streamlit
    and Chromium cost on this machine before the dashboard does any work."""
    from playwright.sync_api import expect, sync_playwright

    base = Path(tempfile.mkdtemp(prefix="floor-", dir=workdir / "dashboard"))
    (base / "app.py").write_text(FLOOR_APP)
    samples = []
    try:
        with serve(base / "streamlit.log", script=base / "app.py", timeout_s=60) as served, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(served.url)
                expect(page.get_by_test_id("stMetricValue")).to_have_text("600", timeout=60_000)
                page.wait_for_function(SCRIPT_DONE, timeout=60_000)
                t_input = page.get_by_label("t", exact=True)
                for value in range(1, n + 1):
                    t_input.fill(str(value * 7))
                    start = time.perf_counter()
                    t_input.press("Enter")
                    page.wait_for_function(METRIC_SHOWS, arg=["Kept pairs", f"{value * 21:,}"], polling="raf")
                    samples.append((time.perf_counter() - start) * 1000)
                    page.wait_for_function(SCRIPT_DONE, polling="raf")
            finally:
                browser.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"runs": n, "metrics_shown_ms": summary(samples)}


def bench_cold_start(workdir: Path, repeats: int, quiet_wait: float, idle_below: float) -> dict:
    from playwright.sync_api import sync_playwright

    base = workdir / "dashboard" / "cold"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    fresh, curated = [], []
    with sync_playwright() as playwright:
        start = time.perf_counter()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        launch_s = time.perf_counter() - start
        try:
            for index in range(repeats):
                dirs = {"base": base, "runs": base / f"runs-{index}", "exports": base / "exports",
                        "jobs": base / "jobs"}
                wait_for_quiet(quiet_wait, idle_below)
                with OtherLoad() as load:
                    result = cold_start_once(browser, dirs)  # a new runs directory: curates the sample
                fresh.append({**result, "other_cpu_s": load.other_cpu_s})
                wait_for_quiet(quiet_wait, idle_below)
                with OtherLoad() as load:
                    result = cold_start_once(browser, dirs)  # the same one: the sample is there
                curated.append({**result, "other_cpu_s": load.other_cpu_s})
                print(f"  cold start {index + 1}/{repeats}: fresh {fresh[-1]['metrics_s']:.2f} s, "
                      f"sample curated {curated[-1]['metrics_s']:.2f} s", flush=True)
        finally:
            browser.close()
    return {
        "chromium_launch_s": round(launch_s, 3),
        "fresh_runs_dir": {"runs": fresh, "metrics_s": summary([r["metrics_s"] for r in fresh])},
        "sample_curated": {"runs": curated, "metrics_s": summary([r["metrics_s"] for r in curated])},
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def environment() -> dict:
    import importlib.metadata
    import platform
    from datetime import UTC, datetime

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "dashboard", "curation"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except (subprocess.CalledProcessError, OSError):
        commit, dirty = "none", False
    versions = {}
    for package in ("streamlit", "duckdb", "numpy", "pyarrow", "plotly", "playwright"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        chromium = None
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit,
            "uncommitted_changes_in_dashboard_or_curation": dirty, "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), **versions, "chromium": chromium}


def verdicts(report: dict) -> dict:
    found = {}
    big = next((s for s in report["sizes"] if s["rows"] == 10_000_000), None)
    if big is not None:
        metrics = [row["metrics_ms"] for row in big["functions"]["per_t"]]
        expected = [row["expected_size_at_ms"] for row in big["functions"]["per_t"]]
        worst = max(big["functions"]["per_t"], key=lambda row: row["expected_size_at_ms"])
        slow = [row["t"] for row in big["functions"]["per_t"] if row["metrics_ms"] >= TARGET_NEW_T_MS]
        found["new_t_10M"] = {
            "target_ms": TARGET_NEW_T_MS,
            "metrics_median_ms": round(statistics.median(metrics), 1),
            "metrics_max_ms": round(max(metrics), 1),
            "metrics_met_at_every_t": not slow,
            "metrics_met_at_median": statistics.median(metrics) < TARGET_NEW_T_MS,
            "ts_over_target": slow,
            "expected_size_median_ms": round(statistics.median(expected), 1),
            "expected_size_worst": {"t": worst["t"], "ms": worst["expected_size_at_ms"],
                                    "at_risk_pairs": worst["at_risk_pairs"]},
        }
        if "page" in big:
            found["new_t_10M"]["page_rerun_median_ms"] = big["page"]["new_t_ms"]["median"]
            found["new_t_10M"]["page_rerun_max_ms"] = big["page"]["new_t_ms"]["max"]
            found["new_t_10M"]["page_rerun_met"] = big["page"]["new_t_ms"]["median"] < TARGET_NEW_T_MS
        if "browser" in big:
            shown = big["browser"]["metrics_shown_ms"]
            found["new_t_10M"]["browser_shown_median_ms"] = shown["median"]
            found["new_t_10M"]["browser_shown_max_ms"] = shown["max"]
            found["new_t_10M"]["browser_shown_met"] = shown["median"] < TARGET_NEW_T_MS
    cold = report.get("cold_start")
    if cold:
        found["cold_start"] = {
            "target_s": TARGET_COLD_S,
            "fresh_median_s": cold["fresh_runs_dir"]["metrics_s"]["median"],
            "fresh_met": cold["fresh_runs_dir"]["metrics_s"]["median"] < TARGET_COLD_S,
            "curated_median_s": cold["sample_curated"]["metrics_s"]["median"],
            "curated_met": cold["sample_curated"]["metrics_s"]["median"] < TARGET_COLD_S,
        }
    return found


def yes_no(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Dashboard benchmark", "",
        f"{env['date']}, commit {env['commit']}"
        + (" (with uncommitted changes in dashboard/ or curation/)" if env["uncommitted_changes_in_dashboard_or_curation"] else "")
        + f", {env['cpus']} cores, {env['memory_gib']} GiB, Python {env['python']}, streamlit {env['streamlit']}, "
        f"duckdb {env['duckdb']}, numpy {env['numpy']}, plotly {env['plotly']}, playwright {env['playwright']}, "
        f"{env['chromium']}.", "",
        f"Command (from the repository root): `{report['command']}`", "",
        "Run directories: synthetic pools from bench/generate_pool.py (500,000 metadata entries), curated with "
        "`python -m curation run ... --t 20000 --seed 0`; the preview is for seed 0.", "",
        "## A new t on the Balance page", "",
        f"Functions: median of {report['options']['repeats']} calls per t, then the median and the worst over "
        f"{report['options']['n_ts']} values of t from 1 to the largest entry count, evenly spaced on a log "
        "scale. Metrics = `size_at` + `expected_size_at` + `head_tail` (what the five metrics need). The "
        "page also computes the kept counts of the 40 most matched entries (`kept_counts`, the before/after chart) and builds three plotly figures. "
        f"Page rerun: streamlit.testing AppTest, `t` set to a value not seen before, `run()` timed "
        f"(median of {report['options']['rounds']} rounds per t; in-process, no browser or websocket).", "",
        "Browser: the same page in headless Chromium against `streamlit run`: t typed, Enter pressed, time "
        "until \"Kept pairs\" shows the exact size (checked every animation frame), and until the run has "
        "ended (charts included).", "",
        "| pairs | size_at ms | expected_size_at ms: median / worst | head_tail ms | metrics ms: median / worst "
        "| kept counts (chart) ms | charts ms | page rerun (AppTest) ms: median / worst | same t again ms "
        "| browser: Kept pairs shown ms, median / worst | browser: run ended ms, median / worst |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        rows = size["functions"]["per_t"]

        def med(key: str) -> float:
            return statistics.median(row[key] for row in rows)

        def worst(key: str) -> float:
            return max(row[key] for row in rows)

        page, browser = size.get("page"), size.get("browser")
        lines.append(
            f"| {size['rows']:,} | {med('size_at_ms'):.3f} | {med('expected_size_at_ms'):.1f} / "
            f"{worst('expected_size_at_ms'):.1f} | {med('head_tail_ms'):.1f} | {med('metrics_ms'):.1f} / "
            f"{worst('metrics_ms'):.1f} | {med('balanced_counts_ms'):.1f} | {med('charts_ms'):.1f} | "
            + (f"{page['new_t_ms']['median']:.0f} / {page['new_t_ms']['max']:.0f} | {page['seen_t_ms']['median']:.0f} | "
               if page else "n/a | n/a | ")
            + (f"{browser['metrics_shown_ms']['median']:.0f} / {browser['metrics_shown_ms']['max']:.0f} | "
               f"{browser['script_done_ms']['median']:.0f} / {browser['script_done_ms']['max']:.0f} |"
               if browser else "n/a | n/a |"))
    floor = report.get("browser_floor")
    if floor:
        lines += ["", f"Browser floor on this machine: a two-widget Streamlit app (a number input and a metric), "
                  f"measured the same way: {floor['metrics_shown_ms']['median']:.0f} ms median "
                  f"({floor['metrics_shown_ms']['min']:.0f}-{floor['metrics_shown_ms']['max']:.0f}) from Enter to the "
                  "new value, before the dashboard does any work."]
    for size in report["sizes"]:
        lines += ["", f"Per t at {size['rows']:,} pairs ({size['functions']['matched_pairs']:,} matched, "
                  f"{size['functions']['flat_slots']:,} pair-entry slots; at-risk pairs: those whose entries all "
                  "have count > t, the only ones `expected_size_at` touches):", "",
                  "| t | kept pairs | at-risk pairs | expected_size_at ms | metrics ms | kept counts (chart) ms "
                  "| page rerun (AppTest) ms | browser: Kept pairs shown ms | browser: run ended ms |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        page_by_t = {row["t"]: row["median_ms"] for row in size.get("page", {}).get("per_t_ms", [])}
        browser_by_t = {row["t"]: row for row in size.get("browser", {}).get("per_t_ms", [])}
        nan = float("nan")
        for row in size["functions"]["per_t"]:
            seen = browser_by_t.get(row["t"], {})
            lines.append(f"| {row['t']:g} | {row['size']:,} | {row['at_risk_pairs']:,} | {row['expected_size_at_ms']:.1f} "
                         f"| {row['metrics_ms']:.1f} | {row['balanced_counts_ms']:.1f} "
                         f"| {page_by_t.get(row['t'], nan):.0f} | {seen.get('metrics_shown_ms', nan):.0f} "
                         f"| {seen.get('script_done_ms', nan):.0f} |")
    lines += ["", "## Building the preview (once per run and seed)", "",
              "Through curation/query.py (DuckDB) as dashboard/data.py does: entry counts, keep thresholds, "
              "entry lists, then `BalancePreview.build`. First build in a fresh process; RSS of that process.", "",
              "| pairs | total s | thresholds s | entry lists s | build s | again s | RSS before MiB | RSS loaded MiB "
              "| RSS after build MiB | RSS retained MiB | peak RSS MiB | preview arrays MiB | first Overview s "
              "| first Balance s (AppTest) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in report["sizes"]:
        b, page = size["functions"]["build"], size.get("page", {})
        again = statistics.median(b["again_s"]) if b["again_s"] else float("nan")
        lines.append(
            f"| {size['rows']:,} | {b['first_s']:.2f} | {b['steps_s']['thresholds_s']:.2f} | "
            f"{b['steps_s']['entry_lists_s']:.2f} | {b['steps_s']['build_s']:.2f} | {again:.2f} | "
            f"{b['rss_before_mib']:,.0f} | {b['rss_loaded_mib']:,.0f} | {b['rss_after_build_mib']:,.0f} | "
            f"{b['rss_retained_mib']:,.0f} | {b['peak_rss_mib']:,.0f} | {b['preview_arrays_mib']:,.0f} | "
            f"{page.get('first_overview_s', float('nan')):.1f} | {page.get('first_balance_s', float('nan')):.1f} |")
    lines += ["", "RSS retained: after the loaded tables are released (the allocator may keep some pages). "
              "First Overview / Balance: the AppTest's first run of each page on that run directory (DuckDB "
              "scans for the Overview; the Balance page builds the preview).", ""]
    cold = report.get("cold_start")
    if cold:
        lines += ["## Cold start on the bundled sample (30,000 pairs)", "",
                  "From starting `streamlit run dashboard/app.py --server.headless true ...` until the Overview's "
                  "eight metrics are shown in headless Chromium (already launched: "
                  f"{cold['chromium_launch_s']:.2f} s, not counted); health: the server answers "
                  "/_stcore/health; script done: the page's run has finished.", "",
                  "| CURATION_RUNS_DIR | runs | health s | metrics shown s: median (min-max) | script done s |",
                  "|---|---:|---:|---:|---:|"]
        for label, key in (("fresh (sample curated on first start)", "fresh_runs_dir"),
                           ("sample already curated", "sample_curated")):
            part = cold[key]
            lines.append(
                f"| {label} | {len(part['runs'])} | {statistics.median(r['health_s'] for r in part['runs']):.2f} | "
                f"{part['metrics_s']['median']:.2f} ({part['metrics_s']['min']:.2f}-{part['metrics_s']['max']:.2f}) | "
                f"{statistics.median(r['script_done_s'] for r in part['runs']):.2f} |")
        lines.append("")
    verdict = report["verdicts"]
    cold = report.get("cold_start")
    lines += ["## Targets", ""]
    if "new_t_10M" in verdict:
        v = verdict["new_t_10M"]
        lines.append(
            f"- New t to updated metrics at 10M pairs, under {v['target_ms']:.0f} ms: the metrics' computation takes "
            f"{v['metrics_median_ms']:.0f} ms median ({yes_no(v['metrics_met_at_median'])} at the median) and "
            f"{v['metrics_max_ms']:.0f} ms worst ({yes_no(v['metrics_met_at_every_t'])} at every t"
            + (f": over the target at t = {', '.join(f'{t:g}' for t in v['ts_over_target'])})" if v["ts_over_target"] else ")")
            + f". `expected_size_at` is the slow part: {v['expected_size_median_ms']:.0f} ms median, "
            f"{v['expected_size_worst']['ms']:.0f} ms at t = {v['expected_size_worst']['t']:g} "
            f"({v['expected_size_worst']['at_risk_pairs']:,} at-risk pairs)."
            + (f" The whole page rerun (AppTest): {v['page_rerun_median_ms']:.0f} ms median, "
               f"{v['page_rerun_max_ms']:.0f} ms worst: {yes_no(v['page_rerun_met'])}." if "page_rerun_median_ms" in v else "")
            + (f" In the browser, from Enter to the new \"Kept pairs\": {v['browser_shown_median_ms']:.0f} ms median, "
               f"{v['browser_shown_max_ms']:.0f} ms worst: {yes_no(v['browser_shown_met'])}."
               if "browser_shown_median_ms" in v else ""))
    for size in report["sizes"]:
        if "page" not in size:
            continue
        rows = size["functions"]["per_t"]
        parts = {key: statistics.median(row[key] for row in rows)
                 for key in ("metrics_ms", "balanced_counts_ms", "charts_ms")}
        lines.append(
            f"- Where a rerun's time goes at {size['rows']:,} pairs (medians over t): page rerun (AppTest) "
            f"{size['page']['new_t_ms']['median']:.0f} ms = metrics {parts['metrics_ms']:.0f} + kept counts "
            f"{parts['balanced_counts_ms']:.0f} + charts {parts['charts_ms']:.0f} + the rest of the script and "
            f"Streamlit; the same page at a t already seen (expected size and balanced counts cached) takes "
            f"{size['page']['seen_t_ms']['median']:.0f} ms."
            + (f" In the browser the run ends {size['browser']['script_done_ms']['median']:.0f} ms after Enter."
               if "browser" in size else ""))
    if "cold_start" in verdict:
        v = verdict["cold_start"]
        over = {key: sum(r["metrics_s"] >= TARGET_COLD_S for r in cold[key]["runs"])
                for key in ("fresh_runs_dir", "sample_curated")}
        lines.append(f"- Cold start on the sample under {v['target_s']:.0f} s (medians): fresh runs directory "
                     f"{v['fresh_median_s']:.2f} s {yes_no(v['fresh_met'])}; sample already curated "
                     f"{v['curated_median_s']:.2f} s {yes_no(v['curated_met'])}. Runs at or over the target: "
                     f"{over['fresh_runs_dir']} of {len(cold['fresh_runs_dir']['runs'])} fresh, "
                     f"{over['sample_curated']} of {len(cold['sample_curated']['runs'])} with the sample curated.")
    notes = report.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    load = report.get("other_cpu_s", {})
    if load and max(load.values()) > 2:
        lines += ["", "The machine was shared with other work during this run (CPU seconds below): the figures are "
                  "higher, and vary more, than on a quiet machine."]
    if load:
        lines += ["", "CPU seconds the rest of the machine used during each part (0 on a quiet machine; for the "
                  "cold start this includes Chromium's own rendering): "
                  + ", ".join(f"{k} {v}" for k, v in load.items()) + "."]
    return "\n".join(lines) + "\n"


def write_results(report: dict) -> None:
    report["verdicts"] = verdicts(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "dashboard.md").write_text(markdown(report))


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument("--ts", dest="n_ts", type=int, default=9, help="values of t, log-spaced from 1 to the top count")
    p.add_argument("--repeats", type=int, default=5, help="calls per function and t")
    p.add_argument("--rounds", type=int, default=3, help="AppTest reruns per t (each at a new value)")
    p.add_argument("--build-repeats", type=int, default=2, help="extra preview builds, files in the page cache")
    p.add_argument("--cold-repeats", type=int, default=5)
    p.add_argument("--skip-page", action="store_true", help="no AppTest page reruns")
    p.add_argument("--skip-cold", action="store_true", help="no cold start in Chromium")
    p.add_argument("--skip-browser", action="store_true", help="no Balance page reruns in Chromium")
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="seconds to wait at most for an idle machine before each part (0: never)")
    p.add_argument("--idle-below", type=float, default=0.15,
                   help="the machine counts as idle when other work uses less than this many cores")
    p.add_argument("--child", choices=["preview", "apptest"], help=argparse.SUPPRESS)
    p.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-options", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    if args.workdir == REPO or REPO in args.workdir.parents:
        p.error("--workdir must be outside the repository")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        options = json.loads(args.child_options)
        function = child_preview if args.child == "preview" else child_apptest
        print(json.dumps(function(args.run, options)))
        return 0

    state = args.workdir / "dashboard"
    state.mkdir(parents=True, exist_ok=True)
    shown = sys.argv[1:] if argv is None else argv
    report = {
        "command": "python bench/bench_dashboard.py " + shlex.join(shown),
        "environment": environment(),
        "options": {"n_ts": args.n_ts, "repeats": args.repeats, "rounds": args.rounds,
                    "build_repeats": args.build_repeats, "cold_repeats": args.cold_repeats, "seed": SEED,
                    "quiet_wait_s": args.quiet_wait, "idle_below_cores": args.idle_below},
        "targets": {"new_t_ms_at_10M": TARGET_NEW_T_MS, "cold_start_s": TARGET_COLD_S},
        "sizes": [],
        "other_cpu_s": {},
        "notes": [],
    }
    options = {"seed": SEED, "n_ts": args.n_ts, "repeats": args.repeats, "rounds": args.rounds,
               "build_repeats": args.build_repeats}
    if not args.skip_cold:  # first: it also leaves a curated sample for the browser part to copy
        print("cold start on the sample in headless Chromium", flush=True)
        report["cold_start"] = bench_cold_start(args.workdir, args.cold_repeats, args.quiet_wait, args.idle_below)
        report["other_cpu_s"]["cold start"] = round(sum(
            r["other_cpu_s"] for part in ("fresh_runs_dir", "sample_curated") for r in report["cold_start"][part]["runs"]), 2)
        write_results(report)
    if not args.skip_browser:
        print("browser floor: a two-widget Streamlit app", flush=True)
        wait_for_quiet(args.quiet_wait, args.idle_below)
        with OtherLoad() as load:
            report["browser_floor"] = browser_floor(args.workdir)
        report["other_cpu_s"]["browser floor"] = load.other_cpu_s
    for rows in args.sizes:
        run_dir, made = ensure_run(args.workdir, rows)
        entry = {"rows": rows, "run_dir": str(run_dir), "made_by": made}
        print(f"[{rows:,}] preview build and per-t functions", flush=True)
        wait_for_quiet(args.quiet_wait, args.idle_below)
        with OtherLoad() as load:
            entry["functions"] = child("preview", run_dir, options)
        report["other_cpu_s"][f"functions {rows:,}"] = load.other_cpu_s
        if not args.skip_page:
            print(f"[{rows:,}] Balance page reruns through AppTest", flush=True)
            page_state = Path(tempfile.mkdtemp(prefix="apptest-", dir=state))
            env = {"CURATION_RUNS_DIR": str(page_state / "runs"), "CURATION_EXPORT_DIR": str(page_state / "exports"),
                   "CURATION_JOBS_DIR": str(page_state / "jobs")}
            wait_for_quiet(args.quiet_wait, args.idle_below)
            with OtherLoad() as load:
                entry["page"] = child("apptest", run_dir, options, env)
            report["other_cpu_s"][f"page {rows:,}"] = load.other_cpu_s
            shutil.rmtree(page_state, ignore_errors=True)
            if entry["page"]["kept_pairs_mismatches"]:
                report["notes"].append(f"{rows:,}: the page's Kept pairs differed from the exact size: "
                                       f"{entry['page']['kept_pairs_mismatches']}")
        if not args.skip_browser:
            print(f"[{rows:,}] Balance page in headless Chromium", flush=True)
            wait_for_quiet(args.quiet_wait, args.idle_below)
            with OtherLoad() as load:
                entry["browser"] = browser_new_t(run_dir, rows, args.n_ts, args.rounds, args.workdir)
            report["other_cpu_s"][f"browser {rows:,}"] = load.other_cpu_s
        report["sizes"].append(entry)
        write_results(report)
    write_results(report)
    print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
