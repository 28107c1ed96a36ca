"""`curation gaps`: the n-grams no entry covers, counted over a run's pool in bounded memory, and what
adding them would cover (docs/design.md, "Coverage gaps")."""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import WORLD_METADATA, cli, run_pairs, small_world_run, write_pool

from curation.gaps import read_gaps
from curation.ngrams import default_stop_words, reference_grams
from metadata.loading import load_metadata

ROOT = Path(__file__).resolve().parent.parent
ALT_TEXTS = ROOT.parent / "shared" / "data" / "alt_text_10k.parquet"
SAMPLE_METADATA = ROOT / "data_samples" / "metadata.json"


def gaps_of(run: Path, *options: object) -> tuple[pa.Table, dict]:
    out = run.parent / f"{run.name}-gaps.parquet"
    assert cli("gaps", run, "--out", out, "--quiet", "--workers", "1", *options) == 0
    found = read_gaps(out)
    return found.table, found.summary


def unmatched_texts(run: Path) -> list[str | None]:
    pairs = run_pairs(run, ["text", "entry_ids"]).to_pylist()
    return [pair["text"] for pair in pairs if not pair["entry_ids"]]


def curate(pool: Path, metadata: Path, out: Path, *options: object) -> Path:
    assert cli("run", "--pool", pool, "--metadata", metadata, "--t", 50, "--out", out, *options) == 0
    return out


@pytest.fixture(scope="module")
def alt_text_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real web alt-texts curated twice: with the sample metadata plus the 40 n-grams its gaps put first
    (what a researcher adds), and with the same list less its most matched word that is no stop-word."""
    if not ALT_TEXTS.exists():
        pytest.skip("the real alt-texts (shared/data/alt_text_10k.parquet) are not here")
    base = tmp_path_factory.mktemp("alt-gaps")
    pool = base / "pool"
    pool.mkdir()
    pq.write_table(pq.read_table(ALT_TEXTS), pool / "part-000.parquet", row_group_size=2000)
    first = curate(pool, SAMPLE_METADATA, base / "first", "--shard-rows", 4000)
    table, _ = gaps_of(first, "--top", 40)
    added = [*load_metadata(str(SAMPLE_METADATA)).entries, *table.column("ngram").to_pylist()]
    (base / "with.json").write_text(json.dumps(added))
    with_ = curate(pool, base / "with.json", base / "with", "--shard-rows", 4000)
    counts = pq.read_table(with_ / "entry_counts.parquet").to_pandas().sort_values("count", ascending=False)
    stop = default_stop_words()
    word = next(e for e in counts["entry"] if " " not in e and e.lower() not in stop and e.isalpha())
    (base / "without.json").write_text(json.dumps([e for e in added if e != word]))
    without = curate(pool, base / "without.json", base / "without", "--shard-rows", 3000)  # other shards too
    return {"with": with_, "without": without, "word": word, "pool": pool}


def test_a_word_removed_from_the_metadata_comes_back_first(alt_text_runs: dict) -> None:
    word = alt_text_runs["word"]
    with_ = alt_text_runs["with"]
    entries = pq.read_table(with_ / "entry_counts.parquet").to_pandas()
    word_id = int(entries.index[entries["entry"] == word][0])
    count = int(entries["count"][word_id])
    ids = run_pairs(with_, ["entry_ids"]).column("entry_ids").to_pylist()
    only_by_word = sum(1 for pair in ids if pair == [word_id])  # pairs the word alone matched

    table, summary = gaps_of(alt_text_runs["without"], "--top", 100)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ngram"] == word, table.slice(0, 5).to_pylist()
    assert first["count"] == count  # every pair the entry matched holds the n-gram, and no other does
    assert first["unmatched"] == first["covered"] == only_by_word  # unmatched without it: matched by it alone
    assert table.column("count")[1].as_py() < count
    assert all(word in example.split(" ") or word in example for example in first["examples"])
    assert summary["pairs_read"] == 10_000


def test_counts_and_cover_agree_with_a_plain_count_of_the_captions(alt_text_runs: dict) -> None:
    run = alt_text_runs["without"]
    table, summary = gaps_of(run, "--top", 300, "--min-count", 3)
    stop = default_stop_words()
    pairs = run_pairs(run, ["text", "entry_ids"])
    everyone, lonely = Counter(), Counter()
    for text, ids in zip(pairs.column("text").to_pylist(), pairs.column("entry_ids").to_pylist()):
        for gram in reference_grams(text, (1, 2), stop):
            everyone[gram] += 1
            lonely[gram] += not ids
    entries = set(load_metadata(str(run.parent / "without.json")).entries)
    gaps = {gram: n for gram, n in everyone.items() if gram not in entries and n >= 3}
    assert summary["gaps"] == len(gaps)
    for row in table.to_pylist():
        assert (row["count"], row["unmatched"]) == (gaps[row["ngram"]], lonely[row["ngram"]])
    # the 300 kept are the most held: nothing left out is held by more pairs than the last one kept
    assert max(n for gram, n in gaps.items() if gram not in set(table.column("ngram").to_pylist())) <= row["count"]
    # covered: unmatched captions holding any of the first k, for every k
    chosen = table.column("ngram").to_pylist()
    best = Counter()
    for text in unmatched_texts(run):
        ranks = [chosen.index(g) for g in reference_grams(text, (1, 2), stop) if g in set(chosen)]
        if ranks:
            best[min(ranks)] += 1
    running = 0
    for rank, covered in enumerate(table.column("covered").to_pylist()):
        running += best[rank]
        assert covered == running


def test_spilling_workers_and_only_unmatched(alt_text_runs: dict, tmp_path: Path) -> None:
    """A tiny memory budget (every few thousand n-grams spilled), two workers: the same table."""
    run = alt_text_runs["without"]
    plain, _ = gaps_of(run, "--top", 200)
    spilled, _ = gaps_of(run, "--top", 200, "--max-rows", 3000, "--workers", "2")
    assert spilled.equals(plain)
    only, summary = gaps_of(run, "--top", 200, "--only-unmatched", "--rank-by", "unmatched")
    assert only.column("count").to_pylist() == only.column("unmatched").to_pylist()
    assert summary["pairs_read"] == summary["unmatched_pairs_read"] == len(unmatched_texts(run))
    by_unmatched, _ = gaps_of(run, "--top", 200, "--rank-by", "unmatched")
    assert by_unmatched.column("unmatched").to_pylist() == only.column("unmatched").to_pylist()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gaps-small")
    texts = ["a red dog on the beach", "The Red Dog, running", "hot dog stand", "a red dog", "a blue car", None, ""]
    pool = write_pool(base / "pool", {"id": list(range(len(texts))), "text": texts, "alt": ["Blue car"] * len(texts)})
    (base / "metadata.json").write_text(json.dumps(["dog", "hot dog", "car"]))
    out = base / "run"
    assert cli("run", "--pool", pool, "--metadata", base / "metadata.json", "--t", 2, "--out", out) == 0
    return out


def test_the_default_output_is_in_the_run_and_extra_entries_load(small_run: Path, tmp_path: Path, capsys) -> None:
    extra = tmp_path / "extra.txt"
    assert cli("gaps", small_run, "--quiet", "--workers", "1", "--min-count", 1, "--write-extra", extra) == 0
    said = capsys.readouterr().out
    found = read_gaps(small_run / "gaps" / "gaps.parquet")
    rows = {row["ngram"]: row for row in found.table.to_pylist()}
    assert rows["red"]["count"] == 2 and rows["Red"]["count"] == 1  # case kept, as matching keeps it
    assert rows["red dog"]["count"] == 2 and "dog" not in rows  # an entry is no gap
    assert "the" not in rows and "The Red" not in rows  # stop-words start or end nothing
    assert rows["blue"] == {**rows["blue"], "count": 1, "unmatched": 0}  # "a blue car" matched "car"
    assert rows["blue"]["examples"] == ["a blue car"]  # a matched example when no unmatched one holds it
    assert rows["Red"]["unmatched"] == 1 and rows["Red"]["examples"] == ["The Red Dog, running"]  # "Dog" is no "dog"
    assert rows["red"]["examples"] == ["a red dog on the beach", "a red dog"]
    assert extra.read_text().splitlines() == found.table.column("ngram").to_pylist()
    assert load_metadata(str(extra)).entries == found.table.column("ngram").to_pylist()
    assert "red dog" in said and "wrote" in said


def test_stop_words_can_be_replaced_or_dropped(small_run: Path, tmp_path: Path) -> None:
    none, _ = gaps_of(small_run, "--min-count", 1, "--stop-words", "none")
    assert {"the", "a", "a red"} <= set(none.column("ngram").to_pylist())
    mine = tmp_path / "stop.txt"
    mine.write_text("# mine\nred\n")
    table, summary = gaps_of(small_run, "--min-count", 1, "--stop-words", mine)
    grams = set(table.column("ngram").to_pylist())
    assert "red" not in grams and "Red" not in grams and "the" in grams and summary["stop_words"] == str(mine)


def test_bad_input_is_one_line(small_run: Path, tmp_path: Path, capsys) -> None:
    for arguments, said in [
        ([small_run, "--n", "5"], "sizes from 1 to 4"),
        ([tmp_path / "nothing"], "run directory not found"),
        ([small_run, "--stop-words", tmp_path / "missing.txt"], "cannot read stop-words"),
        ([small_run, "--language", "en"], "--language is for worldwide runs"),
    ]:
        assert cli("gaps", *arguments, "--quiet") == 2
        error = capsys.readouterr().err
        assert said in error and error.count("\n") == 1, error


def test_several_texts_per_image_are_one_caption_without_ngrams_across_them(tmp_path: Path) -> None:
    pool = write_pool(tmp_path / "pool", {"id": [1, 2], "alt": ["red dog", "blue"], "title": ["big cat", "cat"]})
    (tmp_path / "m.json").write_text(json.dumps(["dog"]))
    run = curate(pool, tmp_path / "m.json", tmp_path / "run", "--text-columns", "alt,title")
    table, _ = gaps_of(run, "--min-count", 1)
    rows = {row["ngram"]: row for row in table.to_pylist()}
    assert "dog big" not in rows and "blue cat" not in rows  # no bigram spans two texts
    assert rows["cat"]["count"] == 2 and rows["cat"]["unmatched"] == 1  # pair 2 matched nothing


def test_a_worldwide_run_has_gaps_per_language(tmp_path: Path) -> None:
    run = small_world_run(tmp_path, tmp_path / "run", t=50)
    table, _ = gaps_of(run, "--min-count", 1, "--top", 500)
    rows = table.to_pylist()
    for row in rows:  # no n-gram of a language is one of its entries
        assert row["ngram"] not in WORLD_METADATA.get(row["language"], [])
    assert any(r["language"] == "en" and r["ngram"] == "hot" for r in rows)
    assert not any(r["language"] == "de" and r["ngram"] == "Hund" for r in rows)
    if importlib.util.find_spec("rjieba"):  # Chinese captions run their words together: cut, they give words
        chinese = {r["ngram"] for r in rows if r["language"] == "zh"}
        assert {"一只", "的", "一只狗"} <= chinese and all(len(gram) <= 6 for gram in chinese)
    german, _ = gaps_of(run, "--min-count", 1, "--language", "de")
    assert set(german.column("language").to_pylist()) == {"de"}
    extra, out = tmp_path / "x.txt", tmp_path / "g.parquet"
    assert cli("gaps", run, "--quiet", "--write-extra", extra, "--out", out) == 2  # several languages
    assert cli("gaps", run, "--quiet", "--language", "de", "--write-extra", extra, "--out", out) == 0
    assert extra.read_text().splitlines() == pq.read_table(out).column("ngram").to_pylist()


@pytest.mark.remote
def test_a_run_in_s3_gets_its_gaps_in_s3(small_run: Path, s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    remote = f"s3://{s3_bucket}/gaps-run"
    pool = tmp_path / "pool"
    write_pool(pool, {"id": [1, 2, 3], "text": ["red dog", "red cat", "blue sky"]})
    (tmp_path / "m.json").write_text(json.dumps(["dog"]))
    assert cli("run", "--pool", pool, "--metadata", tmp_path / "m.json", "--t", 1, "--out", remote) == 0
    assert cli("gaps", remote, "--quiet", "--workers", "1", "--min-count", 1) == 0
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    assert client.head_object(Bucket=s3_bucket, Key="gaps-run/gaps/gaps.parquet")["ContentLength"] > 0
    found = read_gaps(f"{remote}/gaps/gaps.parquet")
    assert found.table.column("ngram").to_pylist()[0] == "red"
    assert cli("gaps", remote, "--quiet", "--min-count", 1, "--out", f"{remote}-gaps.parquet") == 0
    assert read_gaps(f"{remote}-gaps.parquet").table.equals(found.table)
