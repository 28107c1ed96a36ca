"""Jobs: launch a full curation in the background and follow it; state lives in files, so it
survives a page reload. What a job reads and writes is confined to the configured roots, at most
CURATION_MAX_JOBS run at once, and a running job can be cancelled and resumed."""

import os

import streamlit as st

import data_samples
from curation.commands import RunRequest, column_names
from curation.jobs import cancel_job, job_request, list_jobs, log_tail, start_job
from dashboard import access, data, messages
from studio_common.errors import CurationError

st.title("Jobs")

with st.form("launch"):
    pool = st.text_input(
        "Pool (Parquet file, directory or glob)",
        value=str(data_samples.POOL),
        key="job_pool",
        help="A local path, or a URI: s3://bucket/prefix/, gs://..., hf://datasets/..., "
        "http(s)://... (credentials from the usual AWS_*, GOOGLE_*, HF_TOKEN variables).",
    )
    metadata = st.text_input(
        "Metadata (JSON list, one entry per line, or Parquet)",
        value=str(data_samples.METADATA),
        key="job_metadata",
        help="A local path or a URI, as for the pool. Parquet holds an 'entry' column (as "
        "`curation-metadata build` writes it); with a 'language' column too, the run is worldwide (MetaCLIP 2).",
    )
    languages, texts = st.columns(2)
    language_column = languages.text_input(
        "Language column (optional)",
        key="job_language_column",
        help="Worldwide runs (metadata in Parquet with 'entry' and 'language' columns): the pool column "
        "holding each caption's language code, so each caption is matched against its own language's "
        "entries and balanced at its language's t. Empty: the language is identified from the text "
        "(lid.176, with the decisions a caption's script settles).",
    )
    text_columns = texts.text_input(
        "Text columns (optional)",
        key="job_text_columns",
        placeholder="alt,title",
        help="Several texts per image, MetaCLIP 2 style: column names separated by commas; each text is "
        "matched and counted, one matched text per image is picked, and the image is kept by that "
        "text's entries. One name: the caption column. Empty: text, else caption, TEXT, txt, ...",
    )
    left, middle, right = st.columns(3)
    t = data.t_input(left, "t", "job_t", value=data.usable_t(st.session_state.t) or data.SAMPLE_T)
    seed = middle.number_input("Seed", value=0, min_value=0, step=1, key="job_seed")
    out = right.text_input(
        "Output directory",
        value=str(data.RUNS_DIR / "new-run"),
        key="job_out",
        help="A local directory, or s3://bucket/prefix or gs://bucket/prefix to keep the run in object storage.",
    )
    launched = st.form_submit_button("Start curation")


def _start(request: RunRequest) -> str:
    """A run inside the roots, not onto the open run, and within the job limit (checked before anything
    is made), started."""
    open_run = st.session_state.get("run_dir")
    access.check_job_request(request.pool, request.metadata, request.out, data.ROOTS, open_run=open_run)
    return start_job(data.JOBS_DIR, request, max_running=access.max_jobs(os.environ))


if launched:
    try:
        request = RunRequest(
            pool.strip(),
            metadata.strip(),
            float(t),
            int(seed),
            out.strip(),
            language_column=language_column.strip() or None,
            text_columns=tuple(column_names(text_columns)),
        )
        job_id = _start(request)
    except CurationError as error:
        messages.error(error)
    else:
        messages.success(f"Started job {job_id}.")


def _cancel(job_id: str) -> None:
    try:
        cancel_job(data.JOBS_DIR, job_id)
    except CurationError as error:
        st.session_state.job_message = str(error)


def _resume(job_id: str) -> None:
    """The same request again: the run continues from the shards it finished."""
    try:
        resumed = _start(RunRequest.from_record(job_request(data.JOBS_DIR, job_id)))
        st.session_state.job_message = f"Resumed as job {resumed}."
    except CurationError as error:
        st.session_state.job_message = str(error)


def _open(path: str) -> None:
    """Select the run for every page (the sidebar's box follows run_dir on the next whole run); the run
    joins Recent runs, where a reloaded page starts. The Overview follows in the same script run: the
    fragment's body switches to it, or app.py if the click is handled by a whole run."""
    st.session_state.run_dir = path
    data.remember_run(path)
    st.session_state.opened_run = True


def job_list(ticking: bool) -> None:
    """The jobs, redrawn every 2 s while one runs (``ticking``: the list was drawn with that timer).

    The timer lives in the browser, and a tick it sends before the browser has seen the page change names
    this page and still carries the widget values it had: after st.switch_page such a tick reran this
    (gone) fragment on the Jobs page over the Overview and left it blank. So the list ticks only while a
    job runs; a run is opened by the button (and st.switch_page) only when nothing ticks, and by a link
    while something does (the browser navigates, and stops its timers before it asks for the page)."""
    jobs = list_jobs(data.JOBS_DIR)
    if any(job.state == "running" for job in jobs) != ticking:
        st.rerun()  # a job started or ended: a whole rerun draws the list again, with or without the timer
    if "job_message" in st.session_state:
        messages.info(st.session_state.pop("job_message"))
    if not jobs:
        st.caption("No jobs yet.")
    for job in jobs:
        with st.container(border=True):
            st.markdown(f"**{job.id}** · {job.kind} · {job.state} · {messages.plain(job.out)}")
            st.progress(job.progress, text=messages.plain(job.stage))
            if job.state == "failed":
                messages.error(job.error or "the run failed")
            if job.state == "finished" and job.kind == "run":
                if ticking:
                    st.page_link(
                        "views/overview.py",
                        label="Open this run",
                        icon=":material/dashboard:",
                        query_params={"run": job.out},
                        help="Opens this run on the Overview.",
                    )
                else:
                    st.button("Open this run", key=f"open-{job.id}", on_click=_open, args=(job.out,))
            if job.state == "running":
                st.button(
                    "Cancel",
                    key=f"cancel-{job.id}",
                    on_click=_cancel,
                    args=(job.id,),
                    help="Stops this job's processes; the run directory keeps what was finished.",
                )
            if job.resumable:
                st.button(
                    "Resume",
                    key=f"resume-{job.id}",
                    on_click=_resume,
                    args=(job.id,),
                    help="Starts the same run again: it continues from the shards it finished.",
                )
            with st.expander("Command and log", expanded=job.state == "running"):
                st.code(job.command, language="bash")
                st.code(log_tail(data.JOBS_DIR, job.id) or "(no output yet)", language="text")
    if st.session_state.pop("opened_run", False):
        st.switch_page("views/overview.py")  # a whole rerun: the sidebar and the page show the run


ticking = any(job.state == "running" for job in list_jobs(data.JOBS_DIR))
st.fragment(job_list, run_every=2.0 if ticking else None)(ticking)
