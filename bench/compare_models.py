"""Two ``al-backend simulate`` runs that differ only in the model or its features, compared strategy by strategy.

Usage: python bench/compare_models.py BASE/results.json OTHER/results.json [--reach 0.95]

Both runs must share dataset, seeds and protocol apart from the model's
class weights and the representation (``--features``; the script checks),
so repetition ``r`` has the same test split in both (splits never depend on
either) and
the comparison is paired.  For each strategy both ran it prints the paired
difference in AULC (other − base, points of accuracy, 95% Student-t CI) and
the labels each needs to reach ``--reach`` times the *base* run's
full-data accuracy (one absolute target for both, so a model that also
moves the full-data score is not judged against a different bar), with
the paired saving ``1 - n_other / n_base``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.simulation.report import labels_to_reach, mean_ci  # noqa: E402

MODEL_FIELDS = ("class_weight",)  # protocol fields allowed to differ


def _ci(values: list[float], scale: float = 100.0) -> str:
    m, lo, hi = mean_ci(values)
    return f"{scale * m:+.2f} [{scale * lo:+.2f}, {scale * hi:+.2f}]" if lo is not None else f"{scale * m:+.2f}"


def _median(values: list[float | None]) -> str:
    """Median labels, a run that never got there counting as infinitely many."""
    if all(v is None for v in values):
        return "–"
    return f"{np.median([v if v is not None else np.inf for v in values]):,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("other")
    ap.add_argument("--reach", type=float, default=0.95)
    args = ap.parse_args()
    base, other = (json.loads(Path(p).read_text()) for p in (args.base, args.other))
    # Repetition r's split depends on the root seed and r only, so runs with different numbers of
    # repetitions are paired on the ones both have.
    ignored = {*MODEL_FIELDS, "strategies", "seeds"}
    pb = {k: v for k, v in base["protocol"].items() if k not in ignored}
    po = {k: v for k, v in other["protocol"].items() if k not in ignored}
    if pb != po or base["dataset"] != other["dataset"]:
        raise SystemExit("the two runs differ in more than the model: not a paired comparison")
    k = min(base["repetitions"], other["repetitions"])
    targets = [args.reach * a for a in base["full_data"]["accuracy_per_seed"][:k]]

    def model_of(run: dict) -> dict:
        return {**{k: run["protocol"].get(k) for k in MODEL_FIELDS}, "features": run["features"]}

    model = model_of(other)
    print(f"{base['dataset']['name']}: {model} against {model_of(base)}, "
          f"{k} paired repetitions; target {args.reach:.0%} of the base full-data accuracy "
          f"({100 * np.mean(targets):.1f}%; other's own full data: {100 * other['full_data']['accuracy']:.1f}%)")
    print("| strategy | ΔAULC [95% CI] | labels to target, base | other | saving, % [95% CI] |")
    print("| --- | --- | ---: | ---: | --- |")
    for name in base["strategies"]:
        if name not in other["strategies"]:
            continue
        b, o = base["strategies"][name], other["strategies"][name]
        d_aulc = [y - x for x, y in zip(b["aulc"]["per_seed"][:k], o["aulc"]["per_seed"][:k])]
        labels = b["curve"]["labels"]
        assert labels == o["curve"]["labels"], "different label points: not the same protocol"
        n_b = [labels_to_reach(labels, acc, t) for acc, t in zip(b["curve"]["accuracy_per_seed"][:k], targets)]
        n_o = [labels_to_reach(labels, acc, t) for acc, t in zip(o["curve"]["accuracy_per_seed"][:k], targets)]
        budget = float(labels[-1])
        pairs = [(x, y) for x, y in zip(n_b, n_o) if x is not None or y is not None]
        savings = [1 - (y if y is not None else budget) / (x if x is not None else budget) for x, y in pairs]
        censored = sum(x is None or y is None for x, y in pairs)
        print(f"| {name} | {_ci(d_aulc)} | {_median(n_b)} | {_median(n_o)} | {_ci(savings)}"
              + (f" ({censored} censored)" if censored else "") + " |")


if __name__ == "__main__":
    main()
