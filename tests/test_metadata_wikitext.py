"""The markup stripper on the cases of issue 13, each as a minimal string and on real dump excerpts.

The real excerpts (../shared/data/wiki, see its README for provenance) are read at test time and never
copied into the project; those tests skip when the folder is absent. The reference is mwparserfromhell's
``strip_code`` (tests/wiki_reference.py), a test-only dependency that is too slow for the counting pass.
"""

from __future__ import annotations

import bz2
import re
from collections import Counter
from pathlib import Path

import pytest

from metadata.loading import MetadataError
from metadata.wikipedia import count_dump, frequent_unigrams
from metadata.wikitext import BREAK_MARK, PageStats, article_texts, article_tokens, plain_texts, resolve_quotes, tokens

ROOT = Path(__file__).resolve().parent.parent
WIKI = ROOT.parent / "shared" / "data" / "wiki"
ARTICLES_DUMP = WIKI / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TABLES_DUMP = WIKI / "enwiki-table-markup.xml.bz2"
UTF16_DUMP = WIKI / "bgwiki-latest-pages-articles-shortened.xml.bz2"
EXCERPTS = [ARTICLES_DUMP, TABLES_DUMP]
# Words that only markup produces; none may be counted from the excerpts.
MARKUP_ONLY = [
    "px",
    "colspan",
    "rowspan",
    "lightblue",
    "bgcolor",
    "cff",
    "wikitable",
    "cellpadding",
    "cellspacing",
    "thumbnail",
    "upright=1",
    "valign",
    "nowrap",
]
# Words that are markup in a file link or table but also ordinary English: no more than the reference has.
MARKUP_TOO = ["File", "thumb", "style", "background", "align", "width", "left", "right", "center", "Image"]

needs_excerpts = pytest.mark.skipif(
    not ARTICLES_DUMP.exists() or not TABLES_DUMP.exists(),
    reason="real Wikipedia excerpts (../shared/data/wiki) not present",
)


def words(wikitext: str) -> list[str]:
    """Tokens of one raw wikitext (as a dump escapes it), as the counting pass produces them."""
    escaped = wikitext.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return tokens(plain_texts([escaped])[0].as_py())


def collapsed(found: list[str]) -> list[str]:
    """Consecutive break marks as one (the counts do not depend on how many there are)."""
    return [t for i, t in enumerate(found) if t != BREAK_MARK or i == 0 or found[i - 1] != BREAK_MARK]


# --- each case as a minimal string ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        # 1. a file link whose caption holds a single bracket goes whole
        ("x [[File:A.jpg|thumb|see [above] here]] y", ["x", BREAK_MARK, "y"]),
        ("x [[Image:A.jpg|thumb|a [[link|label]] and [http://e.org site]]] y", ["x", BREAK_MARK, "y"]),
        # 2. quotes before an apostrophe, as MediaWiki reads them; plain bold before an s joins
        ("''Animal Farm'''s", ["Animal", "Farm's"]),
        ("'''Dog'''s are", ["Dogs", "are"]),
        ("L''''amour'''", ["L'amour"]),
        ("by the '[[Epoch (astronomy)|''epoch'' year]]", ["by", "the", BREAK_MARK, "epoch", "year"]),  # a lone '
        ("''[[Animal Farm]]'''s", ["Animal", "Farm's"]),
        # 3. a table inside a template
        ("a {{Infobox|data={|\n|c\n|}|name=leaked}} b", ["a", BREAK_MARK, "b"]),
        # 4. literal braces inside a template or a table
        ("a {{math|set {1, 2}}} b", ["a", BREAK_MARK, "b"]),
        ('a\n{| style="x"\n| {x} || style="background:lightblue;" | 0\n|}\nb', ["a", BREAK_MARK, "b"]),
        # 5. inline tags inside a word; other tags break
        ("CO<sub>2</sub> and km<sup>2</sup> are <span>one</span>word", ["CO2", "and", "km2", "are", "oneword"]),
        ("x<br />y", ["x", BREAK_MARK, "y"]),
        # interlanguage links go; a visible interwiki link keeps its text
        ("a [[simple:Dog]] [[de:Hund]] [[zh-min-nan:Káu]] b", ["a", BREAK_MARK, "b"]),
        ("see [[wikt:dog|dog]] [[:de:Hund|Hund]]", ["see", "dog", "Hund"]),
        # a title with a short word before a colon is an ordinary link, not a language
        ("[[Air: The Story|Air]] x", ["Air", "x"]),
        # templates nested deeper than eight
        ("a " + "{{t|" * 12 + "deep" + "}}" * 12 + " b", ["a", BREAK_MARK, "b"]),
        # entities decoded
        ("Pok&eacute;mon &#233;t&#xE9; rock&#39;n", ["Pokémon", "été", "rock'n"]),
        ("5&nbsp;km", ["5", "km"]),
        # a removed template leaves a break, not a bigram of its neighbours
        ("in {{convert|5|km}} steps", ["in", BREAK_MARK, "steps"]),
        # a comment shows nothing: the words around it join
        ("to<!-- c -->gether", ["together"]),
    ],
)
def test_each_case_as_a_minimal_string(wikitext, expected):
    assert collapsed(words(wikitext)) == expected


