"""From pages-articles XML to the tokens of article text (pure functions, no I/O).

Pages: ``<page>...</page>`` elements; only articles are used (namespace 0, not redirects). A page without
``<ns>`` (some exports) is an article unless its title starts with a namespace name (``Talk:``). A page
without its end tag, or without a complete ``<text>`` element, is counted as malformed, never silently lost.
Disambiguation pages are articles (namespace 0) and are counted like any other; how many there were is
reported.

Markup, as MediaWiki shows the page: comments vanish (the words around them join); references become a
space; templates, tables (nested in any order and to any depth), file/category/interlanguage links, bare
URLs and non-inline tags are removed and leave a break; inline tags (``<sub>``, ``<span>``...) vanish
inside a word; internal and external links keep their label; bold and italic quotes go, keeping the
apostrophe MediaWiki keeps (``''Animal Farm'''s`` is "Animal Farm's"); HTML entities are decoded
(``&nbsp;`` is a space). Almost all of it is RE2 over Arrow arrays; only texts holding a rare construct (a
quote run between letters, an entity other than ``&nbsp;``) take a Python step.

Tokens: runs of letters, digits, combining marks and underscores, joined inside a word by one hyphen or
apostrophe (``dog-friendly``, ``children's``), case kept. Any other character (punctuation, brackets,
quotes, a line end, a hyphen or apostrophe that does not join two word characters) is a *break*: two
tokens form a bigram only when nothing but spaces or tabs separates them. So a bigram ``w1 w2`` is a
string that MetaCLIP's matching can find in a caption, and ``Paris, France`` yields no ``Paris France``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from metadata.namespaces import in_other_namespace

BREAK_MARK = "\x00"  # stands between tokens that must not form a bigram
_BREAK = " \x00 "

WORD = r"\pL\pN\pM_"
JOINERS = "'\u2019-"

# (pattern, replacement) applied in order by RE2.
XML_ENTITIES = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'"), ("&amp;", "&")]
MARKUP = [
    (r"(?s)<!--.*?(?:-->|$)", ""),  # MediaWiki shows nothing, so the words around a comment join
    (r"__[A-Z]+__", ""),  # behaviour switches such as __NOTOC__ (a pass of their own keeps both fast)
    (r"(?is)<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", " "),
    (
        "(?is)"
        + "|".join(
            rf"<{tag}\b[^>]*>.*?</{tag}\s*>"
            for tag in (
                "math",
                "chem",
                "gallery",
                "timeline",
                "score",
                "syntaxhighlight",
                "source",
                "pre",
                "code",
                "imagemap",
                "graph",
                "mapframe",
            )
        ),
        _BREAK,
    ),
]
# Innermost templates ({{...}}, also {{{parameters}}}) and tables ({|...|}) together, repeated until none
# is left, so a table inside a template goes too. A brace pair inside ({1, 2}) is the template's or
# table's own text. A removed template or table leaves a break: its rendering (or nothing) stands between
# the words around it, which must not become a bigram.
NESTED = r"\{\{(?:[^{}]|\{[^{}]*\})*\}\}|(?s:\{\|(?:[^{]|\{[^{}]*\})*?\|\})"
# A link's label is fenced by LINK_EDGE until the quotes are read, as MediaWiki reads quotes with links still
# in place: the apostrophe in '[[Epoch|''epoch'']] stays an apostrophe, not part of a run of three.
# It is no character of XML text, so no dump holds it.
LINK_EDGE = "\x01"
_BRACKETED = r"(?:[^\[\]]|\[\[[^\[\]]*\]\]|\[[^\[\]]*\])*"  # text, [[links]] and [single] brackets
# Tags that sit inside a word when rendered (CO<sub>2</sub> is CO2); any other tag is a break.
INLINE_TAGS = (
    "sub",
    "sup",
    "small",
    "big",
    "b",
    "i",
    "u",
    "s",
    "strike",
    "del",
    "ins",
    "em",
    "strong",
    "span",
    "font",
    "abbr",
    "tt",
    "var",
    "kbd",
    "samp",
    "mark",
    "nowiki",
    "q",
    "cite",
    "dfn",
    "bdi",
    "bdo",
    "ruby",
    "rb",
    "rt",
    "rp",
    "wbr",
    "time",
    "data",
    "noinclude",
    "onlyinclude",
)
LINKS = [
    # interwiki prefixes of two or three letters that are not languages: shown, like [[:de:Hund]]
    (r"\[\[\s*(doi|hdl|mw|rfc|voy|wmf)\s*:", "[[:\\1:"),
    # file, category and interlanguage links ([[de:Hund]], [[simple:Dog]]; language codes are lower case)
    (r"\[\[\s*(?:(?i:File|Image|Media|Category)|[a-z]{2,3}(?:-[a-z]+)*|simple)\s*:" + _BRACKETED + r"\]\]", _BREAK),
    (r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]", LINK_EDGE + r"\1" + LINK_EDGE),
    (r"\[\[([^\[\]|]*)\]\]", LINK_EDGE + r"\1" + LINK_EDGE),
    (r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]", r" \1 "),
    (r"(?:https?|ftp)://\S+", _BREAK),
]
TAGS = [  # after the quotes, which MediaWiki reads with the tags still in place: ''x''<sub>''i''</sub>
    ("(?i)</?(?:" + "|".join(INLINE_TAGS) + r")\b[^<>]*>", ""),
    (r"</?[A-Za-z][^<>]*>", _BREAK),
]
# A run of three or more quotes between word characters may leave an apostrophe (''Farm'''s). MediaWiki
# decides per line, so only the texts holding such a run go through ``resolve_quotes``; the others just
# lose every run of two or more quotes.
QUOTE_CANDIDATE = rf"[{WORD}{LINK_EDGE}]'{{3,}}[{WORD}{LINK_EDGE}]"
QUOTES = r"'{2,}|" + LINK_EDGE  # the quote runs left, and the link fences with them
ENTITY_CANDIDATE = r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);"  # left for html.unescape
BREAKS = [
    (rf"[^{WORD} \t\xa0{JOINERS}]+", _BREAK),  # punctuation, line ends, symbols
    (rf"[{JOINERS}]{{2,}}", _BREAK),  # two joiners in a row never join
    (rf"(^|[^{WORD}])[{JOINERS}]", rf"\1{_BREAK}"),  # a joiner not preceded by a word character
    (rf"[{JOINERS}]([^{WORD}]|$)", rf"{_BREAK}\1"),  # a joiner not followed by one
]
DISAMBIGUATION = r"\{\{\s*(?:[Dd]isambig|[Dd]ab\s*[|}]|[Hh]ndis|[Gg]eodis)"  # templates marking one


@dataclass
class PageStats:
    """What the page scan saw; every page is in exactly one of articles, redirects, other_namespace
    and malformed (plus stray end tags, which belong to no page)."""

    pages: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespace: int = 0
    malformed: int = 0
    disambiguation: int = 0  # articles among ``articles`` that are disambiguation pages
    malformed_examples: list[str] = field(default_factory=list)

    def add(self, other: PageStats) -> None:
        self.pages += other.pages
        self.articles += other.articles
        self.redirects += other.redirects
        self.other_namespace += other.other_namespace
        self.malformed += other.malformed
        self.disambiguation += other.disambiguation
        self.malformed_examples = (self.malformed_examples + other.malformed_examples)[:5]

    def note_malformed(self, what: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < 5:
            self.malformed_examples.append(what)

    def as_dict(self) -> dict:
        return {
            "pages": self.pages,
            "articles": self.articles,
            "redirects": self.redirects,
            "other_namespace": self.other_namespace,
            "malformed": self.malformed,
            "disambiguation": self.disambiguation,
            "malformed_examples": self.malformed_examples,
        }


def _title(body: str) -> str:
    start = body.find("<title>")
    stop = body.find("</title>", start)
    return html.unescape(body[start + 7 : stop]) if 0 <= start < stop else "(no title)"


def _namespace(body: str) -> str | None:
    start = body.find("<ns>")
    stop = body.find("</ns>", start)
    return body[start + 4 : stop].strip() if 0 <= start < stop else None


def _text(body: str) -> str | None:
    """The (escaped) content of the page's <text> element; None when it is missing or unterminated."""
    start = body.find("<text")
    if start < 0:
        return None
    close = body.find(">", start)
    if close < 0:
        return None
    if body[close - 1] == "/":
        return ""
    stop = body.find("</text>", close)
    return body[close + 1 : stop] if stop >= 0 else None


