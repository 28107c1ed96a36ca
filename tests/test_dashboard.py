"""Every page of the dashboard, driven by Streamlit's AppTest on the bundled sample."""

from __future__ import annotations

import csv
import importlib
import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from curation import Run
from curation.jobs import wait

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/overview.py", "views/entries.py", "views/balance.py", "views/samples.py", "views/export.py",
         "views/jobs.py"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs, exports and jobs of this module live in a temporary directory, set before the app loads."""
    base = tmp_path_factory.mktemp("dashboard")
    paths = {"runs": base / "runs", "exports": base / "exports", "jobs": base / "jobs"}
    saved = {key: os.environ.get(key) for key in ("CURATION_RUNS_DIR", "CURATION_EXPORT_DIR", "CURATION_JOBS_DIR")}
    os.environ["CURATION_RUNS_DIR"] = str(paths["runs"])
    os.environ["CURATION_EXPORT_DIR"] = str(paths["exports"])
    os.environ["CURATION_JOBS_DIR"] = str(paths["jobs"])
    import dashboard.data

    importlib.reload(dashboard.data)
    yield paths
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    importlib.reload(dashboard.data)


@pytest.fixture
def app(dirs: dict[str, Path]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_first_start_curates_the_sample_and_every_page_renders(app: AppTest, dirs: dict[str, Path]) -> None:
    assert (dirs["runs"] / "sample" / "run.json").exists()
    assert metric(app, "Pool rows") == "30,000"
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, [e.message for e in app.exception])
        assert not app.error, (page, [e.value for e in app.error])


def test_moving_t_changes_kept_pairs_to_the_engines_size(app: AppTest, dirs: dict[str, Path]) -> None:
    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/balance.py").run()
    assert metric(app, "Kept pairs") == f"{run.size_at(200):,}"
    for t in (7.5, 50, 1_000, 123_456):
        app.number_input(key="t").set_value(t).run()
        assert not app.exception
        assert metric(app, "Kept pairs") == f"{run.size_at(t):,}"
        assert metric(app, "Expected") == f"{run.expected_size_at(t):,.1f}"  # the sample: every matched pair
    app.switch_page("views/entries.py").run()  # t follows the user to other pages
    assert app.session_state["t"] == 123_456


@pytest.mark.parametrize("t", [0, -5])
def test_t_that_is_not_positive_gets_a_message(app: AppTest, t: float) -> None:
    app.switch_page("views/balance.py").run()
    app.number_input(key="t").set_value(t).run()
    assert not app.exception
    assert any("t must be a positive number" in e.value for e in app.error)
    assert not [m for m in app.metric if m.label == "Kept pairs"]


def test_export_runs_as_a_job_writes_its_files_and_refuses_traversal(app: AppTest, dirs: dict[str, Path]) -> None:
    app.switch_page("views/export.py").run()
    app.number_input(key="export_t").set_value(100).run()
    assert any("the manifest holds" in c.value and f"{Run(dirs['runs'] / 'sample').size_at(100):,} pairs" in c.value
               for c in app.caption)
    app.text_input(key="export_name").set_value("from-test")
    app.radio(key="export_format").set_value("csv")
    app.button[0].click().run()
    assert not app.exception
    job = wait(dirs["jobs"], app.session_state["export_job"])
    assert job.kind == "export" and job.state == "finished", job
    written = dirs["exports"] / "from-test.csv"
    assert written.exists() and (dirs["exports"] / "from-test.provenance.json").exists()
    with open(written, newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))  # captions may hold quoted newlines
    assert rows == Run(dirs["runs"] / "sample").size_at(100)
    provenance = json.loads((dirs["exports"] / "from-test.provenance.json").read_text())
    assert provenance["t"] == 100 and provenance["file"] == "from-test.csv"
    app.run()
    assert any(f"Wrote {rows:,} pairs" in s.value for s in app.success)
    app.text_input(key="export_name").set_value("../outside")
    app.button[0].click().run()
    assert any("refused" in e.value for e in app.error)
    assert not (dirs["exports"].parent / "outside.csv").exists()


@pytest.mark.parametrize(("path", "said"), [("/definitely/not/here", "not a directory"),
                                           (".", "not a run directory"),
                                           ("gs://bucket/runs/laion", "run directories can live on s3://")])
def test_a_path_that_is_not_a_run_directory(app: AppTest, path: str, said: str) -> None:
    app.session_state["run_dir"] = path
    for page in PAGES[:5]:
        app.switch_page(page).run()
        assert not app.exception
        assert any(said in e.value for e in app.error), page


def test_search_with_quotes_and_sql(app: AppTest) -> None:
    app.switch_page("views/entries.py").run()
    app.text_input(key="entry_search").set_value("'; DROP TABLE entries; --").run()
    assert not app.exception
    assert any("No entry contains" in i.value for i in app.info)
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
    assert any("pool not found" in e.value for e in app.error)


def test_a_second_t_is_compared_side_by_side(app: AppTest, dirs: dict[str, Path]) -> None:
    run = Run(dirs["runs"] / "sample")
    app.switch_page("views/balance.py").run()
    app.toggle(key="compare").set_value(True).run()
    app.number_input(key="t2").set_value(40).run()
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
    assert any("no more than t = 1e+09" in i.value for i in app.info) and not app.dataframe
    app.text_input(key="sample_entry").set_value("no such entry at all").run()
    assert any("is not an entry" in w.value for w in app.warning)


def test_a_run_with_half_made_thresholds_gets_a_message(app: AppTest, tmp_path: Path, dirs: dict[str, Path]) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dirs["runs"] / "sample", broken)
    next((broken / "thresholds" / "seed-0").glob("part-*.parquet")).unlink()
    app.session_state["run_dir"] = str(broken)
    app.switch_page("views/balance.py").run()
    assert not app.exception
    assert any("no complete keep thresholds" in e.value for e in app.error)


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

    copy = tmp_path / name
    shutil.copytree(dirs["runs"] / "sample", copy)
    return copy


def test_a_run_without_preview_files_is_prepared_on_first_open(app: AppTest, dirs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    import shutil

    old = copy_of_sample(dirs, tmp_path, "old-run")
    shutil.rmtree(old / "preview")  # as a run made before previews existed
    app.session_state["run_dir"] = str(old)
    app.switch_page("views/balance.py").run()
    assert not app.exception and not app.error
    assert (old / "preview" / "seed-0" / "preview.json").exists()
    assert metric(app, "Kept pairs") == f"{Run(old).size_at(200):,}"


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
