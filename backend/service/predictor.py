"""What ``/setup`` and ``/predict`` do, independent of HTTP.

One ``Predictor`` per serving process.  It keeps the parsed label configs and
the loaded model versions in memory and re-reads a project's ``current``
version pointer from Redis at most every ``model_poll_interval`` seconds, so a
new version is served within a second of the worker publishing it, without a
restart and without loading anything per request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from backend import project_options
from backend.labelstudio.client import credential_conflict
from backend.labelstudio.content import model_content, reads_features
from backend.labelstudio.fetch import SafeFetcher
from backend.labelstudio.label_config import LabelConfig, UnsupportedConfigError, config_hash, parse_label_config
from backend.labelstudio.task_data import Fetch, TaskDataError
from backend.labelstudio.tasktypes import Control, result_items, task_type_of
from backend.learning.featurizers import Featurizer, decode_rows, encode_rows
from backend.learning.versions import LoadedVersion, task_utility
from backend.metrics import TASKS_PREDICTED, TASKS_SKIPPED
from backend.remote.client import RemoteError, batches
from backend.remote.sources import OTHER_MODELS, prediction_source, uses_other_model
from backend.remote.uncertainty import uncertainties
from backend.selection import ranking
from backend.service import refusals
from backend.settings import Settings
from backend.state.queueing import request_refresh, request_sync
from backend.state.remote import RemotePredictions, project_health, result_of
from backend.state.store import ProjectStore, UnknownProjectError
from backend.state.versions import load_version

log = logging.getLogger(__name__)

COLD_START = "cold-start"  # model_version before the worker has published anything
SKIPPED_SCORE = 1.0  # tasks we cannot read go to the end of the queue


def _refusal_text(exc: Exception) -> str:
    """The reason as the HTTP answer words it (see ``app.py``'s error handlers)."""
    if isinstance(exc, UnsupportedConfigError):
        return f"unsupported label config: {exc}"
    return str(exc)


@dataclass
class _Cached:
    name: str | None
    version: LoadedVersion | None
    checked_at: float


class Predictor:
    """Serves setup and predictions for any number of projects."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.settings = settings
        self._configs: dict[tuple[str, bool], LabelConfig] = {}
        self._versions: dict[int, _Cached] = {}
        self._fetch = SafeFetcher(settings)
        self._lock = threading.Lock()

    def store(self, project_id: int) -> ProjectStore:
        return ProjectStore(self.r, self.settings.key_prefix, project_id)

    # -- label config --------------------------------------------------------
    def _parse(self, xml: str, remote: bool = False) -> LabelConfig:
        h = (config_hash(xml), remote)
        cfg = self._configs.get(h)
        if cfg is None:
            cfg = parse_label_config(xml, remote=remote)  # raises UnsupportedConfigError
            self._configs[h] = cfg
        return cfg

    def setup(
        self,
        project_id: int,
        schema: str,
        *,
        hostname: str | None = None,
        access_token: str | None = None,
        extra_params: dict | None = None,
        project_epoch: int | None = None,
    ) -> str:
        """Validate and remember a project's config; returns its model version.

        A refusal (nothing predictable in the config, invalid options) is
        logged at WARNING and kept for the dashboard before it is raised:
        Label Studio shows the user none of its text.
        """
        store = self.store(project_id)
        try:
            options = project_options.resolve(self.settings, extra_params)
            # model "remote": any valid config is served (the remote predicts it; docs/remote.md).
            cfg = self._parse(schema, remote=options.model in OTHER_MODELS)
            if cfg.controls or cfg.geometry:
                options.featurizer(cfg.kind)
        except (UnsupportedConfigError, project_options.InvalidOptionsError) as exc:
            refusals.record(store, "/setup", _refusal_text(exc))
            raise
        if store.claim(project_epoch, hostname):  # a recreated project inherits nothing (store.py)
            log.warning("project %s: Label Studio's project was recreated (new creation time); old state wiped",
                        project_id)
        old = store.config().get("config_hash")
        old_options = store.config().get("extra_params") or {}
        store.save_config(
            {
                "schema": schema,
                "config_hash": cfg.config_hash,
                "parsed": cfg.to_dict(),
                "hostname": hostname or "",
                "access_token": access_token or "",
                "extra_params": extra_params or {},
                "project_epoch": project_epoch,
            }
        )
        conflict = credential_conflict(self.settings, store.config())
        if conflict:
            log.warning("project %s: %s", project_id, conflict)
        refusals.clear(store)
        if cfg.ignored:
            log.warning("project %s: not predicted (ignored) in the label config: %s", project_id,
                        "; ".join(i.describe() for i in cfg.ignored))
        if old != cfg.config_hash:
            log.info("project %s: label config set up (%d control(s))", project_id, len(cfg.controls))
            # A newly connected project: read its existing tasks and annotations first.
            request_sync(self.r, self.settings.key_prefix, self.settings.queue_name, project_id,
                         full=True, reason="setup")
        elif old_options != (extra_params or {}):
            # E.g. another featurizer: the worker retrains now, not at the next label.
            request_refresh(self.r, self.settings.key_prefix, self.settings.queue_name, project_id,
                            reason="options changed")
        return store.current_version() or COLD_START

    def config_for(self, project_id: int, label_config: str | None, remote: bool = False) -> LabelConfig:
        """The request's config when given (it is what Label Studio has now), else the stored one."""
        if label_config:
            try:
                return self._parse(label_config, remote)
            except UnsupportedConfigError as exc:
                refusals.record(self.store(project_id), "/predict", _refusal_text(exc))
                raise
        schema = self.store(project_id).schema()
        if not schema:
            raise UnknownProjectError(
                f"project {project_id} is not set up on this backend: connect it in Label Studio "
                "(Settings → Model), which calls /setup, or send label_config with the request"
            )
        return self._parse(schema, remote)

    # -- versions ------------------------------------------------------------
    def current(self, project_id: int) -> LoadedVersion | None:
        """The project's current version, re-checked at most every poll interval."""
        now = time.monotonic()
        cached = self._versions.get(project_id)
        if cached and now - cached.checked_at < self.settings.model_poll_interval:
            return cached.version
        name = self.store(project_id).current_version()
        if cached and cached.name == name:
            cached.checked_at = now
            return cached.version
        with self._lock:
            version = load_version(self.store(project_id), name) if name else None
            if name and version is None:
                log.warning("project %s: version %s is named current but not stored", project_id, name)
            self._versions[project_id] = _Cached(name, version, now)
            if version is not None:
                log.info("project %s: now serving %s", project_id, name)
        return version

    # -- data access ---------------------------------------------------------
    def _fetcher(self, project_id: int) -> Fetch:
        """Reads URL task data safely (``backend.labelstudio.fetch``); credentials are looked up on the first URL only."""
        return self._fetch.for_project(lambda: self.store(project_id).config())

    # -- predictions ---------------------------------------------------------
    def predict(self, project_id: int, tasks: list[dict[str, Any]], label_config: str | None = None) -> list[dict]:
        """One prediction per task, in order: ``result``, ``score``, ``model_version``.

        ``score`` is the task's place in the project's queue as a fraction of
        the pool (0 = annotate next); each result item's own ``score`` is the
        model's confidence in what it proposes (a label's probability; for a
        number, how much its committee agrees).  Scoring never adds a
        task to the pool: only tasks Label Studio announced (``TASKS_CREATED``
        or a sync) are ranked and pushed, so an unknown id cannot stop a push.
        """
        extra = self.store(project_id).config_field("extra_params")
        if uses_other_model(extra):
            return self._predict_remote(project_id, tasks, label_config, extra)
        cfg = self.config_for(project_id, label_config)
        version = self.current(project_id)
        version_name = version.name if version else COLD_START
        n = len(tasks)
        results: list[list[dict]] = [[] for _ in range(n)]
        readable = np.zeros(n, dtype=bool)
        fetch = self._fetcher(project_id)
        probas: dict[str, np.ndarray] = {}
        featurizer = version.featurizer if version else None
        min_confidence = self._min_confidence(project_id) if version else 0.0
        # The first control's rows, contents, cached rows and features place unranked tasks.
        geometry: tuple[list[int], list, dict[int, bytes], Any] | None = None
        for control in cfg.controls:
            model = version.models.get(control.name) if version else None
            # A model that reads the text itself (spans) gets it exactly as Label Studio shows it, unfeaturised.
            features = reads_features(control)
            cached = self._cached_rows(project_id, featurizer, control, tasks) if featurizer and features else {}
            contents, rows = [], []
            for i, task in enumerate(tasks):
                if i in cached:  # an image the worker embedded already: neither fetched nor embedded again
                    rows.append(i)
                    contents.append(None)
                    continue
                try:
                    contents.append(model_content(task.get("data"), control, max_chars=self.settings.max_text_chars,
                                                  fetch=fetch, max_bytes=self.settings.fetch_max_bytes))
                    rows.append(i)
                except TaskDataError as exc:
                    TASKS_SKIPPED.labels("task_data").inc()
                    log.info("project %s task %s: no prediction for %s: %s", project_id, task.get("id"), control.name, exc)
            readable[rows] = True
            if geometry is None:
                geometry = (rows, contents, cached, None)  # featurised below, or later only if needed
            if model is None or not rows:
                continue
            X = self._rows(project_id, featurizer, control, tasks, rows, contents, cached) if features else contents
            if geometry[0] is rows and features:
                geometry = (rows, contents, cached, X)
            task_type = task_type_of(control)
            output = task_type.output(model, X)
            view = task_type.as_probabilities(model, output)  # what the live score ranks by
            probas[control.name] = np.full((n, view.shape[1]), np.nan)
            probas[control.name][rows] = view
            for i, row in zip(rows, task_type.results(control, model, output, min_confidence)):
                results[i].extend(result_items(row))

        scores = self._scores(project_id, tasks, version, readable, probas, geometry)
        TASKS_PREDICTED.labels("model" if version and version.models else "cold").inc(n)
        return [
            {"result": results[i], "score": round(float(scores[i]), 6), "model_version": version_name}
            for i in range(n)
        ]

    def _predict_remote(self, project_id: int, tasks: list[dict[str, Any]], label_config: str | None,
                        extra: dict) -> list[dict]:
        """``/predict`` of a project whose model is another ML backend (``model: remote``, docs/remote.md).

        A task the worker asked the remote about gets that cached prediction's
        ``result``; the others are asked live (``remote_timeout``, in batches of
        ``remote_batch``), and a remote that fails gives them an empty result,
        never an error (nor is it called while the worker backs off from it).
        ``score`` is the task's place in the worker's ranking, or a live
        estimate from the remote's uncertainty.  Live answers are not
        cached: a caller of ``/predict`` cannot set what the worker ranks by.
        """
        self.config_for(project_id, label_config, remote=True)  # refuses a config that is not XML
        store = self.store(project_id)
        try:
            options = project_options.resolve(self.settings, extra)
        except project_options.InvalidOptionsError as exc:  # e.g. the host was taken off AL_REMOTE_ALLOW_HOSTS
            options = None
            log.warning("project %s: remote model not called: %s", project_id, exc)
        version = self.current(project_id)
        n = len(tasks)
        ids = [t.get("id") if type(t.get("id")) is int else -1 for t in tasks]
        cache = RemotePredictions(store)
        predictions: list[dict | None] = list(cache.get(ids))
        live = [i for i in range(n) if predictions[i] is None]
        retry_at = cache.health()["next_retry_at"] or 0.0  # the worker's back-off holds here too
        if live and options is not None and time.time() >= retry_at:
            schema = label_config or store.schema() or ""
            for chunk in batches(live, options.remote_batch):
                try:
                    # model "plugin": this process's instance of the class, imported on first use (not fit here).
                    remote = prediction_source(options, project=str(project_id), label_config=store.schema() or "")
                    answers = remote.predict([{"id": tasks[i].get("id"), "data": tasks[i].get("data")} for i in chunk],
                                             project=str(project_id), label_config=schema)
                except RemoteError as exc:
                    TASKS_SKIPPED.labels("remote").inc(len(chunk))
                    log.warning("project %s: remote model failed for %d task(s) (%s); empty results answered",
                                project_id, len(chunk), exc)
                    continue
                for i, answer in zip(chunk, answers):
                    predictions[i] = answer
        scores = np.full(n, 0.5)
        if version is not None:
            ranked = store.ranking_scores(version.name, ids)
            u = uncertainties(predictions)
            estimate = ranking.live_score(np.where(np.isfinite(u), u, 0.5), version.quantiles)
            scores = np.array([r if r is not None else e for r, e in zip(ranked, estimate)], dtype=np.float64)
        TASKS_PREDICTED.labels("remote").inc(n)
        name = version.name if version else COLD_START
        return [{"result": result_of(p), "score": round(float(scores[i]), 6), "model_version": name}
                for i, p in enumerate(predictions)]

    def remote_status(self, store: ProjectStore) -> dict | None:
        """``/status``'s ``remote``: the remote model's health, for a project whose model is one (else ``None``)."""
        return project_health(store)

    def _cached_rows(self, project_id: int, featurizer: Featurizer, control: Control,
                     tasks: list[dict]) -> dict[int, bytes]:
        """Rows of ``tasks`` the worker cached already (position -> row), for featurizers that are ``costly``.

        An image costs a fetch and a network pass; its row is the worker's
        (computed once per task).  A cached value of the wrong size is
        ignored (Redis is shared: never trusted).
        """
        if not featurizer.costly or featurizer.sparse:
            return {}
        where = [(i, t.get("id")) for i, t in enumerate(tasks) if type(t.get("id")) is int]
        raws = self.store(project_id).cached_features(f"{featurizer.key}:{control.name}", [tid for _, tid in where])
        size = 4 * featurizer.n_features
        return {i: raw for (i, _), raw in zip(where, raws) if raw is not None and len(raw) == size}

    def _rows(self, project_id: int, featurizer: Featurizer, control: Control | None, tasks: list[dict],
              rows: list[int], contents: list, cached: dict[int, bytes]) -> Any:
        """Features of ``tasks[rows]``: cached rows as they are, the others computed (and cached, if costly).

        A computed row is cached only for a task the backend knows with the
        same data (the pool's copy, from Label Studio's webhooks and syncs):
        a caller of ``/predict`` cannot make the worker train or rank a
        task on another image than the task's own.
        """
        if not featurizer.costly:
            return featurizer.transform(contents)
        todo = [j for j, i in enumerate(rows) if i not in cached]
        fresh = dict(zip((rows[j] for j in todo), encode_rows(featurizer.transform([contents[j] for j in todo]))))
        ids = {i: tasks[i].get("id") for i in fresh if type(tasks[i].get("id")) is int}
        if control is not None and ids:  # the worker will not fetch and embed these again
            store = self.store(project_id)
            known = store.tasks_by_id(list(ids.values()))
            key = control.objects[0].value_key
            same = {ids[i]: raw for i, raw in fresh.items() if i in ids and isinstance(known.get(ids[i]), dict)
                    and isinstance(tasks[i].get("data"), dict) and known[ids[i]].get(key) == tasks[i]["data"].get(key)}
            store.cache_features(f"{featurizer.key}:{control.name}", same)
        return decode_rows([cached.get(i) or fresh[i] for i in rows], featurizer.n_features, sparse=False)

    def _min_confidence(self, project_id: int) -> float:
        """The project's ``min_confidence`` (one HGET: the options, not the whole config)."""
        extra = self.store(project_id).config_field("extra_params")
        try:
            return project_options.resolve(self.settings, extra if isinstance(extra, dict) else None).min_confidence
        except project_options.InvalidOptionsError:
            return self.settings.min_confidence  # refused at /setup already; serve the default

    def _scores(self, project_id, tasks, version, readable, probas, geometry) -> np.ndarray:
        """Ranked tasks keep the worker's score; the rest get a live estimate."""
        n = len(tasks)
        scores = np.full(n, SKIPPED_SCORE)
        if version is None:
            scores[readable] = 0.5
            return scores
        ids = [t.get("id") if isinstance(t.get("id"), int) else -1 for t in tasks]
        ranked = self.store(project_id).ranking_scores(version.name, ids)
        missing = [i for i in range(n) if readable[i] and ranked[i] is None]
        for i in range(n):
            if ranked[i] is not None:
                scores[i] = ranked[i]
        if missing and geometry is not None:
            rows, contents, cached, X = geometry
            pos = {i: j for j, i in enumerate(rows)}
            idx = [pos[i] for i in missing if i in pos]
            # Before the first model, ranked tasks need no features: featurise only the rest.
            X_missing = X[idx] if X is not None else self._rows(
                project_id, version.featurizer, None, tasks, [rows[j] for j in idx], [contents[j] for j in idx], cached)
            sub_probas = {c: p[[rows[j] for j in idx]] for c, p in probas.items()}
            utility = task_utility(version.models, sub_probas, X_missing, version.centroid)
            scores[[rows[j] for j in idx]] = ranking.live_score(utility, version.quantiles)
        return scores
