"""The dashboard: how each project is going and whether to stop, as plain HTML.

Server-side rendered, plots as inline SVG drawn by matplotlib (Agg), no
JavaScript and nothing fetched from elsewhere, so it works offline and
behind the same basic auth as the other routes.  The page reloads itself
(``<meta http-equiv="refresh">``).  It only reads what the worker recorded
(``worker/progress.py``): rendering never trains or predicts.
"""

from __future__ import annotations

import html
import io
import re
import threading
import time
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from backend.labelstudio.client import LabelStudioClient, LabelStudioError, credential_conflict
from backend.learning import auto_features
from backend.progress import estimators
from backend.progress.summary import ProgressSummary
from backend.service import refusals
from backend.service.auth import require_basic
from backend.settings import Settings
from backend.state import head
from backend.state.progress import ProgressStore
from backend.state.remote import project_health
from backend.state.store import ProjectStore, UnknownProjectError, parse_project_id, project_ids

REFRESH_SECONDS = 30
REVIEW_SHOWN = 15

router = APIRouter(dependencies=[Depends(require_basic)])
_plot_lock = threading.Lock()  # rcParams are global: one page's plots at a time per process


def read_summary(store: ProjectStore) -> ProgressSummary | None:
    """The worker's latest progress summary of a project; ``None`` before a trained version was evaluated.

    Also ``None`` (and a log line) for a stored summary that does not validate.
    """
    return ProgressStore(store).summary()


def ignored_controls(store: ProjectStore) -> list[dict]:
    """Controls of the stored label config that are not predicted, each with why."""
    return list((store.config().get("parsed") or {}).get("ignored") or [])


def http_url(url: str | None) -> str:
    """``url`` without a trailing slash if it is an ``http(s)://`` URL with a host, else "".

    The stored ``hostname`` comes from whoever called ``/setup``: a
    ``javascript:`` or ``data:`` "URL" must never become a link.
    """
    url = (url or "").strip()
    parts = urlsplit(url)
    return url.rstrip("/") if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def label_studio_url(request: Request, store: ProjectStore) -> str:
    """Where annotators open tasks: ``LABEL_STUDIO_URL``, else the hostname Label Studio sent with ``/setup``."""
    return http_url(request.app.state.settings.label_studio_url or store.config().get("hostname"))


TITLE_TTL, TITLE_RETRY = 300.0, 60.0  # seconds a title (or a failed read) is cached per process
_titles: dict[tuple[str, int], tuple[float, str | None]] = {}


def _credentials(settings: Settings, store: ProjectStore) -> tuple[str, str] | None:
    """Label Studio's URL and key: the environment's pair, else the pair ``/setup`` sent; never mixed."""
    key = settings.label_studio_api_key.get_secret_value()
    if settings.label_studio_url and key:
        return http_url(settings.label_studio_url), key
    cfg = store.config()
    if http_url(cfg.get("hostname")) and cfg.get("access_token"):
        return http_url(cfg.get("hostname")), cfg["access_token"]
    return None


def project_title(settings: Settings, store: ProjectStore) -> str | None:
    """The project's title in Label Studio, read through its API and cached; ``None`` when unknown.

    Bounded: a 2 s timeout, and a failed read is retried only after a minute,
    so a Label Studio that is down never makes the dashboard slow.
    """
    now = time.monotonic()
    hit = _titles.get((store.prefix, store.pid))
    if hit and hit[0] > now:
        return hit[1]
    title = None
    creds = _credentials(settings, store)
    if creds and creds[0]:
        client = LabelStudioClient(*creds, timeout=2.0)
        try:
            title = str(client.project(store.pid).get("title") or "").strip() or None
        except (LabelStudioError, ValueError, KeyError):
            title = None
        finally:
            client.close()
    _titles[(store.prefix, store.pid)] = (now + (TITLE_TTL if title else TITLE_RETRY), title)
    return title


# -- plots -------------------------------------------------------------------------

