"""Background curation jobs: started, followed through files, refused when they would collide."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from processes import environment_once_set, group_members

from curation import Run
from curation.jobs import absolute, list_jobs, log_progress, log_tail, start_job, wait
from curation.mirror import check_output, exclusive, open_run
from studio_common.errors import CurationError


@pytest.mark.slow
def test_a_job_runs_to_completion(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs = tmp_path / "jobs"
    job_id = start_job(jobs, str(pool), str(metadata), 40, 2, str(tmp_path / "out"), workers=1)
    status = wait(jobs, job_id)
    assert status.state == "finished" and status.progress == 1.0 and status.error is None
    assert json.loads((tmp_path / "out" / "run.json").read_text())["parameters"] == {"t": 40.0, "seed": 2}
    assert Run(tmp_path / "out").size_at(40) > 0
    assert "run complete" in log_tail(jobs, job_id)
    assert [job.id for job in list_jobs(jobs)] == [job_id]


@pytest.mark.slow
def test_a_failed_job_shows_its_error(tmp_path: Path, pool: Path) -> None:
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps(["dog", "dog"]))
    jobs = tmp_path / "jobs"
    status = wait(jobs, start_job(jobs, str(pool), str(bad), 40, 0, str(tmp_path / "out")))
    assert status.state == "failed"
    assert status.error.startswith("error:") and "duplicates entry 0" in status.error


def test_bad_requests_are_refused_before_starting(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs = tmp_path / "jobs"
    with pytest.raises(CurationError, match="pool not found"):
        start_job(jobs, str(tmp_path / "missing"), str(metadata), 40, 0, str(tmp_path / "out"))
    with pytest.raises(CurationError, match="metadata file not found"):
        start_job(jobs, str(pool), str(tmp_path / "none.json"), 40, 0, str(tmp_path / "out"))
    with pytest.raises(CurationError, match="is a directory; give the file in it"):
        start_job(jobs, str(pool), str(tmp_path), 40, 0, str(tmp_path / "out"))
    with pytest.raises(CurationError, match="positive"):
        start_job(jobs, str(pool), str(metadata), 0, 0, str(tmp_path / "out"))
    assert list_jobs(jobs) == []


def test_an_output_that_cannot_be_a_run_directory_is_refused_before_starting(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    jobs, file = tmp_path / "jobs", tmp_path / "notes.md"
    file.write_text("mine")
    with pytest.raises(CurationError, match="notes.md is a file, not a run directory"):
        start_job(jobs, str(pool), str(metadata), 40, 0, str(file))
    with pytest.raises(CurationError, match="cannot make the run directory .*below"):
        start_job(jobs, str(pool), str(metadata), 40, 0, str(file / "below"))
    assert list_jobs(jobs) == [] and file.read_text() == "mine"


def test_checking_a_new_output_leaves_no_folder(tmp_path: Path) -> None:
    check_output(str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_job_that_fails_before_its_plan_leaves_no_folder(tmp_path: Path, pool: Path) -> None:
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps(["dog", "dog"]))
    jobs, out = tmp_path / "jobs", tmp_path / "new" / "out"
    assert wait(jobs, start_job(jobs, str(pool), str(bad), 40, 0, str(out))).state == "failed"
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_relative_paths_are_resolved_where_they_were_checked(
    tmp_path: Path, pool: Path, metadata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job runs from the project root; paths relative to the caller's folder must still mean the same files."""
    monkeypatch.chdir(tmp_path)
    jobs = tmp_path / "jobs"
    relative = [str(p.relative_to(tmp_path)) for p in (pool, metadata)]
    status = wait(jobs, start_job(jobs, relative[0], relative[1], 40, 0, "out", workers=1))
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
            start_job(tmp_path / "jobs", str(pool), str(metadata), 40, 0, str(out))


