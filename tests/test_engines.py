"""One contract, every engine: local processes (1 and 2 workers) and Ray (a local Ray with 2 CPUs).

Same pool, metadata and seed give the same files whatever the engine, the worker count or the
sharding; results come back in item order; each worker process builds its automaton once; a stage's
error reaches the CLI as one line; a partial run resumes. Ray starts once per test session.
Without Ray installed, `--engine ray` says how to install it and the local engine never needs it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ENTRIES, cli, curated, make_texts, read_dir, write_pool
from processes import kill_when, start_run

from curation import Run, matchers, preview_files, stages
from curation.engines import make_engine
from curation.matchers import MATCHERS
from curation.rundir import RunDir
from metadata import fingerprint
from studio_common.errors import CurationError

ROOT = Path(__file__).resolve().parents[1]
ROWS = 24_000
ARGS_T, ARGS_SEED = 300, 5
GATE_WAIT_S = 120.0  # how long a gated probe item waits for the test before it gives up (a failure)
ENGINE_CASES = [
    pytest.param(("local", 1), id="local-1"),
    pytest.param(("local", 2), id="local-2", marks=pytest.mark.slow),  # 2 worker processes start in a second or two
    pytest.param(("ray", 2), id="ray-2cpu", marks=[pytest.mark.ray, pytest.mark.slow]),  # Ray starts in seconds
]


# --------------------------------------------------------------------------------------------------
# Fixtures: one Ray per session, one pool and one reference run per module
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_session() -> Iterator[object]:
    """A local Ray with 2 CPUs, shared by every Ray test (starting one costs seconds)."""
    ray = pytest.importorskip("ray")
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")  # no token file for a throwaway local cluster
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    # The probe stages below live in this test module, which Ray workers cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield ray
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()
        patch.undo()


@pytest.fixture(params=ENGINE_CASES)
def engine(request: pytest.FixtureRequest) -> tuple[str, int]:
    """(engine name, workers); asking for Ray starts the session's Ray."""
    name, workers = request.param
    if name == "ray":
        request.getfixturevalue("ray_session")
    return name, workers


def engine_args(engine: tuple[str, int]) -> list[object]:
    return ["--engine", engine[0], "--workers", engine[1]]


@pytest.fixture(scope="module")
def pool_and_metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("engines")
    texts = make_texts(ROWS, seed=11)
    ids = list(range(50_000, 50_000 + ROWS))
    urls = [f"https://img.example.com/{i}.jpg" for i in ids]
    pool = write_pool(base / "pool", {"id": ids, "url": urls, "text": texts}, files=3, row_group_size=1_000)
    metadata = base / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    return pool, metadata


def run_args(pool_and_metadata: tuple[Path, Path], shard_rows: int) -> list[object]:
    pool, metadata = pool_and_metadata
    return ["--pool", pool, "--metadata", metadata, "--t", ARGS_T, "--seed", ARGS_SEED, "--shard-rows", shard_rows]


@pytest.fixture(scope="module")
def reference(pool_and_metadata: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The local engine, one worker, one shard per file: what every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert (
        cli("run", *run_args(pool_and_metadata, 100_000), "--out", out, "--workers", 1, "--matcher", "aho-corasick")
        == 0
    )
    return snapshot(out)


def preview(out: Path, seed: int) -> dict:
    """The seed's preview in comparable form: its summary (but the time it took), its arrays, and its
    sample's pairs as positions in the pool (not shard and row: those depend on the sharding)."""
    run = RunDir(out)
    summary = {k: v for k, v in preview_files.describe(run, seed).items() if k != "built_s"}
    arrays = {
        f"preview {name}": pa.array(np.load(run.preview(seed) / f"{name}.npy"))
        for name in ("thresholds", "sample_offsets", "sample_entries", "sample_thresholds", "sample_groups")
    }
    starts = np.concatenate(([0], np.cumsum([s.rows for s in run.plan().shards])))
    rows = preview_files.sample_rows(run, seed)
    return {"preview": summary, **arrays, "preview sample": pa.array(starts[rows >> 32] + (rows & 0xFFFFFFFF))}


def snapshot(out: Path) -> dict:
    """A run's result in comparable form: the index, the curated set, counts, keep thresholds, the
    preview and row accounting."""
    record = json.loads((out / "run.json").read_text())
    return {
        "index": read_dir(out / "index"),
        "entry_counts": pq.read_table(out / "entry_counts.parquet"),
        "thresholds": read_dir(out / "thresholds" / f"seed-{ARGS_SEED}"),
        **preview(out, ARGS_SEED),
        "curated": curated(out).sort_by("id"),
        "balanced_counts": pa.array(Run(out).balanced_counts(ARGS_T, ARGS_SEED)),
        "rows": record["rows"],
        "balance": record["balance"],
    }


def assert_same(expected: dict, actual: dict) -> None:
    for name, value in expected.items():
        same = value.equals(actual[name]) if hasattr(value, "equals") else value == actual[name]
        assert same, f"{name} differs from the reference"


# --------------------------------------------------------------------------------------------------
# Stages used to probe the engines (module level, so that worker processes can run them)
# --------------------------------------------------------------------------------------------------


def echo_after(item: tuple[int, float], config: str) -> str:
    """Finish after a delay, so that with several workers results arrive out of order."""
    index, delay = item
    time.sleep(delay)
    return f"{config}{index}"


def finish_after_gate(item: tuple[int, str | None], config: None) -> str:
    """No gate: finish at once. A gate (a file path): finish only once that file exists, which the test
    makes when it has been told of the other item's result; "gave up" if it never comes."""
    index, gate = item
    if gate is None:
        return "at once"
    deadline = time.monotonic() + GATE_WAIT_S
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.01)
    return "after the gate"


