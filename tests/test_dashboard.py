"""Every page of the dashboard, driven by Streamlit's AppTest on the bundled sample."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from conftest import dashboard_environment, texts_of
from streamlit.testing.v1 import AppTest

from curation import Run, preview_files
from curation.commands import RunRequest
from curation.jobs import wait
from curation.rundir import RunDir

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = [
    "views/overview.py",
    "views/entries.py",
    "views/coverage.py",
    "views/balance.py",
    "views/languages.py",
    "views/samples.py",
    "views/export.py",
    "views/jobs.py",
    "views/compare.py",
]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs, exports and jobs of this module live in a temporary directory, set before the app loads. The
    dashboard may read the sample, the runs directory and one https:// prefix (to reach the refusal of
    a read-only scheme), and stands for a server on loopback (the project config's address, whatever the cwd)."""
    base = tmp_path_factory.mktemp("dashboard")
    paths = {"runs": base / "runs", "exports": base / "exports", "jobs": base / "jobs"}
    roots = os.pathsep.join(
        [str(Path(APP).parents[1] / "data_samples"), str(paths["runs"]), "https://example.org/runs/"]
    )
    with dashboard_environment(
        {
            "CURATION_RUNS_DIR": str(paths["runs"]),
            "CURATION_EXPORT_DIR": str(paths["exports"]),
            "CURATION_JOBS_DIR": str(paths["jobs"]),
            "CURATION_DATA_ROOTS": roots,
        },
        "127.0.0.1",
    ):
        yield paths


@pytest.fixture
def app(dirs: dict[str, Path]) -> AppTest:
    """A first visit: no recent runs, so the session opens on the bundled sample."""
    (dirs["runs"] / ".recent.json").unlink(missing_ok=True)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.slow
def test_first_start_curates_the_sample_and_every_page_renders(app: AppTest, dirs: dict[str, Path]) -> None:
    assert (dirs["runs"] / "sample" / "run.json").exists()
    assert metric(app, "Pool rows") == "30,000"
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.message for e in app.exception])
        assert not app.error, (page, texts_of(app.error))


@pytest.mark.slow
def test_moving_t_changes_kept_pairs_to_the_engines_size(app: AppTest, dirs: dict[str, Path]) -> None:
    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/balance.py").run()
    assert metric(app, "Kept pairs") == f"{run.size_at(200):,}"
    for t in (7.5, 50, 1_000, 123_456):
        app.number_input(key="t_box").set_value(t).run()
        assert not app.exception
        assert metric(app, "Kept pairs") == f"{run.size_at(t):,}"
        assert metric(app, "Expected") == f"{run.expected_size_at(t):,.1f}"  # the sample: every matched pair
    app.switch_page("views/entries.py").run()  # t follows the user to other pages
    assert app.session_state["t"] == 123_456


@pytest.mark.parametrize("t", [0, -5, float("inf")])
def test_t_that_is_not_a_usable_number_stops_at_the_minimum_and_says_so(
    app: AppTest, dirs: dict[str, Path], t: float
) -> None:
    """What the engine cannot take (0, a negative, 1e309) becomes the minimum, and the page says so and
    what it was: the browser itself is given no minimum (Chromium would refuse the value silently)."""
    from dashboard import data

    app.switch_page("views/balance.py").run()
    app.number_input(key="t_box").set_value(t).run()
    assert not app.exception
    assert app.session_state["t"] == data.MIN_T > 0
    said = f"t must be a positive, finite number: {t:g} became" if math.isfinite(t) else "became"
    said += f" {data.MIN_T:g}"
    assert any(said in w and "Type a t such as" in w for w in texts_of(app.warning)), texts_of(app.warning)
    assert app.number_input(key="t_box").value == data.MIN_T
    assert metric(app, "Kept pairs") == f"{Run(dirs['runs'] / 'sample').size_at(data.MIN_T):,}"
    app.slider(key="t_log").set_value(2.0).run()  # t moved another way: the warning is no longer true
    assert app.session_state["t"] == 100 and not texts_of(app.warning)


