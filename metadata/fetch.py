"""Fetching MetaCLIP's released metadata.json (500,000 entries) into a local cache.

The file lives at the root of https://github.com/facebookresearch/MetaCLIP and is served raw from
``DEFAULT_URL``. A download is written under a temporary name in the cache directory, checked, and only
then renamed into place, so the cache never holds half a file. Checks, in order:

- the byte count equals the server's Content-Length, and ``expected_size`` when one is known;
- the sha256 equals ``expected_sha256`` when one is known;
- the content is a JSON list of distinct, non-empty strings (what the engine will accept).

We could not establish the released file's size and sha256 from a trusted record while writing this
(the file is not in the sources we could consult), so ``KNOWN_FILES`` is empty: pass ``--sha256`` /
``--size`` to pin a value, and every download records what it observed in ``<name>.fetch.json`` beside
the file (url, bytes, sha256, entries, time). A later fetch of the same URL re-checks the cached file
against that record and downloads again only if it does not match (or with ``force``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from metadata import files

DEFAULT_URL = "https://raw.githubusercontent.com/facebookresearch/MetaCLIP/main/metadata.json"
KNOWN_FILES: dict[str, tuple[int, str]] = {}  # url -> (bytes, sha256), once established
CHUNK = 1 << 16


class FetchError(Exception):
    """A download that could not be made or did not verify; the message is one line."""


@dataclass
class Fetched:
    path: Path
    size: int
    sha256: str
    entries: int
    downloaded: bool  # False: the verified cached copy was used


def default_cache_dir() -> Path:
    """$CURATION_CACHE, else $XDG_CACHE_HOME/curation-studio, else ~/.cache/curation-studio."""
    if os.environ.get("CURATION_CACHE"):
        return Path(os.environ["CURATION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curation-studio"


def cache_name(url: str) -> str:
    """``metaclip-metadata.json`` for the default URL; otherwise the URL's file name prefixed by a short
    hash of the URL, so two sources never share a cache file."""
    if url == DEFAULT_URL:
        return "metaclip-metadata.json"
    name = Path(urllib.parse.urlparse(url).path).name or "metadata.json"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_entries(data: bytes, what: str) -> int:
    """Number of entries if ``data`` is a JSON list of distinct non-empty strings; else FetchError."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FetchError(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, list):
        raise FetchError(f"{what} is JSON but not a list (found {type(value).__name__})")
    bad = next((i for i, v in enumerate(value) if not isinstance(v, str) or v == ""), None)
    if bad is not None:
        raise FetchError(f"{what}: item {bad} is {value[bad]!r}, not a non-empty string")
    if len(set(value)) != len(value):
        raise FetchError(f"{what}: {len(value) - len(set(value))} entries are repeated")
    return len(value)


def _offline_message(url: str, reason: object) -> str:
    host = urllib.parse.urlparse(url).netloc or url
    return (
        f"cannot download {url}: {reason} (offline, or {host} unreachable? "
        "use --url for a mirror, or put the file in place and pass its path to --metadata)"
    )


def _cached(path: Path, record_path: Path, url: str, expected_sha256: str | None) -> Fetched | None:
    """The cached copy if it is complete and matches its record (and the expected sha256)."""
    if not (path.is_file() and record_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    digest = sha256_of(path)
    if record.get("url") != url or record.get("sha256") != digest:
        return None
    if expected_sha256 and digest != expected_sha256.lower():
        return None
    return Fetched(path, path.stat().st_size, digest, int(record.get("entries", 0)), downloaded=False)


def fetch(
    url: str = DEFAULT_URL,
    cache_dir: str | Path | None = None,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
) -> Fetched:
    """Download ``url`` into ``cache_dir`` (default ``default_cache_dir()``) unless a verified copy is
    there; raise FetchError with a one-line message when it cannot be done."""
    known = KNOWN_FILES.get(url)
    if known is not None:
        expected_size = expected_size if expected_size is not None else known[0]
        expected_sha256 = expected_sha256 or known[1]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create cache directory {cache}: {error.strerror or error}") from None
    path = cache / cache_name(url)
    record_path = path.with_name(path.name + ".fetch.json")
    if not force:
        cached = _cached(path, record_path, url, expected_sha256)
        if cached is not None:
            return cached
    request = urllib.request.Request(url, headers={"User-Agent": "curation-studio-metadata/1"})
    digest = hashlib.sha256()
    received = 0
    temporary = files.temporary_path(path)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            with (
                temporary.open("wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress, mininterval=0.3
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        if total is not None and received != total:
            raise FetchError(f"download of {url} ended after {received:,} of {total:,} bytes")
        if expected_size is not None and received != expected_size:
            raise FetchError(f"download of {url} has {received:,} bytes, expected {expected_size:,}")
        observed = digest.hexdigest()
        if expected_sha256 and observed != expected_sha256.lower():
            raise FetchError(f"checksum mismatch for {url}: sha256 {observed}, expected {expected_sha256.lower()}")
        entries = check_entries(temporary.read_bytes(), f"download of {url}")
        os.replace(temporary, path)
    except urllib.error.HTTPError as error:
        raise FetchError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise FetchError(_offline_message(url, getattr(error, "reason", error))) from None
    except TimeoutError:
        raise FetchError(
            f"download of {url} timed out after {timeout:g} s without data ({received:,} bytes received)"
        ) from None
    except http.client.IncompleteRead as error:
        raise FetchError(f"download of {url} ended early after {received + len(error.partial):,} bytes") from None
    except (ConnectionError, http.client.HTTPException) as error:
        raise FetchError(_offline_message(url, error)) from None
    except OSError as error:
        raise FetchError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if temporary.exists():
            temporary.unlink()
    files.write_json(
        record_path,
        {
            "url": url,
            "bytes": received,
            "sha256": observed,
            "entries": entries,
            "content_length": total,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "verified": {
                "content_length": total is not None,
                "size": expected_size is not None,
                "sha256": bool(expected_sha256),
                "json_list_of_unique_strings": True,
            },
        },
    )
    return Fetched(path, received, observed, entries, downloaded=True)