def matcher_probe(item: int, config: stages.MatchConfig) -> tuple[int, bool]:
    """(process id, whether this call had to prepare the matcher)."""
    built = (config.root, config.matcher, config.metadata_fingerprint) not in stages._MATCHERS
    stages.shard_matcher(config)
    return os.getpid(), built


def surroundings_probe(item: int, config: None) -> tuple[int, int, str | None, str]:
    """(process id, its parent's, CURATION_PROBE as the stage sees it, its working directory)."""
    return os.getpid(), os.getppid(), os.environ.get("CURATION_PROBE"), os.getcwd()


def fail_on_three(item: int, config: None) -> int:
    if item == 3:
        raise CurationError("shard 3 cannot be read: broken on purpose")
    return item


# --------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("matcher", MATCHERS)
@pytest.mark.parametrize("shard_rows", [1_000, 5_000])
def test_same_curation_as_the_reference(engine, shard_rows, matcher, pool_and_metadata, reference, tmp_path) -> None:
    out = tmp_path / "run"
    assert (
        cli("run", *run_args(pool_and_metadata, shard_rows), "--out", out, *engine_args(engine), "--matcher", matcher)
        == 0
    )
    assert_same(reference, snapshot(out))
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == {"name": engine[0], "workers": engine[1]}
    assert record["matcher"] == matcher


def test_results_in_item_order_and_each_reported_once_with_its_own_result(engine) -> None:
    """Reports come in the order items finish, which only one worker fixes: there they are compared as
    they came; with several, each item must be reported exactly once, with its own result (when a
    report comes is test_a_result_is_reported_when_it_lands_not_when_all_have's)."""
    items = [(i, delay) for i, delay in enumerate([0.3, 0.0, 0.2, 0.0, 0.1, 0.0, 0.0, 0.05])]
    reported: list[tuple[int, str]] = []
    with make_engine(*engine) as running:
        results = running.map(echo_after, items, "r", lambda item, result: reported.append((item[0], result)))
    expected = [(i, f"r{i}") for i in range(len(items))]
    assert results == [result for _, result in expected]
    if engine == ("local", 1):
        assert reported == expected  # in this process, one after the other
    else:
        assert len(reported) == len(items) and sorted(reported) == expected


@pytest.mark.parametrize("parallel", ENGINE_CASES[1:])  # local-2 and ray-2cpu
def test_a_result_is_reported_when_it_lands_not_when_all_have(parallel, request, tmp_path) -> None:
    """Progress must move while shards finish: item 0 cannot finish until the test has been told of
    item 1's result (it waits for a file that only that report makes), so an engine that reported
    only once every item had finished would see item 0 give up instead."""
    if parallel[0] == "ray":
        request.getfixturevalue("ray_session")
    gate = tmp_path / "item-1-reported"
    reported: list[tuple[int, str]] = []

    def on_result(item: tuple[int, str | None], result: str) -> None:
        reported.append((item[0], result))
        if item[0] == 1:
            gate.touch()

    with make_engine(*parallel) as running:
        results = running.map(finish_after_gate, [(0, str(gate)), (1, None)], None, on_result)
    assert reported == [(1, "at once"), (0, "after the gate")], reported
    assert results == ["after the gate", "at once"]


