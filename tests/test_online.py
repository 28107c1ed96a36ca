"""Online balancing: every epoch keeps each pair with MetaCLIP's P, epochs differ, a given epoch is the
same however the stream is split or restarted, and epoch 0 at the run's seed is the run's own subset."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import cli, write_pool

import data_samples
from curation.online import OnlineBalancer, epoch_seed
from curation.pairs import PairReader
from curation.rundir import CAPTION_LANGUAGE, RunDir
from studio_common.errors import CurationError

T, SEED = 200.0, 7


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    """A run of the bundled sample at (T, SEED), and every matched pair with its key and entry ids."""
    base = tmp_path_factory.mktemp("online")
    out = base / "run"
    assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T,
               "--seed", SEED, "--out", out, "--quiet") == 0  # fmt: skip
    assert cli("export", out, "--all-pairs", "--columns", "keys", "--out", base / "all.parquet", "--quiet") == 0
    pairs = pq.read_table(base / "all.parquet")
    matched = pairs.filter(pc.greater(pc.list_value_length(pairs.column("entry_ids")), 0))
    return out, matched


def curated_keys(run: Path) -> set[int]:
    return curated_keys_of(run, T, SEED)


def test_epoch_zero_at_the_runs_seed_is_the_runs_curated_subset(sample_run: tuple[Path, pa.Table]) -> None:
    run, pairs = sample_run
    balancer = OnlineBalancer.from_run(run, T)
    assert balancer.seed == SEED  # the run's own
    kept = balancer.keeps(pairs.column("pair_key").to_numpy(), pairs.column("entry_ids"), epoch=0)
    chosen = set(np.asarray(pairs.column("pair_key").to_numpy())[kept].tolist())
    assert chosen == curated_keys(run) and 0 < len(chosen) < len(pairs)


def test_keep_rates_over_epochs_converge_to_p(sample_run: tuple[Path, pa.Table]) -> None:
    """Over E epochs a pair is kept Binomial(E, P) times: the total and the per-pair spread agree with
    that law (z-scores under 5: a wrong P, or epochs that repeat, fail by far)."""
    run, pairs = sample_run
    balancer = OnlineBalancer.from_run(run, T)
    keys, ids = pairs.column("pair_key").to_numpy(), pairs.column("entry_ids")
    p = balancer.probabilities(ids)
    epochs = 200
    kept = np.zeros(len(keys))
    for epoch in range(1, epochs + 1):
        kept += balancer.keeps(keys, ids, epoch)
    expected, variance = epochs * p, epochs * p * (1 - p)
    total_z = (kept.sum() - expected.sum()) / math.sqrt(variance.sum())
    assert abs(total_z) < 5, total_z
    uncertain = (p > 0) & (p < 1)
    assert uncertain.sum() > 100  # enough head pairs for the spread to mean something
    chi2 = (((kept - expected) ** 2)[uncertain] / variance[uncertain]).sum()
    n = int(uncertain.sum())
    assert abs(chi2 - n) / math.sqrt(2 * n) < 5, (chi2, n)  # repeated epochs would give ~E * n
    assert np.array_equal(kept[p == 1], np.full(int((p == 1).sum()), epochs))  # the tail: every epoch


def test_epochs_differ_and_a_given_epoch_does_not(sample_run: tuple[Path, pa.Table]) -> None:
    run, pairs = sample_run
    balancer = OnlineBalancer.from_run(run, T)
    keys, ids = pairs.column("pair_key").to_numpy(), pairs.column("entry_ids")
    one, two = balancer.keeps(keys, ids, 1), balancer.keeps(keys, ids, 2)
    assert (one != two).sum() > 50
    again = OnlineBalancer.from_run(run, T).keeps(keys, ids, 1)  # a restarted job
    assert np.array_equal(one, again)


def test_any_split_of_the_stream_decides_each_pair_the_same(sample_run: tuple[Path, pa.Table]) -> None:
    """Workers reading disjoint shards in any order, or one sample at a time, keep the same pairs."""
    run, pairs = sample_run
    balancer = OnlineBalancer.from_run(run, T)
    keys, ids = pairs.column("pair_key").to_numpy(), pairs.column("entry_ids")
    whole = balancer.keeps(keys, ids, 3)
    order = np.random.default_rng(0).permutation(len(keys))
    split = np.zeros(len(keys), dtype=bool)
    for worker in np.array_split(order, 3):
        split[worker] = balancer.keeps(keys[worker], ids.take(pa.array(worker)), 3)
    assert np.array_equal(whole, split)
    one_by_one = [balancer.keep(int(keys[i]), ids[i].as_py(), 3) for i in order[:300]]
    assert one_by_one == whole[order[:300]].tolist()


def test_epoch_seeds_and_refusals(sample_run: tuple[Path, pa.Table], tmp_path: Path) -> None:
    assert epoch_seed(5, 0) == 5 and len({epoch_seed(5, e) for e in range(1000)}) == 1000
    assert epoch_seed(5, 1) != epoch_seed(6, 1)
    with pytest.raises(CurationError, match="whole number from 0"):
        epoch_seed(5, -1)
    with pytest.raises(CurationError, match="positive"):
        OnlineBalancer.from_run(sample_run[0], 0)
    with pytest.raises(CurationError, match="not a matched run directory"):
        OnlineBalancer.from_run(tmp_path, T)


def test_a_worldwide_run_judges_each_pair_at_its_languages_t(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    words = {"en": ["dog", "cat", "red", "car", "a", "the"], "de": ["Hund", "Katze", "rot", "ein"]}
    codes = rng.choice(["en", "en", "de"], size=3000).tolist()
    texts = [" ".join(rng.choice(words[c], size=rng.integers(1, 5))) for c in codes]
    write_pool(tmp_path / "pool", {"id": list(range(len(texts))), "text": texts, "lang": codes})
    entries = [
        ("dog", "en"),
        ("cat", "en"),
        ("red", "en"),
        ("car", "en"),
        ("Hund", "de"),
        ("Katze", "de"),
        ("rot", "de"),
    ]
    pq.write_table(
        pa.table({"entry": [e for e, _ in entries], "language": [g for _, g in entries]}), tmp_path / "m.parquet"
    )
    out = tmp_path / "run"
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "m.parquet", "--language-column", "lang",
               "--t", 300, "--seed", 2, "--out", out, "--quiet") == 0  # fmt: skip
    index = pa.concat_tables(
        PairReader(RunDir(out)).table(shard.index, ["pair_key", "entry_ids", CAPTION_LANGUAGE])
        for shard in RunDir(out).shards()
    )
    balancer = OnlineBalancer.from_run(out, 300)
    with pytest.raises(CurationError, match="worldwide"):
        balancer.keeps(index.column("pair_key").to_numpy(), index.column("entry_ids"), 0)
    kept = balancer.keeps(
        index.column("pair_key").to_numpy(), index.column("entry_ids"), 0, index.column(CAPTION_LANGUAGE)
    )
    chosen = set(index.column("pair_key").to_numpy()[kept].tolist())
    folder = out / "manifests" / "curated-t300.0-seed2.parquet"
    assert chosen == set(pq.read_table(folder, columns=["pair_key"]).column("pair_key").to_pylist())
    assert 0 < len(chosen) < (pc.list_value_length(index.column("entry_ids")).to_numpy() > 0).sum()


def readme_example(marker: str) -> str:
    """The Python block that follows ``<!-- marker -->`` in the README."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    after = text.split(f"<!-- {marker} -->\n", 1)[1]
    assert after.startswith("```python\n"), marker
    return after[len("```python\n") :].split("```", 1)[0]


