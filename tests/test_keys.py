"""Pair keys: the key text of a pair and its xxHash64, the identity the balancing draws come from."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from curation.cli import build_parser
from curation.keys import content_key_texts, hash_keys, id_key_texts
from studio_common.errors import CurationError

# --- key texts from an id column ----------------------------------------------------------------------


@pytest.mark.parametrize("type_", [pa.int64(), pa.int32(), pa.int16(), pa.uint64()])
def test_integer_ids_become_decimal_text(type_):
    values = [0, 7, 42, 120, 32767]
    if type_ == pa.uint64():
        values += [1234567, 2**64 - 1]
    else:
        values += [-5, -32768]
    if type_ == pa.int64():
        values += [-(2**63), 2**63 - 1]
    got = id_key_texts(pa.array(values, type=type_), "id")
    assert got.to_pylist() == [str(value) for value in values]


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string()])
def test_string_ids_are_the_string(type_):
    values = ["abc", "", "  padded ", "0042", "ünïcode 東京 😀", "a\nb"]
    got = id_key_texts(pa.array(values, type=type_), "key")
    assert got.to_pylist() == values


def test_integer_and_string_ids_with_the_same_text_give_the_same_key():
    numbers = hash_keys(id_key_texts(pa.array([1, 22, 333]), "id"))
    texts = hash_keys(id_key_texts(pa.array(["1", "22", "333"]), "id"))
    assert numbers.tolist() == texts.tolist()


@pytest.mark.parametrize("values", [[1, None, 3], ["a", None], [None]])
def test_missing_ids_are_refused(values):
    with pytest.raises(CurationError, match="uid") as refused:
        id_key_texts(pa.array(values), "uid")
    # The hint names an option that exists (there is no `--id-column none`).
    assert "--content-key" in str(refused.value) and "--id-column" not in str(refused.value)
    hinted = build_parser().parse_args(
        ["run", "--pool", "p", "--metadata", "m", "--t", "1", "--out", "o", "--content-key"]
    )
    assert hinted.content_key


# --- key texts from the content -----------------------------------------------------------------------------


def test_content_key_joins_url_and_text_with_a_newline():
    urls = pa.array(["http://a/1.jpg", "http://b/2.png"])
    texts = pa.array(["a dog", "two cats\n"])
    got = content_key_texts(urls, texts)
    assert got.to_pylist() == ["http://a/1.jpg\na dog", "http://b/2.png\ntwo cats\n"]


def test_content_key_treats_missing_values_as_empty():
    urls = pa.array(["u1", None, "u3", None])
    texts = pa.array([None, "t2", None, None])
    assert content_key_texts(urls, texts).to_pylist() == ["u1\n", "\nt2", "u3\n", "\n"]


def test_content_key_without_urls_is_the_text():
    texts = pa.array(["a dog", None, ""])
    assert content_key_texts(None, texts).to_pylist() == ["a dog", "", ""]


def test_content_key_distinguishes_where_the_newline_falls():
    # "ab" + "c" and "a" + "bc" must not collide: the separator keeps them apart.
    keys = hash_keys(content_key_texts(pa.array(["ab", "a"]), pa.array(["c", "bc"])))
    assert keys[0] != keys[1]


# --- hashing ------------------------------------------------------------------------------------------------


def test_hash_keys_is_xxh64_of_utf8_bytes():
    texts = ["", "a", "hello world", "ünïcode 東京 😀", "http://x/y.jpg\na dog, a cat.", "1234567"]
    got = hash_keys(pa.array(texts))
    assert got.dtype == np.uint64
    assert got.tolist() == [xxhash.xxh64_intdigest(text.encode("utf-8")) for text in texts]
    assert got.tolist() == [xxhash.xxh64(text.encode("utf-8"), seed=0).intdigest() for text in texts]


def test_hash_keys_of_large_strings_and_chunks():
    texts = ["one", "two", "three", "ü"]
    expected = [xxhash.xxh64_intdigest(text.encode("utf-8")) for text in texts]
    assert hash_keys(pa.array(texts, type=pa.large_string())).tolist() == expected
    assert hash_keys(pa.chunked_array([texts[:1], texts[1:]])).tolist() == expected


def test_hash_keys_of_nothing():
    got = hash_keys(pa.array([], type=pa.string()))
    assert got.dtype == np.uint64
    assert len(got) == 0


def test_same_content_gives_the_same_key_wherever_it_sits():
    urls = ["u1", "u2", "u3", "u1"]
    texts = ["a dog", "a cat", None, "a dog"]
    keys = hash_keys(content_key_texts(pa.array(urls), pa.array(texts)))
    assert keys[0] == keys[3]
    assert len(set(keys.tolist())) == 3
    # Another split of the same rows into shards gives the same keys row by row.
    first = hash_keys(content_key_texts(pa.array(urls[:1]), pa.array(texts[:1])))
    rest = hash_keys(content_key_texts(pa.array(urls[1:]), pa.array(texts[1:])))
    assert np.concatenate([first, rest]).tolist() == keys.tolist()


def test_different_content_gives_different_keys():
    texts = [f"caption number {i}" for i in range(2000)]
    keys = hash_keys(pa.array(texts))
    assert len(set(keys.tolist())) == len(texts)
