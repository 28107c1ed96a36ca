"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run`.

Needs /usr/bin/chromium (`apt-get install -y chromium`) and the playwright package; the browser is
never downloaded (`playwright install` is not used). Without them the test is skipped on a workstation,
but fails in CI (env CI set), so that CI can never pass by skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest
from conftest import cli

from curation import Run
from curation.commands import RunRequest
from dashboard.local_server import serve

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]  # its own waits add up past 300 s

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 60  # until /_stcore/health answers
FIRST_PAGE_TIMEOUT_MS = 180_000  # the first page load curates the bundled sample
STEP_TIMEOUT_MS = 60_000


def _missing_browser() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    return None


def _require_browser() -> None:
    reason = _missing_browser()
    if reason is None:
        return
    if os.environ.get("CI") is not None:
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


TOKEN = "a-token-for-this-test-only"


def _served(tmp_path: Path, extra_env: dict[str, str]):
    _require_browser()
    dirs = {"runs": tmp_path / "runs", "exports": tmp_path / "exports", "jobs": tmp_path / "jobs"}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CURATION_")},
        "CURATION_RUNS_DIR": str(dirs["runs"]),
        "CURATION_EXPORT_DIR": str(dirs["exports"]),
        "CURATION_JOBS_DIR": str(dirs["jobs"]),
        **extra_env,
    }
    try:
        with serve(tmp_path / "streamlit.log", env, timeout_s=START_TIMEOUT_S) as served:
            yield served.url, dirs
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def server(tmp_path: Path):
    """`streamlit run dashboard/app.py` on 127.0.0.1 and a free port, with runs, exports and jobs under
    tmp_path; yields (base url, directories) and stops the server it started."""
    yield from _served(tmp_path, {})


@pytest.fixture
def token_server(tmp_path: Path):
    """The same, told to ask for a token as it would beyond loopback (the address stays 127.0.0.1)."""
    yield from _served(tmp_path, {"CURATION_DASHBOARD_REQUIRE_TOKEN": "1", "CURATION_DASHBOARD_TOKEN": TOKEN})


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample curated once, with the request the dashboard's first start makes."""
    from dashboard.data import sample_request

    out = tmp_path_factory.mktemp("browser-sample") / "sample"
    assert cli(*sample_request(out).arguments(quiet=True)) == 0
    return out


