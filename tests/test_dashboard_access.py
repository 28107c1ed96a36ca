"""The dashboard on a shared machine, through AppTest: the access token before any data, paths confined to
the roots (nothing written outside), at most CURATION_MAX_JOBS jobs, and Cancel then Resume."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import streamlit.config
from conftest import ENTRIES, cli, curated, dashboard_environment, make_texts, read_dir, texts_of, write_pool
from processes import group_members
from streamlit.testing.v1 import AppTest

from curation.jobs import list_jobs, wait

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
ENV = (
    "CURATION_RUNS_DIR",
    "CURATION_EXPORT_DIR",
    "CURATION_JOBS_DIR",
    "CURATION_DATA_ROOTS",
    "CURATION_DASHBOARD_TOKEN",
    "CURATION_DASHBOARD_REQUIRE_TOKEN",
    "CURATION_MAX_JOBS",
)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory):
    """Runs, exports and jobs in a temporary folder; default data roots (the sample and the runs)."""
    base = tmp_path_factory.mktemp("access")
    paths = {"runs": base / "runs", "exports": base / "exports", "jobs": base / "jobs", "outside": base / "outside"}
    paths["outside"].mkdir()
    settings = dict.fromkeys(ENV) | {
        "CURATION_RUNS_DIR": str(paths["runs"]),
        "CURATION_EXPORT_DIR": str(paths["exports"]),
        "CURATION_JOBS_DIR": str(paths["jobs"]),
    }
    with dashboard_environment(settings):
        yield paths


@pytest.fixture
def served(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    """Served on loopback unless a test says otherwise; the token settings are the test's to set."""
    streamlit.config.set_option("server.address", "127.0.0.1")
    for key in ("CURATION_DASHBOARD_TOKEN", "CURATION_DASHBOARD_REQUIRE_TOKEN", "CURATION_MAX_JOBS"):
        monkeypatch.delenv(key, raising=False)
    (dirs["runs"] / ".recent.json").unlink(missing_ok=True)
    return dirs


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_beyond_loopback_without_a_token_it_refuses_and_says_how_to_set_one(served: dict[str, Path]) -> None:
    streamlit.config.set_option("server.address", "0.0.0.0")  # read, never bound: AppTest serves nothing
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert any("CURATION_DASHBOARD_TOKEN" in e and "0.0.0.0" in e for e in texts_of(at.error))
    assert not at.metric and not at.text_input and not at.sidebar.text_input
    assert not (served["runs"] / "sample").exists()  # not even the sample was curated


@pytest.mark.slow
def test_beyond_loopback_a_wrong_token_shows_nothing_and_the_right_one_the_overview(
    served: dict[str, Path], monkeypatch
) -> None:
    streamlit.config.set_option("server.address", "0.0.0.0")
    monkeypatch.setenv("CURATION_DASHBOARD_TOKEN", "right-token")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [t.label for t in at.text_input] == ["Access token"] and not at.metric
    at.text_input(key="access_token").set_value("wrong-token")
    at.button[0].click().run()
    assert any("not the access token" in e.value for e in at.error)
    assert not at.metric and not at.sidebar.text_input
    at.text_input(key="access_token").set_value("right-token")
    at.button[0].click().run()
    assert not at.exception
    assert metrics(at)["Pool rows"] == "30,000" and "access_token" not in at.session_state
    at.switch_page("views/balance.py").run()  # once per session: every page, no second question
    assert "Kept pairs" in metrics(at)


def test_on_loopback_the_token_is_asked_only_when_required(served: dict[str, Path], monkeypatch) -> None:
    assert metrics(AppTest.from_file(APP, default_timeout=120).run())["Pool rows"] == "30,000"
    monkeypatch.setenv("CURATION_DASHBOARD_REQUIRE_TOKEN", "1")
    monkeypatch.setenv("CURATION_DASHBOARD_TOKEN", "right-token")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.metric and [t.label for t in at.text_input] == ["Access token"]


def start_from_the_form(at: AppTest, pool: str, metadata: str, out: str, t: float = 40, **fields: str) -> AppTest:
    """Fill the Jobs form and press Start; ``fields``: other text boxes of the form, by key."""
    at.switch_page("views/jobs.py").run()
    at.text_input(key="job_pool").set_value(pool)
    at.text_input(key="job_metadata").set_value(metadata)
    at.number_input(key="job_t").set_value(t)
    at.text_input(key="job_out").set_value(out)
    for key, value in fields.items():
        at.text_input(key=key).set_value(value)
    return at.button[0].click().run()


def errors(at: AppTest) -> list[str]:
    return texts_of(at.error)


def sample(name: str) -> str:
    return str(Path(APP).parents[1] / "data_samples" / name)


