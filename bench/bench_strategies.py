"""Selection strategies on 100,000 real texts, side by side with modAL and scikit-activeml.

Usage: python bench/bench_strategies.py [--pool 100000] [--labels 1000] [--batch 100] [--repeat 5]
                                        [--out docs/results/strategies.json]

The pool is real text: CrowdFlower tweets (37,243) and Rotten Tomatoes
snippets (12,808), drawn with a seeded generator to ``--pool`` texts (so it
holds exact repeats, as real pools do), featurised once with
``NgramFeaturizer``.  A ``ChoicesClassifier`` trained on ``--labels``
labeled tweets (3 labels) gives the probabilities; the pool's 32-d
projection, its k-means clusters and a 5-member bagged committee are
computed once, so every library scores **the same arrays**.

Timed (median of ``--repeat`` runs; ratios are other / ours, > 1 means we
are faster):

1. each scoring function alone, ours against modAL's and scikit-activeml's
   implementation of the same score where one exists;
2. each batch of ``--batch`` tasks (k-center greedy, ranked batch,
   TypiClust), same comparison;
3. every named strategy end to end through ``strategies.rank_pool`` (as the
   worker runs it: projection, clustering, scores, batch, near-duplicate
   collapse, control share), and its peak traced memory at half and full
   pool size (memory linear in the pool: the ratio should be about 2).

modAL-python and scikit-activeml are only needed here (``pip install -e
'.[compare]'``); they install beside the project's numpy and scikit-learn.
modAL's ``information_density`` builds the full n x n distance matrix, so
it is timed on samples of 2,500 / 5,000 / 10,000 tasks and its 100,000-task
cost is extrapolated (quadratic); its ``ranked_batch`` is timed once.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning.featurizers.ngrams import NgramFeaturizer  # noqa: E402
from backend.learning.model import ChoicesClassifier  # noqa: E402
from backend.selection import (
    ranking,  # noqa: E402
    scores,  # noqa: E402
    strategies,  # noqa: E402
)
from backend.simulation.datasets import load_dataset  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


class CommitteeView:
    """What modAL's disagreement measures read from a ``Committee``, over fixed arrays.

    ``vote`` and ``vote_proba`` return the precomputed members' answers, so
    modAL times only its scoring, exactly like ours.
    """

    def __init__(self, proba: np.ndarray, classes: np.ndarray) -> None:
        self._proba = np.ascontiguousarray(proba.transpose(1, 0, 2))  # (n, M, K)
        self._votes = classes[proba.argmax(axis=2)].T  # (n, M)
        self.classes_ = classes
        self._m = proba.shape[0]

    def __len__(self) -> int:
        return self._m

    def __iter__(self):
        return iter(range(self._m))

    def vote(self, X, **kwargs):
        return self._votes

    def vote_proba(self, X, **kwargs):
        return self._proba


class LearnerView:
    """What modAL's ``ranked_batch`` reads from a learner: its training rows (here: the projection's)."""

    on_transformed = False

    def __init__(self, X_training: np.ndarray) -> None:
        self.X_training = X_training


def build_pool(n_pool: int, n_labels: int):
    tweets = load_dataset("crowdflower-tweets")
    reviews = load_dataset("rotten-tomatoes")
    texts = list(tweets.texts) + list(reviews.texts)
    rng = np.random.default_rng(0)
    labeled = rng.choice(len(tweets.texts), n_labels, replace=False)
    rest = np.setdiff1d(np.arange(len(texts)), labeled)
    drawn = np.concatenate([rng.permutation(rest), rng.choice(rest, max(0, n_pool - rest.size))])[:n_pool]
    featurizer = NgramFeaturizer()
    t = time.perf_counter()
    X = featurizer.transform([texts[i] for i in drawn])
    print(f"pool: {n_pool:,} texts ({np.unique(drawn).size:,} distinct) featurised in {time.perf_counter() - t:.1f}s")
    X_labeled = featurizer.transform([tweets.texts[i] for i in labeled])
    y_labeled = [tweets.labels[i] for i in labeled]
    return X, X_labeled, y_labeled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None, help="write all numbers to this JSON file")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads for everything (default 1: the machine is shared; 0 = library default)")
    args = ap.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads)

    import modAL.batch
    import modAL.density
    import modAL.disagreement
    import modAL.uncertainty
    import skactiveml
    import skactiveml.pool as skal

    X, X_labeled, y_labeled = build_pool(args.pool, args.labels)
    model = ChoicesClassifier().fit(X_labeled, y_labeled)
    P = model.predict_proba(X)
    pool = strategies.Pool(X=X, probas={"label": P}, models={"label": model}, labeled_X=X_labeled,
                          labeled_y=y_labeled)
    ranking.random_projection(X.shape[1])  # built once per worker process
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    Z, Z_labeled = strategies._projection(pool, rng)
    t_project = time.perf_counter() - t
    t = time.perf_counter()
    labels, centers = strategies._clusters(pool, rng)
    t_kmeans = time.perf_counter() - t
    t = time.perf_counter()
    committee = strategies._committee(pool, rng)[1]
    t_committee = time.perf_counter() - t
    sizes = np.bincount(labels, minlength=len(centers)).astype(float)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel() + 1.0)
    u = scores.margin_uncertainty(P)
    classes = model.classes_
    print(f"shared inputs: projection {t_project:.2f}s, k-means {t_kmeans:.2f}s, "
          f"committee of {committee.shape[0]} bagged fits + predictions {t_committee:.2f}s")

    results: dict = {"scores": {}, "batches": {}, "strategies": {}, "memory": {}}
    R = args.repeat

    def row(section: str, name: str, ours: Callable, others: dict[str, Callable | None], repeat: int = R):
        t_ours, _ = timed(ours, repeat)
        entry = {"ours_s": t_ours}
        for lib, fn in others.items():
            if fn is None:
                entry[f"{lib}_s"] = None
                continue
            t_lib, _ = timed(fn, repeat if lib != "modAL-slow" else 1)
            entry[f"{lib}_s"] = t_lib
        results[section][name] = entry
        cells = [f"{name:24} ours {t_ours:8.4f}s"]
        for lib in others:
            v = entry[f"{lib}_s"]
            cells.append(f"{lib} {'n/a':>8}" if v is None else f"{lib} {v:8.4f}s (x{v / t_ours:.1f})")
        print("  ".join(cells))

    print(f"\nscoring functions on {args.pool:,} tasks (median of {R}):")
    row("scores", "least-confidence", lambda: scores.least_confidence(P), {
        "modAL": lambda: modAL.uncertainty._proba_uncertainty(P),
        "skactiveml": lambda: skal.uncertainty_scores(P, method="least_confident")})
    row("scores", "margin", lambda: scores.margin_uncertainty(P), {
        "modAL": lambda: modAL.uncertainty._proba_margin(P),
        "skactiveml": lambda: skal.uncertainty_scores(P, method="margin_sampling")})
    row("scores", "entropy", lambda: scores.entropy(P), {
        "modAL": lambda: modAL.uncertainty._proba_entropy(P),
        "skactiveml": lambda: skal.uncertainty_scores(P, method="entropy")})
    view = CommitteeView(committee, classes)
    votes = committee.argmax(axis=2).T  # (n, M) label positions, as scikit-activeml takes them
    row("scores", "vote entropy", lambda: scores.vote_entropy(committee), {
        "modAL": lambda: modAL.disagreement.vote_entropy(view, X),
        "skactiveml": lambda: skal.vote_entropy(votes, np.arange(len(classes)))})
    row("scores", "KL to consensus", lambda: scores.mean_kl_to_consensus(committee), {
        "modAL": lambda: modAL.disagreement.KL_max_disagreement(view, X),  # max over members, not mean
        "skactiveml": lambda: skal.average_kl_divergence(committee.copy())})
    row("scores", "EGL", lambda: scores.expected_gradient_length(P, norms), {"modAL": None, "skactiveml": None})
    row("scores", "information density", lambda: scores.information_density(Z, centers, sizes),
        {"modAL": None, "skactiveml": None})
    row("scores", "kNN typicality", lambda: scores.knn_typicality(Z, labels, np.random.default_rng(0)),
        {"modAL": None, "skactiveml": None})
    # modAL's density is the exact mean similarity to every task: n x n.
    density_samples = {}
    for m in (2_500, 5_000, 10_000):
        if m > args.pool:
            continue
        sample = Z[:m].astype(np.float64)
        t_m, _ = timed(lambda: modAL.density.information_density(sample), 1)
        t_o, _ = timed(lambda: scores.information_density(sample, centers, sizes), R)
        density_samples[m] = {"modAL_s": t_m, "ours_s": t_o}
        print(f"  information density on {m:,}: modAL {t_m:.3f}s, ours {t_o:.4f}s")
    if density_samples:
        m_max = max(density_samples)
        est = density_samples[m_max]["modAL_s"] * (args.pool / m_max) ** 2
        results["scores"]["information density"]["modAL_s_extrapolated"] = est
        results["scores"]["information density"]["modAL_samples"] = density_samples
        results["scores"]["information density"]["modAL_matrix_gb"] = args.pool**2 * 8 / 1e9
        print(f"  modAL information density on {args.pool:,}, extrapolated: {est:.0f}s and a "
              f"{args.pool**2 * 8 / 1e9:.0f} GB distance matrix")

    B = args.batch
    Z64, Zl64 = Z.astype(np.float64), Z_labeled.astype(np.float64)
    y_sk = np.concatenate([np.zeros(Z_labeled.shape[0]), np.full(Z.shape[0], np.nan)])
    Z_all = np.vstack([Zl64, Z64])
    print(f"\nbatches of {B} on {args.pool:,} tasks, {Z_labeled.shape[0]:,} labeled (median of {R}; "
          "modAL's ranked batch once):")
    row("batches", "k-center greedy", lambda: ranking.kcenter_greedy(Z, B, labeled=Z_labeled), {
        "modAL": None,
        "skactiveml": lambda: skal.k_greedy_center(Z_all, y_sk, batch_size=B, random_state=0)})
    row("batches", "ranked batch", lambda: ranking.ranked_batch(Z, u, B, labeled=Z_labeled), {
        "modAL-slow": lambda: modAL.batch.ranked_batch(LearnerView(Zl64), Z64, u, B, "euclidean", None),
        "skactiveml": None})
    cold = strategies.Pool(X=X)

    def ours_typiclust():  # from the same projection as scikit-activeml: k-means, typicality, coverage order
        cold._cache.clear()
        cold._cache.update(Z=Z, Z_labeled=None)
        return strategies._cold_start(cold, np.random.default_rng(0))[0][:B]

    row("batches", "TypiClust (cold start)", ours_typiclust, {
        "modAL": None,
        "skactiveml": lambda: skal.TypiClust(random_state=0).query(Z64, np.full(Z.shape[0], np.nan), batch_size=B)},
        repeat=max(1, min(R, 3)))

    print(f"\nnamed strategies end to end (rank_pool, batch {B}, control share 0.1; median of {min(R, 3)}):")
    half = strategies.Pool(X=X[: args.pool // 2], probas={"label": P[: args.pool // 2]}, models={"label": model},
                          labeled_X=X_labeled, labeled_y=y_labeled)
    for name in strategies.STRATEGIES:
        params = strategies.SelectionParams(strategy=name, batch_size=B)
        t_s, ranked = timed(lambda: strategies.rank_pool(pool, params, np.random.default_rng(2)), min(R, 3))
        mem_full = peak_mb(lambda: strategies.rank_pool(pool, params, np.random.default_rng(2)))
        mem_half = peak_mb(lambda: strategies.rank_pool(half, params, np.random.default_rng(2)))
        results["strategies"][name] = {"seconds": t_s, "peak_mb": mem_full, "peak_mb_half_pool": mem_half,
                                       "control_tasks": int((ranked.source == strategies.CONTROL).sum())}
        print(f"  {name:18} {t_s:6.2f}s   peak {mem_full:7.1f} MB  (half pool {mem_half:6.1f} MB, "
              f"ratio {mem_full / max(mem_half, 1e-9):.2f})")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    results["meta"] = {
        "command": " ".join(["python"] + sys.argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "pool": args.pool, "labels": args.labels, "batch": B, "repeat": R, "blas_threads": args.blas_threads,
        "shared_inputs_s": {"projection": t_project, "kmeans": t_kmeans, "committee": t_committee},
        "versions": {"numpy": np.__version__, "modAL": "0.4.2.1" if hasattr(modAL, "models") else "?",
                     "scikit-activeml": skactiveml.__version__},
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
