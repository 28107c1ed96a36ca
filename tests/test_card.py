"""`curation card`: the data card's figures are `curation stats`'s, its page references nothing outside
itself and draws its charts in Chromium with the network cut, the Export page offers it, and a run
and a card in S3 work as local ones do."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import cli, dashboard_environment, s3_store, small_world_run

import data_samples

T = 200.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled sample curated at T (its metadata has sources beside it), and a worldwide run."""
    base = tmp_path_factory.mktemp("card")
    sample, world = base / "runs" / "sample", base / "runs" / "world"
    assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T, "--out", sample) == 0
    small_world_run(base, world, T, seed=3)
    return {"base": base, "sample": sample, "world": world}


def card(run: Path | str, out: Path | str, *args: object) -> dict:
    """Write the card (and its JSON beside it) and return the JSON."""
    json_out = str(out).removesuffix(".html") + ".json"
    assert cli("card", run, "--out", out, "--json", json_out, *args) == 0
    return json.loads(Path(json_out).read_text()) if not str(json_out).startswith("s3://") else {}


def stats(run: Path | str, capsys: pytest.CaptureFixture, *args: object) -> dict:
    capsys.readouterr()
    assert cli("stats", run, "--json", "--quiet", *args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("which", ["sample", "world"])
@pytest.mark.parametrize("t", [T, 37.5])
def test_the_cards_figures_are_what_stats_gives(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, which: str, t: float
) -> None:
    figures = card(runs[which], tmp_path / "card.html", "--t", t, "--seed", 0)
    expected = stats(runs[which], capsys, "--t", t, "--seed", 0, "--top", len(figures["top_entries"]))
    assert figures["at_t"] == expected["at_t"][0]  # kept, expected, head/tail, p(t) and, worldwide, per language
    assert (
        figures["pool"]["pairs"] == expected["pairs"] and figures["pool"]["matched_pairs"] == expected["matched_pairs"]
    )
    assert figures["pool"]["matched_share"] == expected["matched_pairs"] / expected["pairs"]
    assert figures["estimates"] == expected["estimates"] and figures["seed"] == expected["seed"] == 0
    assert [(r["entry"], r["count"]) for r in figures["top_entries"]] == [
        (r["entry"], r["count"]) for r in expected["top_entries"]
    ]
    # kept per entry: what `stats --write-entry-counts` writes
    entry_counts = tmp_path / "entries.parquet"
    assert cli("stats", runs[which], "--t", t, "--seed", 0, "--write-entry-counts", entry_counts, "--quiet") == 0
    kept = pq.read_table(entry_counts).column("kept").to_pylist()
    assert all(row["kept"] == kept[row["entry_id"]] for row in figures["top_entries"])
    if which == "world":
        assert figures["languages"] == expected["at_t"][0]["languages"] and figures["reference_language"] == "en"
        assert {c["id"] for c in figures["charts"]} == {"counts_by_rank", "before_after", "language_bars"}
        assert figures["sources"] is None and "no sources" in figures["sources_note"]
    else:
        assert figures["languages"] is None
        assert {r["source"] for r in figures["sources"]} >= {"wordnet"}  # metadata.parquet beside the list
        # per source as the Overview page computes it (pandas), with the matches kept at t beside
        entries = pq.read_table(entry_counts).to_pandas()
        merged = entries.merge(pq.read_table(data_samples.METADATA_TABLE).to_pandas(), on="entry", how="left")
        merged = merged.explode("sources")
        merged["sources"] = merged["sources"].fillna("unknown")
        by_source = merged.groupby("sources").agg(
            matched=("count", lambda c: int((c > 0).sum())),
            unmatched=("count", lambda c: int((c == 0).sum())),
            matches=("count", "sum"),
            kept_matches=("kept", "sum"),
        )
        assert figures["sources"] == [
            {"source": source, **{k: int(v) for k, v in row.items()}} for source, row in by_source.iterrows()
        ]
    provenance = figures["provenance"]
    assert provenance["t"] == t and provenance["command"].startswith("curation card ")
    assert set(provenance["versions"]) == {"python", "curation-studio", "pyarrow", "numpy", "plotly"}
    assert provenance["metadata"]["fingerprint"].startswith("sha256:") and provenance["pool"]["rows"] > 0


class References(HTMLParser):
    """Every attribute value, every script's and style's text, and the page's text, apart."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [value or "" for _, value in attrs]
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        {"script": self.scripts, "style": self.styles}.get(self._in, self.text).append(data)


URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def test_the_page_references_nothing_outside_itself(runs: dict[str, Path], tmp_path: Path) -> None:
    import plotly.offline

    card(runs["sample"], tmp_path / "card.html", "--t", T)
    page = (tmp_path / "card.html").read_text()
    found = References()
    found.feed(page)
    assert not {"link", "img", "iframe", "object", "embed", "base", "a", "source"} & set(found.tags)
    assert not [value for value in found.attributes if URL.search(value) or value.startswith(("http", "//"))]
    assert not any("url(" in style or "@import" in style for style in found.styles)
    # plotly.js inline, whole; the other scripts (one per chart) name no address
    library = plotly.offline.get_plotlyjs()
    assert library in found.scripts
    assert not [script for script in found.scripts if script != library and URL.search(script)]
    # the provenance names the pool's files as plain text
    assert any("part-00000.parquet" in text for text in found.text)


@contextmanager
def blocked_browser_page(path: Path, attempted: list[str]) -> Iterator:
    """``path`` open in Chromium (Debian's, through playwright, launched as tests/test_browser.py does)
    with every request that is not a file:// one aborted and recorded in ``attempted``; yields the page
    and the script errors it raised."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    def route(request_route) -> None:  # noqa: ANN001 (playwright's Route)
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            attempted.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri())
            yield page, errors
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("which", ["sample", "world"])
def test_the_page_draws_its_charts_offline_in_chromium(runs: dict[str, Path], tmp_path: Path, which: str) -> None:
    from test_browser import _require_browser

    _require_browser()
    figures = card(runs[which], tmp_path / "card.html", "--t", T)
    attempted: list[str] = []
    with blocked_browser_page(tmp_path / "card.html", attempted) as (page, errors):
        page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=60_000)
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {len(figures['charts'])}",
            timeout=60_000,
        )
        drawn = page.locator(".js-plotly-plot:has(svg.main-svg)").count()
        assert drawn == page.locator(".js-plotly-plot").count() == len(figures["charts"])
        assert page.locator(".js-plotly-plot .xtick").count() > 0  # axes with their ticks, not an empty frame
        assert not errors, errors
    assert attempted == []