def test_no_t_input_gives_the_browser_a_minimum_and_jobs_prefill_a_usable_t(app: AppTest) -> None:
    from dashboard import data

    app.switch_page("views/balance.py").run()
    app.toggle(key="compare").set_value(True).run()
    inputs = [app.number_input(key="t_box"), app.number_input(key="t2_box")]
    app.switch_page("views/export.py").run()
    inputs.append(app.number_input(key="export_t"))
    app.session_state["t"] = -5.0  # a bad t in the session (the Balance box would have raised it to the minimum)
    app.switch_page("views/jobs.py").run()
    assert not app.exception
    inputs.append(app.number_input(key="job_t"))
    for number in inputs:
        assert not number.proto.has_min and number.proto.step == data.T_STEP
    assert app.number_input(key="job_t").value == data.SAMPLE_T


def test_a_bad_t_in_the_session_gets_a_message_on_other_pages(app: AppTest) -> None:
    app.session_state["t"] = float("nan")
    app.switch_page("views/entries.py").run()
    assert not app.exception
    assert any("t must be a finite number" in e and "press Enter" in e for e in texts_of(app.error))


@pytest.mark.slow
def test_export_runs_as_a_job_writes_its_files_and_refuses_traversal(app: AppTest, dirs: dict[str, Path]) -> None:
    app.switch_page("views/export.py").run()
    app.number_input(key="export_t").set_value(100).run()
    assert any(
        "the manifest holds" in c.value and f"{Run(dirs['runs'] / 'sample').size_at(100):,} pairs" in c.value
        for c in app.caption
    )
    app.text_input(key="export_name").set_value("from-test")
    app.radio(key="export_format").set_value("csv")
    app.button[0].click().run()
    assert not app.exception
    job = wait(dirs["jobs"], app.session_state["export_job"])
    assert job.kind == "export" and job.state == "finished", job
    written = dirs["exports"] / "from-test.csv"
    assert written.exists() and (dirs["exports"] / "from-test.csv.provenance.json").exists()
    with open(written, newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))  # captions may hold quoted newlines
    assert rows == Run(dirs["runs"] / "sample").size_at(100)
    provenance = json.loads((dirs["exports"] / "from-test.csv.provenance.json").read_text())
    assert provenance["t"] == 100 and provenance["file"] == "from-test.csv"
    app.run()
    assert any(f"Wrote {rows:,} pairs" in s for s in texts_of(app.success))
    app.text_input(key="export_name").set_value("../outside")
    app.button[0].click().run()
    assert any("refused" in e for e in texts_of(app.error))
    assert not (dirs["exports"].parent / "outside.csv").exists()


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("{runs}/not/here", "not a directory"),
        ("{runs}", "not a run directory"),
        ("https://example.org/runs/laion", "run directories can live on s3://"),
        ("/definitely/not/here", "is outside what this dashboard may use"),
    ],
)
def test_a_path_that_is_not_a_run_directory(app: AppTest, dirs: dict[str, Path], path: str, said: str) -> None:
    app.session_state["run_dir"] = path.format(runs=dirs["runs"])
    for page in PAGES[:5]:
        app.switch_page(page).run()
        assert not app.exception
        assert any(said in e for e in texts_of(app.error)), page


def test_search_with_quotes_and_sql(app: AppTest) -> None:
    app.switch_page("views/entries.py").run()
    app.text_input(key="entry_search").set_value("'; DROP TABLE entries; --").run()
    assert not app.exception
    assert any("No entry contains" in i for i in texts_of(app.info))
    app.text_input(key="entry_search").set_value("dog").run()
    assert not app.exception and metric(app, "Matches")


def test_entries_at_t_call_an_entry_counted_exactly_t_times_head(app: AppTest) -> None:
    app.switch_page("views/entries.py").run()
    first = app.dataframe[0].value.iloc[0]  # the most matched entry, by default
    app.session_state["t"] = float(first["count"])
    app.run()
    frame = app.dataframe[0].value
    assert frame.iloc[0]["at t"] == "head" and frame.iloc[0]["p_e"] == 1.0
    assert set(frame.loc[frame["count"] < first["count"], "at t"]) <= {"tail", "unmatched"}


def test_a_job_with_a_missing_pool_gets_a_message(app: AppTest, dirs: dict[str, Path]) -> None:
    app.switch_page("views/jobs.py").run()
    app.text_input(key="job_pool").set_value(str(dirs["runs"] / "no-such-pool"))
    app.button[0].click().run()
    assert not app.exception
    assert any("pool not found" in e for e in texts_of(app.error))


