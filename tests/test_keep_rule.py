"""The keep rule (curation/keep_rule.py) against the formulas written out here: MetaCLIP's p_e and P,
MetaCLIP 2's t per language (t_to_p of the reference, p_to_t of every other language), head and tail
split at each language's t, and a pair kept iff k < its language's t. And the rule is the one place
that turns a t into each language's t."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from curation import counting
from curation.keep_rule import KeepAt, KeepRule
from curation.worldwide import p_to_t, t_to_p
from studio_common.errors import CurationError

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ["de", "en", "fr"]


def naive_language_t(counts: np.ndarray, languages: list[str], t: float, reference: str) -> dict[str, float]:
    """MetaCLIP 2: the reference keeps t; every other language the t whose tail share is nearest the
    reference's tail share at t."""
    counts, languages = np.asarray(counts), np.asarray(languages)
    p = t_to_p(counts[languages == reference], t)
    return {
        language: float(t) if language == reference else p_to_t(counts[languages == language], p)
        for language in sorted(set(languages.tolist()))
    }


def naive_p(count: int, t: float) -> float:
    """p_e: 1 for an entry counted t times or fewer (or never), else t / c_e; 0 when t is 0 and it matched."""
    if count == 0:
        return 1.0
    return min(1.0, t / count)


def naive_pair_p(entry_ids: list[int], p: np.ndarray) -> float:
    miss = 1.0
    for entry_id in entry_ids:
        miss *= 1.0 - p[entry_id]
    return 1.0 - miss


worldwide_cases = st.lists(st.tuples(st.integers(0, 300), st.sampled_from(LANGUAGES)), min_size=3, max_size=40).filter(
    lambda rows: {"en"} <= {language for _, language in rows}
)


@settings(max_examples=examples(300), deadline=None)
@given(worldwide_cases, st.floats(0.5, 400, allow_nan=False), st.data())
def test_every_answer_follows_the_formulas(rows: list[tuple[int, str]], t: float, data: st.DataObject) -> None:
    counts = np.array([count for count, _ in rows], dtype=np.int64)
    languages = [language for _, language in rows]
    rule = KeepRule(counts, languages, "en")
    at = rule.at(t)

    expected_t = naive_language_t(counts, languages, t, "en")
    assert at.per_language == expected_t and at.t == t and at.worldwide
    entry_t = np.array([expected_t[language] for language in languages])
    assert np.array_equal(rule.entry_t(t), entry_t)
    p = np.array([naive_p(c, e) for c, e in zip(counts, entry_t)])
    assert np.allclose(rule.entry_probabilities(t), p)

    # head and tail: each language split at its own t, added up
    split = [
        counting.head_tail(counts[np.array(languages) == language], expected_t[language]) for language in expected_t
    ]
    head_tail = rule.head_tail(t)
    for field in ("head_entries", "tail_entries", "unmatched_entries", "head_matches", "tail_matches", "matches"):
        assert getattr(head_tail, field) == sum(getattr(part, field) for part in split), field
    assert rule.tail_share(t) == pytest.approx(t_to_p(counts[np.array(languages) == "en"], t))

    # pairs: kept iff k < the t of the caption's language; no language (or one without entries): never
    # a pair's entries are entries it matched, so each is counted at least once
    matched = [int(i) for i in np.flatnonzero(counts)] or [0]
    pairs = data.draw(st.lists(st.lists(st.sampled_from(matched), max_size=4, unique=True), max_size=12))
    pairs = [pair if counts[pair].all() else [] for pair in pairs]
    captions = data.draw(st.lists(st.sampled_from([*LANGUAGES, "ja", None]), min_size=len(pairs), max_size=len(pairs)))
    thresholds = np.array(data.draw(st.lists(st.floats(0, 500), min_size=len(pairs), max_size=len(pairs))))
    pair_t = at.pair_t(pa.array(captions, type=pa.string()))
    assert np.array_equal(pair_t, [expected_t.get(c, 0.0) if c else 0.0 for c in captions])
    assert np.array_equal(at.keeps(thresholds, pair_t), thresholds < pair_t)
    finite = np.isfinite(thresholds)
    assert np.array_equal(at.drops(thresholds, pair_t), finite & ~(thresholds < pair_t))
    groups = np.array([LANGUAGES.index(c) if c in LANGUAGES else len(LANGUAGES) for c in captions], dtype=np.int64)
    assert np.array_equal(at.group_t(groups, LANGUAGES), pair_t)
    ids = pa.array(pairs, type=pa.list_(pa.int32()))
    probabilities = rule.pair_probabilities(ids, t, pa.array(captions, type=pa.string()))
    pair_p = [
        naive_pair_p(
            pair, np.array([naive_p(counts[e], expected_t.get(c, 0.0) if c else 0.0) for e in range(len(counts))])
        )
        for pair, c in zip(pairs, captions)
    ]
    assert np.allclose(probabilities, pair_p)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=50), st.floats(0.5, 600, allow_nan=False))
