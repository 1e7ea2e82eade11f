"""Each attack of the security review (issue 13), replayed against the real processes.

Every test is named after the attack it replays and asserts that the attack
fails.  The backend runs as ``al-backend serve`` in a subprocess and the
worker as ``al-backend worker --burst``, both on the tests' own Redis
database; "attacker" and "Label Studio" are real HTTP servers on loopback
that record every request they get.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import PREFIX, QUEUE, TEST_REDIS_URL, annotation_event, predict_body, setup_body

REPO = Path(__file__).resolve().parents[2]
AL_BACKEND = str(Path(sys.executable).with_name("al-backend"))
ENV_KEY = "env-secret-key-4d1f"  # LABEL_STUDIO_API_KEY in the attacks below
SETUP_TOKEN = "setup-token-91ab"


# -- real HTTP servers that record what they receive ---------------------------
class Recorder(BaseHTTPRequestHandler):
    """Answers every request with a small body and records ``(method, path, headers)``."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        body = self.server.body_for(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server naming

    def log_message(self, *args) -> None:
        pass


class RecordingServer:
    def __init__(self, body_for=lambda path: b"great lovely film") -> None:
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.srv.seen = []  # type: ignore[attr-defined]
        self.srv.body_for = body_for  # type: ignore[attr-defined]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    @property
    def seen(self) -> list[tuple[str, str, dict]]:
        return self.srv.seen  # type: ignore[attr-defined]

    def headers_text(self) -> str:
        return " ".join(f"{k}: {v}" for _, _, h in self.seen for k, v in h.items())

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def attacker():
    srv = RecordingServer()
    yield srv
    srv.close()


@pytest.fixture
def label_studio():
    srv = RecordingServer()
    yield srv
    srv.close()


