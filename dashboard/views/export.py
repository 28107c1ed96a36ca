"""Export: the curated manifest at a chosen t and seed, with its provenance, under the export directory.
A manifest is written by a background job (`curation export`), shard by shard: a billion
pairs take a while, the page stays free, and the dashboard's memory does not grow."""

import json
import os
import shlex
from pathlib import Path

import numpy as np
import streamlit as st

from curation.export import (
    COLUMN_SETS,
    DEFAULT_UID_COLUMN,
    FORMATS,
    NAME_MAX,
    check_name,
    manifest_path,
    provenance_name,
)
from curation.jobs import list_jobs, start_export
from dashboard import access, data, messages
from dashboard.card import write_card
from studio_common.errors import CurationError

DOWNLOAD_LIMIT = 200 * 2**20

st.title("Export")
root, token, seed, t = data.page_context()
seeds = data.seeds(str(root), token)


def exact(t: float) -> str:
    """t written in full, as a name may hold it: 1e6 is 1000000 (no '+'), 1234.5678 stays itself, so
    that nearby t values never share a file name."""
    return np.format_float_positional(float(t), trim="-")


left, right = st.columns(2)
st.session_state.setdefault("export_t", t)
export_t = data.t_input(left, "t", "export_t")
export_seed = right.selectbox("Seed", seeds, key="export_seed", index=seeds.index(seed))
file_format = left.radio(
    "Format",
    list(FORMATS),
    horizontal=True,
    key="export_format",
    help="datacomp-uids: the kept pairs' uids as DataComp's resharder reads them (a .npy of u8,u8, sorted, unique).",
)
uid_column = None
if file_format == "datacomp-uids":  # the file holds DataComp's uids, nothing else
    column_set = "uid"
    uid_column = right.text_input(
        "Uid column", value=DEFAULT_UID_COLUMN, key="export_uid_column", help="The pool's DataComp uid column."
    ).strip()
else:
    column_set = right.radio(
        "Columns", list(COLUMN_SETS), format_func=lambda c: f"{c}: {COLUMN_SETS[c]}", key="export_columns"
    )
default_name = f"curated-t{exact(export_t)}-seed{export_seed}"
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


def _target() -> Path | None:
    """The manifest the form names now (None when the name is refused: the click says why)."""
    try:
        return manifest_path(data.EXPORT_DIR, name, file_format)
    except CurationError:
        return None


if st.button("Export", type="primary"):
    st.session_state.pop("export_job", None)  # a refused export leaves no earlier result under the form
    try:
        path = manifest_path(data.EXPORT_DIR, name, file_format)
        access.check_export(path, data.ROOTS)  # a symlink left in the export folder may point out of it
        data.pool_token(root)  # the manifest's rows come from the pool, which must lie under the data roots
        st.session_state.export_job = start_export(
            data.JOBS_DIR,
            root,
            path,
            float(export_t),
            int(export_seed),
            file_format,
            column_set,
            max_running=access.max_jobs(os.environ),
            uid_column=uid_column,
        )
    except CurationError as error:
        messages.error(error)


def _card_target() -> Path | None:
    try:
        return card_path()
    except CurationError:
        return None


def card_path() -> Path:
    """The data card beside the manifest the form names: NAME.card.html (and NAME.card.json)."""
    return data.EXPORT_DIR / (check_name(name) + ".card.html")


if st.button(
    "Write the data card",
    key="export_card",
    help="One HTML page of this run at the t and seed above, which opens offline (sizes, head and tail, "
    "charts, per source and language, provenance), and its figures as JSON: `curation card`.",
):
    st.session_state.pop("export_card_written", None)
    try:
        page = card_path()
        access.check_export(page, data.ROOTS)
        access.check_export(page.with_suffix(".json"), data.ROOTS)
        with st.spinner("Writing the data card"):
            figures_path = page.with_suffix(".json")
            same_command = (  # what the provenance says: the command line that writes this very card
                f"curation card {shlex.quote(str(root))} --t {float(export_t)!r} --seed {int(export_seed)} "
                f"--out {shlex.quote(str(page))} --json {shlex.quote(str(figures_path))}"
            )
            write_card(root, float(export_t), int(export_seed), page, figures_path, same_command)
        st.session_state.export_card_written = str(page)
    except CurationError as error:
        messages.error(error)
written_card = st.session_state.get("export_card_written")
if written_card and Path(written_card).exists() and written_card == str(_card_target()):
    messages.success(f"Wrote the data card to {written_card}")
    st.download_button(
        "Download the data card", Path(written_card).read_bytes(), file_name=Path(written_card).name, mime="text/html"
    )
    card_figures = Path(written_card).with_suffix(".json")
    if card_figures.exists():
        st.download_button(
            "Download its figures (JSON)",
            card_figures.read_bytes(),
            file_name=card_figures.name,
            mime="application/json",
        )


def last_export(ticking: bool) -> None:
    """The export this session started, while the form still names its file (another t, seed, format
    or name is another manifest: the old one's message and downloads would be the wrong ones);
    redrawn every second while it runs (``ticking``)."""
    job_id = st.session_state.get("export_job")
    job = next((j for j in list_jobs(data.JOBS_DIR) if j.id == job_id), None) if job_id else None
    if job is None or Path(job.out) != _target():
        return
    if (job.state == "running") != ticking:
        st.rerun()  # started or ended: a whole rerun draws this again, with or without the timer
    path = Path(job.out)
    if job.state == "running":
        st.progress(job.progress, text=messages.plain(f"Writing {path.name}: {job.stage}"))
    elif job.state == "failed":
        messages.error(job.error or "the export failed")
    elif job.state == "finished":
        provenance_path = path.with_name(provenance_name(path.name))  # named as the engine names it
        provenance = json.loads(provenance_path.read_text())
        messages.success(f"Wrote {provenance['rows']:,} pairs to {path}")
        st.json(provenance, expanded=False)
        if path.stat().st_size <= DOWNLOAD_LIMIT:
            st.download_button("Download the manifest", path.read_bytes(), file_name=path.name)
        st.download_button("Download the provenance", json.dumps(provenance, indent=2), file_name=provenance_path.name)
    else:
        messages.warning(job.stage)


def _running() -> bool:
    job_id = st.session_state.get("export_job")
    return any(j.id == job_id and j.state == "running" for j in list_jobs(data.JOBS_DIR)) if job_id else False


ticking = _running()
st.fragment(last_export, run_every=1.0 if ticking else None)(ticking)
