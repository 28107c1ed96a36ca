"""Building metadata: WordNet names, Wikipedia counts and thresholds, pageviews, merging with provenance.

Every input is a tiny fixture written here in the real formats (WordNet data.* files, a pages-articles
XML dump in bzip2, hourly pageview .gz files); nothing is downloaded and WordNet need not be installed.
"""

from __future__ import annotations

import bz2
import gzip
import json
import math
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metadata import files
from metadata.build import BuildRequest, build
from metadata.loading import MetadataError, fingerprint, load_entries, load_metadata
from metadata.merge import NUMBERS, Source, is_punctuation_only, merge, parse_budgets, render_table
from metadata.pageviews import popular_titles
from metadata.report import diff, never_matches, stats
from metadata.spill import KeyCounter, partition_ids, reduce_bounded, reduce_partition, value_counts
from metadata.wikipedia import (
    TOKENIZER_VERSION,
    Stitcher,
    count_dump,
    find_streams,
    frequent_unigrams,
    plan_ranges,
    pmi_table,
    read_record,
    split_fragments,
)
from metadata.wikitext import BREAK_MARK, PageStats, article_texts, tokens
from metadata.wordnet import read_wordnet, synset_name

# --- fixture writers (also used by test_metadata_cli.py) -------------------------------------------------

LICENCE_HEADER = [
    "  1 This software and database is being provided to you, the LICENSEE, by  ",
    "  2 Princeton University under the following license.  By obtaining, using  ",
    "  3 and/or copying this software and database, you agree that you have  ",
]

# (synset type, [lemmas]) per data file, in file order
SYNSETS = {
    "noun": [
        ("n", ["dog", "domestic_dog", "Canis_familiaris"]),
        ("n", ["St._Petersburg", "Leningrad"]),
        ("n", ["hot_dog", "frank"]),
        ("n", [".45_caliber"]),
        ("n", ["Dog"]),  # another synset whose head lemma is the same name once lower-cased
        ("n", ["New_York", "New_York_City"]),
    ],
    "verb": [("v", ["run"]), ("v", ["dog", "chase"])],
    "adj": [
        ("a", ["able"]),
        ("s", ["out_of_reach(p)", "unreachable"]),
        ("s", ["galore(ip)"]),
        ("a", ["outdoor(a)", "out-of-door"]),
    ],
    "adv": [("r", ["very", "real"])],
}
WORDNET_NAMES = [
    "dog",
    "st. petersburg",
    "hot dog",
    ".45 caliber",
    "new york",
    "run",
    "able",
    "out of reach",
    "galore",
    "outdoor",
    "very",
]


def write_wordnet(directory: Path, synsets: dict = SYNSETS) -> Path:
    """data.noun/verb/adj/adv in WordNet 3.0's format: licence header, byte offsets, hex word counts,
    lex ids, pointer counts, verb frames, glosses."""
    directory.mkdir(parents=True, exist_ok=True)
    for pos, entries in synsets.items():
        lines = [line + "\n" for line in LICENCE_HEADER]
        offset = sum(len(line.encode()) for line in lines)
        for number, (synset_type, lemmas) in enumerate(entries):
            words = " ".join(f"{lemma} {k % 16:x}" for k, lemma in enumerate(lemmas))
            pointers = "001 @ 00001740 n 0000" if pos == "noun" else "000"
            frames = " 01 + 02 00" if pos == "verb" else ""
            line = (
                f"{offset:08d} {number % 45:02d} {synset_type} {len(lemmas):02x} {words} {pointers}{frames}"
                f" | gloss {number}  \n"
            )
            lines.append(line)
            offset += len(line.encode())
        (directory / f"data.{pos}").write_text("".join(lines), encoding="utf-8")
    return directory


def page(title: str, text: str, namespace: int = 0, redirect: str | None = None) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    extra = f'    <redirect title="{redirect}" />\n' if redirect else ""
    return (
        f"  <page>\n    <title>{title}</title>\n    <ns>{namespace}</ns>\n    <id>1</id>\n{extra}"
        f"    <revision>\n      <id>2</id>\n"
        f'      <text bytes="{len(text)}" xml:space="preserve">{escaped}</text>\n'
        f"    </revision>\n  </page>\n"
    )


HEADER = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="en">\n  <siteinfo>\n'
    "    <sitename>Wikipedia</sitename>\n  </siteinfo>\n"
)
FOOTER = "</mediawiki>\n"


