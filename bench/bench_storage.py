"""Object-storage benchmark: what a run costs when its pool, metadata and run directory live in S3.

On a realistic pool (bench/realistic_pool.py: captions grown from real alt-texts) it runs

    python -m curation run --pool P --metadata M --t 20000 --seed 0 --out RUN --quiet --workers N

with everything on local disk, and with everything in a bucket of an S3-compatible server started
here on 127.0.0.1 (moto's server mode; `AWS_ENDPOINT_URL` points the run at it), each with 1 and 2
local workers; the four cases interleaved, --repeat times, the fastest kept. Recorded per case: wall
time, CPU, the run's peak memory (the CLI and its workers), the CPU the S3 server spent, and the
objects the run left in the store. Every case must curate the identical set (pair keys of the
curated manifest the run ends with, read from the store's object `RUN/manifests/NAME` through its
filesystem): the benchmark checks it.

moto is a Python server on the same two cores as the run: its CPU is taken from the workers, and its
requests cost what a Python HTTP server costs, so the S3 figures bound a real store's overhead from
above on this machine (a real store is elsewhere, with its own latency instead).

Usage:
    python bench/bench_storage.py --rows 1000000 --entries 500000 --workdir /tmp/bench --repeat 2
Writes bench/results/storage.json and bench/results/storage.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from bench_engine import REPO, ensure_pool, environment, fresh, run_measured, wait_for_quiet, write_results
from bench_scaling import cpu_ticks

from curation.export import run_manifest_name  # bench_engine has put the repository on sys.path

sys.path.insert(0, str(REPO / "tests"))
from servers import s3_server  # noqa: E402  (the same real server the tests start)

BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
CASES = {"disk-1": ("disk", 1), "disk-2": ("disk", 2), "s3-1": ("s3", 1), "s3-2": ("s3", 2)}


@contextmanager
def store() -> dict:
    with s3_server() as endpoint:
        saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        try:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket=BUCKET)
            server = int(
                subprocess.run(
                    ["pgrep", "-f", f"moto.server .*{endpoint.rsplit(':', 1)[1]}"], capture_output=True, text=True
                ).stdout.split()[0]
            )
            yield {
                "client": client,
                "endpoint": endpoint,
                "server_pid": server,
                "fs": pafs.S3FileSystem(
                    endpoint_override=endpoint, access_key="bench", secret_key="bench", region="us-east-1"
                ),
            }
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def upload(pool: Path, where: dict) -> float:
    started = time.perf_counter()
    for path in sorted((pool / "pool").glob("*.parquet")):
        where["client"].upload_file(str(path), BUCKET, f"pool/{path.name}")
    where["client"].upload_file(str(pool / "metadata.json"), BUCKET, "metadata.json")
    return round(time.perf_counter() - started, 2)


def objects(where: dict, prefix: str) -> tuple[int, int]:
    pages = where["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    items = [item for page in pages for item in page.get("Contents", [])]
    return len(items), sum(item["Size"] for item in items)


def clear(where: dict, prefix: str) -> None:
    try:
        where["fs"].delete_dir(f"{BUCKET}/{prefix}")
    except FileNotFoundError:
        pass


def curated_keys(run: str, where: dict, t: float) -> list[int]:
    """Pair keys of the curated manifest `run` ends with, as a reader finds it: a local file, or the
    object `RUN/manifests/NAME` read through the store's filesystem."""
    name = run_manifest_name(t, 0)
    if run.startswith("s3://"):
        prefix = run.removeprefix(f"s3://{BUCKET}/")
        table = pq.read_table(f"{BUCKET}/{prefix}/manifests/{name}", filesystem=where["fs"], columns=["pair_key"])
    else:
        table = pq.read_table(Path(run) / "manifests" / name, columns=["pair_key"])
    return sorted(table.column("pair_key").to_pylist())


