"""The Coverage page (dashboard/views/coverage.py) through AppTest on runs made here, and its pure parts
(dashboard/coverage.py): the highlighter follows the matching rule (checked against a plain reference
with hypothesis), a selection's bounds hold the truth, the chart reads."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ENTRIES, cli, dashboard_environment, examples, make_texts, naive_spacing, run_pairs, texts_of
from conftest import write_caption_pool as write_pool
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from curation.gaps import GAPS_FOLDER, read_gaps
from dashboard import charts
from dashboard.coverage import Covered, filter_rows, highlight, occurrences, selection_covers

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "views/coverage.py"
REMOTE = "s3://lab/runs/"  # a URI prefix the dashboard may read (the tests stand a local copy in for it)


# --------------------------------------------------------------------------------------------------
# The highlighter
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caption, ngram, marked",
    [
        ("a dog, a hotdog", "dog", "a <mark>dog</mark>, a hotdog"),
        ("dog-friendly dog.", "dog", "dog-friendly <mark>dog</mark>."),
        ("(dog) `dog` dog's x,dog,y", "dog", "(dog) `<mark>dog</mark>` dog&#x27;s x,<mark>dog</mark>,y"),
        ("Dog dog DOG", "dog", "Dog <mark>dog</mark> DOG"),  # case-sensitive
        ("hot\tdog, hot  dog", "hot dog", "<mark>hot\tdog</mark>, hot  dog"),  # a tab is one space, two spaces are not
        ("hot\r\ndog", "hot dog", "hot\r\ndog"),  # two controls, two spaces
        ("<b>dog</b> & dog", "dog", "&lt;b&gt;dog&lt;/b&gt; &amp; <mark>dog</mark>"),  # escaped, no tag inside
        ("new york city", "york", "new <mark>york</mark> city"),
        ("a a a", "a a", "<mark>a a a</mark>"),  # overlapping occurrences joined
        ("", "dog", ""),
    ],
)
def test_highlight_marks_what_an_entry_would_match(caption: str, ngram: str, marked: str) -> None:
    assert highlight(caption, ngram) == marked


def test_highlight_in_a_worldwide_run_follows_its_keys() -> None:
    """MetaCLIP 2: a CJK n-gram meets its neighbours without spaces; a Latin one still needs them; the
    caption is stripped first (offsets still point into the caption as given)."""
    assert highlight("一只狗在草地上", "狗", worldwide=True) == "一只<mark>狗</mark>在草地上"
    assert highlight("  hotdog dog ", "dog", worldwide=True) == "  hotdog <mark>dog</mark> "
    assert occurrences("\t dog", "dog", worldwide=True) == [(2, 5)]


WORDS = ["dog", "hot", "Dog", "a", ",", ".", "`", "x-y", "dog's"]
CHARACTERS = "dogahtD ,.;:?!`\t\n\r-'()xy"


def reference_count(caption: str, ngram: str) -> int:
    """The plain reference: the n-gram's words as consecutive pieces of the spaced caption cut at single
    spaces (its first and last pieces are the padding's empty ones)."""
    pieces, words = naive_spacing(caption).split(" "), ngram.split(" ")
    return sum(pieces[i : i + len(words)] == words for i in range(1, len(pieces) - len(words)))


@settings(max_examples=examples(2000))
@given(
    caption=st.one_of(
        st.text(alphabet=CHARACTERS, max_size=30),
        st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join),
    ),
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_occurrences_agree_with_the_pieces_of_the_spaced_caption(caption: str, words: list[str]) -> None:
    ngram = " ".join(words)
    spans = occurrences(caption, ngram)
    assert len(spans) == reference_count(caption, ngram)
    for start, end in spans:  # each span is the n-gram as the caption writes it (spacing may pad its ends)
        assert naive_spacing(caption[start:end]).strip(" ") == ngram
    shown = highlight(caption, ngram)
    assert shown.replace("<mark>", "").replace("</mark>", "") == html.escape(caption)
    assert bool(spans) == ("<mark>" in shown)


# --------------------------------------------------------------------------------------------------
# A selection's coverage, the filters, the chart
# --------------------------------------------------------------------------------------------------


def cumulative(sets: list[set[int]]) -> np.ndarray:
    seen: set[int] = set()
    out = []
    for pairs in sets:
        seen |= pairs
        out.append(len(seen))
    return np.array(out, dtype=np.int64)


@settings(max_examples=examples(1000))
@given(
    sets=st.lists(st.sets(st.integers(0, 30), min_size=1), min_size=1, max_size=12),
    data=st.data(),
)
def test_a_selection_is_exact_for_a_top_k_and_bounded_otherwise(sets: list[set[int]], data) -> None:
    unmatched = np.array([len(s) for s in sets], dtype=np.int64)
    covered = cumulative(sets)
    ranks = data.draw(st.lists(st.integers(1, len(sets)), min_size=1, unique=True))
    truth = len(set().union(*(sets[r - 1] for r in ranks)))
    known = selection_covers(ranks, unmatched, covered)
    own = unmatched[np.array(ranks) - 1]
    assert own.max() <= known.low <= truth <= known.high <= own.sum()
    k = data.draw(st.integers(1, len(sets)))
    exact = int(covered[k - 1])
    assert selection_covers(list(range(1, k + 1)), unmatched, covered) == Covered(exact, exact)


def test_filter_rows_by_substring_in_any_case_and_by_words() -> None:
    table = pd.DataFrame({"ngram": ["New", "new york", "Sunset", "jpg"], "words": [1, 2, 1, 1]})
    assert filter_rows(table, "NEW", [])["ngram"].tolist() == ["New", "new york"]
    assert filter_rows(table, "new", [2])["ngram"].tolist() == ["new york"]
    assert filter_rows(table, "", [1])["ngram"].tolist() == ["New", "Sunset", "jpg"]
    assert filter_rows(table, "(", []).empty  # a substring, not a pattern


def test_the_coverage_curve_reads() -> None:
    covered = np.array([10, 18, 18, 25])
    figure = charts.coverage_curve(covered, 40, k=2)
    layout = figure.layout
    assert layout.xaxis.title.text.startswith("k: the top k") and layout.yaxis.title.text.startswith("unmatched pairs")
    assert layout.yaxis.tickformat == ",d" and layout.yaxis.range[0] == 0 and layout.yaxis.range[1] >= 40
    curve, ceiling, marker = figure.data
    assert list(curve.x) == [1, 2, 3, 4] and list(curve.y) == covered.tolist()
    assert list(ceiling.y) == [40, 40] and "40" in ceiling.name
    assert list(marker.x) == [2, 2] and list(marker.y) == [0, 18]


# --------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory):
    """Runs, exports and jobs in a temporary folder, a pool and a metadata beside them, the data roots
    those folders and one URI prefix; served on loopback."""
    base = tmp_path_factory.mktemp("coverage")
    paths = {name: base / name for name in ("runs", "exports", "jobs", "inputs")}
    roots = os.pathsep.join([str(paths["runs"]), str(paths["inputs"]), REMOTE])
    settings_ = {
        "CURATION_RUNS_DIR": str(paths["runs"]),
        "CURATION_EXPORT_DIR": str(paths["exports"]),
        "CURATION_JOBS_DIR": str(paths["jobs"]),
        "CURATION_DATA_ROOTS": roots,
    }
    with dashboard_environment(settings_, "127.0.0.1"):
        yield paths


@pytest.fixture(scope="module")
def plain_run(dirs: dict[str, Path]) -> Path:
    """A run of 3,000 alt-text-like captions (tests/conftest.py) against the tests' metadata, no gaps."""
    pool = write_pool(dirs["inputs"] / "pool", make_texts(3000))
    metadata = dirs["inputs"] / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    out = dirs["runs"] / "plain"
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 40, "--out", out) == 0
    return out


