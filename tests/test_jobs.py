"""Background curation jobs: started, followed through files, refused when they would collide."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, write_pool
from processes import environment_once_set, group_members

from curation import Run
from curation.cli import build_parser
from curation.commands import RunRequest
from curation.jobs import (
    JobStatus,
    absolute,
    cancel_job,
    job_request,
    list_jobs,
    log_progress,
    log_tail,
    run_progress,
    start_job,
    wait,
)
from curation.mirror import check_output, exclusive, open_run
from studio_common.errors import CurationError


@pytest.mark.slow
def test_a_job_runs_to_completion(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs = tmp_path / "jobs"
    job_id = start_job(jobs, RunRequest(str(pool), str(metadata), 40, 2, str(tmp_path / "out"), workers=1))
    status = wait(jobs, job_id)
    assert status.state == "finished" and status.progress == 1.0 and status.error is None
    assert json.loads((tmp_path / "out" / "run.json").read_text())["parameters"] == {"t": 40.0, "seed": 2}
    assert Run(tmp_path / "out").size_at(40) > 0
    assert "run complete" in log_tail(jobs, job_id)
    assert [job.id for job in list_jobs(jobs)] == [job_id]


def test_an_exit_code_being_written_is_not_a_failure(tmp_path: Path) -> None:
    """The shell makes the exit code's file before it writes the code: a job whose file is still empty
    is running while its process lives (a test saw such a finished job reported failed), and the code
    is written aside and renamed, so a new job never shows the empty file at all."""
    jobs = tmp_path / "jobs"
    job_dir = jobs / "20260101-000000-abcdef"
    job_dir.mkdir(parents=True)
    record = {"id": job_dir.name, "kind": "run", "out": str(tmp_path / "out"), "pid": os.getpid()}
    extra = {"command": "python -m curation run", "started": "2026-01-01T00:00:00+00:00", "launched_ns": 1}
    (job_dir / "job.json").write_text(json.dumps({**record, **extra}))
    (job_dir / "exit_code").write_text("")
    assert [job.state for job in list_jobs(jobs)] == ["running"]
    (job_dir / "exit_code").write_text("0\n")
    assert [job.state for job in list_jobs(jobs)] == ["finished"]
    (job_dir / "exit_code").write_text("2\n")
    assert [job.state for job in list_jobs(jobs)] == ["failed"]


@pytest.mark.slow
def test_a_failed_job_shows_its_error(tmp_path: Path, pool: Path) -> None:
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps(["dog", "dog"]))
    jobs = tmp_path / "jobs"
    status = wait(jobs, start_job(jobs, RunRequest(str(pool), str(bad), 40, 0, str(tmp_path / "out"))))
    assert status.state == "failed"
    assert status.error.startswith("error:") and "duplicates entry 0" in status.error


def test_bad_requests_are_refused_before_starting(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs = tmp_path / "jobs"
    with pytest.raises(CurationError, match="pool not found"):
        start_job(jobs, RunRequest(str(tmp_path / "missing"), str(metadata), 40, 0, str(tmp_path / "out")))
    with pytest.raises(CurationError, match="metadata file not found"):
        start_job(jobs, RunRequest(str(pool), str(tmp_path / "none.json"), 40, 0, str(tmp_path / "out")))
    with pytest.raises(CurationError, match="is a directory; give the file in it"):
        start_job(jobs, RunRequest(str(pool), str(tmp_path), 40, 0, str(tmp_path / "out")))
    with pytest.raises(CurationError, match="positive"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 0, 0, str(tmp_path / "out")))
    assert list_jobs(jobs) == []


def test_an_output_that_cannot_be_a_run_directory_is_refused_before_starting(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    jobs, file = tmp_path / "jobs", tmp_path / "notes.md"
    file.write_text("mine")
    with pytest.raises(CurationError, match="notes.md is a file, not a run directory"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(file)))
    with pytest.raises(CurationError, match="cannot make the run directory .*below"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(file / "below")))
    assert list_jobs(jobs) == [] and file.read_text() == "mine"


def test_checking_a_new_output_leaves_no_folder(tmp_path: Path) -> None:
    check_output(str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_job_that_fails_before_its_plan_leaves_no_folder(tmp_path: Path, pool: Path) -> None:
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps(["dog", "dog"]))
    jobs, out = tmp_path / "jobs", tmp_path / "new" / "out"
    assert wait(jobs, start_job(jobs, RunRequest(str(pool), str(bad), 40, 0, str(out)))).state == "failed"
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_relative_paths_are_resolved_where_they_were_checked(
    tmp_path: Path, pool: Path, metadata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job runs from the project root; paths relative to the caller's folder must still mean the same files."""
    monkeypatch.chdir(tmp_path)
    jobs = tmp_path / "jobs"
    relative = [str(p.relative_to(tmp_path)) for p in (pool, metadata)]
    status = wait(jobs, start_job(jobs, RunRequest(relative[0], relative[1], 40, 0, "out", workers=1)))
    assert status.state == "finished", status
    assert status.out == str((tmp_path / "out").resolve())
    assert Run(tmp_path / "out").size_at(40) > 0
    assert f"--pool {pool}" in status.command and f"--metadata {metadata}" in status.command
    uri = "s3://bucket/pool/"
    assert absolute(uri) == uri and absolute("x/../y") == str(tmp_path / "y")


