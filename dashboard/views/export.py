"""Export: the curated manifest at a chosen t and seed, with its provenance, under the export directory."""

import json

import streamlit as st

from curation.errors import CurationError
from curation.export import COLUMN_SETS, FORMATS, export_manifest
from dashboard import data

DOWNLOAD_LIMIT = 200 * 2**20

st.title("Export")
root, token, seed, t = data.page_context()
preview = data.preview(str(root), seed, token)

with st.form("export"):
    left, right = st.columns(2)
    export_t = left.number_input("t", value=t, format="%g", key="export_t")
    export_seed = right.selectbox("Seed", data.seeds(str(root), token), key="export_seed",
                                  index=data.seeds(str(root), token).index(seed))
    file_format = left.radio("Format", list(FORMATS), horizontal=True, key="export_format")
    column_set = right.radio("Columns", list(COLUMN_SETS), format_func=lambda c: f"{c}: {COLUMN_SETS[c]}",
                             key="export_columns")
    name = st.text_input("File name (no extension)", value=f"curated-t{t:g}-seed{seed}", key="export_name")
    submitted = st.form_submit_button("Export")
st.caption(f"Files go to {data.EXPORT_DIR} (set CURATION_EXPORT_DIR to change it). "
           f"At t = {t:g} the manifest holds {preview.size_at(t):,} pairs.")

if submitted:
    try:
        with st.spinner("Writing the manifest..."):
            result = export_manifest(data.query(root), data.EXPORT_DIR, name, float(export_t), int(export_seed),
                                     file_format, column_set)
    except CurationError as error:
        st.error(str(error))
    else:
        st.success(f"Wrote {result.rows:,} pairs to {result.path}")
        provenance = json.loads(result.provenance.read_text())
        st.json(provenance, expanded=False)
        if result.path.stat().st_size <= DOWNLOAD_LIMIT:
            st.download_button("Download the manifest", result.path.read_bytes(), file_name=result.path.name)
        st.download_button("Download the provenance", json.dumps(provenance, indent=2),
                           file_name=result.provenance.name)
