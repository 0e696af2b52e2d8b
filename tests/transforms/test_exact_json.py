"""Source values are never rewritten (G6): numbers are written back as the text they were read in.

The decoder that keeps them (``omnisync.client.exact_json``) is tested with the client; here, what
the pure transforms do with such numbers.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.exact_json import dumps_exact, loads_verbatim

number_texts = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["12.10", "1e2", "1E-7", "-0.0", "-0", "0.10", "3.0e+10", "1E400"]),
)


class Kept:
    """A number kept as its text, as any decoder may keep one: known by its ``text`` alone."""

    def __init__(self, text: str) -> None:
        self.text = text


@given(texts=st.lists(number_texts, max_size=6))
def test_a_number_kept_as_its_text_is_written_as_that_text(texts: list[str]) -> None:
    assert dumps_exact({"n": [Kept(t) for t in texts]}) == '{"n":[' + ",".join(texts) + "]}"


@given(texts=st.lists(number_texts, max_size=6))
def test_a_document_read_verbatim_is_written_back_unchanged(texts: list[str]) -> None:
    text = '{"pk":7,"n":[' + ",".join(texts) + '],"s":"12.10","x":{"y":null,"z":true}}'
    assert dumps_exact(loads_verbatim(text)) == text


def test_what_json_cannot_hold_is_refused_not_guessed() -> None:
    with pytest.raises(TypeError):
        dumps_exact({"when": object()})
    with pytest.raises(ValueError):
        loads_verbatim("{not json")
