"""Tokens with exact offsets, and Label Studio spans to BIO tags and back (backend/learning/spans.py, issue 17)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.learning.spans import (
    OverlappingSpansError,
    SpanError,
    align_span,
    bio_to_spans,
    bio_to_token_spans,
    entity_scores,
    spans_from_results,
    spans_to_bio,
    tokenize,
)

# Text as annotators paste it: letters of several scripts, combining marks, emoji, punctuation, odd whitespace.
TEXTS = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(list(" \t\n\r\u00a0\u2003.,;:'\"()-–—/&@#$%🚒👨🏻‍é\u0301ßİ日本語")),
    ),
    max_size=80,
)


@given(TEXTS)
@settings(max_examples=400, deadline=None)
def test_tokens_are_exact_slices_and_cover_every_non_space_character(text):
    tokens = tokenize(text)
    pos = 0
    for tok in tokens:
        assert text[tok.start:tok.end] == tok.text and tok.start < tok.end
        assert text[pos:tok.start].strip() == ""  # only whitespace between tokens
        pos = tok.end
    assert text[pos:].strip() == ""


def test_punctuation_is_split_off_and_marks_stay_in_their_word():
    text = "Mr. O'Neil (Boeing) flew to São Paulo, Brasil!"
    words = [t.text for t in tokenize(text)]
    assert words == ["Mr", ".", "O", "'", "Neil", "(", "Boeing", ")", "flew", "to", "São", "Paulo", ",", "Brasil", "!"]
    decomposed = "Sa\u0303o Paulo"  # "ã" as "a" + combining tilde
    assert [t.text for t in tokenize(decomposed)] == ["Sa\u0303o", "Paulo"]


@st.composite
def text_and_spans(draw):
    """A text and non-overlapping spans on token boundaries (as a person selects whole words)."""
    text = draw(TEXTS)
    tokens = tokenize(text)
    spans, k = [], 0
    while k < len(tokens):
        if draw(st.booleans()):
            length = draw(st.integers(1, min(3, len(tokens) - k)))
            label = draw(st.sampled_from(["PER", "ORG", "LOC", "B-I", "creative-work"]))
            spans.append((tokens[k].start, tokens[k + length - 1].end, label))
            k += length
        else:
            k += 1
    return text, spans


@given(text_and_spans())
@settings(max_examples=400, deadline=None)
def test_spans_on_token_boundaries_round_trip_exactly(case):
    text, spans = case
    tokens = tokenize(text)
    tags = spans_to_bio(tokens, spans, text_length=len(text))
    back = bio_to_spans(text, tokens, tags)
    assert [(s, e, label) for s, e, _, label in back] == spans
    assert all(text[s:e] == t for s, e, t, _ in back)


def test_adjacent_entities_of_one_label_stay_two():
    text = "Paris London"
    tokens = tokenize(text)
    tags = spans_to_bio(tokens, [(0, 5, "LOC"), (6, 12, "LOC")])
    assert tags == ["B-LOC", "B-LOC"]
    assert [s[:2] for s in bio_to_spans(text, tokens, tags)] == [(0, 5), (6, 12)]


def test_a_span_inside_a_token_labels_the_whole_token_and_comes_back_widened():
    text = "Obamacare passed"
    tokens = tokenize(text)
    tags = spans_to_bio(tokens, [(0, 5, "PER")])  # "Obama" of "Obamacare"
    assert tags == ["B-PER", "O"]
    assert bio_to_spans(text, tokens, tags) == [(0, 9, "Obamacare", "PER")]


def test_whitespace_around_a_selection_is_not_part_of_the_entity():
    text = "met  Angela Merkel  today"
    tokens = tokenize(text)
    tags = spans_to_bio(tokens, [(3, 20, "PER")])  # the selection took the spaces on both sides
    assert bio_to_spans(text, tokens, tags) == [(5, 18, "Angela Merkel", "PER")]
    assert spans_to_bio(tokens, [(3, 5, "PER")]) == ["O"] * 4  # only spaces: nothing


def test_no_spans_means_no_entities():
    tokens = tokenize("Nothing to see here .")
    assert spans_to_bio(tokens, []) == ["O"] * len(tokens)


def test_overlapping_spans_are_refused_or_the_first_is_kept():
    text = "New York City Council"
    tokens = tokenize(text)
    spans = [(9, 21, "ORG"), (0, 13, "LOC")]
    with pytest.raises(OverlappingSpansError, match="share a token"):
        spans_to_bio(tokens, spans)
    assert spans_to_bio(tokens, spans, overlap="first") == ["B-LOC", "I-LOC", "I-LOC", "O"]
    # Same start: the longer one is kept.
    assert spans_to_bio(tokens, [(0, 8, "LOC"), (0, 21, "ORG")], overlap="first") == ["B-ORG"] + ["I-ORG"] * 3
    with pytest.raises(ValueError, match="overlap must be"):
        spans_to_bio(tokens, spans, overlap="merge")


@pytest.mark.parametrize("span", [(5, 3, "X"), (-1, 2, "X"), (0, 99, "X"), (0, 2, ""), (0, 2), (0.0, 2, "X")])
def test_malformed_spans_are_refused(span):
    tokens = tokenize("some text")
    with pytest.raises(SpanError):
        spans_to_bio(tokens, [span], text_length=9)


def test_tags_decode_as_conlleval_does():
    assert bio_to_token_spans(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        (0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC"), (5, 6, "ORG")]
    assert bio_to_token_spans(["B-creative-work", "I-creative-work"]) == [(0, 2, "creative-work")]
    with pytest.raises(ValueError, match="not a BIO tag"):
        bio_to_token_spans(["B-PER", "X-PER"])
    with pytest.raises(ValueError, match="one tag per token"):
        bio_to_spans("a b", tokenize("a b"), ["O"])


def test_offsets_counted_in_utf16_units_are_put_back_by_the_span_text():
    text = "🚒 firemen drive firetrucks"
    start = text.index("firetrucks")
    # An old frontend counts the emoji as two units: every offset after it is one too far.
    assert align_span(text, start + 1, start + 11, "firetrucks") == (start, start + 10)
    assert align_span(text, start, start + 10, "firetrucks") == (start, start + 10)
    assert align_span(text, 0, 4, "missing") is None
    assert align_span(text, 5, 500) is None


def test_result_items_become_spans_one_per_label():
    text = "Apple hired Tim Cook"
    results = [
        {"type": "labels", "from_name": "ner", "value": {"start": 0, "end": 5, "text": "Apple", "labels": ["ORG"]}},
        {"type": "labels", "from_name": "ner",
         "value": {"start": 12, "end": 20, "text": "Tim Cook", "labels": ["PER", "VIP"]}},
        {"type": "labels", "from_name": "other", "value": {"start": 0, "end": 5, "text": "Apple", "labels": ["X"]}},
        {"type": "choices", "from_name": "ner", "value": {"choices": ["a"]}},
    ]
    spans = spans_from_results(text, results, from_name="ner")
    assert spans == [(0, 5, "ORG"), (12, 20, "PER"), (12, 20, "VIP")]
    with pytest.raises(OverlappingSpansError):  # two labels on one span: refused unless told which to keep
        spans_to_bio(tokenize(text), spans)


def test_entity_scores_count_exact_matches_only():
    true = [[(0, 5, "PER"), (10, 15, "LOC")], []]
    pred = [[(0, 5, "PER"), (10, 14, "LOC")], [(1, 2, "ORG")]]
    s = entity_scores(true, pred)
    assert (s["n_true"], s["n_pred"], s["n_correct"]) == (2, 3, 1)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert entity_scores(true, true)["f1"] == 1.0
    assert entity_scores([[]], [[]])["f1"] == 0.0
