"""Label Studio 1.23.2's own web UI, driven in Debian's headless Chromium with Playwright.

Shared by the browser test (``test_browser.py``) and ``scripts/demo_browser.py``.
What it relies on, found in Label Studio 1.23.2's UI:

- Login is a plain form (``input[name=email]``, ``input[name=password]``).
- *Settings -> Model -> Connect Model* opens a form with ``input[name=title]``,
  ``input[name=url]`` and *Validate and Save*; the card then says *Connected*.
- *Label All Tasks* and every Submit fetch the next task with
  ``POST /api/dm/actions?id=next_task``, whose answer is the task with the
  predictions shown; a Submit is ``POST /api/tasks/<id>/annotations`` with
  the shown prediction's id as ``parent_prediction``.
- A single-choice ``<Choices>`` renders as checkboxes named after the choice.
- A refused submit shows a toast containing "not saved".
"""

from __future__ import annotations

import json
import re

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_ANNOTATION_POST = re.compile(r"/api/tasks/\d+/annotations")
NOT_SAVED = re.compile("not saved", re.I)


class SubmitRefused(AssertionError):
    """Label Studio did not save an annotation submitted in its UI."""


def launch(pw):
    """Debian's chromium, never a downloaded browser."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def is_next_task(r) -> bool:
    return "/api/dm/actions" in r.url and "next_task" in r.url and r.request.method == "POST"


def is_annotation_post(r) -> bool:
    return bool(_ANNOTATION_POST.search(r.url)) and r.request.method == "POST"


def login(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/projects|/$"))


def connect_model(page, url: str, pid: int, backend_url: str, title: str = "active learning") -> None:
    """Settings -> Model -> Connect Model, as a user does it; waits for *Connected*."""
    page.goto(f"{url}/projects/{pid}/settings/ml")
    page.locator("button", has_text="Connect Model").click()
    page.fill("input[name=title]", title)
    page.fill("input[name=url]", backend_url)
    page.locator("button[type=submit]", has_text="Validate and Save").click()
    page.get_by_text("Connected", exact=True).wait_for(timeout=30_000)


def connected_page(pw, ls, pid: int, backend_url: str, viewport: dict) -> tuple[object, object, list[str]]:
    """A browser logged in to Label Studio with the backend connected to project ``pid`` in its UI.

    Returns the browser (close it), the page, and the list every Label
    Studio API answer of 400 or more is appended to (a test asserts it stays empty).
    """
    browser = launch(pw)
    page = browser.new_page(viewport=viewport)
    api_errors: list[str] = []
    page.on("response", lambda r: "/api/" in r.url and r.status >= 400
            and api_errors.append(f"{r.request.method} {r.url.replace(ls.url, '')} -> {r.status}"))
    try:
        login(page, ls.url, ls.username, ls.password)
        connect_model(page, ls.url, pid, backend_url)
    except BaseException:
        browser.close()
        raise
    return browser, page, api_errors


class LabelStream:
    """*Label All Tasks* in the Data Manager, then one task after another through Submit."""

    def __init__(self, page, url: str, pid: int) -> None:
        self.page, self.url, self.pid = page, url, pid
        self.task: dict = {}
        self.saved: dict = {}  # the annotation Label Studio saved on the last Submit

    def open(self) -> dict:
        self.page.goto(f"{self.url}/projects/{self.pid}/data")
        with self.page.expect_response(is_next_task, timeout=60_000) as first:
            self.page.locator("button", has_text="Label All Tasks").click()
        self.task = first.value.json()
        return self.task

    def wait_shown(self, text: str, ready: str = "input[type=checkbox]") -> None:
        """Until the served task's text is on screen, and a control (the ``ready`` selector) is drawn."""
        self.page.locator(ready).first.wait_for(state="attached", timeout=30_000)
        self.page.get_by_text(text.strip()[:30], exact=False).first.wait_for(timeout=30_000)

    def predicted(self) -> list[str]:
        """The choices of the predictions Label Studio served with the task."""
        return [c for p in self.task.get("predictions") or [] for item in p["result"]
                for c in item["value"].get("choices", [])]

    def checked(self, choice: str) -> bool:
        return self.page.is_checked(f"input[name='{choice}']")

    def choose(self, choice: str) -> None:
        if not self.checked(choice):
            self.page.locator("label", has_text=choice).first.click()
        if not self.checked(choice):
            raise AssertionError(f"clicking {choice!r} did not check it")

    def submit(self) -> dict:
        """Submit; returns the body the UI sent.  Raises ``SubmitRefused`` on a non-2xx or a "not saved"."""
        with self.page.expect_response(is_next_task, timeout=60_000) as nxt:
            with self.page.expect_response(is_annotation_post, timeout=60_000) as ann:
                self.page.locator("button", has_text="Submit").first.click()
            if not ann.value.ok:
                raise SubmitRefused(f"task {self.task.get('id')}: {ann.value.status} {ann.value.text()[:500]}")
        sent = json.loads(ann.value.request.post_data or "{}")
        self.saved = ann.value.json()
        self.task = nxt.value.json()
        if self.page.get_by_text(NOT_SAVED).count():
            raise SubmitRefused(f"Label Studio shows 'not saved' after task {sent.get('task')}")
        return sent


class ImageView:
    """The image of an ``<Image>`` task in the labeling view (found in Label Studio 1.23.2's UI).

    The UI fetches the task's link (``/data/upload/...``, with the session
    cookie), and shows it as an ``<img>`` whose ``src`` is a ``blob:`` URL
    made from that answer, one per task.  Construct it before the first task
    opens: it records the status of every ``/data/upload/`` file the page
    loads.
    """

    def __init__(self, page) -> None:
        self.page = page
        self.loads: dict[str, int] = {}  # path -> last HTTP status
        self.shown: list[str] = []  # blob: URLs shown so far, oldest first
        page.on("response", self._seen)

    def _seen(self, r) -> None:
        if "/data/upload/" in r.url:
            from urllib.parse import urlsplit

            self.loads[urlsplit(r.url).path] = r.status

    def wait_shown(self, link: str, timeout: float = 30_000) -> dict:
        """Until ``link`` (a task's ``/data/upload/...``) was loaded and a new image is on screen.

        Returns the image's natural and displayed size; raises if Label Studio answered
        the file with an error or nothing new was decoded in time.
        """
        from urllib.parse import urlsplit

        path = urlsplit(link).path
        deadline = self.page.evaluate("Date.now()") + timeout
        while path not in self.loads:
            if self.page.evaluate("Date.now()") > deadline:
                raise AssertionError(f"the page never loaded {path}")
            self.page.wait_for_timeout(100)
        if self.loads[path] != 200:
            raise AssertionError(f"Label Studio answered {path} with {self.loads[path]}")
        handle = self.page.wait_for_function(
            """(old) => [...document.querySelectorAll('img')].find(i => i.src.startsWith('blob:') && i.complete
                   && i.naturalWidth > 0 && i.width >= 100 && !old.includes(i.src))""",
            arg=self.shown, timeout=timeout)
        info = handle.evaluate("i => ({src: i.src, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,"
                               " width: i.width, height: i.height})")
        self.shown.append(info["src"])
        return info

    def checked_choices(self) -> list[str]:
        """The names of the checked choices (a ``<Choices>`` renders checkboxes named after them)."""
        return self.page.evaluate(
            "() => [...document.querySelectorAll('input[type=checkbox]')].filter(i => i.checked).map(i => i.name)")