def _svg(fig, plot_id: str, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: inline SVG in HTML
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # creator and date: noise here
    return text.replace("<svg ", f'<svg id="{plot_id}" role="img" aria-label="{html.escape(title)}" ', 1)


def _held_out(ax, curve, value: str, low: str, high: str) -> None:
    """The held-out estimate per version (red) with its 95% band; a missing bound (older summaries) draws no band."""
    hold = [p for p in curve if getattr(p, value) is not None]
    if not hold:
        return
    x, y = [p.labels for p in hold], [getattr(p, value) for p in hold]
    ax.plot(x, y, "-s", color="#d62728", ms=3, label="control tasks held out (unbiased, 95% CI)")
    ax.fill_between(x, [v if getattr(p, low) is None else getattr(p, low) for p, v in zip(hold, y)],
                    [v if getattr(p, high) is None else getattr(p, high) for p, v in zip(hold, y)],
                    color="#d62728", alpha=0.12)


def _measure_curve(ax, s: ProgressSummary, value: str, ylabel: str) -> None:
    """Cross-validated (blue) and held-out (red, ``holdout_<value>`` with its band) ``value`` per version."""
    cv = [(p.labels, getattr(p, f"cv_{value}")) for p in s.curve if getattr(p, f"cv_{value}") is not None]
    if cv:
        ax.plot(*zip(*cv), "-o", color="#1f77b4", ms=3, label="cross-validation (labeled set)")
    _held_out(ax, s.curve, f"holdout_{value}", f"holdout_{value}_low", f"holdout_{value}_high")
    ax.set_xlabel("labeled tasks")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _error_curve(ax, s: ProgressSummary) -> None:
    """A number to predict: its mean absolute error as labels add up (lower is better)."""
    _measure_curve(ax, s, "mae", "mean absolute error")
    baseline = (s.error.baseline_mae if s.error else None)
    if baseline is not None:
        ax.axhline(baseline, ls="--", color="#7f7f7f", lw=1, label="always the mean label (no model)")
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")


def _entity_curve(ax, s: ProgressSummary) -> None:
    """Named entities: entity-level F1 (exact start, end and label) as labels add up."""
    _measure_curve(ax, s, "entity_f1", "entity F1")
    ax.set_ylim(0, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")


def _learning_curve(ax, s: ProgressSummary) -> None:
    if s.measures == "error":
        return _error_curve(ax, s)
    if s.measures == "entity_f1":
        return _entity_curve(ax, s)
    curve = s.curve
    labels = [p.labels for p in curve]
    cv = [(p.labels, p.cv_accuracy, p.cv_accuracy_std or 0) for p in curve if p.cv_accuracy is not None]
    if cv:
        x, y, e = zip(*cv)
        ax.plot(x, y, "-o", color="#1f77b4", ms=3, label="cross-validation (labeled set)")
        ax.fill_between(x, [a - b for a, b in zip(y, e)], [a + b for a, b in zip(y, e)], color="#1f77b4", alpha=0.15)
    _held_out(ax, curve, "holdout_accuracy", "holdout_low", "holdout_high")
    live = [p for p in curve if p.control_accuracy is not None]
    if live:
        ax.scatter([p.labels for p in live], [p.control_accuracy for p in live],
                   s=[8 + 6 * p.control_n for p in live], facecolors="none", edgecolors="#d62728", alpha=0.6,
                   label="serving model on random tasks, before their label (size: count)")
    rnd = s.random_curve
    if rnd.points:
        ax.plot([p.n for p in rnd.points], [p.accuracy for p in rnd.points], "^", color="#7f7f7f",
                label="random selection (control tasks only)")
    if rnd.fit:
        import numpy as np

        fit = estimators.CurveFit(a=rnd.fit.a, b=rnd.fit.b, c=rnd.fit.c)
        top = max(labels + [p.n for p in rnd.points] + [1])
        xs = np.linspace(1, top * 1.1, 200)
        ax.plot(xs, fit.accuracy(xs), "--", color="#7f7f7f", lw=1, label="random selection, fitted a−b·n^−c")
    ax.set_xlabel("labeled tasks")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")


def _savings(ax, s: ProgressSummary) -> None:
    sav = s.savings
    used = s.labeled_tasks
    need = sav.random_labels
    names, values, colors = ["this strategy"], [used], ["#1f77b4"]
    if need is not None:
        names.append("random selection (estimated)")
        values.append(need)
        colors.append("#7f7f7f")
    ax.barh(names, values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    acc = s.accuracy
    ax.set_xlabel(f"labels needed for {100 * acc:.0f}% accuracy" if acc is not None else "labels")
    if need is None:
        ax.set_title(sav.reason or "", fontsize=7)
    ax.set_xlim(0, max(values) * 1.3 + 1)


def _kappa(ax, s: ProgressSummary) -> None:
    pts = [(p.labels, p.kappa) for p in s.curve if p.kappa is not None]
    if pts:
        x, y = zip(*pts)
        ax.plot(x, y, "-o", ms=3, color="#2ca02c", label="kappa, successive models")
    threshold = s.rules.get("stop_kappa")
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="#d62728", lw=1, label=f"stop threshold {threshold}")
    ax.set_xlabel("labeled tasks")
    ax.set_ylabel("agreement of successive models (kappa)")
    ax.set_ylim(min([0.0] + [v for _, v in pts]) - 0.02, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")


def _labels(ax, s: ProgressSummary) -> None:
    dist = s.label_distribution.get(s.control or "", {})
    if s.measures == "error" and dist:  # a number to predict: how the labeled numbers spread, as a histogram
        pairs = [(float(v), c) for v, c in dist.items() if _is_number(v)]
        if pairs:
            values, counts = zip(*pairs)
            ax.hist(values, bins=min(20, len(set(values))), weights=counts, color="#9467bd")
            ax.set_xlabel(f"labeled {s.control}")
        ax.set_ylabel("labeled tasks")
        return
    items = sorted(dist.items(), key=lambda kv: -kv[1])[:20]
    if items:
        names, counts = zip(*items)
        ax.bar(names, counts, color="#9467bd")
        for i, c in enumerate(counts):
            ax.text(i, c, str(c), ha="center", va="bottom", fontsize=8)
        ax.tick_params(axis="x", labelrotation=30 if len(items) > 4 else 0, labelsize=8)
    ax.set_ylabel("entities (or tasks)" if s.measures == "entity_f1" else "labeled tasks")


def _is_number(text: str) -> bool:
    try:
        return float(text) == float(text)  # not NaN
    except ValueError:
        return False


@lru_cache(maxsize=32)
def _plots(raw: bytes) -> tuple[str, ...]:
    """The four plots of one summary, cached per process (the page reloads every few seconds)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    s = ProgressSummary.model_validate_json(raw)
    out = []
    specs = [
        ("plot-learning-curve", "Learning curve", _learning_curve, (6.4, 3.6)),
        ("plot-savings", "Labels saved over random selection", _savings, (6.4, 1.9)),
        ("plot-kappa", "Stabilising predictions", _kappa, (6.4, 3.0)),
        ("plot-labels", "Label distribution", _labels, (6.4, 2.6)),
    ]
    # Text stays text (small, searchable) and is never mathtext: labels are user data ("$x^$" must not fail).
    with _plot_lock, matplotlib.rc_context({"svg.fonttype": "none", "text.parse_math": False}):
        for plot_id, title, draw, size in specs:
            fig = Figure(figsize=size)
            draw(fig.subplots(), s)
            out.append(_svg(fig, plot_id, title))
    return tuple(out)


# -- HTML --------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#222;color:#fff;padding:10px 20px} header a{color:#9cf}
main{padding:16px 20px;max-width:1400px}
.rec{padding:12px 16px;border-radius:6px;margin-bottom:14px;font-size:16px}
.rec-keep-going{background:#e3f1e3;border-left:6px solid #2ca02c}
.rec-consider-stopping{background:#fff4d6;border-left:6px solid #e0a000}
.rec-stop{background:#fde2e2;border-left:6px solid #d62728}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
.card{background:#fff;border-radius:6px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card h2{font-size:15px;margin:0 0 8px} .card svg{max-width:100%;height:auto}
.nums{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px 22px}
.nums div b{display:block;font-size:20px} .nums div small:last-child{display:block;line-height:1.3}
.card p.muted{margin:0 0 6px;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
small,.muted{color:#666}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><a href="/dashboard">projects</a> · {_e(title)}</header><main>{body}</main></body></html>'
    )


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _representation(s: ProgressSummary) -> str:
    """How the task texts are turned into features, and with ``features: auto`` why this one."""
    choice = s.feature_choice
    if choice is None:
        return "How the tasks (texts, images or numbers) become features (the <code>features</code> extra param)."
    scores = " · ".join(f"{_e(name)} {_pct(acc, 0)}" for name, acc in choice.accuracy.items())
    pending = (f" The next version trains on {_e(choice.chosen)}." if choice.chosen != s.features else "")
    return (f"<code>features: auto</code>: compared by cross-validation on {choice.labels:,} labels ({scores}); "
            f"{_e(choice.reason)}.{pending} Compared again once the labels grow by {auto_features.GROWTH:.0%}.")


def _error_items(s: ProgressSummary) -> list[tuple[str, str, str]]:
    """The headline of a number to predict: its mean absolute error, held out or cross-validated, and skill."""
    err, cv, hold = s.error, s.cv_error, s.holdout_error
    unbiased = s.unbiased
    return [
        ("held-out error (MAE)" if unbiased else "error (MAE, estimate)", _num(err.mae if err else None, 3),
         (f"How far the pre-filled number is from the annotator's, on average, measured on {hold.n} random tasks "
          f"the model was not trained on (95% range {_num(hold.low, 3)}–{_num(hold.high, 3)})."
          if unbiased and hold else
          "Not enough random (control) tasks are labeled yet, so this comes from the labeled set, which the "
          "queue filled with hard tasks: a rough guide only.")),
        ("skill", _pct(err.skill if err else None, 0),
         f"How much smaller the error is than always guessing the mean label "
         f"(MAE {_num(err.baseline_mae if err else None, 3)}): 0% learned nothing, 100% exact."),
        ("error on the labeled set", _num(cv.mae if cv else None, 3),
         f"Cross-validation (± {_num(cv.mae_std if cv else None, 3)}, {(cv.folds if cv else None) or '–'} folds) "
         "on the tasks labeled so far, which the queue chose because the models disagreed on them."),
    ]


def _entity_items(s: ProgressSummary) -> list[tuple[str, str, str]]:
    """The headline of named entities: entity-level F1, held out or cross-validated, its precision and recall."""
    ent, cv, hold = s.entity, s.cv_entity, s.holdout_entity
    unbiased = s.unbiased and hold is not None
    return [
        ("held-out entity F1" if unbiased else "entity F1 (estimate)", _pct(ent.f1 if ent else None, 0),
         (f"How well the pre-annotated spans match the annotators' (exact start, end and label), measured on "
          f"{hold.n} random tasks the model was not trained on (95% range {_pct(hold.low, 0)}–{_pct(hold.high, 0)})."
          if unbiased else
          "Not enough random (control) tasks are labeled yet, so this comes from the labeled set, which the "
          "queue filled with hard tasks: a rough guide only.")),
        ("precision", _pct(ent.precision if ent else None, 0),
         "Of the entities the model marks, the share that are exactly right."),
        ("recall", _pct(ent.recall if ent else None, 0),
         f"Of the {(ent.entities if ent else 0):,} entities annotators marked in these tasks, the share the model "
         "finds exactly."),
        ("entity F1 on the labeled set", _pct(cv.f1 if cv else None, 0),
         f"Cross-validation on the {(cv.n if cv else 0):,} texts labeled so far, which the queue chose because "
         "the model was least sure of them."),
    ]


def _other_entities(s: ProgressSummary) -> list[tuple[str, str, str]]:
    """Each ``<Labels>`` control that is not the headline (a project that also has choices or numbers)."""
    return [(f"entity F1 ({name})", _pct(e.f1, 0),
             f"Named entities of {_e(name)}, exact start, end and label, cross-validated on {e.n:,} labeled "
             f"texts: precision {_pct(e.precision, 0)}, recall {_pct(e.recall, 0)}." if e.f1 is not None
             else _e(e.reason or ""))
            for name, e in s.entities.items() if name != s.control]


def _numbers(s: ProgressSummary) -> str:
    """The headline figures, rounded, each with a one-line explanation in plain words."""
    rc, cv, sav, q, th, hold = s.recent_control, s.cv, s.savings, s.queue, s.throughput, s.control_holdout
    saved = sav.saved
    unbiased = s.unbiased
    items = [
        ("labeled tasks", f"{s.labeled_tasks:,}",
         f"{s.annotations:,} annotations; {s.pool:,} tasks still unlabeled"),
        ("held-out accuracy" if unbiased else "accuracy (estimate)", _pct(s.accuracy, 0),
         (f"How often the pre-selected choice is right, measured on {hold.n} random tasks the model was "
          f"not trained on (95% range {_pct(hold.low, 0)}–{_pct(hold.high, 0)})." if unbiased else
          "Not enough random (control) tasks are labeled yet, so this comes from the labeled set, which the "
          "queue filled with hard tasks: a rough guide only.")),
        ("macro-F1", _pct(s.macro_f1, 0),
         "Like accuracy, but every label counts equally, so a rare label the model misses pulls it down."),
        ("accuracy on random tasks, live", _pct(rc.accuracy if rc else None, 0),
         (f"The model that was serving, checked on {rc.n} random tasks as annotators labeled them."
          if rc else "No random (control) task has been labeled yet.")),
        ("accuracy on the labeled set", _pct(cv.accuracy, 0),
         f"Cross-validation (± {_pct(cv.accuracy_std, 0)}, {cv.folds or '–'} folds) on the tasks "
         "labeled so far. They were chosen because they are hard, so expect it to be lower than the real accuracy."),
        ("agreement of the last two models (kappa)", _num(s.kappa, 3),
         f"Cohen's kappa on a fixed set of {s.stop_set} tasks: 1 means the last two models give the "
         "same answers, so new labels no longer change the predictions."),
        ("labels saved", "–" if saved is None else f"{saved:,.0f}",
         (f"Random ordering would have needed about {sav.random_labels or 0:,.0f} labels for the same accuracy."
          if saved is not None else _e(sav.reason or ""))),
        ("pace", f"{th.last_hour}/h", f"annotations in the last hour; "
                                      f"{_num(th.per_hour_24h, 1)}/h over 24 h"),
        ("representation", _e(s.features or "–"), _representation(s)),
        ("head of the queue", f"{q.head}",
         f"The next tasks annotators get: {q.uncertain} uncertain (the model is unsure), "
         f"{q.diverse} diverse (unlike what is labeled), {q.control} control (random, to "
         "measure accuracy fairly)."),
    ]
    if s.measures != "accuracy":  # a number's error or named entities' F1 replaces the accuracy figures
        headline = _error_items(s) if s.measures == "error" else _entity_items(s)
        items = [items[0], *headline, *[i for i in items[5:] if i[0] != "labels saved"]]
    items[-3:-3] = _other_entities(s)  # before pace, representation and the queue's head
    cells = "".join(f'<div><small>{_e(k)}</small><b>{v}</b><small>{d}</small></div>' for k, v, d in items)
    return f'<div class="card nums" id="numbers">{cells}</div>'


HOW_TO_READ = """
<p>Label Studio serves tasks in the backend's order when the project's sampling is <i>Uncertainty sampling</i>
(the worker sets it): <i>Label All Tasks</i> gives each annotator the next unlabeled task of the queue.</p>
<ul>
<li><b>Prediction score</b> (Data Manager column) is the task's <b>place in the queue</b>, not a confidence:
<code>0</code> is the next task, <code>0.5</code> half-way, near <code>1</code> last. Sort by it, ascending,
to see the queue in order.</li>
<li>The model's <b>confidence</b> is the <code>score</code> of each pre-annotation: open <i>Columns</i> in the
Data Manager and tick <b>Prediction results</b>, which shows each result with its <code>score</code>
(the probability the model gives the pre-selected choice).</li>
<li>Both columns are hidden by default. <i>Prediction score</i> averages the predictions of the project's
current model version only; <i>Prediction results</i> lists the results of every version Label Studio still
holds (the current one and a few older ones, until they are pruned).</li>
<li>The first tasks are the ones the model is least sure about, so their pre-selected choice is often wrong:
annotators should read, not just accept (or set <code>min_confidence</code> in <i>Extra params</i> to
show a pre-annotation only when the model is sure enough). About {control} of the queue is random tasks (<i>control share</i>),
which keeps the accuracy above honest.</li>
</ul>
"""


def _review(s: ProgressSummary, ls_url: str, pid: int) -> str:
    rows = []
    items = s.review
    for item in items[:REVIEW_SHOWN]:
        link = (f'<a href="{_e(ls_url)}/projects/{pid}/data?task={item.task}">{item.task}</a>'
                if ls_url else str(item.task))
        if item.answers is not None:
            detail = ", ".join(f"{_e(k)}: {v}" for k, v in item.answers.items())
        else:
            detail = (f"labeled {_e(item.label)}, model says {_e(item.predicted)} "
                      f"(p of label {_num(item.proba_of_label, 3)})")
        rows.append(f"<tr><td>{link}</td><td>{_e(item.control)}</td><td>{_e(item.reason)}</td>"
                    f"<td>{detail}</td></tr>")
    if not rows:
        return '<p class="muted">Nothing to review.</p>'
    more = (f'<p class="muted">{len(items) - REVIEW_SHOWN} more in <code>/status/{pid}</code> '
            "(<code>estimators.review</code>).</p>" if len(items) > REVIEW_SHOWN else "")
    return ("<table id=\"review\"><tr><th>task</th><th>control</th><th>why</th><th>detail</th></tr>"
            + "".join(rows) + "</table>" + more)


def _plain(value: Any) -> str:
    """Rounded numbers and yes/no for the rules table."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _rules(s: ProgressSummary) -> str:
    rules = s.rules
    signals = s.recommendation.signals
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_plain(v))}</td></tr>" for k, v in rules.items())
    sig = "".join(f"<tr><td>{_e(k.replace('_', ' '))}</td><td>{_e(_plain(v))}</td></tr>" for k, v in signals.items())
    return ('<p class="muted">Set in Label Studio: <i>Settings → Model → Edit → Extra params</i> (0 turns a rule '
            "off).</p>"
            f"<table><tr><th>rule (extra_params)</th><th>value</th></tr>{rows}</table><br>"
            f"<table><tr><th>signal</th><th>now</th></tr>{sig}</table>")


def _ignored_card(ignored: list[dict]) -> str:
    if not ignored:
        return ""
    rows = "".join(f"<tr><td>&lt;{_e(i['tag'])}&gt;</td><td>{_e(i['name'])}</td><td>{_e(i['reason'])}</td></tr>"
                   for i in ignored)
    return ('<div class="card" id="ignored"><h2>Not predicted (ignored controls)</h2><p class="muted">These controls '
            "of the label config get no pre-annotation; annotators fill them in as usual, and the other controls "
            "are predicted and trained normally.</p>"
            f"<table><tr><th>tag</th><th>name</th><th>why</th></tr>{rows}</table></div>")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "never"


def _remote_card(remote: dict | None) -> str:
    """Your own model's health, for a project ranked by another backend's (or a plug-in's) predictions."""
    if not remote:
        return ""
    failing = remote.get("failures", 0) > 0
    state = (f"<p><b>Failing</b>: {remote['failures']} call(s) in a row; last error "
             f"({_when(remote.get('last_error_at'))}): {_e(remote.get('last_error') or '')}. The queue keeps the "
             f"last ranking; next try at {_when(remote.get('next_retry_at'))}.</p>" if failing else
             f"<p>Answering: last success {_when(remote.get('last_ok_at'))}.</p>")
    kind = "Remote ML backend" if remote.get("model") == "remote" else "Model run in process (plug-in)"
    return (f'<div class="card{" refused" if failing else ""}" id="remote"><h2>Your model</h2>'
            f'<p class="muted">{kind} <code>{_e(remote.get("where") or "")}</code> orders this queue: the tasks its '
            "predictions are least sure of come first, with its own results as the pre-annotations. Its model "
            f"version: <code>{_e(remote.get('model_version') or 'not known yet')}</code>; "
            f"{remote.get('calls', 0):,} calls.</p>{state}</div>")


def project_name(pid: int, title: str | None) -> str:
    """Label Studio's title of the project when known, with its id; else "project N"."""
    return f"{title} (project {pid})" if title else f"project {pid}"


def _queue_card(s: ProgressSummary | None) -> str:
    share = s.control_share if s else None
    control = _pct(share, 0) if share is not None else "a tenth"
    return f'<div class="card" id="how-to-read"><h2>How to read the queue</h2>{HOW_TO_READ.format(control=control)}</div>'


def project_page(s: ProgressSummary | None, pid: int, ls_url: str, refusal: dict | None = None,
                 ignored: list[dict] | None = None, title: str | None = None, warning: str | None = None,
                 head_info: dict | None = None, remote: dict | None = None) -> str:
    """The dashboard of one project (pure: summary in, HTML out)."""
    name = project_name(pid, title)
    notice = ((_refused_card({pid: refusal}, {pid: title}) if refusal else "") + _remote_card(remote)
              + _ignored_card(ignored or []))
    if warning:  # e.g. LABEL_STUDIO_URL and /setup's hostname disagree (backend/labelstudio/client.py)
        notice += f'<div class="card refused" id="warning"><h2>Check the settings</h2><p>{_e(warning)}</p></div>'
    if not s:
        empty = ("This backend trains no model of its own for this project, so there are no learning curves."
                 if remote else "No trained model has been evaluated yet: the page fills in after the first training "
                                "(two different labels).")
        return _page(name, notice + f'<p id="empty">{empty}</p>' + _queue_card(s))
    rec = s.recommendation
    action = rec.action
    plots = _plots(s.model_dump_json())
    titles = ["Learning curve", "Labels saved over random selection", "Stabilising predictions (kappa over versions)",
              f"Label distribution ({_e(s.control)})"]
    captions = [
        ("Mean absolute error as labels add up (lower is better). Red: on random tasks held out from training, the "
         "honest figure. Blue: on the labeled set, which the queue filled with hard tasks. Grey: always the mean."
         if s.measures == "error" else
         "Entity-level F1 (exact start, end and label) as labels add up. Red: on random tasks held out from "
         "training, the honest figure. Blue: on the labeled set, which the queue filled with hard tasks."
         if s.measures == "entity_f1" else
         "Accuracy as labels add up. Red: on random tasks held out from training, the honest figure. Blue: on "
         "the labeled set, which the queue filled with hard tasks, so it reads low."),
        "Labels this queue used, against the labels random ordering would need for the same accuracy "
        "(estimated from a curve fitted to the random control tasks).",
        "How much each new model agrees with the one before on the same tasks (1 = identical answers). When it "
        "stays near 1, more labels no longer change the predictions.",
        {"error": "How the labeled numbers spread.",
         "entity_f1": "How many entities of each label are marked; “(no entities)”: labeled tasks without any."
         }.get(s.measures, "How many labeled tasks got each label."),
    ]
    cards = "".join(f'<div class="card"><h2>{t}</h2><p class="muted">{c}</p>{p}</div>'
                    for t, c, p in zip(titles, captions, plots))
    updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s.updated_at))
    body = notice + (
        f'<div class="rec rec-{action.replace(" ", "-")}" id="recommendation"><b>{_e(action.capitalize())}</b> — '
        f"{_e(rec.reason)}</div>"
        f"{_numbers(s)}<p class=\"muted\">model version {_e(s.version)}; queue strategy "
        f"{_e(s.strategy)}; control share {_pct(s.control_share, 0)} (random tasks in the queue, for "
        f"a fair accuracy); recorded {updated}; this page reloads every {REFRESH_SECONDS} s</p>"
        f"{_head_line(head_info)}"
        f'<div class="grid">{cards}'
        f'<div class="card"><h2>Review: suspicious labels and disagreements</h2>{_review(s, ls_url, pid)}</div>'
        f'<div class="card"><h2>Stopping rules</h2>{_rules(s)}</div>{_queue_card(s)}</div>'
    )
    return _page(name, body)


