"""The pair reader (curation/pairs.py) against the obvious reading: the pool's rows, in file order, lined
up with the run's index; pairs found by (shard, position) are those rows; the pool is checked first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, examples, make_texts, naive_match, write_pool
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.pairs import PairReader
from curation.rundir import ENTRY_IDS, PAIR_KEY, PICKED_COLUMN, PICKED_TEXT, RunDir
from studio_common.errors import CurationError

ROWS = 2_300


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A matched run over three pool files of uneven row groups, cut into shards of several groups."""
    root = tmp_path_factory.mktemp("pairs")
    texts = make_texts(ROWS, seed=11)
    ids = list(range(ROWS))
    pool = write_pool(
        root / "pool",
        {"id": ids, "text": texts, "score": [i * 0.5 for i in ids], "tag": [f"t{i % 7}" for i in ids]},
        files=3,
        row_group_size=130,
    )
    entries = ["dog", "cat", "red", "a dog", "on the", "photo"]
    (root / "metadata.json").write_text(json.dumps(entries))
    assert (
        cli("match", "--pool", pool, "--metadata", root / "metadata.json", "--shard-rows", 300, "--out", root / "run")
        == 0
    )
    return root / "run", pool, entries


@pytest.fixture(scope="module")
def whole(indexed: tuple[Path, Path, list[str]]) -> pa.Table:
    """Every pair with every column, read shard by shard."""
    pairs = PairReader(RunDir(indexed[0]))
    return pa.concat_tables(pairs.table(shard, pairs.names) for shard in pairs.plan.shard_indices)


def pool_table(pool: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in sorted(pool.glob("*.parquet")))


def test_every_pair_lines_up_with_its_pool_row(indexed: tuple[Path, Path, list[str]]) -> None:
    out, pool, entries = indexed
    pairs = PairReader(RunDir(out))
    assert len(pairs.plan.shards) > 3 and any(len(s.row_groups) > 1 for s in pairs.plan.shards)
    assert pairs.names == ["id", "text", "score", "tag", PAIR_KEY, ENTRY_IDS]
    table = pa.concat_tables(pairs.table(shard, pairs.names) for shard in pairs.plan.shard_indices)
    expected = pool_table(pool)
    for name in expected.column_names:
        assert table.column(name).to_pylist() == expected.column(name).to_pylist()
    assert table.column(ENTRY_IDS).to_pylist() == [
        naive_match(entries, text) for text in expected.column("text").to_pylist()
    ]
    index_only = pa.concat_tables(pq.read_table(RunDir(out).index_part(s)) for s in pairs.plan.shard_indices)
    assert index_only.column_names == [PAIR_KEY, ENTRY_IDS]  # the run holds no pool column


@settings(max_examples=examples(200), deadline=None)
@given(data=st.data())
def test_pairs_found_by_position_are_those_rows(
    indexed: tuple[Path, Path, list[str]], whole: pa.Table, data: st.DataObject
) -> None:
    out, pool, _ = indexed
    pairs = PairReader(RunDir(out))
    shard = data.draw(st.sampled_from(pairs.plan.shards))
    positions = sorted(data.draw(st.sets(st.integers(0, shard.rows - 1), max_size=40)))
    columns = data.draw(st.lists(st.sampled_from(pairs.names), min_size=1, max_size=6, unique=True))
    found = pairs.rows(shard.index, np.array(positions, dtype=np.int64), columns)
    start = sum(s.rows for s in pairs.plan.shards if s.index < shard.index)
    assert found.column_names == columns
    for name in columns:
        assert (
            found.column(name).to_pylist()
            == whole.column(name).take(np.array(positions, dtype=np.int64) + start).to_pylist()
        )
    keep = np.zeros(shard.rows, dtype=bool)
    keep[positions] = True
    assert pairs.table(shard.index, columns, keep).equals(found)


def test_an_unknown_column_is_one_line(indexed: tuple[Path, Path, list[str]]) -> None:
    out, _, _ = indexed
    with pytest.raises(CurationError, match="has no column 'caption'; its columns are: id, text"):
        PairReader(RunDir(out)).table(0, ["id", "caption"])


def test_a_changed_or_missing_pool_file_is_refused(tmp_path: Path) -> None:
    texts = make_texts(400, seed=3)
    pool = write_pool(tmp_path / "pool", {"id": list(range(400)), "text": texts}, files=2, row_group_size=50)
    (tmp_path / "metadata.json").write_text('["dog", "cat"]')
    assert cli("match", "--pool", pool, "--metadata", tmp_path / "metadata.json", "--out", tmp_path / "run") == 0
    run = RunDir(tmp_path / "run")
    first, second = sorted(pool.glob("*.parquet"))
    assert PairReader(run).table(0, ["text"]).num_rows == 200  # as the run read it
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CurationError, match=f"pool file {first} changed since run .*its modification time changed"):
        PairReader(run).table(0, ["text"])
    assert PairReader(run).index(0, [ENTRY_IDS]).num_rows == 200  # the index alone needs no pool
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # restored: read as before
    assert PairReader(run).table(0, ["text"]).num_rows == 200
    pq.write_table(pq.read_table(second).slice(0, 150), second)
    with pytest.raises(CurationError, match="its size went from"):
        PairReader(run).table(1, ["id"])
    second.unlink()
    with pytest.raises(CurationError, match=f"pool file {second} of run .* is gone"):
        PairReader(run).table(1, ["id"])


def test_picked_text_is_the_pool_value_of_the_picked_column(tmp_path: Path) -> None:
    alt = ["a dog", None, "nothing here", "red cat", ""]
    title = ["cat photo", "dog", "", None, "plain"]
    pool = write_pool(tmp_path / "pool", {"id": list(range(5)), "alt": alt, "title": title})
    (tmp_path / "metadata.json").write_text('["dog", "cat", "red"]')
    code = cli(
        "match", "--pool", pool, "--metadata", tmp_path / "metadata.json", "--text-columns", "alt,title",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0
    pairs = PairReader(RunDir(tmp_path / "run"))
    table = pairs.table(0, ["alt", "title", PICKED_COLUMN, PICKED_TEXT])
    for row in table.to_pylist():
        picked = row[PICKED_COLUMN]
        assert row[PICKED_TEXT] == (row[picked] if picked else None)
    picked = table.column(PICKED_COLUMN).to_pylist()
    assert picked[1:] == ["title", None, "alt", None]  # the one matched text; none where neither matched
    assert picked[0] in ("alt", "title")