def test_a_second_job_on_a_busy_output_is_refused(tmp_path: Path, pool: Path, metadata: Path) -> None:
    out = tmp_path / "out"
    with exclusive(open_run(out)):
        with pytest.raises(CurationError, match="another curation process"):
            start_job(tmp_path / "jobs", RunRequest(str(pool), str(metadata), 40, 0, str(out)))


@pytest.mark.slow
def test_a_second_job_on_the_output_of_a_running_job_is_refused(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs, out = tmp_path / "jobs", str(tmp_path / "out")
    first = start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, out))
    # Paused before its interpreter can even start, so it is still running when the second job asks,
    # however fast the machine (a small run would otherwise race the check).
    group = json.loads((jobs / first / "job.json").read_text())["pid"]
    os.killpg(group, signal.SIGSTOP)
    try:
        assert [job.state for job in list_jobs(jobs)] == ["running"]
        with pytest.raises(CurationError, match=f"job {first} is already writing"):
            start_job(jobs, RunRequest(str(pool), str(metadata), 80, 0, out))
    finally:
        os.killpg(group, signal.SIGCONT)
    assert wait(jobs, first).state == "finished"


@pytest.mark.slow
def test_an_export_job_writes_the_manifest_and_reports_progress_from_its_log(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    from conftest import cli

    from curation.export import provenance_name
    from curation.jobs import start_export

    run_dir = tmp_path / "run"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--out", run_dir, "--shard-rows", 500) == 0
    jobs = tmp_path / "jobs"
    manifest = tmp_path / "exports" / "m.parquet"
    job_id = start_export(jobs, run_dir, manifest, 40, 0, "parquet", "img2dataset")
    status = wait(jobs, job_id)
    assert status.kind == "export" and status.state == "finished", status
    assert manifest.exists() and (tmp_path / "exports" / provenance_name(manifest.name)).exists()
    assert "export: 6 of 6" in log_progress(jobs, job_id)[1] and log_progress(jobs, job_id)[0] == 1.0
    with pytest.raises(CurationError, match="positive"):
        start_export(jobs, run_dir, manifest, 0, 0, "parquet", "img2dataset")


@pytest.mark.slow
def test_a_limit_on_running_jobs_and_cancel_stops_only_the_jobs_processes(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    import subprocess

    jobs = tmp_path / "jobs"
    first = start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "a"), workers=1), max_running=1)
    group = json.loads((jobs / first / "job.json").read_text())["pid"]
    os.killpg(group, signal.SIGSTOP)  # stays running whatever the machine's speed
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with pytest.raises(CurationError, match=r"1 job\(s\) running already, the most allowed at once \(1"):
            start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "b")), max_running=1)
        assert len(list_jobs(jobs)) == 1 and not (tmp_path / "b").exists()
        assert group_members(group)
        cancel_job(jobs, first)
        assert group_members(group) == []
        assert bystander.poll() is None  # another process of the same user is left alone
        status = list_jobs(jobs)[0]
        assert status.state == "cancelled" and "Resume continues the run" in status.stage
        with pytest.raises(CurationError, match="is not running \\(cancelled\\)"):
            cancel_job(jobs, first)
        second = start_job(
            jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "a"), workers=1), max_running=1
        )
        assert wait(jobs, second).state == "finished"  # the limit counts running jobs only; the run resumes
        assert Run(tmp_path / "a").size_at(40) > 0
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
def test_a_job_gets_no_dashboard_setting_and_its_log_hides_secret_values(
    tmp_path: Path, pool: Path, metadata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATION_DASHBOARD_TOKEN", "dashboard-token-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    jobs, out = tmp_path / "jobs", tmp_path / "aws-secret-value"  # a path that spells a secret: the log names it
    job_id = start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(out), workers=1))
    group = json.loads((jobs / job_id / "job.json").read_text())["pid"]
    environ = environment_once_set(group, f"CURATION_JOB_ID={job_id}".encode())
    assert not any(v.startswith(b"CURATION_DASHBOARD_") for v in environ)
    assert b"AWS_SECRET_ACCESS_KEY=aws-secret-value" in environ  # storage credentials still reach the run
    status = wait(jobs, job_id)
    assert status.state == "finished"
    assert f"run complete: {out}" in (jobs / job_id / "log.txt").read_text()  # the value was there to hide
    shown = log_tail(jobs, job_id, lines=100) + status.command
    assert "aws-secret-value" not in shown and "[$AWS_SECRET_ACCESS_KEY]" in shown


