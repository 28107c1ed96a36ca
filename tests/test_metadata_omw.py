"""Other languages' WordNet from Open Multilingual Wordnet tab files, as MetaCLIP 2 reads them through NLTK.

The tab files here are written by the tests in OMW's format (a few lines of our own). The real data is in
no package: set CURATION_OMW_DATA to an omw-data checkout's wns/ folder or NLTK's omw-1.4 folder to run
the real-data test (skipped otherwise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_metadata_build import write_wordnet
from test_metadata_cli import one_line_error, run

from metadata.build import BuildRequest, build
from metadata.loading import MetadataError, load_metadata
from metadata.omw import WIKI_TO_OMW, find_tab, normalize_lemma, omw_code, read_omw

CMN = [
    "# Chinese Open Wordnet\tcmn\thttp://example.org/cow/\twordnet",
    "02084071-n\tcmn:lemma\t狗",
    "02084071-n\tcmn:lemma\t犬",
    "02084071-n\tcmn:def\t0\t一种家养的动物",
    "02121620-n\tcmn:lemma\t猫",
    "06271778-n\tcmn:lemma\t50周年+的",
    "02084071-n\tcmn:lemma\t狗",  # again, in another synset's line order
    "03791235-n\tcmn:lemma\t机动 车",
    "03791235-n\tcmn:lemma\t New_York ",
    "03791235-n\teng:lemma\tcar",  # another language's label: not a cmn lemma
]
POR = [  # some OMW files label lemmas without a language
    "# OpenWN-PT\tpor\thttps://example.org/openWordnet-PT\tCC BY-SA",
    "00001740-n\tlemma\tentidade",
    "02084071-n\tlemma\tCão",
]
ALS = ["# Albanet\tals\thttp://example.org/\tCC BY 3.0", "00001740-n\tals:lemma\tentitet"]


def write_omw(root: Path) -> Path:
    """Two layouts side by side: omw-data's wns/<project>/ and a second Italian wordnet, as OMW has."""
    files = {
        "cow/wn-data-cmn.tab": CMN,
        "por/wn-data-por.tab": POR,
        "als/wn-data-als.tab": ALS,
        "ita/wn-data-ita.tab": ["# MultiWordNet\tita\thttp://x/\tCC BY 3.0", "02084071-n\tita:lemma\tcane"],
        "iwn/wn-data-ita.tab": ["# ItalWordNet\tita\thttp://y/\tODC-BY 1.0", "02084071-n\tita:lemma\tcagnolino"],
    }
    for name, lines in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def omw_dir(tmp_path: Path) -> Path:
    return write_omw(tmp_path / "wns")


def test_chinese_lemmas_normalised_as_metaclip2_in_file_order(omw_dir):
    lemmas = read_omw(omw_dir, "zh")
    assert lemmas.entries == ["狗", "犬", "猫", "50周年的", "机动 车", "New York"]
    assert lemmas.per_line.count("狗") == 2 and lemmas.plus_removed == 1
    notes = lemmas.notes()
    assert notes["omw_code"] == "cmn" and notes["wordnet"] == "Chinese Open Wordnet" and notes["license"] == "wordnet"
    assert notes["lemma_lines"] == 7 and notes["distinct_lemmas"] == 6 and notes["lines"] == len(CMN)


@pytest.mark.parametrize(
    "value, name", [("New_York", "New York"), ("50周年+的", "50周年的"), ("  Cão ", "Cão"), ("a+_+b", "a b")]
)
def test_normalize_lemma(value, name):
    assert normalize_lemma(value) == name


def test_labels_without_a_language_and_case_kept(omw_dir):
    assert read_omw(omw_dir, "pt").entries == ["entidade", "Cão"]


def test_albanian_is_sq_and_als_is_refused_with_the_reason(omw_dir):
    assert read_omw(omw_dir, "sq").entries == ["entitet"]
    with pytest.raises(MetadataError, match="Albanet, an Albanian wordnet, which is --wordnet-language sq"):
        omw_code("als")


def test_the_first_project_folder_wins_as_in_nltk(omw_dir):
    lemmas = read_omw(omw_dir, "it")
    assert lemmas.entries == ["cane"] and lemmas.other_files == [str(omw_dir / "iwn" / "wn-data-ita.tab")]


