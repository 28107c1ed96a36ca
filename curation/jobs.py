"""Curation runs and manifest exports as background processes whose state lives in files, so that a
page reload (or a new dashboard process) finds every job with its progress, its log and its outcome.

    JOBS/<id>/job.json    the kind (run or export), the command, its output, the process id, when it started
    JOBS/<id>/log.txt     what the run printed (progress as plain lines: its stderr is not a terminal)
    JOBS/<id>/exit_code   written when the process ends
    JOBS/<id>/cancelled   written when the job is cancelled (its processes are stopped by their ids),
                          then given where the job was once they are stopped (its card shows that)

A job runs in its own process group, with CURATION_JOB_ID in its environment: Cancel stops that
group and only after finding the job's id in one of its processes (a recycled pid is never hit).

A job's card tells that job's story: a finished job is complete, a failed one got as far as its log
says, a cancelled one stays where it was when cancelled; only a running run reads its run directory.
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from curation.commands import RunRequest, check_text_columns, curation_command
from curation.mirror import process_alive
from curation.pool import resolve_files
from curation.rundir import RunDir, atomic_write_json, part_name, read_json
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
    resumable: bool = False  # a stopped run that no later job took up and that is not complete: Resume continues it


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


def start_job(jobs_dir: Path, request: RunRequest, max_running: int | None = None) -> str:
    """Check the request, then start `python -m curation run` in the background; returns the job id.
    With ``max_running``, refused while that many jobs run (the dashboard's limit; None: no limit).
    The job's record keeps the request as checked, for Resume."""
    pool, metadata = absolute(request.pool), absolute(request.metadata)
    resolve_files(pool)  # a missing or empty pool is refused here, before anything starts
    if not storage.is_uri(metadata) and Path(metadata).is_dir():
        raise CurationError(
            f"metadata {metadata} is a directory; give the file in it (a JSON list, Parquet, or one entry per line)"
        )
    if not storage.is_uri(metadata) and not Path(metadata).is_file():  # a URI is checked by the run
        raise CurationError(f"metadata file not found: {metadata}; check the path")
    if not request.t > 0:
        raise CurationError(f"t must be a positive number, got {request.t}")
    text_columns = tuple(name.strip() for name in request.text_columns)
    check_text_columns(text_columns)
    out = request.out
    if storage.is_uri(out):  # a run directory in object storage: the run takes its lock object itself
        target = RunDir.open(out).spec
    else:
        target = str(Path(absolute(out)).resolve())
        RunDir.check_output(target)  # a file, or a folder that cannot be made: one line now, not a failed job
        if _is_locked(Path(target)):
            raise CurationError(f"another curation process is using {out}; wait for it or choose another output")
    checked = replace(
        request,
        pool=pool,
        metadata=metadata,
        t=float(request.t),
        seed=int(request.seed),
        out=target,
        language_column=(request.language_column or "").strip() or None,
        text_columns=text_columns,
    )
    return _launch(jobs_dir, checked.arguments(), target, "run", out, max_running, checked.record())


def start_export(
    jobs_dir: Path,
    run_dir: Path,
    path: Path,
    t: float,
    seed: int,
    file_format: str,
    column_set: str | None,
    max_running: int | None = None,
    uid_column: str | None = None,
) -> str:
    """Start `python -m curation export` in the background (a manifest of a billion pairs takes a while);
    returns the job id. The path is the caller's to check (the dashboard confines it). ``column_set``
    None: the format's own (a DataComp subset file's uids, from ``uid_column``)."""
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
        *(["--columns", column_set] if column_set else []),
        *(["--uid-column", uid_column] if uid_column else []),
        "--out",
        target,
    ]
    return _launch(jobs_dir, command, target, "export", str(path), max_running)


