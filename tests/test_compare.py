"""`curation compare` and curation/compare.py: two real runs of the bundled sample, side by side.

A run compared with itself differs in nothing; two versions of the metadata on one pool differ in
exactly the entries added and removed; the pairs kept by one run only are those of the two runs'
exported manifests (an independent path: `curation export`); a worldwide run is joined by (entry,
language); bad input is one line and exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import WORLD_METADATA, cli, s3_store, small_world_run

import data_samples
from curation import Run
from curation.compare import Comparer, aligned, compare_runs

T = 200.0
REMOVED_MATCHED = 12  # the most matched entries of the sample the edit removes, besides 300 drawn at random
ADDED = ["photo of", "for sale by", "on white", "zzz-never-in-a-caption"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample at T; the same pool with an edited metadata, cut into other shards; the sample metadata
    on half the pool (another pool); a worldwide run and one with an edited worldwide metadata."""
    base = tmp_path_factory.mktemp("compare")
    sample, edited, half = base / "sample", base / "edited", base / "half"
    assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T, "--out", sample) == 0
    entries = json.loads(Path(data_samples.METADATA).read_text())
    counts = Run(sample).counts
    frequent = {entries[i] for i in np.argsort(counts)[::-1][:REMOVED_MATCHED]}
    drawn = {entries[i] for i in np.random.default_rng(3).choice(len(entries), 300, replace=False)}
    removed = frequent | drawn
    added = [entry for entry in ADDED if entry not in set(entries)]
    assert len(added) >= 3
    (base / "edited.json").write_text(json.dumps([e for e in entries if e not in removed] + added))
    other_shards = ["--shard-rows", 7000, "--out", edited]
    assert cli("run", "--pool", data_samples.POOL, "--metadata", base / "edited.json", "--t", T, *other_shards) == 0
    first_file = Path(data_samples.POOL) / "part-00000.parquet"
    assert cli("run", "--pool", first_file, "--metadata", data_samples.METADATA, "--t", T, "--out", half) == 0

    world, world_edited = base / "world", base / "world-edited"
    small_world_run(base / "w", world, T, seed=3)
    metadata = pq.read_table(base / "w" / "metadata.parquet").to_pylist()
    kept = [row for row in metadata if (row["entry"], row["language"]) != ("dog", "de")] + [
        {"entry": "Hund", "language": "en"}  # the text of a de entry, now in en too
    ]
    pq.write_table(pa.Table.from_pylist(kept), base / "w-edited.parquet")
    languages = ["--language-column", "lang", "--t", T, "--out", world_edited]
    assert cli("run", "--pool", base / "w" / "pool", "--metadata", base / "w-edited.parquet", *languages) == 0
    return {
        "base": base,
        "sample": sample,
        "edited": edited,
        "half": half,
        "world": world,
        "world_edited": world_edited,
        "removed": removed,
        "added": set(added),
    }


def entry_set(frame, keys: tuple[str, ...]) -> set:
    return set(frame[list(keys)].itertuples(index=False, name=None)) if len(keys) > 1 else set(frame[keys[0]])


@pytest.mark.parametrize("t", [T, 7.5])
def test_a_run_compared_with_itself_differs_in_nothing(runs: dict, t: float) -> None:
    comparison = compare_runs(runs["sample"], runs["sample"], t)
    assert comparison.a.as_json() == comparison.b.as_json()
    assert len(comparison.only_in_a()) == len(comparison.only_in_b()) == len(comparison.flips()) == 0
    assert len(comparison.in_both()) == comparison.a.entries == len(Run(runs["sample"]).entries)
    pairs = comparison.pairs
    assert pairs is not None and comparison.pool_difference is None
    assert pairs.kept_by_a_only == pairs.kept_by_b_only == pairs.matched_by_a_only == pairs.matched_by_b_only == 0
    assert pairs.kept_by_both == comparison.a.kept == Run(runs["sample"]).size_at(t)
    assert pairs.matched_by_both == comparison.a.matched_pairs and pairs.pairs == 30_000


def test_two_metadata_versions_on_one_pool_differ_in_exactly_the_entries_edited(runs: dict) -> None:
    comparison = compare_runs(runs["sample"], runs["edited"], T)
    assert set(comparison.only_in_a()["entry"]) == runs["removed"]
    assert set(comparison.only_in_b()["entry"]) == runs["added"]
    # Counts of the entries kept by the edit are the same (c_e counts the pairs matching e alone), so no
    # entry changes side; the removed entries carry their counts in A, the added ones theirs in B.
    both = comparison.in_both()
    assert (both["count_a"] == both["count_b"]).all() and len(comparison.flips()) == 0
    a, b = Run(runs["sample"]), Run(runs["edited"])
    count_a = dict(zip(a.entries, a.counts.tolist()))
    count_b = dict(zip(b.entries, b.counts.tolist()))
    only_a = comparison.only_in_a()
    assert dict(zip(only_a["entry"], only_a["count_a"].tolist())) == {e: count_a[e] for e in runs["removed"]}
    assert only_a["count_a"].is_monotonic_decreasing and only_a["count_a"].iloc[0] == max(count_a.values())
    only_b = comparison.only_in_b()
    assert dict(zip(only_b["entry"], only_b["count_b"].tolist())) == {e: count_b[e] for e in runs["added"]}
    assert comparison.a.entries - len(runs["removed"]) + len(runs["added"]) == comparison.b.entries
    assert comparison.b.kept == b.size_at(T) and comparison.a.kept == a.size_at(T)
    assert comparison.b.matched_pairs < comparison.a.matched_pairs  # frequent entries were removed


def exported_keys(run: Path, t: float, out: Path) -> set[int]:
    """The ids of the pairs a run keeps at t, from its exported manifest (`curation export --columns keys`)."""
    assert cli("export", run, "--t", t, "--columns", "keys", "--out", out, "--quiet") == 0
    ids = pq.read_table(out, columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids))  # the sample's ids are unique: a set loses nothing
    return set(ids)


@pytest.mark.parametrize("t", [T, 37.5])
def test_pairs_kept_by_one_run_only_are_those_of_the_exported_manifests(runs: dict, tmp_path: Path, t: float) -> None:
    """The two runs' shards differ in size (7,000 rows against whole files): the pairs align by pool row."""
    assert Run(runs["edited"]).plan.shard_rows != Run(runs["sample"]).plan.shard_rows
    kept_a = exported_keys(runs["sample"], t, tmp_path / "a.parquet")
    kept_b = exported_keys(runs["edited"], t, tmp_path / "b.parquet")
    pairs = compare_runs(runs["sample"], runs["edited"], t).pairs
    assert pairs is not None
    assert (pairs.kept_by_both, pairs.kept_by_a_only, pairs.kept_by_b_only) == (
        len(kept_a & kept_b),
        len(kept_a - kept_b),
        len(kept_b - kept_a),
    )
    assert pairs.kept_by_a_only and pairs.kept_by_b_only  # the edit moved pairs both ways, or this proves little


def test_one_comparer_answers_at_every_t_as_a_fresh_comparison(runs: dict) -> None:
    comparer = Comparer(runs["sample"], runs["edited"])
    for t in (3.0, 50.0, T, 5000.0):
        assert comparer.at(t).as_json() == compare_runs(runs["sample"], runs["edited"], t).as_json()


def test_runs_of_two_pools_compare_entries_and_say_why_pairs_are_not(runs: dict, capsys) -> None:
    t = 40.0
    comparison = compare_runs(runs["sample"], runs["half"], t)
    assert comparison.pairs is None
    assert "2 files in A, 1 in B" in comparison.pool_difference and "part-00001.parquet" in comparison.pool_difference
    assert len(comparison.only_in_a()) == len(comparison.only_in_b()) == 0

    # The side of every entry in each run, written out from the definition (tail: 0 < c < t, head: c >= t).
    def side(count: int) -> str:
        return "head" if count >= t else "tail" if count > 0 else "unmatched"

    a, b = Run(runs["sample"]), Run(runs["half"])
    expected = {
        entry: (int(x), int(y), side(x), side(y))
        for entry, x, y in zip(a.entries, a.counts, b.counts)
        if side(x) != side(y)
    }
    flips = comparison.flips()
    assert (
        expected
        and {row.entry: (row.count_a, row.count_b, row.side_a, row.side_b) for row in flips.itertuples()} == expected
    )
    capsys.readouterr()
    assert cli("compare", runs["sample"], runs["half"], "--t", t) == 0
    out = capsys.readouterr().out
    assert "pairs: not compared, the runs read different pools (2 files in A, 1 in B" in out
    assert f"of which {len(flips):,} change side at t" in out


