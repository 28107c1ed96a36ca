"""Every cache and every piece of session state of the dashboard, in one place.

Heavy per-run objects (the DuckDB connection, the balance preview arrays) are cached as resources and
keyed by a token that changes when the run directory changes; small results are cached as data.
Pages take a fresh cursor through ``query()`` on every script run.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import data_samples
from curation import preview_files
from curation.browse import find_pairs
from curation.commands import RunRequest, curation_command
from curation.compare import Comparer, Comparison
from curation.gaps import GAPS_FOLDER, Gaps, read_gaps
from curation.plan import Plan
from curation.preview import INTERVAL, BalancePreview, Estimate
from curation.query import RunQuery, connect
from curation.rundir import RunDir
from curation.runner import Execution, build_preview
from curation.worldwide_preview import WorldwidePreview
from dashboard import access, messages
from studio_common import storage
from studio_common.errors import CurationError

# Runs and exports live in the folder the dashboard was started from (or where the variables say).
RUNS_DIR = Path(os.environ.get("CURATION_RUNS_DIR", "runs")).absolute()
EXPORT_DIR = Path(os.environ.get("CURATION_EXPORT_DIR", "exports")).absolute()
JOBS_DIR = Path(os.environ.get("CURATION_JOBS_DIR", RUNS_DIR / ".jobs")).absolute()
SAMPLE_RUN = RUNS_DIR / "sample"
ROOTS = access.Roots.from_env(RUNS_DIR, EXPORT_DIR, data_samples.SAMPLE_DIR)  # what the UI may open, read and write
SAMPLE_T = 200.0
MIN_T = 0.001  # the smallest t a number input takes (t for a tiny target size can be below 1)
T_STEP = 10.0  # what the + and - buttons of a t input add or take away
REMOTE_REFRESH_S = 300  # how often a run in object storage is checked for changed objects
RUN_PARAM = "run"  # the URL's query parameter that names the open run: a reload or a copied link keeps it
# The session's thresholds live under these plain keys, and each box that edits one under its own
# widget key ("t_box", "t2_box"): Streamlit drops a widget's state whenever a script run does not draw
# it (another page, or a fragment's timer on Export and Jobs), and t must follow the user everywhere.
SESSION_T = {"t": SAMPLE_T, "t2": SAMPLE_T * 5}


def init_state() -> None:
    """Session defaults, set once per session before any widget reads them."""
    if "run_dir" not in st.session_state:  # a new session: the run its URL names (a reload), else the sample
        st.session_state.run_dir = st.query_params.get(RUN_PARAM) or str(SAMPLE_RUN)
        st.session_state.url_run = st.query_params.get(RUN_PARAM)
    defaults = {**SESSION_T, "seed": None, "entry_search": "", "entry_id": None, "recent": []}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    # The seed box's state is re-assigned for the same reason as t's: kept when a page without it runs.
    if "seed" in st.session_state:
        st.session_state.seed = st.session_state.seed


def follow_url() -> None:
    """Open the run the URL names when the URL changed from outside this session's own writes: a link
    ("Open this run" while a job runs), the browser's back button. A URL without the parameter asks
    for nothing (Streamlit drops query parameters when the page changes)."""
    wanted = st.query_params.get(RUN_PARAM)
    if wanted and wanted != st.session_state.get("url_run"):
        st.session_state.run_dir = st.session_state.url_run = wanted


def show_run_in_url() -> None:
    """The open run in the address bar, so that a reload, a bookmark or a second tab opens it again."""
    if st.query_params.get(RUN_PARAM) != st.session_state.run_dir:
        st.query_params[RUN_PARAM] = st.session_state.run_dir
    st.session_state.url_run = st.session_state.run_dir


def sample_request(out: Path = SAMPLE_RUN) -> RunRequest:
    """The run of the bundled sample that a fresh clone opens on."""
    return RunRequest(str(data_samples.POOL), str(data_samples.METADATA), SAMPLE_T, 0, str(out), workers=1)


def make_sample_run() -> None:
    """Curate the bundled sample so a fresh clone opens on a real run."""
    command = curation_command(sample_request().arguments(quiet=True))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise CurationError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "sample run failed")


@st.cache_resource(
    ttl=REMOTE_REFRESH_S,
    max_entries=8,
    show_spinner="Copying the run from object storage (later opens copy only what changed)…",
)
def _copy_of(uri: str) -> Path:
    """A run in object storage, read from a local copy (curation/mirror.py) refreshed every few minutes:
    the dashboard only reads it (read-only is the contract for URIs)."""
    return RunDir.read_copy(uri)


def check_run_dir(path: str) -> Path:
    """A usable run directory, or a CurationError that says what is wrong with the path."""
    access.check_run_dir(path, ROOTS)  # first: a path outside is not even looked at
    root = _copy_of(path.rstrip("/")) if storage.is_uri(path) else Path(path).expanduser()
    if not root.is_dir():
        raise CurationError(f"{path} is not a directory")
    if not (root / "plan.json").exists() or not (root / "entry_counts.parquet").exists():
        raise CurationError(
            f"{path} is not a run directory (no plan.json and entry_counts.parquet); "
            "make one with `curation run` or on the Jobs page"
        )
    root = root.resolve()
    if not seeds(str(root), run_token(root)):
        raise CurationError(f"{path} has no complete keep thresholds yet; run `curation balance {path} --t T`")
    return root


def recent_runs() -> list[str]:
    """This session's runs, latest first, then the runs in the runs folder: what one user opened is
    never offered to another."""
    found = sorted(str(p.parent) for p in RUNS_DIR.glob("*/run.json")) if RUNS_DIR.is_dir() else []
    opened = list(st.session_state.get("recent", []))
    return opened + [p for p in found if p not in opened]


def remember_run(path: str) -> None:
    """A run of this session's Recent runs, as the user can type it again: a URI stays a URI, a local
    path is resolved."""
    path = path if storage.is_uri(path) else str(Path(path).expanduser().resolve())
    st.session_state.recent = ([path] + [p for p in st.session_state.get("recent", []) if p != path])[:10]


def run_token(root: Path) -> str:
    """Changes whenever a stage rewrites the run's summary (a new t, seed or match)."""
    record = root / "run.json"
    return f"{record.stat().st_mtime_ns if record.exists() else 0}"


