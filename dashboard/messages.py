"""Messages shown as the text they are. Streamlit renders every message as Markdown, so a pool glob such
as `runs/*/annotated/*.parquet` lost its stars and `a:b:` could turn into an emoji; what the engine or a
user wrote (paths, errors, entry texts) goes through ``plain`` before it is shown."""

from __future__ import annotations

import re
import string

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(text: object) -> str:
    """``text`` with every ASCII punctuation mark backslash-escaped (CommonMark lets any of them be), and
    line breaks kept as breaks: Markdown shows it character for character."""
    return _PUNCTUATION.sub(r"\\\1", str(text)).replace("\n", "  \n")


def error(text: object, where: DeltaGenerator | None = None) -> None:
    (where or st).error(plain(text))


def warning(text: object, where: DeltaGenerator | None = None) -> None:
    (where or st).warning(plain(text))


def info(text: object, where: DeltaGenerator | None = None) -> None:
    (where or st).info(plain(text))


def success(text: object, where: DeltaGenerator | None = None) -> None:
    (where or st).success(plain(text))
