"""Which hashed n-grams to use: accuracy at 1,000 labels against featurising cost.

Usage: python bench/feature_choice.py [--seeds 3] [--labels 1000]

For each built-in text dataset and each candidate ``NgramFeaturizer``: train the
project's classifier on ``--labels`` random labeled texts, measure accuracy on
3,000 others (mean over seeds), and time featurising 1,000 texts (median of 5).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset

CANDIDATES = [
    NgramFeaturizer(char_ngrams=None),
    NgramFeaturizer(char_ngrams=(3, 3)),
    NgramFeaturizer(char_ngrams=(4, 4)),
    NgramFeaturizer(char_ngrams=(3, 4)),
    NgramFeaturizer(char_ngrams=(2, 5)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'dataset':20} {'features':14} {'accuracy':>8} {'ms/1000 texts':>14}")
    for name in ("rotten-tomatoes", "crowdflower-tweets"):
        ds = load_dataset(name)
        labels = np.asarray(ds.labels)
        for spec in CANDIDATES:
            featurizer = spec
            accs = []
            for seed in range(args.seeds):
                idx = np.random.default_rng(seed).permutation(len(ds.texts))
                train, test = idx[: args.labels], idx[args.labels : args.labels + 3000]
                model = ChoicesClassifier().fit(featurizer.transform([ds.texts[i] for i in train]), labels[train])
                pred = model.predict(featurizer.transform([ds.texts[i] for i in test]))
                accs.append(float(np.mean(np.asarray(pred) == labels[test])))
            texts = ds.texts[:1000]
            times = []
            for _ in range(5):
                t = time.perf_counter()
                featurizer.transform(texts)
                times.append(time.perf_counter() - t)
            print(f"{name:20} {spec.key:14} {np.mean(accs):8.3f} {np.median(times) * 1e3:14.0f}")


if __name__ == "__main__":
    main()
