"""Run directories in object storage (docs/design.md, "Run directories in object storage").

A run directory named by a URI (``s3://bucket/runs/laion``) lives in the store; every process that
works on it (the driver, a local worker, a Ray task on another node) keeps a local copy of the
files it touches under its cache folder, runs the same stage code on local paths, and publishes
what it wrote as objects. The rules that make that safe without rename or flock:

- An object is PUT whole (a finished local file uploaded in one piece), so it exists complete or
  not at all; a shard's marker is published after its outputs, and a resumed run trusts the store,
  never a local copy: ``fetch`` checks the object (size and time) before every use.
- One writer at a time: a lock object created only if absent (``If-None-Match: *``), with the
  holder's host, pid and a lease renewed while the run lives; a lease that ran out, or a holder on
  this host whose process is gone, may be taken over (``If-Match`` on what was read).

For a local run directory every function here is a no-op or the plain file operation, so callers
have one code path.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pyarrow.fs as pafs

from curation.rundir import LOCK_NAME, RunDir, atomic_file
from studio_common import storage
from studio_common.errors import CurationError
from studio_common.progress import progress_bar

LEASE_ENV = "CURATION_LOCK_LEASE_S"
DEFAULT_LEASE_S = 60.0
WRITABLE_SCHEMES = ("s3", "gs")  # stores with the conditional create the lock needs (LOCK_OBJECTS, below)
# A store's modification times may have whole seconds (S3), so an object rewritten within the second
# keeps its time, and often its size. A local copy is trusted only if it was taken at least this long
# after the object's time (the time's resolution, plus room for the clocks of store and machine to
# differ): any later rewrite then has another time. No file needs declaring as rewritten in place.
SETTLED_NS = 2_000_000_000
DOWNLOAD_THREADS = 16  # objects copied at once: a store answers each request with some latency


# --------------------------------------------------------------------------------------------------
# Where a run lives
# --------------------------------------------------------------------------------------------------


def open_run(spec: str | os.PathLike, reading: bool = False) -> RunDir:
    """The run directory named by a local path or a URI (then its local copy on this machine).

    Readers (``reading``: stats, export, the dashboard, a job's progress) get a copy of their own, apart
    from the one the run's writer works in: refreshing a copy removes files the store does not hold,
    and a writer's newest file is not in the store until it is published."""
    text = os.fspath(spec)
    if not storage.is_uri(text):
        return RunDir(Path(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme not in WRITABLE_SCHEMES:
        raise CurationError(
            f"run directories can live on s3:// (and S3-compatible stores) or gs://, not {scheme}:// "
            f"({text}); pools and metadata may be read from {scheme}://"
        )
    uri = text.rstrip("/")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    kind = "read-copies" if reading else "runs"
    return RunDir(storage.cache_root() / kind / f"{storage.name_of(uri) or 'run'}-{digest}", source=uri)


def _uri(run: RunDir, path: Path) -> str:
    return f"{run.source}/{path.relative_to(run.root).as_posix()}"


def readable(run: RunDir, path: Path) -> str:
    """Where to open a file for reading: the local path, or its object (Parquet is read by range)."""
    return _uri(run, path) if run.source else str(path)


# --------------------------------------------------------------------------------------------------
# Objects and their local copies
# --------------------------------------------------------------------------------------------------


def _current(path: Path, info: pafs.FileInfo) -> bool:
    """Whether the local copy is the object as it is now: the same size and time, and taken once the
    object's time had settled (the copy's access time records when it was taken; see SETTLED_NS)."""
    if info.mtime is None:
        return False  # a store without times: nothing tells versions apart
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return (
        stat.st_size == info.size
        and stat.st_mtime_ns == info.mtime_ns
        and stat.st_atime_ns >= info.mtime_ns + SETTLED_NS
    )


def _stamp(path: Path, info: pafs.FileInfo, taken_ns: int) -> None:
    """Give a copy its object's time, and (as its access time) when its content was taken."""
    if info.mtime is not None:
        os.utime(path, ns=(taken_ns, info.mtime_ns))


def _download(uri: str, path: Path, info: pafs.FileInfo) -> None:
    location = storage.locate(uri)
    taken_ns = time.time_ns()  # before the content is read: a rewrite after it has a later time
    try:
        with atomic_file(path) as temporary:
            pafs.copy_files(
                location.path,
                str(temporary),
                source_filesystem=location.filesystem,
                destination_filesystem=pafs.LocalFileSystem(),
            )
            _stamp(temporary, info, taken_ns)
    except (OSError, ValueError) as error:
        raise CurationError(storage.describe_error(uri, error)) from None


def fetch(run: RunDir, path: Path) -> bool:
    """Make the local copy of one file current; False when the store (or the disk) has no such file."""
    if not run.source:
        return path.exists()
    uri = _uri(run, path)
    info = storage.file_info(uri)
    if info.type != pafs.FileType.File:
        path.unlink(missing_ok=True)  # a copy of an object that is gone (a run started afresh)
        return False
    if not _current(path, info):
        _download(uri, path, info)
    return True


def has(run: RunDir, path: Path) -> bool:
    """Whether the file exists (in the store, for a run that lives there), without copying it."""
    if not run.source:
        return path.exists()
    return storage.file_info(_uri(run, path)).type == pafs.FileType.File


def _listing(run: RunDir, directory: Path) -> list[pafs.FileInfo]:
    uri = _uri(run, directory) if directory != run.root else run.source
    location = storage.locate(uri)
    try:
        found = location.filesystem.get_file_info(
            pafs.FileSelector(location.path, recursive=True, allow_not_found=True)
        )
    except (OSError, ValueError) as error:
        raise CurationError(storage.describe_error(uri, error)) from None
    return [info for info in found if info.type == pafs.FileType.File]


def _relative(run: RunDir, info: pafs.FileInfo) -> str:
    return info.path[len(storage.locate(run.source).path) + 1 :]


def has_all(run: RunDir, paths: Iterable[Path]) -> bool:
    """Whether every file exists; one listing per folder for a run in the store."""
    paths = list(paths)
    if not run.source:
        return all(path.exists() for path in paths)
    present = {_relative(run, info) for folder in {p.parent for p in paths} for info in _listing(run, folder)}
    return all(path.relative_to(run.root).as_posix() in present for path in paths)


def _hidden(relative: str) -> bool:
    """Lock and temporary files: never part of a run's contents."""
    return any(part.startswith(".") for part in relative.split("/"))


def fetch_tree(run: RunDir, directory: Path, skip: tuple[str, ...] = (), progress: bool = False) -> None:
    """Make the local copy of a folder current: new and changed objects copied, vanished ones removed.
    ``skip``: relative prefixes left out (the manifests, which a reader never needs)."""
    if not run.source:
        return
    wanted = {}
    for info in _listing(run, directory):
        relative = _relative(run, info)
        if not relative.startswith(skip) and not _hidden(relative):
            wanted[relative] = info
    if directory.exists():
        for local in directory.rglob("*"):
            relative = local.relative_to(run.root).as_posix()
            if local.is_file() and not _hidden(relative) and relative not in wanted and not relative.startswith(skip):
                local.unlink()
    stale = [(relative, info) for relative, info in sorted(wanted.items()) if not _current(run.root / relative, info)]
    with (
        progress_bar(
            sum(info.size for _, info in stale), f"copy {run.source}", "B", enabled=progress and bool(stale)
        ) as bar,
        ThreadPoolExecutor(DOWNLOAD_THREADS) as pool,
    ):

        def copy(item: tuple[str, pafs.FileInfo]) -> int:
            relative, info = item
            _download(f"{run.source}/{relative}", run.root / relative, info)
            return info.size

        for size in pool.map(copy, stale):
            bar.update(size)


def publish(run: RunDir, path: Path, keep_copy: bool = True) -> None:
    """Upload a finished local file as its object (one PUT: it appears whole); no-op on local disk.
    ``keep_copy=False`` drops the local file afterwards (a worker's large outputs: node disks stay small)."""
    if not run.source:
        return
    uri = _uri(run, path)
    taken_ns = time.time_ns()
    storage.upload(path, uri)
    if not keep_copy:
        path.unlink(missing_ok=True)
        return
    # The copy is the object's content; it is trusted as the object's time settles (SETTLED_NS).
    _stamp(path, storage.file_info(uri), taken_ns)


def publish_tree(run: RunDir, directory: Path, last: str | None = None) -> None:
    """Upload a folder's files, ``last`` (its completion mark) after every other one."""
    if not run.source:
        return
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.name == last):
        publish(run, path)


def discard(run: RunDir, path: Path) -> None:
    """Drop the local copy of a published file a worker will not read again (keeps node disks small)."""
    if run.source:
        path.unlink(missing_ok=True)


def remove_tree(run: RunDir, directory: Path) -> None:
    """Remove a folder: on disk, and in the store for a run that lives there."""
    shutil.rmtree(directory, ignore_errors=True)
    unpublish_tree(run, directory)


def remove_file(run: RunDir, path: Path) -> None:
    """Remove one file: on disk, and in the store for a run that lives there."""
    path.unlink(missing_ok=True)
    if run.source and has(run, path):
        uri = _uri(run, path)
        location = storage.locate(uri)
        try:
            location.filesystem.delete_file(location.path)
        except OSError as error:
            raise CurationError(storage.describe_error(uri, error, "remove")) from None


def unpublish_tree(run: RunDir, directory: Path) -> None:
    """Delete a folder's objects from the store (its local copy stays)."""
    if not run.source:
        return
    uri = _uri(run, directory)
    location = storage.locate(uri)
    try:
        location.filesystem.delete_dir(location.path)
    except FileNotFoundError:
        pass
    except OSError as error:
        if location.filesystem.get_file_info(location.path).type == pafs.FileType.NotFound:
            return  # nothing there: GCS says so with another error than S3's
        raise CurationError(storage.describe_error(uri, error, "remove")) from None


def names(run: RunDir, directory: Path) -> set[str]:
    """Files under a folder, as paths relative to it (one listing for a run in a store)."""
    if not run.source:
        return (
            {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
            if directory.exists()
            else set()
        )
    prefix = len(directory.relative_to(run.root).as_posix()) + 1
    return {_relative(run, info)[prefix:] for info in _listing(run, directory)}


def folders(run: RunDir, directory: Path) -> list[str]:
    """Names of the folders right under ``directory`` (in the store, for a run that lives there)."""
    return sorted({name.split("/", 1)[0] for name in names(run, directory) if "/" in name})


def contents(run: RunDir) -> list[str]:
    """Names at the top of the run directory other than its lock (empty: a new run may start here)."""
    if not run.source:
        return sorted(p.name for p in run.root.iterdir() if p.name != LOCK_NAME) if run.root.exists() else []
    return sorted({_relative(run, info).split("/", 1)[0] for info in _listing(run, run.root)} - {LOCK_NAME})


def read_copy(spec: str, parts: bool = True, progress: bool = False) -> Path:
    """A local folder holding a run that lives in the store, for the readers (stats, export, the
    dashboard): its small files, the preview, and (``parts``) the index parts and thresholds.
    Manifests and preview pieces are left out: no reader opens them. Copies are kept between calls
    and refreshed object by object."""
    run = open_run(spec, reading=True)
    if not run.source:
        return run.root
    if not fetch(run, run.plan_json):
        raise CurationError(f"{spec} is not a run directory (no plan.json); make one with `curation run --out {spec}`")
    skip = ("manifests/", "preview/pieces-", "matcher/")
    if not parts:
        skip += ("index/", "thresholds/")
    fetch_tree(run, run.root, skip, progress)
    return run.root


# --------------------------------------------------------------------------------------------------
# One writer at a time
# --------------------------------------------------------------------------------------------------


@contextmanager
def exclusive(run: RunDir) -> Iterator[None]:
    """Hold the run directory for one process at a time: flock on disk, a leased lock object in a store."""
    if run.source:
        with _ObjectLock(run):
            yield
        return
    root = run.root
    created = _make_folder(root)
    try:
        lock_made = not run.lock.exists()
        with _open_lock(root) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CurationError(
                    f"another curation process is using {root}; wait for it or choose another --out"
                ) from None
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                if lock_made and not run.plan_json.exists():  # refused, or failed before its plan: no trace
                    run.lock.unlink(missing_ok=True)  # while still held, so no other process holds this one
    finally:
        _remove_if_bare(root, created)


def check_output(spec: str) -> None:
    """Refuse, in one line and before a background run starts, a local --out that cannot become a run
    directory (a file, or a folder that cannot be made); by making it, and removing what was made."""
    if not storage.is_uri(spec):
        root = Path(spec)
        _remove_if_bare(root, _make_folder(root))


def _make_folder(root: Path) -> Path | None:
    """Make the run directory and its missing parents; the topmost folder made (None: it existed)."""
    if root.is_dir():
        return None
    if root.exists():
        raise CurationError(f"{root} is a file, not a run directory; choose another --out")
    top = root
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        root.mkdir(parents=True)
    except OSError as error:
        raise CurationError(f"cannot make the run directory {root}: {error.strerror or error}") from None
    return top


def _open_lock(root: Path) -> IO[str]:
    try:
        return open(root / LOCK_NAME, "w")
    except OSError as error:
        raise CurationError(f"cannot write in {root}: {error.strerror or error}; choose another --out") from None


def _remove_if_bare(root: Path, created: Path | None) -> None:
    """Remove the folders ``_make_folder`` made when they hold nothing but the lock: a run that failed
    before its plan leaves no folder behind."""
    if created is None or not root.is_dir() or any(p.name != LOCK_NAME for p in root.iterdir()):
        return
    (root / LOCK_NAME).unlink(missing_ok=True)
    for folder in (root, *root.parents):
        try:
            folder.rmdir()
        except OSError:  # not empty (another run made something there): it stays
            return
        if folder == created:
            return


def _lease() -> float:
    try:
        return max(1.0, float(os.environ.get(LEASE_ENV, DEFAULT_LEASE_S)))
    except ValueError:
        raise CurationError(f"{LEASE_ENV} must be a number of seconds, got {os.environ[LEASE_ENV]!r}") from None


def process_alive(pid: int) -> bool:
    """Whether a process of this host still exists (a lock's or a background job's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _may_take_over(holder: dict, now: float) -> bool:
    """A lease that ran out, or a holder on this host whose process is gone (a killed run)."""
    if float(holder.get("expires", 0)) < now:
        return True
    return holder.get("host") == socket.gethostname() and not process_alive(int(holder.get("pid", -1)))


class _Conflict(Exception):
    """A conditional write found another version than the one it named (or an object where none was)."""


class _S3LockObject:
    """The lock object on S3, written conditionally on its ETag (boto3: pyarrow's client has no
    conditional writes)."""

    def __init__(self, uri: str) -> None:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import ClientError
        except ImportError:
            raise CurationError("run directories on s3:// need boto3 for their lock: pip install boto3") from None
        self.uri, self.ClientError = uri, ClientError
        self.bucket, self.key = storage.locate(uri).path.split("/", 1)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(retries={"max_attempts": storage.s3_attempts(), "mode": "standard"}),
        )

    def _error(self, error: Exception) -> Exception:
        """A refused condition as _Conflict, anything else as the one line naming the lock."""
        code = str(error.response.get("Error", {}).get("Code", ""))  # type: ignore[attr-defined]
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return _Conflict()
        return CurationError(storage.describe_error(self.uri, error, "lock"))

    def write(self, body: bytes, version: str | None) -> str:
        """Create the object (``version`` None: only if absent) or replace that version; its new version."""
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)["ETag"]
        except self.ClientError as error:
            raise self._error(error) from None

    def read(self) -> tuple[str, bytes] | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404"):
                return None
            raise self._error(error) from None
        return found["ETag"], found["Body"].read()

    def delete(self, version: str) -> None:
        if self.client.head_object(Bucket=self.bucket, Key=self.key)["ETag"] == version:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


class _GcsLockObject:
    """The lock object on GCS, written conditionally on its generation (google-cloud-storage; it reads
    GOOGLE_APPLICATION_CREDENTIALS, or STORAGE_EMULATOR_HOST for an emulator)."""

    def __init__(self, uri: str) -> None:
        try:
            from google.api_core import exceptions
            from google.auth.credentials import AnonymousCredentials
            from google.auth.exceptions import GoogleAuthError
            from google.cloud import storage as gcs
        except ImportError:
            raise CurationError(
                "run directories on gs:// need google-cloud-storage for their lock: pip install google-cloud-storage"
            ) from None
        self.uri = uri
        # What a request may raise: the store's answers, credentials that cannot be found or used, and
        # the network (requests' errors are OSErrors).
        self.failures = (exceptions.GoogleAPIError, GoogleAuthError, OSError)
        self.PreconditionFailed, self.NotFound = exceptions.PreconditionFailed, exceptions.NotFound
        bucket, key = storage.locate(uri).path.split("/", 1)
        try:
            if os.environ.get(storage.GCS_EMULATOR_ENV):  # an emulator: unsigned requests to its address
                client = gcs.Client(project="emulator", credentials=AnonymousCredentials())
            else:
                client = gcs.Client()
        except self.failures as error:
            raise self._error(error) from None
        self.blob = client.bucket(bucket).blob(key)

    def _error(self, error: BaseException) -> CurationError:
        return CurationError(storage.describe_error(self.uri, error, "lock"))

    def write(self, body: bytes, version: str | None) -> str:
        """Create the object (``version`` None: only if absent) or replace that generation; its new one."""
        try:
            self.blob.upload_from_string(body, if_generation_match=0 if version is None else int(version))
        except self.PreconditionFailed:
            raise _Conflict from None
        except self.failures as error:
            raise self._error(error) from None
        return str(self.blob.generation)

    def read(self) -> tuple[str, bytes] | None:
        try:
            found = self.blob.bucket.get_blob(self.blob.name)
            return None if found is None else (str(found.generation), found.download_as_bytes())
        except self.NotFound:
            return None
        except self.failures as error:
            raise self._error(error) from None

    def delete(self, version: str) -> None:
        found = self.blob.bucket.get_blob(self.blob.name)
        if found is not None and str(found.generation) == version:
            found.delete(if_generation_match=int(version))


LOCK_OBJECTS = {"s3": _S3LockObject, "gs": _GcsLockObject}  # the stores whose run directories can be locked


class _ObjectLock:
    """A leased lock object: created only if absent, renewed on its own version, taken over (on the
    version read) once its lease ran out or its holder on this host is gone, deleted if still ours."""

    def __init__(self, run: RunDir) -> None:
        self.uri = f"{run.source}/{LOCK_NAME}"
        self.store = LOCK_OBJECTS[self.uri.split("://", 1)[0].lower()](self.uri)
        self.lease = _lease()
        self.version: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() + self.lease}
        ).encode()

    def acquire(self) -> None:
        try:
            self.version = self.store.write(self._body(), None)
            return
        except _Conflict:
            pass
        found = self.store.read()
        if found is None:
            return self.acquire()  # released between the two requests
        version, body = found
        try:
            holder = json.loads(body or b"{}")
        except ValueError:
            holder = {}
        if not _may_take_over(holder, time.time()):
            until = time.strftime("%H:%M:%S", time.localtime(float(holder.get("expires", 0))))
            raise CurationError(
                f"another curation process (pid {holder.get('pid')} on {holder.get('host')}) holds {self.uri}; "
                f"wait for it, or if it was killed on another machine, until its lease ends at {until}"
            )
        try:
            self.version = self.store.write(self._body(), version)  # only if no one else took it over meanwhile
        except _Conflict:
            raise CurationError(f"another curation process just took {self.uri}; wait for it") from None

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.version = self.store.write(self._body(), self.version)
            except _Conflict:
                self.lost = True  # taken over: this run's outputs are still whole objects, but say so
                return
            except Exception:  # a transient store error: the next renewal tries again
                continue

    def __enter__(self) -> _ObjectLock:
        self.acquire()
        self._renewer = threading.Thread(target=self._renew, name="curation-lock-lease", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.lost:
            raise CurationError(
                f"the lock {self.uri} was taken over while this run worked (its lease of "
                f"{self.lease:g} s ran out); run the command again once the other one ends"
            )
        try:
            self.store.delete(self.version)
        except Exception:  # gone already, or the store is unreachable: the next run takes a stale lock over
            pass
