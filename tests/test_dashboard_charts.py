"""Charts and tables that read (issue 21, items 6 and 10): every log axis of dashboard/charts.py labels its
ticks at the powers of ten its data spans (never fewer than two), says "(log scale)", and its bars start
from a baseline the title states (or a linear axis from 0 where the range is small); the Overview's matched
share is a caption, not a delta with an arrow; the Languages table has headers in words, no "None", one
percentage format and thousands separators, and names its row of captions in no metadata language."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from conftest import cli, dashboard_environment, small_world_run
from streamlit.testing.v1 import AppTest

import data_samples
from dashboard import charts

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")

# Each chart function on data within one decade (or two) and on data spanning many.
SMALL, WIDE = "small range", "wide range"
CHARTS: dict[str, Callable[[str], go.Figure]] = {
    "counts_by_rank": lambda span: charts.counts_by_rank(
        np.sort(np.array([0, 41, 44, 47, 49]))
        if span == SMALL
        else np.sort(np.array([0, 1, 3, 40, 300, 5000, 70_000])),
        [45.0] if span == SMALL else [200.0, 40.0],
    ),
    "before_after": lambda span: charts.before_after(
        np.array(["a", "b", "c"]),
        np.array([49, 45, 41]) if span == SMALL else np.array([70_000, 5000, 12]),
        np.array([45, 44, 30]) if span == SMALL else np.array([900, 800, 12]),
        45.0 if span == SMALL else 200.0,
    ),
    "sources_bars": lambda span: charts.sources_bars(
        pd.DataFrame(
            {"source": ["wordnet", "extra"], "matched": [300, 120], "unmatched": [250, 0]}
            if span == SMALL
            else {"source": ["wordnet", "extra"], "matched": [80_000, 3], "unmatched": [6000, 1]}
        )
    ),
    "language_bars": lambda span: charts.language_bars(
        pd.DataFrame(
            {
                "language": ["en", "zh", "de"],
                "pairs": [2201, 744, 329],
                "matched_pairs": [2016, 651, 275],
                "kept": [1012, 647, 110],
            }
            if span == SMALL
            else {
                "language": ["en", "de", "zh", "ja"],
                "pairs": [3_000_000_000, 2_000_000, 50_000, 300],
                "matched_pairs": [2_000_000_000, 1_000_000, 20_000, 100],
                "kept": [300_000_000, 800_000, 20_000, 0],
            }
        ),
        200.0,
    ),
    "counts_scatter": lambda span: charts.counts_scatter(
        np.array([41.0, 44.0, 49.0]) if span == SMALL else np.array([1.0, 300.0, 70_000.0]),
        np.array([43.0, 44.0, 47.0]) if span == SMALL else np.array([3.0, 250.0, 9_000.0]),
        np.array(["a", "b", "c"]),
        45.0 if span == SMALL else 200.0,
        45.0 if span == SMALL else 200.0,
    ),
    "language_t_bars": lambda span: charts.language_t_bars(
        pd.DataFrame(
            {"language": ["en", "zh", "de"], "t": [200.0, 337.0, 120.0] if span == SMALL else [2e4, 337.0, 3.0]}
        ),
        200.0 if span == SMALL else 2e4,
        "en",
    ),
}
# The range over which a log axis is drawn with bars from a baseline rather than from 0 (a linear axis):
# the within-a-decade data of the bar charts may take either; the wide data must take a log axis.
BAR_CHARTS = {"before_after", "sources_bars", "language_bars", "language_t_bars"}
LABEL = re.compile(r"^(\d+(\.\d+)?)([kMBT]?)$")  # 1, 20, 0.5, 500, 1k, 20k, 1M, 5B
SCALE = {"": 1, "k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def axes(figure: go.Figure) -> dict[str, go.layout.XAxis | go.layout.YAxis]:
    return {"x": figure.layout.xaxis, "y": figure.layout.yaxis}


def plotted(figure: go.Figure, axis: str) -> np.ndarray:
    """Every positive number the figure draws against the x or y axis (category names left out)."""
    values = []
    for trace in figure.data:
        column = trace.x if axis == "x" else trace.y
        if column is None:
            continue
        for value in column:
            if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value) and value > 0:
                values.append(float(value))
    return np.array(values)


def read(label: str) -> float:
    """The number a tick label stands for."""
    found = LABEL.match(label)
    assert found, f"tick label {label!r} is not a number such as 1, 20, 1k or 5M"
    return float(found.group(1)) * SCALE[found.group(3)]


@pytest.mark.parametrize("span", [SMALL, WIDE])
@pytest.mark.parametrize("name", list(CHARTS))
def test_every_log_axis_labels_the_decades_its_data_spans(name: str, span: str) -> None:
    figure = CHARTS[name](span)
    logs = {key: axis for key, axis in axes(figure).items() if axis.type == "log"}
    if span == WIDE or name not in BAR_CHARTS:
        assert "y" in logs, f"{name} on a {span}: its counts need a log axis"
    for key, axis in logs.items():
        where = f"{name} ({span}), {key} axis"
        ticks, labels = list(axis.tickvals or []), list(axis.ticktext or [])
        assert len(ticks) >= 2, f"{where}: {len(ticks)} tick(s)"
        assert len(labels) == len(ticks), f"{where}: ticks without labels"
        for value, label in zip(ticks, labels):
            assert math.isclose(read(label), value, rel_tol=1e-9), f"{where}: {label!r} labels {value}"
        low, high = axis.range  # in decades: the ticks drawn are those inside it
        assert all(low - 1e-9 <= math.log10(v) <= high + 1e-9 for v in ticks), f"{where}: ticks outside {axis.range}"
        data = plotted(figure, key)
        assert min(ticks) <= data.min() and data.max() <= max(ticks), f"{where}: data beyond the labelled ticks"
        decades = [10.0**k for k in range(math.ceil(math.log10(data.min())), math.floor(math.log10(data.max())) + 1)]
        assert set(decades) <= {float(v) for v in ticks}, f"{where}: a power of ten the data spans is unlabelled"
        if data.max() >= 100 * data.min():  # many decades: labels at powers of ten only, not "5, 2, 1000, 5, 2"
            assert all(math.isclose(math.log10(v), round(math.log10(v))) for v in ticks), (where, labels)
        assert axis.title.text and "(log scale" in axis.title.text, f"{where}: the title says nothing of a log scale"


@pytest.mark.parametrize("span", [SMALL, WIDE])
@pytest.mark.parametrize("name", sorted(BAR_CHARTS))
def test_bars_start_from_a_stated_baseline_or_from_zero(name: str, span: str) -> None:
    figure = CHARTS[name](span)
    axis = figure.layout.yaxis
    bars = plotted(go.Figure([trace for trace in figure.data if trace.type == "bar"]), "y")
    if axis.type == "log":
        said = re.search(r"bars from ([\d.]+[kMBT]?)", axis.title.text or "")
        assert said, f"{name} ({span}): the title {axis.title.text!r} does not say where the bars start"
        baseline = read(said.group(1))
        assert axis.range is not None and math.isclose(axis.range[0], math.log10(baseline), abs_tol=1e-9), (
            f"{name} ({span}): the axis, where bars start on a log axis, begins at {axis.range}, not {baseline:g}"
        )
        assert baseline <= bars.min()
    else:  # a linear axis: bars from 0, its title says no log scale
        assert span == SMALL and axis.type in (None, "linear", "-"), (name, span, axis.type)
        assert axis.rangemode == "tozero" or (axis.range is not None and axis.range[0] == 0)
        assert "log" not in (axis.title.text or "")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("charts")
    sample, world = base / "runs" / "sample", base / "runs" / "world"
    assert (
        cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", 200, "--out", sample) == 0
    )
    small_world_run(base, world, 200, seed=5)
    settings = {
        "CURATION_RUNS_DIR": str(base / "runs"),
        "CURATION_EXPORT_DIR": str(base / "exports"),
        "CURATION_JOBS_DIR": str(base / "jobs"),
        "CURATION_DATA_ROOTS": str(base / "runs"),
    }
    with dashboard_environment(settings, "127.0.0.1"):
        yield {"sample": sample, "world": world}


def opened(run: Path, page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["run_dir"] = str(run)
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def unescaped(text: str) -> str:
    """Text as Markdown shows it (messages.plain escapes punctuation with backslashes)."""
    return re.sub(r"\\(.)", r"\1", text)


def test_the_matched_share_is_a_caption_not_a_delta(runs: dict[str, Path]) -> None:
    rows = json.loads((runs["sample"] / "run.json").read_text())["rows"]
    app = opened(runs["sample"], "views/overview.py")
    matched = next(m for m in app.metric if m.label == "Matched")
    assert matched.value == f"{rows['matched']:,}"
    assert not matched.proto.delta, f"a delta (drawn with an arrow): {matched.proto.delta!r}"
    share = f"{rows['matched'] / rows['in']:.1%} of the pool"
    assert share == "73.8% of the pool"  # the bundled sample, as the issue saw it
    assert any(share in c.value for c in app.caption), [c.value for c in app.caption]


def rendered(value: object, config: dict, integer: bool, placeholder: str) -> str:
    """A cell as Streamlit 1.67's table shows it (frontend formatNumber): the decimals come from the
    column's step (an integer column's step is 1); "localized" groups thousands, "percent" shows step's
    decimals less two (without a step: 0 to 2 decimals, whatever the value needs); a missing value shows
    the table's placeholder, "None" without one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return placeholder or "None"
    if not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    kind = config.get("type_config", {})
    step = kind.get("step", 1 if integer else None)
    digits = None if step is None else (0 if float(step) % 1 == 0 else len(repr(float(step)).split(".")[1]))
    form = kind.get("format")
    if form == "localized":
        text = f"{value:,.{digits if digits is not None else 3}f}"
        return text if digits is not None else text.rstrip("0").rstrip(".")
    if form == "percent":
        if digits is None:
            return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"
        return f"{value * 100:.{max(digits - 2, 0)}f}%"
    if form and form.startswith("%"):
        return form % value
    return f"{value:.{digits}f}" if digits is not None else f"{value:.4f}".rstrip("0").rstrip(".")


def test_the_languages_table_reads_as_words_and_numbers(runs: dict[str, Path]) -> None:
    app = opened(runs["world"], "views/languages.py")
    table = app.dataframe[0]
    frame, config = table.value, json.loads(table.proto.columns)
    assert frame.isna().any().any(), "the test run has no missing value: the placeholder would prove nothing"
    for column in frame.columns:
        label = config.get(column, {}).get("label")
        assert label and "_" not in label, f"column {column!r} is headed {label or column!r}"
    assert frame["language"].notna().all()
    shown = {
        column: [
            rendered(v, config.get(column, {}), pd.api.types.is_integer_dtype(frame[column]), table.proto.placeholder)
            for v in frame[column]
        ]
        for column in frame.columns
    }
    assert not [(c, cells) for c, cells in shown.items() if "None" in cells], "cells that read None"
    percent = [c for c in frame.columns if config.get(c, {}).get("type_config", {}).get("format") == "percent"]
    assert percent, "the kept share is a percentage"
    for column in percent + ["expected_kept"]:
        decimals = {
            len(cell.rstrip("%").partition(".")[2]) for cell in shown[column] if cell[-1].isdigit() or "%" in cell
        }
        assert len(decimals) == 1, f"{column} shows {shown[column]}"
    numbers = [c for c in frame.columns if c not in ("language", "tail_share") and c not in percent]
    for column in numbers:  # a million as the column would show it
        big = rendered(1_234_567.0, config.get(column, {}), pd.api.types.is_integer_dtype(frame[column]), "")
        assert big.startswith("1,234,567"), f"{column} shows a million as {big}"


def test_pairs_in_no_metadata_language_are_named_so(runs: dict[str, Path]) -> None:
    rows = json.loads((runs["world"] / "run.json").read_text())["languages"]
    unassigned = next(row["pairs"] for row in rows if row["language"] is None)
    app = opened(runs["world"], "views/languages.py")
    metric = next(m for m in app.metric if m.label.startswith("Pairs"))
    assert metric.value == f"{unassigned:,}" and "metadata" in metric.label, metric.label
    said = unescaped(metric.help)
    assert "no entries in this run's metadata" in said and "'lang' column" in said, said
    assert "(not in the metadata)" in set(app.dataframe[0].value["language"])


def test_entries_of_one_text_keep_their_own_bars() -> None:
    """A worldwide run's most matched entries can share a text (dog in en and in de): each keeps its bars."""
    names = np.array(["dog", "cat", "dog"])
    figure = charts.before_after(names, np.array([5000, 900, 40]), np.array([600, 500, 40]), 200.0)
    for trace in (t for t in figure.data if t.type == "bar"):
        assert len(set(trace.x)) == len(names), f"{trace.name}: {len(set(trace.x))} places for {len(names)} entries"
    assert list(figure.layout.xaxis.ticktext) == list(names)


def test_the_languages_page_tells_how_each_caption_got_its_language(runs: dict[str, Path]) -> None:
    record = json.loads((runs["world"] / "run.json").read_text())
    app = opened(runs["world"], "views/languages.py")
    how = app.dataframe[1].value
    assert how["captions"].sum() == record["rows"]["in"]  # every caption, once
    assert set(how["source"]) == {"the pool's column"}  # the run reads its 'lang' column
    assert "(none)" in set(how["code"])  # the captions whose column holds no code
    metric = next(m for m in app.metric if m.label == "the pool's column")
    assert metric.value == f"{record['rows']['in']:,}"
    older = runs["world"].parent / "world-before-decisions"
    shutil.copytree(runs["world"], older)
    (older / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "language_decisions"}))
    app = opened(older, "views/languages.py")
    assert any("before the studio recorded" in unescaped(info.value) for info in app.info)
