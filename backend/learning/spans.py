"""Tokens with exact character offsets, and Label Studio spans to BIO tags and back.

Why this module exists
----------------------
A ``<Labels>`` control over ``<Text>`` stores each entity as a span of
characters, ``value.start``/``value.end`` into the task's text (code points:
Label Studio has counted code points, not UTF-16 units, since its frontend's
emoji fix of 2021-2022) with ``value.text == text[start:end]``.  A sequence
model sees tokens.  Everything that crosses between the two lives here, as
pure functions, so that a pre-annotation's ``start``, ``end`` and ``text`` are
always exactly a slice of the task's text, and an annotator's span always
becomes the same tags.

Decisions
---------
* **Tokens** are maximal runs of word characters (``\\w``: letters, digits,
  underscore) with any combining marks (Unicode category M, so ``e`` +
  U+0301 or a Devanagari vowel sign stay inside their word), or else one
  other non-space character with the marks that follow it.  Punctuation is
  a token of its own, so a span that ends before a comma or a quote ends on
  a token boundary.  Every non-whitespace character belongs to exactly one
  token, and ``text[token.start:token.end] == token.text`` always.
* **A span that starts or ends inside a token** labels the whole token: a
  token is inside a span when the span covers any of its characters.  Going
  back, a span covers whole tokens, so such a span comes back widened to
  token boundaries.  A span that covers only whitespace labels nothing.
* **Overlapping spans** (two spans sharing a token, which is also how one
  span with two labels arrives) cannot be written as one BIO sequence:
  ``overlap="error"`` (the default) raises :class:`OverlappingSpansError`;
  ``overlap="first"`` keeps the span that starts first (the longer one on a
  tie, then the one given first) and drops every span that overlaps a kept one.
* **No spans** means "no entities": every tag is ``O``.  That is a real
  answer and a training target, not a missing one.
* **Decoding tags** follows conlleval (and seqeval's default mode): ``I-X``
  after ``O`` or after another type starts a new entity of type ``X``.

References
----------
Ramshaw and Marcus, "Text Chunking using Transformation-Based Learning",
1995 (the IOB tags), https://aclanthology.org/W95-0107/
Tjong Kim Sang and De Meulder, "Introduction to the CoNLL-2003 Shared Task",
2003 (entity-level F1 by exact match), https://aclanthology.org/W03-0419/
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "OVERLAP_POLICIES",
    "OUTSIDE",
    "OverlappingSpansError",
    "Span",
    "SpanError",
    "Token",
    "align_span",
    "bio_to_spans",
    "bio_to_token_spans",
    "entity_scores",
    "spans_from_results",
    "spans_to_bio",
    "tokenize",
]

#: The tag of a token outside every entity.
OUTSIDE = "O"
#: What :func:`spans_to_bio` does with spans that share a token.
OVERLAP_POLICIES = ("error", "first")

#: A labelled span: ``(start, end, label)`` in code points, ``end`` exclusive, as Label Studio stores it.
Span = tuple[int, int, str]


class Token(NamedTuple):
    """One token and where it is: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


class SpanError(ValueError):
    """A span that cannot be read against its text (out of range, empty, no label)."""


class OverlappingSpansError(SpanError):
    """Two spans share a token, so no single BIO sequence can hold both."""


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """The token regex; building the combining-mark class scans every code point once (~0.2 s)."""
    ranges, start = [], None
    for cp in range(sys.maxunicode + 2):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    marks = "".join(ranges)
    return re.compile(rf"[\w{marks}]+|[^\w\s{marks}][{marks}]*")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens with their exact character offsets.

    Parameters
    ----------
    text : str
        A task's text, exactly as Label Studio shows it (no normalisation:
        offsets must stay those of this very string).

    Returns
    -------
    list of Token
        In order, non-overlapping; ``text[t.start:t.end] == t.text`` for each;
        what lies between consecutive tokens is whitespace only.

    Examples
    --------
    >>> [t.text for t in tokenize("U.S. envoy's visit, 1996-08-22")]
    ['U', '.', 'S', '.', 'envoy', "'", 's', 'visit', ',', '1996', '-', '08', '-', '22']
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return [Token(m.group(), m.start(), m.end()) for m in _token_pattern().finditer(text)]


