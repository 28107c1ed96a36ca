"""The Jobs page through AppTest: each job's card tells that job's own story (issue 21, item 4), and the
form refuses outputs among the job records or onto the open run and passes a language column and text
columns through to the run and its Resume (item 9)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ENTRIES, cli, dashboard_environment, make_texts, texts_of, write_caption_pool
from streamlit.testing.v1 import AppTest
from test_dashboard_access import ENV, start_from_the_form
from test_jobs import pause, write_texts_and_languages

from curation.commands import RunRequest
from curation.jobs import JobStatus, cancel_job, job_request, list_jobs, run_progress, start_job, wait

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory):
    """Runs and exports in a temporary folder, the job records where the dashboard keeps them by default
    (runs/.jobs), the default data roots (the sample and the runs); served on loopback."""
    base = tmp_path_factory.mktemp("jobs-page")
    paths = {"runs": base / "runs", "exports": base / "exports"}
    settings = dict.fromkeys(ENV) | {
        "CURATION_RUNS_DIR": str(paths["runs"]),
        "CURATION_EXPORT_DIR": str(paths["exports"]),
    }
    with dashboard_environment(settings, "127.0.0.1"):
        yield paths | {"jobs": paths["runs"] / ".jobs"}


@pytest.fixture
def at(dirs: dict[str, Path]) -> AppTest:
    """A first visit (the session opens on the bundled sample), on the Jobs page."""
    (dirs["runs"] / ".recent.json").unlink(missing_ok=True)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page("views/jobs.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def sample(name: str) -> str:
    return str(Path(APP).parents[1] / "data_samples" / name)


def cards(at: AppTest, jobs: Path) -> dict[str, tuple[int, str]]:
    """Each job's progress bar as shown, (value 0-100, text without Markdown escapes), by job id: the
    cards are drawn in list_jobs' order, one bar each."""
    ids = [job.id for job in list_jobs(jobs)]
    bars = [(bar.value, re.sub(r"\\(.)", r"\1", bar.text)) for bar in at.progress]
    assert len(bars) == len(ids), bars
    return dict(zip(ids, bars, strict=True))


def has_resume(at: AppTest, job: JobStatus | str) -> bool:
    job_id = job if isinstance(job, str) else job.id
    try:
        at.button(key=f"resume-{job_id}")
    except KeyError:
        return False
    return True


def test_the_form_refuses_an_output_in_the_job_records_or_onto_the_open_run(at: AppTest, dirs: dict[str, Path]) -> None:
    """Item 9: both were accepted; a run started onto the open run rewrote what every page was reading."""
    runs, records = dirs["runs"], dirs["jobs"]
    open_run = at.session_state["run_dir"]
    assert Path(open_run) == runs / "sample" and (runs / "sample" / "run.json").exists()
    before = (runs / "sample" / "run.json").stat().st_mtime_ns
    refusals = [
        (records / "x", f"is inside the job records ({records})"),
        (open_run, "is the run open in this session; pick another output, or open another run first"),
        (f"{runs}/elsewhere/../sample/", "is the run open in this session"),  # another spelling of it
    ]
    for out, said in refusals:
        start_from_the_form(at, sample("pool"), sample("metadata.json"), str(out))
        assert not at.exception
        [error] = texts_of(at.error)
        assert said in error and "\n" not in error, error
        assert not at.success
    assert list_jobs(records) == [] and not (records / "x").exists()
    assert (runs / "sample" / "run.json").stat().st_mtime_ns == before


def test_the_form_says_parquet_and_explains_the_language_and_text_columns(at: AppTest) -> None:
    assert "Parquet" in at.text_input(key="job_metadata").label
    language, texts = at.text_input(key="job_language_column"), at.text_input(key="job_text_columns")
    assert "optional" in language.label and "optional" in texts.label
    assert "Worldwide runs" in language.help and "language" in language.help
    assert "Several texts per image, MetaCLIP 2 style" in texts.help and "separated by commas" in texts.help
    assert language.value == "" and texts.value == ""  # empty: the run's defaults


