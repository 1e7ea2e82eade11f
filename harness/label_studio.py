"""A real Label Studio from PyPI on loopback, for the end-to-end tests, the demo and the benchmarks.

Why a real one: the backend speaks Label Studio's ML protocol and drives its
REST API; the only proof that both sides agree is to run the real server.

Three layers, each cached so that only the first run is slow:

1. ``ensure_label_studio()`` installs the ``label-studio`` package into its OWN
   virtual environment under ``$AL_LS_HOME`` (default ``<repo>/.cache/label-studio``).
   It pins Django and ~150 packages that must not meet the project's venv.
2. ``ensure_template()`` migrates a fresh data dir once (``label-studio init``),
   creates the admin with a known legacy token, starts the server once on it
   to prove the token works, and keeps the dir as a template.
3. ``LabelStudio`` copies the template to a temp dir and starts a server on a
   free loopback port: a few seconds instead of a full migration.

``LabelStudio(db="postgresql")`` runs it on PostgreSQL instead, as production
deployments do (on SQLite, ``/next`` answers 500 "database is locked" while a
push writes): the template is then a migrated database, and each run gets a
fresh database made from it (``CREATE DATABASE ... TEMPLATE``, about a second),
dropped when the server stops.  The server is given at 127.0.0.1:5432, user
``postgres``, trust auth (``AL_PG_HOST``, ``AL_PG_PORT``, ``AL_PG_USER``,
``AL_PG_PASSWORD`` change it).  Label Studio 1.23.2 reads ``DJANGO_DB=default``
and ``POSTGRE_NAME/USER/PASSWORD/HOST/PORT`` (``core/settings/base.py``), and
its venv already has the ``psycopg`` 3 driver Django uses.

Facts found on Label Studio 1.23.2 that this file relies on:

- Legacy ``Token`` auth is decided when the organization is created:
  ``init --enable-legacy-api-token`` (or ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``
  at that moment) turns it on; ``--user-token`` sets the admin's token (> 5 chars).
- A personal access token is a JWT refresh token made by ``POST /api/token/``
  (any auth, here the legacy token), at most one live per user (409 otherwise);
  ``POST /api/token/refresh/ {"refresh": pat}`` gives a 5-minute ``Bearer`` access
  token. The PAT itself is not accepted as a Bearer token.
- LS reads every setting as ``LABEL_STUDIO_<NAME>``, ``HEARTEX_<NAME>`` *or bare
  ``<NAME>``*, so stray ``HOST``, ``PORT``, ``USERNAME``, ``PASSWORD``, ``DEBUG`` in the
  caller's environment would change it: the server gets a whitelisted environment.
- Without ``SENTRY_DSN=""`` it reports errors to sentry.io; without
  ``LATEST_VERSION_CHECK=false`` ``/api/version`` asks PyPI; without
  ``COLLECT_ANALYTICS=false`` it collects usage. It writes ``~/.config/label-studio``,
  so ``HOME``/``XDG_*`` point into the run's temp dir.
- ``DJANGO_DEBUG`` is not read by LS; its debug switch is ``LABEL_STUDIO_DEBUG``.
- OSS LS never uses Redis for jobs (``REDIS_ENABLED = False``): imports and
  webhooks run synchronously inside the request.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

LS_VERSION = "1.23.2"
"""The version DESIGN.md's facts were verified on; override with ``$AL_LS_VERSION``."""

REPO = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "admin@example.com"
_KEEP_LOGS = 20

# The environment a Label Studio process sees: only these are inherited.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Settings every Label Studio process here gets (on top of data dir and HOME).
LS_ENV: dict[str, str] = {
    # Backends and webhooks on 127.0.0.1 are refused without these two; with
    # SSRF protection on, the webhook LS auto-creates for a backend is silently dropped.
    "ML_BLOCK_LOCAL_IP": "false",
    "SSRF_PROTECTION_ENABLED": "false",
    # Legacy `Token` auth for organizations created by this process.
    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    # Debug off. LS 1.23 reads LABEL_STUDIO_DEBUG (or bare DEBUG); it never reads DJANGO_DEBUG,
    # which is set only so that nobody wonders whether it is missing.
    "LABEL_STUDIO_DEBUG": "false",
    "DJANGO_DEBUG": "false",
    # No outgoing network: error reports, PyPI version check, analytics, feature-flag service.
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
    "CONVERTER_DOWNLOAD_RESOURCES": "false",
    "LABEL_STUDIO_HOST": "",
}