def _refused_card(refused: dict[int, dict], titles: dict[int, str | None] | None = None) -> str:
    """Projects the backend refused, and why: Label Studio itself shows the user none of this."""
    if not refused:
        return ""
    titles = titles or {}
    rows = "".join(
        f"<tr><td>{_e(project_name(pid, titles.get(pid)))}</td><td>{_e(r.get('route', ''))}</td>"
        f"<td>{_e(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(r.get('at') or 0)))}</td>"
        f"<td>{_e(r.get('reason', ''))}</td></tr>"
        for pid, r in refused.items()
    )
    return ('<div class="card refused" id="refused"><h2>Refused projects</h2><p class="muted">Label Studio shows only '
            "\"422 Client Error\" for these; here is why. Fix the label config or <i>Extra params</i> and connect the "
            "model again.</p><table><tr><th>project</th><th>refused at</th><th>when</th><th>reason</th></tr>"
            f"{rows}</table></div>")


def _head_line(h: dict | None) -> str:
    """How much of the queue Label Studio serves is left (``backend/state/head.py``)."""
    if not h:
        return ""
    warn = " Label Studio served tasks outside it." if h.get("served_outside_head") else ""
    return (f'<p id="head" class="muted">head of {_e(h.get("version"))}: {h.get("left", 0):,} of '
            f'{h.get("pushed", 0):,} tasks left, {h.get("topped_up", 0):,} topped up; '
            f'{h.get("labeled_outside", 0):,} labels outside it.{_e(warn)}</p>')


