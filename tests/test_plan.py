"""plan.json, typed (curation/plan.py): what runs have always written reads back to the same JSON, key
for key; a plan from a newer studio or an edited one is refused in one line, and a format-1 plan in one
line naming `curation upgrade`; RunDir answers the shards, whether the run is matched and which seeds
are complete; and no other module parses the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import cli

from curation.plan import Plan, plan_differences, read_plan
from curation.rundir import FORMAT_VERSION, RunDir
from studio_common.errors import CurationError

ROOT = Path(__file__).resolve().parents[1]

WORLDWIDE = {
    "format_version": 2,
    "pool": "s3://pools/world/",
    "files": [{"path": "s3://pools/world/part-0.parquet", "bytes": 1234, "mtime_ns": 1700000000000000000}],
    "rows": 10,
    "metadata": {
        "path": "/data/world.parquet",
        "entries": 7,
        "fingerprint": "abc123",
        "drop_invalid_entries": False,
        "languages": ["de", "en"],
    },
    "columns": {
        "text": "alt",
        "id": None,
        "url": "url",
        "language": None,
        "texts": ["alt", "title"],
        "language_identifier": "lid176-scripts",
        "language_map": {"no": "nb"},
    },
    "pair_key": "content: url + newline + alt",
    "shard_rows": 5,
    "shards": [
        {"index": 0, "path": "s3://pools/world/part-0.parquet", "row_groups": [0], "rows": 5},
        {"index": 1, "path": "s3://pools/world/part-0.parquet", "row_groups": [1], "rows": 5},
    ],
}


@pytest.fixture
def run(pool: Path, metadata: Path, tmp_path: Path) -> RunDir:
    out = tmp_path / "run"
    assert (
        cli("run", "--pool", pool, "--metadata", metadata, "--t", 3, "--seed", 4, "--shard-rows", 400, "--out", out)
        == 0
    )
    return RunDir(out)


def test_a_plan_reads_back_to_the_json_it_was_read_from(run: RunDir) -> None:
    written = json.loads(run.plan_json.read_text())
    plan = read_plan(run.plan_json)
    assert plan.as_json() == written and list(plan.as_json()) == list(written)  # same keys, same order
    assert plan.format_version == FORMAT_VERSION and not plan.worldwide and plan.languages is None
    assert plan.shard_indices == [shard["index"] for shard in written["shards"]] and len(plan.shards) > 1
    assert sum(shard.rows for shard in plan.shards) == plan.rows == written["rows"]
    worldwide = Plan.from_json(WORLDWIDE)
    assert worldwide.as_json() == WORLDWIDE and worldwide.worldwide and worldwide.languages == ("de", "en")
    assert worldwide.columns.texts == ("alt", "title") and worldwide.columns.language is None
    assert worldwide.columns.identifier == "lid176-scripts" and worldwide.columns.language_map == (("no", "nb"),)
    one_language = {**WORLDWIDE, "metadata": {k: v for k, v in WORLDWIDE["metadata"].items() if k != "languages"}}
    one_language["columns"] = {k: v for k, v in WORLDWIDE["columns"].items() if not k.startswith("language")}
    assert Plan.from_json(one_language).as_json() == one_language


def test_a_worldwide_plan_from_before_the_identifier_choice_reads_as_lid176_alone() -> None:
    """What such a run used; so resuming it with today's default is refused as another request, and
    --language-identifier lid176 resumes it."""
    columns = {k: v for k, v in WORLDWIDE["columns"].items() if k not in ("language_identifier", "language_map")}
    before = Plan.from_json({**WORLDWIDE, "columns": columns})
    assert before.columns.identifier == "lid176" and before.columns.language_map == ()
    now = Plan.from_json(WORLDWIDE)
    assert plan_differences(before, now) == [
        "columns (language_identifier: 'lid176' before, 'lid176-scripts' now, "
        "language_map: none before, {'no': 'nb'} now)"
    ]
    with_column = Plan.from_json({**WORLDWIDE, "columns": {**columns, "language": "lang"}})
    assert with_column.columns.identifier is None  # the column decides: nothing is identified


def test_the_run_directory_answers_its_shards_whether_it_is_matched_and_its_complete_seeds(run: RunDir) -> None:
    assert [shard.index for shard in run.shards()] == run.plan().shard_indices
    assert run.is_matched() and run.complete_seeds() == [4]
    last = run.shards()[-1].index
    run.threshold_part(4, last).unlink()  # a balance killed before its last shard
    assert run.complete_seeds() == []
    assert cli("balance", run.root, "--t", 3, "--seed", 4) == 0
    assert run.complete_seeds() == [4]
    run.shard_marker(last).unlink()  # a match killed before its last marker
    assert not run.is_matched()


def test_a_plan_of_a_newer_format_or_an_edited_one_is_one_line(run: RunDir, capsys: pytest.CaptureFixture) -> None:
    written = json.loads(run.plan_json.read_text())
    run.plan_json.write_text(json.dumps({**written, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(
        CurationError, match=f"format {FORMAT_VERSION + 1}; this curation reads format {FORMAT_VERSION}:"
    ):
        run.plan()
    capsys.readouterr()
    assert cli("stats", run.root, "--t", 3) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "upgrade curation-studio" in err and len(err.strip().splitlines()) == 1
    run.plan_json.write_text(json.dumps({k: v for k, v in written.items() if k != "shards"}))
    with pytest.raises(CurationError, match="is not a run's plan \\(missing or wrong 'shards'\\)"):
        run.plan()


def test_a_format_1_plan_is_refused_in_one_line_naming_the_upgrade(run: RunDir, capsys: pytest.CaptureFixture) -> None:
    """A run directory of format 1 (which copied the pool) is not misread as an index: every reader is
    told, in one line, the command that upgrades it; only the upgrade itself reads its plan."""
    assert FORMAT_VERSION == 2
    written = json.loads(run.plan_json.read_text())
    assert written["format_version"] == FORMAT_VERSION
    for old in ({**written, "format_version": 1}, {k: v for k, v in written.items() if k != "format_version"}):
        run.plan_json.write_text(json.dumps(old))  # format 1 wrote its version, and plans before it none
        with pytest.raises(CurationError, match="is a format-1 run directory") as refused:
            run.plan()
        message = str(refused.value)
        assert f"curation upgrade {run.root}" in message and len(message.splitlines()) == 1
        assert read_plan(run.plan_json, upgrading=True).format_version == 1  # what `curation upgrade` reads
        capsys.readouterr()
        for command in (
            ("stats", run.root, "--t", 3),
            ("export", run.root, "--t", 3, "--out", run.root.parent / "m.csv"),
        ):
            assert cli(*command) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
            assert f"`curation upgrade {run.root}`" in err and "format-1" in err
            assert not (run.root.parent / "m.csv").exists()
    run.plan_json.write_text(json.dumps(written))
    assert read_plan(run.plan_json).as_json() == written  # the run itself was left as it was


def test_plan_json_is_parsed_in_one_module() -> None:
    """Only curation/plan.py turns plan.json into values; the rest ask for a Plan (a dict read in six
    modules is how a key renamed in one of them went unnoticed)."""
    offenders = []
    for path in [*ROOT.glob("curation/**/*.py"), *ROOT.glob("dashboard/**/*.py")]:
        if path.name == "plan.py":
            continue
        text = path.read_text()
        if re.search(r"read_json\([^)]*plan_json\)|plan(\([^)]*\))?\[[\"']|\[[\"']shards[\"']\]", text):
            offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []
