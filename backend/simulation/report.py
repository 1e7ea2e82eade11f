"""Metrics, table and plot of a simulation (:mod:`backend.simulation.replay`).

Every comparison with random is **paired over repetitions**: on one
repetition every strategy starts from the same test split and initial set,
so the per-repetition differences cancel the luck of the split, and the
confidence interval is Student's t on those differences (each repetition is
one independent draw of the whole protocol).

Every definition below reads the target's **headline** score: accuracy for
a ``<Choices>``, skill (``1 - MAE / MAE of the pool's mean``, see
:mod:`backend.simulation.targets`) for a number to predict.  Where it says
accuracy, read skill for numbers; the MAE is reported beside it.

Definitions
-----------
AULC
    Area under the accuracy-vs-labels curve divided by the width of the
    label range (trapezoids): the curve's mean accuracy, in [0, 1], so a
    higher value means better accuracy earlier and all along.
labels to reach q
    The first point where test accuracy reaches ``q`` times the full-data
    accuracy (same model trained on the whole pool of that repetition),
    interpolated linearly between the two curve points around the crossing;
    ``None`` when the budget ran out first.
savings to match random at the budget
    ``1 - n_strategy / n_random`` per repetition, ``n`` the labels each needs
    to reach the accuracy random has at the budget (``n_random`` is at most
    the budget; a strategy that never gets there counts as needing the whole
    budget, which overstates its saving: counted in ``censored``).
savings at 95%
    ``1 - n_strategy / n_random`` per repetition, ``n`` the labels needed to
    reach 95% of the full-data accuracy; a run that never gets there counts
    as needing the whole budget (so when random never gets there the saving
    is understated, when the strategy never does it is overstated: both are
    counted in ``censored``), and repetitions where neither gets there are
    left out.

References
----------
Student's t interval for paired differences: any statistics text, e.g.
NIST/SEMATECH e-Handbook, 7.3.1, https://www.itl.nist.gov/div898/handbook/prc/section3/prc31.htm
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import stats

from backend.simulation.replay import Curve, SimulationResult
from backend.simulation.targets import TARGETS

__all__ = ["REACH", "aulc", "labels_to_reach", "mean_ci", "summarise", "format_table", "format_feature_comparison",
           "write_results", "plot_curves"]

#: Shares of the full-data accuracy whose label cost is reported.
REACH = (0.90, 0.95, 0.99)
#: Round label counts at which accuracy and macro-F1 are reported (those inside the curve, plus the budget).
REPORT_AT = (100, 250, 500, 1000, 2000, 5000, 10000)


def aulc(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Mean score over the label range (normalised area under the curve)."""
    x, y = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    if len(x) == 1 or x[-1] == x[0]:
        return float(y[0])
    area = float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)
    return area / float(x[-1] - x[0])


def labels_to_reach(labels: Sequence[float], scores: Sequence[float], target: float) -> float | None:
    """Labels at the first crossing of ``target`` (linear between curve points); None if never."""
    x, y = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    hit = np.flatnonzero(y >= target)
    if hit.size == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and Student's t confidence interval (None with fewer than two values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), None, None
    m = float(v.mean())
    if v.size < 2:
        return m, None, None
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def _report_points(first: int, last: int) -> list[int]:
    pts = [b for b in REPORT_AT if first <= b < last] + [last]
    return pts[-4:]


