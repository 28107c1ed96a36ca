"""Run directories in object storage, against moto's S3 server on 127.0.0.1: `run --pool s3:// --metadata
s3:// --out s3://` curates exactly what the same run on local files does, with the local engine and
with Ray tasks that share no disk with the driver; a run killed at any stage and started again ends
with the same result; the lock object keeps a second writer out; readers (stats, export, the
dashboard, the Jobs page) work on a run that lives in the store."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, make_texts, read_dir, run_pairs, write_pool
from processes import kill_when, start_run
from servers import s3_server

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

pytestmark = [pytest.mark.remote, pytest.mark.slow]  # every test uses the store: a run over SHARDS shards in moto

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "lab"
POOL = f"s3://{BUCKET}/laion/"
METADATA = f"s3://{BUCKET}/meta/metadata.json"
T, SEED, SHARD_ROWS = 40, 3, 2_000
# Enough shards for a kill to land between two of them; each costs a few dozen requests to moto, which
# is what a run here spends its time on (the number of rows hardly matters).
SHARDS = 12
# How often a test asks moto whether a run got somewhere: a listing costs moto milliseconds of CPU, and
# at 100 a second moto took most of a core from the run it watched (a shard takes a few hundred ms).
POLL_S = 0.1
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """moto's S3 server holding a pool (SHARDS shards) and a metadata list, the variables set for this
    process and the ones it starts, and the reference: the same run over the same files on local disk."""
    base = tmp_path_factory.mktemp("remote-run")
    texts = make_texts(SHARDS * SHARD_ROWS, seed=5)
    ids = list(range(len(texts)))
    write_pool(
        base / "pool",
        {"id": ids, "url": [f"https://img.example.com/{i}.jpg" for i in ids], "text": texts},
        files=3,
        row_group_size=1_000,
    )
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    assert (
        cli(
            "run",
            "--pool",
            base / "pool",
            "--metadata",
            base / "metadata.json",
            "--t",
            T,
            "--seed",
            SEED,
            "--shard-rows",
            SHARD_ROWS,
            "--out",
            base / "reference",
            "--quiet",
        )
        == 0
    )
    patch = pytest.MonkeyPatch()
    with s3_server() as endpoint:
        for name, value in {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "RAY_AUTH_MODE": "disabled",
            "CURATION_CACHE_DIR": str(base / "driver-cache"),
            "CURATION_LOCK_LEASE_S": "5",
        }.items():
            patch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        for part in sorted((base / "pool").glob("*.parquet")):
            client.upload_file(str(part), BUCKET, f"laion/{part.name}")
        client.upload_file(str(base / "metadata.json"), BUCKET, "meta/metadata.json")
        try:
            yield {
                "base": base,
                "client": client,
                "endpoint": endpoint,
                "fs": pafs.S3FileSystem(
                    endpoint_override=endpoint, access_key="testing", secret_key="testing", region="us-east-1"
                ),
            }
        finally:
            patch.undo()


def run_args(out: str, *extra: object) -> list[object]:
    return [
        "run",
        "--pool",
        POOL,
        "--metadata",
        METADATA,
        "--t",
        T,
        "--seed",
        SEED,
        "--shard-rows",
        SHARD_ROWS,
        "--out",
        out,
        "--quiet",
        *extra,
    ]


def keys(store: dict, prefix: str) -> list[str]:
    pages = store["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def read_json(store: dict, key: str) -> dict:
    return json.loads(store["client"].get_object(Bucket=BUCKET, Key=key)["Body"].read())


def manifest_ids(store: dict, run: str, t: float) -> list[int]:
    """The ids of the curated manifest object at (t, SEED) in the store, which says it was made at them."""
    from curation.export import run_manifest_name

    key = f"{run}/manifests/{run_manifest_name(t, SEED)}"
    provenance = read_json(store, f"{key}.provenance.json")
    assert (provenance["t"], provenance["seed"], provenance["columns"]) == (t, SEED, "all")
    ids = pq.read_table(f"{BUCKET}/{key}", filesystem=store["fs"], columns=["id"]).column("id").to_pylist()
    assert provenance["rows"] == len(ids)
    return sorted(ids)


def curated_ids(store: dict, run: str) -> list[int]:
    """The curated ids as a reader of the store finds them: run.json's t and seed, and the manifest
    object the run wrote at them."""
    assert read_json(store, f"{run}/run.json")["parameters"] == {"t": T, "seed": SEED}
    return manifest_ids(store, run, T)


def reference_ids(store: dict, t: float = T) -> list[int]:
    """Ids kept at t in the local reference run, from its pairs' ids and stored thresholds."""
    reference = store["base"] / "reference"
    ids = run_pairs(reference, ["id"]).column("id").to_numpy()
    thresholds = read_dir(reference / "thresholds" / f"seed-{SEED}", ["k"]).column("k").to_numpy()
    return sorted(ids[thresholds < t].tolist())


