"""Settings read from the environment, once per process.

Every knob is an environment variable so the same image runs the backend,
the worker and the tests; per-project overrides arrive later through the
backend's ``extra_params`` in Label Studio.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.selection.strategies import DEFAULT_CONTROL_SHARE, DEFAULT_STRATEGY

#: The settings that are defaults of the per-project options (``backend/project_options.py``):
#: checked at startup by the same rules ``/setup`` applies to ``extra_params``.
PROJECT_DEFAULTS = (
    "head_size", "set_sampling", "train_every", "keep_versions", "train_interval",
    "strategy", "weights", "control_share", "min_confidence", "remote_batch", "remote_timeout",
)


class Settings(BaseSettings):
    """Process-wide configuration (see the README for each variable)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    key_prefix: str = Field("al", validation_alias="AL_KEY_PREFIX")
    label_studio_url: str = Field(
        "", validation_alias=AliasChoices("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST")
    )
    label_studio_api_key: SecretStr = Field(SecretStr(""), validation_alias="LABEL_STUDIO_API_KEY")
    basic_auth_user: str = Field("", validation_alias="BASIC_AUTH_USER")
    basic_auth_pass: SecretStr = Field(SecretStr(""), validation_alias="BASIC_AUTH_PASS")
    webhook_token: SecretStr = Field(SecretStr(""), validation_alias="AL_WEBHOOK_TOKEN")
    # Serving on a non-loopback address without basic auth needs this explicit opt-in.
    allow_insecure: bool = Field(False, validation_alias="AL_ALLOW_INSECURE")
    max_text_chars: int = Field(100_000, validation_alias="AL_MAX_TEXT_CHARS", ge=100)
    # Request bodies over this get 413, counted as they stream (chunked ones too).
    max_body_bytes: int = Field(64 * 2**20, validation_alias="AL_MAX_BODY_BYTES", ge=1024)
    # Task data URLs: total deadline per fetch, byte cap, and hosts allowed besides Label Studio's.
    fetch_timeout: float = Field(5.0, validation_alias="AL_FETCH_TIMEOUT", gt=0)
    fetch_max_bytes: int = Field(10 * 2**20, validation_alias="AL_FETCH_MAX_BYTES", ge=1024)
    fetch_allow_hosts: str = Field("", validation_alias="AL_FETCH_ALLOW_HOSTS")
    model_poll_interval: float = Field(0.5, validation_alias="AL_MODEL_POLL_INTERVAL", ge=0)
    queue_name: str = Field("al-default", validation_alias="AL_QUEUE")
    worker_nice: int = Field(10, validation_alias="AL_WORKER_NICE", ge=0, le=19)
    # Added to worker_nice for the worker's low-priority process (evaluate, prune, reconcile).
    low_priority_nice: int = Field(9, validation_alias="AL_LOW_PRIORITY_NICE", ge=0, le=19)
    worker_threads: int = Field(1, validation_alias="AL_WORKER_THREADS", ge=0)
    log_level: str = Field("INFO", validation_alias="AL_LOG_LEVEL")
    # Defaults of the per-project options (extra_params override them); their ranges and
    # allowed values are ProjectOptions' own, checked by ``_project_defaults_valid``.
    head_size: int = Field(200, validation_alias="AL_HEAD_SIZE")
    set_sampling: bool = Field(True, validation_alias="AL_SET_SAMPLING")
    train_every: int = Field(1, validation_alias="AL_TRAIN_EVERY")
    keep_versions: int = Field(2, validation_alias="AL_KEEP_VERSIONS")
    train_interval: float = Field(0.0, validation_alias="AL_TRAIN_INTERVAL")
    strategy: str = Field(DEFAULT_STRATEGY, validation_alias="AL_STRATEGY")
    weights: dict[str, float] = Field(default_factory=dict, validation_alias="AL_WEIGHTS")  # JSON object
    control_share: float = Field(DEFAULT_CONTROL_SHARE, validation_alias="AL_CONTROL_SHARE")
    min_confidence: float = Field(0.0, validation_alias="AL_MIN_CONFIDENCE")
    reconcile_interval: float = Field(300.0, validation_alias="AL_RECONCILE_INTERVAL", ge=0)
    push_retry_delay: float = Field(30.0, validation_alias="AL_PUSH_RETRY_DELAY", ge=0)
    lock_ttl: float = Field(60.0, validation_alias="AL_LOCK_TTL", ge=1)
    # Label Studio's TASK_LOCK_TTL (86400 s in 1.23.2): how long an annotator may hold a task
    # open.  A version's predictions stay in Label Studio this long, plus the margin, after
    # it stopped being current, since the UI submits the id of the prediction it showed.
    task_lock_ttl: float = Field(86_400.0, validation_alias="AL_TASK_LOCK_TTL", ge=0)
    prune_margin: float = Field(300.0, validation_alias="AL_PRUNE_MARGIN", ge=0)
    shard_threshold: int = Field(200_000, validation_alias="AL_SHARD_THRESHOLD", ge=1)
    # Bring your own model (docs/remote.md): the remote ML backends a project may name in ``remote_url``
    # ("host:port" entries, comma-separated; no entry: none), tasks per remote /predict call, its timeout,
    # and how often a project's remote is asked whether it serves a new model version.
    remote_allow_hosts: str = Field("", validation_alias="AL_REMOTE_ALLOW_HOSTS")
    remote_batch: int = Field(100, validation_alias="AL_REMOTE_BATCH")
    remote_timeout: float = Field(100.0, validation_alias="AL_REMOTE_TIMEOUT")
    remote_poll_interval: float = Field(60.0, validation_alias="AL_REMOTE_POLL_INTERVAL", ge=1)
    # Seconds of remote calls one refresh may spend; the rest of the pool is asked for by the next refresh,
    # queued behind other projects' jobs, so a slow remote never holds the worker for long.
    remote_budget: float = Field(60.0, validation_alias="AL_REMOTE_BUDGET", gt=0)
    # Run your model in process (docs/remote.md): the classes a project may name in ``plugin``
    # ("package.module:ClassName" entries, comma-separated; no entry: none).  A class named there runs
    # inside the worker, so only the operator may list one.
    plugins: str = Field("", validation_alias="AL_PLUGINS")

    @model_validator(mode="after")
    def _auth_set_together(self) -> "Settings":
        # A password without a user used to turn auth off silently: refuse to start instead.
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass.get_secret_value()):
            missing = "BASIC_AUTH_PASS" if self.basic_auth_user else "BASIC_AUTH_USER"
            raise ValueError(
                f"BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together, or neither: {missing} is empty. "
                "Set both to turn basic auth on, or unset both"
            )
        return self

    @model_validator(mode="after")
    def _project_defaults_valid(self) -> "Settings":
        # A bad default (AL_STRATEGY=typo, AL_HEAD_SIZE=0) used to start fine and then fail every
        # project; it is refused here, at startup, naming the variable.
        from backend.project_options import ProjectOptions  # it reads this class's defaults

        try:
            ProjectOptions(**self.project_defaults())
        except ValidationError as exc:
            problems = "; ".join(f"{env_name(str(e['loc'][0]))}: {e['msg'].removeprefix('Value error, ')}"
                                 for e in exc.errors())
            raise ValueError(problems) from None
        return self

    def project_defaults(self) -> dict[str, Any]:
        """The per-project options' defaults, as set in the environment."""
        return {name: getattr(self, name) for name in PROJECT_DEFAULTS}

    @property
    def prediction_hold_s(self) -> float:
        """Seconds a version's predictions outlive its time as current (see ``worker/push.py`` ``prune``)."""
        return self.task_lock_ttl + self.prune_margin

    def remote_host_allowed(self, url: str) -> bool:
        """Whether ``url``'s ``host:port`` is listed in ``AL_REMOTE_ALLOW_HOSTS`` (a port left out is the scheme's).

        The operator's list is the only way a project reaches another server:
        ``remote_url`` comes from a Label Studio admin, so it is hostile.
        """
        key = host_port(url)
        return key is not None and key in {host_port(f"http://{h.strip()}") for h in
                                           self.remote_allow_hosts.split(",") if h.strip()}

    def plugin_allowed(self, path: str) -> bool:
        """Whether ``path`` (``module:Class``) is listed in ``AL_PLUGINS``, exactly: ``plugin`` comes from a Label
        Studio admin, and importing it runs code in the worker."""
        return bool(path) and path.strip() in {p.strip() for p in self.plugins.split(",") if p.strip()}

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass.get_secret_value())


def host_port(url: str) -> str | None:
    """``host:port`` of an ``http(s)`` URL, lower case, the port made explicit; ``None`` if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        return None
    host = parts.hostname.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (for error messages)."""
    alias = Settings.model_fields[field].validation_alias
    return str(alias.choices[0] if isinstance(alias, AliasChoices) else alias)


def default(field: str) -> Any:
    """A setting's default when the environment does not set it (``ProjectOptions`` starts from these)."""
    info = Settings.model_fields[field]
    return info.get_default(call_default_factory=True)


@lru_cache
def get_settings() -> Settings:
    """The process's settings; tests build their own ``Settings`` instead."""
    return Settings()