def test_the_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The README's plain and webdataset examples, as written, over the bundled sample given an
    img2dataset `key` column and two tar shards holding every sample."""
    import tarfile

    pool = pq.read_table(data_samples.POOL)
    keys = [f"{i:09d}" for i in pool.column("id").to_pylist()]
    write_pool(tmp_path / "pool", {**{n: pool.column(n).to_pylist() for n in pool.column_names}, "key": keys})
    monkeypatch.chdir(tmp_path)
    assert cli("run", "--pool", "pool", "--metadata", data_samples.METADATA, "--t", 200, "--seed", 0,
               "--out", "runs/sample", "--quiet") == 0  # fmt: skip
    assert cli("export", "runs/sample", "--all-pairs", "--columns", "all", "--out", "pairs.parquet", "--quiet") == 0
    (tmp_path / "shards").mkdir()
    halves = (keys[: len(keys) // 2], keys[len(keys) // 2 :])
    for number, half in enumerate(halves):
        with tarfile.open(tmp_path / "shards" / f"{number:05d}.tar", "w") as shard:
            for key in half:
                data = f"caption of {key}".encode()
                member = tarfile.TarInfo(f"{key}.txt")
                member.size = len(data)
                shard.addfile(member, io.BytesIO(data))
    capsys.readouterr()
    exec(compile(readme_example("online-example"), "README online-example", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"epoch 0: {len(curated_keys_of(tmp_path / 'runs' / 'sample', 200.0, 0)):,} pairs"
    assert len(printed) == 3 and printed[1] != printed[2]
    exec(compile(readme_example("webdataset-example"), "README webdataset-example", "exec"), {})
    pairs = pq.read_table("pairs.parquet")
    expected = OnlineBalancer.from_run("runs/sample", 200).keeps(pairs["pair_key"].to_numpy(), pairs["entry_ids"], 1)
    assert capsys.readouterr().out.strip() == f"{int(expected.sum())} samples in epoch 1"


def curated_keys_of(run: Path, t: float, seed: int) -> set[int]:
    folder = run / "manifests" / f"curated-t{t!r}-seed{seed}.parquet"
    return set(pq.read_table(folder, columns=["pair_key"]).column("pair_key").to_pylist())


def test_export_writes_an_epochs_subset(sample_run: tuple[Path, pa.Table], tmp_path: Path, capsys) -> None:
    """The command line's way to an epoch: `export --t T --epoch E` writes what the sampler keeps."""
    run, pairs = sample_run
    for epoch in (0, 3):
        out = tmp_path / f"epoch{epoch}.parquet"
        assert cli("export", run, "--t", T, "--epoch", epoch, "--columns", "keys", "--out", out, "--quiet") == 0
        written = set(pq.read_table(out).column("pair_key").to_pylist())
        kept = OnlineBalancer.from_run(run, T).keeps(
            pairs.column("pair_key").to_numpy(), pairs.column("entry_ids"), epoch
        )
        assert written == set(pairs.column("pair_key").to_numpy()[kept].tolist())
        provenance = json.loads((tmp_path / f"epoch{epoch}.parquet.provenance.json").read_text())
        assert provenance["epoch"] == epoch and provenance["epoch_seed"] == epoch_seed(SEED, epoch)
    assert written != curated_keys(run) and set(
        pq.read_table(tmp_path / "epoch0.parquet").column("pair_key").to_pylist()
    ) == curated_keys(run)
    assert cli("export", run, "--all-pairs", "--epoch", 1, "--out", tmp_path / "x.parquet", "--quiet") == 2
    assert "--epoch selects" in capsys.readouterr().err


