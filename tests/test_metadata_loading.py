"""Loading an entry list: a JSON list of strings or one entry per line; ids are positions."""

from __future__ import annotations

import json
import re

import pytest

from metadata.loading import MetadataError, fingerprint, load_entries

ENTRIES = ["dog", "hot dog", "new york", "U.S.", ",", "café", "東京", "😀", " padded "]


def write_json(path, value) -> str:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return str(path)


def refusal(path, **options) -> str:
    """The message of the MetadataError raised for path, without the path (which holds digits)."""
    with pytest.raises(MetadataError) as error:
        load_entries(path, **options)
    message = str(error.value)
    assert "\n" not in message  # one line
    return message.replace(str(path), "<path>")


def write_lines(path, entries, ending="\n", final=True) -> str:
    text = ending.join(entries) + (ending if final else "")
    path.write_bytes(text.encode("utf-8"))
    return str(path)


# --- reading -----------------------------------------------------------------------------------------------


def test_json_list_in_order(tmp_path):
    assert load_entries(write_json(tmp_path / "m.json", ENTRIES)) == ENTRIES


def test_json_suffix_is_case_insensitive(tmp_path):
    assert load_entries(write_json(tmp_path / "m.JSON", ENTRIES)) == ENTRIES


def test_path_objects_are_accepted(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, ENTRIES)
    assert load_entries(path) == ENTRIES


@pytest.mark.parametrize("final", [True, False])
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_one_entry_per_line(tmp_path, ending, final):
    path = write_lines(tmp_path / "m.txt", ENTRIES, ending=ending, final=final)
    assert load_entries(path) == ENTRIES


def test_lines_keep_inner_and_edge_spaces(tmp_path):
    entries = ["  two leading", "two trailing  ", "in  between", "\ttab"]
    assert load_entries(write_lines(tmp_path / "m.txt", entries)) == entries


def test_single_entry_without_newline(tmp_path):
    assert load_entries(write_lines(tmp_path / "m.txt", ["only"], final=False)) == ["only"]


def test_empty_files_give_no_entries(tmp_path):
    (tmp_path / "m.txt").write_text("", encoding="utf-8")
    assert load_entries(tmp_path / "m.txt") == []
    assert load_entries(write_json(tmp_path / "m.json", [])) == []


def test_json_entries_may_hold_any_string(tmp_path):
    entries = ["a\nb", "tab\there", '"quoted"', "back\\slash"]
    assert load_entries(write_json(tmp_path / "m.json", entries)) == entries


def test_ids_are_positions_and_match_between_formats(tmp_path):
    from_json = load_entries(write_json(tmp_path / "m.json", ENTRIES))
    from_lines = load_entries(write_lines(tmp_path / "m.txt", ENTRIES))
    assert from_json == from_lines
    assert fingerprint(from_json) == fingerprint(from_lines)


# --- fingerprint --------------------------------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_lists():
    assert fingerprint(list(ENTRIES)) == fingerprint(list(ENTRIES))
    assert fingerprint([]) == fingerprint([])


def test_fingerprint_changes_with_order():
    assert fingerprint(["a", "b"]) != fingerprint(["b", "a"])
    assert fingerprint(ENTRIES) != fingerprint(list(reversed(ENTRIES)))


def test_fingerprint_changes_with_content():
    assert fingerprint(["a", "b"]) != fingerprint(["a", "c"])
    assert fingerprint(["a", "b"]) != fingerprint(["a", "b", "c"])
    assert fingerprint(["a"]) != fingerprint([])
    assert fingerprint(["dog"]) != fingerprint(["Dog"])


def test_fingerprint_is_not_fooled_by_moving_a_boundary():
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    assert fingerprint(["a b"]) != fingerprint(["a", "b"])
    assert fingerprint(["a\nb"]) != fingerprint(["a", "b"])
    assert fingerprint(["", "a"]) != fingerprint(["a", ""])


def test_fingerprint_is_a_labelled_sha256():
    value = fingerprint(ENTRIES)
    assert value.startswith("sha256:")
    digest = value.removeprefix("sha256:")
    assert len(digest) == 64
    int(digest, 16)


# --- refused entries ------------------------------------------------------------------------------------------


def test_empty_entry_is_refused_naming_its_position(tmp_path):
    message = refusal(write_json(tmp_path / "m.json", ["a", "b", "", "c"]))
    assert re.search(r"\b2\b", message)
    assert "empty" in message


def test_empty_line_is_refused_naming_its_position(tmp_path):
    message = refusal(write_lines(tmp_path / "m.txt", ["a", "b", "c", "", "d"]))
    assert re.search(r"\b3\b", message)


def test_duplicate_is_refused_naming_position_and_entry(tmp_path):
    message = refusal(write_json(tmp_path / "m.json", ["dog", "cat", "bird", "cat"]))
    assert "cat" in message
    assert re.search(r"\b3\b", message)  # the repeat
    assert re.search(r"\b1\b", message)  # the entry it repeats


def test_duplicate_lines_are_refused(tmp_path):
    message = refusal(write_lines(tmp_path / "m.txt", ["dog", "hot dog", "dog"], ending="\r\n"))
    assert "dog" in message
    assert re.search(r"\b2\b", message)


def test_entries_differing_only_in_case_or_spaces_are_not_duplicates(tmp_path):
    entries = ["dog", "Dog", "dog ", " dog"]
    assert load_entries(write_json(tmp_path / "m.json", entries)) == entries


def test_drop_invalid_keeps_the_first_occurrence(tmp_path):
    raw = ["dog", "", "cat", "dog", "bird", "", "cat", "fish"]
    path = write_json(tmp_path / "m.json", raw)
    assert load_entries(path, drop_invalid=True) == ["dog", "cat", "bird", "fish"]


def test_drop_invalid_on_lines(tmp_path):
    path = write_lines(tmp_path / "m.txt", ["", "b", "a", "b", "", "c", "a"])
    assert load_entries(path, drop_invalid=True) == ["b", "a", "c"]


def test_drop_invalid_changes_nothing_on_a_clean_list(tmp_path):
    path = write_json(tmp_path / "m.json", ENTRIES)
    assert load_entries(path, drop_invalid=True) == ENTRIES


# --- files that are not metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [{"entries": ["a"]}, "dog", 3, None])
def test_json_that_is_not_a_list_is_refused(tmp_path, value):
    with pytest.raises(MetadataError):
        load_entries(write_json(tmp_path / "m.json", value))


@pytest.mark.parametrize("item", [1, None, ["nested"], {"a": 1}, 2.5, True])
def test_json_list_with_a_non_string_is_refused(tmp_path, item):
    message = refusal(write_json(tmp_path / "m.json", ["ok", item, "fine"]))
    assert re.search(r"\b1\b", message)


@pytest.mark.parametrize("text", ['["a", "b"', "not json", "", "['single quotes']"])
def test_invalid_json_is_refused(tmp_path, text):
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError):
        load_entries(path)


def test_non_utf8_files_are_refused(tmp_path):
    for name in ["m.json", "m.txt"]:
        path = tmp_path / name
        path.write_bytes(b'["caf\xe9"]' if name.endswith(".json") else b"caf\xe9\n")
        with pytest.raises(MetadataError):
            load_entries(path)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(MetadataError, match="nowhere"):
        load_entries(tmp_path / "nowhere.json")
    with pytest.raises(MetadataError):
        load_entries(str(tmp_path / "nowhere.txt"))


def test_directory_is_refused(tmp_path):
    with pytest.raises(MetadataError):
        load_entries(tmp_path)


def test_metadata_error_is_a_value_error():
    assert issubclass(MetadataError, ValueError)


# --- Parquet tables (entry, sources) -------------------------------------------------------------------------


def write_parquet(path, columns: dict) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return str(path)


def test_parquet_entries_and_sources_in_order(tmp_path):
    from metadata.loading import load_metadata

    sources = [["wordnet"], ["wordnet", "wiki_unigram"], [], ["extra"], ["numbers"], ["x"], ["x"], ["x"], ["x"]]
    path = write_parquet(tmp_path / "m.parquet", {"entry": ENTRIES, "sources": sources})
    loaded = load_metadata(path)
    assert loaded.entries == ENTRIES == load_entries(path)
    assert loaded.sources == [tuple(s) for s in sources]
    assert fingerprint(load_entries(path)) == fingerprint(ENTRIES)


def test_parquet_without_sources_and_suffix_case(tmp_path):
    from metadata.loading import load_metadata

    path = write_parquet(tmp_path / "m.PARQUET", {"entry": ENTRIES, "count": list(range(len(ENTRIES)))})
    assert load_metadata(path).entries == ENTRIES
    assert load_metadata(path).sources is None


def test_parquet_drop_invalid_keeps_sources_aligned(tmp_path):
    from metadata.loading import load_metadata

    path = write_parquet(
        tmp_path / "m.parquet", {"entry": ["a", "", "b", "a"], "sources": [["s1"], ["s2"], ["s3"], ["s4"]]}
    )
    assert "empty" in refusal(path)
    loaded = load_metadata(path, drop_invalid=True)
    assert loaded.entries == ["a", "b"] and loaded.sources == [("s1",), ("s3",)]


@pytest.mark.parametrize(
    "columns, words",
    [
        ({"text": ["a"]}, "no 'entry' column"),
        ({"entry": [1, 2]}, "not strings"),
        ({"entry": ["a", None, "b"]}, "entry 1 is null"),
        ({"entry": ["a"], "sources": ["not a list"]}, "not lists of strings"),
    ],
)
def test_parquet_that_is_not_an_entry_table_is_refused(tmp_path, columns, words):
    message = refusal(write_parquet(tmp_path / "m.parquet", columns))
    assert words in message


def test_unreadable_parquet_is_refused(tmp_path):
    path = tmp_path / "m.parquet"
    path.write_bytes(b"not parquet at all")
    assert "not a readable Parquet file" in refusal(path)
