"""This machine's copies of a run in object storage (curation/mirror.py through RunDir), against moto's
S3 server on 127.0.0.1: a file rewritten in place within the store's second, with the same size, is
never read stale, with no list of such files anywhere; a settled copy is not copied again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from servers import s3_server

from curation import mirror
from curation.rundir import RunDir

pytestmark = pytest.mark.remote

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server() as endpoint:
        saved = {key: os.environ.get(key) for key in [*CREDENTIALS, "AWS_ENDPOINT_URL", "CURATION_CACHE_DIR"]}
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        os.environ["CURATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="runs")
            yield "s3://runs"
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def test_a_file_rewritten_within_the_second_is_never_read_stale(bucket: str) -> None:
    writer = RunDir.open(f"{bucket}/rewritten")
    reader = RunDir.open(f"{bucket}/rewritten", reading=True)
    for version in range(6):  # each the same size, several within one second of the store's clock
        writer.write_json(writer.plan_json, {"version": version})  # plan.json: rewritten only by an upgrade
        assert reader.fetch(reader.plan_json)
        assert reader.plan_json.read_text() == writer.plan_json.read_text(), f"stale copy at version {version}"
    assert mirror.SETTLED_NS >= 1_000_000_000  # S3's times have whole seconds


def test_a_settled_copy_is_trusted_and_a_new_one_is_checked_again(bucket: str) -> None:
    writer = RunDir.open(f"{bucket}/settled")
    reader = RunDir.open(f"{bucket}/settled", reading=True)
    writer.write_json(writer.plan_json, {"written": "once"})
    assert reader.fetch(reader.plan_json)  # taken at once: not settled yet, so copied again next time
    taken = reader.plan_json.stat()
    assert taken.st_atime_ns < taken.st_mtime_ns + mirror.SETTLED_NS
    assert reader.fetch(reader.plan_json) and reader.plan_json.stat().st_ino != taken.st_ino
    # As if it had been copied once the object's time had settled (no waiting in a test): trusted.
    os.utime(reader.plan_json, ns=(taken.st_mtime_ns + mirror.SETTLED_NS, taken.st_mtime_ns))
    settled = reader.plan_json.stat().st_ino
    assert reader.fetch(reader.plan_json) and reader.fetch(reader.plan_json)
    assert reader.plan_json.stat().st_ino == settled  # not copied again
    writer.write_json(writer.plan_json, {"written": "twice, and longer"})
    assert reader.fetch(reader.plan_json)
    assert reader.plan_json.read_text() == writer.plan_json.read_text()


def test_a_removed_object_takes_its_copy_with_it(bucket: str, tmp_path: Path) -> None:
    writer = RunDir.open(f"{bucket}/removed")
    reader = RunDir.open(f"{bucket}/removed", reading=True)
    writer.write_json(writer.run_json, {"here": True})
    assert reader.fetch(reader.run_json) and reader.run_json.exists()
    writer.remove_file(writer.run_json)
    assert not writer.has(writer.run_json)
    assert not reader.fetch(reader.run_json) and not reader.run_json.exists()
