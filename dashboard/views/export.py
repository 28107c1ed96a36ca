"""Export: the curated manifest at a chosen t and seed, with its provenance, under the export directory.
A manifest is written by a background job (`curation export`), shard by shard: a billion
pairs take a while, the page stays free, and the dashboard's memory does not grow."""

import json
import os
from pathlib import Path

import streamlit as st

from curation.export import COLUMN_SETS, FORMATS, NAME_MAX, manifest_path
from curation.jobs import list_jobs, start_export
from dashboard import access, data
from studio_common.errors import CurationError

DOWNLOAD_LIMIT = 200 * 2**20

st.title("Export")
root, token, seed, t = data.page_context()
seeds = data.seeds(str(root), token)

left, right = st.columns(2)
st.session_state.setdefault("export_t", t)
export_t = data.t_input(left, "t", "export_t")
export_seed = right.selectbox("Seed", seeds, key="export_seed", index=seeds.index(seed))
file_format = left.radio("Format", list(FORMATS), horizontal=True, key="export_format")
column_set = right.radio(
    "Columns", list(COLUMN_SETS), format_func=lambda c: f"{c}: {COLUMN_SETS[c]}", key="export_columns"
)
default_name = f"curated-t{export_t:g}-seed{export_seed}"
typed = st.text_input(
    f"File name (no extension; letters, digits, '.', '_', '-'; at most {NAME_MAX} characters)",
    key="export_name",
    placeholder=default_name,
    help=f"Empty: {default_name}, from the t and seed above. At most {NAME_MAX} characters, "
    "starting with a letter or digit; the extension comes from the format.",
)
name = typed.strip() or default_name
if export_seed != seed:
    data.ensure_preview(root, int(export_seed))
size = data.preview(str(root), int(export_seed), token).size_at(export_t)
st.caption(
    f"At t = {export_t:g} (seed {export_seed}) the manifest holds {size:,} pairs. Files go to "
    f"{data.EXPORT_DIR} (set CURATION_EXPORT_DIR to change it)."
)

if st.button("Export", type="primary"):
    try:
        path = manifest_path(data.EXPORT_DIR, name, file_format)
        access.check_export(path, data.ROOTS)  # a symlink left in the export folder may point out of it
        st.session_state.export_job = start_export(
            data.JOBS_DIR,
            root,
            path,
            float(export_t),
            int(export_seed),
            file_format,
            column_set,
            max_running=access.max_jobs(os.environ),
        )
    except CurationError as error:
        st.error(str(error))


@st.fragment(run_every=1.0)
def last_export() -> None:
    job_id = st.session_state.get("export_job")
    job = next((j for j in list_jobs(data.JOBS_DIR) if j.id == job_id), None) if job_id else None
    if job is None:
        return
    path = Path(job.out)
    if job.state == "running":
        st.progress(job.progress, text=f"Writing {path.name}: {job.stage}")
    elif job.state == "failed":
        st.error(job.error or "the export failed")
    elif job.state == "finished":
        provenance_path = path.with_name(path.stem + ".provenance.json")
        provenance = json.loads(provenance_path.read_text())
        st.success(f"Wrote {provenance['rows']:,} pairs to {path}")
        st.json(provenance, expanded=False)
        if path.stat().st_size <= DOWNLOAD_LIMIT:
            st.download_button("Download the manifest", path.read_bytes(), file_name=path.name)
        st.download_button("Download the provenance", json.dumps(provenance, indent=2), file_name=provenance_path.name)
    else:
        st.warning(job.stage)


last_export()
