#!/usr/bin/env python
"""The n-gram hasher against scikit-learn's HashingVectorizer: same n-grams, time and accuracy.

Usage: python bench/bench_features.py [--repeat 7] [--seeds 5] [--labels 1000]

For each built-in text dataset:

1. checks that both hashers produce the same n-grams: with 2**30 columns (no
   collisions) every row has as many columns as scikit-learn's analyzers
   give distinct word and char_wb n-grams (the benchmark refuses to time two
   different things);
2. times featurising 1 text (median of 300 calls, ``--repeat`` rounds) and
   1,000 texts (``--repeat`` calls), taking turns;
3. trains the project's classifier on ``--labels`` random labels with each,
   and scores 3,000 other texts (mean over ``--seeds``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning import ngram_hash  # noqa: E402
from backend.learning.featurizers.ngrams import NgramFeaturizer  # noqa: E402
from backend.learning.model import ChoicesClassifier  # noqa: E402
from backend.simulation.datasets import load_dataset  # noqa: E402

SPECS = {"scikit-learn": NgramFeaturizer(hasher="sklearn"), "ngram-v2": NgramFeaturizer()}


def same_ngrams(texts: list[str]) -> None:
    spec = NgramFeaturizer()
    words = HashingVectorizer(ngram_range=spec.word_ngrams).build_analyzer()
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=spec.char_ngrams).build_analyzer()
    expected = np.array([len(set(words(t))) + len(set(chars(t))) for t in texts])
    got = np.diff(ngram_hash.transform(texts, 2**30, word_ngrams=spec.word_ngrams,
                                       char_ngrams=spec.char_ngrams).indptr)
    if not np.array_equal(expected, got):
        raise SystemExit(f"the hashers disagree on {int((expected != got).sum())} of {len(texts)} texts")


def timed(f, texts: list[str], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        f.transform(texts)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--labels", type=int, default=1000)
    args = ap.parse_args()
    for name in ("rotten-tomatoes", "crowdflower-tweets"):
        ds = load_dataset(name)
        texts, y = ds.texts, np.asarray(ds.labels)
        same_ngrams(texts[:3000])
        featurizers = {k: s for k, s in SPECS.items()}
        one, batch = {k: [] for k in SPECS}, {k: [] for k in SPECS}
        for f in featurizers.values():
            f.transform(texts[:10])  # warm up (tables, imports)
        for r in range(args.repeat):
            for k in (list(SPECS) if r % 2 == 0 else list(reversed(SPECS))):
                one[k].append(timed(featurizers[k], texts[r:r + 1], 300))
                batch[k].append(timed(featurizers[k], texts[1000 * r % 9000:][:1000], 1))
        acc = {}
        for k, f in featurizers.items():
            X = f.transform(texts)
            scores = []
            for seed in range(args.seeds):
                order = np.random.default_rng(seed).permutation(len(y))
                train, test = order[: args.labels], order[-3000:]
                model = ChoicesClassifier().fit(X[train], y[train])
                scores.append(float((model.classes_[model.predict_proba(X[test]).argmax(1)] == y[test]).mean()))
            acc[k] = statistics.mean(scores)
        print(f"\n{name}: same n-grams in 3,000 texts")
        print(f"{'hasher':14}{'1 text, ms':>12}{'1,000 texts, ms':>17}{'accuracy':>10}")
        for k in SPECS:
            print(f"{k:14}{1e3 * statistics.median(one[k]):12.3f}{1e3 * statistics.median(batch[k]):17.1f}"
                  f"{acc[k]:10.4f}")
        base, new = SPECS
        print(f"ratio {new}/{base}: 1 text {statistics.median(one[new]) / statistics.median(one[base]):.2f}x, "
              f"1,000 texts {statistics.median(batch[new]) / statistics.median(batch[base]):.2f}x, "
              f"accuracy {acc[new] - acc[base]:+.4f}")


if __name__ == "__main__":
    main()