def _store(request: Request, pid: int) -> ProjectStore:
    return request.app.state.predictor.store(pid)


def _headline(s: ProgressSummary | None) -> str:
    """The index's figure of a project: its accuracy, the error of its number to predict, or its entity F1."""
    if s is not None and s.measures == "error":
        return f"MAE {_num(s.error.mae if s.error else None, 3)}"
    if s is not None and s.measures == "entity_f1":
        return f"F1 {_pct(s.entity.f1 if s.entity else None, 0)}"
    return _pct(s.accuracy if s else None, 0)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_index(request: Request) -> HTMLResponse:
    """Every project this backend serves, with its recommendation, and the refused ones with why."""
    predictor = request.app.state.predictor
    settings = predictor.settings
    refused = refusals.refused_projects(predictor.r, settings.key_prefix)
    pids = project_ids(predictor.r, settings.key_prefix)
    titles = {pid: project_title(settings, _store(request, pid)) for pid in sorted(set(pids) | set(refused))}
    rows = []
    for pid in pids:
        s = read_summary(_store(request, pid))
        rec = s.recommendation.action if s else "no model yet"
        rows.append(f'<tr><td><a href="/dashboard/{pid}">{_e(project_name(pid, titles[pid]))}</a></td>'
                    f"<td>{s.labeled_tasks if s else 0:,}</td><td>{_headline(s)}</td>"
                    f"<td>{_e(rec)}</td></tr>")
    table = ("<table id=\"projects\"><tr><th>project</th><th>labeled tasks</th>"
             "<th>accuracy, error or F1 (estimate)</th>"
             "<th>recommendation</th></tr>" + "".join(rows) + "</table>") if rows else \
        '<p class="muted">No project is set up yet.</p>'
    return HTMLResponse(_page("active learning: projects",
                              _refused_card(refused, titles) + f'<div class="card">{table}</div>'))


@router.get("/dashboard/{project}", response_class=HTMLResponse)
def dashboard_project(project: str, request: Request) -> HTMLResponse:
    """Learning curve, savings, kappa, label distribution, recommendation and review list of one project."""
    store = _store(request, parse_project_id(project))
    refusal = refusals.get(store)
    if not store.exists() and not refusal:
        raise UnknownProjectError(f"project {project} is not set up on this backend")
    title = project_title(request.app.state.settings, store)
    summary = read_summary(store)
    settings = request.app.state.settings
    return HTMLResponse(project_page(summary, store.pid, label_studio_url(request, store), refusal,
                                     ignored_controls(store), title, credential_conflict(settings, store.config()),
                                     head.info(store) if summary is not None else None, project_health(store)))