def article_texts(xml: str, stats: PageStats) -> list[str]:
    """The wikitext of each article among the complete pages in ``xml`` (escaped as in the dump).

    ``xml`` may hold text around the pages (the siteinfo header, the closing tag); a ``<page>`` that
    never ends and an end tag that never began are counted as malformed."""
    texts: list[str] = []
    position = 0
    while True:
        start = xml.find("<page>", position)
        stop = xml.find("</page>", position)
        if stop >= 0 and (start < 0 or stop < start):
            stats.note_malformed("a </page> without its <page>")
            position = stop + 7
            continue
        if start < 0:
            break
        if stop < 0:
            stats.pages += 1
            stats.note_malformed(f"page {_title(xml[start : start + 4096])!r} has no </page>")
            position = start + 6
            continue
        body = xml[start + 6 : stop]
        position = stop + 7
        nested = body.rfind("<page>")
        if nested >= 0:  # pages that lost their end tag, followed by a complete one
            for broken in body[:nested].split("<page>"):
                stats.pages += 1
                stats.note_malformed(f"page {_title(broken)!r} has no </page>")
            body = body[nested + 6 :]
        stats.pages += 1
        text = _text(body)
        if text is None:
            stats.note_malformed(f"page {_title(body)!r} has no complete <text> element")
            continue
        namespace = _namespace(body)
        if namespace != "0" if namespace is not None else in_other_namespace(_title(body)):
            stats.other_namespace += 1
            continue
        if "<redirect" in body:
            stats.redirects += 1
            continue
        stats.articles += 1
        texts.append(text)
    return texts


