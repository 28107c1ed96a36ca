"""Samples: pairs kept and dropped at the current t, optionally for one entry, with thumbnails."""

import streamlit as st

from dashboard import data, messages
from studio_common.errors import CurationError

st.title("Samples")
root, token, seed, t = data.page_context()
q = data.query(root)

left, middle, right = st.columns([1, 2, 1])
which = left.radio(
    "Pairs",
    ["kept", "dropped"],
    horizontal=True,
    key="sample_kind",
    help="Dropped: matched pairs whose keep threshold is at or above t.",
)
entry = middle.text_input("Only pairs matching this entry (exact, case-sensitive)", key="sample_entry")
limit = right.number_input("How many", min_value=1, max_value=500, value=50, key="sample_limit")
languages = data.languages(str(root), seed, token)
language = None
if languages:  # a worldwide run: pairs whose caption is in one language
    language = (
        st.selectbox(
            "Caption language",
            [None, *languages],
            key="sample_language",
            format_func=lambda code: "all languages" if code is None else code,
            help="The language each caption was matched in; every pair is judged at its language's t.",
        )
        or None
    )
thumbnails = st.toggle(
    "Show images from the url column",
    key="sample_images",
    help="Images load in your browser from their source; a broken link shows an empty cell.",
)

entry_id = None
if entry:
    entry_id = q.entry_id(entry, language)
    if entry_id is None:
        where = f" in {language}" if language else ""
        messages.warning(f"{entry!r} is not an entry of this run's metadata{where}.")
        st.stop()
    entry_row = data.entries(str(root), token).iloc[entry_id]
    count = int(entry_row["count"])
    own_t = data.entry_t(str(root), seed, token, t)
    own_t = float(own_t[entry_id]) if languages else t
    if which == "dropped" and count <= own_t:
        at = data.t_label(str(root), seed, token, t, entry_row.get("language") if languages else None)
        messages.info(
            f"{entry!r} is matched {count:,} times, no more than {at}: every pair that matches it "
            "is kept, so none is dropped."
        )
        st.stop()
# st.cache_data hands out a fresh copy per call, so the columns added below stay on this page.
try:  # the pairs' columns come from the pool: one that moved or changed is one line, not a traceback
    pool = data.pool_token(root)
    frame, searched, shards = data.samples(
        str(root), token + pool, t, seed, which == "kept", entry_id, int(limit), language
    )
except CurationError as error:
    messages.error(error)
    st.stop()
names = data.entries(str(root), token)["entry"].to_numpy()
frame.insert(frame.columns.get_loc("entry_ids"), "entries", [", ".join(names[list(ids)]) for ids in frame["entry_ids"]])
frame = frame.drop(columns=["entry_ids"])
where = (
    ""
    if searched >= shards
    else f"; found in {searched:,} of {shards:,} shards searched (the search stops "
    "when the page is full, or after about 1.5 s, 6 s while it has found nothing)"
)
at = data.t_label(str(root), seed, token, t, language)
st.caption(
    messages.plain(f"{len(frame):,} pairs shown, {which} at {at} (seed {seed}); k is the pair's keep threshold{where}.")
)
pool_columns = data.plan(str(root), token).columns
url_column = pool_columns.url
config = {
    "k": st.column_config.NumberColumn(
        format="%.2f", help="The pair's keep threshold: kept when k < t (its caption language's t in a worldwide run)."
    )
}
if url_column:  # long urls would push everything after them off-screen
    config[url_column] = st.column_config.LinkColumn(url_column, width="medium")
if thumbnails and url_column:
    frame.insert(0, "image", frame[url_column])
    config["image"] = st.column_config.ImageColumn("image", width="small")
elif thumbnails:
    st.info("This pool has no url column, so there are no images to show.")
# What the page is about first: the image, the entries and k, the caption; the other columns after.
first = [c for c in ("image", "entries", "k", pool_columns.text, "caption_language") if c in frame.columns]
frame = frame[first + [c for c in frame.columns if c not in first]]
st.dataframe(frame, hide_index=True, column_config=config)