@pytest.fixture(scope="module")
def gapped_run(plain_run: Path) -> Path:
    """The same run with the gaps `curation gaps` finds (top 60, so that some of them cover nothing new)."""
    out = plain_run.parent / "gapped"
    shutil.copytree(plain_run, out)
    assert cli("gaps", out, "--top", 60, "--workers", 1, "--quiet") == 0
    return out


def open_page(run: Path | str) -> AppTest:
    """A new session on the run (named in the address, as a link does), on the Coverage page."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = str(run)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def select(at: AppTest, rows: list[int]) -> None:
    """Rows of the table selected (positions in the table as shown), as a click on their boxes would."""
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.message for e in at.exception]


def unmatched_captions(run: Path) -> list[str | None]:
    pairs = run_pairs(run, ["text", "entry_ids"]).to_pylist()
    return [pair["text"] for pair in pairs if not pair["entry_ids"]]


@pytest.mark.slow  # find_gaps starts worker processes
def test_without_gaps_the_page_shows_the_command_and_find_gaps_writes_them(
    plain_run: Path, tmp_path: Path, dirs: dict[str, Path]
) -> None:
    run = dirs["runs"] / tmp_path.name / "fresh"
    shutil.copytree(plain_run, run)
    at = open_page(run)
    assert not at.error and not at.metric
    assert [c.value for c in at.code] == [f"curation gaps {run}"]
    assert any("curation gaps" in m.value and "unmatched" in m.value for m in at.markdown)
    at.number_input(key="coverage_find_top").set_value(40)
    at.multiselect(key="coverage_find_n").set_value([1, 2])
    at.button(key="coverage_find_submit").click().run()
    assert not at.exception and not at.error, (at.exception, texts_of(at.error))
    written = run / GAPS_FOLDER / "gaps.parquet"
    found = read_gaps(written)
    assert found.summary["top"] == 40 and found.summary["n"] == [1, 2] and found.table.num_rows == 40
    assert any(f"wrote {written}" in s for s in texts_of(at.success))
    assert metric(at, "Gaps found") == f"{found.summary['gaps']:,}"
    assert at.dataframe[0].value["ngram"].tolist() == found.table.column("ngram").to_pylist()
    # The page's gaps are the command's, settings alike.
    reference = dirs["runs"] / tmp_path.name / "by-command"
    shutil.copytree(plain_run, reference)
    assert cli("gaps", reference, "--top", 40, "--n", 1, 2, "--workers", 1, "--quiet") == 0
    assert read_gaps(reference / GAPS_FOLDER / "gaps.parquet").table.equals(found.table)


def test_a_run_in_object_storage_gets_the_command_not_the_button(
    plain_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard reads a run in a store from a local copy it never writes: the page names the
    command (with the run's URI) and offers no button."""
    import dashboard.data

    monkeypatch.setattr(dashboard.data, "_copy_of", lambda uri: plain_run)  # the copy the mirror would make
    at = open_page(REMOTE + "plain")
    assert not at.error, texts_of(at.error)
    assert [c.value for c in at.code] == [f"curation gaps {REMOTE}plain"]
    assert not [b for b in at.button if b.key == "coverage_find_submit"]
    assert not (plain_run / GAPS_FOLDER).exists()