def test_a_run_that_is_not_matched_or_has_no_thresholds_for_the_seed_is_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    for run, seed in ((tmp_path / "empty", 0), (tmp_path / "missing", 0), (runs["sample"], 7)):
        capsys.readouterr()
        assert cli("stats", run, "--t", T, "--seed", seed, "--json", "--quiet") == 2
        said = capsys.readouterr().err
        assert cli("card", run, "--t", T, "--seed", seed, "--out", tmp_path / "c.html") == 2
        err = capsys.readouterr().err
        assert err == said and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
        assert not (tmp_path / "c.html").exists()
    capsys.readouterr()
    assert cli("card", runs["sample"], "--t", T, "--out", "https://example.org/c.html") == 2
    assert "s3:// or gs://" in capsys.readouterr().err


def test_help_says_what_a_card_holds(capsys: pytest.CaptureFixture) -> None:
    assert cli("card", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("offline", "stats", "--json", "s3://", "provenance", "tail share"):
        assert words in text, words


def test_the_export_page_writes_the_card_and_offers_it(runs: dict[str, Path]) -> None:
    from streamlit.testing.v1 import AppTest

    base = runs["base"]
    settings = {
        "CURATION_RUNS_DIR": str(base / "runs"),
        "CURATION_EXPORT_DIR": str(base / "exports"),
        "CURATION_JOBS_DIR": str(base / "jobs"),
        "CURATION_DATA_ROOTS": str(base / "runs"),
    }
    app_file = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    with dashboard_environment(settings, "127.0.0.1"):
        app = AppTest.from_file(app_file, default_timeout=120).run()
        app.switch_page("views/export.py").run()
        assert not app.exception, [e.message for e in app.exception]
        app.number_input(key="export_t").set_value(100).run()
        app.button(key="export_card").click().run()
        assert not app.exception, [e.message for e in app.exception]
        html_path = base / "exports" / "curated-t100-seed0.card.html"
        json_path = html_path.with_name("curated-t100-seed0.card.json")
        assert html_path.exists() and json_path.exists()
        figures = json.loads(json_path.read_text())
        assert figures["t"] == 100 and figures["seed"] == 0
        labels = [button.label for button in app.download_button]
        assert {"Download the data card", "Download its figures (JSON)"} <= set(labels), labels
        app.text_input(key="export_name").set_value("../outside").run()
        app.button(key="export_card").click().run()
        assert app.error and not (base / "outside.card.html").exists()


@pytest.mark.remote
@pytest.mark.slow
def test_a_card_of_a_run_in_s3_goes_to_s3(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with s3_store(tmp_path / "cache", "cards") as endpoint:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint)
        run = "s3://cards/runs/sample"
        assert cli("run", "--pool", data_samples.POOL, "--metadata", data_samples.METADATA, "--t", T, "--out", run) == 0
        assert cli("card", run, "--t", T, "--out", "s3://cards/c/card.html", "--json", "s3://cards/c/card.json") == 0
        figures = json.loads(client.get_object(Bucket="cards", Key="c/card.json")["Body"].read())
        page = client.get_object(Bucket="cards", Key="c/card.html")["Body"].read().decode()
        assert figures["at_t"] == stats(run, capsys, "--t", T)["at_t"][0] and figures["run_dir"] == run
        assert page.startswith("<!DOCTYPE html>") and f"{figures['at_t']['kept']:,}" in page
        local = card(runs["sample"], tmp_path / "local.html", "--t", T)
        assert figures["at_t"] == local["at_t"]  # the same pool and metadata: the same figures
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint
