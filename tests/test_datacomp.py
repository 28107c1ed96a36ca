"""DataComp subsets: `export --format datacomp-uids` writes the kept pairs' uids as DataComp's resharder
reads them (a .npy of dtype u8,u8, high half first, sorted and unique), locally and in S3."""

from __future__ import annotations

import io
import json
import os
import random
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, curated, make_texts, write_pool
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.datacomp import UID_DTYPE, sorted_unique, uid_text, uid_words
from studio_common.errors import CurationError

T, SEED = 30, 4


def reference_words(uids: list[str]) -> list[tuple[int, int]]:
    """DataComp's own conversion, written out: the first 16 digits, then the last 16, as integers."""
    return [(int(uid[:16], 16), int(uid[16:], 16)) for uid in uids]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32), max_size=40))
def test_uids_parse_as_datacomp_parses_them(uids: list[str]) -> None:
    words = uid_words(pa.array(uids, pa.string()))
    assert words.dtype == UID_DTYPE
    assert list(zip(words["f0"].tolist(), words["f1"].tolist())) == reference_words(uids)
    unique = sorted_unique([words[: len(words) // 2], words[len(words) // 2 :]])
    assert list(zip(unique["f0"].tolist(), unique["f1"].tolist())) == sorted(set(reference_words(uids)))


@pytest.mark.parametrize(
    ("value", "said"),
    [("abc", "'abc'"), ("g" * 32, "'gggg"), ("0" * 33, "'0000"), (None, "empty uids")],
)
def test_a_value_that_is_no_uid_is_refused_in_one_line(value: str | None, said: str) -> None:
    with pytest.raises(CurationError, match=said) as raised:
        uid_words(pa.array(["0" * 32, value], pa.string()), "uid")
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def datacomp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool with DataComp's metadata columns (uid, url, text, sizes, hashes; a few uids repeated),
    and a run over it at (T, SEED)."""
    base = tmp_path_factory.mktemp("datacomp")
    rng = random.Random(3)
    texts = make_texts(3000, seed=5)
    uids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in texts]
    uids[10:20] = uids[:10]  # DataComp pools repeat a few
    write_pool(
        base / "pool",
        {
            "uid": uids,
            "url": [f"https://img.example.com/{i}.jpg" for i in range(len(texts))],
            "text": texts,
            "original_width": [rng.randint(64, 2048) for _ in texts],
            "original_height": [rng.randint(64, 2048) for _ in texts],
            "sha256": [f"{rng.getrandbits(256):064x}" for _ in texts],
        },
        files=2,
    )
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    out = base / "run"
    assert cli("run", "--pool", base / "pool", "--metadata", base / "metadata.json", "--t", T, "--seed", SEED,
               "--out", out, "--quiet") == 0  # fmt: skip
    return out


def kept_uids(run: Path) -> list[str]:
    return sorted(set(curated(run, ["uid"]).column("uid").to_pylist()))


def test_the_subset_file_holds_the_kept_uids(datacomp_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "subset.npy"
    assert cli("export", datacomp_run, "--t", T, "--format", "datacomp-uids", "--out", out, "--quiet") == 0
    subset = np.load(out)
    assert subset.dtype == np.dtype("u8,u8")
    assert uid_text(subset) == kept_uids(datacomp_run) and len(subset) > 100
    order = np.lexsort((subset["f1"], subset["f0"]))
    assert np.array_equal(order, np.arange(len(subset)))  # sorted as DataComp's binary search needs
    provenance = json.loads((tmp_path / "subset.npy.provenance.json").read_text())
    assert provenance["format"] == "datacomp-uids" and provenance["columns"] == "uid"
    # the extension alone says the format
    assert cli("export", datacomp_run, "--t", T, "--out", tmp_path / "same.npy", "--quiet") == 0
    assert (tmp_path / "same.npy").read_bytes() == out.read_bytes()


def test_another_uid_column_and_the_refusals(datacomp_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s.npy"
    for arguments, said in [
        (["--uid-column", "sha256"], "'sha256' holds"),  # 64 digits: not a DataComp uid
        (["--uid-column", "nope"], "no column 'nope'"),
        (["--columns", "img2dataset"], "holds uid only: drop --columns img2dataset"),
    ]:
        assert cli("export", datacomp_run, "--t", T, "--out", out, "--quiet", *arguments) != 0
        error = capsys.readouterr().err
        assert said in error and error.count("\n") == 1, error
        assert not out.exists()  # nothing half-written
    assert cli("export", datacomp_run, "--all-pairs", "--out", out, "--quiet") != 0
    assert "give --t" in capsys.readouterr().err
    # the uid column in any other format too
    assert cli("export", datacomp_run, "--t", T, "--columns", "uid", "--out", tmp_path / "u.parquet", "--quiet") == 0
    assert sorted(set(pq.read_table(tmp_path / "u.parquet").column("uid").to_pylist())) == kept_uids(datacomp_run)


@pytest.mark.remote
def test_the_subset_file_goes_to_s3(datacomp_run: Path, s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    assert cli("export", datacomp_run, "--t", T, "--out", f"s3://{s3_bucket}/laion/subset.npy", "--quiet") == 0
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    body = client.get_object(Bucket=s3_bucket, Key="laion/subset.npy")["Body"].read()
    assert uid_text(np.load(io.BytesIO(body))) == kept_uids(datacomp_run)
    assert client.head_object(Bucket=s3_bucket, Key="laion/subset.npy.provenance.json")["ContentLength"] > 0


@pytest.mark.slow
def test_the_export_page_writes_the_subset_file(datacomp_run: Path) -> None:
    """The Export page's datacomp-uids format: the uid column instead of the column sets, and the same file."""
    from conftest import dashboard_environment
    from streamlit.testing.v1 import AppTest

    from curation.jobs import wait

    base = datacomp_run.parent
    settings = {
        "CURATION_RUNS_DIR": str(base),
        "CURATION_EXPORT_DIR": str(base / "exports"),
        "CURATION_JOBS_DIR": str(base / "jobs"),
        "CURATION_DATA_ROOTS": str(base),
    }
    app_file = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    with dashboard_environment(settings, "127.0.0.1"):
        app = AppTest.from_file(app_file, default_timeout=120)
        app.session_state["run_dir"] = str(datacomp_run)
        app.run()
        app.switch_page("views/export.py").run()
        app.number_input(key="export_t").set_value(T).run()
        app.radio(key="export_format").set_value("datacomp-uids").run()
        assert not app.exception, [e.message for e in app.exception]
        assert app.text_input(key="export_uid_column").value == "uid"
        assert not [r for r in app.radio if r.key == "export_columns"]  # a uid file holds uids only
        app.text_input(key="export_name").set_value("subset")
        app.button[0].click().run()
        job = wait(base / "jobs", app.session_state["export_job"])
        assert job.state == "finished", job
        assert uid_text(np.load(base / "exports" / "subset.npy")) == kept_uids(datacomp_run)
