"""`curation materialize`: the samples a run keeps, copied out of WebDataset tar shards written here with
tarfile, read back with the webdataset library and compared with the run's curated manifest."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, curated, make_texts, write_pool

from curation.shard_specs import expand_braces
from curation.tar_members import TarReader, sample_key

wds = pytest.importorskip("webdataset")

POOL_SIZE = 600
IN_TARS = 580  # keys 0..579 are in the shards: a kept key from 580 on is missing
SHARDS = 6
EXTRA_KEYS = [f"9{i:08d}" for i in range(10)]  # in the shards, not in the pool: skipped
REPEATED = [f"{i:09d}" for i in range(8)]  # met again in the last shard: written once
LONG_NAME = "x" * 120  # a member name past ustar's 100 bytes: a pax or a GNU long-name header


def key_of(i: int) -> str:
    return f"{i:09d}"


def members_of(key: str, caption: str | None, rng: random.Random) -> list[tuple[str, bytes]]:
    members = [
        (f"{key}.jpg", rng.randbytes(rng.randint(100, 3000))),
        (f"{key}.txt", (caption or "").encode()),
        (f"{key}.json", json.dumps({"key": key}).encode()),
    ]
    if key.endswith("7"):
        members.append((f"{key}.{LONG_NAME}.cls", b"7"))
    return members


def write_tar(path: Path, samples: list[tuple[str, list[tuple[str, bytes]]]], tar_format: int) -> None:
    with tarfile.open(path, "w", format=tar_format) as tar:
        for _, members in samples:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
                tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Shards (samples in order: key -> members), a pool whose `key` column names them, and a run."""
    base = tmp_path_factory.mktemp("materialize")
    rng = random.Random(5)
    texts = make_texts(POOL_SIZE, seed=5)
    keys = [key_of(i) for i in range(POOL_SIZE)]
    write_pool(
        base / "pool",
        {"id": list(range(POOL_SIZE)), "key": keys, "url": [f"https://x.test/{k}.jpg" for k in keys], "text": texts},
        files=2,
        row_group_size=100,
    )
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    samples = [(key_of(i), members_of(key_of(i), texts[i], rng)) for i in range(IN_TARS)]
    samples += [(key, members_of(key, "extra", rng)) for key in EXTRA_KEYS]
    rng.shuffle(samples)
    samples += [(key, members_of(key, "again", rng)) for key in REPEATED]
    per = -(-len(samples) // SHARDS)
    (base / "shards").mkdir()
    shards = []
    for index in range(SHARDS):
        part = samples[index * per : (index + 1) * per]
        tar_format = tarfile.GNU_FORMAT if index == 1 else tarfile.PAX_FORMAT
        write_tar(base / "shards" / f"{index:05d}.tar", part, tar_format)
        shards.append(part)
    assert cli("run", "--pool", base / "pool", "--metadata", base / "metadata.json", "--t", 20, "--seed", 3,
               "--out", base / "run") == 0  # fmt: skip
    kept = set(curated(base / "run", ["key"]).column("key").to_pylist())
    expected, seen = [], set()
    for part in shards:
        for key, members in part:
            if key in kept and key not in seen:
                seen.add(key)
                expected.append((key, members))
    assert 0 < len(expected) < IN_TARS and kept - seen  # some kept, some dropped, some kept keys missing
    return {"base": base, "kept": kept, "expected": expected, "shards": shards}


def materialize(world: dict, out: Path | str, *extra: object, spec: str | None = None) -> int:
    spec = spec or str(world["base"] / "shards" / "{00000..00005}.tar")
    return cli("materialize", world["base"] / "run", "--t", 20, "--shards", spec, "--out", out, "--quiet", *extra)


def tar_members(path: Path | str) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def output_shards(out: Path) -> list[Path]:
    return sorted(out.glob("*.tar"))


def read_webdataset(paths: list[Path]) -> Iterator[dict]:
    yield from wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False)


