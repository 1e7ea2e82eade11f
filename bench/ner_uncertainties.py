"""Which sequence uncertainty should a ``<Labels>`` queue rank by?  Each of issue 17's measures, replayed.

Usage: python bench/ner_uncertainties.py [--measures least_confident_raw,min_token_margin,least_confident]
                                         [--seeds 5] [--max-rows 3000] [--budget 300]
                                         [--out docs/results/ner-uncertainties.json]

For each measure, ``al-backend simulate``'s loop (``backend/simulation``)
runs on CoNLL-2003 (the ``conll2003-en`` built-in, a subsample of
``--max-rows`` sentences, 20% held out) with the worker's tagger, the
default strategy ``margin`` ranking by that measure (through the task
type's probability view, as the worker ranks), against random order on the
same splits: 5 labels a round, growing by 5% of the labels, from the
cold-start ranking.  Each measure replaces ``LabelsTask.uncertainty`` for
its run only, so every other part is the worker's own.  Printed and written
per measure: the paired AULC difference with random (entity F1 points, 95%
CI) and F1 at fixed label counts.  The run checks what it measured: random's
curve is the same for every measure (same seeds), and the full-data F1 is
far above every curve's start.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.labelstudio.tasktypes.labels import LabelsTask  # noqa: E402
from backend.simulation.datasets import load_dataset  # noqa: E402
from backend.simulation.replay import Protocol, simulate  # noqa: E402
from backend.simulation.report import summarise  # noqa: E402

MEASURES = ("least_confident_raw", "min_token_margin", "mean_token_margin", "least_confident", "expected_entities")


def as_uncertainty(name: str, measures: dict) -> object:
    """The measure as an uncertainty in [0, 1], higher = ask sooner."""
    value = measures[name]
    if name.endswith("token_margin"):
        return 1.0 - value  # a small margin is doubt
    if name == "expected_entities":
        return value / (1.0 + value)  # more entities to check first
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measures", default="least_confident_raw,min_token_margin,least_confident")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--out", default="docs/results/ner-uncertainties.json")
    args = ap.parse_args()
    names = [m.strip() for m in args.measures.split(",") if m.strip()]
    unknown = set(names) - set(MEASURES)
    if unknown:
        raise SystemExit(f"unknown measures {sorted(unknown)}; known: {', '.join(MEASURES)}")
    ds = load_dataset("conll2003-en")
    protocol = Protocol(strategies=("random", "margin"), seeds=args.seeds, budget=args.budget, batch_size=5,
                        batch_growth=0.05, initial=0, warm_start=True, max_rows=args.max_rows)
    original = LabelsTask.uncertainty
    out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.machine()}, Python {platform.python_version()}", "protocol": protocol.to_dict(),
           "measures": {}}
    random_curve = None
    try:
        for name in names:
            LabelsTask.uncertainty = lambda self, model, output, _n=name: as_uncertainty(_n, self.measures(model, output))
            t0 = time.monotonic()
            summary = summarise(simulate(ds, protocol, progress=False))
            rnd, m = summary["strategies"]["random"], summary["strategies"]["margin"]
            if random_curve is not None and rnd["curve"]["entity_f1_mean"] != random_curve:
                raise SystemExit("random's curve changed between measures: the runs are not paired")
            random_curve = rnd["curve"]["entity_f1_mean"]
            if summary["full_data"]["entity_f1"] < rnd["curve"]["entity_f1_mean"][0] + 0.2:
                raise SystemExit("the full-data tagger is not far above the first labels: nothing was learned")
            row = {"delta_aulc_points": round(100 * m["aulc_vs_random"]["mean_diff"], 2),
                   "ci95": [round(100 * v, 2) for v in m["aulc_vs_random"]["ci95"]],
                   "f1_at": {k: round(100 * v, 1) for k, v in m["entity_f1_at"].items()},
                   "random_f1_at": {k: round(100 * v, 1) for k, v in rnd["entity_f1_at"].items()},
                   "savings_to_match_random_at_budget": round(m["savings_at_random_budget"]["mean"], 3),
                   "full_data_f1": round(100 * summary["full_data"]["entity_f1"], 1),
                   "seconds": round(time.monotonic() - t0, 1)}
            out["measures"][name] = row
            print(f"{name:20s} ΔAULC {row['delta_aulc_points']:+.2f} {row['ci95']}  F1 {row['f1_at']}  "
                  f"random {row['random_f1_at']}", flush=True)
    finally:
        LabelsTask.uncertainty = original
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
