"""Caption languages identified right: the script rules beside lid.176, checked against a naive
reference and on real human captions (../shared/data/multilingual: Multi30k en/de/fr/cs, COCO-CN zh),
in `identify` and in a worldwide run without a language column."""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, write_pool
from hypothesis import given, settings
from hypothesis import strategies as st

from curation import languages, scripts
from curation.languages import (
    FALLBACK,
    FROM_IDENTIFIER,
    FROM_SCRIPT,
    LID176,
    LID176_SCRIPTS,
    NO_TEXT,
    NOWHERE,
    OTHER,
    OVERRIDDEN,
    SAME,
    TO_OTHER,
    identify,
    identify_decided,
    resolve,
)
from curation.pairs import PairReader
from curation.rundir import CAPTION_LANGUAGE, RunDir, read_json
from curation.shard_stats import LanguageDecisions
from studio_common.errors import CurationError

ROOT = Path(__file__).resolve().parent.parent
MULTILINGUAL = ROOT.parent / "shared" / "data" / "multilingual"
REAL = pytest.mark.skipif(
    not (MULTILINGUAL / "coco-cn_ext.icap2020.txt").exists(),
    reason="real multilingual captions (../shared/data/multilingual) not present",
)


def real_captions(per_language: int | None = None) -> dict[str, list[str]]:
    """Human captions by language: Multi30k's training captions (en, de, fr, cs) and COCO-CN's (zh)."""
    found = {}
    for code in ("en", "de", "fr", "cs"):
        with gzip.open(MULTILINGUAL / f"multi30k_train.{code}.gz", "rt", encoding="utf-8") as lines:
            found[code] = [line.rstrip("\n") for line in lines]
    with open(MULTILINGUAL / "coco-cn_ext.icap2020.txt", encoding="utf-8") as lines:
        found["zh"] = [line.rstrip("\n").split("\t", 1)[1] for line in lines if "\t" in line]
    return {code: texts[:per_language] for code, texts in found.items()}


# --- letters per script: the batch count against a character-by-character reference -------------------


def naive_letter_counts(text: str) -> list[int]:
    """Each character looked up in the ranges one by one; only letters and marks count."""
    counts = [0] * (scripts.NO_SCRIPT + 1)
    for char in text:
        column = scripts.NO_SCRIPT
        if unicodedata.category(char)[0] in "LM":
            for index, ranges in enumerate(scripts.SCRIPT_RANGES.values()):
                if any(start <= ord(char) <= stop for start, stop in ranges):
                    column = index
        counts[column] += 1
    return counts


TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from("狗猫の犬ひらカタ한국어แมวລາວខ្មែរမြန်ཀ་ႠΑбשעב1 ,.\u3000"),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT, max_size=8))
def test_letter_counts_equal_a_character_by_character_count(texts: list[str]) -> None:
    counts = scripts.letter_counts(texts)
    assert counts.shape == (len(texts), scripts.NO_SCRIPT + 1)
    assert counts.tolist() == [naive_letter_counts(text) for text in texts]


def test_han_and_kana_count_together_for_the_dominant_script() -> None:
    texts = ["公園で犬が遊ぶ", "两只斑马", "iPhone 充电器", "Nike Air Max 运动鞋", "한국어 文字", "2024 !!", ""]
    assert scripts.dominant_scripts(scripts.letter_counts(texts)) == [
        "han", "han", "latin", "latin", "hangul", None, None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "kana", "identified", "decided"),
    [
        ("han", 2, "zh", "ja"),  # kana: Japanese, whatever the model says
        ("han", 0, "ja", "zh"),  # Han without kana is not Japanese
        ("han", 0, "en", "zh"),
        ("han", 0, "wuu", None),  # a Chinese variety the model names stands
        ("han", 0, "yue", None),
        ("hangul", 0, None, "ko"),
        ("thai", 0, "lo", "th"),
        ("hebrew", 0, "yi", None),  # a script of several languages keeps the model's one of them
        ("hebrew", 0, "ar", "he"),
        ("latin", 0, "ja", None),  # Latin is shared by too many languages: the model decides
        ("cyrillic", 0, "ru", None),
        (None, 0, "en", None),
    ],
)
def test_what_a_script_settles(script: str | None, kana: int, identified: str | None, decided: str | None) -> None:
    assert scripts.decide(script, kana, identified) == decided


