"""The token tagger behind a ``<Labels>`` control, its storage, and sequence uncertainties.

Why this module exists
----------------------
Named-entity pre-annotations need a model that retrains in seconds on the
CPU after every few annotations and tags one sentence in well under the
10 ms a ``/predict`` may take (issue 17).  Two candidates share the same
token features (:func:`token_features`: the word, its affixes and shape, and
its neighbours'):

:class:`CrfTagger`
    A linear-chain CRF (CRFsuite through ``python-crfsuite``, L-BFGS with
    L1 + L2 penalties).  It scores whole tag sequences, so its per-token
    marginals and the probability of its best sequence are exact.
:class:`LogisticTagger`
    A multinomial logistic regression per token over the same features,
    hashed (scikit-learn's ``FeatureHasher``, stable MurmurHash3), decoded
    by a Viterbi pass that only forbids invalid BIO transitions.  Its
    sequence probability is the product of the chosen tokens' probabilities.

``bench/bench_ner_models.py`` measures both on CoNLL-2003; the choice and the
numbers are in ``docs/research/ner.md``: :data:`DEFAULT_TAGGER`.

Both follow scikit-learn's conventions (``__init__`` stores parameters;
``fit(sentences, tags)`` with a sentence a list of token strings and its tags
BIO strings) and store themselves as arrays in an ``.npz`` read with
``allow_pickle=False``, never a pickle.  The CRF's own model file is one of
those arrays, checked (digest and header) before CRFsuite reads it.

The uncertainties at the end are pure numpy functions of what
:meth:`CrfTagger.tag` returns (per-token marginals, the best sequence's
probability), so strategies can rank without a model.

References
----------
Lafferty, McCallum and Pereira, "Conditional Random Fields", ICML 2001.
Okazaki, "CRFsuite: a fast implementation of CRFs", 2007,
http://www.chokkan.org/software/crfsuite/
Settles and Craven, "An Analysis of Active Learning Strategies for Sequence
Labeling Tasks", EMNLP 2008, https://aclanthology.org/D08-1112/
Shen et al., "Deep Active Learning for Named Entity Recognition", ICLR 2018
(length-normalised least confidence), https://arxiv.org/abs/1707.05928
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from backend.learning.model import NotEnoughLabelsError, compact_columns
from backend.learning.spans import (OUTSIDE, SpanError, Token, align_span, bio_to_token_spans, spans_to_bio,
                                    tokenize)

__all__ = [
    "DEFAULT_TAGGER",
    "CrfTagger",
    "LogisticTagger",
    "SpanModel",
    "Tagged",
    "Tagging",
    "expected_entity_count",
    "least_confident",
    "load_tagger",
    "mean_token_margin",
    "min_token_margin",
    "sequence_uncertainties",
    "span_scores",
    "token_features",
    "token_margins",
]


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------


def _shape(word: str) -> str:
    """The word's short shape: runs of upper case, lower case and digits collapsed (``McDonald`` -> ``XxXx``)."""
    out: list[str] = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def token_features(tokens: Sequence[str]) -> list[list[str]]:
    """Features of each token of one sentence, as strings ``name=value``.

    The token's lower-cased word, 2- and 3-character suffix, 3-character
    prefix and shape, whether it is title case, upper case or a number; the
    words and shapes of the tokens one away and the words two away; the
    previous word with this one; and the sentence's edges.  Case is kept
    out of the word itself and in the shape, so ``IBM``, ``Ibm`` and ``ibm``
    share their evidence.
    """
    words = [t.lower() for t in tokens]
    shapes = [_shape(t) for t in tokens]
    n = len(tokens)
    feats = []
    for i, tok in enumerate(tokens):
        w = words[i]
        f = ["b", "w=" + w, "s3=" + w[-3:], "s2=" + w[-2:], "p3=" + w[:3], "sh=" + shapes[i]]
        if tok.istitle():
            f.append("title")
        if tok.isupper():
            f.append("upper")
        if tok.isdigit():
            f.append("digit")
        if i > 0:
            f += ["-1w=" + words[i - 1], "-1sh=" + shapes[i - 1], "-1w|w=" + words[i - 1] + "|" + w]
            if i > 1:
                f.append("-2w=" + words[i - 2])
        else:
            f.append("BOS")
        if i < n - 1:
            f += ["+1w=" + words[i + 1], "+1sh=" + shapes[i + 1]]
            if i < n - 2:
                f.append("+2w=" + words[i + 2])
        else:
            f.append("EOS")
        feats.append(f)
    return feats


