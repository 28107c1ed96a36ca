"""`curation upgrade`: a format-1 run directory made an index over its pool, without matching again.

Format 1 copied every pool column into annotated/ (and the kept rows again into curated/); format 2
keeps per pair only what the pool lacks (curation/pairs.py). The upgrade keeps the index columns of
each annotated part, drops the pair keys its threshold parts repeated, then writes the format-2 plan,
and only then removes the copies: a killed upgrade is run again and goes on where it stopped.
The pool must be the one the run read, since a format-2 run reads its pairs' columns from it.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pyarrow.parquet as pq

from curation.pairs import PairReader, plan_index_schema
from curation.plan import Plan, read_plan
from curation.pool import open_parquet
from curation.rundir import FORMAT_VERSION, THRESHOLD, RunDir, read_json, read_parquet
from studio_common import storage
from studio_common.errors import CurationError
from studio_common.progress import progress_bar

FORMAT_1_LEFTOVERS = ("annotated", "curated", ".curated-staging", ".curated-retired")
FORMAT_1_FILES = ("balanced_counts.parquet",)


def upgrade_run(spec: str, progress: bool = True) -> int:
    """Upgrade the run directory ``spec`` (a path or a URI) in place; returns the shards it re-indexed.
    The caller holds the run's lock."""
    run = RunDir.open(spec)
    if not run.fetch(run.plan_json):
        raise CurationError(f"{spec} is not a run directory (no plan.json)")
    plan = read_plan(run.plan_json, spec, upgrading=True)
    if plan.format_version >= FORMAT_VERSION:
        _remove_copies(run)
        return 0
    reader = PairReader(run, plan)
    for signature in plan.files:  # the pool the index will point into: refused now if it changed
        reader.check_pool_file(signature["path"])
    columns = plan_index_schema(plan).names
    indexed = 0
    with progress_bar(len(plan.shards), f"upgrade {spec}", "shards", enabled=progress) as bar:
        for shard in plan.shards:
            if not run.has(run.index_part(shard.index)):
                old = run.format_1_parts / run.index_part(shard.index).name
                if not run.has(old):
                    raise CurationError(f"{spec} lacks {old.name} of annotated/; run it again into a new directory")
                table = open_parquet(run.readable(old)).read(columns=columns)
                run.write_table(run.index_part(shard.index), table.cast(plan_index_schema(plan)), keep_copy=False)
                indexed += 1
            for seed in _seeds(run):
                _drop_repeated_keys(run, seed, shard.index)
            bar.update()
    run.write_plan(replace(_absolute(plan), format_version=FORMAT_VERSION))
    if run.fetch(run.run_json):
        record = read_json(run.run_json)
        run.write_json(run.run_json, {**record, "format_version": FORMAT_VERSION})
    _remove_copies(run)
    return indexed


def _absolute(plan: Plan) -> Plan:
    """Local pool paths made absolute, as format 2 records them: format 1 kept them as typed (perhaps
    relative to where the run started, which is where the upgrade runs and has just checked them)."""

    def local(path: str) -> str:
        return path if storage.is_uri(path) else os.path.abspath(path)

    return replace(
        plan,
        files=tuple({**signature, "path": local(signature["path"])} for signature in plan.files),
        shards=tuple(replace(shard, path=local(shard.path)) for shard in plan.shards),
    )


def _seeds(run: RunDir) -> list[int]:
    if run.source:
        return sorted(int(f.removeprefix("seed-")) for f in run.folders(run.root / "thresholds"))
    return run.threshold_seeds()


def _drop_repeated_keys(run: RunDir, seed: int, shard: int) -> None:
    """A format-1 threshold part also held the pair keys, which the index holds: keep only k."""
    path = run.threshold_part(seed, shard)
    if not run.fetch(path):
        return
    if pq.read_schema(path).names != [THRESHOLD]:
        run.write_table(path, read_parquet(path, columns=[THRESHOLD]), keep_copy=False, use_dictionary=False)
    run.discard(path)


def _remove_copies(run: RunDir) -> None:
    """What format 1 kept and format 2 does not: the pool's copies and the per-t files."""
    for name in FORMAT_1_LEFTOVERS:
        run.remove_tree(run.root / name)
    for name in FORMAT_1_FILES:
        run.remove_file(run.root / name)