@pytest.mark.parametrize("matcher", MATCHERS)
def test_each_worker_prepares_its_matcher_once(engine, matcher, tmp_path) -> None:
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    matchers.ensure_tables(tmp_path, ENTRIES, fingerprint(ENTRIES))
    config = stages.MatchConfig(
        root=str(tmp_path),
        metadata_path=str(metadata),
        metadata_fingerprint=fingerprint(ENTRIES),
        drop_invalid_entries=False,
        text_column="text",
        id_column=None,
        url_column=None,
        batch_rows=100,
        matcher=matcher,
    )
    with make_engine(*engine) as running:
        calls = running.map(matcher_probe, list(range(16)), config, lambda *_: None)
    builds: dict[int, int] = {}
    for pid, built in calls:
        builds[pid] = builds.get(pid, 0) + built
    assert all(count == 1 for count in builds.values()), builds
    if engine[0] == "local":
        assert len(builds) <= engine[1]


@pytest.mark.slow
def test_local_workers_come_from_one_fork_server_and_see_the_drivers_current_surroundings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork server keeps the environment and directory of its own start; two engines, one after the
    other in one driver, with another variable and directory each: every stage sees its driver's."""
    seen = []
    for value in ("first", "second"):
        (tmp_path / value).mkdir()
        monkeypatch.chdir(tmp_path / value)
        monkeypatch.setenv("CURATION_PROBE", value)
        with make_engine("local", 2) as running:
            seen.append(running.map(surroundings_probe, list(range(6)), None, lambda *_: None))
    for value, probes in zip(("first", "second"), seen):
        assert {(env, cwd) for _, _, env, cwd in probes} == {(value, str(tmp_path / value))}
    parents = {parent for probes in seen for _, parent, _, _ in probes}
    first, second = ({pid for pid, _, _, _ in probes} for probes in seen)
    assert os.getpid() not in parents and len(parents) == 1, "forked by one server, not by the driver"
    assert not first & second, "each engine starts workers of its own"


def test_a_stage_error_is_raised_as_itself(engine) -> None:
    with make_engine(*engine) as running, pytest.raises(CurationError) as raised:
        running.map(fail_on_three, list(range(8)), None, lambda *_: None)
    assert type(raised.value) is CurationError
    assert str(raised.value) == "shard 3 cannot be read: broken on purpose"


def test_a_stage_error_reaches_the_cli_as_one_line(engine, tmp_path, capsys) -> None:
    """A file whose footer reads fine but whose data does not: the error is raised inside a worker."""
    texts = make_texts(4_000, seed=5)
    pool = write_pool(tmp_path / "pool", {"id": list(range(len(texts))), "text": texts}, files=2, row_group_size=500)
    broken = pool / "part-001.parquet"
    column = pq.ParquetFile(broken).metadata.row_group(2).column(1)
    start = column.dictionary_page_offset or column.data_page_offset
    data = bytearray(broken.read_bytes())
    data[start + 40 : start + column.total_compressed_size - 10] = b"\xab" * (column.total_compressed_size - 50)
    broken.write_bytes(bytes(data))
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    capsys.readouterr()
    code = cli(
        "run",
        "--pool",
        pool,
        "--metadata",
        metadata,
        "--t",
        100,
        "--out",
        tmp_path / "out",
        "--shard-rows",
        500,
        *engine_args(engine),
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: cannot read Parquet file {broken}: "), err


@pytest.mark.parametrize("matcher", MATCHERS)
def test_a_partial_run_resumes_to_the_same_result(
    engine, matcher, pool_and_metadata, reference, tmp_path, capsys
) -> None:
    """The outputs of a run stopped at various points; the same command finishes it."""
    args = [*run_args(pool_and_metadata, 4_000), "--matcher", matcher]
    out = tmp_path / "run"
    assert cli("run", *args, "--out", out, *engine_args(engine)) == 0
    shards = len(json.loads((out / "plan.json").read_text())["shards"])
    run = RunDir(out)
    for shard in (1, 4):
        (out / "shards" / f"{shard:05d}.json").unlink()  # match not finished
    (out / "index" / "part-00004.parquet").unlink()
    # The balance stopped before its preview was merged: pieces of some shards made, another shard's
    # thresholds not written yet, no preview.
    rate = preview_files.describe(run, ARGS_SEED)["sample_rate"]
    for shard in (0, 3):
        stages.threshold_shard(shard, stages.ThresholdConfig(root=str(out), seed=ARGS_SEED, sample_rate=rate))
    assert sorted(p.name for p in run.preview_pieces(ARGS_SEED).iterdir()) == ["00000.npz", "00003.npz"]
    for child in run.preview(ARGS_SEED).iterdir():
        child.unlink()
    run.preview(ARGS_SEED).rmdir()
    (out / "thresholds" / f"seed-{ARGS_SEED}" / "part-00002.parquet").unlink()
    # The curated manifest stopped midway: a part and the provenance (written last) not written.
    manifest = next((out / "manifests").glob("curated-*.parquet"))
    (manifest / "part-00002.parquet").unlink()
    manifest.with_name(manifest.name + ".provenance.json").unlink()
    (out / "run.json").unlink()
    capsys.readouterr()
    assert cli("run", *args, "--out", out, *engine_args(engine)) == 0
    assert f"resuming: {shards - 2} of {shards} shards already matched" in capsys.readouterr().err
    assert_same(reference, snapshot(out))


# --------------------------------------------------------------------------------------------------
# Ray only: a killed `--engine ray` process, and life without Ray
# --------------------------------------------------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_ray_keeps_its_session_files_in_the_tests_temp_dir(ray_session, ray_temp_dir: Path) -> None:
    assert list(ray_temp_dir.glob("ray/session_*")), "Ray wrote its session elsewhere (RAY_TMPDIR ignored?)"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)  # its own wait for the first shard allows 300 s