@st.cache_resource(max_entries=4, show_spinner=False)
def _connection(root: str, metadata: str, token: str):
    extra = (Path(metadata),) if metadata and Path(metadata).exists() else ()
    return connect(Path(root), extra)


def query(root: Path) -> RunQuery:
    """Queries of the current run through a fresh cursor (one per script run)."""
    token = run_token(root)
    connection = _connection(str(root), plan(str(root), token).metadata.parquet_form() or "", token)
    return RunQuery(connection.cursor(), root)


@st.cache_data(max_entries=4, show_spinner=False)
def plan(root: str, token: str) -> Plan:
    """plan.json (megabytes for a run of thousands of shards: read once per run)."""
    return RunDir(Path(root)).plan()  # a corrupt file: one line, not a traceback


@st.cache_data(max_entries=8, show_spinner=False)
def record(root: str, token: str) -> dict:
    return query(Path(root)).record()


@st.cache_data(max_entries=4, show_spinner=False)
def entries(root: str, token: str) -> pd.DataFrame:
    return query(Path(root)).entry_counts().to_pandas()


@st.cache_resource(max_entries=4, show_spinner=False)  # 500k rows of lists: not worth copying per rerun
def sources(root: str, token: str) -> pd.DataFrame | None:
    table = plan(root, token).metadata.parquet_form()
    return query(Path(root)).entry_sources(Path(table)) if table else None