@pytest.mark.parametrize(
    "line, shown",
    [
        ("''Animal Farm'''s", "Animal Farm's"),  # odd italics, odd bold: the bold run after a word
        ("'''a''' and '''b'''", "a and b"),  # even: nothing left
        ("x ''a'' '''s", "x a s"),  # even italics: the bold run stays bold
        ("x ''a '''s", "x a 's"),  # the only bold run, after a space
        ("''ab'''c d'''e f'''g", "abc d'e fg"),  # after a one-letter word, rather than after a longer one
        ("''ab'''c d", "ab'c d"),  # after a longer word
        ("''''x'''", "'x"),  # four quotes: an apostrophe then bold
        ("'''''''x'''''", "''x"),  # seven: two apostrophes then bold italic
    ],
)
def test_quote_runs_follow_mediawiki(line, shown):
    assert resolve_quotes(line) == shown
    assert resolve_quotes(line + "\n" + line) == shown + "\n" + shown  # line by line


def test_pages_without_ns_are_sorted_by_their_title():
    def page(title: str) -> str:
        return f"<page><title>{title}</title><revision><text>words</text></revision></page>"

    stats = PageStats()
    texts = article_texts("".join(page(t) for t in ("Dog", "Talk:Dog", "User talk:X", "Star Wars: A", "WP:X")), stats)
    assert len(texts) == 2 and (stats.articles, stats.other_namespace) == (2, 3)


def test_disambiguation_pages_are_counted_as_articles_and_reported():
    stats = PageStats()
    xml = "".join(
        f"<page><title>T{i}</title><ns>0</ns><revision><text>{text}</text></revision></page>"
        for i, text in enumerate(["A may be: x {{disambiguation}}", "{{Dab|x}}", "{{Hndis}}", "plain", "{{database}}"])
    )
    article_tokens(xml, stats)
    assert stats.articles == 5 and stats.disambiguation == 3


def test_utf16_dump_is_refused_naming_its_encoding(tmp_path):
    dump = tmp_path / "d.xml.bz2"
    dump.write_bytes(bz2.compress("<mediawiki><page><title>A</title></page></mediawiki>".encode("utf-16")))
    with pytest.raises(MetadataError) as error:
        count_dump(dump, tmp_path / "c", workers=1, progress=False)
    assert "UTF-16" in str(error.value) and "\n" not in str(error.value)
    dump.write_bytes(bz2.compress("<mediawiki><page/></mediawiki>".encode("utf-16-be")))  # no byte-order mark
    with pytest.raises(MetadataError, match="UTF-16BE"):
        count_dump(dump, tmp_path / "c", workers=1, progress=False)


# --- the same cases on the real excerpts ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def excerpts() -> dict[str, list[tuple[str, str, list[str], list[str]]]]:
    """Per excerpt: (title, wikitext, our tokens, the reference's tokens) of every article."""
    reference = pytest.importorskip("wiki_reference", reason="mwparserfromhell not installed")
    if not ARTICLES_DUMP.exists() or not TABLES_DUMP.exists():
        pytest.skip("real Wikipedia excerpts (../shared/data/wiki) not present")
    found = {}
    for dump in EXCERPTS:
        pages = reference.articles(dump)
        found[dump.name] = [(title, text, words(text), tokens(reference.reference_text(text))) for title, text in pages]
    return found


def agreement(ours: list[str], theirs: list[str]) -> tuple[int, int]:
    """(tokens both have, the larger token count): tokens compared as multisets, breaks left out."""
    a = Counter(t for t in ours if t != BREAK_MARK)
    b = Counter(t for t in theirs if t != BREAK_MARK)
    return sum((a & b).values()), max(sum(a.values()), sum(b.values()))


def bigrams(found: list[str]) -> set[str]:
    return {f"{a} {b}" for a, b in zip(found, found[1:]) if BREAK_MARK not in (a, b)}


@needs_excerpts
@pytest.mark.slow  # the excerpts fixture runs mwparserfromhell over every article: ~10 s
def test_tokens_agree_with_mwparserfromhell_on_the_excerpts(excerpts):
    for name, articles in excerpts.items():
        agreed = total = 0
        shares = []
        for title, _, ours, theirs in articles:
            same, size = agreement(ours, theirs)
            agreed += same
            total += size
            shares.append((same / size if size else 1.0, title, size - same))
        lowest = ", ".join(f"{title} {share:.2%} ({missing} tokens)" for share, title, missing in sorted(shares)[:5])
        print(
            f"\n{name}: {len(articles)} articles, {agreed:,} of {total:,} tokens agree ({agreed / total:.4%}); "
            f"lowest: {lowest}"
        )
        assert agreed >= 0.999 * total, (name, lowest)