def write_dump(path: Path, pages: list[str], layout: str = "single", slice_bytes: int = 37) -> Path:
    """A pages-articles dump: one bz2 stream ("single"), a stream per page ("multi", as Wikipedia's
    multistream files), or streams cut every ``slice_bytes`` bytes of XML, mid-page ("slices")."""
    xml = HEADER + "".join(pages) + FOOTER
    if layout == "single":
        data = bz2.compress(xml.encode())
    elif layout == "multi":
        data = b"".join(bz2.compress(part.encode()) for part in [HEADER, *pages, FOOTER])
    else:
        raw = xml.encode()
        data = b"".join(bz2.compress(raw[i : i + slice_bytes]) for i in range(0, len(raw), slice_bytes))
    path.write_bytes(data)
    return path


ARTICLES = [
    page(
        "Dog",
        "The '''dog''' is a [[domestic animal|pet]]. The dog barks at the cat.{{Infobox dog|size=big}}"
        "<ref>Smith, 2001</ref>\n== History ==\nDogs and cats; the dog-friendly park.",
    ),
    page("Cat", "The cat sleeps. [[File:Cat.jpg|thumb|A [[cat]] asleep]] Zebra crossing near the cat."),
    page("Zebra", "Zebra crossing, zebra crossing and Paris, France. Café Zürich at 1 pm."),
    page("Talk:Dog", "the the the the", namespace=1),
    page("Hound", "#REDIRECT [[Dog]]", redirect="Dog"),
]


def counts_of(directory: Path) -> tuple[dict[str, int], dict[str, int]]:
    uni = pq.read_table(directory / "unigrams.parquet").to_pylist()
    bi = pq.read_table(directory / "bigrams.parquet").to_pylist()
    return {r["token"]: r["count"] for r in uni}, {r["bigram"]: r["count"] for r in bi}


def expected_counts() -> tuple[dict[str, int], dict[str, int]]:
    """Counts worked out by hand from ARTICLES' text (articles only, markup gone)."""
    texts = [
        "The dog is a pet . The dog barks at the cat . | History | Dogs and cats ; the dog-friendly park .",
        "The cat sleeps . Zebra crossing near the cat .",
        "Zebra crossing , zebra crossing and Paris , France . Café Zürich at 1 pm .",
    ]
    unigrams: dict[str, int] = {}
    bigrams: dict[str, int] = {}
    for text in texts:
        for segment in text.replace(";", ".").replace(",", ".").replace("|", ".").split("."):
            words = segment.split()
            for word in words:
                unigrams[word] = unigrams.get(word, 0) + 1
            for a, b in zip(words, words[1:]):
                bigrams[f"{a} {b}"] = bigrams.get(f"{a} {b}", 0) + 1
    return unigrams, bigrams


