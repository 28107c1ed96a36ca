"""Wikipedia's namespace names, shared by the dump reader (pages without ``<ns>``) and the pageview reader.

Only English and canonical names are known (plus the ``WP:``/``WT:`` shortcuts seen in pageview titles):
enough for English Wikipedia, which is what MetaCLIP counts; another language's local names (``Diskussion:``)
are not recognised."""

from __future__ import annotations

import re

NAMESPACES = [
    "Media",
    "Special",
    "Talk",
    "User",
    "User talk",
    "Wikipedia",
    "Wikipedia talk",
    "Project",
    "Project talk",
    "File",
    "File talk",
    "Image",
    "Image talk",
    "MediaWiki",
    "MediaWiki talk",
    "Template",
    "Template talk",
    "Help",
    "Help talk",
    "Category",
    "Category talk",
    "Portal",
    "Portal talk",
    "Draft",
    "Draft talk",
    "TimedText",
    "TimedText talk",
    "Module",
    "Module talk",
    "Book",
    "Book talk",
    "Education Program",
    "Gadget",
    "Gadget talk",
    "Gadget definition",
    "Topic",
    "WP",
    "WT",
]
# RE2 (Arrow) and Python both read this: a known name, in any case, spaces or underscores, then a colon
NAMESPACE_PATTERN = "(?i)^(?:" + "|".join(re.escape(n).replace(r"\ ", "[ _]") for n in NAMESPACES) + ")[ _]*:"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def in_other_namespace(title: str) -> bool:
    """True when ``title`` starts with a namespace name and a colon (``Talk:Dog``, ``user_talk:X``)."""
    return _NAMESPACE.match(title) is not None
