"""``features: "auto"`` in the worker: compare representations off the refresh path, train on the winner.

The comparison (``backend/learning/auto_features.py``) costs a few dozen
fits, so it runs in the low-priority evaluate job, and only when the labels
have grown enough since the last one.  Its choice is kept in Redis
(``ProgressStore.feature_choice``); every refresh reads it
(:func:`features_for`), and a switch asks for a refresh at once, which
retrains from scratch on the new rows (models never cross representations).
"""

from __future__ import annotations

import logging

from backend.labelstudio.tasktypes import Control
from backend.learning import auto_features, featurizers
from backend.learning.auto_features import Choice
from backend.project_options import ProjectOptions
from backend.settings import Settings
from backend.state.progress import ProgressStore
from backend.state.queueing import request_refresh
from backend.state.store import ProjectStore
from worker.pool_features import control_features

log = logging.getLogger(__name__)


def features_for(store: ProjectStore, options: ProjectOptions, kind: str) -> tuple[str, Choice | None]:
    """The representation the next version trains on, and with ``auto`` the choice that named it.

    ``kind``: the kind of data the config reads.  Before the first
    comparison (or if the chosen one can no longer run here), ``auto``
    trains on the kind's default.
    """
    if options.features != auto_features.AUTO:
        return options.featurizer(kind), None
    choice = ProgressStore(store).feature_choice()
    if choice is None or choice.chosen not in auto_features.candidates(kind):
        return options.featurizer(kind), choice
    return choice.chosen, choice


def reconsider(store: ProjectStore, settings: Settings, options: ProjectOptions, control: Control,
               answers: dict, estimator) -> Choice | None:
    """Compare the representations on ``control``'s labels when due; returns the choice in force (None: none yet).

    ``answers``: task id -> label of the control; ``estimator``: the
    control's model, cloned for every fold.
    """
    if options.features != auto_features.AUTO:
        return None
    progress = ProgressStore(store)
    last = progress.feature_choice()
    if not auto_features.due(len(answers), last.labels if last else None):
        return last
    names = auto_features.candidates(control.kind)
    rows, ids = {}, None
    for name in names:
        got, X, _ = control_features(store, featurizers.get(name), control, sorted(answers), settings.max_text_chars)
        if ids is not None and got != ids:  # a text unreadable under one representation: compare on the rest
            return last
        ids, rows[name] = got, X
    comparison = auto_features.compare(rows, [str(answers[t]) for t in ids or []], estimator)
    if comparison is None:
        return last
    choice = auto_features.choose(comparison, last.chosen if last else options.featurizer(control.kind), control.kind)
    progress.set_feature_choice(choice)
    log.info("project %s: features auto at %d labels: %s (%s)", store.pid, choice.labels, choice.chosen, choice.reason)
    if choice.switched:
        request_refresh(store.r, store.prefix, settings.queue_name, store.pid, f"features auto: {choice.chosen}")
    return choice