@st.cache_data(max_entries=4, show_spinner=False)
def matches_per_text(root: str, seed: int, token: str) -> pd.DataFrame:
    """How many pairs match 0, 1, 2, ... entries (counted when the preview was made)."""
    counted = preview_files.describe(RunDir(Path(root)), seed)["matches_per_pair"]
    return pd.DataFrame({"matches": range(len(counted)), "pairs": counted})


@st.cache_data(max_entries=4, show_spinner=False)
def seeds(root: str, token: str) -> list[int]:
    """Seeds whose keep thresholds are complete (a look at every shard: cached, as runs have thousands)."""
    return RunDir(Path(root)).complete_seeds()


def pool_token(root: Path) -> str:
    """The pool's part of the cache key of every page that shows pairs, and its check. A run's pairs are
    read from its pool (curation/pairs.py), so each pool file must lie under the data roots (the
    dashboard shows rows only from where it may read), and a local file's size and time (a stat each)
    join the key: a pool changed since the run is refused at once, not served from the cache."""
    state = hashlib.sha256()
    for signature in plan(str(root), run_token(root)).files:
        path = signature["path"]
        access.check_readable("the run's pool file", path, ROOTS)
        if not storage.is_uri(path):
            try:
                found = os.stat(path)
                state.update(f"{path}:{found.st_size}:{found.st_mtime_ns};".encode())
            except OSError:
                state.update(f"{path}:gone;".encode())
    return state.hexdigest()[:16]


@st.cache_data(max_entries=16, show_spinner="Finding pairs...")
def samples(
    root: str,
    token: str,
    t: float,
    seed: int,
    kept: bool,
    entry_id: int | None,
    limit: int,
    language: str | None = None,
) -> tuple[pd.DataFrame, int, int]:
    """A page of kept or dropped pairs (searched shard by shard), and how many shards were searched."""
    columns = [c for c in query(Path(root)).columns() if c not in ("entry_ids", "pair_key")]
    found = find_pairs(Path(root), seed, t, kept, columns, entry_id, limit, language=language)
    return found.table.to_pandas(), found.shards_searched, found.shards


@st.cache_data(max_entries=32, show_spinner=False)
def texts_with_entry(root: str, token: str, seed: int, entry_id: int, limit: int = 10) -> list[str]:
    """Captions of some pairs that match the entry (from the preview's sample first)."""
    text = plan(root, token).columns.text
    found = find_pairs(Path(root), seed, float("inf"), True, [text], entry_id, limit)
    return found.table.column(text).to_pylist()


DEFAULT_GAPS = "gaps.parquet"  # what `curation gaps RUN_DIR` writes under GAPS_FOLDER


def gaps_files(root: Path) -> list[Path]:
    """The run's gaps tables (RUN_DIR/gaps/*.parquet; --out may have added more), the default first."""
    folder = root / GAPS_FOLDER
    found = folder.glob("*.parquet") if folder.is_dir() else []
    return sorted(found, key=lambda path: (path.name != DEFAULT_GAPS, path.name))


def gaps_version(path: Path) -> str:
    """The cache key of a gaps file's content: rewritten files (atomically, by a rename) get a new one."""
    found = path.stat()
    return f"{found.st_mtime_ns}:{found.st_size}"


@st.cache_data(max_entries=8, show_spinner=False)
def gaps(path: str, version: str) -> Gaps:
    """A gaps table and its summary, read once per version of the file (a one-line CurationError if
    it is not one `curation gaps` wrote)."""
    return read_gaps(path)


def ensure_preview(root: Path, seed: int) -> None:
    """Build the seed's preview files if the run has none (runs made before them), with a progress bar."""
    if preview_files.is_complete(RunDir(root), seed):
        return
    bar = st.progress(0.0, text="Preparing this run for the dashboard (once per seed)...")

    def progress(what: str, done: int, total: int) -> None:
        bar.progress(
            min(done / max(total, 1), 1.0), text=f"Preparing this run for the dashboard: {what} ({done:,} of {total:,})"
        )

    execution = Execution(progress=False)
    with execution.start() as engine:
        build_preview(str(root), seed, execution, engine, on_progress=progress)
    bar.empty()


