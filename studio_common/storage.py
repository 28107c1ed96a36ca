"""Files named by URI: pools and metadata in object storage (s3://, gs://), on Hugging Face (hf://)
and behind plain HTTP (http://, https://).

pyarrow's own filesystems serve S3 and GCS; fsspec serves the others, wrapped as a pyarrow
filesystem so that every caller reads through one interface. Credentials come only from the
standard places, read by the clients themselves: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE and AWS_ENDPOINT_URL (S3-compatible stores);
GOOGLE_APPLICATION_CREDENTIALS, and STORAGE_EMULATOR_HOST for a GCS emulator (as Google's own clients
read it); HF_TOKEN. CURATION_ANONYMOUS=1 reads public buckets unsigned.
A local path is never a URI here: callers keep their own local code paths.

Parquet is read by byte range. An HTTP server that answers a range with the whole file (Python's
http.server, many static file servers) gets its files copied whole into the local cache instead,
once per file and version, and read from there.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from studio_common.errors import CurationError

PYARROW_SCHEMES = ("s3", "gs", "gcs")
FSSPEC_SCHEMES = {"http": "aiohttp", "https": "aiohttp", "hf": "huggingface_hub"}
ANONYMOUS_ENV = "CURATION_ANONYMOUS"
CACHE_ENV = "CURATION_CACHE_DIR"
S3_ATTEMPTS_ENV = "CURATION_S3_ATTEMPTS"
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"  # http://HOST:PORT of a GCS emulator: Google's clients read it too
UPLOAD_CHUNK = 8 << 20
DEFAULT_S3_ATTEMPTS = 6  # AWS's standard retry strategy: exponential backoff with jitter between attempts


def is_uri(path: object) -> bool:
    """True for a string naming a file by one of the supported schemes."""
    if not isinstance(path, str) or "://" not in path:
        return False
    return path.split("://", 1)[0].lower() in (*PYARROW_SCHEMES, *FSSPEC_SCHEMES)


STORAGE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "GOOGLE_APPLICATION_CREDENTIALS",
    GCS_EMULATOR_ENV,
    "HF_TOKEN",
    ANONYMOUS_ENV,
    S3_ATTEMPTS_ENV,
)


def forwarded_environment() -> dict[str, str]:
    """The storage variables set where the driver runs, for workers that do not share its environment
    (Ray tasks): credentials set once reach every node."""
    return {name: os.environ[name] for name in STORAGE_VARIABLES if name in os.environ}


def s3_attempts() -> int:
    """Attempts per S3 request: CURATION_S3_ATTEMPTS (more on a flaky network, fewer to fail fast), else 6."""
    text = os.environ.get(S3_ATTEMPTS_ENV, "").strip()
    try:
        attempts = int(text) if text else DEFAULT_S3_ATTEMPTS
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise CurationError(f"{S3_ATTEMPTS_ENV} must be a whole number of at least 1, got {text!r}")
    return attempts


def cache_root() -> Path:
    """Where this machine keeps copies of remote files: CURATION_CACHE_DIR, else ~/.cache/curation."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "curation")


def _anonymous() -> bool:
    return os.environ.get(ANONYMOUS_ENV, "").strip().lower() in ("1", "true", "yes")


@lru_cache(maxsize=16)
def _filesystem(scheme: str, anonymous: bool, endpoint: str | None, attempts: int) -> pafs.FileSystem:
    """One filesystem per store and settings, reused by every file of a run in this process."""
    if scheme == "s3":
        # Transient errors (throttling, dropped connections) are retried with backoff first. A delayed
        # open sends a file smaller than one part (most of a run's files) as one PUT; otherwise every
        # file is a multipart upload of three requests. Errors still surface when the file is closed.
        return pafs.S3FileSystem(
            anonymous=anonymous,
            endpoint_override=endpoint,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
            allow_delayed_open=True,
        )
    if scheme in ("gs", "gcs"):
        if endpoint:  # an emulator: plain HTTP on its host and port, no credentials to present
            parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
            return pafs.GcsFileSystem(anonymous=True, scheme=parts.scheme, endpoint_override=parts.netloc)
        return pafs.GcsFileSystem(anonymous=anonymous)
    return pafs.PyFileSystem(pafs.FSSpecHandler(_fsspec(scheme)))


def _fsspec(scheme: str):  # noqa: ANN202  (an fsspec filesystem; fsspec is imported only when needed)
    """fsspec's filesystem for a scheme (fsspec keeps one instance per scheme and options)."""
    package = FSSPEC_SCHEMES[scheme]
    try:
        import fsspec

        return fsspec.filesystem(scheme)
    except (ImportError, ValueError):
        raise CurationError(f"{scheme}:// needs fsspec and {package}: pip install fsspec {package}") from None