@pytest.mark.slow
def test_a_language_column_and_text_columns_go_to_the_run_and_resume_repeats_them(
    at: AppTest, dirs: dict[str, Path]
) -> None:
    """Item 9: the form had no field for either; Resume starts the job's kept request again."""
    runs, jobs = dirs["runs"], dirs["jobs"]
    pool, metadata = write_texts_and_languages(runs / "world-data")
    options = {"language_column": "lang", "text_columns": ["alt", "title"]}
    typed = {"job_language_column": "lang", "job_text_columns": " alt, title "}
    start_from_the_form(at, str(pool), str(metadata), str(runs / "world"), t=10, **typed)
    assert not at.exception and not at.error, texts_of(at.error)
    [started] = list_jobs(jobs)
    assert {key: job_request(jobs, started.id)[key] for key in options} == options
    assert wait(jobs, started.id).state == "finished"
    columns = json.loads((runs / "world" / "plan.json").read_text())["columns"]
    assert (columns["texts"], columns["language"]) == (["alt", "title"], "lang")

    stopped = start_job(jobs, RunRequest(str(pool), str(metadata), 10, 0, str(runs / "world-2"), workers=1, **options))
    pause(jobs, stopped)
    cancel_job(jobs, stopped)
    at.run()
    at.button(key=f"resume-{stopped}").click().run()
    assert not at.exception
    resumed = list_jobs(jobs)[0]
    assert resumed.id not in (started.id, stopped) and f"Resumed as job {resumed.id}." in texts_of(at.info)
    assert {key: job_request(jobs, resumed.id)[key] for key in options} == options
    assert "--language-column lang --text-columns alt,title" in resumed.command
    assert wait(jobs, resumed.id).state == "finished"
    assert json.loads((runs / "world-2" / "plan.json").read_text())["columns"]["texts"] == ["alt", "title"]


@pytest.mark.slow
def test_each_card_tells_its_own_jobs_story(at: AppTest, dirs: dict[str, Path]) -> None:
    """Item 4: cards read the run directory, so after Cancel then Resume the cancelled card said
    "cancelled at complete" with a full bar and a Resume button, and a job refused because its output
    holds another run showed "complete" and a full bar above its error."""
    runs, jobs = dirs["runs"], dirs["jobs"]
    pool = str(write_caption_pool(runs / "cards-data" / "pool", make_texts(3000)))  # inside the data roots
    metadata = runs / "cards-data" / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    metadata = str(metadata)
    out = runs / "cards"
    assert cli("match", "--pool", pool, "--metadata", metadata, "--out", out) == 0  # matched, not balanced
    first = start_job(jobs, RunRequest(pool, metadata, 40, 0, str(out), workers=1))
    pause(jobs, first)
    at.run()
    at.button(key=f"cancel-{first}").click().run()
    assert not at.exception
    where = run_progress(str(out))
    assert where[0] < 1
    said = f"cancelled at {where[1]}; "
    assert cards(at, jobs)[first] == (int(where[0] * 100), said + "Resume continues the run from what it finished")
    assert has_resume(at, first)

    at.button(key=f"resume-{first}").click().run()
    assert not at.exception
    second = list_jobs(jobs)[0].id
    assert second != first and not has_resume(at, first)  # resumed or completed by now: either way, no Resume
    assert wait(jobs, second).state == "finished"
    at.run()
    shown = cards(at, jobs)
    assert shown[first] == (int(where[0] * 100), said + f"the run was completed by job {second}")
    assert shown[second] == (100, "complete") and not has_resume(at, first)

    other = runs / "cards-other"  # holds another run (other sharding): a job onto it is refused by the run
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--out", other, "--shard-rows", 500) == 0
    start_from_the_form(at, pool, metadata, str(other))
    refused = list_jobs(jobs)[0]
    assert refused.id not in (first, second) and wait(jobs, refused.id).state == "failed"
    at.run()
    assert cards(at, jobs)[refused.id] == (0, "failed before it started")
    assert any("holds a run with other sharding" in e for e in texts_of(at.error)), texts_of(at.error)