def test_the_metrics_and_the_table_are_the_files(gapped_run: Path) -> None:
    found = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet")
    summary = found.summary
    at = open_page(gapped_run)
    assert not at.error, texts_of(at.error)
    assert metric(at, "Pairs read") == f"{summary['pairs_read']:,}" == "3,000"
    assert metric(at, "Unmatched pairs") == f"{summary['unmatched_pairs_read']:,}"
    assert summary["unmatched_pairs_read"] == len(unmatched_captions(gapped_run))
    assert metric(at, "Gaps found") == f"{summary['gaps']:,}"
    assert metric(at, "Covered by the chosen") == f"{summary['unmatched_covered']:,}"
    shown = at.dataframe[0].value
    expected = found.table.drop_columns(["examples"]).to_pandas()
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected, check_dtype=False)


def test_several_gaps_files_are_offered_the_default_first(
    gapped_run: Path, dirs: dict[str, Path], tmp_path: Path
) -> None:
    run = dirs["runs"] / tmp_path.name / "several"
    shutil.copytree(gapped_run, run)
    other = run / GAPS_FOLDER / "top10.parquet"
    assert cli("gaps", run, "--top", 10, "--out", other, "--workers", 1, "--quiet") == 0
    at = open_page(run)
    assert at.selectbox(key="coverage_file").options == ["gaps.parquet", "top10.parquet"]
    assert at.selectbox(key="coverage_file").value == "gaps.parquet" and len(at.dataframe[0].value) == 60
    at.slider(key="coverage_k").set_value(50).run()
    at.selectbox(key="coverage_file").set_value("top10.parquet").run()
    assert not at.exception, [e.message for e in at.exception]
    covered = read_gaps(other).table.column("covered").to_pylist()
    assert len(at.dataframe[0].value) == 10 and at.slider(key="coverage_k").value == 10  # k kept within the file
    assert metric(at, "Covered by the top 10") == f"{covered[9]:,}"


def test_the_top_k_slider_shows_the_files_covered_column(gapped_run: Path) -> None:
    covered = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet").table.column("covered").to_pylist()
    at = open_page(gapped_run)
    assert at.slider(key="coverage_k").value == min(100, len(covered))
    for k in (1, 7, len(covered)):
        at.slider(key="coverage_k").set_value(k).run()
        assert not at.exception
        assert metric(at, f"Covered by the top {k:,}") == f"{covered[k - 1]:,}"