def test_a_worldwide_run_is_compared_by_entry_and_language(runs: dict) -> None:
    comparison = compare_runs(runs["world"], runs["world_edited"], T)
    assert comparison.keys == ("entry", "language")
    keys = comparison.keys
    assert entry_set(comparison.only_in_a(), keys) == {("dog", "de")}
    assert entry_set(comparison.only_in_b(), keys) == {("Hund", "en")}
    assert ("dog", "en") in entry_set(comparison.in_both(), keys)  # the same text in another language stays
    assert ("Hund", "de") in entry_set(comparison.in_both(), keys)
    entries = sum(len(words) for words in WORLD_METADATA.values())
    assert comparison.a.entries == comparison.b.entries == entries
    world = Run(runs["world"])
    assert comparison.a.kept == world.size_at(T) == sum(row["kept"] for row in world.languages_at(T))
    assert {code: row["kept"] for code, row in comparison.a.languages.items()} == {
        row["language"]: row["kept"] for row in world.languages_at(T) if row["language"] is not None
    }
    assert (
        comparison.a.tail_share == world.tail_share(T) and comparison.a.head_entries == world.head_tail(T).head_entries
    )
    pairs = comparison.pairs  # one pool: pairs are compared, each at its caption language's t in its run
    assert pairs is not None and pairs.kept_by_both + pairs.kept_by_a_only == comparison.a.kept
    assert pairs.kept_by_both + pairs.kept_by_b_only == comparison.b.kept


def test_worldwide_pairs_agree_with_the_exported_manifests(runs: dict, tmp_path: Path) -> None:
    t = 30.0
    kept_a = exported_keys(runs["world"], t, tmp_path / "a.parquet")
    kept_b = exported_keys(runs["world_edited"], t, tmp_path / "b.parquet")
    pairs = compare_runs(runs["world"], runs["world_edited"], t).pairs
    assert (pairs.kept_by_both, pairs.kept_by_a_only, pairs.kept_by_b_only) == (
        len(kept_a & kept_b),
        len(kept_a - kept_b),
        len(kept_b - kept_a),
    )


def test_the_command_prints_the_table_the_lists_and_the_pairs(runs: dict, capsys) -> None:
    capsys.readouterr()
    assert cli("compare", runs["sample"], runs["edited"], "--t", T, "--top", 3) == 0
    out = capsys.readouterr().out
    comparison = compare_runs(runs["sample"], runs["edited"], T)
    assert out.splitlines() == comparison.lines(3)
    assert f"kept at t            {comparison.a.kept:>14,} {comparison.b.kept:>14,}" in out
    assert f"{len(runs['removed']):,} only in A, {len(runs['added']):,} only in B" in out
    assert f"only in A (3 most matched of {len(runs['removed']):,}):" in out
    assert f"  kept by A only     {comparison.pairs.kept_by_a_only:>12,}" in out
    assert cli("compare", runs["sample"], runs["edited"], "--t", T, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == json.loads(json.dumps(comparison.as_json()))
    assert len(shown["entries"]["only_in_a_entries"]) == len(runs["removed"])  # --json lists every entry
    assert shown["pairs"]["same_pool"] and shown["pool_difference"] is None
    assert cli("compare", runs["sample"], runs["edited"], "--t", T, "--json", "--top", 2) == 0
    assert len(json.loads(capsys.readouterr().out)["entries"]["only_in_a_entries"]) == 2


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["{base}/no-such-run", "--t", "200"], "run directory not found: {base}/no-such-run"),
        (["{base}", "--t", "200"], "is not a run directory"),
        (["{world}", "--t", "200"], "is a worldwide run (entries per language) and"),
        (["{edited}", "--t", "0"], "t must be a positive number"),
        (["{edited}", "--t", "200", "--seed-b", "9"], "has no keep thresholds for seed 9"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(runs: dict, capsys, arguments: list[str], said: str) -> None:
    capsys.readouterr()
    filled = [a.format(**{k: v for k, v in runs.items() if isinstance(v, Path)}) for a in arguments]
    assert cli("compare", runs["sample"], *filled) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said.format(base=runs["base"]) in err, err


def test_stretches_of_two_runs_are_cut_to_one_length_in_pool_order() -> None:
    """Shard sizes 3+0+4 against 2+5 cover the same 7 rows: every stretch pairs the same rows."""
    rows = np.arange(7, dtype=np.float64)
    a = [(rows[:3], None), (rows[3:3], None), (rows[3:], None)]
    b = [(rows[:2], None), (rows[2:], None)]
    cut = list(aligned(iter(a), iter(b)))
    assert all(np.array_equal(x[0], y[0]) for x, y in cut)
    assert np.array_equal(np.concatenate([x[0] for x, _ in cut]), rows)
    from studio_common.errors import CurationError

    with pytest.raises(CurationError, match="different numbers of pairs"):
        list(aligned(iter(a), iter(b[:1])))


@pytest.mark.remote
@pytest.mark.slow
def test_a_run_in_s3_is_compared_as_a_local_one(runs: dict, tmp_path: Path, capsys) -> None:
    with s3_store(tmp_path / "cache", "runs") as endpoint:
        run = "s3://runs/sample"
        assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T, "--out", run) == 0
        capsys.readouterr()
        assert cli("compare", run, runs["edited"], "--t", T, "--json", "--quiet") == 0
        shown = json.loads(capsys.readouterr().out)
        local = compare_runs(runs["sample"], runs["edited"], T).as_json()
        assert shown["a"]["run"] == run and shown["pairs"] == local["pairs"]
        assert shown["entries"] == local["entries"] and os.environ["AWS_ENDPOINT_URL"] == endpoint


@pytest.mark.parametrize("t", [1.0, 5.0, 40.0, 1e9])
def test_each_entrys_side_is_what_head_tail_counts(t: float) -> None:
    """counting.sides, which Compare shows per entry, agrees with head_tail's totals; c = t is head."""
    from curation import counting

    counts = np.random.default_rng(int(t)).integers(0, 60, 500)
    counts[:3] = [0, int(t) if t < 1e6 else 1, 39]
    sides = counting.sides(counts, t)
    split = counting.head_tail(counts, t)
    assert (sides == "head").sum() == split.head_entries and (sides == "tail").sum() == split.tail_entries
    assert (sides == "unmatched").sum() == split.unmatched_entries
    assert sides[0] == "unmatched" and (t >= 1e6 or sides[1] == "head")
    per_entry_t = np.full(len(counts), t)  # one t per entry (a worldwide run's) gives the same sides
    assert (counting.sides(counts, per_entry_t) == sides).all()


def test_the_pool_is_the_same_only_for_the_same_files_in_the_same_order(runs: dict) -> None:
    """Row r of one run is row r of the other only then: sizes, times and order all count."""
    from dataclasses import replace

    from curation.plan import pool_difference

    sample, edited = Run(runs["sample"]).plan, Run(runs["edited"]).plan
    assert pool_difference(sample, edited) is None  # other shards, other metadata: the same pool
    files = sample.files
    assert pool_difference(sample, replace(sample, files=files[::-1])) == "the same files in another order"
    touched = (files[0], {**files[1], "mtime_ns": files[1]["mtime_ns"] + 1})
    said = pool_difference(sample, replace(sample, files=touched))
    assert said.startswith(f"{files[1]['path']}: modified ") and " in A, " in said and said.endswith(" in B")
    grown = ({**files[0], "bytes": files[0]["bytes"] + 1}, files[1])
    assert pool_difference(sample, replace(sample, files=grown)).endswith(
        f"{files[0]['bytes']:,} bytes in A, {files[0]['bytes'] + 1:,} in B"
    )