@st.cache_resource(max_entries=3, show_spinner="Opening the run's preview...")
def preview(root: str, seed: int, token: str) -> BalancePreview | WorldwidePreview:
    """Exact sizes and estimates at any t from memory-mapped files: opened once per run and seed."""
    return preview_files.open_preview(RunDir(Path(root)), seed)


@st.cache_data(max_entries=64, show_spinner=False)
def expected_size(root: str, seed: int, token: str, t: float) -> Estimate:
    return preview(root, seed, token).expected_size_at(t)


@st.cache_data(max_entries=16, show_spinner=False)
def language_rows(root: str, seed: int, token: str, t: float) -> pd.DataFrame | None:
    """A worldwide run's figures per language at the reference t (None for a run of one language)."""
    preview_ = preview(root, seed, token)
    return pd.DataFrame(preview_.language_rows(t)) if preview_.rule.worldwide else None


def languages(root: str, seed: int, token: str) -> list[str]:
    """A worldwide run's languages, sorted (empty for a run of one language)."""
    return preview(root, seed, token).rule.languages


def entry_t(root: str, seed: int, token: str, t: float) -> np.ndarray | float:
    """t of each entry (its language's in a worldwide run), or t itself."""
    return preview(root, seed, token).rule.entry_t(t)


def t_label(root: str, seed: int, token: str, t: float, language: str | None = None) -> str:
    """The t a statement is made at, as a worldwide run applies it: the language's own t (MetaCLIP 2
    scales t per language), never the reference's where another language's applies."""
    per_language = preview(root, seed, token).rule.at(float(t)).per_language
    if per_language is None:
        return f"t = {t:g}"
    if language is not None:
        return f"{language}'s t = {per_language[language]:g}"
    shown = ", ".join(f"{code} {value:g}" for code, value in sorted(per_language.items()))
    return f"each caption language's own t ({shown})"


@st.cache_data(max_entries=16, show_spinner=False)
def balanced_counts(root: str, seed: int, token: str, t: float) -> tuple[np.ndarray, np.ndarray]:
    return preview(root, seed, token).balanced_counts(t)


@st.cache_resource(max_entries=2, show_spinner="Reading both runs' entries and keep thresholds (once)...")
def comparer(root_a: str, token_a: str, seed_a: int, root_b: str, token_b: str, seed_b: int) -> Comparer:
    """Two runs for the Compare page, read once per version of either (their tokens): entry tables joined
    by text and, on one pool, the pairs either matched with their k (a resource: arrays proportional to
    the matched pairs, shared, never copied per rerun)."""
    found = Comparer(root_a, root_b, seed_a, seed_b)
    found.entries, found.pairs  # noqa: B018 (read now, under the spinner, not at the first t)
    return found


@st.cache_resource(max_entries=16, show_spinner=False)
def comparison(root_a: str, token_a: str, seed_a: int, root_b: str, token_b: str, seed_b: int, t: float) -> Comparison:
    """The two runs at t, answered from ``comparer``'s arrays, keyed by both tokens like every cache here. A
    resource, not data: an answer holds every entry of both lists (half a million rows each), and
    st.cache_data's copy per rerun (a pickle round trip) took 70 ms of the page's 230 (bench/results/
    compare.md); the pages only read it, and each answer shares the entry table's columns (pandas'
    copy-on-write), adding two small columns of sides."""
    return comparer(root_a, token_a, seed_a, root_b, token_b, seed_b).at(t)


def estimate_text(estimate: Estimate, digits: int = 0) -> str:
    """An estimate as shown: the value alone when exact, else value ± two standard errors."""
    if estimate.exact:
        return f"{estimate.value:,.1f}"
    return f"≈{estimate.value:,.{digits}f} ± {estimate.margin:,.{digits}f}"