def write_pageviews(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


@pytest.fixture
def wordnet_dir(tmp_path: Path) -> Path:
    return write_wordnet(tmp_path / "wordnet")


@pytest.fixture
def counts_dir(tmp_path: Path) -> Path:
    dump = write_dump(tmp_path / "pages-articles.xml.bz2", ARTICLES)
    out = tmp_path / "counts"
    count_dump(dump, out, workers=1, progress=False)
    return out


# --- WordNet ------------------------------------------------------------------------------------------------


def test_wordnet_names_are_first_lemmas_in_file_order(wordnet_dir):
    names = read_wordnet(wordnet_dir)
    assert names.entries == WORDNET_NAMES
    assert names.synsets == {"noun": 6, "verb": 2, "adj": 4, "adv": 1}
    assert len(names.per_synset) == 13  # "dog" three times (two nouns, one verb)


def test_wordnet_keeps_dotted_lemmas_whole_and_counts_markers(wordnet_dir):
    names = read_wordnet(wordnet_dir)
    assert "st. petersburg" in names.entries and "st" not in names.entries
    assert names.dotted == ["st. petersburg", ".45 caliber"]
    assert names.markers_stripped == 3
    # MetaCLIP's cut at the first dot: "st. petersburg" -> "st", ".45 caliber" -> "" (dropped)
    assert names.metaclip_count() == len(WORDNET_NAMES) - 1


@pytest.mark.parametrize(
    "lemma, name",
    [
        ("out_of_reach(p)", "out of reach"),
        ("galore(ip)", "galore"),
        ("outdoor(a)", "outdoor"),
        ("St._Petersburg", "st. petersburg"),
        ("Canis_familiaris", "canis familiaris"),
        ("rock'n'roll", "rock'n'roll"),
    ],
)
def test_synset_name(lemma, name):
    assert synset_name(lemma) == name


def test_wordnet_malformed_line_names_file_and_line(tmp_path):
    directory = write_wordnet(tmp_path / "wn")
    path = directory / "data.verb"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(4, "0000xx12 29 v 01 walk 0 000 | broken offset\n")
    path.write_text("".join(lines))
    with pytest.raises(MetadataError) as error:
        read_wordnet(directory)
    message = str(error.value)
    assert "data.verb line 5" in message and "malformed" in message and "\n" not in message


def test_wordnet_refuses_a_synset_type_from_another_file(tmp_path):
    directory = write_wordnet(tmp_path / "wn", {**SYNSETS, "adv": [("n", ["very"])]})
    with pytest.raises(MetadataError, match="data.adv line 4"):
        read_wordnet(directory)


def test_wordnet_missing_directory_and_files(tmp_path):
    with pytest.raises(MetadataError, match="not found"):
        read_wordnet(tmp_path / "nowhere")
    directory = write_wordnet(tmp_path / "wn")
    (directory / "data.adv").unlink()
    with pytest.raises(MetadataError, match="data.adv"):
        read_wordnet(directory)


def test_wordnet_with_empty_data_files_is_an_empty_source(tmp_path):
    directory = write_wordnet(tmp_path / "wn", {pos: [] for pos in SYNSETS})
    with pytest.raises(MetadataError, match="no synsets"):
        read_wordnet(directory)


# --- Wikipedia: parsing and tokens ----------------------------------------------------------------------------


def test_tokens_break_at_punctuation_and_keep_inner_joiners():
    assert tokens("Paris, France; rock-'n'-roll it's dog-friendly -x y- Zürich") == [
        "Paris",
        BREAK_MARK,
        "France",
        BREAK_MARK,
        "rock",
        BREAK_MARK,
        "n",
        BREAK_MARK,
        "roll",
        "it's",
        "dog-friendly",
        BREAK_MARK,
        "x",
        "y",
        BREAK_MARK,
        "Zürich",
    ]
    assert tokens("line one\nline two") == ["line", "one", BREAK_MARK, "line", "two"]
    assert tokens("") == []


def test_article_texts_sorts_pages_and_counts_malformed_ones():
    xml = (
        HEADER
        + ARTICLES[0]
        + "  <page><title>Broken</title><ns>0</ns><revision><text>no end\n"
        + ARTICLES[1]
        + ARTICLES[3]
        + ARTICLES[4]
        + "  <page><title>NoText</title><ns>0</ns></page>\n"
        + "  <page><title>Cut</title><ns>0</ns><revision><text>cut off"
    )
    stats_ = PageStats()
    texts = article_texts(xml, stats_)
    assert len(texts) == 2 and texts[1].startswith("The cat sleeps")
    counted = (stats_.pages, stats_.articles, stats_.redirects, stats_.other_namespace, stats_.malformed)
    assert counted == (7, 2, 1, 1, 3)
    assert any("Broken" in example for example in stats_.malformed_examples)
    assert any("NoText" in example for example in stats_.malformed_examples)


def test_fragments_and_stitching_rebuild_whole_pages():
    xml = (HEADER + "".join(ARTICLES) + FOOTER).encode()
    pieces = [xml[i : i + 23] for i in range(0, len(xml), 23)]
    stitcher = Stitcher()
    whole: list[bytes] = []
    order = list(range(len(pieces)))
    for index in reversed(order):  # results may arrive in any order
        head, body, tail, starts = split_fragments(pieces[index])
        whole.append(body)
        whole += stitcher.add(index, head, tail, starts)
    whole.append(stitcher.finish())
    rebuilt = PageStats()
    article_texts(b"".join(whole).decode(), rebuilt)
    assert (rebuilt.pages, rebuilt.articles, rebuilt.malformed) == (5, 3, 0)


def test_stream_starts_and_ranges(tmp_path):
    dump = write_dump(tmp_path / "multi.xml.bz2", ARTICLES, layout="multi")
    starts = find_streams(dump)
    assert len(starts) == len(ARTICLES) + 2 and starts[0] == 0
    ranges = plan_ranges(starts, dump.stat().st_size, target=1)
    assert ranges[0][0] == 0 and ranges[-1][1] == dump.stat().st_size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert find_streams(write_dump(tmp_path / "single.xml.bz2", ARTICLES)) == [0]


# --- Wikipedia: counting ------------------------------------------------------------------------------------


def test_count_dump_gives_exact_counts(counts_dir):
    unigrams, bigrams = counts_of(counts_dir)
    expected_uni, expected_bi = expected_counts()
    assert unigrams == expected_uni
    assert bigrams == expected_bi
    assert "Paris France" not in bigrams and "the the" not in bigrams  # punctuation; talk page
    assert unigrams["the"] == 3 and unigrams["The"] == 3  # case kept
    record = read_record(counts_dir)
    assert (
        record["pages"],
        record["articles"],
        record["redirects"],
        record["other_namespace"],
        record["malformed"],
    ) == (5, 3, 1, 1, 0)
    assert record["tokens"] == sum(expected_uni.values())


@pytest.mark.parametrize(
    "layout, workers, options",
    [
        ("multi", 1, {}),
        ("slices", 1, {"range_bytes": 1}),  # streams cut pages anywhere; one range per stream
        ("single", 1, {"chunk_mb": 0.0001}),  # a chunk per page or so
        pytest.param(  # worker processes (spawn), fragments stitched in the parent
            "slices", 2, {"range_bytes": 200}, marks=pytest.mark.slow
        ),
    ],
)
def test_every_layout_and_worker_count_gives_the_same_counts(tmp_path, counts_dir, layout, workers, options):
    dump = write_dump(tmp_path / f"{layout}.xml.bz2", ARTICLES, layout=layout)
    out = tmp_path / f"counts-{layout}-{workers}"
    summary = count_dump(dump, out, workers=workers, partitions=3, progress=False, **options)
    assert counts_of(out) == counts_of(counts_dir)
    assert summary.record["format"] == ("single-stream" if layout == "single" else "multistream")
    assert summary.record["uncompressed_bytes"] == len((HEADER + "".join(ARTICLES) + FOOTER).encode())


def test_spilling_small_batches_keeps_counts_exact(tmp_path, counts_dir):
    dump = write_dump(tmp_path / "multi.xml.bz2", ARTICLES, layout="multi")
    out = tmp_path / "spilled"
    count_dump(dump, out, workers=1, partitions=4, max_rows=2, range_bytes=1, progress=False)
    assert counts_of(out) == counts_of(counts_dir)


def test_malformed_pages_are_counted_not_dropped_silently(tmp_path):
    broken = "  <page>\n    <title>Broken</title>\n    <ns>0</ns>\n    <revision><text>never closed\n"
    dump = write_dump(tmp_path / "d.xml.bz2", [ARTICLES[0], broken, ARTICLES[1]])
    summary = count_dump(dump, tmp_path / "c", workers=1, progress=False)
    assert summary.record["malformed"] == 1
    assert summary.record["articles"] == 2
    assert "Broken" in summary.record["malformed_examples"][0]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"<mediawiki>not compressed</mediawiki>", "not a bzip2 file"),
        (bz2.compress(b"<mediawiki><siteinfo/></mediawiki>"), "no <page>"),
        (bz2.compress((HEADER + ARTICLES[0]).encode() * 50)[:-40], "truncated"),
    ],
)
def test_bad_dumps_are_refused_in_one_line(tmp_path, content, message):
    dump = tmp_path / "bad.xml.bz2"
    dump.write_bytes(content)
    with pytest.raises(MetadataError) as error:
        count_dump(dump, tmp_path / "c", workers=1, progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "c" / "counts.json").exists()