def test_scripts_of_one_language_are_not_shown_to_the_model() -> None:
    assert not scripts.needs_identifier("thai", 0) and not scripts.needs_identifier("han", 3)
    assert scripts.needs_identifier("han", 0) and scripts.needs_identifier("latin", 0)
    assert scripts.needs_identifier(None, 0) and scripts.needs_identifier("hebrew", 0)


# --- identification -------------------------------------------------------------------------------------


def test_how_each_caption_was_decided() -> None:
    found = identify_decided(
        [
            "A small dog is playing with a red ball in the park.",
            "两只斑马在野外的草地上散步",  # lid.176 calls this English
            "公園で小さな犬が赤いボールで遊んでいます。",
            "แมวตัวนี้นอนหลับอยู่บนโซฟา",
            "작은 강아지가 공원에서 놀고 있다.",
            None,
            "  ",
        ]
    )
    assert found.codes == ["en", "zh", "ja", "th", "ko", "", ""]
    assert found.sources == [FROM_IDENTIFIER, FROM_SCRIPT, FROM_SCRIPT, FROM_SCRIPT, FROM_SCRIPT, NO_TEXT, NO_TEXT]
    alone = identify_decided(["两只斑马在野外的草地上散步", "A small dog."], LID176)
    assert alone.codes == ["en", "en"] and alone.sources == [FROM_IDENTIFIER] * 2


def test_repeated_captions_get_one_answer_each() -> None:
    texts = ["Ein Hund läuft über die Wiese.", "A dog runs.", "Ein Hund läuft über die Wiese."] * 50
    assert identify(texts) == ["de", "en", "de"] * 50


def test_an_unknown_identifier_is_refused_in_one_line() -> None:
    with pytest.raises(CurationError, match=r"language identifier 'cld9': choose one of lid176-scripts, lid176$"):
        identify(["hello"], "cld9")


# --- from identifier codes to the metadata's languages ----------------------------------------------------


def test_chinese_varieties_fall_back_to_chinese_and_the_way_is_told() -> None:
    available = frozenset({"en", "zh"})
    assert resolve("wuu", available) == ("zh", FALLBACK)
    assert resolve("yue", available) == ("zh", FALLBACK)
    assert resolve("yue", available | {"zh-yue"}) == ("zh-yue", SAME)  # a list of its own comes first
    assert resolve("zh", available) == ("zh", SAME)
    assert resolve("th", available) == (None, NOWHERE)
    assert resolve("th", available | {OTHER}) == (OTHER, TO_OTHER)
    assert resolve("wuu", frozenset({"en"}) | {OTHER}) == (OTHER, TO_OTHER)
    assert resolve("wuu", available, {"wuu": "en"}) == ("en", OVERRIDDEN)  # an override decides alone
    assert resolve("wuu", available, {"wuu": "missing"}) == (None, NOWHERE)


def test_decisions_add_up_and_read_back() -> None:
    one = LanguageDecisions.tally([("lid.176", "en", "en", SAME)] * 3 + [("script", "zh", "zh", SAME)])
    two = LanguageDecisions.tally([("lid.176", "wuu", "zh", FALLBACK), ("lid.176", "en", "en", SAME)])
    total = one + two
    assert total.total == 6 and total.captions[("lid.176", "en", "en", SAME)] == 4
    assert LanguageDecisions.from_json(total.as_json()) == total
    assert total.as_json()[0] == {"source": "lid.176", "code": "en", "language": "en", "mapping": SAME, "captions": 4}
    assert LanguageDecisions() + one == one


