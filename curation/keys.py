"""Pair keys: the stable identity of a pair that the balancing hash is drawn from.

The key text is the id column's value (integers in decimal, strings as they are) when the pool has
an id column; otherwise it is ``url + "\\n" + text`` (a missing value counts as empty; without a url
column, the text alone). So the same pool split into files differently, or read by more workers,
gives the same keys. The pair key is xxHash64 (seed 0) of the key text's UTF-8 bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from studio_common.errors import CurationError


def id_key_texts(ids: pa.Array, column: str) -> pa.Array:
    """Key texts from an id column; a missing id would silently merge pairs, so it is refused."""
    if ids.null_count:
        raise CurationError(
            f"id column '{column}' has {ids.null_count} missing values; fill them, "
            "or pass --content-key to key pairs by url and text"
        )
    return pc.cast(ids, pa.string())


def content_key_texts(urls: pa.Array | None, texts: pa.Array) -> pa.Array:
    """Key texts from the pair's content, for pools without an id column."""
    texts = pc.fill_null(pc.cast(texts, pa.string()), "")
    if urls is None:
        return texts
    urls = pc.fill_null(pc.cast(urls, pa.string()), "")
    return pc.binary_join_element_wise(urls, texts, "\n")


def hash_keys(key_texts: pa.Array) -> np.ndarray:
    """xxHash64 of each key text's UTF-8 bytes, as uint64."""
    digest = xxhash.xxh64_intdigest
    encoded = pc.cast(key_texts, pa.binary()).to_pylist()
    return np.fromiter((digest(key) for key in encoded), dtype=np.uint64, count=len(encoded))