def _replace(array: pa.Array, rules: list[tuple[str, str]]) -> pa.Array:
    for pattern, replacement in rules:
        array = pc.replace_substring_regex(array, pattern, replacement)
    return array


def _in_python(array: pa.Array, candidate: str, fix: Callable[[str], str]) -> pa.Array:
    """``fix`` applied to the texts matching the RE2 pattern ``candidate`` (few), the others left as they are."""
    hits = pc.fill_null(pc.match_substring_regex(array, candidate), False)
    if not pc.any(hits).as_py():
        return array
    fixed = pa.array([fix(text) for text in array.filter(hits).to_pylist()], array.type)
    return pc.replace_with_mask(array, hits, fixed)


_RUN = re.compile(r"('{2,})")


def _quotes_of_line(line: str) -> str:
    """One line without its bold/italic quote runs, keeping the apostrophes MediaWiki shows.

    MediaWiki's rule: four quotes are an apostrophe then bold; more than five, apostrophes then bold
    italic. If the line then has an odd number of italic runs and an odd number of bold runs, one bold run
    is read as an apostrophe then italics: the first one after a one-letter word, else the first after a
    longer word, else the first after a space."""
    parts = _RUN.split(line)
    texts, runs = parts[0::2], [len(run) for run in parts[1::2]]
    for i, size in enumerate(runs):
        if size == 4 or size > 5:
            kept = 3 if size == 4 else 5
            texts[i] += "'" * (size - kept)
            runs[i] = kept
    italics = sum(size in (2, 5) for size in runs)
    bolds = sum(size in (3, 5) for size in runs)
    if italics % 2 and bolds % 2:
        single = multi = space = None
        for i, size in enumerate(runs):
            if size != 3:
                continue
            before = texts[i]
            if before[-1:] == " ":
                space = i if space is None else space
            elif before[-2:-1] == " ":
                single = i
                break
            elif multi is None:
                multi = i
        chosen = next((i for i in (single, multi, space) if i is not None), None)
        if chosen is not None:
            texts[chosen] += "'"
    return "".join(texts)


def resolve_quotes(text: str) -> str:
    """``text`` without bold/italic quotes, line by line as MediaWiki renders them."""
    return "\n".join(_quotes_of_line(line) if "''" in line else line for line in text.split("\n"))


def plain_texts(wikitexts: list[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Readable text of each article's (XML-escaped) wikitext, still with its punctuation."""
    if isinstance(wikitexts, pa.ChunkedArray):
        array = wikitexts.combine_chunks()
    else:
        array = wikitexts if isinstance(wikitexts, pa.Array) else pa.array(wikitexts, pa.string())
    for entity, character in XML_ENTITIES:
        array = pc.replace_substring(array, entity, character)
    array = _replace(array, MARKUP)
    size = pc.sum(pc.binary_length(array)).as_py()
    while True:  # each pass removes the innermost ones; a pass that removes nothing leaves the size as it was
        array = pc.replace_substring_regex(array, NESTED, _BREAK)
        size, before = pc.sum(pc.binary_length(array)).as_py(), size
        if size == before:
            break
    array = _replace(array, LINKS)
    array = _in_python(array, QUOTE_CANDIDATE, resolve_quotes)
    array = pc.replace_substring_regex(array, QUOTES, "")
    array = _replace(array, TAGS)
    array = pc.replace_substring(array, "&nbsp;", " ")
    return _in_python(array, ENTITY_CANDIDATE, html.unescape)


def tokenize(texts: pa.Array) -> pa.Array:
    """All tokens of the plain texts in order, with ``BREAK_MARK`` where adjacency is broken (between
    texts too)."""
    if len(texts) == 0:
        return pa.array([], pa.string())
    marked = _replace(texts, BREAKS)
    mark = pa.scalar(BREAK_MARK, marked.type)
    marked = pc.binary_join_element_wise(marked, mark, pa.scalar(" ", marked.type))  # a break after each text
    tokens = pc.list_flatten(pc.utf8_split_whitespace(marked))
    return tokens.filter(pc.not_equal(tokens, ""))


def tokens(text: str) -> list[str]:
    """Tokens of one plain text (``tokenize`` for a single string; handy in tests and notebooks)."""
    found = tokenize(pa.array([text], pa.string())).to_pylist()
    return found[:-1] if found and found[-1] == BREAK_MARK else found


def article_tokens(xml: str, stats: PageStats) -> pa.Array:
    """Tokens of every article in ``xml``; articles are separated by a break. Counts the disambiguation
    pages among them into ``stats`` (by RE2 over the texts, which is faster than a search per page)."""
    texts = pa.array(article_texts(xml, stats), pa.string())
    stats.disambiguation += int(pc.sum(pc.match_substring_regex(texts, DISAMBIGUATION)).as_py() or 0)
    return tokenize(plain_texts(texts))
