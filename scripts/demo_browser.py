"""Label tasks of the running `make demo` project in Label Studio's own UI (headless Chromium).

    .venv/bin/python scripts/demo_browser.py --tasks 30

What a new user does after `make demo`: log in, open the demo project, press
*Label All Tasks*, read each review for a few seconds, click the right answer
(the review's real label) and Submit.  Every error counts: a refused submit,
a "not saved" toast, and any Label Studio API call the page makes that
answers 4xx/5xx.  Prints the counts, saves screenshots to run/demo-browser/,
and exits 1 if there was any error.  Uses the demo's ports (DEMO_LS_PORT,
default 8080) and the admin of Label Studio's data-dir template.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from backend.simulation.datasets import load_dataset  # noqa: E402
from harness.label_studio import _template_meta, template_dir  # noqa: E402
from harness.ui import LabelStream, SubmitRefused, launch, login  # noqa: E402
from scripts.demo import TITLE  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--think", type=float, default=3.0, help="seconds spent on each task")
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('DEMO_LS_PORT', '8080')}")
    ap.add_argument("--out", type=Path, default=REPO / "run" / "demo-browser")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = _template_meta(template_dir())
    ds = load_dataset("rotten-tomatoes")
    truth = dict(zip(ds.texts, ds.labels))
    counts = {"submits": 0, "refused": 0, "api_errors": 0, "with_prediction": 0, "preselected": 0}
    errors: list[str] = []
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def on_response(r) -> None:
            if "/api/" in r.url and r.status >= 400:
                counts["api_errors"] += 1
                errors.append(f"{r.request.method} {r.url.replace(args.url, '')} -> {r.status}")
        page.on("response", on_response)
        login(page, args.url, meta["username"], meta["password"])
        projects = page.request.get(f"{args.url}/api/projects/?page_size=100").json()["results"]
        pid = next(p["id"] for p in projects if p["title"] == TITLE)
        stream = LabelStream(page, args.url, pid)
        stream.open()
        try:
            for i in range(args.tasks):
                text = stream.task["data"]["text"]
                stream.wait_shown(text)
                predicted = stream.predicted()
                if predicted:
                    counts["with_prediction"] += 1
                    page.wait_for_timeout(300)
                    counts["preselected"] += all(stream.checked(c) for c in predicted)
                if i in (0, args.tasks - 1):
                    page.screenshot(path=str(args.out / f"labeling-{i + 1:02d}.png"))
                time.sleep(args.think)
                stream.choose(truth[text])
                counts["submits"] += 1
                try:
                    stream.submit()
                except SubmitRefused as exc:  # the stream stops here, as it would for a user
                    counts["refused"] += 1
                    errors.append(str(exc))
                    page.screenshot(path=str(args.out / f"refused-{i + 1:02d}.png"))
                    break
        finally:
            browser.close()
    counts["runtime_s"] = round(time.monotonic() - t0)
    print(json.dumps(counts))
    for e in errors:
        print("error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
