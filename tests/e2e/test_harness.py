"""The end-to-end harness itself, against a real Label Studio 1.23.

If these fail, every other e2e test is meaningless: they prove that the
server starts from the template on a free port, that both kinds of token
work, that the API helpers speak the real field names, and that stop()
leaves nothing behind.  The real backend's own end-to-end tests are in
``test_loop.py``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from harness.label_studio import LabelStudio, LabelStudioError

pytestmark = pytest.mark.e2e

TEXT_CHOICES = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>
"""


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


@pytest.fixture(scope="module")
def ls() -> Iterator[LabelStudio]:
    with LabelStudio() as server:
        yield server


def test_version_is_1_23(ls: LabelStudio) -> None:
    r = httpx.get(f"{ls.url}/api/version", timeout=10)
    assert r.status_code == 200
    assert r.json()["release"].startswith("1.23.")
    assert ls.version.startswith("1.23.")
    assert ls.url.startswith("http://127.0.0.1:")
    assert ls.log_path is not None and ls.log_path.exists()


def test_legacy_token_works(ls: LabelStudio) -> None:
    with ls.client() as c:
        assert c.get("/api/projects/").status_code == 200
        assert c.get("/api/current-user/whoami").json()["email"] == ls.username
    assert httpx.get(f"{ls.url}/api/projects/", timeout=10).status_code == 401
    bad = httpx.get(f"{ls.url}/api/projects/", headers={"Authorization": "Token nope-nope"}, timeout=10)
    assert bad.status_code == 401


def test_personal_access_token_refreshes_into_bearer(ls: LabelStudio) -> None:
    pat = ls.pat
    assert pat == ls.pat  # created once, then cached
    r = httpx.post(f"{ls.url}/api/token/refresh/", json={"refresh": pat}, timeout=10)
    assert r.status_code == 200, r.text
    access = r.json()["access"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert httpx.get(f"{ls.url}/api/projects/", headers=bearer, timeout=10).status_code == 200
    # the refresh token itself is no Bearer token
    assert httpx.get(f"{ls.url}/api/projects/", headers={"Authorization": f"Bearer {pat}"},
                     timeout=10).status_code == 401
    assert httpx.get(f"{ls.url}/api/projects/", headers={"Authorization": f"Bearer {ls.access_token()}"},
                     timeout=10).status_code == 200


def test_second_pat_revokes_the_first(ls: LabelStudio) -> None:
    """LS allows one live PAT per user (409); the harness revokes and re-creates."""
    old = ls.pat
    ls._pat = None  # as if another session had made the live one
    new = ls.pat
    assert new != old
    assert httpx.post(f"{ls.url}/api/token/refresh/", json={"refresh": old}, timeout=10).status_code == 401
    assert httpx.post(f"{ls.url}/api/token/refresh/", json={"refresh": new}, timeout=10).status_code == 200


def test_project_import_next_annotate(ls: LabelStudio) -> None:
    project = ls.create_project("harness", TEXT_CHOICES)
    assert project["id"] and project["title"] == "harness"
    ids = ls.import_tasks(project["id"], [{"data": {"text": t}} for t in ("good", "bad", "meh")])
    assert len(ids) == 3 and len(set(ids)) == 3
    task = ls.next_task(project["id"])
    assert task is not None and task["id"] in ids
    assert task["data"]["text"] in ("good", "bad", "meh")
    ann = ls.annotate(task["id"], choice("pos"))
    listed = ls.annotations(task["id"])
    assert [a["id"] for a in listed] == [ann["id"]]
    assert listed[0]["result"][0]["value"]["choices"] == ["pos"]
    assert ls.project(project["id"])["num_tasks_with_annotations"] == 1
    assert ls.predictions(task["id"]) == []
    with pytest.raises(LabelStudioError, match="404"):
        ls.project(10**6)


def _busy_port_with_a_free_successor() -> socket.socket:
    """A listening socket on a port whose successor is free, below Linux's ephemeral range (32768+).

    Label Studio tries exactly one other port (port + 1).  Next to a port from
    the ephemeral range (what binding port 0 gives), client connections of
    other processes come and go, and one once held the successor (seen in CI).
    """
    for port in range(20000 + os.getpid() % 2000 * 2, 32000, 2):
        busy = socket.socket()
        try:
            busy.bind(("127.0.0.1", port))
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))  # free: closed again for Label Studio to take
        except OSError:
            busy.close()
            continue
        busy.listen()
        return busy
    raise RuntimeError("no free pair of ports between 20000 and 32000")


def test_busy_port_is_detected_and_stop_leaves_nothing() -> None:
    """LS silently moves to port+1 when its port is busy; the harness must find the real one."""
    with _busy_port_with_a_free_successor() as busy:
        taken = busy.getsockname()[1]
        server = LabelStudio(port=taken)
        server.start()
        try:
            pid, port, data_dir = server.pid, server.port, server.data_dir
            assert port != taken and server.url.endswith(f":{port}")
            assert httpx.get(f"{server.url}/api/version", timeout=10).status_code == 200
        finally:
            server.stop()
    assert pid is not None and data_dir is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not Path(data_dir).exists()
    server.stop()  # idempotent


def test_postgresql_runs_get_a_fresh_database_dropped_at_stop() -> None:
    """Two servers on PostgreSQL at once: separate databases made from the migrated template, both dropped."""
    from harness.label_studio import pg_run

    with LabelStudio(db="postgresql") as a, LabelStudio(db="postgresql") as b:
        assert a.database != b.database
        dbs = set(pg_run("SELECT datname FROM pg_database").split())
        assert {a.database, b.database} <= dbs
        # Each is Label Studio's own: the admin logs in with the template's token, and projects don't leak.
        pid = a.create_project("only in a", TEXT_CHOICES)["id"]
        assert [p["id"] for p in a._api.get("/api/projects/").json()["results"]] == [pid]
        assert b._api.get("/api/projects/").json()["results"] == []
        names = (a.database, b.database)
    assert not set(names) & set(pg_run("SELECT datname FROM pg_database").split())