def test_missing_dump_and_missing_counts(tmp_path):
    with pytest.raises(MetadataError, match="not found"):
        count_dump(tmp_path / "none.xml.bz2", tmp_path / "c", progress=False)
    with pytest.raises(MetadataError, match="not found"):
        read_record(tmp_path / "no-counts")
    (tmp_path / "half").mkdir()
    with pytest.raises(MetadataError, match="counts.json"):
        read_record(tmp_path / "half")


# --- Wikipedia: thresholds (no recounting) -------------------------------------------------------------------


def test_unigram_threshold_is_inclusive_and_ordered_by_count(counts_dir):
    unigrams, _ = expected_counts()
    kept = frequent_unigrams(counts_dir, 3)
    assert kept == sorted((w for w, c in unigrams.items() if c >= 3), key=lambda w: (-unigrams[w], w))
    assert "cat" in kept and unigrams["cat"] == 3
    assert frequent_unigrams(counts_dir, 1000) == []
    assert len(frequent_unigrams(counts_dir, 1)) == len(unigrams)


def test_bigram_pmi_matches_its_definition(counts_dir):
    unigrams, bigrams = expected_counts()
    total = sum(unigrams.values())

    def pmi(bigram: str) -> float:
        a, b = bigram.split(" ")
        return math.log2(bigrams[bigram] * total / (unigrams[a] * unigrams[b]))

    table = pmi_table(counts_dir, min_pmi=3.5)
    found = dict(zip(table.column("bigram").to_pylist(), table.column("pmi").to_pylist()))
    expected = {b: pmi(b) for b in bigrams if pmi(b) >= 3.5}
    assert found.keys() == expected.keys()
    assert all(math.isclose(found[b], expected[b]) for b in expected)
    assert table.column("pmi").to_pylist() == sorted(found.values(), reverse=True)
    assert "Zebra crossing" in found and "the cat" not in found  # 3.66 and 3.08
    strict = pmi_table(counts_dir, min_pmi=3.5, min_count=2).column("bigram").to_pylist()
    assert strict == [b for b in table.column("bigram").to_pylist() if bigrams[b] >= 2]
    assert pmi_table(counts_dir, min_pmi=30.0).num_rows == 0  # PMI <= log2(tokens) < 30 here


def write_counts(directory: Path, unigrams: dict[str, int], bigrams: dict[str, int], tokens: int) -> Path:
    """A count-wikipedia output written directly, for thresholds on chosen counts."""
    directory.mkdir()
    pq.write_table(
        pa.table({"token": list(unigrams), "count": pa.array(list(unigrams.values()), pa.int64())}),
        directory / "unigrams.parquet",
    )
    pq.write_table(
        pa.table({"bigram": list(bigrams), "count": pa.array(list(bigrams.values()), pa.int64())}),
        directory / "bigrams.parquet",
    )
    (directory / "counts.json").write_text(json.dumps({"tokens": tokens, "tokenizer_version": TOKENIZER_VERSION}))
    return directory


def test_equal_pmi_is_ordered_by_bigram_not_by_rounding(tmp_path):
    # Two groups of exactly equal PMI: 1/(5*11) = 1/(11*5), and 3/(15*6) = 1/(5*6) = 2/(10*6); summing four
    # logarithms puts members of a group an ulp apart, in an order that has nothing to do with the entries.
    unigrams = {"a": 5, "b": 11, "c": 15, "d": 6, "e": 10, "f": 6}
    bigrams = {"b a": 1, "a b": 1, "c d": 3, "a f": 1, "e d": 2, "f e": 1}
    counts = write_counts(tmp_path / "counts", unigrams, bigrams, tokens=1000)
    table = pmi_table(counts, min_pmi=0.0)
    order = table.column("bigram").to_pylist()
    pmi = dict(zip(order, table.column("pmi").to_pylist()))
    assert order == ["a f", "c d", "e d", "a b", "b a", "f e"]  # 1/30 before 1/55 and 1/60, ties by entry
    assert pmi["a f"] == pmi["c d"] == pmi["e d"] and pmi["a b"] == pmi["b a"]
    assert math.isclose(pmi["a b"], math.log2(1000 / 55)) and pmi["f e"] < pmi["b a"]


# --- pageviews --------------------------------------------------------------------------------------------------


@pytest.fixture
def pageview_files(tmp_path: Path) -> list[Path]:
    return [
        write_pageviews(
            tmp_path / "pageviews-20240101-000000.gz",
            [
                "en Main_Page 120 0",
                "en Dog 60 0",
                "de Hund 500 0",
                "en.m Dog 30 0",
                "en Special:Search 900 0",
                "en New_York_City 50 0",
                "en Star_Wars:_Episode_IV 75 0",
                "en Cat 69 0",
                "en Caf%C3%A9_M%27s 40 0",
                "en - 300 0",
                "en Special%3ARandom 80 0",
            ],
        ),
        write_pageviews(
            tmp_path / "pageviews-20240102-130000.gz",
            [
                "en Dog 10 0",
                "en New_York_City 25 0",
                "en broken line",
                "en Cat x 0",
                "en User_talk:Foo 100 0",
                "en Café_M's 35 0",
            ],
        ),
    ]