def pause(jobs: Path, job_id: str) -> int:
    """SIGSTOP a job's process group the moment it is started (before its interpreter can do anything,
    however fast the machine); returns the group, for SIGCONT."""
    group = json.loads((jobs / job_id / "job.json").read_text())["pid"]
    os.killpg(group, signal.SIGSTOP)
    return group


def by_id(jobs: Path) -> dict[str, JobStatus]:
    return {job.id: job for job in list_jobs(jobs)}


@pytest.mark.slow
def test_a_cancelled_job_keeps_where_it_was_and_names_the_job_that_took_it_up(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    """Issue 21, item 4: the card of a cancelled run read the run directory, so after Resume it said
    "cancelled at complete" with a full bar and still offered Resume."""
    jobs, out = tmp_path / "jobs", tmp_path / "out"
    assert cli("match", "--pool", pool, "--metadata", metadata, "--out", out) == 0  # matched, not balanced
    first = start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(out), workers=1))
    pause(jobs, first)
    cancel_job(jobs, first)
    where = run_progress(str(out))
    assert where[0] < 1 and where[1].startswith("keep thresholds: 0 of ")
    cancelled = by_id(jobs)[first]
    assert cancelled.state == "cancelled" and cancelled.resumable
    assert cancelled.progress == where[0]
    assert cancelled.stage == f"cancelled at {where[1]}; Resume continues the run from what it finished"

    second = start_job(jobs, RunRequest.from_record(job_request(jobs, first)))
    group = pause(jobs, second)
    try:
        assert [job.id for job in list_jobs(jobs)] == [second, first]  # newest first, within one second too
        cancelled = by_id(jobs)[first]
        assert cancelled.stage == f"cancelled at {where[1]}; resumed as job {second}" and not cancelled.resumable
    finally:
        os.killpg(group, signal.SIGCONT)
    assert wait(jobs, second).state == "finished" and run_progress(str(out)) == (1.0, "complete")
    cancelled, finished = by_id(jobs)[first], by_id(jobs)[second]
    assert (cancelled.progress, cancelled.state) == (where[0], "cancelled") and not cancelled.resumable
    assert cancelled.stage == f"cancelled at {where[1]}; the run was completed by job {second}"
    assert (finished.progress, finished.stage) == (1.0, "complete")


def write_pool_failing_at_its_second_file(directory: Path) -> Path:
    """Two Parquet files whose footers read well, the second with its captions' data pages overwritten:
    a run plans, matches the first file (and logs it), then fails on the second."""
    texts = ["a dog on the red sofa", "cat of new york city"] * 1000
    write_pool(directory, {"id": list(range(2000)), "text": texts})
    bad = directory / "part-001.parquet"
    pq.write_table(pa.table({"id": list(range(2000, 4000)), "text": texts}), bad, use_dictionary=False)
    column = pq.ParquetFile(bad).metadata.row_group(0).column(1)
    raw = bytearray(bad.read_bytes())
    start = column.data_page_offset + 100  # past the page header: the page is there, its bytes are not
    raw[start : column.data_page_offset + column.total_compressed_size - 20] = b"\xff" * (
        column.total_compressed_size - 120
    )
    bad.write_bytes(bytes(raw))
    return directory


@pytest.mark.slow
def test_a_failed_job_tells_how_far_it_got_not_how_far_its_output_is(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    """Issue 21, item 4: a job refused because its output holds another (complete) run showed
    "complete" and a full bar above its error."""
    jobs, other = tmp_path / "jobs", tmp_path / "other"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--out", other, "--shard-rows", 500) == 0
    refused = wait(jobs, start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(other))))
    assert refused.state == "failed" and "holds a run with other sharding" in refused.error
    assert (refused.progress, refused.stage) == (0.0, "failed before it started")
    assert run_progress(str(other)) == (1.0, "complete")  # what the card used to show

    broken = write_pool_failing_at_its_second_file(tmp_path / "broken")
    failed = wait(
        jobs, start_job(jobs, RunRequest(str(broken), str(metadata), 40, 0, str(tmp_path / "out"), workers=1))
    )
    assert failed.state == "failed" and "part-001.parquet" in failed.error
    assert (failed.progress, failed.stage) == (0.5, "failed at match: 2,000 of 4,000")  # its log's last line
    assert not failed.resumable and by_id(jobs)[refused.id].stage == "failed before it started"