@pytest.fixture
def curated(server, sample_run: Path) -> None:
    """The sample already curated in the server's runs folder, for tests about something other than the
    first start (test_change_t_see_kept_pairs_and_export lets the dashboard curate it)."""
    shutil.copytree(sample_run, server[1]["runs"] / "sample")


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def wait_for_start_t(t_input, kept, run: Run, timeout_s: float = STEP_TIMEOUT_MS / 1000) -> float:
    """The t the page shows once the input and the "Kept pairs" metric agree with the engine."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        try:
            shown_t = float(t_input.input_value(timeout=1000))
            seen = (shown_t, kept.inner_text(timeout=1000))
        except (ValueError, PlaywrightError):  # not drawn yet (a timeout) or not a number yet
            time.sleep(0.05)
            continue
        if shown_t > 0 and seen[1] == f"{run.size_at(shown_t):,}":
            return shown_t
        time.sleep(0.05)
    pytest.fail(f"the Balance page never showed a t whose kept pairs match the engine; last seen (t, kept): {seen}")


def test_change_t_see_kept_pairs_and_export(server, page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url, dirs = server
    app = page.get_by_test_id("stApp")

    def settled(timeout: int = STEP_TIMEOUT_MS) -> None:
        expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)

    def no_exception() -> None:
        assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").all_inner_texts()

    def metric(label: str):
        return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")

    # Load: the first start curates the sample, then the Overview shows its metrics.
    page.goto(url)
    expect(metric("Pool rows")).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    settled()
    no_exception()
    run_dir = dirs["runs"] / "sample"
    assert (run_dir / "run.json").exists()
    run = Run(run_dir)

    # Balance: read "Kept pairs" at the start t, then type another t.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Balance").click()
    expect(page.get_by_role("heading", name="Balance")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    t_input = page.get_by_label("t", exact=True)
    kept = metric("Kept pairs")
    expect(kept).to_be_visible(timeout=STEP_TIMEOUT_MS)
    settled()
    # A freshly drawn number input shows 0 for a few frames before its value arrives, even after the
    # script state says notRunning: wait until the t shown and "Kept pairs" agree with the engine.
    start_t = wait_for_start_t(t_input, kept, run)
    no_exception()
    before = kept.inner_text()

    new_t = 37.0 if start_t != 37.0 else 3000.0
    expected = run.size_at(new_t)
    assert f"{expected:,}" != before, "pick a t whose size differs from the start, or the test proves nothing"
    t_input.fill(f"{new_t:g}")
    t_input.press("Enter")
    expect(kept).to_have_text(f"{expected:,}", timeout=STEP_TIMEOUT_MS)
    settled()
    expect(kept).to_have_text(f"{expected:,}")  # still so once the script has finished
    expect(t_input).to_have_value(f"{new_t:g}")
    no_exception()
    page.screenshot(path=str(tmp_path / "balance.png"), full_page=True)

    # Export with the form's t differing from the Balance t: the default name, the caption and the
    # provenance follow the form, and the files hold the rows the page claims.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Export").click()
    expect(page.get_by_role("heading", name="Export")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    settled()
    export_t_input = page.get_by_label("t", exact=True)
    expect(export_t_input).to_have_value(f"{new_t:g}")  # the export's t starts at the page's
    export_t = 100.0 if new_t != 100.0 else 250.0
    exported = run.size_at(export_t)
    assert exported != expected, "pick an export t whose size differs from the Balance t's"
    export_t_input.fill(f"{export_t:g}")
    export_t_input.press("Enter")
    name = f"curated-t{export_t:g}-seed0"
    name_input = page.get_by_role("textbox", name="File name")
    expect(name_input).to_have_attribute("placeholder", name, timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="the manifest holds")).to_contain_text(
        f"At t = {export_t:g} (seed 0) the manifest holds {exported:,} pairs"
    )
    settled()
    page.get_by_role("button", name="Export").click()  # a background job: the page follows it
    success = page.get_by_test_id("stAlertContentSuccess")
    expect(success).to_contain_text(f"Wrote {exported:,} pairs", timeout=STEP_TIMEOUT_MS)
    settled()
    no_exception()
    downloads = page.get_by_test_id("stDownloadButton")
    expect(downloads).to_have_count(2)  # the manifest (small enough) and its provenance
    for button in downloads.all():
        expect(button).to_be_visible()

    manifest = dirs["exports"] / f"{name}.parquet"
    provenance = dirs["exports"] / f"{name}.parquet.provenance.json"
    assert manifest.exists() and provenance.exists()
    assert str(manifest) in success.inner_text()
    assert pq.read_metadata(manifest).num_rows == exported
    record = json.loads(provenance.read_text())
    assert record["rows"] == exported and record["t"] == export_t and record["file"] == manifest.name
    assert sorted(p.name for p in dirs["exports"].iterdir() if not p.name.startswith(".")) == sorted(
        [manifest.name, provenance.name]
    )

    shot = tmp_path / "export.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 0
    assert (tmp_path / "balance.png").stat().st_size > 0


def _finished_run(dirs: dict[str, Path], pool: Path, metadata: Path) -> tuple[Path, int]:
    """A run made by a finished job under the runs directory (where the UI may open it), and its rows."""
    from curation.jobs import start_job, wait

    out = dirs["runs"] / "from-job"
    job_id = start_job(dirs["jobs"], RunRequest(str(pool), str(metadata), 40, 0, str(out), workers=1))
    assert wait(dirs["jobs"], job_id).state == "finished"
    rows = json.loads((out / "run.json").read_text())["rows"]["in"]
    assert f"{rows:,}" != "30,000", "the opened run must differ from the sample, or the test proves nothing"
    return out, rows


def _expect_overview_of(page, out: Path, rows: int) -> None:
    """The Overview and the sidebar on ``out``, and still so once the script has settled (a request that
    the browser sent before the page changed, a fragment's timer tick, is handled by then)."""
    from playwright.sync_api import expect

    pool_rows = page.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")
    run_box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Run directory")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(pool_rows).to_have_text(f"{rows:,}", timeout=STEP_TIMEOUT_MS)
    settled = page.get_by_test_id("stApp")
    expect(settled).to_have_attribute("data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(pool_rows).to_have_text(f"{rows:,}")
    expect(run_box).to_have_value(str(out))
    expect(page.get_by_text(f"Run directory {out.resolve()}", exact=False)).to_be_visible()
    assert page.get_by_test_id("stException").count() == 0


def _expect_address_names(page, run: Path | str) -> None:
    """The address bar's ?run= names ``run`` (waited for: Streamlit writes it once the script has run)."""
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("run") == [str(run)], timeout=STEP_TIMEOUT_MS)


def test_open_a_finished_run_from_jobs_and_keep_it_after_a_reload(
    server, curated, page, tmp_path: Path, pool: Path, metadata: Path
) -> None:
    """A finished job's "Open this run": the Overview shows that run, the address names it so a reload keeps
    it, and it is a recent run of the session.
    No job runs, so the Jobs page has no timer and the button switches the page. The project's
    .streamlit/config.toml is read too: no Deploy button."""
    from playwright.sync_api import expect

    url, dirs = server
    pool_rows = page.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")
    page.goto(url)
    expect(pool_rows).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)  # the sample
    expect(page.get_by_test_id("stHeader")).to_be_attached()
    expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
    out, rows = _finished_run(dirs, pool, metadata)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Jobs").click()
    opener = page.get_by_role("button", name="Open this run")
    expect(opener).to_be_visible(timeout=STEP_TIMEOUT_MS)
    opener.click()
    _expect_overview_of(page, out, rows)
    _expect_address_names(page, out)

    page.reload()  # a new session at the same address: the run the address names
    _expect_overview_of(page, out, rows)
    run_box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Run directory")
    run_box.fill(str(dirs["runs"] / "sample"))  # typed, Enter opens it
    run_box.press("Enter")
    expect(pool_rows).to_have_text("30,000", timeout=STEP_TIMEOUT_MS)
    expect(run_box).to_have_value(str(dirs["runs"] / "sample"))
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Recent runs").click()
    expect(page.get_by_role("option", name=str(out))).to_be_visible(timeout=STEP_TIMEOUT_MS)
    assert page.get_by_test_id("stException").count() == 0