def _median_or_none(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    # The median of all runs, counting a run that never got there as infinitely many labels.
    if len(got) * 2 <= len(values):
        return None
    full = sorted(v if v is not None else float("inf") for v in values)
    return float(np.median(full))


def _auto_summary(curves: list[Curve]) -> dict:
    """``features="auto"``: the representation each run ended on, and when runs switched."""
    return {
        "final": dict(Counter(c.features[-1] for c in curves if c.features)),
        "switches": [[{"labels": ch["labels"], "to": ch["chosen"]} for ch in c.choices if ch["chosen"] != ch["previous"]]
                     for c in curves],
        "comparisons_per_run": float(np.mean([len(c.choices) for c in curves])),
    }


def summarise(result: SimulationResult) -> dict:
    """Everything ``results.json`` holds, except timings: numbers depend only on data and protocol.

    Each of the target's metrics (``accuracy`` and ``macro_f1``; ``skill``
    and ``mae``) gets ``<metric>_at`` and ``curve.<metric>_mean`` / ``_sd`` /
    ``_per_seed``; AULC, labels to reach and savings read the headline.
    """
    proto = result.protocol
    reps = result.repetitions
    target = TARGETS[result.target]
    head, second = target.metrics
    full_head = [r.full_headline for r in reps]
    curves0: Curve = reps[0].curves["random"]
    first, last = curves0.labels[0], curves0.labels[-1]
    points = _report_points(first, last)
    out: dict = {
        "dataset": {
            "name": result.dataset,
            "rows": result.n_rows,
            "classes": result.classes,
            "pool": result.pool_size,
            "test": result.test_size,
        },
        "target": target.name,
        "metric": head,
        "protocol": proto.to_dict(),
        "features": result.features,
        "repetitions": len(reps),
        "stopped_early": result.stopped_early,
        "full_data": {
            **{m: float(np.mean([r.full[m] for r in reps])) for m in target.metrics},
            f"{head}_per_seed": full_head,
        },
        "report_at": points,
        "strategies": {},
    }
    n_needed: dict[str, dict[float, list[float | None]]] = {}
    aulcs: dict[str, list[float]] = {}
    for name in proto.strategies:
        curves = [r.curves[name] for r in reps]
        by_metric = {m: np.array([c.scores[m] for c in curves]) for m in target.metrics}
        x = curves[0].labels
        aulcs[name] = [aulc(c.labels, c.headline) for c in curves]
        n_needed[name] = {
            q: [labels_to_reach(c.labels, c.headline, q * fh) for c, fh in zip(curves, full_head)] for q in REACH
        }
        m, lo, hi = mean_ci(aulcs[name])
        half = None if hi is None else hi - m
        curve_out: dict = {"labels": list(x)}
        for metric, values in by_metric.items():
            curve_out[f"{metric}_mean"] = values.mean(axis=0).tolist()
            curve_out[f"{metric}_sd"] = values.std(axis=0, ddof=1).tolist() if len(reps) > 1 else [0.0] * len(x)
        for metric, values in by_metric.items():
            curve_out[f"{metric}_per_seed"] = values.tolist()
        out["strategies"][name] = {
            "aulc": {"mean": m, "sd": float(np.std(aulcs[name], ddof=1)) if len(reps) > 1 else 0.0,
                     "ci95_half": half, "per_seed": aulcs[name]},
            f"aulc_{second}": float(np.mean([aulc(c.labels, c.scores[second]) for c in curves])),
            **{f"{metric}_at": {str(b): float(np.mean([np.interp(b, c.labels, c.scores[metric]) for c in curves]))
                                for b in points} for metric in target.metrics},
            "labels_to_reach": {
                f"{q:.2f}": {
                    "median": _median_or_none(n_needed[name][q]),
                    "reached": sum(v is not None for v in n_needed[name][q]),
                    "per_seed": n_needed[name][q],
                }
                for q in REACH
            },
            "control_tasks": float(np.mean([c.random_picks for c in curves])),
            **({"auto_features": _auto_summary(curves)} if any(c.choices for c in curves) else {}),
            "curve": curve_out,
        }
    head_random = np.array([r.curves["random"].headline for r in reps])
    for name in proto.strategies:
        if name == "random":
            continue
        entry = out["strategies"][name]
        gap = np.array([r.curves[name].headline for r in reps]) - head_random  # paired, per point
        entry["curve"][f"{head}_vs_random_mean"] = gap.mean(axis=0).tolist()
        entry["curve"][f"{head}_vs_random_sd"] = (
            gap.std(axis=0, ddof=1).tolist() if len(reps) > 1 else [0.0] * gap.shape[1]
        )
        diff = np.asarray(aulcs[name]) - np.asarray(aulcs["random"])
        m, lo, hi = mean_ci(diff)
        entry["aulc_vs_random"] = {
            "mean_diff": m, "ci95": [lo, hi], "beats_random": bool(lo is not None and lo > 0),
            "worse_than_random": bool(hi is not None and hi < 0), "per_seed": diff.tolist(),
        }
        savings, censored, neither = [], 0, 0
        for n_s, n_r in zip(n_needed[name][0.95], n_needed["random"][0.95]):
            if n_s is None and n_r is None:
                neither += 1
                continue
            censored += (n_s is None) + (n_r is None)
            n_s = float(last) if n_s is None else n_s
            n_r = float(last) if n_r is None else n_r
            savings.append(1.0 - n_s / n_r)
        m, lo, hi = mean_ci(savings)
        entry["savings_vs_random_95"] = {
            "mean": m if savings else None, "ci95": [lo, hi], "per_seed": savings,
            "censored": censored, "neither_reached": neither,
        }
        # Labels the strategy needs to match random's score at the budget (always defined for random).
        matched, censored = [], 0
        for r in reps:
            c, rc = r.curves[name], r.curves["random"]
            n_s = labels_to_reach(c.labels, c.headline, rc.headline[-1])
            n_r = labels_to_reach(rc.labels, rc.headline, rc.headline[-1])  # random itself may get there early
            censored += n_s is None
            matched.append(1.0 - (float(last) if n_s is None else n_s) / n_r)
        m, lo, hi = mean_ci(matched)
        entry["savings_at_random_budget"] = {"mean": m, "ci95": [lo, hi], "per_seed": matched, "censored": censored}
    return out


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or v != v else f"{100 * v:.{digits}f}"


def _value(summary: dict, metric: str, v: float | None, digits: int = 1) -> str:
    """A score as the table prints it: a share in %, an error in its own units."""
    if not TARGETS[summary.get("target", "choices")].labels[metric][1]:  # an error, in the numbers' units
        return "–" if v is None or v != v else f"{v:,.{max(digits, 2)}f}"
    return _pct(v, digits)


def _column(summary: dict, metric: str) -> str:
    return TARGETS[summary.get("target", "choices")].labels[metric][0]


def _ci(lo: float | None, hi: float | None, scale: float = 100.0, digits: int = 1) -> str:
    if lo is None or hi is None:
        return ""
    return f" [{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]"


def _labels(entry: dict, reps: int) -> str:
    med = entry["median"]
    n = entry["reached"]
    return ("–" if med is None else f"{med:,.0f}") + ("" if n == reps else f" ({n}/{reps})")


def format_table(summary: dict) -> str:
    """A Markdown table, one row per strategy (also what the command prints)."""
    reps = summary["repetitions"]
    pts = summary["report_at"]
    first, second = TARGETS[summary.get("target", "choices")].metrics
    head = (["strategy", "AULC", "ΔAULC vs random [95% CI]"] + [f"{_column(summary, first)}@{b:,}" for b in pts]
            + [f"{_column(summary, second)}@{pts[-1]:,}"] + [f"labels to {int(q * 100)}%" for q in REACH]
            + ["savings @95% [95% CI]", "savings to match random@budget [95% CI]"])
    rows = []
    for name, s in summary["strategies"].items():
        vs = s.get("aulc_vs_random")
        sv = s.get("savings_vs_random_95")
        delta = "(baseline)" if vs is None else f"{100 * vs['mean_diff']:+.2f}{_ci(*vs['ci95'], digits=2)}"
        if vs is not None and vs["beats_random"]:
            delta += " ✔"
        elif vs is not None and vs["worse_than_random"]:
            delta += " ✘"
        if sv is None:
            saving = "(baseline)"
        elif sv["mean"] is None:
            saving = "–"
        else:
            saving = f"{100 * sv['mean']:+.0f}%{_ci(*sv['ci95'], digits=0)}"
            if sv["censored"]:
                saving += f" ({sv['censored']} censored)"
        mt = s.get("savings_at_random_budget")
        match = "(baseline)" if mt is None else f"{100 * mt['mean']:+.0f}%{_ci(*mt['ci95'], digits=0)}"
        rows.append(
            [name, _pct(s["aulc"]["mean"], 2), delta]
            + [_value(summary, first, s[f"{first}_at"][str(b)]) for b in pts]
            + [_value(summary, second, s[f"{second}_at"][str(pts[-1])])]
            + [_labels(s["labels_to_reach"][f"{q:.2f}"], reps) for q in REACH]
            + [saving, match]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    full = summary["full_data"]
    ds = summary["dataset"]
    lines.append("")
    target = summary.get("target", "choices")
    if target == "choices":
        what = (f"{len(ds['classes'])} classes; full-data accuracy {_pct(full['accuracy'])}%, "
                f"macro-F1 {_pct(full['macro_f1'])}%")
        scale = "Scores in %"
    elif target == "labels":
        what = (f"entities of {len(ds['classes'])} labels ({', '.join(ds['classes'])}); full-data entity F1 "
                f"{_pct(full['entity_f1'])}%, recall {_pct(full['entity_recall'])}%")
        scale = "Entity scores (exact spans, micro-averaged) in %; AULC, labels (sentences) to reach and savings read F1"
    else:
        what = (f"a number to predict; full-data skill {_pct(full['skill'])}% "
                f"(MAE {_value(summary, 'mae', full['mae'])})")
        scale = ("Skill = 1 - MAE / MAE of always answering the pool's mean, in %; AULC, labels to reach "
                 "and savings read skill; MAE in the numbers' units")
    lines.append(
        f"{ds['name']}: {ds['pool']:,} pool / {ds['test']:,} test rows, {what}; "
        f"{reps} repetitions{' (stopped early by the time limit)' if summary['stopped_early'] else ''}. "
        f"{scale}; ✔/✘: the 95% CI of the paired AULC difference is above/below 0; "
        "(k/n): only k of n repetitions reached it within the budget."
    )
    return "\n".join(lines)


def format_feature_comparison(summaries: dict[str, dict], feature_seconds: dict[str, float],
                              at: Sequence[int] = (200, 1000)) -> str:
    """A Markdown table comparing featurizers on one dataset: each strategy's accuracy at ``at`` labels.

    The repetitions of every featurizer share their splits and initial sets
    (they depend only on the seed), so the rows are paired like the strategies.
    """
    metric = next(iter(summaries.values())).get("metric", "accuracy")
    column = _column(next(iter(summaries.values())), metric)
    head = ["features", "strategy", "AULC"] + [f"{column}@{b:,}" for b in at] + ["featurise s / 1,000 texts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for features, summary in summaries.items():
        rows = summary["dataset"]["rows"]
        per_1000 = 1000 * feature_seconds[features] / max(rows, 1)
        for name, s in summary["strategies"].items():
            curve = s["curve"]
            accs = [_pct(float(np.interp(b, curve["labels"], curve[f"{metric}_mean"])))
                    if curve["labels"][0] <= b <= curve["labels"][-1] else "–" for b in at]
            lines.append("| " + " | ".join([features, name, _pct(s["aulc"]["mean"], 2), *accs, f"{per_1000:.3f}"]) + " |")
    return "\n".join(lines)


def write_results(summary: dict, timing: dict, out_dir: str | pathlib.Path) -> pathlib.Path:
    """``results.json``: the summary plus timings (kept apart, as they vary between runs)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps({**summary, "timing": timing}, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def plot_curves(summary: dict, path: str | pathlib.Path) -> pathlib.Path:
    """Learning curves, mean over repetitions with a 95% CI band.

    Three panels: the headline score (test accuracy, or skill for numbers),
    its paired difference with random (the panel where differences are
    visible: the luck of each split cancels), and the second metric
    (macro-F1, or the MAE).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reps = summary["repetitions"]
    tcrit = float(stats.t.ppf(0.975, reps - 1)) if reps > 1 else 0.0
    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    full = summary["full_data"]
    names = list(summary["strategies"])
    palette = plt.get_cmap("tab20").colors
    colors = {name: palette[(2 * i) % 20 + (2 * i) // 20] for i, name in enumerate(n for n in names if n != "random")}
    colors["random"] = "black"
    target = TARGETS[summary.get("target", "choices")]
    first, second = target.metrics
    titles = {metric: label[2] for metric, label in target.labels.items()}
    for ax, key, title in (
        (axes[0], first, titles[first]),
        (axes[1], f"{first}_vs_random", f"{titles[first]} minus random's (paired)"),
        (axes[2], second, titles[second]),
    ):
        for name in names:
            c = summary["strategies"][name]["curve"]
            if f"{key}_mean" not in c:
                continue
            x = np.asarray(c["labels"])
            m = np.asarray(c[f"{key}_mean"])
            half = tcrit * np.asarray(c[f"{key}_sd"]) / np.sqrt(reps)
            style = dict(linestyle="--", linewidth=2) if name == "random" else dict(linewidth=1.5)
            ax.plot(x, m, label=name, color=colors[name], **style)
            ax.fill_between(x, m - half, m + half, color=colors[name], alpha=0.12, linewidth=0)
        if key == f"{first}_vs_random":
            ax.axhline(0.0, color="black", linestyle="--", linewidth=1.5, label="random")
        else:
            ref = full[key]
            ax.axhline(ref, color="grey", linewidth=1, linestyle=":")
            ax.text(x[0], ref, " full data", va="bottom", fontsize=8, color="grey")
        if key == first:
            ax.axhline(0.95 * full[first], color="grey", linewidth=0.8, linestyle="-.")
            ax.text(x[0], 0.95 * full[first], " 95% of full", va="bottom", fontsize=8, color="grey")
        ax.set_xlabel("labels (initial set included)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right", ncol=2)
    ds = summary["dataset"]
    p = summary["protocol"]
    batch = f"batch {p['batch_size']}"
    if p.get("batch_growth"):
        batch += f" or {p['batch_growth']:.0%} of the labels"
    model = f", {p['class_weight']} class weights" if p.get("class_weight") and first == "accuracy" else ""
    fig.suptitle(
        f"{ds['name']}: {reps} repetitions, {batch}, initial {p['initial']}, "
        f"control share {p['control_share']:g}{model} (bands: 95% CI of the mean)", fontsize=10,
    )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