@pytest.mark.slow
def test_a_second_job_on_the_output_of_a_running_job_is_refused(tmp_path: Path, pool: Path, metadata: Path) -> None:
    jobs, out = tmp_path / "jobs", str(tmp_path / "out")
    first = start_job(jobs, str(pool), str(metadata), 40, 0, out)
    # Paused before its interpreter can even start, so it is still running when the second job asks,
    # however fast the machine (a small run would otherwise race the check).
    group = json.loads((jobs / first / "job.json").read_text())["pid"]
    os.killpg(group, signal.SIGSTOP)
    try:
        assert [job.state for job in list_jobs(jobs)] == ["running"]
        with pytest.raises(CurationError, match=f"job {first} is already writing"):
            start_job(jobs, str(pool), str(metadata), 80, 0, out)
    finally:
        os.killpg(group, signal.SIGCONT)
    assert wait(jobs, first).state == "finished"


@pytest.mark.slow
def test_an_export_job_writes_the_manifest_and_reports_progress_from_its_log(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    from conftest import cli

    from curation.jobs import start_export

    run_dir = tmp_path / "run"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--out", run_dir, "--shard-rows", 500) == 0
    jobs = tmp_path / "jobs"
    manifest = tmp_path / "exports" / "m.parquet"
    job_id = start_export(jobs, run_dir, manifest, 40, 0, "parquet", "img2dataset")
    status = wait(jobs, job_id)
    assert status.kind == "export" and status.state == "finished", status
    assert manifest.exists() and (tmp_path / "exports" / "m.provenance.json").exists()
    assert "export: 6 of 6" in log_progress(jobs, job_id)[1] and log_progress(jobs, job_id)[0] == 1.0
    with pytest.raises(CurationError, match="positive"):
        start_export(jobs, run_dir, manifest, 0, 0, "parquet", "img2dataset")


@pytest.mark.slow
def test_a_limit_on_running_jobs_and_cancel_stops_only_the_jobs_processes(
    tmp_path: Path, pool: Path, metadata: Path
) -> None:
    import subprocess

    from curation.jobs import cancel_job

    jobs = tmp_path / "jobs"
    first = start_job(jobs, str(pool), str(metadata), 40, 0, str(tmp_path / "a"), workers=1, max_running=1)
    group = json.loads((jobs / first / "job.json").read_text())["pid"]
    os.killpg(group, signal.SIGSTOP)  # stays running whatever the machine's speed
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with pytest.raises(CurationError, match=r"1 job\(s\) running already, the most allowed at once \(1"):
            start_job(jobs, str(pool), str(metadata), 40, 0, str(tmp_path / "b"), max_running=1)
        assert len(list_jobs(jobs)) == 1 and not (tmp_path / "b").exists()
        assert group_members(group)
        cancel_job(jobs, first)
        assert group_members(group) == []
        assert bystander.poll() is None  # another process of the same user is left alone
        status = list_jobs(jobs)[0]
        assert status.state == "cancelled" and "Resume continues the run" in status.stage
        with pytest.raises(CurationError, match="is not running \\(cancelled\\)"):
            cancel_job(jobs, first)
        second = start_job(jobs, str(pool), str(metadata), 40, 0, str(tmp_path / "a"), workers=1, max_running=1)
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
    job_id = start_job(jobs, str(pool), str(metadata), 40, 0, str(out), workers=1)
    group = json.loads((jobs / job_id / "job.json").read_text())["pid"]
    environ = environment_once_set(group, f"CURATION_JOB_ID={job_id}".encode())
    assert not any(v.startswith(b"CURATION_DASHBOARD_") for v in environ)
    assert b"AWS_SECRET_ACCESS_KEY=aws-secret-value" in environ  # storage credentials still reach the run
    status = wait(jobs, job_id)
    assert status.state == "finished"
    assert f"run complete: {out}" in (jobs / job_id / "log.txt").read_text()  # the value was there to hide
    shown = log_tail(jobs, job_id, lines=100) + status.command
    assert "aws-secret-value" not in shown and "[$AWS_SECRET_ACCESS_KEY]" in shown
