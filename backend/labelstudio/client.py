"""A small Label Studio API client: authentication and the calls the project needs.

Label Studio 1.23 has two kinds of API keys: legacy tokens (sent as
``Authorization: Token <key>``) and personal access tokens, which are JWT
refresh tokens exchanged at ``/api/token/refresh/`` for a 5-minute ``Bearer``
access token.  The client tells them apart by shape and refreshes the access
token before it expires.  Keys never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit

import httpx
import orjson


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused a call."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _is_jwt(key: str) -> bool:
    parts = key.split(".")
    return len(parts) == 3 and all(parts)


def _jwt_exp(token: str) -> float:
    """The ``exp`` claim of a JWT (not verified: Label Studio verifies it)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(orjson.loads(base64.urlsafe_b64decode(payload)).get("exp", 0))
    except (ValueError, IndexError, orjson.JSONDecodeError):
        return 0.0


def origin(url: str) -> tuple[str, str]:
    """``(scheme, host:port)`` of a URL, lower-cased, the default port made explicit."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, f"{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Credentials:
    """Where Label Studio is and the key that may be sent there (and only there).

    ``source`` says which pair it came from: ``"environment"``
    (``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``) or ``"setup"`` (the
    ``hostname`` and ``access_token`` of the project's last ``/setup``).
    """

    url: str
    key: str
    source: str

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, key=***, source={self.source!r})"


def resolve_credentials(settings: Any, cfg: Mapping[str, Any]) -> Credentials | None:
    """The Label Studio a project talks to, and the one key allowed to go there.

    Why so strict: ``/setup`` is a request anyone who reaches the backend can
    make, so its ``hostname`` is caller-chosen.  The environment's key is
    therefore only ever paired with the environment's ``LABEL_STUDIO_URL``;
    ``/setup``'s ``access_token`` only with ``/setup``'s ``hostname`` (or with
    ``LABEL_STUDIO_URL`` when that is the same origin).  The two are never
    mixed.  With ``LABEL_STUDIO_URL`` set, ``/setup``'s hostname is ignored.
    """
    env_url = (settings.label_studio_url or "").strip()
    env_key = settings.label_studio_api_key.get_secret_value()
    setup_url = str(cfg.get("hostname") or "").strip()
    setup_key = str(cfg.get("access_token") or "")
    if env_url:
        if env_key:
            return Credentials(env_url, env_key, "environment")
        if setup_key and setup_url and origin(setup_url) == origin(env_url):
            return Credentials(env_url, setup_key, "setup")
        return Credentials(env_url, "", "environment")
    if setup_url:
        return Credentials(setup_url, setup_key, "setup")
    return None


def credential_conflict(settings: Any, cfg: Mapping[str, Any]) -> str | None:
    """Why the environment's and ``/setup``'s credentials disagree, or ``None``.

    Shown in the log (WARNING) and in ``/status``: the operator should fix
    one side, since one of the two is not being used.  Never contains a key.
    """
    env_url = (settings.label_studio_url or "").strip()
    env_key = settings.label_studio_api_key.get_secret_value()
    setup_url = str(cfg.get("hostname") or "").strip()
    setup_key = str(cfg.get("access_token") or "")
    if env_key and not env_url:
        return ("LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not, so the key is never sent "
                "(it goes only to LABEL_STUDIO_URL); set LABEL_STUDIO_URL")
    # The same key under two names of one host (compose: localhost vs the service alias) is no conflict.
    if env_url and setup_url and origin(env_url) != origin(setup_url) and setup_key and setup_key != env_key:
        return (f"Label Studio sent hostname {setup_url[:200]!r} with /setup, but LABEL_STUDIO_URL is "
                f"{env_url!r}: using LABEL_STUDIO_URL, and /setup's access token is not used")
    if env_url and env_key and setup_key and setup_key != env_key:
        return ("LABEL_STUDIO_API_KEY and the access token Label Studio sent with /setup differ: "
                "using LABEL_STUDIO_API_KEY")
    return None


class LabelStudioClient:
    """Authenticated access to one Label Studio instance."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/"
        self._key = api_key
        self._access: str | None = None
        self._access_exp = 0.0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def __repr__(self) -> str:
        return f"LabelStudioClient(url={self.url!r}, key=***)"

    def same_origin(self, url: str) -> bool:
        """Only URLs on Label Studio's own host may receive its credentials."""
        return origin(self.url) == origin(urljoin(self.url, url))

    def auth_header(self) -> dict[str, str]:
        if not self._key:
            return {}
        if not _is_jwt(self._key):
            return {"Authorization": f"Token {self._key}"}
        with self._lock:
            if self._access is None or time.time() > self._access_exp - 30:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> None:
        try:
            resp = self._http.post(urljoin(self.url, "api/token/refresh/"), json={"refresh": self._key})
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise LabelStudioError(
                f"Label Studio refused the personal access token (HTTP {resp.status_code}); create a new one"
            )
        self._access = resp.json()["access"]
        self._access_exp = _jwt_exp(self._access) or time.time() + 240

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A call to Label Studio; non-2xx answers raise ``LabelStudioError``."""
        url = urljoin(self.url, path)
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.same_origin(url):
            headers.update(self.auth_header())
        try:
            resp = self._http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"{method} {urlsplit(url).path} failed: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise LabelStudioError(
                f"{method} {urlsplit(url).path} answered HTTP {resp.status_code}", resp.status_code, resp.text[:2000]
            )
        return resp

    # -- the calls the worker makes ------------------------------------------
    def iter_tasks(self, project_id: int, *, page_size: int = 500):
        """Every task of a project with its annotations (``fields=all``), page by page."""
        query: dict = {"ordering": ["tasks:id"]}
        page = 1
        while True:
            params = {"project": project_id, "page": page, "page_size": page_size, "fields": "all",
                      "query": orjson.dumps(query).decode()}
            try:
                body = self.request("GET", "api/tasks/", params=params).json()
            except LabelStudioError as exc:
                if exc.status == 404 and page > 1:  # past the last page
                    return
                raise
            tasks = body.get("tasks", body) if isinstance(body, dict) else body
            yield from tasks
            if len(tasks) < page_size:
                return
            page += 1

    def labeled_tasks(self, project_id: int) -> list[dict]:
        """Every task that has an annotation (cancelled ones too), with its annotations.

        The export API costs in proportion to the labeled tasks, not the pool,
        which is what a periodic reconcile of the labeled set needs.
        """
        params = {"exportType": "JSON", "download_all_tasks": "false"}
        return self.request("GET", f"api/projects/{project_id}/export", params=params, timeout=300).json()

    def existing_task_ids(self, project_id: int, task_ids: list[int]) -> set[int]:
        """Which of ``task_ids`` the project holds now (one call unless pages are capped).

        Label Studio 1.23.2's prediction import refuses a whole batch for one
        unknown task, and by default its message names the task only inside
        a Python ``repr`` of the item; asking is exact whatever the message.
        """
        if not task_ids:
            return set()
        query = orjson.dumps({"selectedItems": {"all": False, "included": list(task_ids)}}).decode()
        wanted, found = set(task_ids), set()
        page = 1
        while True:  # one page unless the server caps page_size (TASK_API_PAGE_SIZE_MAX)
            params = {"project": project_id, "page": page, "page_size": len(task_ids), "fields": "task_only",
                      "resolve_uri": "false", "query": query}
            body = self.request("GET", "api/tasks/", params=params).json()
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            found |= {t["id"] for t in tasks if t.get("id") in wanted}
            total = body.get("total", 0) if isinstance(body, dict) else 0
            if not tasks or len(found) >= total or page >= len(task_ids):
                return found
            page += 1

    def annotation(self, annotation_id: int) -> dict | None:
        """One annotation, or ``None`` when Label Studio does not hold it (404)."""
        try:
            return self.request("GET", f"api/annotations/{int(annotation_id)}/").json()
        except LabelStudioError as exc:
            if exc.status == 404:
                return None
            raise

    def import_predictions(self, project_id: int, predictions: list[dict]) -> int:
        resp = self.request("POST", f"api/projects/{project_id}/import/predictions", json=predictions)
        return int(resp.json().get("created", len(predictions)))

    def model_versions(self, project_id: int) -> dict[str, int]:
        """Prediction counts per model version."""
        return self.request("GET", f"api/projects/{project_id}/model-versions/").json()

    def prediction_versions(self, task_id: int) -> list[str]:
        """The model versions of a task's predictions (one entry per prediction)."""
        body = self.request("GET", "api/predictions/", params={"task": task_id}).json()
        rows = body.get("results", []) if isinstance(body, dict) else body
        return [str(p.get("model_version")) for p in rows]

    def delete_model_version(self, project_id: int, version: str) -> None:
        self.request("DELETE", f"api/projects/{project_id}/model-versions/", json={"model_version": version})

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"api/projects/{project_id}/").json()

    def update_project(self, project_id: int, **fields) -> dict:
        """Set project fields; the answer holds ``id`` and those fields.

        ``include`` names the fields of the answer, so Label Studio skips the
        counts it otherwise computes over every task of the project (its own
        documented switch, ``GetFieldsSerializer``): at 100,000 tasks this
        ``PATCH`` took ~1 s with the counts and ~0.1 s without.
        """
        return self.request("PATCH", f"api/projects/{project_id}/", json=fields,
                            params={"include": ",".join(["id", *fields])}).json()

    def close(self) -> None:
        self._http.close()
