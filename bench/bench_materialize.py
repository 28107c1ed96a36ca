"""Benchmark `curation materialize`: kept samples copied out of WebDataset tar shards of realistic size.

It writes --shards tar shards of --samples samples in all, as img2dataset lays them out (per sample a
JPEG-sized .jpg of 20-50 KB of random bytes, a .txt caption and a .json, sharing a key), and a pool
of the same samples whose `key` column names them and whose captions each name one to three of
--entries metadata entries drawn from a Zipf law (so the head is subsampled, as in a real pool). It
runs `curation run` on the pool, finds with `curation stats --target-size` the t that keeps about
half the samples, then times, once,

    python -m curation materialize RUN --t T --shards 'SHARDS/{00000..NNNNN}.tar' --out OUT --quiet

and reports samples/s and MB/s in and out (the command's own figures, from OUT/materialize.json, and
the wall time of the whole command). The shards were just written, so they are read from the page
cache: the figures are the command's own cost, not a disk's.

Usage:
    python bench/bench_materialize.py --samples 20000 --shards 10 --workdir /tmp/bench-materialize
Writes bench/results/materialize.json and bench/results/materialize.md.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from bench_engine import REPO, RESULTS, environment, write_results  # puts the repository on sys.path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--entries", type=int, default=2_000)
    p.add_argument("--samples-per-shard", type=int, default=2_000, help="output shards' size")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench-materialize"))
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    return p.parse_args()


def captions(n: int, entries: list[str], rng: random.Random) -> list[str]:
    weights = [1 / (rank + 1) for rank in range(len(entries))]
    return [" ".join(rng.choices(entries, weights, k=rng.randint(1, 3))) + " photo" for _ in range(n)]


def write_inputs(work: Path, samples: int, shards: int, entries: list[str], seed: int = 0) -> int:
    """The tar shards and the pool; returns the shards' bytes."""
    rng = random.Random(seed)
    keys = [f"{i:09d}" for i in range(samples)]
    texts = captions(samples, entries, rng)
    (work / "pool").mkdir(parents=True)
    pq.write_table(pa.table({"key": keys, "url": [f"https://img.test/{k}.jpg" for k in keys], "caption": texts}),
                   work / "pool" / "part-000.parquet", row_group_size=5_000)  # fmt: skip
    (work / "metadata.json").write_text(json.dumps(entries))
    (work / "shards").mkdir()
    per, total = -(-samples // shards), 0
    for index in range(shards):
        path = work / "shards" / f"{index:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(index * per, min(samples, (index + 1) * per)):
                info_json = json.dumps({"key": keys[i], "url": f"https://img.test/{keys[i]}.jpg"}).encode()
                for suffix, data in (
                    ("jpg", rng.randbytes(rng.randint(20_000, 50_000))),
                    ("txt", texts[i].encode()),
                    ("json", info_json),
                ):
                    info = tarfile.TarInfo(f"{keys[i]}.{suffix}")
                    info.size, info.mtime = len(data), 1_700_000_000
                    tar.addfile(info, io.BytesIO(data))
        total += path.stat().st_size
    return total


def curation(*args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "curation", *map(str, args)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done


def main() -> None:
    args = parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    entries = [f"thing{i}" for i in range(args.entries)]
    input_bytes = write_inputs(args.workdir, args.samples, args.shards, entries)
    run = args.workdir / "run"
    curation("run", "--pool", args.workdir / "pool", "--metadata", args.workdir / "metadata.json",
             "--t", 1000, "--out", run, "--quiet", "--no-manifest")  # fmt: skip
    stats = json.loads(curation("stats", run, "--target-size", args.samples // 2, "--json", "--quiet").stdout)
    t = stats["t_for_size"][0]["t"]
    spec = str(args.workdir / "shards" / f"{{00000..{args.shards - 1:05d}}}.tar")
    out = args.workdir / "out"
    command = ["materialize", run, "--t", t, "--shards", spec, "--out", out,
               "--samples-per-shard", args.samples_per_shard, "--quiet"]  # fmt: skip
    started = time.perf_counter()
    curation(*command)
    wall = time.perf_counter() - started
    summary = json.loads((out / "materialize.json").read_text())
    rates = summary["this_run"]
    report = {
        "environment": environment(),
        "command": "python -m curation " + " ".join(shlex.quote(str(part)) for part in command),
        "samples": args.samples,
        "input_shards": args.shards,
        "input_bytes": input_bytes,
        "t": t,
        "wall_s": round(wall, 3),
        "wall_samples_per_s": round(args.samples / wall, 1),
        "wall_input_mb_per_s": round(input_bytes / wall / 1e6, 2),
        "wall_output_mb_per_s": round(summary["output_bytes"] / wall / 1e6, 2),
        "summary": summary,
    }
    text = f"""# materialize

{report["environment"]["date"]}, commit {report["environment"]["commit"]}, {report["environment"]["cpus"]} CPUs,
Python {report["environment"]["python"]}, pyarrow {report["environment"]["pyarrow"]}. One run (`bench/bench_materialize.py
--samples {args.samples} --shards {args.shards} --samples-per-shard {args.samples_per_shard}`): {args.samples:,} samples
(a .jpg of 20-50 KB of random bytes, a .txt, a .json each) in {args.shards} tar shards, {input_bytes / 1e6:,.0f} MB,
read from the page cache. t = {t:g} keeps about half:

    {report["command"]}

| | samples | MB | samples/s | MB/s |
|---|---:|---:|---:|---:|
| read (copying) | {summary["input_samples"]:,} | {input_bytes / 1e6:,.1f} | {rates["samples_per_s"]:,.0f} | {rates["input_mb_per_s"]:,.1f} |
| written (copying) | {summary["written"]:,} | {summary["output_bytes"] / 1e6:,.1f} | {rates["written_per_s"]:,.0f} | {rates["output_mb_per_s"]:,.1f} |
| whole command, read | {args.samples:,} | {input_bytes / 1e6:,.1f} | {report["wall_samples_per_s"]:,.0f} | {report["wall_input_mb_per_s"]:,.1f} |
| whole command, written | {summary["written"]:,} | {summary["output_bytes"] / 1e6:,.1f} | | {report["wall_output_mb_per_s"]:,.1f} |

Kept keys {summary["kept"]:,}, written {summary["written"]:,}, missing {summary["missing"]:,}, skipped
{summary["skipped"]:,}; {summary["output_shards"]} output shards. Copying {rates["copy_seconds"]:.2f} s, reading the kept
keys {rates["kept_keys_seconds"]:.2f} s, the command {wall:.2f} s in all (Python's start and imports included).
"""
    write_results("materialize", report, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()