def test_open_a_finished_run_while_another_job_runs(server, curated, page, pool: Path, metadata: Path) -> None:
    """While a job runs the Jobs page redraws itself every 2 s, and "Open this run" is a link: the browser
    stops that timer before it asks for the Overview, which then shows the run and keeps it."""
    from playwright.sync_api import expect

    from curation.jobs import cancel_job, list_jobs, start_job

    url, dirs = server
    page.goto(url)
    pool_rows = page.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")
    expect(pool_rows).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    out, rows = _finished_run(dirs, pool, metadata)
    running = start_job(
        dirs["jobs"], RunRequest(str(pool), str(metadata), 40, 0, str(dirs["runs"] / "still-running"), workers=1)
    )
    group = json.loads((dirs["jobs"] / running / "job.json").read_text())["pid"]  # its process group
    os.killpg(group, signal.SIGSTOP)  # stopped, so it runs until cancelled
    try:
        assert next(job.state for job in list_jobs(dirs["jobs"]) if job.id == running) == "running"
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Jobs").click()
        expect(page.get_by_role("button", name="Cancel")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        opener = page.get_by_test_id("stMain").get_by_role("link", name="Open this run")
        expect(opener).to_be_visible()
        expect(page.get_by_role("button", name="Open this run")).to_have_count(0)
        opener.click()
        _expect_overview_of(page, out, rows)
        _expect_address_names(page, out)

        page.reload()
        _expect_overview_of(page, out, rows)
    finally:
        cancel_job(dirs["jobs"], running)


def test_a_wrong_token_shows_nothing_and_the_right_one_shows_the_overview(token_server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, dirs = token_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            app = page.get_by_test_id("stApp")
            pool_rows = page.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")
            token = page.get_by_label("Access token", exact=True)
            enter = page.get_by_role("button", name="Open the dashboard")

            page.goto(url)
            expect(token).to_be_visible(timeout=STEP_TIMEOUT_MS)
            token.fill("not-the-token")
            enter.click()
            expect(page.get_by_text("That is not the access token.")).to_be_visible(timeout=STEP_TIMEOUT_MS)
            expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS)
            assert page.get_by_test_id("stMetric").count() == 0
            assert page.get_by_test_id("stSidebarNav").count() == 0 and page.get_by_text("Run directory").count() == 0
            assert not (dirs["runs"] / "sample").exists()  # nothing was even curated
            page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)

            token.fill(TOKEN)
            enter.click()
            expect(pool_rows).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Balance").click()  # once per session
            expect(page.get_by_role("heading", name="Balance")).to_be_visible(timeout=STEP_TIMEOUT_MS)
            assert token.count() == 0
            assert page.get_by_test_id("stException").count() == 0

            page.reload()  # a new session: asked again, and nothing shown before
            expect(token).to_be_visible(timeout=STEP_TIMEOUT_MS)
            assert page.get_by_test_id("stMetric").count() == 0
        finally:
            browser.close()