# --- brace expansion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "shards/{00000..00003}.tar",
        "shards/{0..3}.tar",
        "s3://b/{000..010..5}-{a,b}.tar",
        "{9..11}",
        "{08..11}",
        "{3..0}",
        "{a..e..2}",
        "{train,val{1..2}}/x.tar",
        "plain.tar",
        "{single}.tar",
        "{a,b}{c,d}",
        "{,x}y",
    ],
)
def test_brace_expansion_agrees_with_braceexpand(pattern: str) -> None:
    from braceexpand import braceexpand  # webdataset's own dependency: the reference

    assert expand_braces(pattern) == list(braceexpand(pattern))


def test_a_brace_that_is_no_expression_stays_as_written() -> None:
    assert expand_braces("open{brace.tar") == ["open{brace.tar"]  # braceexpand refuses it
    assert expand_braces("{x{1,2}}") == ["{x1}", "{x2}"]


def test_sample_keys_follow_webdataset() -> None:
    assert sample_key("000000123.jpg") == "000000123"
    assert sample_key("dir/000000123.seg.png") == "dir/000000123"
    assert sample_key("a.b/c.d.e") == "a.b/c"


def test_headers_are_read_as_tarfile_reads_them(world: dict) -> None:
    """Names (pax and GNU long names included), sizes and where each member's headers start."""
    for path in sorted((world["base"] / "shards").glob("*.tar")):
        with open(path, "rb") as stream, tarfile.open(path) as tar:
            reader, ours = TarReader(stream, str(path)), []
            while (member := reader.next_member()) is not None:
                ours.append((member.name, member.size, member.offset))
                reader.skip_data(member)
            assert ours == [(info.name, info.size, info.offset) for info in tar.getmembers()]


# --- the command -------------------------------------------------------------------------------------


