"""Control-share predictions and their outcomes: the unbiased accuracy samples.

The random control tasks at the head of a version's queue are a uniform
sample of the pool.  This module keeps each version's predictions for them
(before anyone labels them) and, once they are labeled while that version
serves, the prediction next to the label (``backend/state/progress.py``
holds both).  ``worker/progress.py`` reads the outcomes; the prune job
calls ``record_before_drop`` so a version pruned before any evaluation
still counts.
"""

from __future__ import annotations

from backend import project_options
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import ChoicesControl, NumberControl
from backend.labelstudio.tasktypes.number import snap
from backend.progress.evaluation import label_times, parse_time, serving_at
from backend.settings import Settings
from backend.state.progress import ProgressStore
from backend.state.store import ProjectStore
from backend.state.versions import load_version
from worker.pool_features import control_features

PENDING_VERSIONS = 8  # predictions kept per unlabeled control task (the newest versions that had it)


def single_controls(config: LabelConfig, models: dict) -> list[ChoicesControl]:
    """The trained single-choice controls: those whose accuracy is measured."""
    return [c for c in config.controls if isinstance(c, ChoicesControl) and not c.multiple and c.name in models]


def number_controls(config: LabelConfig, models: dict) -> list[NumberControl]:
    """The trained ``<Number>``/``<Rating>`` controls: those whose error is measured."""
    return [c for c in config.controls if isinstance(c, NumberControl) and c.name in models]


def measured_controls(config: LabelConfig, models: dict) -> list:
    """Every control whose control-share outcomes are kept: single choices, then numbers."""
    return [*single_controls(config, models), *number_controls(config, models)]


def predict(store, spec, control, models, ids, settings) -> dict[int, str]:
    """The model's answer for each readable task of ``ids``, as text.

    A label; a number as the annotator could enter it (``snap``: a whole
    rating, a value on the control's step), so successive models' answers
    can be compared for agreement (kappa) as labels are.
    """
    got, X, _ = control_features(store, spec, control, ids, settings.max_text_chars)
    if not got:
        return {}
    values = models[control.name].predict(X)
    if isinstance(control, NumberControl):
        return {t: str(snap(control, float(v))) for t, v in zip(got, values)}
    return dict(zip(got, (str(v) for v in values)))


def _serving_timeline(store: ProjectStore) -> list[tuple[float, str]]:
    """``(since, version)`` of the versions annotators were served, oldest first.

    With Label Studio, the versions pushed to it (from when their push
    began); without, the versions as published in Redis.
    """
    pushed = store.push_times()
    if pushed:
        return pushed
    out = []
    for info in store.versions():
        t = info.meta.get("published_at") or parse_time(info.meta.get("created_at"))
        if t is not None:
            out.append((t, info.name))
    return sorted(out)


def settle_outcomes(store: ProjectStore, labeled, controls: list[ChoicesControl], annotations: list[dict]) -> int:
    """Labeled tasks with pending predictions: an outcome when the task was a control of the version serving then.

    A task in an older version's control share may later be picked by the
    strategy of a newer one (it is uncertain, say); labeled then, it is not
    a random sample, so only the prediction of the version that served it
    counts.  Decided once that version was recorded (or its data is gone).
    """
    progress = ProgressStore(store)
    pending = progress.pending()
    labeled_now = [t for t in pending if t in labeled.labeled_tasks]
    if not labeled_now:
        return 0
    times = label_times(annotations)
    timeline = _serving_timeline(store)
    recorded = progress.recorded_versions()
    outcomes, decided = {}, []
    for tid in labeled_now:
        serving = serving_at(timeline, times[tid]) if tid in times else None
        entry = pending[tid].get(serving) if serving else None
        if entry is not None:
            truth = {c.name: str(labeled.answers[c.name][tid]) for c in controls if tid in labeled.answers[c.name]}
            outcomes[tid] = {**entry, "served_by": serving, "truth": truth}
            decided.append(tid)
        elif serving is None or serving in recorded or not store.has_control_set(serving):
            decided.append(tid)  # not a control task of the serving version, or that cannot be known any more
    progress.settle(outcomes, decided)
    return len(outcomes)


def _record_pending(store, name, meta, spec, controls, models, head_size, settings) -> int:
    """A version's predictions for the random control tasks at the head of its queue.

    Only the head reaches annotators through Label Studio's ``/next``; the
    control tasks there were drawn uniformly from the pool, so whichever of
    them get labeled while this version serves are a random sample.  Kept
    per task and version (``settle_outcomes`` picks the serving one); the
    prediction is attributed to the training that produced the model
    (``trained_in``).
    """
    random_pick_ids = store.random_pick_tasks(name)
    if not random_pick_ids:
        return 0
    # score = position / ranked tasks, so the head is the scores below head_size / ranked (no full read)
    ids = sorted(random_pick_ids)
    limit = head_size / max(1, meta.get("ranked") or len(ids))
    ids = [t for t, score in zip(ids, store.ranking_scores(name, ids)) if score is not None and score < limit]
    if not ids:
        return 0
    progress = ProgressStore(store)
    settled = progress.settled(ids)
    ids = [t for t in ids if t not in settled]
    preds = {c.name: predict(store, spec, c, models, ids, settings) for c in controls}
    current = progress.pending(ids)
    entry = {"v": meta.get("trained_in", name), "labels": meta.get("labeled_tasks", 0)}
    rows = {}
    for tid in ids:
        pred = {c: p[tid] for c, p in preds.items() if tid in p}
        if pred or not controls:  # without a measured control (only <Labels>), still which tasks were controls
            versions = current.get(tid, {})
            versions[name] = {**entry, "pred": pred}
            rows[tid] = dict(list(versions.items())[-PENDING_VERSIONS:])
    progress.add_pending(rows)
    return len(rows)


def record_before_drop(store: ProjectStore, settings: Settings, name: str) -> bool:
    """Record a version's control predictions before the prune job frees its model (once per version).

    Trainings can follow each other faster than the low-priority evaluate
    job runs; annotators may have been served a version that is pruned
    before any evaluation saw it.  Cheap: the head's control tasks only.
    """
    progress = ProgressStore(store)
    if progress.is_recorded(name) or not store.has_control_set(name):
        return False
    version = load_version(store, name)
    if version is not None and version.models and version.meta.get("kind") == "model":
        config = LabelConfig.from_dict(store.config()["parsed"])
        options = project_options.resolve(settings, store.config().get("extra_params"))
        _record_pending(store, name, version.meta, version.spec, measured_controls(config, version.models),
                        version.models, options.head_size, settings)
    progress.mark_recorded(name)
    return True


def record_served_versions(store, current, config, head_size, settings) -> None:
    """Pending predictions of every version annotators may be served, once each.

    Several versions can be published between two evaluations (the
    evaluate job is coalesced); the one Label Studio points at and the
    others still pushed keep their data until pruned, so their control
    tasks are recorded too.
    """
    keep = set(store.pushed_versions()) | {current, store.ls_version()}
    progress = ProgressStore(store)
    for info in store.versions():
        if info.name not in keep or info.meta.get("kind") != "model" or progress.is_recorded(info.name):
            continue
        version = load_version(store, info.name)
        if version is None or not version.models:
            continue
        controls = measured_controls(config, version.models)
        _record_pending(store, info.name, info.meta, version.spec, controls, version.models, head_size, settings)
        progress.mark_recorded(info.name)
