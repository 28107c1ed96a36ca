"""Row accounting as a value: it adds up, and its JSON is the one existing run directories hold."""

from __future__ import annotations

import json

import pytest

from curation.shard_stats import RowStats, ShardStats
from curation.stages import read_marker
from studio_common.errors import CurationError

# A marker as runs made before RowStats wrote it: its bytes must not change.
OLD_MARKER = {
    "shard": 3,
    "path": "/pool/part-000.parquet",
    "matcher": "tokens",
    "rows": 10,
    "matched": 6,
    "unmatched": 3,
    "null_or_empty_text": 1,
    "matches": 14,
}


def test_stats_add_field_by_field() -> None:
    total = RowStats(10, 6, 3, 1, 14) + RowStats(5, 1, 4, 0, 2)
    assert total == RowStats(rows=15, matched=7, unmatched=7, null_or_empty_text=1, matches=16)
    assert sum([RowStats(1, 1, 0, 0, 3)] * 3, RowStats()) == RowStats(3, 3, 0, 0, 9)


def test_accounting_detects_a_lost_row() -> None:
    assert RowStats(10, 6, 3, 1, 14).accounted
    assert not RowStats(10, 6, 3, 0, 14).accounted


def test_marker_json_is_unchanged_in_keys_and_order() -> None:
    stats = ShardStats.from_json(OLD_MARKER)
    assert stats.rows == RowStats(10, 6, 3, 1, 14)
    assert json.dumps(stats.as_json()) == json.dumps(OLD_MARKER)


def test_run_rows_call_the_rows_read_in() -> None:
    assert list(RowStats(10, 6, 3, 1, 14).as_run_rows().items()) == [
        ("in", 10),
        ("matched", 6),
        ("unmatched", 3),
        ("null_or_empty_text", 1),
        ("matches", 14),
    ]


def test_a_marker_that_is_not_one_is_refused_in_one_line(tmp_path) -> None:
    marker = tmp_path / "00000.json"
    marker.write_text(json.dumps({"shard": 0}))
    with pytest.raises(CurationError, match="is not a shard marker"):
        read_marker(marker)
    marker.write_text(json.dumps(OLD_MARKER))
    assert read_marker(marker).rows.matches == 14