def test_a_second_t_is_compared_side_by_side(app: AppTest, dirs: dict[str, Path]) -> None:
    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/balance.py").run()
    app.toggle(key="compare").set_value(True).run()
    app.number_input(key="t2_box").set_value(40).run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table.columns) == ["t = 200", "t = 40"]
    assert table.loc["Kept pairs", "t = 40"] == f"{run.size_at(40):,}"


def test_samples_for_one_entry_with_thumbnails(app: AppTest) -> None:
    app.switch_page("views/samples.py").run()
    app.text_input(key="sample_entry").set_value("dog").run()
    app.toggle(key="sample_images").set_value(True).run()
    assert not app.exception
    frame = app.dataframe[0].value
    assert len(frame) > 0 and "image" in frame.columns
    assert all("dog" in entries.split(", ") for entries in frame["entries"])
    assert (frame["k"] < 200).all()
    app.radio(key="sample_kind").set_value("dropped").run()
    assert (app.dataframe[0].value["k"] >= 200).all()
    app.session_state["t"] = 1e9  # every entry is counted at most t times: nothing can be dropped
    app.run()
    assert any("no more than t = 1e+09" in i for i in texts_of(app.info)) and not app.dataframe
    app.text_input(key="sample_entry").set_value("no such entry at all").run()
    assert any("is not an entry" in w for w in texts_of(app.warning))


def test_a_run_with_half_made_thresholds_gets_a_message(app: AppTest, tmp_path: Path, dirs: dict[str, Path]) -> None:
    import shutil

    broken = dirs["runs"] / tmp_path.name / "broken"
    shutil.copytree(dirs["runs"] / "sample", broken)
    next((broken / "thresholds" / "seed-0").glob("part-*.parquet")).unlink()
    app.session_state["run_dir"] = str(broken)
    app.switch_page("views/balance.py").run()
    assert not app.exception
    assert any("no complete keep thresholds" in e for e in texts_of(app.error))


def test_a_narrower_search_from_a_later_page(app: AppTest) -> None:
    app.switch_page("views/entries.py").run()
    app.number_input(key="entry_page").set_value(3).run()
    first_on_page_3 = app.dataframe[0].value["entry_id"].iloc[0]
    app.text_input(key="entry_search").set_value("new york").run()
    assert not app.exception
    assert app.session_state["entry_page"] == 1
    shown = app.dataframe[0].value
    assert len(shown) > 0 and first_on_page_3 not in set(shown["entry_id"])
    assert all("new york" in e.lower() for e in shown["entry"])


def copy_of_sample(dirs: dict[str, Path], tmp_path: Path, name: str) -> Path:
    import shutil

    copy = dirs["runs"] / tmp_path.name / name
    shutil.copytree(dirs["runs"] / "sample", copy)
    return copy


