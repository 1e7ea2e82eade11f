"""What a confidence threshold on pre-annotations does: how many are shown, and how many of those are wrong.

Annotators see the pre-selected choice and often accept it.  On the tasks the
queue serves first (the most uncertain ones), that choice is right far less
often than on average.  A threshold (``min_confidence``) would show a
pre-annotation only when the model's probability for it reaches the threshold.
This replays the worker's loop on a built-in dataset (``backend/simulation/replay.py``:
the worker's features, model and default strategy, the dataset's labels as
annotators) and, at a few label counts, measures for each threshold:

* on the **head of the queue** (the next ``--head`` tasks the worker would push,
  random control share included): the share of tasks that would be shown a
  pre-annotation, and the error rate among those shown;
* on **random held-out tasks** (what a task opened outside the queue looks like):
  the same two numbers.

Usage::

    python scripts/min_confidence.py rotten-tomatoes --seeds 5
    python scripts/min_confidence.py crowdflower-tweets --seeds 5 --checkpoints 100,300,1000

Results, with the command, are in ``docs/min-confidence.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning.featurizers.ngrams import NgramFeaturizer  # noqa: E402
from backend.selection import strategies  # noqa: E402
from backend.simulation.datasets import BUILTIN, load_dataset  # noqa: E402
from backend.simulation.replay import CONTROL_NAME, Oracle, Protocol, make_split, run_strategy  # noqa: E402
from backend.simulation.targets import CHOICES, TARGETS  # noqa: E402

THRESHOLDS = (0.0, 0.6, 0.7, 0.8, 0.9, 0.95)


def shown_and_wrong(proba: np.ndarray, classes: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[int, int]:
    """Pre-annotations at or above ``threshold`` (the item's ``score``: the top probability), and how many are wrong."""
    shown = proba.max(axis=1) >= threshold
    wrong = classes[proba.argmax(axis=1)] != truth
    return int(shown.sum()), int((shown & wrong).sum())


def measure(name: str, *, seeds: int, checkpoints: list[int], head: int, thresholds: tuple[float, ...],
            max_rows: int) -> dict:
    ds = load_dataset(name)
    X = NgramFeaturizer().transform(ds.texts)
    y = np.asarray(ds.labels)
    protocol = Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), seeds=seeds, budget=max(checkpoints),
                        batch_size=100, initial=min(100, min(checkpoints)), max_rows=max_rows)
    params = strategies.SelectionParams(strategy=strategies.DEFAULT_STRATEGY, batch_size=protocol.batch_size,
                                       control_share=protocol.control_share)
    # counts[where][n][t] = [tasks, shown, wrong among shown]
    counts = {w: {n: {t: [0, 0, 0] for t in thresholds} for n in checkpoints} for w in ("head", "random")}
    for rep in range(seeds):
        split = make_split(ds.labels, protocol, rep)
        oracle = Oracle(ds.labels, split.pool)
        run_strategy(X, ds.labels, split, strategies.DEFAULT_STRATEGY, protocol, rep, oracle=oracle)
        for n in checkpoints:
            labeled = np.asarray(oracle.asked[:n])
            model = TARGETS[CHOICES].fit(X[labeled], list(y[labeled]))
            if model is None:
                continue
            rest = np.setdiff1d(split.pool, labeled)
            pool = TARGETS[CHOICES].selection_pool(X[rest], model, X[labeled], list(y[labeled]), CONTROL_NAME)
            ranked = strategies.rank_pool(pool, params, np.random.default_rng(rep))
            for where, rows in (("head", rest[ranked.order[:head]]), ("random", split.test)):
                proba = model.predict_proba(X[rows])
                for t in thresholds:
                    s, w = shown_and_wrong(proba, model.classes_, y[rows], t)
                    c = counts[where][n][t]
                    c[0] += len(rows)
                    c[1] += s
                    c[2] += w
    return {"dataset": name, "rows": len(y), "seeds": seeds, "head": head, "strategy": strategies.DEFAULT_STRATEGY,
            "counts": {w: {str(n): {str(t): c for t, c in d.items()} for n, d in per.items()}
                       for w, per in counts.items()}}


def table(result: dict) -> str:
    out = [f"**{result['dataset']}** ({result['rows']:,} rows, {result['seeds']} seeds, strategy "
           f"`{result['strategy']}`, head of {result['head']} tasks)", "",
           "| labels | threshold | head: shown | head: wrong among shown | random: shown | random: wrong among shown |",
           "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, per_t in result["counts"]["head"].items():
        for t, (tasks, shown, wrong) in per_t.items():
            rt, rs, rw = result["counts"]["random"][n][t]
            cell = lambda s, tot: f"{100 * s / tot:.0f}%" if tot else "–"  # noqa: E731
            out.append(f"| {n} | {'off' if float(t) == 0 else t} | {cell(shown, tasks)} | {cell(wrong, shown)} | "
                       f"{cell(rs, rt)} | {cell(rw, rs)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=sorted(BUILTIN))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--checkpoints", default="100,300,1000", help="label counts at which to measure")
    p.add_argument("--head", type=int, default=200, help="tasks at the head of the queue (AL_HEAD_SIZE)")
    p.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)))
    p.add_argument("--max-rows", type=int, default=0, help="stratified subsample (0 = all rows)")
    p.add_argument("--json", help="also write the counts here")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    result = measure(args.dataset, seeds=args.seeds, checkpoints=[int(x) for x in args.checkpoints.split(",")],
                     head=args.head, thresholds=tuple(float(x) for x in args.thresholds.split(",")),
                     max_rows=args.max_rows)
    print(table(result))
    print(f"\n{time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