# -- the real processes --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER",
                        "BASIC_AUTH_PASS", "AL_WEBHOOK_TOKEN", "AL_ALLOW_INSECURE", "AL_FETCH_ALLOW_HOSTS")}
    env.update(REDIS_URL=TEST_REDIS_URL, AL_KEY_PREFIX=PREFIX, AL_QUEUE=QUEUE, AL_MODEL_POLL_INTERVAL="0",
               AL_WORKER_NICE="0", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Served:
    """``al-backend serve`` in a subprocess; its log is kept for assertions."""

    def __init__(self, env: dict[str, str], args: list[str], tmp: Path) -> None:
        self.port = free_port()
        self.log_path = tmp / f"serve-{self.port}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([AL_BACKEND, "serve", "--port", str(self.port), "--workers", "1", *args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def wait_up(self, timeout: float = 60) -> "Served":
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"al-backend serve exited {self.proc.returncode}: {self.output()}")
            try:
                if self.http.get("/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"al-backend serve did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def serve(redis_conn, tmp_path):
    started: list[Served] = []

    def start(env: dict[str, str], *args: str, wait: bool = True) -> Served:
        s = Served(env, list(args), tmp_path)
        started.append(s)
        return s.wait_up() if wait else s

    yield start
    for s in started:
        s.stop()


def run_worker_process(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``al-backend worker --burst``: every queued job runs in RQ's real forking worker."""
    return subprocess.run([AL_BACKEND, "worker", "--burst"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


# -- issue 13 item 1: the Label Studio API key leak ----------------------------
def test_attack_env_key_sent_to_setup_hostname_fails(serve, attacker):
    """LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL unset, an unauthenticated /setup naming the attacker.

    Before: the worker (and /predict's URL fetcher) paired the environment's
    key with /setup's hostname and sent ``Token <key>`` to the attacker.
    """
    env = base_env(LABEL_STUDIO_API_KEY=ENV_KEY, AL_FETCH_ALLOW_HOSTS="127.0.0.1")
    backend = serve(env)
    body = setup_body()
    body["hostname"], body["access_token"] = attacker.url, ""
    assert backend.http.post("/setup", json=body).status_code == 200
    done = run_worker_process(env)
    assert done.returncode == 0, done.stderr[-3000:]
    backend.http.post("/predict", json=predict_body([(5, "/data/upload/1/a.txt"), (6, f"{attacker.url}/b.txt")]))
    assert ENV_KEY not in attacker.headers_text()
    assert ENV_KEY not in backend.output() + done.stderr + done.stdout
    status = backend.http.get("/status/1").json()
    assert "LABEL_STUDIO_URL" in status["credentials_warning"] and ENV_KEY not in str(status)
    page = backend.http.get("/dashboard/1").text  # the lead sees it too
    assert 'id="warning"' in page and "LABEL_STUDIO_URL is not" in page and ENV_KEY not in page
    assert "WARNING" in backend.output() and "LABEL_STUDIO_URL is not" in backend.output()


def test_attack_setup_token_mixed_with_label_studio_url_fails(serve, attacker, label_studio):
    """Both pairs set and disagreeing: each key goes only to its own host, and the log says so."""
    env = base_env(LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=ENV_KEY,
                   AL_FETCH_ALLOW_HOSTS="127.0.0.1")
    backend = serve(env)
    body = setup_body()
    body["hostname"], body["access_token"] = attacker.url, SETUP_TOKEN
    assert backend.http.post("/setup", json=body).status_code == 200
    done = run_worker_process(env)
    assert done.returncode == 0, done.stderr[-3000:]
    backend.http.post("/predict", json=predict_body([(5, "/data/upload/1/a.txt"), (6, f"{attacker.url}/b.txt")]))
    assert ENV_KEY not in attacker.headers_text() and SETUP_TOKEN not in attacker.headers_text()
    assert SETUP_TOKEN not in label_studio.headers_text()
    assert f"Token {ENV_KEY}" in label_studio.headers_text()  # the worker did talk to Label Studio
    warning = backend.http.get("/status/1").json()["credentials_warning"]
    assert "is not the hostname" in warning or "LABEL_STUDIO_URL is" in warning
    assert SETUP_TOKEN not in backend.output() and ENV_KEY not in backend.output()


def test_attack_read_stored_tokens_through_routes_fails(client):
    """The /setup access token is stored in Redis; no route answers it back."""
    body = setup_body()
    body["hostname"], body["access_token"] = "http://ls.example:8080", SETUP_TOKEN
    assert client.post("/setup", json=body).status_code == 200
    for route in client.app.routes:
        if "GET" not in getattr(route, "methods", ()) or route.path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            continue
        path = route.path.replace("{project}", "1")
        r = client.get(path)
        assert SETUP_TOKEN not in r.text, path


# -- issue 13 item 5: code from Redis -------------------------------------------
class _Planted:
    """Unpickling this creates the marker file: proof that code from Redis ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_pickled_job(r, marker: Path, job_id: str = "refresh-1-planted0pickle") -> str:
    """A job hash whose ``data`` and ``meta`` are pickles, queued and in the failed registry."""
    import pickle
    import zlib

    payload = pickle.dumps(_Planted(marker))
    r.hset(f"rq:job:{job_id}", mapping={
        "data": zlib.compress(payload), "meta": payload, "status": "queued", "origin": QUEUE,
        "description": "planted", "created_at": "2026-11-30T00:00:00.000000Z",
        "enqueued_at": "2026-11-30T00:00:00.000000Z", "timeout": 60,
    })
    r.rpush(f"rq:queue:{QUEUE}", job_id)
    r.sadd("rq:queues", f"rq:queue:{QUEUE}")
    r.zadd(f"rq:failed:{QUEUE}", {job_id: time.time() + 3600})
    return job_id


def test_attack_pickle_planted_in_redis_runs_nothing(serve, redis_conn, tmp_path):
    """A pickle in a job hash: /status lists the job, the worker takes it, and no code runs."""
    marker = tmp_path / "pickle-ran"
    env = base_env()
    backend = serve(env)
    assert backend.http.post("/setup", json=setup_body()).status_code == 200
    job_id = plant_pickled_job(redis_conn, marker)
    status = backend.http.get("/status/1")
    assert status.status_code == 200, status.text
    listed = {j["id"]: j for jobs in status.json()["jobs"].values() for j in jobs}
    assert listed[job_id]["job"] == "refresh_project" and listed[job_id]["description"] == "planted"
    assert not marker.exists(), "/status unpickled a job planted in Redis"
    done = run_worker_process(env)
    assert not marker.exists(), "the worker unpickled a job planted in Redis"
    assert done.returncode == 0, done.stderr[-3000:]
    # The legitimate job /setup queued still ran (as JSON) beside the planted one.
    assert redis_conn.zcard(f"rq:finished:{QUEUE}") >= 1


# -- issue 13 item 3: open by default (and the small items: half-set auth, /docs) -----
def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port``, from the kernel's own tables."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, p = local.partition(":")
            if state == "0A" and int(p, 16) == port:
                found.add(addr if width == 32 else socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def test_attack_open_network_port_by_default_fails(serve):
    """``serve`` with no --host binds loopback only, not every interface."""
    backend = serve(base_env())
    assert listening_addresses(backend.port) == {"127.0.0.1"}


def test_attack_serve_all_interfaces_without_auth_is_refused(serve):
    refused = serve(base_env(), "--host", "0.0.0.0", wait=False)
    assert refused.proc.wait(60) == 2
    assert "refusing to serve 0.0.0.0 without authentication" in refused.output()
    # The explicit opt-in, or basic auth, lets it serve.
    assert serve(base_env(AL_ALLOW_INSECURE="1"), "--host", "0.0.0.0").proc.poll() is None
    secured = serve(base_env(BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pw-7c1e"), "--host", "0.0.0.0")
    assert secured.http.get("/versions").status_code == 401


@pytest.mark.parametrize("half", [{"BASIC_AUTH_PASS": "pw-only-5e2a"}, {"BASIC_AUTH_USER": "user-only"}])
def test_attack_half_set_auth_silently_off_is_refused(serve, half):
    proc = serve(base_env(**half), wait=False)
    assert proc.proc.wait(60) == 2
    out = proc.output()
    assert "BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together" in out
    assert "pw-only-5e2a" not in out


def test_attack_unauthenticated_requests_with_auth_on_fail(serve, attacker):
    """With auth on, every operation (docs and schema included) needs it; /health stays open for probes."""
    backend = serve(base_env(BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pw-7c1e", AL_WEBHOOK_TOKEN="hook-3b9d"))
    assert backend.http.get("/openapi.json").status_code == 401
    assert backend.http.get("/docs").status_code == 401
    schema = backend.http.get("/openapi.json", auth=("ls", "pw-7c1e")).json()
    assert backend.http.get("/docs", auth=("ls", "pw-7c1e")).status_code == 200
    body = setup_body()
    body["hostname"] = attacker.url
    checked = 0
    for path, ops in schema["paths"].items():
        for method in ops:
            url = path.replace("{project}", "1")
            r = backend.http.request(method.upper(), url, json=body if method == "post" else None)
            if path in ("/health", "/"):
                assert r.status_code == 200
            else:
                assert r.status_code == 401, (method, path, r.status_code)
                checked += 1
    assert checked >= 8
    assert backend.http.post("/webhook?token=wrong", json={"action": "START_TRAINING"}).status_code == 401
    assert attacker.seen == []


# -- issue 13 item 4: SSRF, unbounded bodies, no deadline -----------------------
class Hostile(BaseHTTPRequestHandler):
    """``/huge``: 1 GB chunked with no Content-Length; ``/drip``: a byte a second, forever;
    ``/redirect``: 302 to ``server.target``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server naming
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        try:
            if self.path.startswith("/huge"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"a" * 2**20
                for _ in range(1024):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif self.path.startswith("/drip"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(1)
            else:
                self.send_response(302)
                self.send_header("Location", self.server.target)  # type: ignore[attr-defined]
                self.send_header("Content-Length", "0")
                self.end_headers()
        except OSError:
            pass  # the backend hung up, as it should

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hostile(attacker):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    srv.hits, srv.target = [], f"{attacker.url}/metadata"  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def set_up_with_hostname(backend: "Served", url: str) -> None:
    """A project whose /setup names ``url`` as Label Studio: the old code then fetched task URLs."""
    body = setup_body()
    body["hostname"], body["access_token"] = url, "t"
    assert backend.http.post("/setup", json=body).status_code == 200


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_attack_ssrf_to_loopback_private_and_metadata_fails(serve, attacker, redis_conn):
    """Task texts naming loopback, private and link-local addresses are never fetched, and every
    refusal answers exactly like a failed fetch (the score does not tell which)."""
    backend = serve(base_env())
    body = setup_body()
    body["hostname"], body["access_token"] = attacker.url, "t"  # /setup names a loopback host
    assert backend.http.post("/setup", json=body).status_code == 200
    port = attacker.url.rsplit(":", 1)[1]
    urls = [f"{attacker.url}/a.txt", "/data/upload/1/a.txt", f"http://localhost:{port}/b.txt",
            f"http://[::ffff:127.0.0.1]:{port}/c.txt", "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x", f"http://127.0.0.1:{TEST_REDIS_URL.rsplit(':', 1)[1].split('/')[0]}/",
            "http://127.0.0.1:1/unreachable"]
    tasks = [(i + 1, u) for i, u in enumerate(urls)]
    answer = backend.http.post("/predict", json=predict_body(tasks))
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert attacker.seen == []
    assert {(str(r["result"]), r["score"]) for r in results} == {("[]", results[0]["score"])}
    assert "169.254" not in answer.text
    # The worker, which featurises the pool these tasks joined, refuses them too.  (Its Label
    # Studio API calls do go to /setup's hostname, with /setup's own token: see the README.)
    done = run_worker_process(base_env())
    assert done.returncode == 0
    assert [path for _, path, _ in attacker.seen if not path.startswith("/api/")] == []


def test_attack_unbounded_body_fails(serve, hostile):
    """A 1 GB chunked body (no Content-Length) is cut at AL_FETCH_MAX_BYTES: the process stays small."""
    srv, url = hostile
    backend = serve(base_env(AL_FETCH_ALLOW_HOSTS="127.0.0.1", AL_FETCH_MAX_BYTES=str(2 * 2**20)))
    set_up_with_hostname(backend, url)
    before = peak_rss_mb(backend.proc.pid)
    t0 = time.monotonic()
    r = backend.http.post("/predict", json=predict_body([(1, f"{url}/huge.txt")]))
    assert r.status_code == 200 and r.json()["results"][0]["result"] == []
    assert srv.hits == ["/huge.txt"]
    assert peak_rss_mb(backend.proc.pid) - before < 100, "the body was read past the cap"
    assert time.monotonic() - t0 < 30


def test_attack_drip_server_holds_request_fails(serve, hostile):
    """A server that drips a byte a second is cut off at the total deadline, not held for minutes."""
    srv, url = hostile
    backend = serve(base_env(AL_FETCH_ALLOW_HOSTS="127.0.0.1", AL_FETCH_TIMEOUT="2"))
    set_up_with_hostname(backend, url)
    t0 = time.monotonic()
    r = backend.http.post("/predict", json=predict_body([(1, f"{url}/drip.txt"), (2, f"{url}/drip2.txt")]))
    elapsed = time.monotonic() - t0
    assert r.status_code == 200 and [x["result"] for x in r.json()["results"]] == [[], []]
    assert elapsed < 2 * 2 * 1.25 + 3, f"held {elapsed:.1f} s"


def test_attack_redirect_to_internal_address_fails(serve, hostile, attacker):
    """An allowed host answering 302 to an internal address: the redirect is not followed."""
    srv, url = hostile
    backend = serve(base_env(AL_FETCH_ALLOW_HOSTS="127.0.0.1"))
    set_up_with_hostname(backend, url)
    r = backend.http.post("/predict", json=predict_body([(1, f"{url}/redirect.txt")]))
    assert r.status_code == 200 and r.json()["results"][0]["result"] == []
    assert srv.hits == ["/redirect.txt"] and attacker.seen == []


def test_attack_dns_rebinding_fails(settings, attacker):
    """The address checked is the address connected to: a name is resolved once, and a public-only
    host that resolves to loopback is refused."""
    from backend.labelstudio.fetch import SafeFetcher
    from backend.labelstudio.task_data import TaskDataError
    from backend.settings import Settings

    port = int(attacker.url.rsplit(":", 1)[1])
    calls = []

    def resolve(host, p, **kw):  # "files.internal" exists only here, not in any DNS
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]

    pinned = SafeFetcher(Settings(AL_FETCH_ALLOW_HOSTS="files.internal"), resolve=resolve)
    assert pinned.fetch(f"http://files.internal:{port}/t.txt", None) == "great lovely film"
    assert calls == ["files.internal"]
    assert attacker.seen[-1][2]["Host"] == f"files.internal:{port}"  # connected to the checked IP
    rebinding = SafeFetcher(Settings(AL_FETCH_ALLOW_HOSTS="*"),
                            resolve=lambda h, p, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))])
    with pytest.raises(TaskDataError) as refused:
        rebinding.fetch(f"http://rebind.example:{port}/t.txt", None)
    with pytest.raises(TaskDataError) as failed:
        pinned.fetch("http://files.internal:1/t.txt", None)  # nothing listens: a failure, not a refusal
    assert str(refused.value) == str(failed.value)
    assert len(attacker.seen) == 1


# -- issue 13 item 6: the smaller ones in this helper's files --------------------
def test_attack_chunked_body_over_the_cap_fails(serve):
    """A body with no Content-Length (chunked) over the cap gets 413, counted while it streams."""
    backend = serve(base_env(AL_MAX_BODY_BYTES=str(2**20)))
    sent = 0

    def chunks():
        nonlocal sent
        head = b'{"tasks": [{"id": 1, "data": {"text": "'
        yield head
        sent += len(head)
        for _ in range(200):  # 200 MB if nobody stops it
            yield b"a" * 2**20
            sent += 2**20

    try:
        r = backend.http.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert "request body over 1 MB" in r.json()["detail"]
    except httpx.WriteError:
        pass  # the server hung up on the rest of the body, after refusing it
    assert sent < 50 * 2**20
    assert backend.http.get("/health").status_code == 200
    # A declared Content-Length over the cap is refused before the body is read.
    r = backend.http.post("/predict", content=b"x" * (2**20 + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_attack_lone_surrogate_in_task_data_fails(serve):
    """``\\ud800`` in a task's text, in /predict and in webhooks, is a per-task matter, never a 500."""
    backend = serve(base_env())
    assert backend.http.post("/setup", json=setup_body()).status_code == 200
    body = json.dumps(predict_body([(1, "bad \ud800 text"), (2, "fine text")]))
    assert "\\ud800" in body
    r = backend.http.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    event = json.dumps(annotation_event(1, 1, "x \udfff y", "pos"))
    r = backend.http.post("/webhook", content=event, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert backend.http.get("/status/1").json()["annotations"] == 1


def test_attack_many_dead_urls_stall_the_worker_fails(settings, redis_conn, hostile):
    """A pool of texts on a host that never answers costs a few deadlines, not one per task."""
    from backend.labelstudio.fetch import BREAKER, SafeFetcher
    from backend.labelstudio.task_data import TaskDataError
    from backend.settings import Settings

    srv, url = hostile
    fetcher = SafeFetcher(Settings(AL_FETCH_ALLOW_HOSTS="127.0.0.1", AL_FETCH_TIMEOUT="0.5"))
    fetch = fetcher.for_project(dict)
    t0 = time.monotonic()
    for i in range(40):
        with pytest.raises(TaskDataError):
            fetch(f"{url}/drip-{i}.txt")
    assert len(srv.hits) == BREAKER and time.monotonic() - t0 < BREAKER * 0.5 * 1.25 + 5