@pytest.mark.slow
def test_a_run_without_preview_files_is_prepared_on_first_open(
    app: AppTest, dirs: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    old = copy_of_sample(dirs, tmp_path, "old-run")
    shutil.rmtree(old / "preview")  # as a run made before previews existed
    app.session_state["run_dir"] = str(old)
    app.switch_page("views/balance.py").run()
    assert not app.exception and not app.error
    assert (old / "preview" / "seed-0" / "preview.json").exists()
    assert metric(app, "Kept pairs") == f"{Run(old).size_at(200):,}"


@pytest.mark.slow
def test_estimates_from_a_sample_are_labelled_as_such(app: AppTest, dirs: dict[str, Path], tmp_path: Path) -> None:
    from conftest import cli

    sampled = copy_of_sample(dirs, tmp_path, "sampled-run")
    assert cli("preview", sampled, "--rebuild", "--sample-pairs", 2000, "--quiet") == 0
    app.session_state["run_dir"] = str(sampled)
    app.switch_page("views/balance.py").run()
    assert not app.exception
    shown = metric(app, "Expected")
    assert shown.startswith("≈") and " ± " in shown
    value, margin = (float(x.replace(",", "").lstrip("≈")) for x in shown.split(" ± "))
    exact = Run(sampled).expected_size_at(200)
    assert abs(value - exact) <= 2 * margin  # a 2-standard-error interval; the draw is fixed by the seed
    assert metric(app, "Kept pairs") == f"{Run(sampled).size_at(200):,}"  # exact still
    app.switch_page("views/entries.py").run()
    assert "± (kept)" in app.dataframe[0].value.columns
    assert any("uniform sample" in c.value for c in app.caption)


@pytest.mark.slow
def test_open_this_run_selects_it_everywhere_and_a_reload_keeps_it(
    app: AppTest, dirs: dict[str, Path], pool: Path, metadata: Path, tmp_path: Path
) -> None:
    from curation.jobs import start_job

    out = dirs["runs"] / tmp_path.name / "from-job"
    job_id = start_job(dirs["jobs"], RunRequest(str(pool), str(metadata), 40, 0, str(out), workers=1))
    assert wait(dirs["jobs"], job_id).state == "finished"
    rows = json.loads((out / "run.json").read_text())["rows"]["in"]
    assert rows != json.loads((dirs["runs"] / "sample" / "run.json").read_text())["rows"]["in"]
    app.switch_page("views/jobs.py").run()
    app.button(key=f"open-{job_id}").click().run()
    assert not app.exception
    assert metric(app, "Pool rows") == f"{rows:,}"  # the Overview, on the opened run
    assert app.text_input(key="run_dir_input").value == str(out)
    assert str(out) in app.selectbox(key="recent_choice").options
    assert app.query_params["run"] == str(out)  # the address bar names the open run
    reloaded = AppTest.from_file(APP, default_timeout=120)  # a reload is a new session at the same address
    reloaded.query_params["run"] = app.query_params["run"]
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["run_dir"] == str(out) and metric(reloaded, "Pool rows") == f"{rows:,}"


@pytest.mark.slow
def test_export_defaults_follow_the_forms_t_and_seed(app: AppTest, dirs: dict[str, Path]) -> None:
    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/export.py").run()
    assert app.session_state["t"] == 200
    app.number_input(key="export_t").set_value(100).run()
    default = "curated-t100-seed0"
    assert app.text_input(key="export_name").placeholder == default
    assert any(f"At t = 100 (seed 0) the manifest holds {run.size_at(100):,} pairs" in c.value for c in app.caption)
    app.button[0].click().run()
    assert wait(dirs["jobs"], app.session_state["export_job"]).state == "finished"
    provenance = json.loads((dirs["exports"] / f"{default}.parquet.provenance.json").read_text())
    assert provenance["file"] == f"{default}.parquet" and provenance["t"] == 100 and provenance["seed"] == 0
    assert provenance["rows"] == run.size_at(100) != run.size_at(200)


def test_the_export_name_limit_is_stated_in_the_form_and_the_error(app: AppTest) -> None:
    from curation.export import NAME_MAX

    app.switch_page("views/export.py").run()
    name = app.text_input(key="export_name")
    assert f"at most {NAME_MAX} characters" in name.label and f"At most {NAME_MAX} characters" in name.help
    name.set_value("x" * (NAME_MAX + 1))
    app.button[0].click().run()
    assert any(f"{NAME_MAX + 1} characters refused" in e and f"at most {NAME_MAX}" in e for e in texts_of(app.error))


def test_a_directory_given_as_metadata_is_named_as_such(app: AppTest, dirs: dict[str, Path]) -> None:
    app.switch_page("views/jobs.py").run()
    app.text_input(key="job_metadata").set_value(str(dirs["runs"]))
    app.button[0].click().run()
    assert any("is a directory; give the file in it" in e for e in texts_of(app.error))


def test_overview_numbers_reconcile_and_tables_have_thousands_separators(app: AppTest, dirs: dict[str, Path]) -> None:
    rows = json.loads((dirs["runs"] / "sample" / "run.json").read_text())["rows"]
    unmatched, empty = rows["unmatched"], rows["null_or_empty_text"]
    assert unmatched and empty  # the sample has both, or this proves nothing
    assert metric(app, "Unmatched (with text)") == f"{unmatched:,}"
    assert metric(app, "Null or empty text") == f"{empty:,}"
    said = f"{unmatched:,} unmatched with text plus {empty:,} with null or empty text, {unmatched + empty:,} in all"
    assert any(said in c.value for c in app.caption)
    histogram = preview_files.describe(RunDir(dirs["runs"] / "sample"), 0)["matches_per_pair"]
    assert histogram[0] == unmatched + empty  # the histogram's bar at 0, as the engine counted it
    app.switch_page("views/entries.py").run()
    columns = json.loads(app.dataframe[0].proto.columns)
    assert all(columns[name]["type_config"]["format"] == "localized" for name in ("count", "kept at t"))


def test_balance_explains_entries_that_keep_more_than_t(app: AppTest, dirs: dict[str, Path]) -> None:
    import numpy as np

    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/balance.py").run()
    counts = run.counts
    top = int(np.argmax(counts))
    kept = int(run.balanced_counts(200)[top])
    assert kept > 200  # the case the note explains
    assert any(
        f"{run.entries[top]!r} alone has p_e = {200 / counts[top]:.3f} at t = 200, yet keeps {kept:,} of its "
        f"{int(counts[top]):,} matches" in c
        for c in texts_of(app.caption)
    )
    assert any("idealised" in c.value and "min(c, t)" in c.value for c in app.caption)
    helps = {m.label: m.help for m in app.metric}
    assert "Expected" in helps["Kept pairs"] and "Kept pairs" in helps["Expected"]
    app.number_input(key="t_box").set_value(float(counts.max())).run()  # no head entry left: nothing to explain
    assert not any("alone has p_e" in c for c in texts_of(app.caption))


def test_charts_give_each_t_one_colour_on_labelled_log_axes() -> None:
    import numpy as np
    import pandas as pd

    from dashboard import charts

    counts = np.sort(np.array([0, 1, 3, 40, 300, 5000, 70_000]))
    ts = [200.0, 40.0]
    figures = [
        charts.counts_by_rank(counts, ts),
        charts.cumulative_matches(counts, ts),
        charts.before_after(np.array(["a", "b"]), np.array([70_000, 5000]), np.array([900, 800]), ts[0]),
    ]
    for index, t in enumerate(ts):
        colours = {
            (trace.line.color if trace.type == "scatter" else trace.marker.color)
            for figure in figures
            for trace in figure.data
            if f"t = {t:g}" in trace.name
        }
        assert colours == {charts.t_colour(index)}, (t, colours)
    assert charts.t_colour(0) != charts.t_colour(1)
    sources = charts.sources_bars(
        pd.DataFrame({"source": ["wordnet", "extra"], "matched": [80_000, 3], "unmatched": [6000, 1]})
    )
    axes = [figures[0].layout.xaxis, figures[0].layout.yaxis, figures[2].layout.yaxis, sources.layout.yaxis]
    assert all(axis.type == "log" and axis.tickvals for axis in axes)  # labelled ticks: tests/test_dashboard_charts.py
    assert sources.layout.barmode == "group"


def test_samples_show_entries_and_k_first_and_a_bounded_url(app: AppTest) -> None:
    app.switch_page("views/samples.py").run()
    assert list(app.dataframe[0].value.columns)[:3] == ["entries", "k", "text"]
    assert json.loads(app.dataframe[0].proto.columns)["url"]["width"] == "medium"
    app.toggle(key="sample_images").set_value(True).run()
    assert list(app.dataframe[0].value.columns)[:3] == ["image", "entries", "k"]


def test_the_project_streamlit_config_turns_off_statistics_and_the_deploy_button() -> None:
    """`streamlit run` reads .streamlit/config.toml from the working directory: the README starts it from the
    project root. It serves on loopback unless the command line says otherwise (tests/test_serving.py)."""
    import tomllib

    import streamlit.config

    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    options = {f"{section}.{name}": value for section, values in config.items() for name, value in values.items()}
    assert set(options) <= set(streamlit.config._config_options_template)  # every option is one Streamlit knows
    assert options["browser.gatherUsageStats"] is False and options["client.toolbarMode"] == "minimal"
    assert options["server.address"] == "127.0.0.1"


def test_an_error_naming_a_glob_shows_its_stars(app: AppTest, dirs: dict[str, Path]) -> None:
    """Streamlit renders messages as Markdown: the path in an error is escaped so that it reads as typed."""
    glob = str(dirs["runs"] / "*" / "index" / "*.parquet")
    app.session_state["run_dir"] = glob
    app.switch_page("views/overview.py").run()
    assert not app.exception
    assert any(glob in e for e in texts_of(app.error)), texts_of(app.error)
    assert any("\\*" in e.value for e in app.error)  # escaped for Markdown, where a bare * would vanish


def test_two_sessions_keep_their_own_runs_and_recent_runs(app: AppTest, dirs: dict[str, Path], tmp_path: Path) -> None:
    """Recent runs are the session's: another session (another tab, another user) neither lands on the
    run this one opened nor is offered it; a reload is a new session at the same address."""
    nested = dirs["runs"] / tmp_path.name / "copy"  # a run outside the runs folder's own list
    shutil.copytree(dirs["runs"] / "sample", nested)
    app.session_state["run_dir"] = str(nested)
    app.run()
    assert not app.exception and app.query_params["run"] == str(nested)
    assert str(nested) in app.selectbox(key="recent_choice").options
    other = AppTest.from_file(APP, default_timeout=120).run()
    assert not other.exception
    assert other.session_state["run_dir"] == str(dirs["runs"] / "sample")
    assert str(nested) not in other.selectbox(key="recent_choice").options
    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["run"] = app.query_params["run"]
    reloaded.run()
    assert reloaded.session_state["run_dir"] == str(nested) and not reloaded.exception


def test_a_format_1_run_names_the_upgrade_and_a_changed_pool_is_one_line(
    app: AppTest, dirs: dict[str, Path], tmp_path: Path
) -> None:
    """Format 2 reads a run's pairs from its pool: a run directory of format 1 is refused on every page
    with the command that upgrades it, and a pool changed since the run read it is refused where pairs
    are shown, in one line each, never a traceback."""
    from conftest import ENTRIES, cli, make_texts, write_caption_pool

    base = dirs["runs"] / tmp_path.name  # the pool too is under the data roots
    pool = write_caption_pool(base / "pool", make_texts(600))
    (base / "metadata.json").write_text(json.dumps(ENTRIES))
    old, changed = base / "format-1", base / "pool-changed"
    for out in (old, changed):
        assert cli("run", "--pool", pool, "--metadata", base / "metadata.json", "--t", 20, "--out", out) == 0
    plan = json.loads((old / "plan.json").read_text())
    (old / "plan.json").write_text(json.dumps({**plan, "format_version": 1}))
    app.session_state["run_dir"] = str(old)
    for page in PAGES[:6]:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.message for e in app.exception])
        said = texts_of(app.error)
        assert any(f"`curation upgrade {old}`" in e and len(e.splitlines()) == 1 for e in said), (page, said)

    shard = json.loads((changed / "plan.json").read_text())["shards"][0]["path"]
    os.utime(shard, ns=(0, Path(shard).stat().st_mtime_ns + 1_000_000_000))  # same bytes, touched
    app.session_state["run_dir"] = str(changed)
    for page in ("views/entries.py", "views/samples.py"):  # the pages that show pairs' captions
        app.switch_page(page).run()
        assert not app.exception, (page, [e.message for e in app.exception])
        said = texts_of(app.error)
        assert any(
            f"pool file {shard} changed since run {changed} read it" in e and len(e.splitlines()) == 1 for e in said
        ), (page, said)
    assert not app.dataframe  # the Samples page shows no pair of a pool that is not the run's