def assert_same_as_reference(store: dict, run: str) -> None:
    kept = curated_ids(store, run)
    assert kept == reference_ids(store)
    counts = pq.read_table(f"{BUCKET}/{run}/entry_counts.parquet", filesystem=store["fs"])
    assert counts.equals(pq.read_table(store["base"] / "reference" / "entry_counts.parquet"))
    record = read_json(store, f"{run}/run.json")
    assert record["status"] == "complete" and record["rows"]["in"] == SHARDS * SHARD_ROWS
    assert record["rows"]["kept"] == len(kept)
    assert f"{run}/.lock" not in keys(store, f"{run}/"), "the lock is released when the run ends"


@pytest.fixture(scope="module")
def ray_elsewhere(store: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray whose workers behave like another machine's: started where no AWS variable is set
    (the driver forwards its own) and with a cache folder of their own, so nothing reaches them
    through the driver's disk. Yields the workers' cache folder. One for the module: the run on Ray
    and the resumed killed run share it (a Ray start costs seconds of CPU)."""
    ray = pytest.importorskip("ray")
    tmp_path = tmp_path_factory.mktemp("ray-elsewhere")
    if ray.is_initialized():
        ray.shutdown()
    patch = pytest.MonkeyPatch()
    for name in (*CREDENTIALS, "AWS_ENDPOINT_URL"):
        patch.delenv(name)
    patch.setenv("CURATION_CACHE_DIR", str(tmp_path / "node-cache"))
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    finally:
        patch.undo()
    try:
        yield tmp_path / "node-cache"
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_run(store: dict) -> str:
    """A run in the store made by the local engine on 2 workers; the readers' tests share it (they
    write nothing into it: the dashboard's test checks that)."""
    assert cli(*run_args(f"s3://{BUCKET}/runs/local", "--workers", 2)) == 0
    return f"s3://{BUCKET}/runs/local"


def test_a_run_in_s3_with_the_local_engine_curates_what_local_files_give(store: dict, local_run: str) -> None:
    assert_same_as_reference(store, "runs/local")
    # every shard's outputs and marker, published object by object; nothing temporary left behind
    names = keys(store, "runs/local/")
    assert sum(k.startswith("runs/local/shards/") and k.endswith(".json") for k in names) == SHARDS
    assert sum(k.startswith("runs/local/index/") for k in names) == SHARDS
    assert sum(k.startswith(f"runs/local/thresholds/seed-{SEED}/") for k in names) == SHARDS
    assert not [k for k in names if "/." in k.removeprefix("runs/local/").replace("/.lock", "")]


@pytest.mark.ray
def test_a_run_in_s3_on_ray_reads_and_writes_only_through_the_store(store: dict, ray_elsewhere: Path) -> None:
    assert cli(*run_args(f"s3://{BUCKET}/runs/ray", "--engine", "ray", "--workers", 2)) == 0
    assert_same_as_reference(store, "runs/ray")
    driver_cache = store["base"] / "driver-cache"
    # the tasks worked on their own copies, and dropped the large files once published (the driver's
    # run copy too): the manifest's parts and provenance as well
    assert ray_elsewhere.is_dir() and (driver_cache / "runs").is_dir()
    for cache in (driver_cache / "runs", ray_elsewhere):
        assert not list(cache.rglob("index/part-*")) and not list(cache.rglob("thresholds/*/part-*"))
        assert not list(cache.rglob("preview/pieces-*/*.npz"))
        assert not [path for path in cache.rglob("manifests/**/*") if path.is_file()]


def test_export_and_stats_read_a_run_in_s3(store: dict, local_run: str, capsys: pytest.CaptureFixture) -> None:
    run = local_run
    capsys.readouterr()
    assert cli("stats", run, "--t", T, "--json", "--quiet") == 0
    remote = json.loads(capsys.readouterr().out)
    assert cli("stats", store["base"] / "reference", "--t", T, "--json") == 0
    local = json.loads(capsys.readouterr().out)
    assert remote["at_t"] == local["at_t"] and remote["run_dir"] == run
    assert cli("export", run, "--t", T, "--out", f"s3://{BUCKET}/manifests/m.parquet", "--quiet") == 0
    manifest = pq.read_table(f"{BUCKET}/manifests/m.parquet", filesystem=store["fs"])
    assert manifest.column_names == ["url", "caption"] and manifest.num_rows == len(reference_ids(store))
    provenance = read_json(store, "manifests/m.parquet.provenance.json")
    assert provenance["run_dir"] == run and provenance["rows"] == manifest.num_rows


def _versions(store: dict, prefix: str) -> dict[str, tuple]:
    """Every object under a prefix with its ETag (its content's MD5) and time: what a new PUT changes."""
    pages = store["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"]: (item["ETag"], item["LastModified"]) for page in pages for item in page.get("Contents", [])}


