"""Curation runs and manifest exports as background processes whose state lives in files, so that a
page reload (or a new dashboard process) finds every job with its progress, its log and its outcome.

    JOBS/<id>/job.json    the kind (run or export), the command, its output, the process id, when it started
    JOBS/<id>/log.txt     what the run printed (progress as plain lines: its stderr is not a terminal)
    JOBS/<id>/exit_code   written when the process ends
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from curation import mirror, storage
from curation.commands import curation_command, run_arguments
from curation.errors import CurationError
from curation.pool import resolve_files
from curation.progress import LINE
from curation.rundir import PART_GLOB, RunDir, atomic_write_json, read_json

_PROCESSES: dict[str, subprocess.Popen] = {}  # reaped on every look, so no zombie outlives a refresh


@dataclass(frozen=True)
class JobStatus:
    id: str
    out: str
    command: str
    kind: str  # run or export
    started: str
    state: str  # running, finished, failed, lost
    progress: float  # 0..1
    stage: str
    error: str | None


def _is_locked(out: Path) -> bool:
    """Whether a curation process holds this run directory right now."""
    lock = RunDir(out).lock
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def absolute(path: str) -> str:
    """A local path made absolute against the caller's working directory (a glob stays a glob), a URI
    as it is: jobs run from the project root, so the paths checked must be the paths passed."""
    return path if storage.is_uri(path) else os.path.abspath(os.path.expanduser(path))


def start_job(jobs_dir: Path, pool: str, metadata: str, t: float, seed: int, out: str,
              workers: int | None = None) -> str:
    """Check the request, then start `python -m curation run` in the background; returns the job id."""
    pool, metadata = absolute(pool), absolute(metadata)
    resolve_files(pool)  # a missing or empty pool is refused here, before anything starts
    if not storage.is_uri(metadata) and Path(metadata).is_dir():
        raise CurationError(f"metadata {metadata} is a directory; give the file in it (a JSON list, Parquet, "
                            "or one entry per line)")
    if not storage.is_uri(metadata) and not Path(metadata).is_file():  # a URI is checked by the run
        raise CurationError(f"metadata file not found: {metadata}; check the path")
    if not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    if storage.is_uri(out):  # a run directory in object storage: the run takes its lock object itself
        target = mirror.open_run(out).spec
    else:
        target = str(Path(absolute(out)).resolve())
        mirror.check_output(target)  # a file, or a folder that cannot be made: one line now, not a failed job
        if _is_locked(Path(target)):
            raise CurationError(f"another curation process is using {out}; wait for it or choose another output")
    _check_free(jobs_dir, target, out)
    return _launch(jobs_dir, run_arguments(pool, metadata, t, seed, target, workers), target, "run")


def start_export(jobs_dir: Path, run_dir: Path, path: Path, t: float, seed: int, file_format: str,
                 column_set: str) -> str:
    """Start `python -m curation export` in the background (a manifest of a billion pairs takes a while);
    returns the job id. The path is the caller's to check (the dashboard confines it)."""
    if not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    target = str(path.resolve())
    _check_free(jobs_dir, target, str(path))
    command = ["export", absolute(str(run_dir)), "--t", repr(float(t)), "--seed", str(int(seed)),
               "--format", file_format, "--columns", column_set, "--out", target]
    return _launch(jobs_dir, command, target, "export")


def _check_free(jobs_dir: Path, target: str, shown: str) -> None:
    for job in list_jobs(jobs_dir):
        if job.state == "running" and job.out == target:
            raise CurationError(f"job {job.id} is already writing {shown}; wait for it or choose another output")


def _launch(jobs_dir: Path, arguments: list[str], target: str, kind: str) -> str:
    """Run `python -m curation ARGUMENTS` detached, its output in the job's log, its exit code after."""
    job_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    job_dir = jobs_dir / job_id
    job_dir.mkdir(parents=True)
    command = curation_command(arguments)
    script = f"{shlex.join(command)} > {shlex.quote(str(job_dir / 'log.txt'))} 2>&1; " \
             f"echo $? > {shlex.quote(str(job_dir / 'exit_code'))}"
    process = subprocess.Popen(["sh", "-c", script], cwd=Path(__file__).resolve().parents[1],
                               start_new_session=True, stdin=subprocess.DEVNULL)
    _PROCESSES[job_id] = process
    atomic_write_json(job_dir / "job.json", {
        "id": job_id, "kind": kind, "out": str(target), "command": "python " + shlex.join(command[1:]),
        "pid": process.pid, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return job_id


def log_tail(jobs_dir: Path, job_id: str, lines: int = 12) -> str:
    """The last lines of a job's log, with progress-bar redraws (carriage returns) collapsed."""
    path = jobs_dir / job_id / "log.txt"
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        text = handle.read().decode("utf-8", errors="replace")
    shown = [line.split("\r")[-1] for line in text.split("\n")]
    return "\n".join([line for line in shown if line.strip()][-lines:])


def log_progress(jobs_dir: Path, job_id: str) -> tuple[float, str]:
    """How far a job has come, from the last progress line in its log ("export: 4 of 10 shards (40%)",
    as curation/progress.py writes them when stderr is a file)."""
    for line in reversed(log_tail(jobs_dir, job_id, lines=40).splitlines()):
        found = LINE.match(line.strip())
        if found:
            done, total = (int(found[name].replace(",", "")) for name in ("done", "total"))
            return (done / total if total else 0.0), f"{found['label']}: {found['done']} of {found['total']}"
    return 0.0, "starting"


def run_progress(out: str) -> tuple[float, str]:
    """How far a run directory has come, read from the files its stages leave (on disk or in a store)."""
    run = mirror.open_run(out, reading=True)
    if mirror.fetch(run, run.run_json) and read_json(run.run_json).get("status") == "complete":
        return 1.0, "complete"
    if not mirror.fetch(run, run.plan_json):
        return 0.0, "starting"
    shards = read_json(run.plan_json)["shards"]
    total = sum(shard["rows"] for shard in shards) or 1
    markers = mirror.names(run, run.shards)
    matched = sum(shard["rows"] for shard in shards if run.shard_marker(shard["index"]).name in markers)
    if matched < total or not mirror.has(run, run.entry_counts):
        return 0.8 * matched / total, f"matching: {matched:,} of {total:,} pairs"
    staged = _parts_being_selected(run)
    return 0.8 + 0.2 * staged / max(len(shards), 1), f"balancing: {staged} of {len(shards)} shards selected"


def _parts_being_selected(run: RunDir) -> int:
    """Curated parts written so far by a balance that has not finished (staging on disk; in a store,
    the folder of (t, seed) that the selection pointer does not name yet)."""
    if not run.source:
        return len(list(run.curated_staging.glob(PART_GLOB))) if run.curated_staging.exists() else 0
    current = read_json(run.curated_pointer).get("parts") \
        if mirror.fetch(run, run.curated_pointer) else None
    parts: dict[str, int] = {}
    for name in mirror.names(run, run.curated):
        folder, _, file = name.partition("/")
        if PurePosixPath(file).match(PART_GLOB) and folder != current:
            parts[folder] = parts.get(folder, 0) + 1
    return max(parts.values(), default=0)


def list_jobs(jobs_dir: Path) -> list[JobStatus]:
    """Every job, newest first, with its state read afresh."""
    statuses = []
    for job_file in sorted(jobs_dir.glob("*/job.json"), reverse=True) if jobs_dir.exists() else []:
        job = json.loads(job_file.read_text())
        process = _PROCESSES.get(job["id"])
        if process is not None and process.poll() is not None:
            _PROCESSES.pop(job["id"], None)
        exit_file = job_file.parent / "exit_code"
        error = None
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or 1)
            state = "finished" if code == 0 else "failed"
            if code != 0:
                tail = log_tail(jobs_dir, job["id"], lines=40).splitlines()
                errors = [line for line in tail if line.startswith("error:")]
                error = (errors or tail or [f"exit code {code}"])[-1]
        else:
            state = "running" if mirror.process_alive(job["pid"]) else "lost"
        progress, stage = run_progress(job["out"]) if job.get("kind", "run") == "run" \
            else log_progress(jobs_dir, job["id"])
        if state == "lost":
            stage = "the process ended without a word (killed?); start it again to resume"
        statuses.append(JobStatus(job["id"], job["out"], job["command"], job.get("kind", "run"), job["started"], state,
                                  1.0 if state == "finished" else progress, stage, error))
    return statuses


def wait(jobs_dir: Path, job_id: str, timeout_s: float = 120.0) -> JobStatus:
    """Block until a job ends (for tests and scripts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = next(job for job in list_jobs(jobs_dir) if job.id == job_id)
        if status.state != "running":
            return status
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still running after {timeout_s} s")