def _check_span(span: Sequence[Any], length: int) -> Span:
    try:
        start, end, label = span
    except (TypeError, ValueError):
        raise SpanError(f"a span is (start, end, label), got {span!r}") from None
    if isinstance(start, bool) or isinstance(end, bool) or not isinstance(start, int) or not isinstance(end, int):
        raise SpanError(f"span offsets must be integers, got {span!r}")
    if not 0 <= start < end <= length:
        raise SpanError(f"span {span!r} is not inside a text of {length} characters "
                        f"(need 0 <= start < end <= {length})")
    if not isinstance(label, str) or not label:
        raise SpanError(f"span {span!r} has no label (need a non-empty string)")
    return start, end, label


def _token_range(tokens: Sequence[Token], start: int, end: int) -> tuple[int, int]:
    """Indices ``[i, j)`` of the tokens that share a character with ``[start, end)`` (by bisection)."""
    lo, hi = 0, len(tokens)
    while lo < hi:  # first token that ends after start
        mid = (lo + hi) // 2
        if tokens[mid].end <= start:
            lo = mid + 1
        else:
            hi = mid
    i = lo
    hi = len(tokens)
    while lo < hi:  # first token that starts at or after end
        mid = (lo + hi) // 2
        if tokens[mid].start < end:
            lo = mid + 1
        else:
            hi = mid
    return i, lo


def spans_to_bio(tokens: Sequence[Token], spans: Iterable[Sequence[Any]], *, text_length: int | None = None,
                 overlap: str = "error") -> list[str]:
    """Per-token BIO tags of Label Studio spans: the training target of one annotation.

    Parameters
    ----------
    tokens : sequence of Token
        :func:`tokenize` of the text the spans point into.
    spans : iterable of (start, end, label)
        Character offsets, ``end`` exclusive.  Empty: the annotator said
        "no entities", and every tag is ``O``.
    text_length : int, optional
        ``len(text)``, to refuse spans past its end; defaults to the end of
        the last token.
    overlap : {"error", "first"}
        What to do with spans that share a token (module docstring).

    Returns
    -------
    list of str, one per token
        ``"O"``, ``"B-<label>"`` or ``"I-<label>"``.

    Raises
    ------
    SpanError
        For a span out of range, empty or without a label.
    OverlappingSpansError
        For spans that share a token, when ``overlap="error"``.
    """
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {OVERLAP_POLICIES}, got {overlap!r}")
    length = text_length if text_length is not None else (tokens[-1].end if tokens else 0)
    checked = [(_check_span(s, length), k) for k, s in enumerate(spans)]
    # Earliest start first, the longer span first on a tie, then input order: "first" keeps the first of these.
    checked.sort(key=lambda sk: (sk[0][0], -sk[0][1], sk[1]))
    tags = [OUTSIDE] * len(tokens)
    owner: list[Span | None] = [None] * len(tokens)
    for span, _ in checked:
        i, j = _token_range(tokens, span[0], span[1])
        if i == j:
            continue  # only whitespace: nothing to label
        taken = next((owner[k] for k in range(i, j) if owner[k] is not None), None)
        if taken is not None:
            if overlap == "error":
                raise OverlappingSpansError(
                    f"spans {taken!r} and {span!r} share a token, and BIO tags hold one label per token; "
                    "remove one of them, or pass overlap='first' to keep the one that starts first"
                )
            continue
        tags[i] = f"B-{span[2]}"
        for k in range(i + 1, j):
            tags[k] = f"I-{span[2]}"
        for k in range(i, j):
            owner[k] = span
    return tags


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not label:
        raise ValueError(f"not a BIO tag: {tag!r} (expected 'O', 'B-<label>' or 'I-<label>')")
    return prefix, label


def bio_to_token_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities of a tag sequence as token index ranges ``(i, j, label)``, ``j`` exclusive.

    ``I-X`` that does not continue an ``X`` entity starts a new one
    (conlleval's rule), so every tag sequence decodes, even an invalid one.
    """
    out: list[tuple[int, int, str]] = []
    start, label = -1, ""
    for k, tag in enumerate(tags):
        prefix, lab = _split_tag(tag)
        if prefix == "I" and start >= 0 and lab == label:
            continue
        if start >= 0:
            out.append((start, k, label))
            start, label = -1, ""
        if prefix != OUTSIDE:
            start, label = k, lab
    if start >= 0:
        out.append((start, len(tags), label))
    return out


def bio_to_spans(text: str, tokens: Sequence[Token], tags: Sequence[str]) -> list[tuple[int, int, str, str]]:
    """Label Studio spans of a tag sequence: ``(start, end, text, label)`` with ``text == source[start:end]``.

    A span runs from its first token's start to its last token's end, so
    the whitespace between its tokens is inside it, as when a person selects
    the words.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags; expected one tag per token")
    spans = []
    for i, j, label in bio_to_token_spans(tags):
        start, end = tokens[i].start, tokens[j - 1].end
        spans.append((start, end, text[start:end], label))
    return spans


def align_span(text: str, start: int, end: int, span_text: str | None = None) -> tuple[int, int] | None:
    """Offsets of a Label Studio span in ``text``, checked against the span's own ``text``.

    Label Studio's offsets are code points into the task's text, but older
    frontends counted UTF-16 units (one more for each emoji or other astral
    character before the span) and some imports normalise line breaks, so
    ``value.text`` is the ground truth when it disagrees.  Then the
    occurrence of ``span_text`` nearest to ``start`` is taken.

    Returns
    -------
    (start, end) or None
        ``None`` when ``span_text`` is given and does not occur in ``text``,
        or the offsets are out of range and no ``span_text`` is given.
    """
    in_range = 0 <= start < end <= len(text)
    if span_text is None:
        return (start, end) if in_range else None
    if in_range and text[start:end] == span_text:
        return start, end
    if not span_text:
        return None
    best, k = None, text.find(span_text)
    while k >= 0:
        if best is None or abs(k - start) < abs(best - start):
            best = k
        k = text.find(span_text, k + 1)
    return None if best is None else (best, best + len(span_text))


def spans_from_results(text: str, results: Iterable[Mapping[str, Any]], *, from_name: str | None = None,
                       result_type: str = "labels") -> list[Span]:
    """The spans of one annotation's result items (``type == "labels"``), one per label.

    A span with several labels (``<Labels choice="multiple">``) becomes one
    span per label, which :func:`spans_to_bio` then refuses or resolves as
    overlapping.  Items of other controls (``from_name``) or types are
    skipped; a span whose offsets and text cannot be reconciled
    (:func:`align_span`) is dropped rather than trained on at the wrong place.
    """
    out: list[Span] = []
    for item in results:
        if item.get("type") != result_type or (from_name is not None and item.get("from_name") != from_name):
            continue
        value = item.get("value") or {}
        start, end = value.get("start"), value.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            continue  # e.g. a <HyperText> span (xpath offsets): not a character span of the text
        where = align_span(text, start, end, value.get("text"))
        if where is None:
            continue
        for label in value.get("labels") or ():
            out.append((where[0], where[1], str(label)))
    return out


def entity_scores(true_spans: Sequence[Iterable[tuple[Any, ...]]], pred_spans: Sequence[Iterable[tuple[Any, ...]]]
                  ) -> dict[str, float]:
    """Entity-level precision, recall and F1 by exact match, micro-averaged (CoNLL's measure).

    Parameters
    ----------
    true_spans, pred_spans : sequences of the same length
        Per sentence, its entities as tuples ``(start, end, ..., label)``;
        an entity counts as found only when start, end and label all match
        (only the first two items and the last are compared).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (0.0 when undefined) and the counts
        ``n_true``, ``n_pred``, ``n_correct``.
    """
    if len(true_spans) != len(pred_spans):
        raise ValueError(f"{len(true_spans)} true but {len(pred_spans)} predicted sentences; expected the same")
    n_true = n_pred = n_correct = 0
    for t, p in zip(true_spans, pred_spans):
        ts = {(s[0], s[1], s[-1]) for s in t}
        ps = {(s[0], s[1], s[-1]) for s in p}
        n_true += len(ts)
        n_pred += len(ps)
        n_correct += len(ts & ps)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "n_true": float(n_true), "n_pred": float(n_pred), "n_correct": float(n_correct)}