class LabelStudioError(RuntimeError):
    """Label Studio failed to install, start, or answered an API call with an error."""


def _log(msg: str) -> None:
    print(f"[label-studio] {msg}", file=sys.stderr, flush=True)


def ls_version() -> str:
    return os.environ.get("AL_LS_VERSION") or LS_VERSION


# Label Studio's own feature flag (off by default in 1.23.2): importing
# predictions then refreshes the counters of the tasks it touched instead of
# every task of the project, which costs ~6 s per push at 100,000 tasks.
FAST_IMPORT_FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"


def ls_home() -> Path:
    """Where the venv, the template and the logs live (git-ignored by default)."""
    return Path(os.environ.get("AL_LS_HOME") or REPO / ".cache" / "label-studio").resolve()


def _base_python() -> str:
    """The interpreter this venv was made from: LS gets the same Python, not the project's venv."""
    exe = f"python{sys.version_info.major}.{sys.version_info.minor}"
    cand = Path(sys.base_prefix) / "bin" / exe
    if cand.exists():
        return str(cand)
    return getattr(sys, "_base_executable", None) or shutil.which(exe) or sys.executable


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise installs and template builds between concurrent test sessions."""
    home = ls_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def ensure_label_studio() -> Path:
    """Install ``label-studio==<version>`` into its own venv once; return the venv dir.

    The marker file is written last, after an import check, so a failed or
    interrupted install is redone from scratch on the next call.
    """
    venv = ls_home() / "venv"
    marker = venv / ".al-installed"
    spec = f"label-studio=={ls_version()}"
    with _locked("install"):
        if marker.exists() and marker.read_text().split("\n")[0] == spec and (venv / "bin" / "label-studio").exists():
            return venv
        t0 = time.monotonic()
        _log(f"installing {spec} into {venv} (first time only; takes a few minutes)")
        shutil.rmtree(venv, ignore_errors=True)
        log = ls_home() / "install.log"
        py = str(venv / "bin" / "python")
        # No pip cache: nothing is written outside AL_LS_HOME.
        env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        steps = [
            [_base_python(), "-m", "venv", str(venv)],
            [py, "-m", "pip", "install", "--upgrade", "pip"],
            [py, "-m", "pip", "install", spec],
        ]
        with open(log, "w") as out:
            for cmd in steps:
                _log(f"  $ {' '.join(cmd[-3:])}")
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
                if rc:
                    shutil.rmtree(venv, ignore_errors=True)
                    raise LabelStudioError(f"{' '.join(cmd)} failed ({rc}); see {log}:\n{_tail(log)}")
        got = subprocess.run(
            [py, "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
            capture_output=True, text=True, env=env,
        ).stdout.strip()
        if got != ls_version():
            shutil.rmtree(venv, ignore_errors=True)
            raise LabelStudioError(f"installed label-studio reports {got!r}, wanted {ls_version()}")
        _write_atomic(marker, f"{spec}\n")
        _log(f"installed label-studio {got} in {time.monotonic() - t0:.0f} s")
        return venv


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def free_port() -> int:
    """A port nothing listens on now (LS would silently move to port+1 if it were busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DBS = ("sqlite", "postgresql")


def pg_settings() -> dict[str, str]:
    """Where the PostgreSQL for Label Studio answers (trust auth by default)."""
    return {"host": os.environ.get("AL_PG_HOST", "127.0.0.1"), "port": os.environ.get("AL_PG_PORT", "5432"),
            "user": os.environ.get("AL_PG_USER", "postgres"), "password": os.environ.get("AL_PG_PASSWORD", "")}


def _pg_env(name: str) -> dict[str, str]:
    """Label Studio's settings for database ``name`` (read in its ``core/settings/base.py``)."""
    pg = pg_settings()
    return {"DJANGO_DB": "default", "POSTGRE_NAME": name, "POSTGRE_USER": pg["user"],
            "POSTGRE_PASSWORD": pg["password"], "POSTGRE_HOST": pg["host"], "POSTGRE_PORT": pg["port"]}


_PG_SCRIPT = """
import sys, psycopg
host, port, user, password = sys.argv[1:5]
with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres",
                     autocommit=True, connect_timeout=5) as conn:
    for stmt in sys.argv[5:]:
        cur = conn.execute(stmt)
        rows = cur.fetchall() if cur.description else []
        print("\\n".join("|".join(map(str, r)) for r in rows))
"""


def pg_run(*statements: str) -> str:
    """Run SQL on the PostgreSQL server with Label Studio's own driver (no client needed in the project)."""
    pg = pg_settings()
    py = str(ensure_label_studio() / "bin" / "python")
    r = subprocess.run([py, "-c", _PG_SCRIPT, pg["host"], pg["port"], pg["user"], pg["password"], *statements],
                       capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise LabelStudioError(f"PostgreSQL at {pg['host']}:{pg['port']} refused {statements}: {r.stderr[-1500:]}")
    return r.stdout.strip()


def _pg_exists(name: str) -> bool:
    return pg_run(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def _ls_env(data_dir: Path, scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: LS reads bare HOST/PORT/USERNAME/... so nothing else is inherited."""
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    for sub in ("home", "config", "cache", "data"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    env.update(LS_ENV)
    env.update(
        HOME=str(scratch / "home"),
        XDG_CONFIG_HOME=str(scratch / "config"),
        XDG_CACHE_HOME=str(scratch / "cache"),
        XDG_DATA_HOME=str(scratch / "data"),
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    """Child side of Popen: SIGTERM this server if the test process dies without stop()."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


try:
    import psutil

    _HAVE_PSUTIL = True
except ImportError:  # psutil is in the project's test extras; fall back to reading LS's log
    _HAVE_PSUTIL = False


def _listening_ports(pid: int) -> list[int]:
    """Ports the process really listens on (LS moves to port+1 silently if its port is busy)."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return sorted({c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN})


class _Server:
    """One ``label-studio start`` process: spawn, find its real port, wait for readiness, stop."""

    def __init__(self, venv: Path, data_dir: Path, scratch: Path, log_path: Path,
                 port: int | None = None, env: dict[str, str] | None = None, log_level: str = "WARNING") -> None:
        self.requested_port = port or free_port()
        self.log_path = log_path
        cmd = [str(venv / "bin" / "label-studio"), "start", "--no-browser",
               "--internal-host", "127.0.0.1", "--port", str(self.requested_port),
               "--data-dir", str(data_dir), "--log-level", log_level]
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_ls_env(data_dir, scratch, env), cwd=str(scratch), start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.port = self.requested_port

    def wait_ready(self, timeout: float) -> str:
        """Poll until ``/api/version`` answers on the port the process really bound; return its version."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabelStudioError(f"label-studio exited with {self.proc.returncode}; log {self.log_path}:\n"
                                       f"{_tail(self.log_path)}")
            if _HAVE_PSUTIL:  # the port this very process listens on, never a neighbour's
                ports = _listening_ports(self.proc.pid)
            else:  # LS prints "Trying to start at N" when it moves
                moved = re.findall(r"Trying to start at (\d+)", self.log_path.read_text(errors="replace"))
                ports = [int(moved[-1])] if moved else [self.requested_port]
            if ports:
                self.port = ports[0]
                try:
                    r = httpx.get(f"http://127.0.0.1:{self.port}/api/version", timeout=2)
                    if r.status_code == 200:
                        return r.json().get("release", "")
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise LabelStudioError(f"label-studio did not answer within {timeout:.0f} s; log {self.log_path}:\n"
                               f"{_tail(self.log_path)}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # a process group may outlive its leader (e.g. a git subprocess)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def template_dir(db: str = "sqlite") -> Path:
    """The SQLite template's data dir; for PostgreSQL, the path its metadata file is named after."""
    return ls_home() / (f"template-{ls_version()}" + ("" if db == "sqlite" else f"-{db}"))


def pg_template_name() -> str:
    """The template database of this ``$AL_LS_HOME``: its credentials live in that home, so two homes
    (a clean CI clone's ``.cache`` and a shared cache) must not share one database name, or the second
    build replaces the first's admin token under it."""
    home = hashlib.sha1(str(ls_home()).encode()).hexdigest()[:8]
    return "al_ls_template_" + re.sub(r"\W", "_", ls_version()) + "_" + home


def _logs_dir() -> Path:
    d = ls_home() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    logs = sorted(d.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[:-_KEEP_LOGS]:
        old.unlink(missing_ok=True)
    return d


def ensure_template(db: str = "sqlite") -> Path:
    """Return a pre-migrated template with an admin user whose legacy token works.

    Built once (~30 s of migrations): ``label-studio init`` with ``--username``,
    ``--password``, ``--user-token`` and ``--enable-legacy-api-token`` migrates the
    database and creates the admin and the organization with legacy tokens on;
    then the server is started once on it and the token is checked against
    ``/api/projects`` before the template is published (a data dir renamed
    into place; for PostgreSQL, a database renamed to ``pg_template_name()``).
    The credentials are in ``<template>.json`` next to it.
    """
    if db not in DBS:
        raise ValueError(f"db must be one of {DBS}, got {db!r}")
    tdir = template_dir(db)
    meta_path = _meta_path(tdir)
    with _locked("template"):
        if meta_path.exists() and (tdir.is_dir() if db == "sqlite" else _pg_exists(pg_template_name())):
            return tdir
        venv = ensure_label_studio()
        t0 = time.monotonic()
        _log(f"building a migrated {db} template at {tdir} (first time only)")
        partial = tdir.with_name(tdir.name + ".partial")
        scratch = tdir.with_name(tdir.name + ".scratch")
        for d in (partial, scratch, tdir):
            shutil.rmtree(d, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
        partial.mkdir(parents=True)
        env: dict[str, str] = {}
        if db == "postgresql":
            building = pg_template_name() + "_partial"
            pg_run(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)', f'DROP DATABASE IF EXISTS '
                   f'"{pg_template_name()}" WITH (FORCE)', f'CREATE DATABASE "{building}"')
            env = _pg_env(building)
        meta = {"version": ls_version(), "username": ADMIN_EMAIL,
                "password": secrets.token_hex(12), "token": secrets.token_hex(20)}
        log = _logs_dir() / f"template-{db}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        cmd = [str(venv / "bin" / "label-studio"), "init", "--no-browser", "-q", "--data-dir", str(partial),
               # "--flag=value": a value starting with "-" must not read as another flag.
               f"--username={meta['username']}", f"--password={meta['password']}",
               f"--user-token={meta['token']}", "--enable-legacy-api-token"]
        with open(log, "wb") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=_ls_env(partial, scratch, env), cwd=str(scratch), timeout=900).returncode
        if rc:
            raise LabelStudioError(f"label-studio init failed ({rc}); log {log}:\n{_tail(log)}")
        t_init = time.monotonic() - t0
        server = _Server(venv, partial, scratch, log, env=env)
        try:
            version = server.wait_ready(timeout=180)
            r = httpx.get(f"http://127.0.0.1:{server.port}/api/projects/",
                          headers={"Authorization": f"Token {meta['token']}"}, timeout=10)
            if r.status_code != 200:
                raise LabelStudioError(f"the template's legacy token is refused: {r.status_code} {r.text[:500]}")
        finally:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        meta["built_with"] = version
        if db == "postgresql":
            shutil.rmtree(partial, ignore_errors=True)  # the database is the template; runs get a fresh data dir
            pg_run(f'ALTER DATABASE "{building}" RENAME TO "{pg_template_name()}"')
        else:
            partial.rename(tdir)
        _write_atomic(meta_path, json.dumps(meta, indent=1))
        _log(f"template ready in {time.monotonic() - t0:.0f} s (init/migrate {t_init:.0f} s)")
        return tdir


def _meta_path(tdir: Path) -> Path:
    return tdir.with_name(tdir.name + ".json")


def _template_meta(tdir: Path) -> dict[str, str]:
    return json.loads(_meta_path(tdir).read_text())


class LabelStudio:
    """A running Label Studio on 127.0.0.1 with a throw-away copy of the template.

    ``with LabelStudio() as ls:`` starts it; ``url``, ``token`` (legacy ``Token``),
    ``pat`` (personal access token: a JWT refresh token, made on first use) and
    ``log_path`` are then set. ``env`` adds or overrides server settings
    (e.g. ``{"WEBHOOK_TIMEOUT": "3"}``).  ``db="postgresql"`` runs it on a fresh
    PostgreSQL database (``database`` names it), dropped by ``stop()``.
    """

    def __init__(self, *, port: int | None = None, env: dict[str, str] | None = None,
                 log_level: str = "WARNING", startup_timeout: float = 120.0,
                 data_dir: Path | None = None, db: str = "sqlite") -> None:
        if db not in DBS:
            raise ValueError(f"db must be one of {DBS}, got {db!r}")
        if db != "sqlite" and data_dir is not None:
            raise ValueError("a persistent data dir is only supported on SQLite")
        self.db = db
        self.database = ""
        self._port = port
        self._keep = data_dir  # a persistent data dir (the demo): made from the template once, never removed
        self._env = env
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._server: _Server | None = None
        self._tmp: Path | None = None
        self._http: httpx.Client | None = None
        self._pat: str | None = None
        self.url = ""
        self.token = ""
        self.username = ""
        self.password = ""
        self.version = ""
        self.log_path: Path | None = None
        self.data_dir: Path | None = None
        self.startup_seconds = 0.0
        self.next_retries = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "LabelStudio":
        """Copy the template, start the server, wait until it answers with our token."""
        if self._server is not None:
            return self
        tdir = ensure_template(self.db)
        meta = _template_meta(tdir)
        venv = ensure_label_studio()
        t0 = time.monotonic()
        self._tmp = Path(tempfile.mkdtemp(prefix="al-ls-"))
        self.data_dir = self._keep or self._tmp / "data"
        env = dict(self._env or {})
        atexit.register(self.stop)
        if self.db == "postgresql":
            self.data_dir.mkdir(parents=True)
            self.database = f"al_ls_run_{os.getpid()}_{secrets.token_hex(4)}"
            with _locked("pg-create"):  # CREATE DATABASE ... TEMPLATE wants the template to itself
                pg_run(f'CREATE DATABASE "{self.database}" TEMPLATE "{pg_template_name()}"')
            env.update(_pg_env(self.database))
        elif not self.data_dir.exists():
            shutil.copytree(tdir, self.data_dir, symlinks=True)
        self.log_path = _logs_dir() / f"ls-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._tmp.name}.log"
        self.token, self.username, self.password = meta["token"], meta["username"], meta["password"]
        self._server = _Server(venv, self.data_dir, self._tmp / "scratch", self.log_path,
                               port=self._port, env=env, log_level=self._log_level)
        try:
            self.version = self._server.wait_ready(self._startup_timeout)
            self.url = f"http://127.0.0.1:{self._server.port}"
            self._http = self.client()
            self._check(self._http.get("/api/current-user/whoami"))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Terminate the server's process group and remove the temp data dir (the log is kept)."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self.database:
            try:
                pg_run(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except LabelStudioError as exc:
                _log(f"could not drop {self.database}: {exc}")
            self.database = ""
        self._pat = None
        atexit.unregister(self.stop)

    @property
    def pid(self) -> int | None:
        return self._server.proc.pid if self._server else None

    @property
    def port(self) -> int | None:
        return self._server.port if self._server else None

    def __enter__(self) -> "LabelStudio":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- auth ----------------------------------------------------------------------
    def client(self, **kwargs: Any) -> httpx.Client:
        """A new client with the legacy token; the caller closes it."""
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 60.0), **kwargs)

    @property
    def pat(self) -> str:
        """The admin's personal access token (JWT refresh token), created on first use.

        ``POST /api/token/`` allows one live PAT per user and answers 409 for a
        second; then the existing ones (listed truncated) are revoked through
        ``/api/token/blacklist/`` and a new one is made.
        """
        if self._pat is None:
            r = self._api.post("/api/token/")
            if r.status_code == 409:
                for tok in self._check(self._api.get("/api/token/")).json():
                    self._api.post("/api/token/blacklist/", json={"refresh": tok["token"]})
                r = self._api.post("/api/token/")
            self._pat = self._check(r).json()["token"]
        return self._pat

    def access_token(self) -> str:
        """A fresh 5-minute ``Bearer`` access token from the PAT (``/api/token/refresh/``)."""
        r = httpx.post(f"{self.url}/api/token/refresh/", json={"refresh": self.pat}, timeout=30)
        return self._check(r).json()["access"]

    # -- API helpers ---------------------------------------------------------------
    @property
    def _api(self) -> httpx.Client:
        if self._http is None:
            raise LabelStudioError("Label Studio is not running: call start() first")
        return self._http

    @staticmethod
    def _check(r: httpx.Response) -> httpx.Response:
        if r.is_error:
            raise LabelStudioError(f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:2000]}")
        return r

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict:
        return self._check(self._api.post("/api/projects/",
                                          json={"title": title, "label_config": label_config, **fields})).json()

    def project(self, project_id: int) -> dict:
        return self._check(self._api.get(f"/api/projects/{project_id}/")).json()

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Import tasks (``{"data": {...}}`` or bare data dicts); return the new task ids in order."""
        r = self._api.post(f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=tasks)
        return list(self._check(r).json().get("task_ids", []))

    def upload_files(self, project_id: int, paths: list[Path]) -> dict[str, dict]:
        """Import files (e.g. PNGs) as Label Studio 1.23.2's *Import* dialog does; one task per file.

        The dialog sends the files as one multipart ``POST /api/projects/{id}/import?commit_to_project=false``,
        each under its own file name as the field name (``FormData.append(file.name, file)``), then on
        *Import* ``POST /api/projects/{id}/reimport`` ``{"file_upload_ids": [...], "files_as_tasks_list":
        false}``, which makes the tasks.  Each file is stored as ``upload/<project>/<8 hex>-<name>`` and
        its task holds ``{"<the config's only data key>": "/data/upload/<project>/<8 hex>-<name>"}``
        (Label Studio imports it under ``$undefined$`` and renames it to the label config's variable).
        Returns the original file name -> the task Label Studio made for it (``id``, ``data``, ...).

        Two files under one field name would silently become one task (Django keeps the last), so
        names must be distinct.
        """
        import mimetypes

        names = [Path(p).name for p in paths]
        if len(set(names)) != len(names):
            raise ValueError("file names must be distinct: Label Studio keeps one file per multipart field name")
        files = [(n, (n, Path(p).read_bytes(), mimetypes.guess_type(n)[0] or "application/octet-stream"))
                 for n, p in zip(names, paths)]
        up = self._check(self._api.post(f"/api/projects/{project_id}/import",
                                        params={"commit_to_project": "false"}, files=files)).json()
        ids = up.get("file_upload_ids") or []
        if len(ids) != len(names):
            raise LabelStudioError(f"uploaded {len(names)} files, Label Studio kept {len(ids)}: {up}")
        made = self._check(self._api.post(f"/api/projects/{project_id}/reimport",
                                          json={"file_upload_ids": ids, "files_as_tasks_list": False})).json()
        if made.get("task_count") != len(names):
            raise LabelStudioError(f"uploaded {len(names)} files, Label Studio made {made.get('task_count')} tasks")
        uploads = self._check(self._api.get(f"/api/projects/{project_id}/file-uploads",
                                            params={"ids": json.dumps(ids)})).json()
        stored = {u["file"].rsplit("/", 1)[-1]: u for u in uploads}  # "<8 hex>-<name>" -> upload
        by_name: dict[str, dict] = {}
        page = 1
        while len(by_name) < len(names):
            r = self._api.get("/api/tasks/", params={"project": project_id, "page": page, "page_size": 500,
                                                     "fields": "all"})
            tasks = self._check(r).json().get("tasks", []) if r.status_code != 404 else []
            for task in tasks:
                if task.get("file_upload") in stored:
                    by_name[task["file_upload"].split("-", 1)[1]] = task
            if len(tasks) < 500:
                break
            page += 1
        if sorted(by_name) != sorted(names):
            raise LabelStudioError(f"found tasks for {len(by_name)} of the {len(names)} uploaded files")
        return by_name

    def connect_ml_backend(self, project_id: int, url: str, title: str = "al",
                           basic_auth: tuple[str, str] | None = None, **fields: Any) -> dict:
        """``POST /api/ml/``: LS calls the backend's ``/health`` and ``/setup`` before answering."""
        body: dict[str, Any] = {"project": project_id, "url": url, "title": title, **fields}
        if basic_auth:
            body.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        return self._check(self._api.post("/api/ml/", json=body)).json()

    def next_task(self, project_id: int) -> dict | None:
        """The task LS serves the admin next; ``None`` when it has none (404).

        On SQLite, Label Studio's ``/next`` writes a lock row and answers 500
        ("database is locked", in its log) when the worker's push or prune is
        writing at that moment; an annotator's next click succeeds, so the
        harness asks again (a few times, counted in ``next_retries``).
        """
        for attempt in range(5):
            r = self._api.get(f"/api/projects/{project_id}/next/")
            if r.status_code != 500 or attempt == 4:
                break
            self.next_retries += 1
            time.sleep(0.5)
        return None if r.status_code == 404 else self._check(r).json()

    def annotate(self, task_id: int, result: list[dict], **fields: Any) -> dict:
        return self._check(self._api.post(f"/api/tasks/{task_id}/annotations/",
                                          json={"result": result, **fields})).json()

    def annotations(self, task_id: int) -> list[dict]:
        return self._check(self._api.get(f"/api/tasks/{task_id}/annotations/")).json()

    def predictions(self, task_id: int) -> list[dict]:
        return self._check(self._api.get("/api/predictions/", params={"task": task_id})).json()
