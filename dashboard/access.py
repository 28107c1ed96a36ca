"""Who may see the dashboard and which paths it may touch, apart from Streamlit so the rules can be
tested on their own (docs/design.md, "The dashboard on a shared machine").

A dashboard served beyond loopback asks for a token before it shows anything. Whoever passes it
still reaches only the configured roots: run directories opened and job outputs under the runs
directory, manifests under the export directory, pools and metadata under the data roots. Paths are
resolved (symlinks, `..`) before they are compared. A URI is allowed only under a URI prefix listed
in the data roots. The command line is not confined: it runs as its user.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from curation.export import provenance_name
from curation.pool import resolve_files
from studio_common import storage
from studio_common.errors import CurationError

TOKEN_ENV = "CURATION_DASHBOARD_TOKEN"
REQUIRE_TOKEN_ENV = "CURATION_DASHBOARD_REQUIRE_TOKEN"
DATA_ROOTS_ENV = "CURATION_DATA_ROOTS"
MAX_JOBS_ENV = "CURATION_MAX_JOBS"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_GLOB = re.compile(r"[*?\[]")


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address keeps the server to this machine. Unset means every
    interface (Streamlit then binds `::`); a host name or a Unix socket (usually behind a proxy) may
    be reached from elsewhere, so only loopback addresses and `localhost` count."""
    if not address:
        return False
    host = address.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def token_required(address: str | None, env: Mapping[str, str]) -> bool:
    """Beyond loopback, or when forced (a reverse proxy in front of a loopback server, or a test)."""
    return not is_loopback(address) or _flag(env.get(REQUIRE_TOKEN_ENV))


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken says nothing about how much of a guess was right."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def no_token_message(address: str | None) -> str:
    where = f"on {address}" if address else "on every interface (server.address is not set)"
    return (
        f"This dashboard is served {where} and no access token is set, so it shows nothing: start it "
        f"with {TOKEN_ENV} set to a long random secret (for instance `export {TOKEN_ENV}=$(python3 -c "
        "'import secrets; print(secrets.token_urlsafe(32))')`), or serve it on 127.0.0.1 and use ssh -L"
    )


def max_jobs(env: Mapping[str, str]) -> int:
    """How many jobs the dashboard lets run at once (CURATION_MAX_JOBS, default 1)."""
    text = env.get(MAX_JOBS_ENV, "").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise CurationError(f"{MAX_JOBS_ENV} must be a whole number of at least 1, got {text!r}")
    return int(text)


def split_roots(text: str) -> list[str]:
    """A list separated by os.pathsep (':' here) whose items may be URI prefixes: the colon of
    `s3://` does not split one."""
    roots: list[str] = []
    for piece in text.split(os.pathsep):
        if roots and piece.startswith("//") and _SCHEME.fullmatch(roots[-1]):
            roots[-1] += os.pathsep + piece
        elif piece.strip():
            roots.append(piece.strip())
    return roots


def resolved(path: str | Path) -> Path:
    """The path the operating system would reach: absolute, `..` folded, every symlink followed."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _normal_uri(uri: str) -> str | None:
    """A URI without its trailing slash, or None when it holds a dot segment or an encoded dot or
    slash (a store or server could fold those where a plain prefix test does not)."""
    scheme, _, rest = uri.partition("://")
    if any(part in (".", "..") for part in rest.split("/")) or re.search(r"%2[ef]|\\", rest, re.IGNORECASE):
        return None
    return f"{scheme.lower()}://{rest.rstrip('/')}"


@dataclass(frozen=True)
class Roots:
    runs: Path  # run directories opened, job outputs; resolved
    exports: Path  # manifests; resolved
    data: tuple[Path, ...]  # pools and metadata read by jobs; resolved
    uris: tuple[str, ...]  # URI prefixes from the data roots: pools, metadata, runs and outputs there

    @classmethod
    def from_env(cls, runs: Path, exports: Path, sample: Path, env: Mapping[str, str] = os.environ) -> Roots:
        """The data roots are CURATION_DATA_ROOTS, else the bundled sample's folder and the runs directory."""
        listed = split_roots(env.get(DATA_ROOTS_ENV, "")) or [str(sample), str(runs)]
        local = tuple(resolved(root) for root in listed if not storage.is_uri(root))
        uris = tuple(u for u in (_normal_uri(root) for root in listed if storage.is_uri(root)) if u)
        return cls(resolved(runs), resolved(exports), local, uris)


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _uri_under(uri: str, prefixes: Iterable[str]) -> bool:
    normal = _normal_uri(uri)
    return normal is not None and any(normal == p or normal.startswith(p + "/") for p in prefixes)


