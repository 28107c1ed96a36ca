"""The dashboard's access rules (dashboard/access.py): loopback, the token, and the roots a path must lie
under once resolved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard import access
from dashboard.access import Roots
from studio_common.errors import CurationError


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (None, False),
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("lab-server.example.org", False),
        ("unix:///tmp/dashboard.sock", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(address: str | None, loopback: bool) -> None:
    assert access.is_loopback(address) is loopback
    assert access.token_required(address, {}) is not loopback


def test_the_token_can_be_required_on_loopback_too() -> None:
    assert access.token_required("127.0.0.1", {access.REQUIRE_TOKEN_ENV: "1"})
    assert not access.token_required("127.0.0.1", {access.REQUIRE_TOKEN_ENV: "0"})


def test_tokens_match_exactly_and_an_empty_one_never() -> None:
    assert access.token_matches("s3cret-token", "s3cret-token")
    assert not access.token_matches("s3cret-toke", "s3cret-token")
    assert not access.token_matches("s3cret-token ", "s3cret-token")
    assert not access.token_matches("", "")
    assert "CURATION_DASHBOARD_TOKEN" in access.no_token_message("0.0.0.0")


def test_max_jobs_defaults_to_one_and_refuses_nonsense() -> None:
    assert access.max_jobs({}) == 1 and access.max_jobs({access.MAX_JOBS_ENV: "3"}) == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(CurationError, match="CURATION_MAX_JOBS must be a whole number"):
            access.max_jobs({access.MAX_JOBS_ENV: bad})


def test_a_list_of_roots_keeps_uri_prefixes_whole() -> None:
    sep = os.pathsep
    assert access.split_roots(f"/data/pools{sep}s3://bucket/pools/{sep}{sep}/tmp/x") == [
        "/data/pools",
        "s3://bucket/pools/",
        "/tmp/x",
    ]


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    for name in ("runs", "exports", "data", "elsewhere"):
        (tmp_path / name).mkdir()
    env = {access.DATA_ROOTS_ENV: os.pathsep.join([str(tmp_path / "data"), "s3://lab/pools/"])}
    return Roots.from_env(tmp_path / "runs", tmp_path / "exports", tmp_path / "data_samples", env)


def test_default_data_roots_are_the_samples_and_the_runs(tmp_path: Path) -> None:
    roots = Roots.from_env(tmp_path / "runs", tmp_path / "exports", tmp_path / "data_samples", {})
    assert roots.data == (tmp_path.resolve() / "data_samples", tmp_path.resolve() / "runs") and roots.uris == ()


def test_run_directories_and_outputs_lie_under_the_runs_directory(roots: Roots, tmp_path: Path) -> None:
    access.check_run_dir(str(tmp_path / "runs" / "a"), roots)
    access.check_output(str(tmp_path / "runs" / "new" / "b"), roots)
    for spec in (str(tmp_path / "elsewhere"), str(tmp_path / "runs" / ".." / "elsewhere"), "/"):
        with pytest.raises(CurationError, match="run directory .* is outside what this dashboard may use"):
            access.check_run_dir(spec, roots)
        with pytest.raises(CurationError, match="output directory .* is outside"):
            access.check_output(spec, roots)
    with pytest.raises(CurationError, match="output directory"):  # the runs directory itself holds the job records
        access.check_output(str(tmp_path / "runs"), roots)


def test_a_symlink_inside_a_root_that_points_out_is_outside(roots: Roots, tmp_path: Path) -> None:
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "data" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CurationError, match="outside"):
        access.check_output(str(tmp_path / "runs" / "link" / "new"), roots)
    with pytest.raises(CurationError, match="outside"):
        access.check_run_dir(str(tmp_path / "runs" / "link"), roots)
    with pytest.raises(CurationError, match="metadata .* is outside"):
        access.check_readable("metadata", str(tmp_path / "data" / "link" / "m.json"), roots)
    (tmp_path / "runs" / "inner").symlink_to(tmp_path / "runs" / "a", target_is_directory=True)
    access.check_run_dir(str(tmp_path / "runs" / "inner"), roots)  # a link that stays inside is fine


def test_uris_are_allowed_only_under_a_listed_prefix(roots: Roots) -> None:
    access.check_readable("pool", "s3://lab/pools/laion/", roots)
    access.check_readable("pool", "S3://lab/pools/laion/*.parquet", roots)
    access.check_run_dir("s3://lab/pools/runs/x", roots)
    access.check_output("s3://lab/pools/runs/y", roots)
    for spec in (
        "s3://lab/pools-other/x",
        "s3://lab/",
        "s3://lab/pools/../secret/x",
        "s3://lab/pools/%2e%2e/x",
        "gs://lab/pools/x",
        "https://lab/pools/x",
    ):
        with pytest.raises(CurationError, match="outside"):
            access.check_readable("pool", spec, roots)
    without = Roots(roots.runs, roots.exports, roots.data, ())
    with pytest.raises(CurationError, match="no URI prefix"):
        access.check_output("s3://lab/pools/runs/y", without)


def test_a_pool_is_checked_file_by_file(roots: Roots, tmp_path: Path) -> None:
    pool = tmp_path / "data" / "pool"
    pool.mkdir()
    (pool / "a.parquet").write_bytes(b"x")
    (tmp_path / "elsewhere" / "b.parquet").write_bytes(b"x")
    access.check_job_request(str(pool), str(pool / "a.parquet"), str(tmp_path / "runs" / "out"), roots)
    (pool / "b.parquet").symlink_to(tmp_path / "elsewhere" / "b.parquet")
    with pytest.raises(CurationError, match="pool file .*b.parquet is outside"):
        access.check_job_request(str(pool), str(pool / "a.parquet"), str(tmp_path / "runs" / "out"), roots)
    with pytest.raises(CurationError, match="pool .* is outside"):  # a glob is judged by its literal part
        access.check_readable("pool", str(tmp_path / "*" / "*.parquet"), roots)
    access.check_readable("pool", str(pool / "*.parquet"), roots)


def test_an_export_and_its_provenance_stay_in_the_export_directory(roots: Roots, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    access.check_export(exports / "m.parquet", roots)
    (exports / "m.parquet.provenance.json").symlink_to(tmp_path / "elsewhere" / "p.json")
    with pytest.raises(CurationError, match="export .*m.parquet.provenance.json is outside"):
        access.check_export(exports / "m.parquet", roots)