def test_pageviews_sum_over_files_with_an_inclusive_threshold(pageview_files):
    found = popular_titles(pageview_files, min_views=70, progress=False)
    # "Café M's" is one title spelled two ways (percent-encoded in the first file): 40 + 35 views
    assert found.entries == ["Café M's", "New York City", "Star Wars: Episode IV", "Dog"]
    assert found.views == [75, 75, 75, 70]
    assert "Cat" not in found.entries  # 69 views
    assert "Main Page" not in found.entries and "-" not in found.entries  # the front page, no page
    assert found.stats.malformed == 2 and found.stats.namespaced_rows == 3 and found.stats.main_page_rows == 2
    assert found.stats.as_dict()["distinct_days"] == 2


def test_pageviews_language_codes_hourly_floor_and_namespaces(pageview_files):
    mobile_too = popular_titles(pageview_files, min_views=100, codes=["en", "en.m"], progress=False)
    assert mobile_too.entries == ["Dog"] and mobile_too.views == [100]
    german = popular_titles(pageview_files, min_views=1, codes=["de"], progress=False)
    assert german.entries == ["Hund"]
    hourly = popular_titles(pageview_files, min_views=1, min_hourly=55, progress=False)
    assert hourly.entries == ["Star Wars: Episode IV", "Cat", "Dog"]  # NYC had 50 and 25, Café M's 40 and 35
    namespaces = popular_titles(pageview_files, min_views=100, keep_namespaces=True, progress=False)
    assert namespaces.entries == ["Special:Search", "User talk:Foo"]
    every = popular_titles(pageview_files, min_views=1, keep_namespaces=True, progress=False)
    assert "Special:Random" in every.entries and "Main Page" not in every.entries  # decoded; never a title


REAL_PAGEVIEWS = sorted((Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wiki").glob("*.gz"))


@pytest.mark.skipif(not REAL_PAGEVIEWS, reason="real pageview lines (../shared/data/wiki) not present")
def test_real_pageview_lines_give_decoded_article_titles():
    codes = ["en", "aa", "aa.m"]
    found = popular_titles(REAL_PAGEVIEWS, min_views=1, codes=codes, progress=False)
    expected: dict[str, int] = {}  # worked out line by line here
    for path in REAL_PAGEVIEWS:
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            code, title, views, _ = line.split(" ")
            title = unquote(title).replace("_", " ")
            if (
                code in codes
                and title not in ("Main Page", "-")
                and title.split(":")[0] not in ("Special", "Wikipedia", "User")
            ):
                expected[title] = expected.get(title, 0) + int(views)
    assert dict(zip(found.entries, found.views)) == expected
    assert "Barack Obama's first 100 days" in found.entries and 'Barack Obama "Hope" poster' in found.entries
    assert not any("%" in title or "_" in title or ":" in title for title in found.entries)
    assert found.stats.main_page_rows == 3 and found.stats.namespaced_rows == 5


def test_pageview_bad_input(tmp_path, pageview_files):
    with pytest.raises(MetadataError, match="given twice"):
        popular_titles([pageview_files[0], pageview_files[0]], progress=False)
    with pytest.raises(MetadataError, match="not found"):
        popular_titles([tmp_path / "pageviews-20240101-010000.gz"], progress=False)
    plain = tmp_path / "pageviews-20240101-020000.gz"
    plain.write_text("en Dog 1 0\n")
    with pytest.raises(MetadataError, match="gzip"):
        popular_titles([plain], progress=False)
    with pytest.raises(MetadataError, match="empty source") as error:
        popular_titles(pageview_files, codes=["fr"], progress=False)
    assert "de" in str(error.value)  # the codes that were seen


# --- merging ------------------------------------------------------------------------------------------------------


def test_merge_keeps_first_position_and_every_source():
    merged = merge(
        [
            Source("wordnet", ["dog", "cat", "dog", "", "  ", "new york"]),
            Source("wiki_unigram", ["the", "dog", "...", "—", "1"]),
            Source("numbers", ["0", "1", "cat"]),
        ]
    )
    assert merged.entries == ["dog", "cat", "new york", "the", "1", "0"]
    assert merged.sources == [
        ("wordnet", "wiki_unigram"),
        ("wordnet", "numbers"),
        ("wordnet",),
        ("wiki_unigram",),
        ("wiki_unigram", "numbers"),
        ("numbers",),
    ]
    wordnet, unigram, numbers = merged.reports
    assert (wordnet.offered, wordnet.empty, wordnet.repeated, wordnet.kept, wordnet.new) == (6, 2, 1, 3, 3)
    assert (unigram.punctuation, unigram.kept, unigram.new) == (2, 3, 2)
    assert (numbers.kept, numbers.new) == (3, 1)


def test_budget_keeps_a_sources_first_entries():
    merged = merge([Source("wiki_title", ["A", "B", "C", "D"]), Source("extra", ["D", "E"])], {"wiki_title": 2})
    assert merged.entries == ["A", "B", "D", "E"]
    assert merged.sources[2] == ("extra",)  # D was over wiki_title's budget: not labelled with it
    assert merged.reports[0].over_budget == 2
    with pytest.raises(MetadataError, match="not part of this build"):
        merge([Source("wordnet", ["a"])], {"wiki_title": 3})
    assert parse_budgets(["wiki_title=5", "wordnet=0"]) == {"wiki_title": 5, "wordnet": 0}
    for bad in ["wiki_title", "=3", "wiki_title=-1", "wiki_title=x"]:
        with pytest.raises(MetadataError):
            parse_budgets([bad])


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("...", True),
        ("—", True),
        ("$", True),
        ("« »", True),
        ("dog", False),
        ("U.S.", False),
        ("😀", False),
        ("c++", False),
    ],
)
def test_punctuation_only(entry, expected):
    assert is_punctuation_only(entry) is expected


