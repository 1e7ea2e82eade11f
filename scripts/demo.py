"""`make demo`: Label Studio with three demo projects that order themselves as you annotate.

Starts (or reuses) everything on this machine: Redis (made sure of by make),
Label Studio 1.23.2 with an admin user (installed from PyPI into .cache/ the
first time, data kept in run/label-studio/), the backend and a worker. Creates
a text project with 2,000 real movie-review snippets, an image project
with 1,000 Fashion-MNIST images (uploaded as PNG files, as a user imports
them) and a named-entity project with 1,000 CoNLL-2003 news sentences
(Label Studio's *Named Entity Recognition* config), connects the backend to
all three, waits for their first queues, prints where to log in and what to
try. Ctrl-C stops everything it started; a
second run reuses the data and the projects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.simulation.datasets import FASHION_MNIST_CLASSES, load_dataset, load_fashion_mnist  # noqa: E402
from harness.label_studio import FAST_IMPORT_FLAG, LabelStudio  # noqa: E402

TITLE = "Active learning demo: movie reviews"
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text" choice="single">'
          '<Choice value="fresh"/><Choice value="rotten"/></Choices></View>')
IMAGE_TITLE = "Active learning demo: clothing images"
IMAGE_CONFIG = ('<View><Image name="image" value="$image"/><Choices name="kind" toName="image" choice="single">'
                + "".join(f'<Choice value="{c}"/>' for c in FASHION_MNIST_CLASSES) + "</Choices></View>")
IMAGES = 1_000
NER_TITLE = "Active learning demo: named entities"
NER_LABELS = ("PER", "ORG", "LOC", "MISC")
# Label Studio's *Named Entity Recognition* template, with its label colours.
NER_CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER" background="red"/>'
              '<Label value="ORG" background="darkorange"/><Label value="LOC" background="orange"/>'
              '<Label value="MISC" background="green"/></Labels><Text name="text" value="$text"/></View>')
SENTENCES = 1_000
LS_PORT = int(os.environ.get("DEMO_LS_PORT", "8080"))
BACKEND_PORT = int(os.environ.get("PORT", "9090"))
RUN = REPO / "run"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}; logs are in {RUN}")
        time.sleep(0.5)
    return value


def spawn(name: str, args: list[str], env: dict) -> subprocess.Popen:
    log = open(RUN / f"{name}.log", "ab")
    return subprocess.Popen([str(REPO / ".venv" / "bin" / "al-backend"), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)


def _existing(ls: LabelStudio, title: str) -> int | None:
    with ls.client() as c:
        found = [p for p in c.get("/api/projects/", params={"page_size": 100}).json()["results"] if p["title"] == title]
    return found[0]["id"] if found else None


def demo_project(ls: LabelStudio, backend_url: str) -> int:
    pid = _existing(ls, TITLE)
    if pid is not None:
        return pid
    ds = load_dataset("rotten-tomatoes")
    pid = ls.create_project(TITLE, CONFIG)["id"]
    ls.import_tasks(pid, [{"text": t} for t in ds.texts[:2000]])
    ls.connect_ml_backend(pid, backend_url, title="active learning")
    return pid


def image_file(i: int) -> str:
    """The demo's name for Fashion-MNIST test image ``i`` (``scripts/annotate_demo.py`` reads it back)."""
    return f"fashion-{i:05d}.png"


def image_project(ls: LabelStudio, backend_url: str) -> int:
    """1,000 Fashion-MNIST images written as PNG files and uploaded through Label Studio's import."""
    from PIL import Image

    pid = _existing(ls, IMAGE_TITLE)
    if pid is not None:
        return pid
    folder = RUN / "demo-images"
    folder.mkdir(exist_ok=True)
    images, _ = load_fashion_mnist(limit=IMAGES)
    paths = []
    for i, img in enumerate(images):
        path = folder / image_file(i)
        if not path.exists():
            Image.fromarray(img).resize((112, 112), Image.NEAREST).save(path)  # big enough to see in the UI
        paths.append(path)
    pid = ls.create_project(IMAGE_TITLE, IMAGE_CONFIG)["id"]
    # Label Studio takes at most 100 files per upload (Django's DATA_UPLOAD_MAX_NUMBER_FILES), as its dialog does.
    for start in range(0, len(paths), 100):
        ls.upload_files(pid, paths[start:start + 100])
    ls.connect_ml_backend(pid, backend_url, title="active learning")
    return pid


def ner_sentences() -> list[tuple[str, list[tuple[int, int, str]]]]:
    """The NER demo's tasks: the first 1,000 distinct CoNLL-2003 ``train`` sentences of at least 4 words,
    with their true entities as ``(start, end, label)`` character offsets (``scripts/annotate_demo.py``
    reads them back by text)."""
    from backend.simulation.ner_datasets import load_ner_corpus

    corpus = load_ner_corpus(split="train")
    picked: dict[str, list[tuple[int, int, str]]] = {}
    for text, spans in zip(corpus.texts, corpus.spans):
        if len(text.split()) >= 4 and text not in picked:  # no "-DOCSTART-"-like one-word lines, no repeats
            picked[text] = [tuple(s) for s in spans]
            if len(picked) == SENTENCES:
                break
    return list(picked.items())