def _check_training_data(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> list[str]:
    """The sorted tag set, after checking that every sentence has one tag per token."""
    if len(sentences) != len(tags):
        raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag sequences; expected the same number")
    seen: set[str] = set()
    for k, (tokens, tt) in enumerate(zip(sentences, tags)):
        if isinstance(tokens, str):
            raise TypeError("a sentence is a list of token strings, not one string (tokenize it first)")
        if len(tokens) != len(tt):
            raise ValueError(f"sentence {k} has {len(tokens)} tokens but {len(tt)} tags; expected one tag per token")
        seen.update(tt)
    if len(seen) < 2:
        raise NotEnoughLabelsError(
            f"every token has the same tag ({next(iter(seen), 'none')!r}); need at least one entity to learn from"
        )
    return [OUTSIDE] + sorted(seen - {OUTSIDE}) if OUTSIDE in seen else sorted(seen)


class Tagging(NamedTuple):
    """One sentence as a tagger sees it.

    tags : list of str
        The best tag sequence.
    marginals : ndarray of float, shape (n_tokens, n_tags)
        ``P(tag of token i == classes_[k])``; rows sum to 1.
    sequence_proba : float
        The probability of ``tags`` as a whole.
    """

    tags: list[str]
    marginals: np.ndarray
    sequence_proba: float


def _allowed_transitions(classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """BIO constraints: ``I-X`` only after ``B-X`` or ``I-X``, never first. Returns (first, next) masks."""
    kinds = [(c[:2], c[2:]) for c in classes]
    first = np.array([k != "I-" for k, _ in kinds])
    nxt = np.ones((len(classes), len(classes)), dtype=bool)
    for j, (kj, lj) in enumerate(kinds):
        if kj == "I-":
            nxt[:, j] = [ki in ("B-", "I-") and li == lj for ki, li in kinds]
    return first, nxt


def _viterbi(logp: np.ndarray, first: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """The best path through per-token log-probabilities that only takes allowed transitions."""
    n, k = logp.shape
    neg = -np.inf
    score = np.where(first, logp[0], neg)
    back = np.zeros((n, k), dtype=np.int64)
    trans = np.where(nxt, 0.0, neg)
    for i in range(1, n):
        cand = score[:, None] + trans
        back[i] = cand.argmax(axis=0)
        score = cand[back[i], np.arange(k)] + logp[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(score.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _load_npz(raw: bytes):
    """``np.load`` of a stored tagger, refusing anything but a zip of plain arrays (never unpickles)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)) or bytes(raw[:4]) != b"PK\x03\x04":
        raise ValueError("not a stored tagger: expected the .npz bytes written by to_bytes()")
    try:
        return np.load(io.BytesIO(bytes(raw)), allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a stored tagger: {exc}") from None


# --------------------------------------------------------------------------
# Per-token logistic regression
# --------------------------------------------------------------------------


class LogisticTagger(BaseEstimator):
    """Multinomial logistic regression per token over hashed features, BIO-constrained decoding.

    Parameters
    ----------
    C : float
        Inverse L2 regularisation strength.
    n_features : int
        Hashed columns.
    max_iter : int
        L-BFGS iterations.

    Attributes
    ----------
    classes_ : ndarray of str, shape (K,)
        The tags, ``O`` first.
    columns_ : ndarray of int64, shape (n_used,)
        The hashed columns seen in training, sorted.
    coef_ : ndarray of float32, shape (K, n_used)
        Weights of those columns.
    intercept_ : ndarray of float32, shape (K,)
    """

    def __init__(self, *, C: float = 10.0, n_features: int = 2**20, max_iter: int = 300) -> None:
        self.C = C
        self.n_features = n_features
        self.max_iter = max_iter

    def _hash(self, sentences: Sequence[Sequence[str]]) -> sp.csr_matrix:
        feats = [f for tokens in sentences for f in token_features(tokens)]
        if not feats:  # FeatureHasher cannot hash zero rows
            return sp.csr_matrix((0, self.n_features), dtype=np.float64)
        return FeatureHasher(n_features=self.n_features, input_type="string", alternate_sign=False).transform(feats)

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> "LogisticTagger":
        """Fit on tokenised sentences and their BIO tags (one list of tags per sentence)."""
        classes = _check_training_data(sentences, tags)
        X, cols = compact_columns(self._hash(sentences))
        y = np.array([t for tt in tags for t in tt])
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        order = [list(lr.classes_).index(c) for c in classes]
        self.classes_ = np.asarray(classes, dtype=str)
        coef = lr.coef_ if len(lr.classes_) > 2 else np.vstack([-lr.coef_, lr.coef_]) / 2
        intercept = lr.intercept_ if len(lr.classes_) > 2 else np.array([-lr.intercept_[0], lr.intercept_[0]]) / 2
        # Only the hashed columns training saw have weights: keep those (a few 10^4, not 2^20).
        self.columns_ = cols.astype(np.int64)
        self.coef_ = np.ascontiguousarray(coef[order], dtype=np.float32)
        self.intercept_ = intercept[order].astype(np.float32)
        return self

    def _features(self, sentences: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """Hashed features restricted to :attr:`columns_` (columns unseen in training carry no weight)."""
        X = self._hash(sentences).tocsr()
        pos = np.searchsorted(self.columns_, X.indices)
        hit = pos < len(self.columns_)
        hit[hit] = self.columns_[pos[hit]] == X.indices[hit]
        data = np.where(hit, X.data, 0.0).astype(np.float32)
        return sp.csr_matrix((data, np.where(hit, pos, 0), X.indptr), shape=(X.shape[0], len(self.columns_)))

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[Tagging]:
        """Best tags, per-token probabilities and the sequence's probability, per sentence."""
        check_is_fitted(self, "coef_")
        lengths = [len(s) for s in sentences]
        z = np.asarray(self._features(sentences) @ self.coef_.T) + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        first, nxt = _allowed_transitions(list(self.classes_))
        out, pos = [], 0
        with np.errstate(divide="ignore"):
            for n in lengths:
                m = p[pos:pos + n]
                pos += n
                if n == 0:
                    out.append(Tagging([], m, 1.0))
                    continue
                path = _viterbi(np.log(m), first, nxt)
                proba = float(np.prod(m[np.arange(n), path]))
                out.append(Tagging(list(self.classes_[path]), m, proba))
        return out

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        return [t.tags for t in self.tag(sentences)]

    def predict_marginals(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return [t.marginals for t in self.tag(sentences)]

    def to_bytes(self) -> bytes:
        check_is_fitted(self, "coef_")
        buf = io.BytesIO()
        np.savez_compressed(buf, kind=np.asarray("logistic"), columns=self.columns_, coef=self.coef_,
                            intercept=self.intercept_, classes=self.classes_,
                            C=np.asarray(self.C, dtype=np.float64), n_features=np.asarray(self.n_features),
                            max_iter=np.asarray(self.max_iter))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "LogisticTagger":
        """Load what :meth:`to_bytes` wrote, without unpickling (``ValueError`` for anything else)."""
        try:
            with _load_npz(raw) as z:
                if str(z["kind"]) != "logistic":
                    raise ValueError(f"not a stored LogisticTagger (kind {str(z['kind'])!r})")
                model = cls(C=float(z["C"]), n_features=int(z["n_features"]), max_iter=int(z["max_iter"]))
                model.columns_ = z["columns"].astype(np.int64)
                model.coef_ = np.ascontiguousarray(z["coef"], dtype=np.float32)
                model.intercept_ = z["intercept"].astype(np.float32)
                model.classes_ = z["classes"].astype(str)
                k = len(model.classes_)
                if model.coef_.shape != (k, len(model.columns_)) or model.intercept_.shape != (k,):
                    raise ValueError(f"not a stored tagger: weights of shape {model.coef_.shape} for {k} tags")
                if np.any(np.diff(model.columns_) <= 0) or (len(model.columns_) and (
                        model.columns_[0] < 0 or model.columns_[-1] >= model.n_features)):
                    raise ValueError("not a stored tagger: columns not sorted inside [0, n_features)")
        except (KeyError, OSError, IndexError, EOFError) as exc:
            raise ValueError(f"not a stored tagger: {exc}") from None
        return model


# --------------------------------------------------------------------------
# Linear-chain CRF
# --------------------------------------------------------------------------

_CRF_HEADER = struct.Struct("<4sI4sIIIIIIIII")  # CRFsuite's crf1dm header: magic, size, type, version, 8 counts/offsets


def _check_crf_blob(blob: bytes) -> None:
    """Refuse a CRFsuite model file whose header does not describe the bytes it came with.

    CRFsuite trusts the offsets in its header and python-crfsuite checks
    only the magic, so a truncated or mangled file would be read out of
    bounds (a crash, not an exception).  A model that passes the stored
    digest and these checks is the file CRFsuite wrote.
    """
    if len(blob) < _CRF_HEADER.size:
        raise ValueError(f"not a CRFsuite model: {len(blob)} bytes, shorter than its {_CRF_HEADER.size}-byte header")
    magic, size, kind, _version, *_counts, off_feat, off_labels, off_attrs, off_lrefs, off_arefs = (
        _CRF_HEADER.unpack_from(blob))
    if magic != b"lCRF" or kind != b"FOMC":
        raise ValueError("not a CRFsuite model: wrong magic or model type")
    if size != len(blob):
        raise ValueError(f"CRFsuite model says {size} bytes but has {len(blob)}")
    if not all(_CRF_HEADER.size <= off < size for off in (off_feat, off_labels, off_attrs, off_lrefs, off_arefs)):
        raise ValueError("CRFsuite model header points outside the model")


class CrfTagger(BaseEstimator):
    """Linear-chain CRF over :func:`token_features` (CRFsuite, L-BFGS).

    Parameters
    ----------
    c1, c2 : float
        L1 and L2 penalties (CRFsuite's ``c1``, ``c2``); L1 keeps the model small.
    max_iterations : int
        L-BFGS iterations.
    all_possible_transitions : bool
        Learn weights for tag transitions never seen in training too (so
        invalid ones such as ``O`` -> ``I-X`` get negative weights).

    Attributes
    ----------
    classes_ : ndarray of str, shape (K,)
        The tags, ``O`` first.
    model_ : bytes
        CRFsuite's model file.
    """

    def __init__(self, *, c1: float = 0.05, c2: float = 0.01, max_iterations: int = 100,
                 all_possible_transitions: bool = True) -> None:
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.all_possible_transitions = all_possible_transitions

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> "CrfTagger":
        """Fit on tokenised sentences and their BIO tags (one list of tags per sentence)."""
        import pycrfsuite

        classes = _check_training_data(sentences, tags)
        trainer = pycrfsuite.Trainer(verbose=False)
        for tokens, tt in zip(sentences, tags):
            if len(tokens):
                trainer.append(token_features(tokens), list(tt))
        trainer.set_params({"c1": self.c1, "c2": self.c2, "max_iterations": self.max_iterations,
                            "feature.possible_transitions": self.all_possible_transitions})
        # CRFsuite writes its model to a file; keep the bytes and delete the file.
        fd, path = tempfile.mkstemp(prefix="al-crf-", suffix=".crfsuite")
        os.close(fd)
        try:
            trainer.train(path)
            with open(path, "rb") as fh:
                self.model_ = fh.read()
        finally:
            os.unlink(path)
        self.classes_ = np.asarray(classes, dtype=str)
        self._tagger = None
        return self

    def _open(self):
        """This thread's CRFsuite tagger: ``set`` then ``tag`` is stateful, and /predict runs in a threadpool."""
        local = getattr(self, "_tagger", None)
        if local is None:
            local = self._tagger = threading.local()
        tagger = getattr(local, "tagger", None)
        if tagger is None:
            import pycrfsuite

            check_is_fitted(self, "model_")
            tagger = pycrfsuite.Tagger()
            tagger.open_inmemory(self.model_)
            known = set(tagger.labels())
            if not known <= set(self.classes_):
                raise ValueError(f"CRFsuite model has tags {sorted(known)} outside classes_ {list(self.classes_)}")
            local.tagger = tagger
        return tagger

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[Tagging]:
        """Best tags, exact per-token marginals and the best sequence's probability, per sentence."""
        tagger = self._open()
        classes = list(self.classes_)
        known = set(tagger.labels())
        out = []
        for tokens in sentences:
            n = len(tokens)
            m = np.zeros((n, len(classes)))
            if n == 0:
                out.append(Tagging([], m, 1.0))
                continue
            tagger.set(token_features(tokens))
            best = tagger.tag()
            for k, label in enumerate(classes):
                if label in known:
                    m[:, k] = [tagger.marginal(label, i) for i in range(n)]
            out.append(Tagging(best, m, float(tagger.probability(best))))
        return out

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        tagger = self._open()
        out = []
        for tokens in sentences:
            if not len(tokens):
                out.append([])
                continue
            tagger.set(token_features(tokens))
            out.append(tagger.tag())
        return out

    def predict_marginals(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return [t.marginals for t in self.tag(sentences)]

    def __getstate__(self) -> dict:
        # The open CRFsuite taggers are C objects in thread-locals: copy the model bytes, never them.
        state = dict(self.__dict__)
        state.pop("_tagger", None)
        return state

    def to_bytes(self) -> bytes:
        check_is_fitted(self, "model_")
        buf = io.BytesIO()
        np.savez_compressed(buf, kind=np.asarray("crf"), model=np.frombuffer(self.model_, dtype=np.uint8),
                            sha256=np.asarray(hashlib.sha256(self.model_).hexdigest()), classes=self.classes_,
                            c1=np.asarray(self.c1, dtype=np.float64), c2=np.asarray(self.c2, dtype=np.float64),
                            max_iterations=np.asarray(self.max_iterations),
                            all_possible_transitions=np.asarray(self.all_possible_transitions))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CrfTagger":
        """Load what :meth:`to_bytes` wrote, without unpickling; the CRFsuite file is checked first.

        Raises ``ValueError`` for anything else, including a model file whose
        digest or header does not match (:func:`_check_crf_blob`).
        """
        try:
            with _load_npz(raw) as z:
                if str(z["kind"]) != "crf":
                    raise ValueError(f"not a stored CrfTagger (kind {str(z['kind'])!r})")
                blob = z["model"].astype(np.uint8).tobytes()
                if hashlib.sha256(blob).hexdigest() != str(z["sha256"]):
                    raise ValueError("stored CRFsuite model does not match its digest")
                _check_crf_blob(blob)
                model = cls(c1=float(z["c1"]), c2=float(z["c2"]), max_iterations=int(z["max_iterations"]),
                            all_possible_transitions=bool(z["all_possible_transitions"]))
                model.model_, model.classes_, model._tagger = blob, z["classes"].astype(str), None
        except (KeyError, OSError, IndexError, EOFError) as exc:
            raise ValueError(f"not a stored tagger: {exc}") from None
        return model


#: The tagger a ``<Labels>`` control gets (chosen in docs/research/ner.md).
DEFAULT_TAGGER = CrfTagger


def load_tagger(raw: bytes) -> CrfTagger | LogisticTagger:
    """Read back either tagger from :meth:`to_bytes`, by the kind it stored."""
    try:
        with _load_npz(raw) as z:
            kind = str(z["kind"])
    except (KeyError, OSError, ValueError) as exc:
        raise ValueError(f"not a stored tagger: {exc}") from None
    if kind == "crf":
        return CrfTagger.from_bytes(raw)
    if kind == "logistic":
        return LogisticTagger.from_bytes(raw)
    raise ValueError(f"not a stored tagger: unknown kind {kind!r}")


# --------------------------------------------------------------------------
# Texts and Label Studio spans in, taggings out: the model of a <Labels> control
# --------------------------------------------------------------------------


class Tagged(NamedTuple):
    """One text as :meth:`SpanModel.tag` sees it: the text, its tokens, and the tagger's view of them."""

    text: str
    tokens: list[Token]
    tagging: Tagging


class SpanModel(BaseEstimator):
    """A tagger that reads texts and Label Studio spans, so the worker can train it like any other model.

    The worker fits a control's model on the task contents and the
    annotators' answers; a tagger wants token strings and BIO tags.  This
    wrapper does the crossing once, with :mod:`backend.learning.spans`
    (exact-offset tokens, spans located by :func:`align_span`, then BIO),
    around :data:`DEFAULT_TAGGER`.

    Parameters
    ----------
    overlap : {"first", "error"}
        Spans of one answer that share a token (nested entities, or one
        span with two labels): ``"first"`` keeps the span that starts first
        (the longer on a tie) and trains on the rest of the sentence;
        ``"error"`` skips the whole answer (``skipped_``).

    Attributes
    ----------
    tagger_ : CrfTagger
    skipped_ : dict of int to str
        Rows of the training data not trained on, and why (a span that is
        not in its text, or overlapping spans with ``overlap="error"``).
    """

    def __init__(self, *, overlap: str = "first") -> None:
        self.overlap = overlap

    def fit(self, texts: Sequence[str], answers: Sequence[Sequence[tuple]], init: object = None) -> "SpanModel":
        """Fit on texts and their spans, each ``(start, end, label)`` or ``(start, end, label, text)``.

        An empty answer is a sentence without entities (every tag ``O``).
        ``init`` is accepted for the worker's warm start and ignored: CRFsuite
        fits from zero, in seconds at the sizes annotators reach.
        """
        if len(texts) != len(answers):
            raise ValueError(f"{len(texts)} texts but {len(answers)} answers; expected the same number")
        sentences, tags, skipped = [], [], {}
        for k, (text, spans) in enumerate(zip(texts, answers)):
            tokens = tokenize(text)
            try:
                tags.append(self.target_tags(text, tokens, spans))
            except SpanError as exc:
                skipped[k] = str(exc)
                continue
            sentences.append([t.text for t in tokens])
        self.tagger_ = DEFAULT_TAGGER().fit(sentences, tags)
        self.skipped_ = skipped
        return self

    def target_tags(self, text: str, tokens: Sequence[Token], spans: Sequence[tuple]) -> list[str]:
        """The BIO tags an answer trains (``SpanError`` when a span is not in ``text``, or overlaps with
        ``overlap="error"``): what the model can at best predict, widened to whole tokens."""
        return spans_to_bio(tokens, _located(text, spans), text_length=len(text), overlap=self.overlap)

    @property
    def classes_(self) -> np.ndarray:
        return self.tagger_.classes_

    def tag(self, texts: Sequence[str]) -> list[Tagged]:
        """Each text's tokens, best tags, marginals and sequence probability."""
        check_is_fitted(self, "tagger_")
        tokens = [tokenize(t) for t in texts]
        taggings = self.tagger_.tag([[t.text for t in tt] for tt in tokens])
        return [Tagged(text, tt, tagging) for text, tt, tagging in zip(texts, tokens, taggings)]

    def to_bytes(self) -> bytes:
        check_is_fitted(self, "tagger_")
        return self.tagger_.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "SpanModel":
        """Read what :meth:`to_bytes` wrote (the tagger's own pickle-free ``.npz``)."""
        model = cls()
        model.tagger_, model.skipped_ = load_tagger(raw), {}
        return model


def _located(text: str, spans: Sequence[tuple]) -> list[tuple[int, int, str]]:
    """``(start, end, label)`` of each span in ``text``, located by its own text when given (``align_span``)."""
    out = []
    for span in spans:
        start, end, label = span[0], span[1], span[2]
        span_text = span[3] if len(span) > 3 else None
        where = align_span(text, start, end, span_text) if isinstance(start, int) and isinstance(end, int) else None
        if where is None:
            raise SpanError(f"span {start}-{end} {label!r} is not in the task's text of {len(text)} characters"
                            + (f" (its text {span_text!r} does not occur there)" if span_text else ""))
        out.append((where[0], where[1], label))
    return out


# --------------------------------------------------------------------------
# Sequence uncertainties (pure numpy)
# --------------------------------------------------------------------------


def least_confident(sequence_proba: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """``1 - P(best sequence)`` per sentence: higher is less sure.

    Parameters
    ----------
    sequence_proba : array of shape (n,)
        The best sequence's probability (:attr:`Tagging.sequence_proba`).
    lengths : array of shape (n,), optional
        Tokens per sentence.  Then the probability is length-normalised,
        ``1 - P ** (1 / length)`` (Shen et al. 2018), so long sentences are
        not picked merely for being long.
    """
    p = np.clip(np.asarray(sequence_proba, dtype=np.float64), 0.0, 1.0)
    if lengths is None:
        return 1.0 - p
    n = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
    return 1.0 - p ** (1.0 / n)


def token_margins(marginals: np.ndarray) -> np.ndarray:
    """Per token, the best tag's probability minus the second best's (shape (n_tokens,)); 1 with one tag."""
    m = np.asarray(marginals, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"marginals must be 2-D (n_tokens, n_tags), got shape {m.shape}")
    if m.shape[1] < 2:
        return np.ones(m.shape[0])
    top = np.partition(m, m.shape[1] - 2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def mean_token_margin(marginals: Sequence[np.ndarray]) -> np.ndarray:
    """Per sentence, the mean token margin: lower is less sure (1.0 for a sentence without tokens)."""
    return np.array([token_margins(m).mean() if len(m) else 1.0 for m in marginals])


def min_token_margin(marginals: Sequence[np.ndarray]) -> np.ndarray:
    """Per sentence, the smallest token margin, its least sure token: lower is less sure (1.0 without tokens)."""
    return np.array([token_margins(m).min() if len(m) else 1.0 for m in marginals])


def expected_entity_count(marginals: Sequence[np.ndarray], classes: Sequence[str]) -> np.ndarray:
    """Per sentence, the expected number of entities: the sum of every token's ``P(B-*)``.

    Each entity has exactly one ``B-`` token in a valid BIO sequence, and
    the CRF gives invalid ones almost no mass, so this is the expected count
    of entities an annotator will have to check.
    """
    begins = np.array([c.startswith("B-") for c in classes])
    return np.array([float(np.asarray(m)[:, begins].sum()) if len(m) else 0.0 for m in marginals])


def span_scores(tagging: Tagging, classes: Sequence[str], *, how: str = "mean") -> list[tuple[int, int, str, float]]:
    """Each predicted entity as ``(first token, end token, label, score)``: its pre-annotation's ``score``.

    The score is the mean (``how="mean"``) or the minimum (``"min"``) over the
    entity's tokens of the marginal probability of the tag each got, so a
    span with one doubtful token scores low.
    """
    if how not in ("mean", "min"):
        raise ValueError(f"how must be 'mean' or 'min', got {how!r}")
    index = {c: k for k, c in enumerate(classes)}
    out = []
    for i, j, label in bio_to_token_spans(tagging.tags):
        p = np.array([tagging.marginals[t, index[tagging.tags[t]]] for t in range(i, j)])
        out.append((i, j, label, float(p.mean() if how == "mean" else p.min())))
    return out


def sequence_uncertainties(taggings: Sequence[Tagging], classes: Sequence[str]) -> dict[str, np.ndarray]:
    """The four sequence measures of issue 17, per sentence, by name (higher ``least_confident*`` = less sure).

    ``least_confident`` is length-normalised (``1 - P^(1/n)``, the one a
    ``<Labels>`` control ranks by: ``tasktypes/labels.py``),
    ``least_confident_raw`` is ``1 - P``; ``mean_token_margin`` and
    ``min_token_margin`` are lower when less sure; ``expected_entities`` is
    the expected number of entities to check.
    """
    proba = np.array([t.sequence_proba for t in taggings], dtype=np.float64)
    lengths = np.array([len(t.tags) for t in taggings], dtype=np.float64)
    marginals = [t.marginals for t in taggings]
    return {
        "least_confident": least_confident(proba, lengths),
        "least_confident_raw": least_confident(proba),
        "mean_token_margin": mean_token_margin(marginals),
        "min_token_margin": min_token_margin(marginals),
        "expected_entities": expected_entity_count(marginals, classes),
    }