def test_table_shows_entries_per_source_and_overlaps():
    merged = merge([Source("wordnet", ["dog", "cat"]), Source("wiki_unigram", ["dog", "the"])])
    table = render_table(merged.sources, len(merged.entries), merged.reports)
    assert "overlaps" in table
    wordnet_row = next(line for line in table.splitlines() if line.startswith("wordnet"))
    assert wordnet_row.split()[1:4] == ["2", "1", "2"]  # entries, only here, listed first


# --- the whole build ---------------------------------------------------------------------------------------------


def test_build_from_every_source_keeps_provenance(tmp_path, wordnet_dir, counts_dir, pageview_files):
    extra = tmp_path / "extra.txt"
    extra.write_text("hot dog\nmy own entry\n\n!!\nmy own entry\n")
    built = build(
        BuildRequest(
            wordnet=wordnet_dir,
            wikipedia_counts=counts_dir,
            min_unigram=2,
            min_pmi=3.5,
            pageviews=pageview_files,
            min_views=70,
            extra=extra,
            progress=False,
        )
    )
    merged = built.merged
    sources = dict(zip(merged.entries, merged.sources))
    assert merged.entries[: len(WORDNET_NAMES)] == WORDNET_NAMES
    assert sources["dog"] == ("wordnet", "wiki_unigram")
    assert sources["hot dog"] == ("wordnet", "extra")
    assert sources["Zebra crossing"] == ("wiki_bigram",)
    assert sources["New York City"] == ("wiki_title",)
    assert sources["my own entry"] == ("extra",)
    assert merged.entries[-100:] == NUMBERS
    assert [r.name for r in merged.reports] == [
        "wordnet",
        "wiki_unigram",
        "wiki_bigram",
        "wiki_title",
        "extra",
        "numbers",
    ]
    extra_report = merged.reports[4]
    assert (extra_report.offered, extra_report.empty, extra_report.punctuation, extra_report.repeated) == (5, 1, 1, 1)
    assert built.notes["wordnet"]["names_with_a_dot"] == 2
    assert len(set(merged.entries)) == len(merged.entries)


def test_build_needs_a_source_and_refuses_empty_extra(tmp_path):
    with pytest.raises(MetadataError, match="no source"):
        build(BuildRequest())
    empty = tmp_path / "extra.txt"
    empty.write_text("")
    with pytest.raises(MetadataError, match="empty source"):
        build(BuildRequest(extra=empty))


