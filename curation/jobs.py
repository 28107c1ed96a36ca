"""Curation runs and manifest exports as background processes whose state lives in files, so that a
page reload (or a new dashboard process) finds every job with its progress, its log and its outcome.

    JOBS/<id>/job.json    the kind (run or export), the command, its output, the process id, when it started
    JOBS/<id>/log.txt     what the run printed (progress as plain lines: its stderr is not a terminal)
    JOBS/<id>/exit_code   written when the process ends
    JOBS/<id>/cancelled   written when the job is cancelled (its processes are stopped by their ids)

A job runs in its own process group, with CURATION_JOB_ID in its environment: Cancel stops that
group and only after finding the job's id in one of its processes (a recycled pid is never hit).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from curation import mirror
from curation.commands import curation_command, run_arguments
from curation.pool import resolve_files
from curation.rundir import PART_GLOB, RunDir, atomic_write_json, read_json
from studio_common import storage
from studio_common.errors import CurationError
from studio_common.progress import LINE

_PROCESSES: dict[str, subprocess.Popen] = {}  # reaped on every look, so no zombie outlives a refresh
JOB_ID_ENV = "CURATION_JOB_ID"
HIDDEN_PREFIX = "CURATION_DASHBOARD_"  # the dashboard's own settings (its access token): never a job's
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|(^|_)KEY(_|$)|ACCESS_KEY|AUTH", re.IGNORECASE
)
CANCEL_GRACE_S = 10.0  # between SIGTERM and SIGKILL


@dataclass(frozen=True)
class JobStatus:
    id: str
    out: str
    command: str
    kind: str  # run or export
    started: str
    state: str  # running, finished, failed, cancelled, lost
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


def start_job(
    jobs_dir: Path,
    pool: str,
    metadata: str,
    t: float,
    seed: int,
    out: str,
    workers: int | None = None,
    max_running: int | None = None,
) -> str:
    """Check the request, then start `python -m curation run` in the background; returns the job id.
    With ``max_running``, refused while that many jobs run (the dashboard's limit; None: no limit)."""
    pool, metadata = absolute(pool), absolute(metadata)
    resolve_files(pool)  # a missing or empty pool is refused here, before anything starts
    if not storage.is_uri(metadata) and Path(metadata).is_dir():
        raise CurationError(
            f"metadata {metadata} is a directory; give the file in it (a JSON list, Parquet, or one entry per line)"
        )
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
    request = {"pool": pool, "metadata": metadata, "t": float(t), "seed": int(seed), "out": target, "workers": workers}
    return _launch(
        jobs_dir, run_arguments(pool, metadata, t, seed, target, workers), target, "run", out, max_running, request
    )


def start_export(
    jobs_dir: Path,
    run_dir: Path,
    path: Path,
    t: float,
    seed: int,
    file_format: str,
    column_set: str,
    max_running: int | None = None,
) -> str:
    """Start `python -m curation export` in the background (a manifest of a billion pairs takes a while);
    returns the job id. The path is the caller's to check (the dashboard confines it)."""
    if not t > 0:
        raise CurationError(f"t must be a positive number, got {t}")
    target = str(path.resolve())
    command = [
        "export",
        absolute(str(run_dir)),
        "--t",
        repr(float(t)),
        "--seed",
        str(int(seed)),
        "--format",
        file_format,
        "--columns",
        column_set,
        "--out",
        target,
    ]
    return _launch(jobs_dir, command, target, "export", str(path), max_running)


def _check_free(jobs_dir: Path, target: str, shown: str) -> None:
    for job in list_jobs(jobs_dir):
        if job.state == "running" and job.out == target:
            raise CurationError(f"job {job.id} is already writing {shown}; wait for it or choose another output")


def _launch(
    jobs_dir: Path,
    arguments: list[str],
    target: str,
    kind: str,
    shown: str,
    max_running: int | None = None,
    request: dict | None = None,
) -> str:
    """Run `python -m curation ARGUMENTS` detached, its output in the job's log, its exit code after.
    The checks for a free output and the limit hold a lock, so two sessions cannot both pass them."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    with open(jobs_dir / ".launch.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _check_free(jobs_dir, target, shown)
        running = [job.id for job in list_jobs(jobs_dir) if job.state == "running"]
        if max_running is not None and len(running) >= max_running:
            raise CurationError(
                f"{len(running)} job(s) running already, the most allowed at once ({max_running}, "
                "CURATION_MAX_JOBS); wait for one to end or cancel it"
            )
        job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        job_dir = jobs_dir / job_id
        job_dir.mkdir(parents=True)
        command = curation_command(arguments)
        script = (
            f"{shlex.join(command)} > {shlex.quote(str(job_dir / 'log.txt'))} 2>&1; "
            f"echo $? > {shlex.quote(str(job_dir / 'exit_code'))}"
        )
        env = {name: value for name, value in os.environ.items() if not name.startswith(HIDDEN_PREFIX)}
        process = subprocess.Popen(
            ["sh", "-c", script],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            env={**env, JOB_ID_ENV: job_id},
        )
        _PROCESSES[job_id] = process
        atomic_write_json(
            job_dir / "job.json",
            {
                "id": job_id,
                "kind": kind,
                "out": str(target),
                "command": "python " + shlex.join(command[1:]),
                "pid": process.pid,
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                **({"request": request} if request else {}),
            },
        )
    return job_id


def job_request(jobs_dir: Path, job_id: str) -> dict:
    """What a run job was asked (pool, metadata, t, seed, out, workers): starting it again resumes the run."""
    request = json.loads((jobs_dir / job_id / "job.json").read_text()).get("request")
    if request is None:
        raise CurationError(f"job {job_id} is not a curation run that can be resumed")
    return request


def _group(pgid: int) -> list[int]:
    """The live processes of a process group (from /proc; zombies are dead)."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_bytes().rpartition(b")")[2].split()
            except OSError:
                continue
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
                members.append(int(entry.name))
    return members