def test_an_output_in_the_job_records_is_refused_before_starting(tmp_path: Path, pool: Path, metadata: Path) -> None:
    """Issue 21, item 9: a run written among the job records (runs/.jobs/x) would read as jobs."""
    jobs = tmp_path / "runs" / ".jobs"
    with pytest.raises(CurationError, match=r"output .*\.jobs/x is inside the job records \(.*\.jobs\)"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(jobs / "x")))
    with pytest.raises(CurationError, match=r"output .*runs holds the job records"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "runs")))
    assert list_jobs(jobs) == [] and not (jobs / "x").exists()


def write_texts_and_languages(directory: Path) -> tuple[Path, Path]:
    """A pool with two texts per image and a language column, and worldwide metadata (entry, language)."""
    pool = write_pool(
        directory / "pool",
        {
            "id": list(range(200)),
            "alt": ["a dog on a sofa" if i % 2 else "ein hund" for i in range(200)],
            "title": ["red cat" if i % 3 else "rote katze" for i in range(200)],
            "lang": ["en" if i % 2 else "de" for i in range(200)],
        },
    )
    metadata = directory / "metadata.parquet"
    entries = {"dog": "en", "sofa": "en", "cat": "en", "red": "en", "hund": "de", "katze": "de", "rote": "de"}
    pq.write_table(pa.table({"entry": list(entries), "language": list(entries.values())}), metadata)
    return pool, metadata


@pytest.mark.slow
def test_a_language_column_and_text_columns_reach_the_run_and_its_resume(tmp_path: Path) -> None:
    """Issue 21, item 9: the options of `curation run` for worldwide runs and several texts per image,
    kept in the job's request so that starting it again (Resume) repeats them."""
    pool, metadata = write_texts_and_languages(tmp_path)
    jobs, out = tmp_path / "jobs", tmp_path / "out"
    options = {"language_column": "lang", "text_columns": ["alt", "title"]}
    first = start_job(jobs, RunRequest(str(pool), str(metadata), 10, 0, str(out), workers=1, **options))
    pause(jobs, first)
    cancel_job(jobs, first)
    request = job_request(jobs, first)
    assert {key: request[key] for key in options} == options
    second = start_job(jobs, RunRequest.from_record(request))
    assert wait(jobs, second).state == "finished", log_tail(jobs, second)
    for job in list_jobs(jobs):
        assert "--language-column lang --text-columns alt,title" in job.command
    columns = json.loads((out / "plan.json").read_text())["columns"]
    assert (columns["texts"], columns["language"]) == (["alt", "title"], "lang")
    assert json.loads((out / "run.json").read_text())["matcher"] == "worldwide"


def test_text_columns_are_checked_before_starting_and_one_is_the_caption_column(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    jobs = tmp_path / "jobs"
    with pytest.raises(CurationError, match="column names separated by commas, got 'alt,'"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "out"), text_columns=["alt", ""]))
    with pytest.raises(CurationError, match="name a column twice: alt,alt"):
        start_job(jobs, RunRequest(str(pool), str(metadata), 40, 0, str(tmp_path / "out"), text_columns=["alt", "alt"]))
    assert list_jobs(jobs) == []
    parse = build_parser().parse_args
    one = parse(RunRequest("p", "m", 40, 0, "o", text_columns=("caption",)).arguments())
    two = parse(RunRequest("p", "m", 40, 0, "o", language_column="lang", text_columns=("a", "b")).arguments())
    assert (one.text_column, one.text_columns, one.language_column) == ("caption", None, None)
    assert (two.text_column, two.text_columns, two.language_column) == (None, ["a", "b"], "lang")


def test_a_run_writing_its_manifest_is_not_complete_until_the_manifest_is(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    """run.json says complete before the curated manifest is written; the card follows the manifest's
    parts until its provenance, written last, lands."""
    out = tmp_path / "run"
    args = ["--pool", pool, "--metadata", metadata, "--t", 40, "--seed", 2, "--shard-rows", 500]
    assert cli("run", *args, "--out", out, "--quiet") == 0
    manifest = next((out / "manifests").glob("curated-*.parquet"))
    parts = sorted(manifest.iterdir())
    assert len(parts) > 2 and run_progress(str(out), 2, 40) == (1.0, "complete")
    provenance = manifest.with_name(manifest.name + ".provenance.json")
    provenance.unlink()
    parts[0].unlink()
    progress, stage = run_progress(str(out), 2, 40)
    assert stage == f"writing the curated manifest: {len(parts) - 1} of {len(parts)} shards"
    assert 0.95 <= progress < 1.0
    assert run_progress(str(out), 2) == (1.0, "complete")  # without its t: the run itself
    assert cli("run", *args, "--out", out, "--quiet") == 0  # the same command finishes the manifest
    assert provenance.exists() and run_progress(str(out), 2, 40) == (1.0, "complete")