@pytest.mark.slow
def test_paths_outside_the_roots_are_refused_and_nothing_is_written(
    served: dict[str, Path], pool: Path, tmp_path: Path
) -> None:
    runs, outside = served["runs"], served["outside"]
    at = AppTest.from_file(APP, default_timeout=120).run()

    start_from_the_form(at, sample("pool"), sample("metadata.json"), str(outside / "new-run"))
    assert any("output directory" in e and "is outside" in e for e in errors(at)), errors(at)
    assert not (outside / "new-run").exists()

    (runs / "escape").symlink_to(outside, target_is_directory=True)  # inside the roots, pointing out
    start_from_the_form(at, sample("pool"), sample("metadata.json"), str(runs / "escape" / "via-link"))
    assert any("is outside" in e for e in errors(at)), errors(at)
    assert not (outside / "via-link").exists()

    start_from_the_form(at, str(pool), sample("metadata.json"), str(runs / "fine"))  # a pool out of the data roots
    assert any(f"pool {pool} is outside" in e for e in errors(at)), errors(at)
    assert not (runs / "fine").exists()
    assert list_jobs(served["jobs"]) == []

    run = outside / "run"  # a real run directory, outside the runs directory
    assert cli("run", "--pool", sample("pool"), "--metadata", sample("metadata.json"), "--t", 200, "--out", run) == 0
    for leftover in (run / "preview").rglob("*"):  # the dashboard would rebuild these if it opened the run
        if leftover.is_file():
            leftover.unlink()
    before = sorted(str(p) for p in run.rglob("*"))
    at.session_state["run_dir"] = str(run)
    at.switch_page("views/overview.py").run()
    assert not at.exception
    assert any(f"run directory {run} is outside" in e for e in errors(at)), errors(at)
    assert not at.metric and sorted(str(p) for p in run.rglob("*")) == before
    recent = runs / ".recent.json"
    assert not recent.exists() or str(run) not in json.loads(recent.read_text())

    served["exports"].mkdir(exist_ok=True)  # a symlink left in the export folder, named as the next export
    (served["exports"] / "evil.parquet").symlink_to(outside / "evil.parquet")
    at.session_state["run_dir"] = str(runs / "sample")
    at.switch_page("views/export.py").run()
    at.text_input(key="export_name").set_value("evil")
    at.radio(key="export_format").set_value("parquet")
    at.button[0].click().run()
    assert any("export" in e and "evil.parquet is outside" in e for e in errors(at)), errors(at)
    assert not (outside / "evil.parquet").exists() and list_jobs(served["jobs"]) == []


@pytest.mark.slow
@pytest.mark.timeout(600)  # its own waits: 120 s for the first shard, 180 s for the resumed job
def test_one_job_at_a_time_and_a_cancelled_run_resumes_to_the_same_result(served: dict[str, Path]) -> None:
    runs, jobs = served["runs"], served["jobs"]
    data = runs / "cancel-data"
    pool = write_pool(data / "pool", {"id": list(range(60_000)), "text": make_texts(60_000, seed=5)}, files=6)
    metadata = data / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    reference = served["outside"] / "reference"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--seed", 0, "--out", reference) == 0

    at = AppTest.from_file(APP, default_timeout=120).run()
    out = runs / "cancelled"
    start_from_the_form(at, str(pool), str(metadata), str(out))
    assert not errors(at), errors(at)
    [job] = list_jobs(jobs)
    group = json.loads((jobs / job.id / "job.json").read_text())["pid"]
    deadline = time.monotonic() + 120
    while not any((out / "shards").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(group, signal.SIGSTOP)  # mid-run, and held there: it cannot finish before Cancel
    markers = len(list((out / "shards").glob("*.json")))
    assert 0 < markers < 6 and not (out / "run.json").exists(), "the run was not caught mid-match"

    start_from_the_form(at, str(pool), str(metadata), str(runs / "second"))
    assert any("1 job(s) running already" in e and "CURATION_MAX_JOBS" in e for e in errors(at)), errors(at)
    assert len(list_jobs(jobs)) == 1 and not (runs / "second").exists()

    at.button(key=f"cancel-{job.id}").click().run()
    assert not at.exception
    assert group_members(group) == []
    [job] = list_jobs(jobs)
    assert job.state == "cancelled" and not (out / "run.json").exists()

    at.button(key=f"resume-{job.id}").click().run()
    assert not at.exception
    resumed = next(j for j in list_jobs(jobs) if j.id != job.id)
    assert wait(jobs, resumed.id, timeout_s=180).state == "finished"
    assert "resuming:" in (jobs / resumed.id / "log.txt").read_text()
    cancelled = next(j for j in list_jobs(jobs) if j.id == job.id)  # its card: where it stopped, and who went on
    assert cancelled.progress < 1 and cancelled.stage.endswith(f"the run was completed by job {resumed.id}")
    assert not cancelled.resumable
    for part in ("index", "thresholds/seed-0"):  # every pair's key and entry ids, and its k
        assert read_dir(out / part).equals(read_dir(reference / part)), part
    assert curated(out).num_rows > 0 and curated(out).equals(curated(reference))  # its manifest, every column
    assert pq.read_table(out / "entry_counts.parquet").equals(pq.read_table(reference / "entry_counts.parquet"))