def test_metaclip2_codes():
    assert len(WIKI_TO_OMW) == 30 and len(set(WIKI_TO_OMW.values())) == 30
    assert (omw_code("zh"), omw_code("ja"), omw_code("fr"), omw_code("no")) == ("cmn", "jpn", "fra", "nob")
    with pytest.raises(MetadataError, match="no OMW wordnet for language 'de'"):
        omw_code("de")


def test_missing_directory_file_and_malformed_line(omw_dir, tmp_path):
    with pytest.raises(MetadataError, match="OMW directory not found"):
        find_tab(tmp_path / "nowhere", "cmn")
    with pytest.raises(MetadataError, match="no wn-data-jpn.tab under"):
        read_omw(omw_dir, "ja")
    path = omw_dir / "cow" / "wn-data-cmn.tab"
    path.write_text("\n".join([*CMN[:3], "02121620-n\tcmn:lemma", *CMN[3:]]) + "\n", encoding="utf-8")
    with pytest.raises(MetadataError, match=r"wn-data-cmn.tab line 4: expected offset-pos, label and value"):
        read_omw(omw_dir, "zh")


def test_build_with_omw_records_provenance(omw_dir, tmp_path, capsys):
    out = tmp_path / "zh.parquet"
    code, stdout, err = run(capsys, "build", "--omw", omw_dir, "--entry-language", "zh", "--no-numbers", "--out", out)
    assert code == 0, err
    meta = load_metadata(out)
    assert meta.entries == ["狗", "犬", "猫", "50周年的", "机动 车", "New York"]
    assert set(meta.languages) == {"zh"} and all(s == ("wordnet",) for s in map(tuple, meta.sources))
    info = json.loads(pq.read_schema(out).metadata[b"metadata.build"])
    notes = info["sources"][0]["notes"]
    assert notes["file"].endswith("wn-data-cmn.tab") and notes["directory"] == str(omw_dir)
    assert info["sources"][0]["repeated"] == 1  # the second 狗
    assert "Chinese Open Wordnet (cmn" in stdout


def test_build_refuses_contradictions(omw_dir, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    cases = [
        (["--omw", omw_dir], "--omw needs a language"),
        (["--omw", omw_dir, "--wordnet-language", "zh", "--entry-language", "ja"], "contradicts --entry-language ja"),
        (["--omw", omw_dir, "--wordnet-language", "zh", "--wordnet", write_wordnet(tmp_path / "wn")], "not both"),
        (["--wordnet-language", "zh", "--extra", omw_dir / "als" / "wn-data-als.tab"], "only applies with --omw"),
    ]
    for args, words in cases:
        code, _, err = run(capsys, "build", *args, "--out", out)
        assert code == 2 and words in one_line_error(err)


def test_build_request_reads_the_wordnet_language(omw_dir):
    built = build(BuildRequest(omw=omw_dir, wordnet_language="pt", numbers=False, progress=False))
    assert built.merged.entries == ["entidade", "Cão"] and built.notes["wordnet"]["license"] == "CC BY-SA"


REAL = os.environ.get("CURATION_OMW_DATA")


@pytest.mark.skipif(not REAL, reason="CURATION_OMW_DATA (an omw-data wns/ or NLTK omw-1.4 folder) not set")
@pytest.mark.parametrize("language, code, word", [("zh", "cmn", "狗"), ("fr", "fra", "chien"), ("sq", "als", "qen")])
def test_real_omw_data(language, code, word):
    try:
        find_tab(REAL, code)
    except MetadataError:
        pytest.skip(f"no wn-data-{code}.tab in CURATION_OMW_DATA")
    lemmas = read_omw(REAL, language)
    entries = lemmas.entries
    assert lemmas.header["lang"] == code and lemmas.header["license"]
    assert word in entries and len(entries) > 5_000
    assert not any("_" in e or "+" in e or e != e.strip() or not e for e in entries)
    assert len(entries) == len(set(entries)) and len(lemmas.per_line) > len(entries)
    if code == "cmn":  # the Chinese Open Wordnet's morpheme marks, removed
        assert lemmas.plus_removed > 10_000