def test_one_language_is_the_one_group_case(counts_list: list[int], t: float) -> None:
    counts = np.array(counts_list, dtype=np.int64)
    rule = KeepRule(counts)
    at = rule.at(t)
    assert not rule.worldwide and not at.worldwide and at.per_language is None and rule.parameters == {}
    assert at.pair_t(None) == t and at.of_language("de") == t and rule.entry_t(t) == t
    assert rule.head_tail(t) == counting.head_tail(counts, t)
    assert rule.tail_share(t) == pytest.approx(counting.tail_share(counts, t))
    for share in (0.0, 0.3, 0.9, 1.0):
        assert rule.t_for_tail_share(share) == counting.t_for_tail_share(counts, share)
    assert np.allclose(rule.entry_probabilities(t), [naive_p(c, t) for c in counts])


def test_fixed_languages_and_the_reference_come_from_the_run_record() -> None:
    counts = np.array([50, 10, 1, 40, 3, 0])
    languages = ["en", "en", "en", "de", "de", "fr"]
    table = pa.table({"entry": list("abcdef"), "count": counts, "language": languages})
    rule = KeepRule.from_table(table, {"reference_language": "de", "t_language": {"fr": 7}})
    at = rule.at(20)
    assert at.of_language("de") == 20 and at.of_language("fr") == 7 and at.of_language(None) == 0.0
    assert at.of_language("en") == naive_language_t(counts, languages, 20, "de")["en"]
    assert rule.parameters == {"reference_language": "de", "t_language": {"fr": 7.0}}
    one = KeepRule.from_table(table.drop_columns(["language"]), {"reference_language": "de", "t_language": {}})
    assert not one.worldwide and one.at(20) == KeepAt(20.0)
    with pytest.raises(CurationError, match="--t-language applies to worldwide runs only"):
        KeepRule.from_table(table.drop_columns(["language"]), {"t_language": {"de": 5}})


def test_a_rule_that_cannot_hold_is_refused_at_once() -> None:
    with pytest.raises(CurationError, match="--t-language applies to worldwide runs only"):
        KeepRule(np.array([1, 2]), overrides={"de": 3})
    with pytest.raises(CurationError, match="reference language 'ja' has no entries"):
        KeepRule(np.array([1, 2]), ["en", "de"], "ja")
    with pytest.raises(CurationError, match="names languages the metadata does not have: fr"):
        KeepRule(np.array([1, 2]), ["en", "de"], overrides={"fr": 3})
    with pytest.raises(ValueError, match="pass the languages"):
        KeepRule(np.array([1, 2]), ["en", "de"]).at(5).pair_t(None)


def test_the_rule_at_a_t_travels_to_workers_whole() -> None:
    at = KeepRule(np.array([5, 9, 2]), ["en", "de", "de"]).at(4)
    again = pickle.loads(pickle.dumps(at))
    assert again == at and hash(again) == hash(at)


def test_t_per_language_is_computed_in_one_place() -> None:
    """Only the keep rule asks LanguageCounts for thresholds (and worldwide.py, which states the rule);
    a second copy elsewhere is how wrong-t labels reached users."""
    offenders = []
    for path in [*ROOT.glob("curation/*.py"), *ROOT.glob("dashboard/**/*.py")]:
        if path.name in ("keep_rule.py", "worldwide.py"):
            continue
        text = path.read_text()
        if re.search(r"LanguageCounts|language_thresholds|\.thresholds\(\s*(float\()?t\b", text):
            offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []
