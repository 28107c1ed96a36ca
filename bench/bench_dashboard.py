"""Benchmark the dashboard at MetaCLIP scale: open a run, move t, browse pairs, with bounded memory.

For each run directory (by default: a 10M-pair run through the engine on a realistic pool; pass
100M-pair and 1B-pair ones with --runs, such as a real engine run and one from bench/synthetic_run.py):
  a) the preview: built once per seed if the run has none (as the dashboard does on first open, and
     as runs made before previews need), timed, with its process's peak memory;
  b) opening it once the files exist (a fresh process: read the entry counts, map the thresholds,
     load the sample) and, per new t, what the Balance page's metrics need: the realised size (exact),
     the expected size (estimated), head/tail, and the charted entries' kept counts; medians and the
     worst over t values spread on a log scale;
  c) the whole dashboard in one fresh process through streamlit.testing's AppTest: the Overview and
     the Balance page opened, a new t rerun (median and worst), Entries, Samples (kept, dropped, one
     entry) and Export drawn; the process's peak RSS is the dashboard's;
  d) `stats` and `balance` at a new t on the run: wall time and peak RSS of the process tree;
  e) disk used by the run directory and by its preview;
  f) optionally (--browser): the new t seen in headless Chromium, and the cold start on the sample.

Every measurement of a run happens in a fresh child process, so memory figures are not mixed.

Usage (from the repository root, on a quiet machine):
    python bench/bench_dashboard.py --workdir /tmp/bench --runs 100M=/tmp/bench/runs/real-100m 1B=/tmp/bench/synthetic-1b
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
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGETS = {"open_s": 5.0, "metrics_ms": 100.0, "rss_gib": 1.5, "page_10m_ms": 150.0, "samples_s": 2.0}
SEED = 0
RUN_T = 20_000
NEW_T = 5_000
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from bench_engine import ensure_pool, machine_busy_s, run_measured, wait_for_quiet, write_results  # noqa: E402

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
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def child(mode: str, run_dir: Path, options: dict, env: dict | None = None) -> dict:
    """Run this script in a fresh process for one measurement; its last stdout line is JSON."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--run",
        str(run_dir),
        "--child-options",
        json.dumps(options),
    ]
    result = subprocess.run(argv, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"child {mode} on {run_dir} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------------


def engine_run(workdir: Path, rows: int, workers: int) -> tuple[Path, str | None]:
    """WORKDIR/runs/dash-N: a realistic pool through `python -m curation run` (made when missing)."""
    run_dir = workdir / "runs" / f"dash-{rows}"
    try:
        if json.loads((run_dir / "run.json").read_text()).get("status") == "complete":
            return run_dir, None
    except (OSError, ValueError):
        pass
    pool, _ = ensure_pool(workdir, rows, 500_000, SEED)
    shutil.rmtree(run_dir, ignore_errors=True)
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
        str(RUN_T),
        "--seed",
        str(SEED),
        "--out",
        str(run_dir),
        "--workers",
        str(workers),
        "--quiet",
    ]
    print(f"curating {run_dir}", flush=True)
    subprocess.run(argv, check=True, cwd=REPO)
    return run_dir, shlex.join(["python" if a == sys.executable else a for a in argv])


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------
# (a) the preview, (b) opening it and the functions of a new t: one child process each
# --------------------------------------------------------------------------------------------------


def child_prepare(run_dir: Path, options: dict) -> dict:
    """Build the seed's preview as the dashboard does on first open (here: when the run has none)."""
    from curation import preview_files
    from curation.rundir import RunDir
    from curation.runner import Execution, build_preview

    run = RunDir(run_dir)
    existed = preview_files.is_complete(run, options["seed"])
    start = time.perf_counter()
    if not existed:
        execution = Execution(workers=options["workers"], progress=False)
        with execution.start() as engine:
            build_preview(str(run_dir), options["seed"], execution, engine)
    return {
        "built_here": not existed,
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": mib(status_kib()["VmHWM"]),
        **preview_files.describe(run, options["seed"]),
    }


def child_open(run_dir: Path, options: dict) -> dict:
    import numpy as np

    from curation import preview_files
    from curation.rundir import RunDir
    from dashboard import charts

    seed = options["seed"]
    gc.collect()
    before = status_kib()
    start = time.perf_counter()
    preview = preview_files.open_preview(RunDir(run_dir), seed)
    open_s = time.perf_counter() - start
    opened = status_kib()
    top = charts.top_entries(preview.counts)
    ts = log_ts(float(preview.counts.max()), options["n_ts"])
    repeats = options["repeats"]
    preview.kept_counts(top, ts[len(ts) // 2] * 1.01)  # builds the top entries' slots once
    per_t = []
    for t in ts:
        estimate = preview.expected_size_at(t)
        row = {
            "t": t,
            "size": preview.size_at(t),
            "expected": round(estimate.value, 1),
            "expected_margin": round(estimate.margin, 1),
            "size_at_ms": timed_ms(preview.size_at, t, repeats=repeats),
            "expected_size_at_ms": timed_ms(preview.expected_size_at, t, repeats=repeats),
            "head_tail_ms": timed_ms(preview.head_tail, t, repeats=repeats),
            "kept_counts_ms": timed_ms(preview.kept_counts, top, t, repeats=repeats),
        }
        row["metrics_ms"] = row["size_at_ms"] + row["expected_size_at_ms"] + row["head_tail_ms"]
        per_t.append({k: round(v, 3) if isinstance(v, float) and k != "t" else v for k, v in row.items()})
    samples = {}
    from curation.browse import find_pairs

    names = preview_files.describe(RunDir(run_dir), seed)
    text = json.loads((run_dir / "plan.json").read_text())["columns"]["text"]
    frequent = int(np.argmax(preview.counts))
    rare = int(np.flatnonzero(preview.counts == 1)[0]) if (preview.counts == 1).any() else frequent
    for label, kept, entry in (
        ("kept", True, None),
        ("dropped", False, None),
        ("frequent_entry", True, frequent),
        ("rare_entry", False, rare),
    ):
        start = time.perf_counter()
        found = find_pairs(run_dir, seed, RUN_T, kept, [text], entry, limit=50)
        samples[label] = {
            "s": round(time.perf_counter() - start, 3),
            "rows": len(found.table),
            "shards_searched": found.shards_searched,
            "shards": found.shards,
        }
    return {
        "pairs": preview.pairs,
        "matched_pairs": preview.matched_pairs,
        "sample_pairs": preview.sample.size,
        "entries": int(len(preview.counts)),
        "open_s": round(open_s, 3),
        "rss_before_mib": mib(before["VmRSS"]),
        "rss_opened_mib": mib(opened["VmRSS"]),
        "peak_rss_mib": mib(status_kib()["VmHWM"]),
        "per_t": per_t,
        "metrics_ms": summary([row["metrics_ms"] for row in per_t]),
        "samples": samples,
        "matches_per_pair": names["matches_per_pair"][:12],
    }


# --------------------------------------------------------------------------------------------------
# (c) the whole dashboard through AppTest, in one process
# --------------------------------------------------------------------------------------------------


def child_apptest(run_dir: Path, options: dict) -> dict:
    """Open the run, every page, and move t on Balance; time each and read the process's peak RSS."""
    from streamlit.testing.v1 import AppTest

    from curation import Run

    run = Run(run_dir)
    preview = run.preview(options["seed"])

    def check(at: AppTest, where: str) -> None:
        """A page that raised or showed an error did not draw what is timed: the figures would be wrong."""
        if at.exception or at.error:
            raise SystemExit(f"{where}: {[e.message for e in at.exception] + [e.value for e in at.error]}")

    def timed(action) -> float:
        start = time.perf_counter()
        action()
        return round(time.perf_counter() - start, 3)

    at = AppTest.from_file(str(APP), default_timeout=900)
    at.session_state["run_dir"] = str(run_dir)
    steps = {"overview_s": timed(at.run)}
    check(at, "overview")
    steps["balance_s"] = timed(lambda: at.switch_page("views/balance.py").run())
    check(at, "balance")
    ts = log_ts(float(preview.counts.max()), options["n_ts"])
    per_t: dict[float, list[float]] = {t: [] for t in ts}
    mismatches = []
    for round_ in range(options["rounds"]):
        for t in ts:
            t_run = t * (1 + 1e-3 * round_)  # a value not seen before: the page's per-t caches miss
            widget = at.number_input(key="t_box").set_value(t_run)
            per_t[t].append(timed(widget.run) * 1000)
            check(at, f"t={t_run}")
            shown = next(m.value for m in at.metric if m.label == "Kept pairs")
            if shown != f"{preview.size_at(t_run):,}":
                mismatches.append({"t": t_run, "shown": shown})
    at.number_input(key="t_box").set_value(float(RUN_T)).run()
    steps["entries_s"] = timed(lambda: at.switch_page("views/entries.py").run())
    check(at, "entries")
    steps["samples_kept_s"] = timed(lambda: at.switch_page("views/samples.py").run())
    check(at, "samples")
    steps["samples_dropped_s"] = timed(lambda: at.radio(key="sample_kind").set_value("dropped").run())
    frequent = run.entries[int(preview.counts.argmax())]
    steps["samples_entry_s"] = timed(lambda: at.text_input(key="sample_entry").set_value(frequent).run())
    check(at, "samples of an entry")
    steps["export_page_s"] = timed(lambda: at.switch_page("views/export.py").run())
    check(at, "export")
    medians = {t: statistics.median(v) for t, v in per_t.items()}
    return {
        "steps": steps,
        "new_t_ms": summary(list(medians.values())),
        "per_t_ms": [{"t": t, "median_ms": round(medians[t], 1)} for t in ts],
        "kept_pairs_mismatches": mismatches,
        "peak_rss_mib": mib(status_kib()["VmHWM"]),
    }


# --------------------------------------------------------------------------------------------------
# (d) stats and balance on the run
# --------------------------------------------------------------------------------------------------


def bench_commands(run_dir: Path, label: str, workdir: Path, workers: int, quiet_wait: float, export: bool) -> dict:
    logs = workdir / "logs"
    # A t the run is not already balanced at: balance at its own t only confirms what is there.
    current = json.loads((run_dir / "run.json").read_text()).get("parameters", {}).get("t")
    balance_t = NEW_T * 2 if current == NEW_T else NEW_T
    out: dict = {"balance_t": balance_t}
    commands = [
        (
            "stats",
            [
                sys.executable,
                "-m",
                "curation",
                "stats",
                str(run_dir),
                "--t",
                "1000",
                "5000",
                "20000",
                "--target-size",
                "1000000",
                "--json",
                "--quiet",
            ],
        ),
        (
            "balance",
            [
                sys.executable,
                "-m",
                "curation",
                "balance",
                str(run_dir),
                "--t",
                f"{balance_t:g}",
                "--workers",
                str(workers),
                "--quiet",
            ],
        ),
    ]
    if export:
        manifest = workdir / "dashboard" / "exports" / f"bench-{label}.parquet"
        commands.append(
            (
                "export",
                [
                    sys.executable,
                    "-m",
                    "curation",
                    "export",
                    str(run_dir),
                    "--t",
                    f"{NEW_T:g}",
                    "--out",
                    str(manifest),
                    "--quiet",
                ],
            )
        )
    for name, argv in commands:
        wait_for_quiet(quiet_wait)
        measured = run_measured(argv, logs / f"dashboard-{label}-{name}.log")
        out[name] = {
            "wall_s": measured.wall_s,
            "peak_tree_rss_mib": measured.peak_tree_rss_mib,
            "peak_single_rss_mib": measured.peak_single_rss_mib,
            "other_cpu_s": measured.other_cpu_s,
            "command": measured.command,
        }
    return out


# --------------------------------------------------------------------------------------------------
# (f) in a browser
# --------------------------------------------------------------------------------------------------


@contextmanager
def streamlit_server(dirs: dict[str, Path]):
    """The dashboard on a free port with the given runs / exports / jobs directories.
    Yields (url, the perf_counter when it was started, seconds until /_stcore/health answered)."""
    env = {
        **os.environ,
        "CURATION_RUNS_DIR": str(dirs["runs"]),
        "CURATION_EXPORT_DIR": str(dirs["exports"]),
        "CURATION_JOBS_DIR": str(dirs["jobs"]),
    }
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
            expect(page.get_by_test_id("stApp")).to_have_attribute(
                "data-test-script-state", "notRunning", timeout=60_000
            )
            done_s = time.perf_counter() - start
            errors = page.get_by_test_id("stException").count()
    finally:
        page.close()
    return {
        "health_s": round(health_s, 3),
        "metrics_s": round(metrics_s, 3),
        "script_done_s": round(done_s, 3),
        "exceptions_on_page": errors,
    }


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
    # The dashboard opens run directories only under its runs directory: the measured run's folder.
    dirs = {"base": base, "runs": run_dir.parent, "exports": base / "exports", "jobs": base / "jobs"}
    sample = workdir / "dashboard" / "cold" / "runs-0" / "sample"
    if sample.is_dir() and not (dirs["runs"] / "sample").exists():  # the app opens on the sample first
        shutil.copytree(sample, dirs["runs"] / "sample")
    (dirs["runs"] / ".recent.json").unlink(missing_ok=True)  # so the app opens on the sample, as measured before
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
        "per_t_ms": [
            {"t": t, "metrics_shown_ms": round(shown_medians[t], 1), "script_done_ms": round(done_medians[t], 1)}
            for t in ts
        ],
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
        with (
            serve(base / "streamlit.log", script=base / "app.py", timeout_s=60) as served,
            sync_playwright() as playwright,
        ):
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
                dirs = {
                    "base": base,
                    "runs": base / f"runs-{index}",
                    "exports": base / "exports",
                    "jobs": base / "jobs",
                }
                wait_for_quiet(quiet_wait, idle_below)
                with OtherLoad() as load:
                    result = cold_start_once(browser, dirs)  # a new runs directory: curates the sample
                fresh.append({**result, "other_cpu_s": load.other_cpu_s})
                wait_for_quiet(quiet_wait, idle_below)
                with OtherLoad() as load:
                    result = cold_start_once(browser, dirs)  # the same one: the sample is there
                curated.append({**result, "other_cpu_s": load.other_cpu_s})
                print(
                    f"  cold start {index + 1}/{repeats}: fresh {fresh[-1]['metrics_s']:.2f} s, "
                    f"sample curated {curated[-1]['metrics_s']:.2f} s",
                    flush=True,
                )
        finally:
            browser.close()
    return {
        "chromium_launch_s": round(launch_s, 3),
        "fresh_runs_dir": {"runs": fresh, "metrics_s": summary([r["metrics_s"] for r in fresh])},
        "sample_curated": {"runs": curated, "metrics_s": summary([r["metrics_s"] for r in curated])},
    }


def environment() -> dict:
    import importlib.metadata
    import platform
    from datetime import UTC, datetime

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "dashboard", "curation"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
        )
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
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "uncommitted_changes_in_dashboard_or_curation": dirty,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        **versions,
        "chromium": chromium,
    }


def yes_no(flag: bool) -> str:
    return "**yes**" if flag else "**no**"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Dashboard benchmark",
        "",
        f"{env['date']} (the last command), commit {env['commit']}, {env['cpus']} cores, {env['memory_gib']} GiB, Python {env['python']}, "
        f"streamlit {env['streamlit']}, duckdb {env['duckdb']}, numpy {env['numpy']}, pyarrow {env['pyarrow']}.",
        "",
        "Commands (in this order):",
        "",
        *[f"- `{c}`" for c in report["command"].split("; then ")],
        "",
        "Each run directory is measured in fresh processes: the preview built once if the run has none (as the "
        "dashboard does on first open), opened (entry counts read, thresholds mapped, the sample loaded), the "
        "Balance page's metrics at new t values, and the whole dashboard through AppTest in one process whose "
        "peak RSS is the dashboard's.",
        "",
        "| run | pairs | matched | preview build s (peak MiB) | open s | new t: metrics ms, median / worst "
        "| new t: Balance page ms, median / worst | Samples first rows s: kept / dropped / entry | dashboard peak RSS MiB "
        "| disk GB: run / preview |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        o, a, p = run["open"], run["apptest"], run["prepare"]
        build = f"{p['seconds']:.1f} ({p['peak_rss_mib']:,.0f})" if p["built_here"] else "made by balance"
        lines.append(
            f"| {run['label']} | {o['pairs']:,} | {o['matched_pairs']:,} | {build} | {o['open_s']:.2f} "
            f"| {o['metrics_ms']['median']:.1f} / {o['metrics_ms']['max']:.1f} "
            f"| {a['new_t_ms']['median']:.0f} / {a['new_t_ms']['max']:.0f} "
            f"| {a['steps']['samples_kept_s']:.2f} / {a['steps']['samples_dropped_s']:.2f} / "
            f"{a['steps']['samples_entry_s']:.2f} | {a['peak_rss_mib']:,.0f} "
            f"| {run['disk']['run_gb']:.1f} / {run['disk']['preview_gb']:.2f} |"
        )
    lines += [
        "",
        "Targets: at 1B pairs, open in at most 5 s once the files exist, every metric of a new t in at most "
        "100 ms, peak RSS at most 1.5 GB; at 10M, a new t reruns the whole Balance page in at most 150 ms; "
        "Samples shows its first rows in at most 2 s.",
        "",
    ]
    for run in report["runs"]:
        o, a = run["open"], run["apptest"]
        worst_metrics = max(o["per_t"], key=lambda row: row["metrics_ms"])
        lines += [
            f"## {run['label']}: {run['run_dir']}" + (f" (commit {run['commit']})" if run.get("commit") else ""),
            "",
            f"- open: {o['open_s']:.2f} s in a fresh process (RSS {o['rss_before_mib']:,.0f} MiB before, "
            f"{o['rss_opened_mib']:,.0f} MiB after; the sample holds {o['sample_pairs']:,} of "
            f"{o['matched_pairs']:,} matched pairs); through the dashboard: Overview {a['steps']['overview_s']:.2f} s, "
            f"then Balance {a['steps']['balance_s']:.2f} s.",
            f"- a new t, the metrics: {o['metrics_ms']['median']:.1f} ms median, {worst_metrics['metrics_ms']:.1f} ms at "
            f"worst (t = {worst_metrics['t']:g}); the whole Balance page rerun {a['new_t_ms']['median']:.0f} ms median, "
            f'{a["new_t_ms"]["max"]:.0f} ms at worst; "Kept pairs" wrong at {len(a["kept_pairs_mismatches"])} t values.',
            f"- other pages: Entries {a['steps']['entries_s']:.2f} s, Samples {a['steps']['samples_kept_s']:.2f} s "
            f"(dropped {a['steps']['samples_dropped_s']:.2f} s, one entry {a['steps']['samples_entry_s']:.2f} s), "
            f"Export {a['steps']['export_page_s']:.2f} s; the dashboard process peaked at {a['peak_rss_mib']:,.0f} MiB.",
            "- finding pairs on their own: "
            + ", ".join(
                f"{k} {v['s']:.2f} s ({v['rows']} rows, {v['shards_searched']} of {v['shards']} shards)"
                for k, v in o["samples"].items()
            )
            + ".",
        ]
        if run.get("commands"):
            c = run["commands"]
            lines.append(
                f"- `stats` {c['stats']['wall_s']:.1f} s (peak {c['stats']['peak_tree_rss_mib']:,.0f} MiB); "
                f"`balance` at t = {c.get('balance_t', NEW_T):g} (a new t) on {run['workers']} workers "
                f"{c['balance']['wall_s']:.1f} s (peak "
                f"{c['balance']['peak_tree_rss_mib']:,.0f} MiB over the process tree, "
                f"{c['balance']['peak_single_rss_mib']:,.0f} MiB the largest process)"
                + (
                    f"; `export` of the manifest at t = {NEW_T:g} (url, caption) {c['export']['wall_s']:.1f} s, peak "
                    f"{c['export']['peak_tree_rss_mib']:,.0f} MiB."
                    if "export" in c
                    else "."
                )
            )
        lines += [
            "",
            "| t | kept | expected | size_at ms | expected_size_at ms | head_tail ms | kept counts ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in o["per_t"]:
            lines.append(
                f"| {row['t']:g} | {row['size']:,} | {row['expected']:,.0f} ± {row['expected_margin']:,.0f} "
                f"| {row['size_at_ms']:.3f} | {row['expected_size_at_ms']:.1f} | {row['head_tail_ms']:.2f} "
                f"| {row['kept_counts_ms']:.1f} |"
            )
        lines.append("")
    if report.get("browser"):
        b = report["browser"]
        lines += [
            "## In a browser",
            "",
            f'- new t at {b["label"]}: "Kept pairs" shows the exact size {b["new_t"]["metrics_shown_ms"]["median"]:.0f} '
            f"ms after Enter (median; worst {b['new_t']['metrics_shown_ms']['max']:.0f} ms); a two-widget Streamlit "
            f"app needs {b['floor']['metrics_shown_ms']['median']:.0f} ms here.",
            f"- cold start on the sample: {b['cold']['sample_curated']['metrics_s']['median']:.2f} s to the Overview's "
            f"metrics ({b['cold']['fresh_runs_dir']['metrics_s']['median']:.2f} s when the first start also curates "
            "it).",
            "",
        ]
    if report.get("made"):
        lines += ["## How the run directories were made", ""] + [f"- `{c}`" for c in report["made"]] + [""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    p.add_argument(
        "--engine-sizes",
        type=int,
        nargs="*",
        default=[10_000_000],
        help="realistic pools run through the engine here, measured as runs too (default: 10M)",
    )
    p.add_argument("--runs", nargs="*", default=[], metavar="LABEL=DIR", help="more run directories to measure")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ts", dest="n_ts", type=int, default=9, help="t values per run (log-spaced)")
    p.add_argument("--repeats", type=int, default=5, help="calls per function and t (the median counts)")
    p.add_argument("--rounds", type=int, default=3, help="page reruns per t in AppTest")
    p.add_argument("--no-commands", action="store_true", help="skip stats, balance and export")
    p.add_argument(
        "--export-max-pairs",
        type=int,
        default=100_000_000,
        help="export the manifest at the new t only for runs of at most this many pairs",
    )
    p.add_argument("--browser", action="store_true", help="also measure in headless Chromium (the first run)")
    p.add_argument("--quiet-wait", type=float, default=60.0)
    p.add_argument(
        "--append",
        action="store_true",
        help="add these runs to the existing results (a label measured again replaces its row): for "
        "runs that cannot share the disk, measured one after the other",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-options", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    return args


CHILDREN = {"prepare": child_prepare, "open": child_open, "apptest": child_apptest}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.run, json.loads(args.child_options))))
        return 0
    state = args.workdir / "dashboard"
    for name in ("runs", "exports", "jobs"):
        (state / name).mkdir(parents=True, exist_ok=True)
    env = {
        "CURATION_RUNS_DIR": str(state / "runs"),
        "CURATION_EXPORT_DIR": str(state / "exports"),
        "CURATION_JOBS_DIR": str(state / "jobs"),
    }
    targets, made = [], []
    for rows in args.engine_sizes:
        run_dir, command = engine_run(args.workdir, rows, args.workers)
        targets.append((f"{rows / 1e6:g}M", run_dir))
        made += [command] if command else []
    for spec in args.runs:
        label, _, path = spec.partition("=")
        targets.append((label, Path(path).resolve()))
    command = "python bench/bench_dashboard.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    report = {"command": command, "environment": environment(), "runs": [], "made": made}
    if args.append and (RESULTS / "dashboard.json").exists():
        earlier = json.loads((RESULTS / "dashboard.json").read_text())
        labels = {label for label, _ in targets}
        report["runs"] = [run for run in earlier.get("runs", []) if run["label"] not in labels]
        report["made"] = earlier.get("made", []) + made
        report["command"] = earlier.get("command", "") + "; then " + command
        if earlier.get("browser"):
            report["browser"] = earlier["browser"]  # measured on an earlier command, replaced by --browser
    options = {"seed": SEED, "workers": args.workers, "n_ts": args.n_ts, "repeats": args.repeats, "rounds": args.rounds}
    for label, run_dir in targets:
        print(f"[{label}] {run_dir}", flush=True)
        wait_for_quiet(args.quiet_wait)
        result = {
            "label": label,
            "run_dir": str(run_dir),
            "workers": args.workers,
            "commit": report["environment"]["commit"][:10],
            "prepare": child("prepare", run_dir, options, env),
        }
        wait_for_quiet(args.quiet_wait)
        result["open"] = child("open", run_dir, options, env)
        wait_for_quiet(args.quiet_wait)
        # the dashboard opens run directories only under its runs directory (the run's parent folder),
        # and shows pairs only of a pool under its data roots (the run's pool, as plan.json names it)
        pool = json.loads((run_dir / "plan.json").read_text())["pool"]
        runs_env = {
            **(env or {}),
            "CURATION_RUNS_DIR": str(run_dir.parent),
            "CURATION_DATA_ROOTS": os.pathsep.join([str(run_dir.parent), pool]),
        }
        result["apptest"] = child("apptest", run_dir, options, runs_env)
        result["disk"] = {
            "run_gb": round(disk_bytes(run_dir) / 1e9, 2),
            "preview_gb": round(disk_bytes(run_dir / "preview") / 1e9, 3),
        }
        if not args.no_commands:
            result["commands"] = bench_commands(
                run_dir,
                label,
                args.workdir,
                args.workers,
                args.quiet_wait,
                result["open"]["pairs"] <= args.export_max_pairs,
            )
        report["runs"].append(result)
        report["runs"].sort(key=lambda run: run["open"]["pairs"])  # appended runs take their place by size
        write_results("dashboard", report, markdown(report))
    if args.browser and targets:
        label, run_dir = targets[0]
        report["browser"] = {
            "label": label,
            "new_t": browser_new_t(
                run_dir,
                next(r["open"]["pairs"] for r in report["runs"] if r["label"] == label),
                args.n_ts,
                2,
                args.workdir,
            ),
            "floor": browser_floor(args.workdir),
            "cold": bench_cold_start(args.workdir, 2, args.quiet_wait, 0.15),
        }
    write_results("dashboard", report, markdown(report))
    print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