def test_pairs_of_a_pool_outside_the_data_roots_are_not_shown(
    app: AppTest, dirs: dict[str, Path], tmp_path: Path
) -> None:
    """A run's pairs are read from its pool: the dashboard shows them only for a pool under the data
    roots (a run directory in the runs folder may name any pool), and says which variable to set."""
    from conftest import ENTRIES, cli, make_texts, write_caption_pool

    pool = write_caption_pool(tmp_path / "elsewhere", make_texts(400))  # not under any data root
    (tmp_path / "metadata.json").write_text(json.dumps(ENTRIES))
    out = dirs["runs"] / tmp_path.name / "outside"
    assert cli("run", "--pool", pool, "--metadata", tmp_path / "metadata.json", "--t", 20, "--out", out) == 0
    app.session_state["run_dir"] = str(out)
    app.switch_page("views/overview.py").run()
    assert not app.exception and not app.error  # counts and thresholds need no pool
    for page in ("views/entries.py", "views/samples.py"):
        app.switch_page(page).run()
        assert not app.exception, (page, [e.message for e in app.exception])
        said = texts_of(app.error)
        assert any("pool file" in e and "CURATION_DATA_ROOTS" in e and len(e.splitlines()) == 1 for e in said), said
    assert not app.dataframe
    app.switch_page("views/export.py").run()
    app.button[0].click().run()  # no export job starts for such a pool
    said = texts_of(app.error)
    assert any("pool file" in e and "CURATION_DATA_ROOTS" in e for e in said), said
    assert "export_job" not in app.session_state