def _is_the_jobs(pid: int, job_id: str, job_dir: Path) -> bool:
    """Whether a process belongs to this job: its id in the environment, or (the shell that started
    it) the job's folder on its command line."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f"{JOB_ID_ENV}={job_id}".encode() in environ or str(job_dir).encode() in command


def cancel_job(jobs_dir: Path, job_id: str, grace_s: float = CANCEL_GRACE_S) -> None:
    """Stop a running job: SIGTERM (and SIGCONT, for a stopped one) to its process group, SIGKILL after
    ``grace_s``. Only a group in which one process is found to be the job's is signalled. A run
    stopped so leaves a run directory that the same request resumes (a run tolerates a kill anywhere)."""
    job_dir = jobs_dir / job_id
    job = json.loads((job_dir / "job.json").read_text())
    state = next((j.state for j in list_jobs(jobs_dir) if j.id == job_id), "unknown")
    if state != "running":
        raise CurationError(f"job {job_id} is not running ({state}); nothing to cancel")
    (job_dir / "cancelled").write_text(datetime.now(UTC).isoformat(timespec="seconds"))
    group = int(job["pid"])  # started with start_new_session: its pid is its process group's id
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if not any(_is_the_jobs(pid, job_id, job_dir) for pid in _group(group)):
            break  # gone already, or the group is someone else's now
        try:
            os.killpg(group, sig)
            if sig == signal.SIGTERM:
                os.killpg(group, signal.SIGCONT)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while _group(group) and time.monotonic() < deadline:
            time.sleep(0.05)
    process = _PROCESSES.pop(job_id, None)
    if process is not None:
        process.wait(timeout=10)


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """``text`` with the value of every secret-looking environment variable (a token, key, password...)
    replaced by its name: what a job printed is shown in the browser."""
    env = os.environ if env is None else env
    for name, value in sorted(env.items(), key=lambda item: -len(item[1])):
        if len(value) >= 4 and SECRET_NAME.search(name):
            text = text.replace(value, f"[${name}]")
    return text


def log_tail(jobs_dir: Path, job_id: str, lines: int = 12) -> str:
    """The last lines of a job's log, with progress-bar redraws (carriage returns) collapsed and secret
    values hidden (``redact``)."""
    path = jobs_dir / job_id / "log.txt"
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        text = handle.read().decode("utf-8", errors="replace")
    shown = [line.split("\r")[-1] for line in redact(text).split("\n")]
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
    current = read_json(run.curated_pointer).get("parts") if mirror.fetch(run, run.curated_pointer) else None
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
        cancelled = (job_file.parent / "cancelled").exists()
        error = None
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or 1)
            state = "finished" if code == 0 else "cancelled" if cancelled else "failed"
            if state == "failed":
                tail = log_tail(jobs_dir, job["id"], lines=40).splitlines()
                errors = [line for line in tail if line.startswith("error:")]
                error = (errors or tail or [f"exit code {code}"])[-1]
        elif mirror.process_alive(job["pid"]):
            state = "running"
        else:
            state = "cancelled" if cancelled else "lost"
        progress, stage = (
            run_progress(job["out"]) if job.get("kind", "run") == "run" else log_progress(jobs_dir, job["id"])
        )
        if state == "lost":
            stage = "the process ended without a word (killed?); start it again to resume"
        elif state == "cancelled":
            stage = f"cancelled at {stage}; " + (
                "Resume continues the run from what it finished" if job.get("request") else "export again to write it"
            )
        statuses.append(
            JobStatus(
                job["id"],
                job["out"],
                redact(job["command"]),
                job.get("kind", "run"),
                job["started"],
                state,
                1.0 if state == "finished" else progress,
                stage,
                error,
            )
        )
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