def ner_project(ls: LabelStudio, backend_url: str) -> int:
    """1,000 CoNLL-2003 news sentences in Label Studio's *Named Entity Recognition* config."""
    pid = _existing(ls, NER_TITLE)
    if pid is not None:
        return pid
    pid = ls.create_project(NER_TITLE, NER_CONFIG)["id"]
    ls.import_tasks(pid, [{"text": text} for text, _ in ner_sentences()])
    ls.connect_ml_backend(pid, backend_url, title="active learning")
    return pid


def _set_up(ls: LabelStudio, backend_url: str) -> tuple[int, int, int]:
    """The three projects, connected, with their first queues in Label Studio; prints where to go."""
    wait_for(lambda: _up(backend_url), 60, "the backend")
    pid = demo_project(ls, backend_url)
    ner_pid = ner_project(ls, backend_url)
    print("demo: uploading the image project's 1,000 PNG files…", flush=True)
    image_pid = image_project(ls, backend_url)
    print("demo: waiting for the first queues (cold start) to reach Label Studio; the image project embeds its "
          "1,000 images first (a minute or two)…", flush=True)
    wait_for(lambda: ls.project(pid)["model_version"].startswith("v"), 180, "the first queue")
    wait_for(lambda: ls.project(ner_pid)["model_version"].startswith("v"), 180,
             "the named-entity project's first queue")
    wait_for(lambda: ls.project(image_pid)["model_version"].startswith("v"), 900, "the image project's first queue")
    print(f"""
  Label Studio:   {ls.url}/projects/{pid}/data     login {ls.username} / {ls.password}
                  {ls.url}/projects/{image_pid}/data     (the image project)
                  {ls.url}/projects/{ner_pid}/data     (the named-entity project)
  The backend:    {backend_url}  (dashboard: {backend_url}/dashboard)

  What to try: open a project and press "Label All Tasks". The queue starts
  with typical tasks from every cluster (cold start); after each answer the
  worker retrains, the next tasks are the ones the model is least sure
  about, and its guess is pre-selected. The image project learns on a
  pretrained image embedding (EfficientNet-Lite0): after a dozen labels most
  guesses are right. In the named-entity project, select words after a
  click on PER, ORG, LOC or MISC (an annotation without spans means "no
  entities"); once it has a few labels, the backend's tagger pre-marks the
  entities it finds and the queue serves the sentences it is least sure of.
  Or let a script answer as an annotator would:
  .venv/bin/python scripts/annotate_demo.py 20 [--images | --ner]. Watch
  {backend_url}/dashboard/{pid}, {backend_url}/dashboard/{image_pid} and
  {backend_url}/dashboard/{ner_pid}.

  Logs: {RUN}/backend.log, {RUN}/worker.log.   Ctrl-C stops everything.
""", flush=True)
    return pid, image_pid, ner_pid


def main() -> None:
    RUN.mkdir(exist_ok=True)
    print("demo: starting Label Studio (the first run installs it: about 2 minutes)…", flush=True)
    ls = LabelStudio(port=LS_PORT, data_dir=RUN / "label-studio" / "data", log_level="WARNING",
                     env={FAST_IMPORT_FLAG: "true"}).start()
    backend_url = f"http://127.0.0.1:{BACKEND_PORT}"
    env = {**os.environ, "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token,
           "AL_KEY_PREFIX": os.environ.get("AL_KEY_PREFIX", "demo"), "AL_HEAD_SIZE": "100", "AL_KEEP_VERSIONS": "1"}
    procs = [spawn("backend", ["serve", "--host", "127.0.0.1", "--port", str(BACKEND_PORT)], env),
             spawn("worker", ["worker"], env)]

    def stop(*_: object, code: int = 0) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)  # the worker finishes the job in hand (a training, an evaluation) first
            except subprocess.TimeoutExpired:
                print(f"demo: the {p.args[1]} process is still busy after 20 s; stopping it", file=sys.stderr)
                _kill_tree(p.pid)
        ls.stop()
        print("\ndemo: stopped Label Studio, the backend and the worker")
        raise SystemExit(code)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        _set_up(ls, backend_url)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever failed, leave nothing running
        print(f"demo: {exc}", file=sys.stderr)
        stop(code=1)
    while all(p.poll() is None for p in procs):
        time.sleep(1)
    print("demo: a process exited; see the logs in run/")
    stop()


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and what it forked (the worker's low-priority process)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = proc.children(recursive=True) + [proc]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