def _refuse(what: str, spec: str, allowed: str, variable: str) -> CurationError:
    return CurationError(
        f"{what} {spec} is outside what this dashboard may use ({allowed}); set {variable} "
        "to allow it, or use the command line"
    )


def _uri_message(roots: Roots) -> str:
    return ", ".join(roots.uris) if roots.uris else "no URI prefix"


def check_run_dir(spec: str, roots: Roots) -> None:
    """A run directory to open: under the runs directory, or a URI under a data root's prefix."""
    if storage.is_uri(spec):
        if not _uri_under(spec, roots.uris):
            raise _refuse("run directory", spec, f"{roots.runs} or {_uri_message(roots)}", DATA_ROOTS_ENV)
    elif not _under(resolved(spec), [roots.runs]):
        raise _refuse("run directory", spec, str(roots.runs), "CURATION_RUNS_DIR")


def check_output(spec: str, roots: Roots) -> None:
    """A job's output: strictly below the runs directory (which holds the job records), or a URI under
    a data root's prefix."""
    if storage.is_uri(spec):
        if not _uri_under(spec, roots.uris):
            raise _refuse("output directory", spec, _uri_message(roots), DATA_ROOTS_ENV)
        return
    path = resolved(spec)
    if path == roots.runs or not _under(path, [roots.runs]):
        raise _refuse("output directory", spec, f"folders below {roots.runs}", "CURATION_RUNS_DIR")


def check_readable(what: str, spec: str, roots: Roots) -> None:
    """A pool or metadata spec: its literal part (before any glob character) under a data root."""
    allowed = ", ".join([*map(str, roots.data), *roots.uris]) or "nothing"
    if storage.is_uri(spec):
        if not _uri_under(spec, roots.uris):  # a glob below the prefix expands below it
            raise _refuse(what, spec, allowed, DATA_ROOTS_ENV)
        return
    magic = _GLOB.search(spec)
    literal = spec if magic is None else os.path.dirname(spec[: magic.start()]) or "."
    if not _under(resolved(literal), roots.data):
        raise _refuse(what, spec, allowed, DATA_ROOTS_ENV)


def _same_place(spec: str, other: str) -> bool:
    """Whether two run directories are one: URIs compared without a trailing slash, paths resolved."""
    if storage.is_uri(spec) or storage.is_uri(other):
        normal = _normal_uri(spec) if storage.is_uri(spec) and storage.is_uri(other) else None
        return normal is not None and normal == _normal_uri(other)
    return resolved(spec) == resolved(other)


def check_not_open(out: str, open_run: str | None) -> None:
    """A job's output is not the run this session shows: a run rewritten under the pages reading it
    would change (or vanish) between two figures."""
    if open_run and _same_place(out, open_run):
        raise CurationError(
            f"output {out} is the run open in this session; pick another output, or open another run first"
        )


def check_job_request(pool: str, metadata: str, out: str, roots: Roots, open_run: str | None = None) -> None:
    """Everything a curation job would read or write, before anything starts: not the session's open
    run either. A local pool's files are listed and each is resolved too: a symlink inside a data root
    may point out of it."""
    check_readable("pool", pool, roots)
    check_readable("metadata", metadata, roots)
    check_output(out, roots)
    check_not_open(out, open_run)
    if not storage.is_uri(pool):
        for file in resolve_files(os.path.abspath(os.path.expanduser(pool))):
            if not _under(resolved(file), roots.data):
                raise _refuse("pool file", file, ", ".join(map(str, roots.data)), DATA_ROOTS_ENV)


def check_export(manifest: Path, roots: Roots) -> None:
    """A manifest and its provenance file, both resolved (either may be a symlink left in the folder)."""
    for path in (manifest, manifest.with_name(provenance_name(manifest.name))):
        if not _under(resolved(path), [roots.exports]):
            raise _refuse("export", str(path), str(roots.exports), "CURATION_EXPORT_DIR")