@pytest.mark.remote
def test_a_run_in_s3_balances_online_as_a_local_one(
    sample_run: tuple[Path, pa.Table], s3_bucket: str, tmp_path: Path
) -> None:
    run, pairs = sample_run
    remote = f"s3://{s3_bucket}/runs/online"
    assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T,
               "--seed", SEED, "--out", remote, "--quiet", "--no-manifest") == 0  # fmt: skip
    keys, ids = pairs.column("pair_key").to_numpy(), pairs.column("entry_ids")
    local = OnlineBalancer.from_run(run, T)
    assert np.array_equal(OnlineBalancer.from_run(remote, T).keeps(keys, ids, 5), local.keeps(keys, ids, 5))
    out = f"s3://{s3_bucket}/epochs/epoch5.parquet"
    assert cli("export", remote, "--t", T, "--epoch", 5, "--columns", "keys", "--out", out, "--quiet") == 0
    assert (
        cli("export", run, "--t", T, "--epoch", 5, "--columns", "keys", "--out", tmp_path / "e5.parquet", "--quiet")
        == 0
    )
    import pyarrow.fs as pafs

    remote_keys = pq.read_table(out.removeprefix("s3://"), filesystem=pafs.S3FileSystem(
        endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http")).column("pair_key").to_pylist()  # fmt: skip
    assert sorted(remote_keys) == sorted(pq.read_table(tmp_path / "e5.parquet").column("pair_key").to_pylist())