def _check_outside_records(jobs_dir: Path, target: str, shown: str) -> None:
    """An output is never in the job records' folder, nor holds it: a run or a manifest written there
    would mix with the records (and a run's files would read as jobs, or a job's as a run)."""
    if storage.is_uri(target):
        return
    records, path = jobs_dir.resolve(), Path(target).resolve()
    if path == records or path.is_relative_to(records):
        raise CurationError(f"output {shown} is inside the job records ({records}); choose an output outside them")
    if records.is_relative_to(path):
        raise CurationError(f"output {shown} holds the job records ({records}); choose an output that does not")


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
        _check_outside_records(jobs_dir, target, shown)
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
        # The exit code appears whole (written aside, then renamed): a reader must never take the empty
        # file the shell has just made for a failure.
        exit_file, written = shlex.quote(str(job_dir / "exit_code")), shlex.quote(str(job_dir / ".exit_code"))
        script = (
            f"{shlex.join(command)} > {shlex.quote(str(job_dir / 'log.txt'))} 2>&1; "
            f"echo $? > {written} && mv {written} {exit_file}"
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
                "launched_ns": time.time_ns(),  # orders jobs started within the same second (ids name the second)
                **({"request": request} if request else {}),
            },
        )
    return job_id


def job_request(jobs_dir: Path, job_id: str) -> dict:
    """What a run job was asked (pool, metadata, t, seed, out, workers, language_column, text_columns):
    starting it again resumes the run."""
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
    stopped so leaves a run directory that the same request resumes (a run tolerates a kill anywhere).
    Once stopped, where the job was is kept in its record: its card says so whatever comes after."""
    job_dir = jobs_dir / job_id
    job = json.loads((job_dir / "job.json").read_text())
    state = next((j.state for j in list_jobs(jobs_dir) if j.id == job_id), "unknown")
    if state != "running":
        raise CurationError(f"job {job_id} is not running ({state}); nothing to cancel")
    marker = job_dir / "cancelled"
    at = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write_json(marker, {"at": at})  # first: an exit code written meanwhile reads as cancelled
    _stop(job_id, job_dir, int(job["pid"]), grace_s)
    progress, stage = _snapshot(jobs_dir, job)
    atomic_write_json(marker, {"at": at, "progress": progress, "stage": stage})


def _stop(job_id: str, job_dir: Path, group: int, grace_s: float) -> None:
    """SIGTERM, then SIGKILL, to a job's process group (its pid: started with start_new_session)."""
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


def _snapshot(jobs_dir: Path, job: dict) -> tuple[float, str]:
    """Where a stopped job is (what Resume starts from); its log's word when the run directory cannot
    be read now (a store out of reach): a cancel never fails after its processes are stopped."""
    try:
        return _live_progress(jobs_dir, job)
    except (CurationError, OSError, ValueError, KeyError):
        return log_progress(jobs_dir, job["id"])


def _cancelled_at(job_dir: Path) -> tuple[float, str] | None:
    """The snapshot cancel_job kept; None while it stops the processes, or for a job cancelled before
    snapshots were kept (its marker holds a bare time)."""
    try:
        kept = json.loads((job_dir / "cancelled").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or "stage" not in kept:
        return None
    return float(kept["progress"]), str(kept["stage"])


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


def _logged(jobs_dir: Path, job_id: str) -> tuple[float, str] | None:
    """The last progress line of a job's log ("export: 4 of 10 shards (40%)", as
    studio_common/progress.py writes them when stderr is a file), or None when it logged none. The
    runner's "resuming: 2 of 6 shards already matched" reads like one but is earlier jobs' work."""
    for line in reversed(log_tail(jobs_dir, job_id, lines=40).splitlines()):
        found = LINE.match(line.strip())
        if found and found["label"] != "resuming":
            done, total = (int(found[name].replace(",", "")) for name in ("done", "total"))
            return (done / total if total else 0.0), f"{found['label']}: {found['done']} of {found['total']}"
    return None


def log_progress(jobs_dir: Path, job_id: str) -> tuple[float, str]:
    """How far a job has come by its own log; "starting" before its first progress line."""
    return _logged(jobs_dir, job_id) or (0.0, "starting")


def _live_progress(jobs_dir: Path, job: dict) -> tuple[float, str]:
    """Where a job is now: a run by its run directory (what it and earlier jobs finished), an export
    by its log."""
    if _kind(job) == "run":
        request = job.get("request") or {}
        return run_progress(job["out"], int(request.get("seed", 0)), request.get("t"))
    return log_progress(jobs_dir, job["id"])


def run_progress(out: str, seed: int = 0, t: float | None = None) -> tuple[float, str]:
    """How far a run directory has come, read from the files its stages leave (on disk or in a store);
    ``seed``: the one the run balances with; ``t``: its t, when the run ends with its curated manifest
    (written after run.json says complete: its parts tell how far it is)."""
    run = RunDir.open(out, reading=True)
    if _is_complete(run):
        return _manifest_progress(run, seed, t) if t is not None else (1.0, "complete")
    if not run.fetch(run.plan_json):
        return 0.0, "starting"
    shards = run.shards()
    total = sum(shard.rows for shard in shards) or 1
    markers = run.names(run.shard_outputs)
    matched = sum(shard.rows for shard in shards if run.shard_marker(shard.index).name in markers)
    if matched < total or not run.has(run.entry_counts):
        return 0.8 * matched / total, f"matching: {matched:,} of {total:,} pairs"
    done = _parts_done(run, run.thresholds(seed), shards)
    if done < len(shards):
        return 0.8 + 0.15 * done / len(shards), f"keep thresholds: {done} of {len(shards)} shards"
    return 0.95, "writing the curated manifest"


def _manifest_progress(run: RunDir, seed: int, t: float) -> tuple[float, str]:
    from curation.export import provenance_name, run_manifest_name  # the dashboard has it imported

    name = run_manifest_name(t, seed)
    if run.has(run.manifests / provenance_name(name)):
        return 1.0, "complete"
    shards = run.shards()
    done = _parts_done(run, run.manifests / name, shards)
    return 0.95 + 0.05 * done / max(len(shards), 1), f"writing the curated manifest: {done} of {len(shards)} shards"


def _parts_done(run: RunDir, folder: Path, shards: list) -> int:
    """Shards whose part is in the folder (a part appears whole: its name says it is done)."""
    names = run.names(folder)
    return sum(1 for shard in shards if part_name(shard.index) in names)


def _is_complete(run: RunDir) -> bool:
    return run.fetch(run.run_json) and read_json(run.run_json).get("status") == "complete"


def _kind(job: dict) -> str:
    return job.get("kind", "run")  # records written before exports were jobs are runs


def _records(jobs_dir: Path) -> list[dict]:
    """Every job's record, newest first: by when it was launched (an id names only its second), then id."""
    files = jobs_dir.glob("*/job.json") if jobs_dir.exists() else []
    records = [json.loads(file.read_text()) for file in files]
    return sorted(records, key=lambda job: (job.get("launched_ns", 0), job["id"]), reverse=True)


def _outcome(jobs_dir: Path, job: dict) -> tuple[str, str | None]:
    """(state, error) from the files a job left and whether its process lives."""
    job_dir = jobs_dir / job["id"]
    process = _PROCESSES.get(job["id"])
    if process is not None and process.poll() is not None:
        _PROCESSES.pop(job["id"], None)
    cancelled = (job_dir / "cancelled").exists()
    exit_file = job_dir / "exit_code"
    written = exit_file.read_text().strip() if exit_file.exists() else ""
    if not written:  # no exit code yet (a job started before it was written whole may show an empty file)
        if process_alive(job["pid"]):
            return "running", None
        return ("cancelled" if cancelled else "lost"), None
    code = int(written) if written.lstrip("-").isdigit() else 1
    if code == 0:
        return "finished", None
    if cancelled:
        return "cancelled", None
    tail = log_tail(jobs_dir, job["id"], lines=40).splitlines()
    errors = [line for line in tail if line.startswith("error:")]
    return "failed", (errors or tail or [f"exit code {code}"])[-1]


def _same_run(request: dict | None, other: dict | None) -> bool:
    """Whether two requests make the same run (the number of workers aside)."""
    if request is None or other is None:
        return False
    first, second = (replace(RunRequest.from_record(record), workers=None) for record in (request, other))
    return first == second


def _taken_up(job: dict, later: list[tuple[dict, str]]) -> str | None:
    """What became of a stopped run after it: completed by a later job on its output, or resumed by a
    later job with its request (the first of each); None when nothing took it up."""
    after = [(other, state) for other, state in reversed(later) if _kind(other) == "run" and other["out"] == job["out"]]
    completed = next((other for other, state in after if state == "finished"), None)
    if completed is not None:
        return f"the run was completed by job {completed['id']}"
    resumed = next((other for other, _ in after if _same_run(other.get("request"), job.get("request"))), None)
    return f"resumed as job {resumed['id']}" if resumed is not None else None


def _completed_since(out: str) -> bool:
    """Whether a stopped run's directory holds a complete run now (finished outside these jobs, or just
    before the cancel took); a directory that cannot be read now is not complete."""
    try:
        return _is_complete(RunDir.open(out, reading=True))
    except (CurationError, OSError, ValueError):
        return False


def _own_progress(jobs_dir: Path, job: dict, state: str) -> tuple[float, str]:
    """How far the job itself came: live while it runs, complete once finished, else by its own record
    (the snapshot cancel_job kept, or its log: "at match: 3 of 6", or "before it started"), never by
    the run directory that later jobs go on with."""
    if state == "running":
        return _live_progress(jobs_dir, job)
    if state == "finished":
        return 1.0, "complete"
    kept = _cancelled_at(jobs_dir / job["id"]) if state == "cancelled" else None
    progress, stage = kept or _logged(jobs_dir, job["id"]) or (0.0, "starting")
    return (0.0, "before it started") if stage == "starting" else (progress, f"at {stage}")


_STOPPED = {"failed": "failed", "cancelled": "cancelled", "lost": "the process ended without a word (killed?)"}


def _story(job: dict, later: list[tuple[dict, str]]) -> tuple[str, bool]:
    """What became of a stopped job, said after its stage, and whether Resume may continue it."""
    if _kind(job) != "run" or job.get("request") is None:
        return ("export again to write it" if _kind(job) == "export" else "start it again"), False
    taken_up = _taken_up(job, later)
    if taken_up is None and _completed_since(job["out"]):
        taken_up = "its run directory holds a complete run now"
    return taken_up or "Resume continues the run from what it finished", taken_up is None


def _status(jobs_dir: Path, job: dict, state: str, error: str | None, later: list[tuple[dict, str]]) -> JobStatus:
    progress, stage = _own_progress(jobs_dir, job, state)
    resumable = False
    if state in _STOPPED:
        stage = f"{_STOPPED[state]} {stage}"
    if state in ("cancelled", "lost"):
        sequel, resumable = _story(job, later)
        stage = f"{stage}; {sequel}"
    return JobStatus(
        id=job["id"],
        out=job["out"],
        command=redact(job["command"]),
        kind=_kind(job),
        started=job["started"],
        state=state,
        progress=progress,
        stage=stage,
        error=error,
        resumable=resumable,
    )


def list_jobs(jobs_dir: Path) -> list[JobStatus]:
    """Every job, newest first, with its state read afresh and its card's story: what it did itself,
    and for a stopped run, what later jobs on its output made of it."""
    records = _records(jobs_dir)
    states = [_outcome(jobs_dir, job) for job in records]
    later = [(job, state) for job, (state, _) in zip(records, states, strict=True)]
    return [
        _status(jobs_dir, job, state, error, later[:index])
        for index, (job, (state, error)) in enumerate(zip(records, states, strict=True))
    ]


def wait(jobs_dir: Path, job_id: str, timeout_s: float = 120.0) -> JobStatus:
    """Block until a job ends (for tests and scripts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = next(job for job in list_jobs(jobs_dir) if job.id == job_id)
        if status.state != "running":
            return status
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still running after {timeout_s} s")