@dataclass(frozen=True)
class Location:
    """A URI split into the filesystem that serves it and the path that filesystem understands."""

    uri: str
    filesystem: pafs.FileSystem
    path: str

    def child(self, path: str) -> str:
        """The URI of another path of the same filesystem (a file found under this location)."""
        scheme = self.uri.split("://", 1)[0]
        if scheme in FSSPEC_SCHEMES and scheme != "hf":
            return path  # fsspec's http paths are whole URLs already
        return f"{scheme}://{path}"


def locate(uri: str) -> Location:
    scheme = uri.split("://", 1)[0].lower()
    parts = urlsplit(uri)
    if scheme in PYARROW_SCHEMES:
        path = (parts.netloc + parts.path).rstrip("/")
        endpoint = (
            os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            if scheme == "s3"
            else os.environ.get(GCS_EMULATOR_ENV) or None
        )
        return Location(uri, _filesystem(scheme, _anonymous(), endpoint, s3_attempts() if scheme == "s3" else 0), path)
    path = uri if scheme != "hf" else uri.split("://", 1)[1]
    return Location(uri, _filesystem(scheme, _anonymous(), None, 0), path)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (Arrow's and the stores' run to several)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe_error(uri: str, error: BaseException, verb: str = "read") -> str:
    """One line naming the object and what the store said, with a hint for the usual causes."""
    said = first_line(error)
    lowered = said.lower()
    if any(
        word in lowered
        for word in (
            "access denied",
            "access_denied",
            "accessdenied",
            "forbidden",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "403",
            "401",
            "credentials",
        )
    ):
        return (
            f"cannot {verb} {uri}: access denied ({said}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            f"GOOGLE_APPLICATION_CREDENTIALS or HF_TOKEN, or set {ANONYMOUS_ENV}=1 for a public bucket"
        )
    return f"cannot {verb} {uri}: {said}"


def file_info(uri: str) -> pafs.FileInfo:
    location = locate(uri)
    try:
        return location.filesystem.get_file_info(location.path)
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error)) from None


def _missing(uri: str, what: str) -> CurationError:
    location = locate(uri)
    if uri.lower().startswith(("s3://", "gs://", "gcs://")):
        bucket = location.path.split("/", 1)[0]
        try:
            bucket_info = location.filesystem.get_file_info(bucket)
        except (OSError, ValueError) as error:
            return CurationError(describe_error(uri, error))
        if bucket_info.type == pafs.FileType.NotFound:
            return CurationError(f"{what} not found: {uri} (there is no bucket '{bucket}', or no access to it)")
    return CurationError(f"{what} not found: {uri}")


def list_parquet(uri: str) -> list[str]:
    """The Parquet files of a pool URI: one object, every .parquet under a prefix, or a glob."""
    location = locate(uri)
    fs = location.filesystem
    try:
        if glob.has_magic(location.path):
            base = location.path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
            found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            files = sorted(
                i.path for i in found if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, location.path)
            )
            if not files:
                raise CurationError(f"no files match the pool pattern {uri}")
            return [location.child(f) for f in files]
        info = fs.get_file_info(location.path)
        if info.type == pafs.FileType.File and not location.path.endswith("/"):
            return [uri]
        if info.type == pafs.FileType.NotFound:
            raise _missing(uri, "pool")
        found = fs.get_file_info(pafs.FileSelector(location.path, recursive=True))
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error)) from None
    files = sorted(
        i.path
        for i in found
        if i.type == pafs.FileType.File and i.path.endswith(".parquet") and not i.base_name.startswith(".")
    )
    if not files:
        raise CurationError(f"no .parquet files in pool directory {uri}")
    return [location.child(f) for f in files]