def test_outputs_round_trip_with_the_same_fingerprint(tmp_path, wordnet_dir):
    merged = build(BuildRequest(wordnet=wordnet_dir, progress=False)).merged
    assert files.write_entries(tmp_path / "m.json", merged.entries, merged.sources) == "json"
    assert files.write_entries(tmp_path / "m.parquet", merged.entries, merged.sources, {"k": 1}) == "parquet"
    from_json = load_metadata(tmp_path / "m.json")
    from_parquet = load_metadata(tmp_path / "m.parquet")
    assert from_json.entries == from_parquet.entries == merged.entries
    assert from_json.sources is None and from_parquet.sources == merged.sources
    assert fingerprint(load_entries(tmp_path / "m.parquet")) == fingerprint(merged.entries)
    assert json.loads(pq.read_schema(tmp_path / "m.parquet").metadata[b"metadata.build"]) == {"k": 1}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # temporary names are gone


# --- spill, stats, diff ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_key_counter_spills_and_reduces_exactly(tmp_path):
    counter = KeyCounter(tmp_path, "k", partitions=3, max_rows=4)
    truth: dict[str, int] = {}
    for round_ in range(20):
        keys = [f"w{(round_ * 7 + i) % 13}" for i in range(6)]
        for key in keys:
            truth[key] = truth.get(key, 0) + 1
        import pyarrow as pa

        counter.add(value_counts(pa.array(keys)))
    counter.spill()
    assert counter.spills > 1
    totals = {}
    for part_files in counter.files:
        if part_files:
            for row in reduce_partition(part_files).to_pylist():
                assert row["key"] not in totals
                totals[row["key"]] = row["count"]
    assert totals == truth
    split: dict[str, int] = {}
    every_file = [path for part_files in counter.files for path in part_files]
    for table in reduce_bounded(every_file, max_rows=5, scratch=tmp_path / "scratch"):
        assert table.num_rows <= 13
        for row in table.to_pylist():
            assert row["key"] not in split  # pieces hold disjoint keys
            split[row["key"]] = row["count"]
    assert split == truth


def test_partition_ids_are_stable_and_spread():
    import pyarrow as pa

    keys = pa.array([f"key{i}" for i in range(4000)] + ["", "é", "a much longer key than eight bytes"])
    ids = partition_ids(keys, 8)
    assert ids.min() >= 0 and ids.max() <= 7
    assert min(list(ids).count(p) for p in range(8)) > 350
    assert list(partition_ids(keys.slice(3998, 5), 8)) == list(ids[3998:])
    salted = partition_ids(keys, 8, salt=1)
    assert (salted != ids).mean() > 0.8  # an independent split


@pytest.mark.parametrize(
    "entry, never",
    [
        ("U.S.", True),
        ("st. petersburg", True),
        ("a\tb", True),
        ("dog", False),
        (",", False),
        ("a , b", False),
        ("hot dog", False),
        ("what?", True),
    ],
)
def test_never_matches(entry, never):
    assert never_matches(entry) is never


def test_stats_and_diff(tmp_path):
    a = load_metadata(
        _write_parquet(
            tmp_path / "a.parquet",
            ["dog", "cat", "new york", "U.S."],
            [("wordnet",), ("wordnet",), ("wiki_title",), ("wiki_title",)],
        )
    )
    b = load_metadata(
        _write_parquet(
            tmp_path / "b.parquet",
            ["cat", "dog", "the", "new york"],
            [("wordnet",), ("wordnet", "wiki_unigram"), ("wiki_unigram",), ("wiki_title",)],
        )
    )
    summary = stats(a)
    assert summary["entries"] == 4 and summary["never_match"] == 1 and summary["words"]["2"] == 1
    assert summary["sources"]["wordnet"]["entries"] == 2
    change = diff(a, b)
    assert (change["added"], change["removed"], change["common"], change["moved"]) == (1, 1, 3, 3)
    assert change["added_examples"] == ["the"] and change["removed_examples"] == ["U.S."]
    assert change["added_by_source"] == {"wiki_unigram": 1}
    assert change["removed_by_source"] == {"wiki_title": 1}
    assert change["sources_changed"] == 1
    assert diff(a, a)["identical"] is True


def _write_parquet(path: Path, entries: list[str], sources: list[tuple[str, ...]]) -> Path:
    files.write_entries_parquet(path, entries, sources)
    return path
