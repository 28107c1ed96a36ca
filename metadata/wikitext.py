"""From pages-articles XML to the tokens of article text (pure functions, no I/O).

Pages: ``<page>...</page>`` elements; only articles are used (namespace 0, not redirects). A page
without its end tag, or without a complete ``<text>`` element, is counted as malformed, never silently
lost.

Markup: comments, references, templates, tables, file/category/interlanguage links, external-link
targets and HTML tags are removed; internal links keep their label; bold and italic quotes go; the
entity ``&nbsp;`` is a space and any other entity a break. The result is close to what WikiExtractor
gives, computed by RE2 over Arrow arrays (no Python loop per token).

Tokens: runs of letters, digits, combining marks and underscores, joined inside a word by one hyphen or
apostrophe (``dog-friendly``, ``children's``), case kept. Any other character (punctuation, brackets,
quotes, a line end, a hyphen or apostrophe that does not join two word characters) is a *break*: two
tokens form a bigram only when nothing but spaces or tabs separates them. So a bigram ``w1 w2`` is a
string that MetaCLIP's matching can find in a caption, and ``Paris, France`` yields no ``Paris France``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

BREAK_MARK = "\x00"  # stands between tokens that must not form a bigram
_BREAK = " \x00 "

WORD = r"\pL\pN\pM_"
JOINERS = "'\u2019-"

# (pattern, replacement) applied in order by RE2; templates and tables are repeated while they nest.
XML_ENTITIES = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'"), ("&amp;", "&")]
MARKUP = [
    (r"(?s)<!--.*?(?:-->|$)", " "),
    (r"(?is)<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", " "),
    ("(?is)" + "|".join(rf"<{tag}\b[^>]*>.*?</{tag}\s*>" for tag in (
        "math", "chem", "gallery", "timeline", "score", "syntaxhighlight", "source", "pre", "code",
        "imagemap", "graph", "mapframe")), " "),
]
NESTED = [r"\{\{[^{}]*\}\}", r"(?s)\{\|[^{}]*?\|\}"]  # templates, tables
LINKS = [
    (r"(?i)\[\[\s*(?:File|Image|Media|Category|[a-z]{2,3}(?:-[a-z]+)*)\s*:"
     r"[^\[\]]*(?:\[\[[^\[\]]*\]\][^\[\]]*)*\]\]", " "),
    (r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]", r"\1"),
    (r"\[\[([^\[\]|]*)\]\]", r"\1"),
    (r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]", r" \1 "),
    (r"(?:https?|ftp)://\S+", _BREAK),
    (r"</?[A-Za-z][^<>]*>", " "),
    (r"'{2,}", ""),
    (r"&nbsp;", " "),
    (r"&#?[A-Za-z0-9]+;", _BREAK),
]
BREAKS = [
    (rf"[^{WORD} \t\xa0{JOINERS}]+", _BREAK),  # punctuation, line ends, symbols
    (rf"[{JOINERS}]{{2,}}", _BREAK),  # two joiners in a row never join
    (rf"(^|[^{WORD}])[{JOINERS}]", rf"\1{_BREAK}"),  # a joiner not preceded by a word character
    (rf"[{JOINERS}]([^{WORD}]|$)", rf"{_BREAK}\1"),  # a joiner not followed by one
]


@dataclass
class PageStats:
    """What the page scan saw; every page is in exactly one of articles, redirects, other_namespace
    and malformed (plus stray end tags, which belong to no page)."""

    pages: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespace: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)

    def add(self, other: PageStats) -> None:
        self.pages += other.pages
        self.articles += other.articles
        self.redirects += other.redirects
        self.other_namespace += other.other_namespace
        self.malformed += other.malformed
        self.malformed_examples = (self.malformed_examples + other.malformed_examples)[:5]

    def note_malformed(self, what: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < 5:
            self.malformed_examples.append(what)

    def as_dict(self) -> dict:
        return {"pages": self.pages, "articles": self.articles, "redirects": self.redirects,
                "other_namespace": self.other_namespace, "malformed": self.malformed,
                "malformed_examples": self.malformed_examples}


def _title(body: str) -> str:
    start = body.find("<title>")
    stop = body.find("</title>", start)
    return html.unescape(body[start + 7:stop]) if 0 <= start < stop else "(no title)"


def _namespace(body: str) -> str | None:
    start = body.find("<ns>")
    stop = body.find("</ns>", start)
    return body[start + 4:stop].strip() if 0 <= start < stop else None


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
    return body[close + 1:stop] if stop >= 0 else None


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
            stats.note_malformed(f"page {_title(xml[start:start + 4096])!r} has no </page>")
            position = start + 6
            continue
        body = xml[start + 6:stop]
        position = stop + 7
        nested = body.rfind("<page>")
        if nested >= 0:  # pages that lost their end tag, followed by a complete one
            for broken in body[:nested].split("<page>"):
                stats.pages += 1
                stats.note_malformed(f"page {_title(broken)!r} has no </page>")
            body = body[nested + 6:]
        stats.pages += 1
        text = _text(body)
        if text is None:
            stats.note_malformed(f"page {_title(body)!r} has no complete <text> element")
            continue
        namespace = _namespace(body)
        if namespace is not None and namespace != "0":
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


def plain_texts(wikitexts: list[str] | pa.Array) -> pa.Array:
    """Readable text of each article's (XML-escaped) wikitext, still with its punctuation."""
    array = wikitexts if isinstance(wikitexts, (pa.Array, pa.ChunkedArray)) else pa.array(wikitexts, pa.string())
    for entity, character in XML_ENTITIES:
        array = pc.replace_substring(array, entity, character)
    array = _replace(array, MARKUP)
    for pattern in NESTED:
        for _ in range(8):  # innermost first, until none is left
            if not pc.any(pc.match_substring_regex(array, pattern)).as_py():
                break
            array = pc.replace_substring_regex(array, pattern, " ")
    return _replace(array, LINKS)


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
    """Tokens of every article in ``xml``; articles are separated by a break."""
    return tokenize(plain_texts(article_texts(xml, stats)))
