"""Text shown through dashboard/messages.py reads as itself once Streamlit renders it as Markdown:
checked with a CommonMark renderer on generated text (paths, globs, code, emphasis, links, HTML)."""

from __future__ import annotations

import ast
import html
from pathlib import Path

from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from dashboard.messages import plain

RENDER = MarkdownIt("commonmark")
# Printable ASCII (every Markdown sign among it) and some non-ASCII; a message starts and ends with a
# non-space, as messages do (CommonMark trims a paragraph, and four leading spaces make code).
ALPHABET = st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("éß東京—…")


def shown(markdown: str) -> str:
    """What a reader sees of ``markdown``: its HTML without tags, entities decoded, hard breaks as
    newlines."""
    rendered = RENDER.render(markdown).strip()
    rendered = rendered.replace("<br />\n", "\n")
    assert rendered.startswith("<p>") and rendered.endswith("</p>"), rendered
    inner = rendered[len("<p>") : -len("</p>")]
    assert "<" not in inner.replace("&lt;", ""), f"markup in {inner!r}"
    return html.unescape(inner)


@settings(max_examples=examples(2_000))
@given(st.text(ALPHABET, min_size=1, max_size=80).filter(lambda t: t == t.strip()))
def test_any_line_reads_as_itself(text: str) -> None:
    assert shown(plain(text)) == text


def test_globs_code_emphasis_links_and_html_read_as_themselves() -> None:
    for text in (
        "error: no files match runs/*/index/*.parquet",
        "s3://bucket/laion/part-*.parquet: [Errno 2] __init__ failed",
        "run `curation balance runs/x --t 2e4` <b>now</b> & then",
        "# 1. - + > | ~ ! :material/home: :smile: $x$",
        "a_b_c **bold** [link](http://127.0.0.1/x) <https://example.org>",
    ):
        assert shown(plain(text)) == text


def test_lines_stay_lines() -> None:
    assert shown(plain("first line\nsecond: *line*")) == "first line\nsecond: *line*"


def test_every_message_that_is_not_a_literal_goes_through_plain() -> None:
    """A page may write its own Markdown as a string literal (`code` in its hints); anything else it
    shows as a message (an f-string, an error, a variable: a path or the engine's words may be in it)
    goes through messages.py, the one place that calls st.error/warning/info/success with text."""
    dashboard = Path(__file__).resolve().parents[1] / "dashboard"
    found = []
    for path in sorted(dashboard.rglob("*.py")):
        if path.name == "messages.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("error", "warning", "info", "success")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("st", "container")
                and node.args
                and not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))
            ):
                found.append(f"{path.relative_to(dashboard)}:{node.lineno}")
    assert not found, found
