"""Shared fixtures: small pools and metadata written by the tests themselves."""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.cli import main

# Hypothesis profiles. "ci", the default, is what the README's test command and CI run: new random
# cases on every run, no example database, deadline off, and 10,000 examples for the matcher property
# test (tests/test_matchers.py), which takes the profile's max_examples. "dev", for quick local runs:
# a tenth of the examples, random ones, with the example database. Chosen by HYPOTHESIS_PROFILE=dev,
# or by the hypothesis plugin's --hypothesis-profile=dev, which wins over the variable. Other property
# tests size themselves relative to the profile with examples() below.
CI_EXAMPLES = 10_000


@pytest.hookimpl(tryfirst=True)  # before the hypothesis plugin loads a --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    # Imported here, not at the top: worker processes that import this module (to unpickle a stage
    # defined in a test module) need no hypothesis.
    from hypothesis import HealthCheck, settings

    # Fresh random cases on every run (each run explores more of the space), none kept on disk; a
    # failure prints the blob that reproduces it (@reproduce_failure).
    settings.register_profile(
        "ci",
        settings.get_profile("default"),
        max_examples=CI_EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("dev", settings.get_profile("default"), max_examples=CI_EXAMPLES // 10, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The suite runs on every core (pytest-xdist, one test file per worker at a time so that module
# fixtures are made once). Files are handed out in collection order (--no-loadscope-reorder: xdist
# would otherwise put the files with the most tests first), so the longest go first and the workers
# finish together; measured on 2 workers, these take 20-170 s each, the rest under 20 s.
LONGEST_FIRST = (
    "test_remote_run_dir.py",
    "test_browser.py",
    "test_matchers.py",
    "test_engines.py",
    "test_packaging.py",
    "test_remote_storage.py",
    "test_dashboard.py",
    "test_worldwide_run.py",
    "test_jobs.py",
    "test_metadata_wikitext.py",
    "test_resume.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def examples(ci: int) -> int:
    """A property test's example count: ``ci`` under the ci profile, scaled as the loaded profile is
    (a tenth under dev), never below 10. Called when a test module is imported, after the profile is
    chosen."""
    from hypothesis import settings

    return max(10, ci * settings.default.max_examples // CI_EXAMPLES)


def texts_of(elements: Sequence) -> list[str]:
    """The text a reader sees in Streamlit message elements (error, warning, info, success, caption):
    their Markdown with backslash escapes undone (dashboard/messages.py escapes what it shows as is)."""
    return [re.sub(r"\\(.)", r"\1", element.value) for element in elements]


WORDS = [
    "dog",
    "cat",
    "red",
    "sofa",
    "new",
    "york",
    "city",
    "hot",
    "beach",
    "sunset",
    "the",
    "a",
    "of",
    "in",
    "photo",
    "chair",
    "table",
    "coffee",
    "vintage",
    "poster",
    "Paris",
    "blue",
    "car",
    "tree",
]
ENTRIES = [
    "dog",
    "cat",
    "red",
    "sofa",
    "new york",
    "york city",
    "new york city",
    "hot dog",
    "beach",
    "sunset",
    "the",
    "of",
    "in",
    "photo",
    "coffee table",
    "vintage poster",
    "Paris",
    "U.S.",
    "never matched",
    "blue car",
    "tree",
]


WRAPPED = ",.;:?!`"
CONTROLS = "\t\n\r"


@pytest.fixture(scope="session", autouse=True)
def ray_temp_dir() -> Iterator[Path]:
    """Every local Ray a test starts (here or in a child process) keeps its session files in a folder
    of this test session, removed at its end: left to itself Ray fills /tmp/ray/session_* for good."""
    directory = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths must stay under 108 bytes
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_TMPDIR", str(directory))
    try:
        yield directory
    finally:
        patch.undo()
        shutil.rmtree(directory, ignore_errors=True)


def naive_spacing(text: str) -> str:
    """The spacing rule written out character by character, independently of the engine."""
    out = [" "]
    for char in text:
        if char in WRAPPED:
            out.append(f" {char} ")
        elif char in CONTROLS:
            out.append(" ")
        else:
            out.append(char)
    out.append(" ")
    return "".join(out)


def naive_match(entries: Sequence[str], text: str | None) -> list[int]:
    """For each entry: does " " + e + " " occur in the spaced text? Null and empty match nothing."""
    if not text:
        return []
    spaced = naive_spacing(text)
    return [entry_id for entry_id, entry in enumerate(entries) if f" {entry} " in spaced]


def caption(rng: random.Random) -> str | None:
    """Alt-text-like captions with punctuation, case and the occasional null or empty text."""
    roll = rng.random()
    if roll < 0.02:
        return None
    if roll < 0.04:
        return ""
    if roll < 0.15:
        return f"IMG_{rng.randint(1000, 9999)}.jpg"
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 9))]
    text = " ".join(words)
    if rng.random() < 0.3:
        text += rng.choice([",", ".", "!", " (2019)", " - sale"])
    return text


def make_texts(n: int, seed: int = 7) -> list[str | None]:
    rng = random.Random(seed)
    return [caption(rng) for _ in range(n)]


def write_pool(directory: Path, columns: dict[str, list], files: int = 1, row_group_size: int = 500) -> Path:
    """Write the columns as ``files`` Parquet files under ``directory``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    per_file = -(-table.num_rows // files) if files else 0
    for index in range(files):
        part = table.slice(index * per_file, per_file)
        pq.write_table(part, directory / f"part-{index:03d}.parquet", row_group_size=row_group_size)
    return directory


@pytest.fixture
def texts() -> list[str | None]:
    return make_texts(3000)


def write_caption_pool(directory: Path, texts: Sequence[str | None]) -> Path:
    """The pool of the ``pool`` fixture: ids from 10,000, an image url each, the texts; two files."""
    ids = list(range(10_000, 10_000 + len(texts)))
    urls = [f"https://img.example.com/{i}.jpg" for i in ids]
    return write_pool(directory, {"id": ids, "url": urls, "text": list(texts)}, files=2)


@pytest.fixture
def pool(tmp_path: Path, texts: Sequence[str | None]) -> Path:
    return write_caption_pool(tmp_path / "pool", texts)


@pytest.fixture
def metadata(tmp_path: Path) -> Path:
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(ENTRIES))
    return path


def cli(*args: object) -> int:
    """Run the CLI in this process (quietly, one worker unless asked) and return its exit code."""
    argv = [str(a) for a in args]
    if argv[0] in ("run", "match", "balance") and "--quiet" not in argv:
        argv.append("--quiet")
    if argv[0] in ("run", "match", "balance") and "--workers" not in argv:
        argv += ["--workers", "1"]
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def read_dir(directory: Path, columns: Sequence[str] | None = None) -> pa.Table:
    files = sorted(directory.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def run_pairs(out: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every pair of a run, in its order, read as its readers read it: the index beside the pool
    (default: every column a pair has, the pool's, then the run's)."""
    from curation.pairs import PairReader
    from curation.rundir import RunDir

    pairs = PairReader(RunDir(Path(out)))
    wanted = pairs.names if columns is None else list(columns)
    tables = [pairs.table(shard, wanted) for shard in pairs.plan.shard_indices]
    return pa.concat_tables(tables) if tables else pa.schema([pairs.schema.field(c) for c in wanted]).empty_table()


def curated(out: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The curated manifest a run wrote at the t and seed of its record (manifests/), as a table."""
    from curation.export import run_manifest_name

    parameters = json.loads((Path(out) / "run.json").read_text())["parameters"]
    return pq.read_table(
        Path(out) / "manifests" / run_manifest_name(parameters["t"], parameters["seed"]), columns=columns
    )


@contextmanager
def dashboard_environment(settings: Mapping[str, str | None], address: str | None = None) -> Iterator[None]:
    """The dashboard's environment variables set (None: unset) and dashboard.data reloaded to read them,
    optionally with Streamlit's server.address; all as before afterwards."""
    import streamlit.config

    import dashboard.data

    saved = {key: os.environ.get(key) for key in settings}
    saved_address = streamlit.config.get_option("server.address")
    for key, value in settings.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if address is not None:
        streamlit.config.set_option("server.address", address)
    importlib.reload(dashboard.data)
    try:
        yield
    finally:
        streamlit.config.set_option("server.address", saved_address)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        importlib.reload(dashboard.data)


@contextmanager
def s3_store(cache: Path, bucket: str) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with an empty ``bucket``, AWS_* and the store cache (``cache``) set
    for this process and its workers while the block runs; yields the endpoint."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from servers import s3_server

    with s3_server() as endpoint, pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "CURATION_CACHE_DIR": str(cache),
        }.items():
            patch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint


@pytest.fixture(scope="module")
def s3_bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``s3_store`` for a whole test module, with an empty bucket; yields the bucket's name."""
    with s3_store(tmp_path_factory.mktemp("s3-cache"), "subsets"):
        yield "subsets"


# A small worldwide run (MetaCLIP 2) whose metadata has no 'other' list (captions in French or without a
# code match nothing) and a language no caption is in (ja: no kept share); the dashboard's and the data
# card's tests read it.
WORLD_METADATA = {
    "en": ["dog", "cat", "hot dog", "red", "photo", "car", "the"],
    "zh": ["狗", "猫", "照片"],
    "de": ["Hund", "Katze", "Foto", "dog"],
    "ja": ["犬", "猫"],
}
WORLD_WORDS = {
    "en": ["a", "dog", "cat", "hot", "red", "photo", "the", "car", "in"],
    "zh": ["一只", "狗", "猫", "的", "照片"],
    "de": ["ein", "Hund", "Katze", "Foto", "der"],
    "fr": ["un", "chien", "photo"],
}


def small_world_run(base: Path, out: Path, t: float, seed: int = 5) -> Path:
    """4,000 captions with a language column, their pool and metadata under ``base``, run at t into ``out``."""
    rng = random.Random(seed)
    codes = [rng.choice(["en"] * 6 + ["zh"] * 2 + ["de", "fr", None]) for _ in range(4000)]
    texts = [
        ("" if code == "zh" else " ").join(rng.choice(WORLD_WORDS[code or "en"]) for _ in range(rng.randint(1, 5)))
        for code in codes
    ]
    pool = write_pool(base / "pool", {"id": list(range(len(texts))), "text": texts, "lang": codes})
    entries = [(entry, language) for language, words in WORLD_METADATA.items() for entry in words]
    metadata = base / "metadata.parquet"
    pq.write_table(pa.table({"entry": [e for e, _ in entries], "language": [lang for _, lang in entries]}), metadata)
    assert cli("run", "--pool", pool, "--metadata", metadata, "--language-column", "lang", "--t", t, "--out", out) == 0
    return out