def run_case(name: str, pool: Path, workdir: Path, where: dict, args: argparse.Namespace, attempt: int) -> dict:
    place, workers = CASES[name]
    if place == "s3":
        clear(where, f"runs/{name}")
        spec = [
            "--pool",
            f"s3://{BUCKET}/pool/",
            "--metadata",
            f"s3://{BUCKET}/metadata.json",
            "--out",
            f"s3://{BUCKET}/runs/{name}",
        ]
        out = f"s3://{BUCKET}/runs/{name}"
    else:
        out = str(fresh(workdir / "storage-runs" / name, workdir))
        spec = ["--pool", str(pool / "pool"), "--metadata", str(pool / "metadata.json"), "--out", out]
    cache = workdir / "storage-cache"
    shutil.rmtree(cache, ignore_errors=True)  # every case starts with no local copy of a run in the store
    os.environ["CURATION_CACHE_DIR"] = str(cache)
    argv = [
        sys.executable,
        "-m",
        "curation",
        "run",
        *spec,
        "--t",
        f"{args.t:g}",
        "--seed",
        "0",
        "--workers",
        str(workers),
        "--quiet",
    ]
    waited = wait_for_quiet(args.quiet_wait)
    server_before = cpu_ticks(where["server_pid"])
    measured = run_measured(argv, workdir / "storage-logs" / f"{name}-{attempt}.log")
    server_cpu = (cpu_ticks(where["server_pid"]) - server_before) / os.sysconf("SC_CLK_TCK")
    record = {
        "case": name,
        "place": place,
        "workers": workers,
        "waited_for_quiet_s": waited,
        "command": asdict(measured),
        "server_cpu_s": round(server_cpu, 2),
    }
    if place == "s3":
        record["objects"], record["object_bytes"] = objects(where, f"runs/{name}/")
    record["curated"] = curated_keys(out, where, args.t)
    return record


def markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "# Runs with the pool and the run directory in S3 (moto's server on 127.0.0.1) against local disk",
        "",
        f"{rows:,} pairs from bench/realistic_pool.py, {report['entries']:,} entries, t = {report['t']:g}; "
        f"fastest of {report['repeat']} interleaved runs; measured {report['environment']['date']} "
        f"(commit {report['environment']['commit'][:10]}). Upload of the pool to the store beforehand: "
        f"{report['upload_s']} s (not counted).",
        "",
        "| where | workers | wall s | CPU s (run) | CPU s (S3 server) | peak MiB (run) | objects | store MB | all wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for best in report["cases"].values():
        command = best["command"]
        lines.append(
            f"| {best['place']} | {best['workers']} | {command['wall_s']:.1f} | {command['cpu_s']:.1f} | "
            f"{best['server_cpu_s']:.1f} | {command['peak_tree_rss_mib']:,.0f} | {best.get('objects', '')} | "
            f"{best.get('object_bytes', 0) / 1e6:,.0f} | {', '.join(f'{w:.1f}' for w in best['all_wall_s'])} |"
        )
    lines += [
        "",
        f"Identical curated set in every case: {report['identical']} ({report['curated_pairs']:,} pairs kept).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated pool")
    parser.add_argument("--t", type=float, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--quiet-wait", type=float, default=60, help="at most this long, wait for an idle machine")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pool, _ = ensure_pool(args.workdir, args.rows, args.entries, args.seed)
    with store() as where:
        report = {
            "rows": args.rows,
            "entries": args.entries,
            "t": args.t,
            "repeat": args.repeat,
            "environment": environment(),
            "upload_s": upload(pool, where),
        }
        tries: dict[str, list[dict]] = {name: [] for name in CASES}
        for attempt in range(args.repeat):
            for name in CASES:
                print(f"{name} ({attempt + 1}/{args.repeat})", flush=True)
                tries[name].append(run_case(name, pool, args.workdir, where, args, attempt))
    curated = {tuple(r.pop("curated")) for runs in tries.values() for r in runs}
    report["identical"] = len(curated) == 1
    report["curated_pairs"] = len(next(iter(curated)))
    report["cases"] = {
        name: min(runs, key=lambda r: r["command"]["wall_s"]) | {"all_wall_s": [r["command"]["wall_s"] for r in runs]}
        for name, runs in tries.items()
    }
    write_results("storage", report, markdown(report))
    print(markdown(report))
    if not report["identical"]:
        raise SystemExit("the cases curated different sets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
