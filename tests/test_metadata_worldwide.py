"""Worldwide (MetaCLIP 2) lists from `python -m metadata`: tagging a build with its language, merging
per-language lists, per-language stats and diff, refusals in one line, and English builds unchanged."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_metadata_build import WORDNET_NAMES, write_wordnet
from test_metadata_cli import one_line_error, run

from metadata import files
from metadata.loading import fingerprint, load_metadata
from metadata.merge import NUMBERS
from metadata.worldwide import Input, merge_languages, render_language_table

ROOT = Path(__file__).resolve().parents[1]

GERMAN = ["Hund", "Katze", "dog"]  # "dog" is English too: another id in another language
CHINESE = ["狗", "猫"]


@pytest.fixture
def lists(tmp_path: Path) -> dict[str, Path]:
    """A German JSON list, a Chinese text list and an English Parquet list with sources."""
    (tmp_path / "de.json").write_text(json.dumps(GERMAN, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "zh.txt").write_text("\n".join(CHINESE) + "\n", encoding="utf-8")
    files.write_entries_parquet(
        tmp_path / "en.parquet", ["dog", "cat", "1"], [("wordnet",), ("wordnet", "extra"), ("numbers",)]
    )
    return {"de": tmp_path / "de.json", "zh": tmp_path / "zh.txt", "en": tmp_path / "en.parquet"}


# --- tagging a build ----------------------------------------------------------------------------------------


def test_build_with_entry_language_writes_a_language_column(tmp_path, capsys):
    wordnet = write_wordnet(tmp_path / "wordnet")
    code, out, _ = run(
        capsys, "build", "--wordnet", wordnet, "--entry-language", "de", "--quiet", "--out", tmp_path / "de.parquet"
    )
    assert code == 0 and "language de" in out
    table = pq.read_table(tmp_path / "de.parquet")
    assert table.column_names == ["entry", "language", "sources"]
    assert set(table.column("language").to_pylist()) == {"de"}
    meta = load_metadata(tmp_path / "de.parquet")
    assert meta.entries == WORDNET_NAMES + NUMBERS
    assert meta.languages == ["de"] * len(meta.entries)
    info = json.loads(table.schema.metadata[b"metadata.build"])
    assert info["language"] == "de" and info["fingerprint"] == fingerprint(meta.entries, meta.languages)


def test_entry_language_leaves_the_pageview_language_option_alone(tmp_path, capsys):
    """--language still picks pageview domains; only --entry-language tags entries."""
    views = tmp_path / "pageviews-20240101-000000.gz"
    views.write_bytes(gzip.compress(b"de Hund 90 0\nen Dog 500 0\n"))
    code, _, err = run(
        capsys,
        "build",
        "--pageviews",
        views,
        "--language",
        "de",
        "--no-numbers",
        "--quiet",
        "--entry-language",
        "de",
        "--out",
        tmp_path / "de.parquet",
    )
    assert code == 0, err
    meta = load_metadata(tmp_path / "de.parquet")
    assert meta.entries == ["Hund"] and meta.languages == ["de"]


def test_entry_language_refuses_json_output_before_building(tmp_path, capsys):
    code, _, err = run(
        capsys, "build", "--wordnet", tmp_path / "no-such-dir", "--entry-language", "de", "--out", tmp_path / "de.json"
    )
    assert code == 2 and "JSON list cannot hold" in one_line_error(err)
    assert not (tmp_path / "de.json").exists()


@pytest.mark.parametrize("bad", ["DE", "d e", "", "-de"])
def test_entry_language_refuses_codes_that_no_caption_would_match(tmp_path, capsys, bad):
    code, _, err = run(
        capsys, "build", "--extra", tmp_path / "x.txt", "--entry-language", bad, "--out", tmp_path / "x.parquet"
    )
    assert code == 2 and "--entry-language" in one_line_error(err)


# --- English builds unchanged -------------------------------------------------------------------------------


def test_english_build_has_no_language_column_and_the_same_json_bytes(tmp_path, capsys):
    wordnet = write_wordnet(tmp_path / "wordnet")
    code, _, _ = run(
        capsys, "build", "--wordnet", wordnet, "--quiet", "--out", tmp_path / "m.json", tmp_path / "m.parquet"
    )
    assert code == 0
    expected = (json.dumps(WORDNET_NAMES + NUMBERS, ensure_ascii=False, indent=0) + "\n").encode("utf-8")
    assert (tmp_path / "m.json").read_bytes() == expected
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.schema.remove_metadata() == files.ENTRY_SCHEMA
    info = json.loads(table.schema.metadata[b"metadata.build"])
    assert "language" not in info and info["fingerprint"] == fingerprint(WORDNET_NAMES + NUMBERS)
    assert load_metadata(tmp_path / "m.parquet").languages is None


def test_the_writers_reproduce_the_committed_sample_byte_for_byte(tmp_path):
    """The bundled sample, written again through the (changed) writers, is the same file."""
    sample = ROOT / "data_samples" / "metadata.parquet"
    meta = load_metadata(sample)
    files.write_entries_json(tmp_path / "m.json", meta.entries)
    assert (tmp_path / "m.json").read_bytes() == (ROOT / "data_samples" / "metadata.json").read_bytes()
    written_by = pq.ParquetFile(sample).metadata.created_by
    if written_by != f"parquet-cpp-arrow version {pa.__version__}":
        pytest.skip(f"the sample was written by {written_by}, not this pyarrow")
    info = json.loads(pq.read_schema(sample).metadata[b"metadata.build"])
    files.write_entries_parquet(tmp_path / "m.parquet", meta.entries, meta.sources, info)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (sample, tmp_path / "m.parquet")]
    assert digest[0] == digest[1]


# --- merging ------------------------------------------------------------------------------------------------


def test_merge_json_text_and_parquet_keeps_order_and_sources(tmp_path, lists, capsys):
    out = tmp_path / "worldwide.parquet"
    code, stdout, err = run(
        capsys, "merge-languages", f"de={lists['de']}", f"zh={lists['zh']}", f"en={lists['en']}", "--out", out
    )
    assert code == 0, err
    meta = load_metadata(out)
    assert meta.entries == GERMAN + CHINESE + ["dog", "cat", "1"]
    assert meta.languages == ["de"] * 3 + ["zh"] * 2 + ["en"] * 3
    assert meta.sources == [()] * 5 + [("wordnet",), ("wordnet", "extra"), ("numbers",)]
    assert pq.read_table(out).column_names == ["entry", "language", "sources"]
    info = json.loads(pq.read_schema(out).metadata[b"metadata.merge"])
    assert info["languages"] == {"de": 3, "zh": 2, "en": 3}
    assert info["fingerprint"] == fingerprint(meta.entries, meta.languages)
    assert f"fingerprint {info['fingerprint']}" in stdout
    assert "8 entries in 3 languages" in stdout


def test_merge_prints_entries_per_language(tmp_path, lists, capsys):
    code, out, _ = run(
        capsys, "merge-languages", f"de={lists['de']}", f"en={lists['en']}", "--out", tmp_path / "w.parquet"
    )
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    # language, entries, share, in other languages ("dog"), offered, empty, repeats
    assert rows["de"][1:] == ["3", "50.0%", "1", "3", "0", "0"]
    assert rows["en"][1:] == ["3", "50.0%", "1", "3", "0", "0"]
    assert rows["total"][1] == "6"


def test_merge_without_any_sources_writes_no_sources_column(tmp_path, lists, capsys):
    out = tmp_path / "w.parquet"
    assert run(capsys, "merge-languages", f"de={lists['de']}", f"zh={lists['zh']}", "--out", out)[0] == 0
    assert pq.read_table(out).column_names == ["entry", "language"]
    assert load_metadata(out).sources is None


def test_a_parquet_language_column_is_kept_unless_a_code_is_given(tmp_path, lists, capsys):
    first = tmp_path / "first.parquet"
    run(capsys, "merge-languages", f"de={lists['de']}", f"zh={lists['zh']}", "--out", first)
    kept = tmp_path / "kept.parquet"
    assert run(capsys, "merge-languages", first, f"en={lists['en']}", "--out", kept)[0] == 0
    assert load_metadata(kept).languages == ["de"] * 3 + ["zh"] * 2 + ["en"] * 3
    replaced = tmp_path / "replaced.parquet"
    assert run(capsys, "merge-languages", f"other={first}", "--out", replaced)[0] == 0
    assert load_metadata(replaced).languages == ["other"] * 5


def test_a_path_containing_equals_is_given_as_dot_slash(tmp_path, lists, capsys, monkeypatch):
    folder = tmp_path / "lang=de"
    folder.mkdir()
    run(capsys, "merge-languages", f"de={lists['de']}", "--out", folder / "part.parquet")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "merge-languages", "./lang=de/part.parquet", "--out", tmp_path / "w.parquet")
    assert code == 0, err
    assert load_metadata(tmp_path / "w.parquet").languages == ["de"] * 3


def test_drop_invalid_entries_skips_and_counts_them(tmp_path, capsys):
    (tmp_path / "de.txt").write_text("Hund\n\nHund\n  \nKatze\n", encoding="utf-8")
    out = tmp_path / "w.parquet"
    code, stdout, _ = run(
        capsys, "merge-languages", f"de={tmp_path / 'de.txt'}", "--drop-invalid-entries", "--out", out
    )
    assert code == 0
    assert load_metadata(out).entries == ["Hund", "Katze"]
    de = next(line.split() for line in stdout.splitlines() if line.startswith("de "))
    assert de[1] == "2" and de[-3:] == ["5", "2", "1"]  # offered, empty (one blank, one spaces), repeats


def test_merge_languages_records_each_input(lists):
    merged = merge_languages([Input(str(lists["zh"]), "zh"), Input(str(lists["de"]), "de")])
    assert merged.inputs == [
        {"path": str(lists["zh"]), "language": "zh", "offered": 2, "kept": 2},
        {"path": str(lists["de"]), "language": "de", "offered": 3, "kept": 3},
    ]
    table = render_language_table(merged.entries, merged.languages)
    assert table.splitlines()[1].split()[:3] == ["zh", "2", "40.0%"]


# --- refusals -----------------------------------------------------------------------------------------------


def test_a_repeat_within_a_language_names_both_ids(tmp_path, lists, capsys):
    code, _, err = run(
        capsys,
        "merge-languages",
        f"en={lists['en']}",
        f"de={lists['de']}",
        f"en={lists['de']}",
        "--out",
        tmp_path / "w.parquet",
    )
    line = one_line_error(err)
    assert code == 2
    # "dog" is en id 0 (en.parquet entry 0) and would be id 8 (de.json entry 2 given as en)
    assert "'dog'" in line and "'en'" in line and "id 0 (" in line and "id 8 (" in line
    assert "en.parquet entry 0" in line and "de.json entry 2" in line
    assert not (tmp_path / "w.parquet").exists()


def test_an_empty_entry_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "zh.json").write_text(json.dumps(["狗", " "], ensure_ascii=False), encoding="utf-8")
    code, _, err = run(capsys, "merge-languages", f"zh={tmp_path / 'zh.json'}", "--out", tmp_path / "w.parquet")
    line = one_line_error(err)
    assert code == 2 and "entry 1 is empty" in line and "id 1" in line and "--drop-invalid-entries" in line


@pytest.mark.parametrize(
    "spec, message",
    [
        ("DE=x.json", "'DE' is not a language code"),
        ("zh yue=x.json", "'zh yue' is not a language code"),
        ("=x.json", "'' is not a language code"),
        ("de=", "names no file after de="),
    ],
)
def test_bad_input_syntax_is_one_line(tmp_path, capsys, spec, message):
    code, _, err = run(capsys, "merge-languages", spec, "--out", tmp_path / "w.parquet")
    assert code == 2 and message in one_line_error(err)


def test_missing_file_and_file_without_language_are_one_line(tmp_path, lists, capsys):
    code, _, err = run(capsys, "merge-languages", f"de={tmp_path / 'nope.json'}", "--out", tmp_path / "w.parquet")
    assert code == 2 and "not found" in one_line_error(err) and "nope.json" in err
    code, _, err = run(capsys, "merge-languages", lists["de"], "--out", tmp_path / "w.parquet")
    assert code == 2 and "has no language column" in one_line_error(err) and "de=de.json" in err


def test_merge_refuses_json_output(tmp_path, lists, capsys):
    code, _, err = run(capsys, "merge-languages", f"de={lists['de']}", "--out", tmp_path / "w.json")
    assert code == 2 and "JSON list cannot hold" in one_line_error(err)


# --- loading: round trip and fingerprint --------------------------------------------------------------------


def test_the_fingerprint_does_not_depend_on_column_order_or_encoding(tmp_path):
    entries, languages = ["dog", "Hund", "dog"], ["en", "de", "de"]
    sources = [["wordnet"], [], ["extra"]]
    pq.write_table(pa.table({"entry": entries, "language": languages, "sources": sources}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"sources": sources, "language": languages, "entry": entries}), tmp_path / "b.parquet")
    categorical = pa.table({"language": pa.array(languages).dictionary_encode(), "entry": entries})
    pq.write_table(categorical, tmp_path / "c.parquet")
    loaded = [load_metadata(tmp_path / name) for name in ("a.parquet", "b.parquet", "c.parquet")]
    assert {fingerprint(m.entries, m.languages) for m in loaded} == {fingerprint(entries, languages)}
    assert loaded[1].sources == [("wordnet",), (), ("extra",)] and loaded[2].languages == languages
    assert fingerprint(entries, languages) != fingerprint(entries, ["en", "de", "en"])


# --- stats and diff per language ----------------------------------------------------------------------------


def test_stats_counts_entries_per_language(tmp_path, lists, capsys):
    out = tmp_path / "w.parquet"
    run(capsys, "merge-languages", f"de={lists['de']}", f"en={lists['en']}", "--out", out)
    code, stdout, _ = run(capsys, "stats", out, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["languages"] == {
        "de": {"entries": 3, "in_other_languages": 1},
        "en": {"entries": 3, "in_other_languages": 1},
    }
    meta = load_metadata(out)
    assert result["fingerprint"] == fingerprint(meta.entries, meta.languages)
    code, text, _ = run(capsys, "stats", out)
    assert any(line.split()[:2] == ["de", "3"] for line in text.splitlines())
    code, english, _ = run(capsys, "stats", lists["en"], "--json")
    assert "languages" not in json.loads(english)


def test_diff_counts_added_and_removed_per_language(tmp_path, lists, capsys):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run(capsys, "merge-languages", f"de={lists['de']}", f"en={lists['en']}", "--out", a)
    run(capsys, "merge-languages", f"zh={lists['zh']}", f"en={lists['en']}", f"other={lists['de']}", "--out", b)
    code, stdout, _ = run(capsys, "diff", a, b, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["added"] == 5 and result["removed"] == 3 and result["common"] == 3
    assert result["per_language"] == {
        "de": {"a": 3, "b": 0, "added": 0, "removed": 3},
        "en": {"a": 3, "b": 3, "added": 0, "removed": 0},
        "zh": {"a": 0, "b": 2, "added": 2, "removed": 0},
        "other": {"a": 0, "b": 3, "added": 3, "removed": 0},
    }
    assert ["Hund", "de"] in result["removed_examples"]
    code, text, _ = run(capsys, "diff", a, b)
    assert any(line.split() == ["other", "0", "3", "3", "0"] for line in text.splitlines())
    code, english, _ = run(capsys, "diff", lists["en"], lists["en"], "--json")
    assert "per_language" not in json.loads(english)