def estimate_note(preview_: BalancePreview) -> str:
    sample = preview_.sample
    if sample.size >= sample.population:
        return "Every matched pair counted: exact."
    return (
        f"Estimated from a uniform sample of {sample.size:,} of the {sample.population:,} matched pairs; "
        f"± is {INTERVAL:g} standard errors (about 95%)."
    )


def thousands(columns: list[str]) -> dict:
    """st.dataframe column settings that show these number columns with thousands separators."""
    return {name: st.column_config.NumberColumn(format="localized") for name in columns}


def current_run() -> tuple[Path, str, int] | None:
    """(run directory, token, seed) of the selected run; None (with a message shown) if unusable."""
    try:
        root = check_run_dir(st.session_state.run_dir)
    except CurationError as error:
        messages.error(error)
        return None
    token = run_token(root)
    available = seeds(str(root), token)
    seed = st.session_state.seed
    if seed not in available:
        seed = record(str(root), token).get("parameters", {}).get("seed", available[0])
        seed = seed if seed in available else available[0]
    try:
        ensure_preview(root, int(seed))
    except CurationError as error:
        messages.error(error)
        return None
    return root, token, int(seed)


def page_context() -> tuple[Path, str, int, float]:
    """(run directory, token, seed, t) for a page that needs all four; stops the page with a message
    when the run directory or t is unusable."""
    current = current_run()
    t = current_t() if current is not None else None
    if current is None or t is None:
        st.stop()
    return (*current, t)


def usable_t(value: object) -> float | None:
    """``value`` as a t the engine takes (a finite number of at least MIN_T), else None."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) and t >= MIN_T else None


def t_input(container: DeltaGenerator, label: str, key: str, **kwargs: object) -> float:
    """A box for a threshold t, in steps of T_STEP; returns the t to use. The browser gets no minimum:
    given one, Chromium refuses 0 or -5 without a word and the old figures stay up. Here a value the
    engine cannot take (0, a negative, an empty box, 1e309) becomes MIN_T, with a warning that says so.
    The session's t and t2 (SESSION_T) are edited through a box of their own key (KEY_box) that is
    set from them on every run; other keys (a form's t) are the box's own value."""
    kwargs.setdefault(
        "help",
        f"A positive number of matches: entries matched more than t times keep about t of their pairs; "
        f"the others keep all. 0, a negative or an endless number becomes {MIN_T:g}.",
    )
    session = key in SESSION_T
    box = f"{key}_box" if session else key
    if session:
        st.session_state[box] = st.session_state[key]
        kwargs.update(on_change=_session_t_changed, args=(key,))
    typed = container.number_input(label, key=box, step=T_STEP, format="%g", **kwargs)
    if session:  # what the box refused, while t is still what it became (the slider or Find t may move it)
        refused = st.session_state.get(f"{key}_refused") if st.session_state[key] == MIN_T else None
    else:
        refused = None if usable_t(typed) else _shown(typed)
    if refused is not None:
        messages.warning(
            f"{label} must be a positive, finite number: {refused} became {MIN_T:g}. "
            f"Type a t such as {SAMPLE_T:g} or 2e4 and press Enter.",
            container,
        )
    return float(st.session_state[key]) if session else (usable_t(typed) or MIN_T)


def _shown(value: object) -> str:
    return "an empty box" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _session_t_changed(key: str) -> None:
    """The box of a session t was changed: keep a usable value, or MIN_T and remember what was refused."""
    typed = st.session_state[f"{key}_box"]
    value = usable_t(typed)
    if value is None:
        st.session_state[f"{key}_refused"] = _shown(typed)
    else:
        st.session_state.pop(f"{key}_refused", None)
    st.session_state[key] = value or MIN_T


def current_t() -> float | None:
    """The t of the session, or None with a message when it is not a positive, finite number."""
    t = st.session_state.t
    if usable_t(t) is None:
        messages.error(
            f"t must be a finite number of at least {MIN_T:g} (got {t}): type one such as {SAMPLE_T:g} or 2e4 "
            "in the t box of the Balance page and press Enter"
        )
        return None
    return float(t)
