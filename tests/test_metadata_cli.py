"""python -m metadata: the build contract, outputs, stats and diff, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_metadata_build import ARTICLES, WORDNET_NAMES, page, write_dump, write_pageviews, write_wordnet

from metadata.cli import main
from metadata.loading import fingerprint, load_entries, load_metadata
from metadata.merge import NUMBERS

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args: object) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def wordnet_dir(tmp_path: Path) -> Path:
    return write_wordnet(tmp_path / "wordnet")


# --- the contract -----------------------------------------------------------------------------------------


def test_contract_build_wordnet_to_json_as_a_real_process(tmp_path, wordnet_dir):
    out = tmp_path / "metadata.json"
    done = subprocess.run(
        [sys.executable, "-m", "metadata", "build", "--wordnet", str(wordnet_dir), "--out", str(out), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == WORDNET_NAMES + NUMBERS


def test_build_without_numbers_and_to_parquet(tmp_path, wordnet_dir, capsys):
    code, out, _ = run(
        capsys,
        "build",
        "--wordnet",
        wordnet_dir,
        "--no-numbers",
        "--quiet",
        "--out",
        tmp_path / "m.json",
        tmp_path / "m.parquet",
    )
    assert code == 0 and "m.parquet (parquet, 11 entries)" in out
    assert load_entries(tmp_path / "m.json") == WORDNET_NAMES
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.column_names == ["entry", "sources"]
    assert table.column("sources").to_pylist() == [["wordnet"]] * len(WORDNET_NAMES)
    info = json.loads(table.schema.metadata[b"metadata.build"])
    assert info["fingerprint"] == fingerprint(WORDNET_NAMES)


def test_build_prints_the_source_table(tmp_path, wordnet_dir, capsys):
    code, out, _ = run(
        capsys, "build", "--wordnet", wordnet_dir, "--out", tmp_path / "m.parquet", "--report", tmp_path / "report.json"
    )
    assert code == 0
    assert "wordnet" in out and "numbers" in out and "overlaps" in out
    assert "13 synsets, 11 distinct names (2 with a dot, kept whole" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["entries"] == len(WORDNET_NAMES) + 100
    assert [s["name"] for s in report["sources"]] == ["wordnet", "numbers"]


def test_count_then_build_with_new_thresholds_without_recounting(tmp_path, wordnet_dir, capsys):
    disambiguation = page("Ada", "Ada may refer to:\n* [[Ada Lovelace]]\n{{disambiguation}}")
    dump = write_dump(tmp_path / "pages-articles.xml.bz2", [*ARTICLES, disambiguation], layout="multi")
    code, out, _ = run(capsys, "count-wikipedia", dump, "--out", tmp_path / "counts", "--workers", 1, "--quiet")
    assert code == 0 and "4 articles (1 of them disambiguation pages) of 6 pages" in out
    sizes = []
    for threshold in (1, 3):
        code, _, err = run(
            capsys,
            "build",
            "--wikipedia-counts",
            tmp_path / "counts",
            "--min-unigram",
            threshold,
            "--min-pmi",
            3.5,
            "--quiet",
            "--out",
            tmp_path / f"m{threshold}.parquet",
        )
        assert code == 0, err
        metadata = load_metadata(tmp_path / f"m{threshold}.parquet")
        sizes.append(sum("wiki_unigram" in s for s in metadata.sources))
    assert sizes[0] > sizes[1] > 0


def test_build_from_a_dump_keeps_counts_when_asked(tmp_path, capsys):
    dump = write_dump(tmp_path / "pages-articles.xml.bz2", ARTICLES)
    code, _, err = run(
        capsys,
        "build",
        "--wikipedia-dump",
        dump,
        "--counts-out",
        tmp_path / "counts",
        "--min-unigram",
        2,
        "--min-pmi",
        3.5,
        "--workers",
        1,
        "--quiet",
        "--out",
        tmp_path / "m.json",
    )
    assert code == 0, err
    entries = load_entries(tmp_path / "m.json")
    assert "The" in entries and "Zebra crossing" in entries and entries[-100:] == NUMBERS
    assert (tmp_path / "counts" / "counts.json").is_file()


def test_build_with_pageviews_extra_and_budget(tmp_path, wordnet_dir, capsys):
    views = write_pageviews(
        tmp_path / "pageviews-20240101-000000.gz",
        ["en Main_Page 130 0", "en Horse 120 0", "en Dog 80 0", "en Cat 75 0", "en Rare 3 0", "en bad"],
    )
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(["my entry", "dog"]))
    code, out, err = run(
        capsys,
        "build",
        "--wordnet",
        wordnet_dir,
        "--pageviews",
        views,
        "--min-views",
        70,
        "--extra",
        extra,
        "--budget",
        "wiki_title=2",
        "--out",
        tmp_path / "m.parquet",
    )
    assert code == 0, err
    metadata = load_metadata(tmp_path / "m.parquet")
    sources = dict(zip(metadata.entries, metadata.sources))
    assert sources["Horse"] == ("wiki_title",) and sources["Dog"] == ("wiki_title",)
    assert "Main Page" not in sources  # the front page is never a title
    assert "Cat" not in sources and "Rare" not in sources  # over budget; below the threshold
    assert sources["dog"] == ("wordnet", "extra") and sources["my entry"] == ("extra",)
    assert "skipped 1 malformed rows" in out


# --- stats and diff -----------------------------------------------------------------------------------------


def test_stats_text_and_json(tmp_path, wordnet_dir, capsys):
    run(capsys, "build", "--wordnet", wordnet_dir, "--quiet", "--out", tmp_path / "m.parquet")
    code, out, _ = run(capsys, "stats", tmp_path / "m.parquet")
    assert code == 0 and "111 entries" in out and "can never match" in out and "st. petersburg" in out
    code, out, _ = run(capsys, "stats", tmp_path / "m.parquet", "--json")
    data = json.loads(out)
    assert data["entries"] == 111 and data["never_match"] == 2 and data["sources"]["numbers"]["entries"] == 100


def test_diff_text_and_json(tmp_path, wordnet_dir, capsys):
    run(capsys, "build", "--wordnet", wordnet_dir, "--quiet", "--out", tmp_path / "a.parquet")
    run(capsys, "build", "--wordnet", wordnet_dir, "--no-numbers", "--quiet", "--out", tmp_path / "b.parquet")
    code, out, _ = run(capsys, "diff", tmp_path / "a.parquet", tmp_path / "b.parquet", "--json")
    data = json.loads(out)
    assert code == 0 and (data["added"], data["removed"], data["moved"]) == (0, 100, 0)
    assert data["removed_by_source"] == {"numbers": 100}
    code, out, _ = run(capsys, "diff", tmp_path / "a.parquet", tmp_path / "a.parquet")
    assert code == 0 and "identical" in out


# --- bad input: one line, exit code 2 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["build", "--wordnet", "{tmp}/nowhere", "--out", "{tmp}/m.json"], "wordnet directory not found"),
        (["build", "--out", "{tmp}/m.json"], "no source given"),
        (["build", "--wordnet", "{wordnet}", "--budget", "wiki_title", "--out", "{tmp}/m.json"], "SOURCE=N"),
        (
            ["build", "--wordnet", "{wordnet}", "--budget", "wiki_title=3", "--out", "{tmp}/m.json"],
            "not part of this build",
        ),
        (["build", "--wordnet", "{wordnet}", "--min-views", "0", "--out", "{tmp}/m.json"], "positive integer"),
        (["build", "--wordnet", "{wordnet}", "--out", "{tmp}"], "is a directory"),
        (["build", "--wordnet", "{wordnet}", "--out"], "expected at least one argument"),
        (["build", "--wikipedia-counts", "{tmp}/none", "--out", "{tmp}/m.json"], "counts directory not found"),
        (["build", "--extra", "{tmp}/empty.txt", "--out", "{tmp}/m.json"], "empty source"),
        (["build", "--pageviews", "{tmp}/pageviews-20240101-000000.gz", "--out", "{tmp}/m.json"], "not found"),
        (["count-wikipedia", "{tmp}/empty.txt", "--out", "{tmp}/c"], "not a bzip2 file"),
        (["stats", "{tmp}/none.json"], "not found"),
        (["diff", "{tmp}/empty.txt", "{tmp}/bad.json"], "not valid JSON"),
        (["fetch", "--sha256", "abc"], "64 hexadecimal digits"),
        (["unknown-command"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, wordnet_dir, capsys, args, words):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.json").write_text("[1, 2")
    argv = [a.format(tmp=tmp_path, wordnet=wordnet_dir) for a in args]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert words in one_line_error(err)
    assert not (tmp_path / "m.json").exists()


def test_malformed_wordnet_line_is_an_error_not_a_skip(tmp_path, capsys):
    directory = write_wordnet(tmp_path / "wn")
    with (directory / "data.noun").open("a") as handle:
        handle.write("this is not a synset line\n")
    code, _, err = run(capsys, "build", "--wordnet", directory, "--out", tmp_path / "m.json")
    assert code == 2 and "data.noun line" in one_line_error(err)


def test_help_explains_the_formats(capsys):
    code, out, _ = run(capsys, "build", "--help")
    assert code == 0 and ".json" in out and "Parquet" in out and "--no-numbers" in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "count-wikipedia" in out and "fetch" in out
    code, out, _ = run(capsys, "count-wikipedia", "--help")
    assert code == 0 and "--language CODE" in out and "segmenter" in out
