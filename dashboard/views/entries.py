"""Entries: every metadata entry, searchable, with its fate at the current t."""

import html
import re

import streamlit as st

from curation import counting
from dashboard import data, messages
from studio_common.errors import CurationError

PAGE_ROWS = 50

st.title("Entries")
root, token, seed, t = data.page_context()
q = data.query(root)
preview = data.preview(str(root), seed, token)
kept, kept_error = data.balanced_counts(str(root), seed, token, t)
exact = preview.sample.size >= preview.sample.population

languages = data.languages(str(root), seed, token)
left, middle, right = st.columns([3, 1, 1])
left.text_input("Search entries (substring, any case)", key="entry_search")
sort = middle.selectbox("Sort by", ["count", "entry", "entry_id"], key="entry_sort")
descending = right.toggle("Descending", value=True, key="entry_descending")
language = None
if languages:  # a worldwide run: entries of one language
    language = (
        st.selectbox(
            "Language",
            [None, *languages],
            key="entry_language",
            format_func=lambda code: "all languages" if code is None else code,
            help="A worldwide run's entries each have a language; each is judged at its language's t (see Languages).",
        )
        or None
    )
current = int(st.session_state.get("entry_page", 1))
page, total = q.search_entries(
    st.session_state.entry_search,
    sort,
    descending,
    limit=PAGE_ROWS,
    offset=PAGE_ROWS * (current - 1),
    language=language,
)
pages = max(1, -(-total // PAGE_ROWS))
if current > pages:  # a narrower search than the page the user was on
    st.session_state.entry_page = current = pages
    page, total = q.search_entries(
        st.session_state.entry_search,
        sort,
        descending,
        limit=PAGE_ROWS,
        offset=PAGE_ROWS * (current - 1),
        language=language,
    )
st.number_input(f"Page (of {pages:,}; {total:,} entries match)", min_value=1, max_value=pages, key="entry_page")

if total == 0:
    st.info("No entry contains that text.")
    st.stop()
ids = page["entry_id"].to_numpy()
entry_t = data.entry_t(str(root), seed, token, t)
if languages:
    entry_t = entry_t[ids]
    page["t of language"] = entry_t
page["at t"] = counting.sides(page["count"].to_numpy(), entry_t)
page["p_e"] = preview.entry_probabilities(t)[ids]
page["kept at t"] = kept[ids].round().astype("int64")
if not exact:
    page["± (kept)"] = (2 * kept_error[ids]).round().astype("int64")
st.dataframe(
    page,
    hide_index=True,
    column_config={
        "p_e": st.column_config.NumberColumn(format="%.4f"),
        **data.thousands(["count", "kept at t", "± (kept)", "t of language"]),
    },
)
st.caption("Kept at t: matches among the pairs kept at t. " + data.estimate_note(preview))

st.subheader("Entry detail")
names = dict(zip(ids.tolist(), page["entry"]))
choice = st.selectbox("Entry", ids.tolist(), key="entry_choice", format_func=lambda i: f"{names[i]} (#{i})")
row = page.loc[page.entry_id == choice].iloc[0]
columns = st.columns(4)
columns[0].metric("Matches", f"{row['count']:,}")
at = data.t_label(str(root), seed, token, t, row["language"] if languages else None)
columns[1].metric(f"At {at}", row["at t"])
columns[2].metric("Keep probability p_e", f"{row['p_e']:.4f}")
columns[3].metric(
    "Matches kept at t", f"{row['kept at t']:,}" if exact else f"≈{row['kept at t']:,} ± {row['± (kept)']:,}"
)
sources = data.sources(str(root), token)
if sources is not None:
    found = sources.loc[sources.entry == row["entry"], "sources"]
    st.caption("Sources: " + (", ".join(found.iloc[0]) if len(found) else "unknown"))
try:  # captions come from the pool: one that moved or changed is one line, not a traceback
    texts = data.texts_with_entry(str(root), token + data.pool_token(root), seed, int(choice), limit=10)
except CurationError as error:
    messages.error(error)
    st.stop()
if texts:
    pattern = re.compile(r"(?<![^\s,.;:?!`])" + re.escape(html.escape(row["entry"])) + r"(?![^\s,.;:?!`])")
    for text in texts:
        st.html("<p>" + pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", html.escape(text or "")) + "</p>")
else:
    st.caption("No pair matches this entry.")