def test_the_kept_samples_are_copied_byte_for_byte_in_shards_of_n(world: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert materialize(world, out, "--samples-per-shard", 40) == 0
    expected = world["expected"]
    shards = output_shards(out)
    assert [p.name for p in shards] == [f"{i:05d}.tar" for i in range(-(-len(expected) // 40))]
    # every shard but the last holds exactly 40 samples; members as they were, in their order
    members = [tar_members(p) for p in shards]
    counts = [len({sample_key(name) for name, _ in shard}) for shard in members]
    assert counts[:-1] == [40] * (len(counts) - 1) and 0 < counts[-1] <= 40
    assert [m for shard in members for m in shard] == [m for _, sample in expected for m in sample]
    # read back by webdataset: the kept keys, each sample's files identical
    samples = list(read_webdataset(shards))
    assert [s["__key__"] for s in samples] == [key for key, _ in expected]
    by_key = dict(expected)
    for sample in samples:
        assert sample["jpg"] == dict(by_key[sample["__key__"]])[sample["__key__"] + ".jpg"]
    summary = json.loads((out / "materialize.json").read_text())
    kept = world["kept"]
    assert summary["kept"] == len(kept)
    assert summary["written"] == len(expected)
    assert summary["missing"] == len(kept - {k for k, _ in expected}) > 0
    assert summary["written"] + summary["missing"] == summary["kept"]
    assert summary["repeated"] == len([k for k in REPEATED if k in kept])
    assert summary["input_samples"] == IN_TARS + len(EXTRA_KEYS) + len(REPEATED)
    assert summary["skipped"] == summary["input_samples"] - summary["written"] - summary["repeated"]
    assert summary["output_shards"] == len(shards) and summary["output_bytes"] == sum(p.stat().st_size for p in shards)
    assert not (out / "materialize.state.json").exists() and not (out / "materialize.keys").exists()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(
        f"materialized: {len(expected):,} samples kept at t=20 (seed 3) in {len(shards)} shards"
    )
    assert f"missing     {summary['missing']:>12,}  (kept, but no input shard holds them)" in printed


def test_a_glob_gives_the_bytes_a_brace_range_gives(world: dict, tmp_path: Path) -> None:
    assert materialize(world, tmp_path / "braces", "--samples-per-shard", 64) == 0
    spec = str(world["base"] / "shards" / "*.tar")
    assert materialize(world, tmp_path / "glob", "--samples-per-shard", 64, spec=spec) == 0
    braces, globbed = output_shards(tmp_path / "braces"), output_shards(tmp_path / "glob")
    assert [p.name for p in braces] == [p.name for p in globbed]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(braces, globbed))


def test_one_shard_when_n_is_large_and_a_rerun_says_it_is_done(world: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert materialize(world, out) == 0
    assert [p.name for p in output_shards(out)] == ["00000.tar"]
    before = (out / "00000.tar").read_bytes()
    capsys.readouterr()
    assert materialize(world, out) == 0
    assert "already" in capsys.readouterr().out
    assert (out / "00000.tar").read_bytes() == before


def test_a_rerun_with_other_options_is_refused_in_one_line(world: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert materialize(world, out, "--samples-per-shard", 40) == 0
    capsys.readouterr()
    assert materialize(world, out, "--samples-per-shard", 41) != 0
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "samples_per_shard" in error and str(out) in error


def test_a_shard_that_is_not_a_tar_is_named_in_one_line(world: dict, tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for path in sorted((world["base"] / "shards").glob("*.tar"))[:2]:
        (shards / path.name).write_bytes(path.read_bytes())
    (shards / "00002.tar").write_bytes(b"<html>not found</html>" * 50)
    assert materialize(world, tmp_path / "out", spec=str(shards / "{00000..00002}.tar")) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: input shard {shards / '00002.tar'} is not a tar file"
    (shards / "00002.tar").write_bytes(b"")
    assert materialize(world, tmp_path / "out", spec=str(shards / "{00000..00002}.tar")) == 2
    assert capsys.readouterr().err.strip() == f"error: input shard {shards / '00002.tar'} is empty, not a tar file"


def test_a_missing_shard_and_a_missing_key_column_are_refused(world: dict, tmp_path: Path, capsys) -> None:
    assert materialize(world, tmp_path / "a", spec=str(world["base"] / "shards" / "{00005..00006}.tar")) == 2
    assert "input shard not found" in capsys.readouterr().err
    assert materialize(world, tmp_path / "b", "--key-column", "nope") == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_a_resume_after_a_crash_gives_the_bytes_of_an_uninterrupted_run(
    world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (simulated) after two output shards, with a half-written third left on disk."""
    from curation import materialize as module

    assert materialize(world, tmp_path / "whole", "--samples-per-shard", 30) == 0
    finish = module.Materializer._finish_shard

    def crash_after_two(self: module.Materializer, *args: object) -> None:
        finish(self, *args)
        if self.counts.output_shards == 2:
            self.abandon = lambda: None  # as a SIGKILL: the third shard's temporary file stays
            raise KeyboardInterrupt

    monkeypatch.setattr(module.Materializer, "_finish_shard", crash_after_two)
    out = tmp_path / "resumed"
    assert materialize(world, out, "--samples-per-shard", 30) == 130
    assert len(output_shards(out)) == 2 and (out / "materialize.state.json").exists()
    (out / ".00002.tar.tmp-999-deadbeef").write_bytes(b"half a shard")  # as a SIGKILL mid-shard leaves it
    monkeypatch.undo()
    assert materialize(world, out, "--samples-per-shard", 30) == 0
    whole = output_shards(tmp_path / "whole")
    assert [p.name for p in output_shards(out)] == [p.name for p in whole]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(output_shards(out), whole))
    assert not list(out.glob(".*"))
    summary = json.loads((out / "materialize.json").read_text())
    assert summary["written"] == len(world["expected"])


@pytest.mark.slow
def test_a_killed_process_resumes_where_it_stopped(world: dict, tmp_path: Path) -> None:
    """A real SIGKILL: the last input shard is a FIFO the command blocks on once it has written its
    first shards; it is then killed, the FIFO replaced by the shard, and the command run again."""
    shards = tmp_path / "shards"
    shards.mkdir()
    originals = sorted((world["base"] / "shards").glob("*.tar"))
    for path in originals[:-1]:
        (shards / path.name).write_bytes(path.read_bytes())
    os.mkfifo(shards / originals[-1].name)
    spec = str(shards / "{00000..00005}.tar")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "curation", "materialize", str(world["base"] / "run"), "--t", "20",
               "--shards", spec, "--out", str(out), "--samples-per-shard", "25", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / "materialize.state.json").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # it reaches the FIFO and waits there
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = json.loads((out / "materialize.state.json").read_text())["counts"]["output_shards"]
    assert 0 < done < len(world["expected"]) // 25
    (shards / originals[-1].name).unlink()
    (shards / originals[-1].name).write_bytes(originals[-1].read_bytes())
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert materialize(world, tmp_path / "whole", "--samples-per-shard", 25) == 0
    whole = output_shards(tmp_path / "whole")
    assert [p.name for p in output_shards(out)] == [p.name for p in whole]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(output_shards(out), whole))


def test_a_worldwide_run_keeps_each_sample_at_its_languages_t(tmp_path: Path) -> None:
    """Each pair at its caption language's t: the samples are those of the run's curated manifest."""
    rng = random.Random(3)
    words = {"en": ["dog", "cat", "photo", "red", "a"], "de": ["Hund", "Katze", "Foto", "rot", "ein"]}
    codes = [rng.choice(["en", "en", "en", "de"]) for _ in range(400)]
    texts = [" ".join(rng.choice(words[code]) for _ in range(rng.randint(1, 4))) for code in codes]
    keys = [key_of(i) for i in range(len(texts))]
    write_pool(tmp_path / "pool", {"key": keys, "text": texts, "lang": codes}, files=1)
    entries = [(word, code) for code in words for word in words[code][:4]]
    pq.write_table(
        pa.table({"entry": [e for e, _ in entries], "language": [c for _, c in entries]}), tmp_path / "m.parquet"
    )
    run = tmp_path / "run"
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "m.parquet", "--language-column",
               "lang", "--t", 12, "--out", run) == 0  # fmt: skip
    kept = set(curated(run, ["key"]).column("key").to_pylist())
    assert 0 < len(kept) < len(keys)
    write_tar(tmp_path / "s.tar", [(k, [(f"{k}.txt", t.encode())]) for k, t in zip(keys, texts)], tarfile.PAX_FORMAT)
    out = tmp_path / "out"
    assert cli("materialize", run, "--t", 12, "--shards", tmp_path / "s.tar", "--out", out, "--quiet") == 0
    assert [s["__key__"] for s in read_webdataset(output_shards(out))] == [k for k in keys if k in kept]


def test_help_explains_the_command(capsys) -> None:
    assert cli("materialize", "--help") == 0
    text = capsys.readouterr().out
    assert "--samples-per-shard" in text and "{00000..00099}" in text and "resume" in text.lower()


# --- object storage ------------------------------------------------------------------------------------


@pytest.mark.remote
@pytest.mark.slow
def test_shards_read_from_and_written_to_s3(world: dict, tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from servers import s3_server

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    with s3_server() as endpoint:
        patch = pytest.MonkeyPatch()
        for name, value in {**credentials, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket="data")
            for path in sorted((world["base"] / "shards").glob("*.tar")):
                client.upload_file(str(path), "data", f"shards/{path.name}")
            for spec in ("s3://data/shards/{00000..00005}.tar", "s3://data/shards/*.tar"):
                out = f"s3://data/curated-{len(spec)}"
                assert materialize(world, out, "--samples-per-shard", 64, spec=spec) == 0
                assert materialize(world, tmp_path / "local", "--samples-per-shard", 64) == 0
                local = output_shards(tmp_path / "local")
                listed = client.list_objects_v2(Bucket="data", Prefix=out.removeprefix("s3://data/") + "/")
                # (pyarrow leaves empty objects NAME/ as folders: not files)
                names = sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"] if not o["Key"].endswith("/"))
                assert names == sorted([p.name for p in local] + ["materialize.json"])
                for path in local:
                    body = client.get_object(Bucket="data", Key=f"{out.removeprefix('s3://data/')}/{path.name}")
                    assert body["Body"].read() == path.read_bytes()
        finally:
            patch.undo()
