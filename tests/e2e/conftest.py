"""Fixtures of the end-to-end tests: a real Label Studio, the real backend and a real worker."""

from __future__ import annotations

import pytest

from harness.label_studio import LabelStudio
from harness.stack import (  # noqa: F401  (re-exported)
    CONFIG,
    E2E_DB,
    E2E_REDIS_URL,
    REPO,
    Stack,
    choice,
    make_project,
    synced,
    wait_for,
)


@pytest.fixture(scope="module")
def ls():
    with LabelStudio(db=E2E_DB) as server:
        yield server


@pytest.fixture(scope="module")
def stack(ls, tmp_path_factory):
    s = Stack(ls, tmp_path_factory.mktemp("stack")).start()
    yield s
    s.stop()
    s.cleanup_redis()


def label_all_tasks(ls, stack, page, pid: int):
    """Once Label Studio holds the cold-start version, *Label All Tasks* in the browser: the open stream."""
    from harness.ui import LabelStream

    wait_for(lambda: synced(ls, stack, pid, 0), 120, what="the cold-start version in Label Studio")
    stream = LabelStream(page, ls.url, pid)
    stream.open()
    return stream


def report_browser_run(name: str, counts: dict, api_errors: list[str], started: float) -> None:
    """Write a browser test's counts beside its screenshots, print them, and fail on any Label Studio API error."""
    import json
    import time

    counts["runtime_s"] = round(time.monotonic() - started)
    out = REPO / "test-output" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}-counts.json").write_text(json.dumps({**counts, "api_errors": api_errors}, indent=1))
    print(f"browser {name} e2e:", json.dumps(counts))
    assert not api_errors, api_errors
