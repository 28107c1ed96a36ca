"""A slow reference for metadata.wikitext: mwparserfromhell's ``strip_code`` (a test-only dependency).

Pages are read with the standard library's XML parser, not with our page scanner. mwparserfromhell
parses the markup; before ``strip_code`` the nodes that our documented policy drops (and that
``strip_code`` would keep) are taken out of its tree, so the comparison measures parsing (nesting,
quotes, links, tags, entities), not policy:
- comments, then references (``<ref>...</ref>``, ``<ref/>``), cut out by a scan first, as MediaWiki's
  preprocessor takes extension tags out before parsing (mwparserfromhell can read an unclosed ``''``
  inside a reference as italics running on past it);
- tables, as MediaWiki finds them: a line starting with ``{|`` up to its matching ``|}`` line, counted by
  a line scanner here (mwparserfromhell's table parser can run past the end of a table);
- file, category and interlanguage links (``strip_code`` keeps a file link's caption and options);
- bare URLs (``http://...`` outside brackets) and behaviour switches (``__TOC__``), which MediaWiki does
  not show as words;
- ``<ref>`` and the tags whose content we drop (math, gallery, code, pre...);
- every template and every block tag (``<br>``, ``<div>``...) becomes a line break, which is what stands
  between the words around it on the rendered page.
"""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Tag, Template, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

DROPPED_TAGS = {
    "ref",
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
    "references",
}
INLINE_TAGS = {
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
}
HIDDEN_PREFIX = re.compile(
    r"\s*(?:[Ff][Ii][Ll][Ee]|[Ii][Mm][Aa][Gg][Ee]|[Mm][Ee][Dd][Ii][Aa]|[Cc]ategory"
    r"|[a-z]{2,3}(?:-[a-z]+)*|simple)\s*:"
)
COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
SWITCH = re.compile(r"__[A-Z]+__")
REF_OPEN = re.compile(r"<ref(?:\s[^>]*)?>", re.IGNORECASE)
REF_CLOSE = re.compile(r"</ref\s*>", re.IGNORECASE)
SHOWN_PREFIX = re.compile(r"\s*(?:doi|hdl|mw|rfc|voy|wmf)\s*:")  # interwiki, not a language
TABLE_START = re.compile(r"^[ \t:]*\{\|")
TABLE_END = re.compile(r"^[ \t]*\|\}")


def articles(dump: Path) -> list[tuple[str, str]]:
    """(title, wikitext) of the namespace-0 pages that are not redirects, in file order."""
    with bz2.open(dump, "rb") as handle:
        root = ElementTree.parse(handle).getroot()
    space = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    found = []
    for page in root.iter(f"{space}page"):
        if page.findtext(f"{space}ns") != "0" or page.find(f"{space}redirect") is not None:
            continue
        text = page.find(f"{space}revision/{space}text")
        found.append((page.findtext(f"{space}title") or "", (text.text or "") if text is not None else ""))
    return found


def without_tables(text: str) -> str:
    """Every table (nested ones too) replaced by one line break, found line by line."""
    kept: list[str] = []
    depth = 0
    for line in text.split("\n"):
        if TABLE_START.match(line):
            depth += 1
        elif depth and TABLE_END.match(line):
            depth -= 1
            if depth == 0:
                kept.append("")
            continue
        if depth == 0:
            kept.append(line)
    return "\n".join(kept)


def without_references(text: str) -> str:
    """Every ``<ref ...>...</ref>`` and ``<ref .../>`` replaced by a space (a scan for the tags, no nesting)."""
    kept: list[str] = []
    position = 0
    while (found := REF_OPEN.search(text, position)) is not None:
        kept.append(text[position : found.start()] + " ")
        if found.group(0).endswith("/>"):
            position = found.end()
            continue
        close = REF_CLOSE.search(text, found.end())
        position = close.end() if close else len(text)
    kept.append(text[position:])
    return "".join(kept)


def _clean(code: Wikicode) -> None:
    """Our policy applied to the tree. Each level's node list is rebuilt in one pass: Wikicode.replace and
    remove search the whole tree for every node they are given, which made this reference quadratic."""
    kept: list = []
    for node in code.nodes:
        if isinstance(node, Template):
            kept.append(Text("\n"))
        elif isinstance(node, Tag) and str(node.tag).strip().lower() in DROPPED_TAGS:
            continue
        elif isinstance(node, Tag) and node.wiki_markup is None and str(node.tag).strip().lower() not in INLINE_TAGS:
            if node.contents is not None:
                _clean(node.contents)
            kept.append(Text("\n" + (node.contents.strip_code() if node.contents else "") + "\n"))
        elif (
            isinstance(node, Wikilink)
            and HIDDEN_PREFIX.match(str(node.title))
            and not SHOWN_PREFIX.match(str(node.title))
        ):
            continue
        elif isinstance(node, ExternalLink) and not node.brackets:
            kept.append(Text("\n"))
        else:
            if isinstance(node, Text) and "__" in node.value:
                node.value = SWITCH.sub(" ", node.value)
            for part in ("contents", "text", "title"):
                inner = getattr(node, part, None)
                if isinstance(inner, Wikicode):
                    _clean(inner)
            kept.append(node)
    code.nodes = kept


def reference_text(wikitext: str) -> str:
    """The readable text of one article by mwparserfromhell (see the module docstring)."""
    code = mwparserfromhell.parse(without_tables(without_references(COMMENT.sub("", wikitext))))
    _clean(code)
    return code.strip_code(normalize=True, collapse=False)
