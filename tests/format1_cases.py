"""The cases on which run directory format 2 must curate exactly what format 1 did, and how a run's
outcome is summed up for the comparison (tests/test_format1_equivalence.py).

tests/format1_results.json holds the outcomes the format-1 code gave (git commit 5494bc7, the last
before format 2), made once with:

    git worktree add --detach /tmp/format1 5494bc7
    .venv/bin/python tests/format1_cases.py /tmp/format1 > tests/format1_results.json

Inputs are generated here from fixed seeds, so both codes see the same bytes. Each outcome holds the
curated ids, the entry counts, every pair's entry ids and keep threshold in pool order (as digests),
and the figures of run.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ENTRIES, make_texts, write_caption_pool, write_pool  # noqa: E402

# A frozen copy of tests/test_worldwide_run.py's world (not imported from it): the stored outcomes were
# made from exactly these inputs, which must not move when that test's do.
WORLD_METADATA = {
    "en": ["dog", "cat", "hot dog", "red", "photo", "stock", "- stock", "car", "the"],
    "zh": ["狗", "猫", "照片", "红色", "汽车"],
    "de": ["Hund", "Katze", "Foto", "rot", "dog"],
    "other": ["dog", "photo"],
}
WORLD_WORDS = {
    "en": ["a", "dog", "cat", "hot", "red", "photo", "the", "car", "-- stock", "in", "dogs", "catalog"],
    "zh": ["一只", "狗", "猫", "的", "照片", "红色", "汽车", "在", "草地"],
    "de": ["ein", "Hund", "Katze", "rot", "Foto", "der", "dog", "Hunde"],
    "fr": ["un", "chien", "dog", "photo", "rouge"],
}

# name -> (inputs, the run's options beyond --pool, --metadata and --out)
CASES = {
    "metaclip1-tokens": ("captions", ["--t", "30", "--seed", "1", "--shard-rows", "700", "--matcher", "tokens"]),
    "metaclip1-aho-corasick-2-workers": (
        "captions",
        ["--t", "30", "--seed", "1", "--shard-rows", "700", "--matcher", "aho-corasick", "--workers", "2"],
    ),
    "metaclip1-content-keys": ("captions-without-ids", ["--t", "12", "--seed", "5", "--shard-rows", "1000"]),
    "worldwide": ("world", ["--t", "40", "--seed", "3", "--language-column", "lang", "--shard-rows", "1500"]),
}


def make_inputs(kind: str, base: Path) -> tuple[Path, Path]:
    """(pool, metadata) of one kind, written under ``base``."""
    if kind.startswith("captions"):
        pool = write_caption_pool(base / "pool", make_texts(3000))
        if kind == "captions-without-ids":
            for part in pool.glob("*.parquet"):
                pq.write_table(pq.read_table(part).drop_columns(["id"]), part, row_group_size=500)
        metadata = base / "metadata.json"
        metadata.write_text(json.dumps(ENTRIES))
        return pool, metadata
    rng = random.Random(12)
    codes = [rng.choice(["en"] * 5 + ["zh"] * 3 + ["de"] * 2 + ["fr", None]) for _ in range(6000)]
    texts = []
    for code in codes:
        words = [rng.choice(WORLD_WORDS[code or "en"]) for _ in range(rng.randint(1, 6))]
        text = ("" if code == "zh" else " ").join(words)
        text = rng.choice(["", " ", "\u3000", "\t"]) + text + rng.choice(["", ".", " ", ",", "\xa0"])
        texts.append(text if rng.random() > 0.02 else None)
    pool = write_pool(base / "pool", {"id": list(range(6000)), "text": texts, "lang": codes}, files=2)
    entries = [e for language in WORLD_METADATA for e in WORLD_METADATA[language]]
    languages = [language for language in WORLD_METADATA for _ in WORLD_METADATA[language]]
    metadata = base / "metadata.parquet"
    pq.write_table(pa.table({"entry": entries, "language": languages}), metadata)
    return pool, metadata


def _digest(values: object) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def _parts(folder: Path, column: str) -> list:
    return [v for part in sorted(folder.glob("part-*.parquet")) for v in pq.read_table(part)[column].to_pylist()]


def outcome(out: Path, pool: Path) -> dict:
    """What a run curated, in a form both formats give: format 1 kept curated/ and annotated/, format 2
    a manifest and index/."""
    record = json.loads((out / "run.json").read_text())
    parameters = record["parameters"]
    if (out / "annotated").is_dir():
        curated = pq.read_table(out / "curated", columns=["pair_key"]).column("pair_key").to_pylist()
        entry_ids = _parts(out / "annotated", "entry_ids")
    else:
        name = f"curated-t{float(parameters['t'])!r}-seed{parameters['seed']}.parquet"
        curated = pq.read_table(out / "manifests" / name, columns=["pair_key"]).column("pair_key").to_pylist()
        entry_ids = _parts(out / "index", "entry_ids")
    thresholds = np.array(_parts(out / "thresholds" / f"seed-{parameters['seed']}", "k"), dtype=np.float64)
    rows = record["rows"]
    result = {
        "curated_pair_keys": _digest(sorted(curated)),
        "curated": len(curated),
        "entry_counts": pq.read_table(out / "entry_counts.parquet", columns=["count"]).column("count").to_pylist(),
        "entry_ids": _digest(entry_ids),
        "thresholds": hashlib.sha256(thresholds.tobytes()).hexdigest(),
        "rows": {k: rows[k] for k in ("in", "matched", "unmatched", "null_or_empty_text", "matches", "kept")},
        "expected_kept": round(rows["expected_kept"], 2),
        "balance": record["balance"],
        "parameters": parameters,
    }
    if record.get("languages"):
        result["languages"] = [
            {k: row[k] for k in ("language", "t", "pairs", "matched_pairs", "kept")} for row in record["languages"]
        ]
    return result


def run_case(name: str, code: Path | None, base: Path) -> dict:
    """Run one case with the code at ``code`` (None: the code this test imports) and sum it up."""
    kind, options = CASES[name]
    pool, metadata = make_inputs(kind, base / "inputs")
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    command = [sys.executable, "-m", "curation", "run", "--pool", str(pool), "--metadata", str(metadata)]
    command += ["--out", str(base / "run"), "--quiet", *options]
    if "--workers" not in options:
        command += ["--workers", "1"]
    done = subprocess.run(command, env=env, cwd=base, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
    return outcome(base / "run", pool)


if __name__ == "__main__":
    code = Path(sys.argv[1]).resolve()
    results = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as scratch:
            results[case] = run_case(case, code, Path(scratch))
    print(json.dumps({"made_by": "format-1 code, git commit 5494bc7", "cases": results}, indent=1))
