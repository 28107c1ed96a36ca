"""Run directory format 2 curates exactly what format 1 did: on the same inputs and seed, the same
curated pairs, entry counts, entry ids and keep thresholds of every pair, and run.json's figures, for
both matchers, one and two workers, id and content keys, MetaCLIP 1 and worldwide runs. The format-1
outcomes were made once by the format-1 code (tests/format1_cases.py says how); engines, object
storage and Ray are held to the local run by tests/test_engines.py and the storage tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from format1_cases import CASES, run_case

FORMAT_1 = json.loads((Path(__file__).parent / "format1_results.json").read_text())["cases"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_format_2_curates_what_format_1_did(case: str, tmp_path: Path) -> None:
    now = run_case(case, None, tmp_path)
    before = FORMAT_1[case]
    assert now.keys() == before.keys()
    for key in before:
        assert now[key] == before[key], key