def test_balance_at_another_t_is_recorded_in_the_store_and_writes_its_manifest_when_asked(store: dict) -> None:
    from curation import Run
    from curation.export import run_manifest_name

    run = f"s3://{BUCKET}/runs/rebalanced"
    assert cli(*run_args(run)) == 0
    assert Run(run).t == T  # a reader's copy, made now ...
    before = _versions(store, "runs/rebalanced/")
    assert cli("balance", run, "--t", 15, "--quiet") == 0
    assert Run(run).t == 15  # ... and refreshed: run.json has the same size, and likely the same second
    record = read_json(store, "runs/rebalanced/run.json")
    assert record["parameters"] == {"t": 15, "seed": SEED}
    assert record["rows"]["kept"] == len(reference_ids(store, 15))
    # a new t is read from the seed's thresholds and preview, made once: without --write-manifest,
    # run.json is the one object it writes
    after = _versions(store, "runs/rebalanced/")
    assert {k for k in after if after[k] != before.get(k)} == {"runs/rebalanced/run.json"}
    assert after.keys() == before.keys()
    assert cli("balance", run, "--t", 15, "--write-manifest", "--quiet") == 0
    assert manifest_ids(store, "runs/rebalanced", 15) == reference_ids(store, 15)
    assert manifest_ids(store, "runs/rebalanced", T) == reference_ids(store)  # the run's own stays
    shards = [shard["index"] for shard in read_json(store, "runs/rebalanced/plan.json")["shards"]]
    assert keys(store, "runs/rebalanced/manifests/") == sorted(  # a part per shard, then the provenance
        f"runs/rebalanced/manifests/{name}{suffix}"
        for name in (run_manifest_name(T, SEED), run_manifest_name(15, SEED))
        for suffix in [f"/part-{shard:05d}.parquet" for shard in shards] + [".provenance.json"]
    )
    assert read_json(store, "runs/rebalanced/run.json")["parameters"] == {"t": 15, "seed": SEED}


def _markers(store: dict, run: str) -> int:
    return sum(k.endswith(".json") for k in keys(store, f"{run}/shards/"))


def _thresholds(store: dict, run: str) -> int:
    return sum(k.endswith(".parquet") for k in keys(store, f"{run}/thresholds/seed-{SEED}/"))