@pytest.mark.slow
def test_compare_shows_what_an_edit_of_the_metadata_did(app: AppTest, dirs: dict[str, Path], tmp_path: Path) -> None:
    """The open run is A; B is typed (or picked from the recent runs) and checked as the sidebar checks a
    run; every figure is what curation/compare.py gives, and follows t."""
    from conftest import cli

    import data_samples
    from curation.compare import compare_runs

    entries = json.loads(Path(data_samples.METADATA).read_text())
    removed = set(entries[::500])  # 178 entries, matched or not
    edited = dirs["runs"] / tmp_path.name / "edited"
    (tmp_path / "edited.json").write_text(json.dumps([e for e in entries if e not in removed] + ["photo of"]))
    assert (
        cli("run", "--pool", data_samples.POOL, "--metadata", tmp_path / "edited.json", "--t", 200, "--out", edited)
        == 0
    )
    sample = dirs["runs"] / "sample"
    app.switch_page("views/compare.py").run()
    assert not app.exception and any("Choose run B" in i for i in texts_of(app.info))
    app.text_input(key="compare_b_box").set_value(str(edited)).run()
    assert not app.exception and not app.error, texts_of(app.error)
    for t in (200.0, 40.0):
        expected = compare_runs(sample, edited, t)
        assert metric(app, "Kept pairs (A)") == f"{expected.a.kept:,}" == f"{Run(sample).size_at(t):,}"
        assert metric(app, "Kept pairs (B)") == f"{expected.b.kept:,}" == f"{Run(edited).size_at(t):,}"
        assert metric(app, "Only in A") == f"{len(removed):,}" and metric(app, "Only in B") == "1"
        assert metric(app, "Kept by A only") == f"{expected.pairs.kept_by_a_only:,}"
        assert metric(app, "Kept by B only") == f"{expected.pairs.kept_by_b_only:,}"
        only_a = app.dataframe[1].value  # after the figures table
        assert set(only_a["entry"]) == removed and list(only_a["count_a"]) == sorted(only_a["count_a"], reverse=True)
        assert app.dataframe[2].value["entry"].tolist() == ["photo of"]
        app.number_input(key="t_box").set_value(40.0).run()
    app.switch_page("views/balance.py").run()  # B stays chosen while the user looks elsewhere
    app.switch_page("views/compare.py").run()
    assert app.text_input(key="compare_b_box").value == str(edited)
    app.selectbox(key="compare_recent").set_value(str(sample)).run()  # the open run against itself
    assert metric(app, "Only in A") == metric(app, "Kept by A only") == metric(app, "Change side at t") == "0"
    assert metric(app, "Kept pairs (A)") == metric(app, "Kept pairs (B)")
    assert any("left out" in c or "counted 0" in c for c in texts_of(app.caption))
    for path, said in (
        ("/definitely/not/here", "is outside what this dashboard may use"),
        (str(dirs["runs"]), "not a run"),
    ):
        app.text_input(key="compare_b_box").set_value(path).run()
        assert not app.exception and any(said in e for e in texts_of(app.error)), texts_of(app.error)


def test_compare_with_a_run_of_another_pool_says_why_pairs_are_not_compared(
    app: AppTest, dirs: dict[str, Path], tmp_path: Path
) -> None:
    from conftest import cli

    import data_samples

    half = dirs["runs"] / tmp_path.name / "half"
    first = Path(data_samples.POOL) / "part-00000.parquet"
    assert cli("run", "--pool", first, "--metadata", data_samples.METADATA, "--t", 200, "--out", half) == 0
    app.switch_page("views/compare.py").run()
    app.text_input(key="compare_b_box").set_value(str(half)).run()
    assert not app.exception and not app.error, texts_of(app.error)
    assert any("different pools (2 files in A, 1 in B" in i for i in texts_of(app.info)), texts_of(app.info)
    assert int(metric(app, "Change side at t").replace(",", "")) > 0
    assert not any(m.label.startswith("Kept by") for m in app.metric)
