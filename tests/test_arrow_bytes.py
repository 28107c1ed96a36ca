"""The bytes behind Arrow strings, and Python strings made into Arrow ones, against pyarrow's own
conversions (the plain reference)."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.arrow_bytes import binary_parts, string_array

# Any text but lone surrogates (which UTF-8 cannot hold), empty strings and non-ASCII included.
texts = st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=12), max_size=40)


@settings(max_examples=examples(500))
@given(texts)
def test_string_array_is_what_pyarrow_makes_of_the_list(values: list[str]) -> None:
    made = string_array(values)
    made.validate(full=True)
    assert made.equals(pa.array(values, type=pa.string()))


@settings(max_examples=examples(500))
@given(texts)
def test_binary_parts_give_back_each_value(values: list[str]) -> None:
    data, offsets = binary_parts(pa.array(values, type=pa.string()))
    assert [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(values))] == values


def test_a_lone_surrogate_is_refused_as_pyarrow_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        pa.array(["a\ud800"], type=pa.string())
    with pytest.raises(UnicodeEncodeError):
        string_array(["a\ud800"])


def test_string_array_does_not_import_pandas() -> None:
    """The reason it exists: pa.array on a list imports pandas (half a second of a run's start)."""
    code = (
        "import sys; from curation.arrow_bytes import string_array; string_array(['a']); print('pandas' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