@pytest.mark.parametrize(
    ("engine", "stage"),
    [pytest.param("ray", "match", marks=pytest.mark.ray), ("local", "match"), ("local", "balance")],
)
def test_a_run_in_s3_killed_and_started_again_ends_the_same(
    store: dict, engine: str, stage: str, capsys: pytest.CaptureFixture, request: pytest.FixtureRequest
) -> None:
    """Killed in its own process (on Ray: with its own local Ray, which dies with it), then resumed in
    this one (on Ray: on the module's Ray, whose workers share no disk with this driver)."""
    if engine == "ray":
        request.getfixturevalue("ray_elsewhere")
    run = f"runs/killed-{engine}-{stage}"
    args = [
        str(a)
        for a in run_args(
            f"s3://{BUCKET}/{run}", "--engine", engine, "--workers", 1 if stage == "match" and engine == "local" else 2
        )
    ]
    process = start_run(args)
    if stage == "match":
        ready = lambda: _markers(store, run) > 0  # noqa: E731
    else:  # the seed's keep thresholds are being written: some shards' parts exist
        ready = lambda: _thresholds(store, run) > 0  # noqa: E731
    assert not kill_when(process, ready, poll_s=POLL_S), "processes outlived the killed run"
    markers = _markers(store, run)
    if stage == "match":
        assert 0 < markers < SHARDS, f"the kill should land while shards are matched: {process.stderr.read()}"
    else:
        thresholds = _thresholds(store, run)
        assert markers == SHARDS and 0 < thresholds < SHARDS, (
            f"the kill should land while threshold parts are written ({thresholds} of {SHARDS}): "
            f"{process.stderr.read()}"
        )
    assert not keys(store, f"{run}/run.json") and not keys(store, f"{run}/manifests/")
    assert keys(store, f"{run}/.lock"), "a killed run leaves its lock behind"
    capsys.readouterr()
    assert cli(*args) == 0  # same host, its holder gone: the lock is taken over at once
    if stage == "match":
        assert f"resuming: {markers} of {SHARDS} shards already matched" in capsys.readouterr().err
    assert_same_as_reference(store, run)


def _put_lock(store: dict, run: str, host: str, expires: float) -> None:
    store["client"].put_object(
        Bucket=BUCKET, Key=f"{run}/.lock", Body=json.dumps({"host": host, "pid": 1, "expires": expires}).encode()
    )


def _lock_object(store: dict, run: str) -> tuple[str, dict]:
    """The lock object's ETag (its version) and what it says."""
    found = store["client"].get_object(Bucket=BUCKET, Key=f"{run}/.lock")
    return found["ETag"], json.loads(found["Body"].read())