def test_t_holds_across_pages_and_their_timers_and_names_every_export_exactly(
    server, curated, page, pool: Path, metadata: Path
) -> None:
    """The session's t survives pages that do not draw it, and their timers (the Jobs list and a running
    export redraw themselves); 0 and -5 become the smallest t with a warning instead of a red box;
    an export at t = 1e6 is named in full, and a refused export leaves no earlier result under the form."""
    from playwright.sync_api import expect

    from curation.jobs import cancel_job, start_job

    url, dirs = server
    app = page.get_by_test_id("stApp")
    kept = page.get_by_test_id("stMetric").filter(has_text="Kept pairs").get_by_test_id("stMetricValue")
    nav = page.get_by_test_id("stSidebarNav")

    def settled() -> None:
        expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS)

    def open_page(name: str) -> None:
        nav.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=name)).to_be_visible(timeout=STEP_TIMEOUT_MS)
        settled()

    def type_t(box, value: str) -> None:
        box.fill(value)
        box.press("Enter")

    page.goto(url)
    expect(page.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")).to_have_text(
        "30,000", timeout=FIRST_PAGE_TIMEOUT_MS
    )
    run = Run(dirs["runs"] / "sample")
    open_page("Balance")
    t_box = page.get_by_label("t", exact=True)
    wait_for_start_t(t_box, kept, run)
    for refused in ("0", "-5"):
        type_t(t_box, refused)
        expect(page.get_by_test_id("stAlertContentWarning")).to_contain_text(
            f"t must be a positive, finite number: {refused} became 0.001", timeout=STEP_TIMEOUT_MS
        )
        expect(t_box).to_have_value("0.001")
        expect(kept).to_have_text(f"{run.size_at(0.001):,}")
    type_t(t_box, "20000")
    expect(kept).to_have_text(f"{run.size_at(20000):,}", timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("stAlertContentWarning")).to_have_count(0)

    # Jobs, with a job running: its list redraws itself every 2 s. The test cancels the job; the card
    # saying so is drawn by one of those redraws.
    job = start_job(dirs["jobs"], RunRequest(str(pool), str(metadata), 40, 0, str(dirs["runs"] / "ticking"), workers=1))
    os.killpg(json.loads((dirs["jobs"] / job / "job.json").read_text())["pid"], signal.SIGSTOP)
    open_page("Jobs")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    cancel_job(dirs["jobs"], job)
    expect(page.get_by_test_id("stMain").get_by_text("cancelled", exact=False).first).to_be_visible(
        timeout=STEP_TIMEOUT_MS
    )

    # Export: the form starts at the session's t; an export at 1e6 is named in full and redraws itself
    # while it runs.
    open_page("Export")
    export_t = page.get_by_label("t", exact=True)
    expect(export_t).to_have_value("20000")
    type_t(export_t, "1e6")
    name_box = page.get_by_role("textbox", name="File name")
    expect(name_box).to_have_attribute("placeholder", "curated-t1000000-seed0", timeout=STEP_TIMEOUT_MS)
    settled()
    page.get_by_role("button", name="Export").click()
    success = page.get_by_test_id("stAlertContentSuccess")
    expect(success).to_contain_text(f"Wrote {run.size_at(1e6):,} pairs", timeout=STEP_TIMEOUT_MS)
    assert "curated-t1000000-seed0.parquet" in success.inner_text()
    name_box.fill("../elsewhere")
    name_box.press("Enter")
    settled()
    expect(success).to_have_count(0)  # the form names another file now: the old result is not shown
    page.get_by_role("button", name="Export").click()
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("export name '../elsewhere' refused")
    expect(success).to_have_count(0)
    expect(page.get_by_test_id("stDownloadButton")).to_have_count(0)

    open_page("Balance")
    expect(t_box).to_have_value("20000", timeout=STEP_TIMEOUT_MS)
    expect(kept).to_have_text(f"{run.size_at(20000):,}")
    assert page.get_by_test_id("stException").count() == 0


def test_the_coverage_page_shows_a_runs_gaps(server, curated, page, tmp_path: Path) -> None:
    """The sample with the gaps `curation gaps` found: the Coverage page shows the file's figures, the top
    k's exact coverage, the chart, the table, an example with its n-gram marked; a search narrows the table."""
    from playwright.sync_api import expect

    from curation.gaps import read_gaps

    url, dirs = server
    run_dir = dirs["runs"] / "sample"
    assert cli("gaps", run_dir, "--workers", 1, "--quiet") == 0
    found = read_gaps(run_dir / "gaps" / "gaps.parquet")
    rows, covered = found.table.num_rows, found.table.column("covered").to_pylist()
    first = found.table.column("ngram")[0].as_py()

    def metric(label: str):
        return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")

    page.goto(url)
    expect(metric("Pool rows")).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Coverage").click()
    expect(page.get_by_role("heading", name="Coverage")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(metric("Pairs read")).to_have_text(f"{found.summary['pairs_read']:,}", timeout=STEP_TIMEOUT_MS)
    expect(metric("Gaps found")).to_have_text(f"{found.summary['gaps']:,}")
    expect(metric("Covered by the chosen")).to_have_text(f"{found.summary['unmatched_covered']:,}")
    k = min(100, rows)
    expect(metric(f"Covered by the top {k}")).to_have_text(f"{covered[k - 1]:,}")
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)
    expect(page.get_by_text(f"{rows:,} of {rows:,} n-grams")).to_be_visible()
    expect(page.locator("mark").first).to_have_text(first)

    search = page.get_by_role("textbox", name="Search n-grams")
    search.fill(first.lower())
    search.press("Enter")
    narrowed = sum(first.lower() in n.lower() for n in found.table.column("ngram").to_pylist())
    expect(page.get_by_text(f"{narrowed:,} of {rows:,} n-grams")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS
    )
    page.screenshot(path=str(tmp_path / "coverage.png"), full_page=True)
    assert page.get_by_test_id("stException").count() == 0


def test_two_tabs_keep_their_own_runs_and_their_own_recent_runs(
    server, curated, page, pool: Path, metadata: Path
) -> None:
    """Tab A opens a run, tab B stays on the sample: a reload of either keeps its own, and B is never
    offered the run A opened (it lives outside the runs folder's top level)."""
    from playwright.sync_api import expect

    url, dirs = server
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    rows_of = {
        tab: tab.get_by_test_id("stMetric").filter(has_text="Pool rows").get_by_test_id("stMetricValue")
        for tab in (page, other)
    }
    page.goto(url)
    expect(rows_of[page]).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    from curation.jobs import start_job, wait

    out = dirs["runs"] / "mine" / "from-job"  # not a run of the runs folder's own list
    job = start_job(dirs["jobs"], RunRequest(str(pool), str(metadata), 40, 0, str(out), workers=1))
    assert wait(dirs["jobs"], job).state == "finished"
    rows = json.loads((out / "run.json").read_text())["rows"]["in"]

    box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Run directory")
    box.fill(str(out))
    box.press("Enter")
    _expect_overview_of(page, out, rows)
    _expect_address_names(page, out)

    other.goto(url)
    expect(rows_of[other]).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    _expect_address_names(other, dirs["runs"] / "sample")
    page.reload()
    _expect_overview_of(page, out, rows)
    other.reload()
    expect(rows_of[other]).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    other.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Recent runs").click()
    expect(other.get_by_role("option", name=str(dirs["runs"] / "sample"))).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(other.get_by_role("option", name=str(out))).to_have_count(0)
    assert other.get_by_test_id("stException").count() == 0 and page.get_by_test_id("stException").count() == 0


def test_compare_the_open_run_with_an_edited_one(server, curated, page, tmp_path: Path) -> None:
    """Compare: B typed in its box is read beside the open run, and its figures follow a new t."""
    from playwright.sync_api import expect

    import data_samples
    from curation.compare import compare_runs

    url, dirs = server
    entries = json.loads(Path(data_samples.METADATA).read_text())
    removed = set(entries[::1000])
    edited = dirs["runs"] / "edited"
    (tmp_path / "edited.json").write_text(json.dumps([e for e in entries if e not in removed]))
    assert (
        cli("run", "--pool", data_samples.POOL, "--metadata", tmp_path / "edited.json", "--t", 200, "--out", edited)
        == 0
    )

    def metric(label: str):
        return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")

    page.goto(url)
    expect(metric("Pool rows")).to_have_text("30,000", timeout=FIRST_PAGE_TIMEOUT_MS)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    box = page.get_by_role("textbox", name="Run B")
    box.fill(str(edited))
    box.press("Enter")
    expected = compare_runs(dirs["runs"] / "sample", edited, 200)
    expect(metric("Kept pairs (B)")).to_have_text(f"{expected.b.kept:,}", timeout=STEP_TIMEOUT_MS)
    expect(metric("Kept pairs (A)")).to_have_text(f"{expected.a.kept:,}")
    expect(metric("Only in A")).to_have_text(f"{len(removed):,}")
    expect(metric("Kept by A only")).to_have_text(f"{expected.pairs.kept_by_a_only:,}")
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS
    )

    t_box = page.get_by_label("t", exact=True)
    at_40 = compare_runs(dirs["runs"] / "sample", edited, 40)
    assert at_40.b.kept != expected.b.kept, "pick a t whose size differs, or the test proves nothing"
    t_box.fill("40")
    t_box.press("Enter")
    expect(metric("Kept pairs (B)")).to_have_text(f"{at_40.b.kept:,}", timeout=STEP_TIMEOUT_MS)
    expect(metric("Kept by B only")).to_have_text(f"{at_40.pairs.kept_by_b_only:,}")
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=STEP_TIMEOUT_MS
    )
    expect(metric("Kept pairs (B)")).to_have_text(f"{at_40.b.kept:,}")  # still so once the script has finished
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert page.get_by_test_id("stException").count() == 0