def test_search_and_words_filter_the_rows(gapped_run: Path) -> None:
    ngrams = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet").table.to_pandas()
    at = open_page(gapped_run)
    needle = ngrams["ngram"].iloc[0][:2].upper()  # a piece of the first n-gram, in another case
    at.text_input(key="coverage_search").input(needle).run()
    wanted = [n for n in ngrams["ngram"] if needle.lower() in n.lower()]
    assert at.dataframe[0].value["ngram"].tolist() == wanted and 0 < len(wanted) < len(ngrams)
    at.multiselect(key="coverage_words").set_value([2]).run()
    assert at.dataframe[0].value["ngram"].tolist() == [n for n in wanted if n.count(" ") == 1]
    at.text_input(key="coverage_search").input("no n-gram holds this").run()
    assert at.dataframe[0].value.empty and "No n-gram holds that text." in texts_of(at.info)


def test_a_selection_is_exact_for_the_top_k_and_honest_bounds_otherwise(gapped_run: Path) -> None:
    from conftest import naive_match

    table = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet").table.to_pandas()
    captions = unmatched_captions(gapped_run)

    def truth(ranks: list[int]) -> int:
        chosen = [table["ngram"].iloc[r - 1] for r in ranks]
        return sum(bool(naive_match(chosen, caption)) for caption in captions)

    at = open_page(gapped_run)
    select(at, [0, 1, 2])
    said = texts_of(at.info)
    exact = int(table["covered"].iloc[2])
    assert exact == truth([1, 2, 3])
    assert any(f"(the top 3) would match exactly {exact:,} unmatched pairs" in s for s in said), said
    ranks = [1, 4, 9, 13]
    select(at, [r - 1 for r in ranks])
    said = next(s for s in texts_of(at.info) if "selected n-grams would match" in s)
    found = re.search(r"at least ([\d,]+) and at most ([\d,]+)", said)
    if found is None:  # the bounds met: then they are the truth
        assert f"exactly {truth(ranks):,}" in said
    else:
        low, high = (int(x.replace(",", "")) for x in found.groups())
        own = table["unmatched"].iloc[[r - 1 for r in ranks]]
        assert own.max() <= low <= truth(ranks) <= high <= own.sum()


def test_examples_mark_the_ngram_as_matching_finds_it(gapped_run: Path) -> None:
    table = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet").table.to_pandas()
    at = open_page(gapped_run)
    shown = [element.proto.body for element in at.get("html")]
    first = table.iloc[0]
    assert shown == ["<p>" + highlight(caption, first["ngram"]) + "</p>" for caption in first["examples"]]
    assert shown and all(f"<mark>{first['ngram']}</mark>" in html for html in shown)
    select(at, [3, 5])
    at.selectbox(key="coverage_example").set_value(6).run()
    sixth = table.iloc[5]
    assert [element.proto.body for element in at.get("html")] == [
        "<p>" + highlight(caption, sixth["ngram"]) + "</p>" for caption in sixth["examples"]
    ]


def test_save_writes_the_chosen_ngrams_as_extra_entries_that_build_reads(
    gapped_run: Path, dirs: dict[str, Path], tmp_path: Path
) -> None:
    from metadata.build import extra_source
    from metadata.cli import main as metadata_main
    from metadata.loading import load_entries

    table = read_gaps(gapped_run / GAPS_FOLDER / "gaps.parquet").table.to_pandas()
    at = open_page(gapped_run)
    select(at, [6, 2, 4])
    at.text_input(key="coverage_name").input("picked").run()
    at.button(key="coverage_save").click().run()
    assert not at.exception and not at.error, texts_of(at.error)
    path = dirs["exports"] / "picked.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == table["ngram"].iloc[[2, 4, 6]].tolist()  # rank order
    assert any(f"Wrote 3 entries to {path}" in s for s in texts_of(at.success))
    assert any(f"--extra {path}" in c.value for c in at.code)
    assert load_entries(path) == lines and extra_source(path).entries == lines
    built = tmp_path / "with-extra.json"
    assert metadata_main(["build", "--extra", str(path), "--no-numbers", "--out", str(built), "--quiet"]) == 0
    assert json.loads(built.read_text()) == lines

    select(at, [])  # nothing selected: the top k
    at.slider(key="coverage_k").set_value(5).run()
    at.text_input(key="coverage_name").input("").run()
    assert at.text_input(key="coverage_name").placeholder == "extra-top5"
    at.button(key="coverage_save").click().run()
    assert (dirs["exports"] / "extra-top5.txt").read_text().splitlines() == table["ngram"].iloc[:5].tolist()

    at.text_input(key="coverage_name").input("../outside").run()
    at.button(key="coverage_save").click().run()
    assert any("export name '../outside' refused" in e for e in texts_of(at.error))
    assert not (dirs["exports"].parent / "outside.txt").exists()