def _renewed(store: dict, run: str, etag: str, seconds: float = 60.0) -> dict:
    """The lock object once a new version of it replaced ``etag`` (polled, up to ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        current, holder = _lock_object(store, run)
        if current != etag:
            return holder
        assert time.monotonic() < deadline, f"the lock was not renewed within {seconds} s"
        time.sleep(POLL_S)


def test_the_lock_object_keeps_a_second_writer_out(
    store: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation import mirror

    uri = f"s3://{BUCKET}/runs/locked"
    with mirror.exclusive(mirror.open_run(uri)):
        capsys.readouterr()
        assert cli(*run_args(uri)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: another curation process (pid ") and f"holds {uri}/.lock" in err
        assert len(err.splitlines()) == 1
        # The holder renews its lease while it lives: the lock object gets a new version, still this
        # process's, that ends later than the first.
        etag, first = _lock_object(store, "runs/locked")
        renewed = _renewed(store, "runs/locked", etag)
        assert (renewed["host"], renewed["pid"]) == (first["host"], first["pid"]) == (socket.gethostname(), os.getpid())
        assert renewed["expires"] > first["expires"]
        # A writer that comes once the first lease has run out (its clock set between the two ends)
        # would take over the first version of the lock, and is kept out by the renewed one.
        after_first_lease = (first["expires"] + renewed["expires"]) / 2
        assert mirror._may_take_over(first, after_first_lease)
        judge = mirror._may_take_over
        with monkeypatch.context() as clock:
            clock.setattr(mirror, "_may_take_over", lambda holder, now: judge(holder, after_first_lease))
            assert cli(*run_args(uri)) == 2
        assert "holds" in capsys.readouterr().err
    assert not keys(store, "runs/locked/.lock") and not keys(store, "runs/locked/plan.json")
    _put_lock(store, "runs/locked", "another-machine", time.time() + 600)
    assert cli(*run_args(uri)) == 2
    assert "on another-machine" in capsys.readouterr().err
    _put_lock(store, "runs/locked", "another-machine", time.time() - 1)  # its lease ran out: a killed run
    assert cli(*run_args(uri)) == 0
    assert_same_as_reference(store, "runs/locked")


@pytest.mark.parametrize(
    ("out", "said"),
    [
        (
            "hf://datasets/org/runs/x",
            "error: run directories can live on s3:// (and S3-compatible stores) or gs://, not hf://",
        ),
        (
            "https://example.org/runs/x",
            "error: run directories can live on s3:// (and S3-compatible stores) or gs://, not https://",
        ),
        ("s3://no-such-bucket/runs/x", "error: cannot lock s3://no-such-bucket/runs/x/.lock: "),
    ],
)
def test_a_run_directory_where_none_can_live_is_one_line(
    store: dict, out: str, said: str, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    assert cli(*run_args(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(said) and len(err.splitlines()) == 1
    assert not Path("gs:").exists() and not Path("s3:").exists() and not Path("hf:").exists()


@pytest.mark.timeout(600)  # the job itself may take up to 300 s before the test says so
def test_a_background_job_writes_its_run_to_s3(store: dict, tmp_path: Path) -> None:
    from curation.commands import RunRequest
    from curation.jobs import log_tail, run_progress, start_job, wait

    uri = f"s3://{BUCKET}/runs/job/"
    job = start_job(tmp_path / "jobs", RunRequest(POOL, METADATA, T, SEED, uri, workers=1))
    status = wait(tmp_path / "jobs", job, timeout_s=300)
    assert status.state == "finished", log_tail(tmp_path / "jobs", job, lines=40)
    assert status.out == uri.rstrip("/") and run_progress(status.out) == (1.0, "complete")
    assert curated_ids(store, "runs/job") == reference_ids(store)  # the manifest at (T, SEED), in the store


def test_the_dashboard_opens_a_run_in_s3(
    store: dict, local_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from streamlit.testing.v1 import AppTest

    from curation import Run

    uri = local_run
    before = keys(store, "runs/local/")
    monkeypatch.setenv("CURATION_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CURATION_DATA_ROOTS", f"s3://{BUCKET}/runs/")  # the UI opens URIs under listed prefixes only
    import dashboard.data

    importlib.reload(dashboard.data)
    try:
        app = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
        app.session_state["run_dir"] = uri
        app.run()
        assert not app.exception and not app.error, [e.value for e in app.error]
        app.switch_page("views/balance.py").run()
        app.number_input(key="t_box").set_value(T).run()
        assert not app.exception and not app.error, [e.value for e in app.error]
        kept = next(m.value for m in app.metric if m.label == "Kept pairs")
        assert int(kept.replace(",", "")) == Run(uri).size_at(T) == len(reference_ids(store))
        assert app.query_params["run"] == uri and uri in app.selectbox(key="recent_choice").options
    finally:
        monkeypatch.undo()
        importlib.reload(dashboard.data)
    assert keys(store, "runs/local/") == before, "reading takes no lock and writes nothing"


@pytest.mark.timeout(900)  # its own waits: 90 s for a shard, 300 s for each of the two runs
def test_a_store_that_goes_away_mid_run_ends_it_in_one_line_and_the_run_resumes(store: dict) -> None:
    """The store cut off while shards are matched (every connection dropped, new ones refused): the run
    retries, then stops with one line naming an object, exit 2; with the store back, the same command
    takes the stale lock over and ends as the reference."""
    from servers import CuttableProxy

    run = "runs/cut-off"
    proxy = CuttableProxy(int(store["endpoint"].rsplit(":", 1)[1]))
    try:
        # 2 attempts per request rather than 6: the cut is named after one retry, not five backoffs.
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint, "CURATION_S3_ATTEMPTS": "2"}
        args = [str(a) for a in run_args(f"s3://{BUCKET}/{run}", "--workers", 1)]
        process = subprocess.Popen(
            [sys.executable, "-m", "curation", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None and not _markers(store, run):
            time.sleep(POLL_S)
        proxy.cut()
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: cannot ") and f"s3://{BUCKET}/" in err
        assert 0 < _markers(store, run) < SHARDS
        proxy.restore()
        resumed = subprocess.run(
            [sys.executable, "-m", "curation", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming:" in resumed.stderr
    finally:
        proxy.close()
    assert_same_as_reference(store, run)
