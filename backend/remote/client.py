"""Another Label Studio ML backend, called the way Label Studio calls one (``/health``, ``/predict``).

Why this module exists
----------------------
"Bring your own model": a project may order its queue by the predictions
of a model the user already serves behind Label Studio's ML backend
protocol (``label-studio-ml``'s ``LabelStudioMLBase``, or this backend).
The worker sends the pool to that backend's ``/predict`` in batches, as
Label Studio would send it, and ranks by what comes back
(:mod:`backend.remote.uncertainty`).

The remote is a server someone else runs, so its answers are hostile input
and its failures are expected: every call has a timeout, an answer is read
only if it is JSON of the protocol's shape with one prediction per task
sent, and every failure is one :class:`RemoteError` whose message names
what went wrong (never a credential).  What to do after a failure (keep the
last ranking, try again later) is the caller's; :func:`retry_delay` says when.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

__all__ = ["RemoteError", "RemoteModel", "retry_delay", "batches"]

#: Tasks per ``/predict`` call (Label Studio's own Data Manager sends at most 100 at a time).
DEFAULT_BATCH = 100
#: Seconds a ``/predict`` call may take (Label Studio waits 100 s).
DEFAULT_TIMEOUT = 100.0
#: Longest answer read, in bytes: a prediction per task, never a data set.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class RemoteError(RuntimeError):
    """The remote backend could not be reached, or answered outside the protocol; the message says which."""


def retry_delay(failures: int, *, base: float = 5.0, cap: float = 300.0) -> float:
    """Seconds to wait after ``failures`` failed calls in a row: ``base`` doubled per failure, at most ``cap``."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 30)))


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError(f"a batch holds at least one task, got {size}")
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class RemoteModel:
    """One remote ML backend at ``url`` (``http(s)://host:port``, with its path prefix if any).

    ``auth``: HTTP basic auth ``(user, password)`` for that backend only.
    """

    url: str
    timeout: float = DEFAULT_TIMEOUT
    auth: tuple[str, str] | None = field(default=None, repr=False)
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a remote model's URL must be http(s)://host[:port][/path], got {self.url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("a remote model's URL takes no credentials, query or fragment; give basic auth apart")
        self.url = self.url.strip().rstrip("/")

    def _client(self) -> httpx.Client:
        # Redirects are not followed: a remote must not send the worker (and its auth) somewhere else.
        return httpx.Client(timeout=self.timeout, auth=self.auth, follow_redirects=False, transport=self.transport)

    def _post(self, path: str, body: dict) -> Any:
        started = time.monotonic()
        try:
            with self._client() as client:
                r = client.post(self.url + path, content=orjson.dumps(body),
                                headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise RemoteError(f"{path} took longer than {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"{path} could not be reached: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise RemoteError(f"{path} answered HTTP {r.status_code} after {time.monotonic() - started:.1f} s")
        if len(r.content) > MAX_ANSWER_BYTES:
            raise RemoteError(f"{path} answered {len(r.content):,} bytes; at most {MAX_ANSWER_BYTES:,} are read")
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError:
            raise RemoteError(f"{path} answered something that is not JSON") from None

    def health(self) -> bool:
        """Whether ``GET /health`` answers 200 (Label Studio's check before it connects a backend)."""
        try:
            with self._client() as client:
                return client.get(self.url + "/health").status_code == 200
        except httpx.HTTPError:
            return False

    def predict(self, tasks: Sequence[dict], *, project: str, label_config: str) -> list[dict]:
        """One ``/predict`` call for ``tasks``, as Label Studio sends it; one prediction dict per task, in order.

        A prediction that is not an object (``null``: the remote had nothing
        for that task) comes back as ``{}``; an answer of the wrong shape or
        length is a :class:`RemoteError`.
        """
        body = {"tasks": list(tasks), "project": project, "label_config": label_config, "params": {"context": None}}
        answer = self._post("/predict", body)
        results = answer.get("results") if isinstance(answer, dict) else answer  # label-studio-ml 1.x sent a list
        if not isinstance(results, list):
            raise RemoteError("/predict answered no 'results' list")
        if len(results) != len(tasks):
            raise RemoteError(f"/predict answered {len(results)} predictions for {len(tasks)} tasks")
        version = answer.get("model_version") if isinstance(answer, dict) else None
        out = [dict(r) if isinstance(r, dict) else {} for r in results]
        if isinstance(version, str):  # label-studio-ml names the version once, beside the results
            for r in out:
                r.setdefault("model_version", version)
        return out