def _is_http(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("http", "https")


@lru_cache(maxsize=4096)
def answers_ranges(url: str) -> bool:
    """Whether an HTTP server sends a byte range when asked for one (206). One small request per file
    and process; a server that sends the whole file instead is left as soon as its answer begins."""
    fs = _fsspec(url.split("://", 1)[0].lower())
    from fsspec.asyn import sync

    async def probe() -> bool:
        session = await fs.set_session()
        async with session.get(fs.encode_url(url), headers={"Range": "bytes=0-0"}) as response:
            if response.status == 404:
                raise FileNotFoundError(url)
            response.raise_for_status()
            return response.status == 206

    try:
        return sync(fs.loop, probe)
    except FileNotFoundError:
        raise _missing(url, "file") from None
    except Exception as error:  # aiohttp's errors: one line naming the file
        raise CurationError(describe_error(url, error)) from None


_ANNOUNCED: set[str] = set()  # servers this process has said it reads whole


def _announce_whole_reads(url: str) -> None:
    """Say once per server and process why its files are copied before they are read."""
    parts = urlsplit(url)
    server = f"{parts.scheme}://{parts.netloc}"
    if server not in _ANNOUNCED:
        _ANNOUNCED.add(server)
        print(
            f"note: {server} does not answer byte-range requests; each of its files is read whole into "
            f"{cache_root() / 'whole-files'} (set {CACHE_ENV} to move it) and read from there",
            file=sys.stderr,
            flush=True,
        )


def whole_copy(url: str) -> Path:
    """A local copy of an HTTP file, streamed whole into the cache; reused by every process of the
    machine while the server reports the same size, ETag and Last-Modified (a new version gets a new
    name). Appears whole: written under a temporary name, then renamed."""
    fs = _fsspec(url.split("://", 1)[0].lower())
    try:
        info = fs.info(url)
    except FileNotFoundError:
        raise _missing(url, "file") from None
    except Exception as error:  # aiohttp's errors: one line naming the file
        raise CurationError(describe_error(url, error)) from None
    version = json.dumps([url, info.get("size"), info.get("ETag"), info.get("Last-Modified")])
    path = cache_root() / "whole-files" / f"{hashlib.sha256(version.encode()).hexdigest()[:24]}-{name_of(url)}"
    if path.is_file():
        return path
    _announce_whole_reads(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            fs.get_file(url, handle)
        os.replace(temporary, path)
    except Exception as error:  # the disk's, or aiohttp's (which are not OSErrors): one line naming the file
        raise CurationError(describe_error(url, error)) from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def open_input(uri: str) -> pafs.NativeFile:
    """A random-access file (Parquet footers and row groups are read by range); an HTTP file whose
    server sends no ranges is read from its whole copy in the cache."""
    if _is_http(uri) and not answers_ranges(uri):
        return pafs.LocalFileSystem().open_input_file(str(whole_copy(uri)))
    location = locate(uri)
    try:
        return location.filesystem.open_input_file(location.path)
    except FileNotFoundError:
        raise _missing(uri, "file") from None
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error)) from None


def read_bytes(uri: str, what: str = "file") -> bytes:
    """A whole object (a metadata list: megabytes, read once)."""
    info = file_info(uri)
    if info.type == pafs.FileType.NotFound:
        raise _missing(uri, what)
    if info.type == pafs.FileType.Directory:
        raise CurationError(f"{what} path is a directory, expected a file: {uri}")
    with open_input(uri) as handle:
        try:
            return handle.read()
        except (OSError, ValueError) as error:
            raise CurationError(describe_error(uri, error)) from None


def signature(uri: str) -> dict:
    """Size and modification time of an object, as file_signature gives them for local files."""
    info = file_info(uri)
    if info.type != pafs.FileType.File:
        raise _missing(uri, "file")
    mtime = info.mtime_ns if info.mtime is not None else None
    return {"path": uri, "bytes": info.size, "mtime_ns": mtime}


def upload(local: str | os.PathLike, uri: str) -> None:
    """Copy a finished local file to ``uri``. An object store shows the object only once it is whole,
    so the copy is as atomic as a rename on disk."""
    location = locate(uri)
    try:
        # An explicit stream, closed here: with S3's delayed open the PUT happens at close, and
        # pafs.copy_files leaves the close to a destructor that only logs its error (a lost file).
        with open(local, "rb") as source, location.filesystem.open_output_stream(location.path) as target:
            while chunk := source.read(UPLOAD_CHUNK):
                target.write(chunk)
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error, "write")) from None


def file_size(uri: str, what: str = "file") -> int:
    """An object's size; a missing one is refused in one line naming ``what`` it is."""
    info = file_info(uri)
    if info.type != pafs.FileType.File:
        raise _missing(uri, what)
    return info.size


def exists(uri: str) -> bool:
    return file_info(uri).type == pafs.FileType.File


def glob_files(uri: str) -> list[tuple[str, int]]:
    """(URI, size) of every object a glob URI matches, sorted (none: an empty list)."""
    location = locate(uri)
    base = location.path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0].rsplit("/", 1)[0]
    try:
        found = location.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error)) from None
    matched = (i for i in found if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, location.path))
    return [(location.child(i.path), i.size) for i in sorted(matched, key=lambda i: i.path)]


def open_stream(uri: str, buffer_size: int = 1 << 20) -> pafs.NativeFile:
    """A file read once from front to back (a tar shard): one streamed request, not reads by range."""
    location = locate(uri)
    try:
        return location.filesystem.open_input_stream(location.path, compression=None, buffer_size=buffer_size)
    except FileNotFoundError:
        raise _missing(uri, "file") from None
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error)) from None


def delete(uri: str) -> None:
    """Remove an object (gone already: nothing to do)."""
    location = locate(uri)
    try:
        location.filesystem.delete_file(location.path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        raise CurationError(describe_error(uri, error, "delete")) from None


def name_of(path: str) -> str:
    """The last component of a local path or a URI (without a query)."""
    return PurePosixPath(urlsplit(path).path if is_uri(path) else path).name