def test_a_killed_ray_run_resumes_on_ray(ray_session, pool_and_metadata, reference, tmp_path, capsys) -> None:
    """`--engine ray` in its own process (its own local Ray), killed while matching, then resumed."""
    args = [str(a) for a in run_args(pool_and_metadata, 1_000)]
    out = tmp_path / "killed"
    process = start_run(["run", *args, "--out", out, "--engine", "ray", "--workers", 2, "--quiet"])
    leftovers = kill_when(process, lambda: bool(list((out / "shards").glob("*.json"))), seconds=300)
    assert not leftovers, "Ray processes outlived the killed run"
    # Counted once every process is gone, so the resumed run must find exactly these; how many there
    # are depends on timing (Ray may finish the shards it holds), so only "at least one" is asserted.
    markers = len(list((out / "shards").glob("*.json")))
    assert markers > 0, f"the run ended before its first shard: {process.stderr.read()}"

    capsys.readouterr()
    assert cli("run", *args, "--out", out, "--engine", "ray", "--workers", 2) == 0
    assert f"resuming: {markers} of {ROWS // 1_000} shards already matched" in capsys.readouterr().err
    assert_same(reference, snapshot(out))


@pytest.fixture
def without_ray(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import ray` fails as if Ray were not installed, in every process."""
    hidden = tmp_path / "hide-ray" / "ray"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'ray\'", name="ray")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden.parent), env.get("PYTHONPATH")]))
    return env


def test_without_ray_the_ray_engine_says_how_to_install_it(without_ray, pool_and_metadata, tmp_path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "curation",
            "run",
            *map(str, run_args(pool_and_metadata, 5_000)),
            "--out",
            str(out),
            "--engine",
            "ray",
        ],
        cwd=ROOT,
        env=without_ray,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "pip install -r requirements-ray.txt" in done.stderr
    assert not out.exists(), "nothing is written before the engine is known to work"


@pytest.mark.slow
def test_without_ray_the_local_engine_runs(without_ray, pool_and_metadata, reference, tmp_path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "curation",
            "run",
            *map(str, run_args(pool_and_metadata, 5_000)),
            "--out",
            str(out),
            "--engine",
            "local",
            "--workers",
            "2",
            "--quiet",
        ],
        cwd=ROOT,
        env=without_ray,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_same(reference, snapshot(out))


def test_ray_address_needs_the_ray_engine(pool_and_metadata, tmp_path, capsys) -> None:
    code = cli("run", *run_args(pool_and_metadata, 5_000), "--out", tmp_path / "out", "--ray-address", "auto")
    assert code == 2
    assert capsys.readouterr().err == "error: --ray-address needs --engine ray\n"


@pytest.mark.slow
def test_an_unreachable_ray_cluster_is_one_line(pool_and_metadata, tmp_path) -> None:
    pytest.importorskip("ray")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "curation",
            "run",
            *map(str, run_args(pool_and_metadata, 5_000)),
            "--out",
            str(tmp_path / "out"),
            "--engine",
            "ray",
            "--ray-address",
            "127.0.0.1:1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:1: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