# --- real captions ------------------------------------------------------------------------------------------


@REAL
@pytest.mark.slow
def test_real_captions_are_identified_in_their_language() -> None:
    """At least 98% of each language's captions (a Chinese variety counts as Chinese: the run puts it
    in zh). lid.176 alone gets 87% of the Chinese ones (bench/results/language_id.md)."""
    chinese = {"zh", "wuu", "yue"}
    for code, texts in real_captions().items():
        found = Counter(identify(texts))
        right = sum(found[c] for c in chinese) if code == "zh" else found[code]
        assert right / len(texts) >= 0.98, (code, found.most_common(5))
    zh = Counter(identify(real_captions()["zh"], LID176))
    assert zh["zh"] / sum(zh.values()) < 0.9  # what the script rules fix


@REAL
def test_a_worldwide_run_without_a_language_column_puts_real_captions_in_their_language(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    captions = real_captions(per_language=1500)
    truth = [code for code, texts in captions.items() for _ in texts]
    texts = [text for code in captions for text in captions[code]]
    order = np.random.default_rng(5).permutation(len(texts))  # languages mixed in every shard
    write_pool(
        tmp_path / "pool",
        {"id": list(range(len(texts))), "text": [texts[i] for i in order], "truth": [truth[i] for i in order]},
        files=2,
        row_group_size=1000,
    )
    entries = {"en": ["dog", "man"], "de": ["Hund", "Mann"], "fr": ["chien", "homme"], "cs": ["pes", "muž"],
               "zh": ["狗", "男人"]}  # fmt: skip
    pq.write_table(
        pa.table(
            {
                "entry": [e for code in entries for e in entries[code]],
                "language": [code for code in entries for _ in entries[code]],
            }
        ),
        tmp_path / "metadata.parquet",
    )
    out = tmp_path / "run"
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "metadata.parquet",
               "--t", 5, "--out", out, "--shard-rows", 2000) == 0  # fmt: skip
    assert re.search(r"caption languages by: 9\d\.\d% lid\.176, \d\.\d% script", capsys.readouterr().out)
    run = RunDir(out)
    reader = PairReader(run)
    placed = pa.concat_tables(reader.table(shard.index, [CAPTION_LANGUAGE, "truth"]) for shard in run.shards())
    pairs = list(zip(placed.column("truth").to_pylist(), placed.column(CAPTION_LANGUAGE).to_pylist()))
    for code in entries:
        mine = [language for truth_code, language in pairs if truth_code == code]
        assert sum(language == code for language in mine) / len(mine) >= 0.98, (code, Counter(mine).most_common(4))
    decisions = LanguageDecisions.from_json(read_json(run.run_json)["language_decisions"])
    assert decisions.total == len(texts)  # every caption's decision is accounted for
    by_script = Counter({code: n for (source, code, _, _), n in decisions.captions.items() if source == FROM_SCRIPT})
    assert set(by_script) == {"zh"} and by_script["zh"] >= 50  # Chinese captions lid.176 called something else
    nowhere = sum(n for (_, code, language, mapping), n in decisions.captions.items() if mapping == NOWHERE)
    assert nowhere == sum(language is None for _, language in pairs)  # codes the metadata lacks: matched nowhere
    plan = json.loads(run.plan_json.read_text())
    assert plan["columns"]["language_identifier"] == LID176_SCRIPTS


def test_identifier_options_are_checked_against_the_metadata(pool: Path, metadata: Path, tmp_path: Path) -> None:
    code = cli("run", "--pool", pool, "--metadata", metadata, "--t", 3, "--out", tmp_path / "r",
               "--language-identifier", "lid176")  # fmt: skip
    assert code != 0
    assert languages.DEFAULT_IDENTIFIER == LID176_SCRIPTS