@needs_excerpts
@pytest.mark.slow
def test_no_markup_word_in_a_unigram_list_of_the_excerpts(excerpts, tmp_path):
    for dump in EXCERPTS:
        count_dump(dump, tmp_path / dump.name, workers=1, progress=False)
        listed = frequent_unigrams(tmp_path / dump.name, 1)  # every counted token
        assert listed and not set(listed) & set(MARKUP_ONLY), dump.name
        # the issue's threshold: File, thumb, lightblue and cff were entries of the 106 articles
        assert not {"File", "thumb", "lightblue", "cff"} & set(frequent_unigrams(tmp_path / dump.name, 5))
        ours = Counter(t for _, _, found, _ in excerpts[dump.name] for t in found)
        theirs = Counter(t for _, _, _, found in excerpts[dump.name] for t in found)
        for word in MARKUP_TOO:
            assert ours[word] <= theirs[word], (dump.name, word, ours[word], theirs[word])


CASES = {  # construct in the raw wikitext -> what our tokens of its articles must (not) hold
    "file link with a single [ in its caption": r"\[\[(?:File|Image):(?:[^\[\]]|\[\[[^\]]*\]\])*(?<!\[)\[(?!\[)",
    "quotes between word characters": r"\w'''\w",
    "literal braces in a template": r"\{\{[^{}]*(?<!\{)\{(?![{|])[^{}]*\}(?!\})",
    "inline sub or sup tag after a word": r"\w<(?:sub|sup)>",
    "interlanguage link": r"\[\[(?:[a-z]{2,3}(?:-[a-z]+)*|simple):",
    "an entity other than &nbsp;": r"&(?!nbsp;)(?:[A-Za-z]+|#\d+);",
    "a table": r"(?m)^\{\|",
}


@needs_excerpts
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_each_case_on_the_real_excerpts(excerpts, case):
    holding = [
        (title, ours, theirs)
        for articles in excerpts.values()
        for title, text, ours, theirs in articles
        if re.search(CASES[case], text)
    ]
    assert holding, f"no article of the excerpts has a {case}"
    agreed = sum(agreement(ours, theirs)[0] for _, ours, theirs in holding)
    total = sum(agreement(ours, theirs)[1] for _, ours, theirs in holding)
    assert agreed >= 0.999 * total, case


@needs_excerpts
@pytest.mark.slow
def test_the_issues_examples_on_the_real_excerpt(excerpts):
    ours = Counter(t for _, _, found, _ in excerpts[ARTICLES_DUMP.name] for t in found)
    for wrong, right in [("Farms", "Farm's"), ("Iliads", "Iliad's"), ("Proposals", "Proposal's")]:
        assert ours[wrong] == 0 and ours[right] >= 1, (wrong, right)
    assert ours["CO2"] >= 1 and ours["H2O"] >= 1 and ours["lightblue"] == 0
    every = [found for _, _, found, _ in excerpts[ARTICLES_DUMP.name]]
    assert not any("CO 2" in bigrams(found) for found in every)


@needs_excerpts
@pytest.mark.slow
def test_no_bigram_that_the_page_does_not_show(excerpts):
    """Our bigrams are (nearly all) bigrams of the reference, where every template is a line break: a
    removed template no longer joins its neighbours. The few left are the reference's misreadings
    (metadata/README.md)."""
    for name, articles in excerpts.items():
        ours = 0
        unseen = []
        for title, _, found, reference in articles:
            mine = bigrams(found)
            ours += len(mine)
            unseen += [(title, b) for b in sorted(mine - bigrams(reference))]
        assert len(unseen) <= max(10, ours // 10_000), (name, unseen[:20])


@needs_excerpts
def test_pages_without_ns_on_the_real_excerpt():
    xml = bz2.decompress(ARTICLES_DUMP.read_bytes()).decode()
    with_ns, without_ns = PageStats(), PageStats()
    texts = article_texts(xml, with_ns)
    assert texts == article_texts(re.sub(r"\s*<ns>[^<]*</ns>", "", xml), without_ns)
    assert with_ns.as_dict() == without_ns.as_dict() and with_ns.other_namespace >= 1
    counted = PageStats()
    article_tokens(xml, counted)
    assert counted.disambiguation == 8  # as listed in ../shared/data/wiki/README.md


@pytest.mark.skipif(not UTF16_DUMP.exists(), reason="real Wikipedia excerpts (../shared/data/wiki) not present")
def test_the_real_utf16_file_is_refused_naming_its_encoding(tmp_path):
    with pytest.raises(MetadataError) as error:
        count_dump(UTF16_DUMP, tmp_path / "c", workers=1, progress=False)
    assert "UTF-16" in str(error.value) and "\n" not in str(error.value)
