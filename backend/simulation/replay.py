"""Replay the annotation loop offline on a labeled dataset (``al-backend simulate``).

Why this module exists
----------------------
A queue strategy is only worth its complexity if it needs fewer labels than
asking for tasks at random.  This module measures that on data people really
labeled, by replaying what the worker does, round after round, with the
dataset's labels playing the annotators:

1. a held-out **test split** is set aside; it is never offered to the oracle
   and only used to score each model;
2. an **initial set** is drawn at random from the rest (the *pool*) and
   labeled, or, with ``initial=0`` (the ``loop`` protocol, as a project
   starts), the first labels come from the worker's cold-start ranking;
3. each round trains the worker's model (warm-started from the last round's
   with ``warm_start``, as the worker retrains) (:class:`backend.learning.model.ChoicesClassifier`
   on the project's featurizer, hashed n-grams unless ``features`` names
   another, see :mod:`backend.learning.featurizers`, or chosen from the labels
   with ``features="auto"``, :mod:`backend.learning.auto_features`), ranks the unlabeled
   pool with the worker's entry point (:func:`backend.selection.strategies.rank_pool`,
   control share included), asks the :class:`Oracle` for the labels of the
   first ``batch_size`` tasks of that ranking, and scores the model on the
   test split; one retraining per batch, as the worker retrains once per
   burst of annotations;
4. until the **budget** (labels, initial set included) is spent.

Nothing here re-implements features, model or strategy: the functions called
are the ones ``worker/refresh.py::build_version`` calls.  Features are computed
once per dataset (featurizers are stateless, so a task's row is the same in
every round, exactly as the worker's feature cache assumes).

Every random choice (the split, the initial set, each strategy's generator)
comes from one ``seed`` through :class:`numpy.random.SeedSequence`, keyed by
the repetition and the strategy's name, so a rerun is bit-identical and adding
a strategy does not change the others' runs.  The metrics, the table and the
plot live in :mod:`backend.simulation.report`.

References
----------
Settles (2009), "Active Learning Literature Survey", section 6 (evaluation by
learning curves). https://burrsettles.com/pub/settles.activelearning.pdf
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import multiprocessing
import pathlib
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from backend.labelstudio.label_config import LabelConfig, parse_label_config
from backend.labelstudio.content import DEFAULT_MAX_BYTES, model_content
from backend.labelstudio.task_data import Fetch, TaskDataError
from backend.labelstudio.task_images import image_array
from backend.labelstudio.task_numbers import as_number, record
from backend.labelstudio.tasktypes import ChoicesControl, Control, NumberControl, ObjectTag
from backend.labelstudio.tasktypes.labels import LabelsControl
from backend.learning import auto_features, featurizers
from backend.learning.featurizers import Matrix
from backend.learning.labeled_set import build_labeled_set
from backend.learning.model import CLASS_WEIGHTS, SINGLE_CHOICE_CLASS_WEIGHT, ChoicesClassifier
from backend.selection import strategies as named_strategies
from backend.simulation.datasets import BUILTIN, REGRESSION, SPANS, Dataset, load_dataset
from backend.simulation.targets import CHOICES, NUMBER, TARGETS, Target

__all__ = [
    "SimulationError",
    "Protocol",
    "PROTOCOLS",
    "Split",
    "Oracle",
    "Curve",
    "SimulationResult",
    "load_source",
    "load_table",
    "load_label_studio_export",
    "make_split",
    "run_strategy",
    "simulate",
]

#: The name of the single control the simulator trains (one ``<Choices>``, ``<Number>`` or ``<Rating>``).
CONTROL_NAME = "label"
#: Longest text kept, as the worker's default ``AL_MAX_TEXT_CHARS``.
MAX_TEXT_CHARS = 100_000

log = logging.getLogger(__name__)


class SimulationError(ValueError):
    """Bad input to the simulator; the message says what was expected and how to fix it."""


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

#: Longest CSV field read, in characters.  Python's default (131,072) is shorter
#: than many mails and documents; a field longer than this bound is almost always
#: an unbalanced double quote that swallowed the rows after it.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
#: Byte-order marks and the codec each one names (UTF-32 first: its LE mark starts with UTF-16's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
#: How many line numbers or task ids a skip report lists per reason.
_SHOWN = 5


def _read_text(path: pathlib.Path, encoding: str | None = None) -> str:
    """A file's text: in ``encoding`` if given, else the one its byte-order mark names, else UTF-8.

    No guessing beyond the BOM: a wrong guess would turn texts and labels into
    mojibake silently, so bytes that are not UTF-8 are an error naming their
    offset and the ``--encoding`` to pass (spreadsheets on Windows write cp1252).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SimulationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        codec = codecs.lookup(encoding or next((name for bom, name in _BOMS if raw.startswith(bom)), "utf-8")).name
        if codec == "utf-8" and b"\x00" in raw:  # text has no NUL byte; UTF-16 has one in every ASCII character
            raise SimulationError(
                f"{path}: byte {raw.index(0)} is NUL: the file is UTF-16 without a byte-order mark "
                "(pass --encoding utf-16-le or utf-16-be) or not a text file (save a spreadsheet as CSV UTF-8)"
            )
        text = raw.decode(codec)
    except LookupError:  # also a codec that is not a text encoding (base64)
        raise SimulationError(
            f"unknown text encoding {encoding!r} (--encoding); e.g. utf-8, cp1252, latin-1, utf-16"
        ) from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        fix = ("pass --encoding cp1252 (Excel on Windows) or --encoding latin-1, or save the file as UTF-8"
               if encoding is None else "pass the file's real encoding with --encoding")
        raise SimulationError(
            f"{path}: byte {exc.start} (line {line}) is not valid {codec} ({raw[exc.start:exc.start + 4]!r}...); {fix}"
        ) from None
    return text.removeprefix("\ufeff")  # an explicit --encoding utf-8 leaves the BOM in


def _csv_rows(text: str, path: pathlib.Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the records as ``(line the record starts on, {column: value})``."""
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)  # process-wide: restored below
    rows: list[tuple[int, dict]] = []
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            raise SimulationError(f"{path}: the file is empty; expected a header row, then one labeled text per row")
        start = reader.line_num + 1
        for record in reader:
            if record:  # a blank line is no record; a short record leaves its last columns out
                rows.append((start, dict(zip(header, record))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise SimulationError(
            f"{path}: line {start}: cannot read the CSV ({exc}); fields are limited to {CSV_FIELD_LIMIT:,} "
            "characters, so look for an unbalanced double quote from this line on"
        ) from None
    finally:
        csv.field_size_limit(previous)
    return header, rows


def _jsonl_rows(text: str, path: pathlib.Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The keys seen and the records as ``(line, object)``; blank lines are skipped."""
    rows: list[tuple[int, dict]] = []
    for lineno, line in enumerate(text.split("\n"), 1):  # JSON lines end at \n only, not at \u2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SimulationError(f"{path}:{lineno}: not JSON ({exc.msg}); expected one object per line") from None
        if not isinstance(row, dict):
            raise SimulationError(f"{path}:{lineno}: got a {type(row).__name__}, expected a JSON object")
        rows.append((lineno, row))
    return sorted({k for _, row in rows for k in row}), rows


def _cell(row: dict, column: str, path: pathlib.Path, line: int) -> str:
    """One stripped value; missing and null are blank, objects and lists are an error (no label is a list)."""
    value = row.get(column)
    if isinstance(value, (dict, list)):
        raise SimulationError(
            f"{path}: line {line}: {column!r} holds a JSON {'object' if isinstance(value, dict) else 'list'}; "
            "expected a string or a number"
        )
    return "" if value is None else str(value).strip()


def _check_dataset(
    name: str, texts: list, labels: list, skipped: dict[str, list[str]], *, unit: str, ref: str, hint: str,
    kind: str = "text", target: str = CHOICES, label_flag: str = "--label-column",
) -> Dataset:
    """The dataset, after reporting the rows left out and refusing one that cannot be simulated.

    A blank label is a task nobody answered, not a class, so such rows are
    skipped; their count is logged (a warning) because many of them usually
    mean a wrong column or an unfinished export, and nothing left is an error.
    ``skipped`` maps a reason to the ``ref`` (line, task id) of each ``unit`` (row, task) it left out.
    """
    why = "; ".join(
        f"{len(refs):,} {reason} ({ref} {', '.join(refs[:_SHOWN])}{', ...' if len(refs) > _SHOWN else ''})"
        for reason, refs in skipped.items() if refs
    )
    total = len(texts) + sum(map(len, skipped.values()))
    if not texts:
        found = f"none of the {total:,} {unit}s has both a text and a label: {why}" if total else f"no {unit}s found"
        raise SimulationError(f"{name}: {found}; {hint}")
    if why:
        log.warning("%s: skipped %s of %s %ss, not training data: %s",
                    name, f"{total - len(texts):,}", f"{total:,}", unit, why)
    classes = sorted(set(labels))
    if len(classes) < 2:
        what = (f"the label {classes[0]!r}; a classifier needs at least 2 classes" if target == CHOICES
                else f"the number {classes[0]:g}; a model of numbers needs at least 2 different ones")
        raise SimulationError(f"{name}: every {unit} has {what} (check {label_flag})")
    return Dataset(name=name, texts=texts, labels=labels, kind=kind, target=target)


def file_fetch(base: pathlib.Path) -> Fetch:
    """How the simulator reads task data given as links (images): as the worker would, plus local files.

    A path (absolute, ``file://``, or relative to ``base``, the input
    file's folder) is read from disk: the simulator runs where its files
    are.  ``http(s)`` and Label Studio's ``/data/...`` links go through the
    worker's safe fetcher (``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` /
    ``AL_FETCH_ALLOW_HOSTS``).
    """
    from backend.labelstudio.client import resolve_credentials
    from backend.labelstudio.fetch import shared_fetcher
    from backend.settings import get_settings

    def fetch(link: str, binary: bool = False) -> str | bytes:
        if link.lower().startswith(("http://", "https://", "/data/", "/storage-data/")):
            settings = get_settings()
            return shared_fetcher(settings).fetch(link, resolve_credentials(settings, {}), binary=binary)
        path = pathlib.Path(link[7:] if link.startswith("file://") else link)
        path = path if path.is_absolute() else base / path
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise TaskDataError(f"{path}: {exc.strerror or type(exc).__name__}") from None
        return raw if binary else raw.decode("utf-8", errors="replace")

    return fetch


def load_table(
    path: str | pathlib.Path, text_column: str, label_column: str, *, encoding: str | None = None,
    kind: str = "text", target: str = CHOICES,
) -> Dataset:
    """Read a CSV or JSON-lines file with one labeled text (or image link, or record of numbers) per row.

    ``target="number"``: ``label_column`` holds a number to predict (a
    ``<Number>`` or ``<Rating>``'s answer), read as the worker reads numbers
    (:func:`backend.labelstudio.task_numbers.as_number`: ``"52,000"`` is
    52000); a row whose cell is not a number is skipped and counted.

    ``kind="numbers"``: the column holds a list or an object of numbers (JSON
    text in a CSV), read as the worker reads a ``<Table>``'s field
    (:func:`backend.labelstudio.task_numbers.record`).

    Images are paths (relative to the file's folder), ``file://``,
    ``http(s)`` or ``data:`` links, read and decoded as the worker reads a
    task's image (:func:`file_fetch`); an unreadable image skips its row.

    ``.jsonl`` / ``.ndjson`` files hold one JSON object per line; anything
    else is read as CSV with a header row, fields up to :data:`CSV_FIELD_LIMIT`
    characters.  The encoding is ``encoding``, else the byte-order mark's, else
    UTF-8 (see :func:`_read_text`).  Rows whose label or text is blank or
    missing are skipped and counted (see :func:`_check_dataset`).  Texts are
    cut to :data:`MAX_TEXT_CHARS`, as the worker cuts a task's text, so a
    simulation featurises what a project would.

    Raises
    ------
    SimulationError
        Missing file or column (the message lists the columns found), bytes
        not in the encoding, unreadable CSV, no row with a text and a label,
        fewer than two classes (or different numbers).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise SimulationError(f"{path}: no such file; expected a CSV, JSONL or Label Studio JSON export")
    text = _read_text(path, encoding)
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    columns, rows = (_jsonl_rows if jsonl else _csv_rows)(text, path)
    text_flag = {"image": "--image-column", "numbers": "--number-column"}.get(kind, "--text-column")
    label_flag = "--label-column" if target == CHOICES else "--target-column"
    for col, flag in ((text_column, text_flag), (label_column, label_flag)):
        if col not in columns:
            raise SimulationError(
                f"{path}: no column {col!r}; found {sorted(columns)}. Pass the right name with {flag}"
            )
    texts: list = []
    labels: list = []
    skipped: dict[str, list[str]] = {f"with a blank {label_column!r}": [], f"with a blank {text_column!r}": [],
                                     f"whose {kind} under {text_column!r} cannot be read": [],
                                     f"whose {label_column!r} is not a number": []}
    blank_label, blank_text, unreadable, not_number = skipped.values()
    fetch = file_fetch(path.parent) if kind == "image" else None
    for line, row in rows:
        label: str | float = _cell(row, label_column, path, line)
        if target == NUMBER and label != "":  # a number may be 0: blank is the empty string only
            label = as_number(row.get(label_column))
            if math.isnan(label):
                not_number.append(str(line))
                continue
        if kind == "numbers":
            try:
                if label != "":
                    texts.append(record(row.get(text_column), text_column))
                    labels.append(label)
                else:
                    blank_label.append(str(line))
            except TaskDataError as exc:
                unreadable.append(f"{line} ({exc})")
            continue
        text = _cell(row, text_column, path, line)
        if label == "":
            blank_label.append(str(line))
        elif not text:
            blank_text.append(str(line))
        elif fetch is not None:
            try:
                texts.append(image_array(text.strip(), text_column, fetch, max_bytes=DEFAULT_MAX_BYTES))
                labels.append(label)
            except TaskDataError as exc:
                unreadable.append(f"{line} ({exc})")
        else:
            texts.append(text[:MAX_TEXT_CHARS])
            labels.append(label)
    return _check_dataset(str(path), texts, labels, skipped, unit="row", ref="line", kind=kind, target=target,
                          label_flag=label_flag,
                          hint=f"expected a {kind} and a {'label' if target == CHOICES else 'number'} per row "
                               f"(check {text_flag} and {label_flag})")


def _annotations(task: dict) -> list[dict]:
    """A task's annotations; anything else under the key counts as none."""
    anns = task.get("annotations")
    return [a for a in anns if isinstance(a, dict)] if isinstance(anns, list) else []


def _unanswered(task: dict) -> str | None:
    """Why a task can give no label before its results are read, or ``None``."""
    anns = _annotations(task)
    if not anns:
        return "without annotations"
    return "with only cancelled annotations" if all(a.get("was_cancelled") for a in anns) else None


#: The result ``type`` of each answer the simulator learns from an export: a choice, a number to predict, spans.
_EXPORT_RESULTS = ("choices", "number", "rating", "labels")


def _export_control(
    tasks: list[dict], path: pathlib.Path, text_key: str | None, control_name: str | None, label_config: str | None
) -> Control:
    """The ``<Choices>``, ``<Number>`` or ``<Rating>`` to learn, from the label config or from the export itself."""
    if label_config is not None:
        xml = _read_text(pathlib.Path(label_config))
        try:
            config = parse_label_config(xml)
        except ValueError as exc:
            raise SimulationError(f"{label_config}: {exc}") from None
        names = [c.name for c in config.controls]
        if control_name is None:
            return config.controls[0]
        if control_name not in names:
            raise SimulationError(f"no control named {control_name!r} in {label_config}; found {names}")
        return config.control(control_name)
    # No config: the control is the one the results name, the text the one string field.
    seen: dict[str, set[str]] = {}
    first: dict[str, dict] = {}  # the control's first result item: its type and to_name
    for task in tasks:
        for ann in _annotations(task):
            if ann.get("was_cancelled") or not isinstance(ann.get("result"), list):
                continue  # as the labeled set reads them: a cancelled annotation answers nothing
            for item in ann["result"]:
                value = item.get("value") if isinstance(item, dict) else None
                if isinstance(value, dict) and item.get("type") in _EXPORT_RESULTS and item.get("from_name"):
                    names = value.get(item["type"]) if item["type"] in ("choices", "labels") else None
                    seen.setdefault(item["from_name"], set()).update(map(str, names or []))
                    first.setdefault(item["from_name"], item)
    if not seen:
        counts = Counter(_unanswered(t) for t in tasks)
        raise SimulationError(
            f"{path}: no submitted annotation has a choices, number or rating result ({len(tasks):,} tasks: "
            f"{counts['without annotations']:,} without annotations, {counts['with only cancelled annotations']:,} "
            "with only cancelled ones); expected an export of a classification (<Choices>), a <Number> / "
            "<Rating> or a named-entity (<Labels>) project with labeled tasks"
        )
    if control_name is None:
        if len(seen) > 1:
            raise SimulationError(f"{path}: several controls ({sorted(seen)}); pick one with --label-column")
        control_name = next(iter(seen))
    elif control_name not in seen:
        raise SimulationError(
            f"{path}: no choices, number or rating result from {control_name!r}; found {sorted(seen)} (--label-column)"
        )
    if text_key is None:
        data = [t["data"] for t in tasks if isinstance(t.get("data"), dict)]
        keys = {k for d in data for k, v in d.items() if isinstance(v, str)}
        if len(keys) != 1:
            raise SimulationError(
                f"{path}: cannot tell which task data field holds the text (string fields: {sorted(keys)}); "
                "name it with --text-column or pass --label-config"
            )
        text_key = keys.pop()
    item = first[control_name]
    obj = ObjectTag(name=item.get("to_name") or "text", tag="Text", value_key=text_key)
    if item["type"] == "choices":
        return ChoicesControl(name=control_name, labels=tuple(sorted(seen[control_name])), multiple=False,
                              objects=(obj,))
    if item["type"] == "labels":
        return LabelsControl(name=control_name, labels=tuple(sorted(seen[control_name])), objects=(obj,))
    return NumberControl(name=control_name, objects=(obj,), result_kind=item["type"])


def load_label_studio_export(
    path: str | pathlib.Path,
    *,
    text_key: str | None = None,
    control_name: str | None = None,
    label_config: str | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Read a Label Studio JSON export: its annotations become the oracle.

    Tasks are read the way the worker reads them: the text through
    :func:`backend.labelstudio.content.model_content` and one answer per task by
    majority vote over its annotations, or their median for a ``<Number>`` or
    ``<Rating>`` (:func:`backend.learning.labeled_set.build_labeled_set`;
    cancelled annotations carry no label, ties go to the latest).  Tasks
    without an answer (no annotation, only cancelled ones, no choice or number
    for the control) or without a readable text are left out and counted: the
    simulator needs a label for every task it may ask about.

    Parameters
    ----------
    path : path to the export (*Export → JSON* in Label Studio).
    text_key : task data field with the text; guessed when there is one string field.
    control_name : the ``<Choices>``, ``<Number>`` or ``<Rating>`` ``name`` to learn; guessed when there is one.
    label_config : optional label config XML file; then the text is read per its object tags.
    encoding : the export's encoding; default the byte-order mark's, else UTF-8.
    """
    path = pathlib.Path(path)
    try:
        tasks = json.loads(_read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise SimulationError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise SimulationError(f"{path}: expected a list of tasks (Label Studio's JSON export), got {type(tasks).__name__}")
    control = _export_control(tasks, path, text_key, control_name, label_config)
    if control.task_type not in TARGETS:
        raise SimulationError(f"{path}: the control {control.name!r} is a {control.task_type}; the simulator learns "
                              f"a <Choices>, a <Number>, a <Rating> or a <Labels>")
    if getattr(control, "multiple", False):
        raise SimulationError(f"{path}: <Choices name={control.name!r}> is multiple choice; the simulator handles single choice")
    config = LabelConfig(controls=(control,), config_hash="export")
    annotations = [{**ann, "task": i} for i, task in enumerate(tasks) for ann in _annotations(task)]
    answers = build_labeled_set(annotations, config).answers[control.name]
    target = TARGETS[control.task_type].name
    no_choice = f"with no {control.name!r} {'choice' if target == CHOICES else 'answer'}"
    unreadable = f"whose {control.kind} under {control.objects[0].value_key!r} is blank or unreadable"
    fetch = file_fetch(path.parent)
    skipped: dict[str, list[str]] = {
        "without annotations": [], "with only cancelled annotations": [], no_choice: [], unreadable: []
    }
    texts, labels = [], []
    for i, task in enumerate(tasks):
        ref = str(task.get("id", f"#{i}"))
        if i not in answers:
            skipped[_unanswered(task) or no_choice].append(ref)
            continue
        try:
            # A span model reads the text exactly as Label Studio shows it: the spans' offsets index it.
            texts.append(model_content(task.get("data"), control, max_chars=MAX_TEXT_CHARS, fetch=fetch))
        except TaskDataError:
            skipped[unreadable].append(ref)
            continue
        labels.append({CHOICES: str, NUMBER: float}.get(target, tuple)(answers[i]))
    return _check_dataset(str(path), texts, labels, skipped, unit="task", ref="task ids", kind=control.kind,
                          target=target,
                          hint="expected submitted annotations on tasks with a text (check --text-column)")


def load_source(
    source: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_config: str | None = None,
    encoding: str | None = None,
    image_column: str | None = None,
    number_column: str | None = None,
    target_column: str | None = None,
) -> Dataset:
    """A built-in dataset name, a CSV/JSONL file or a Label Studio JSON export (``encoding``: files only).

    ``image_column`` / ``number_column`` (CSV/JSONL): the column of image links, or of records of
    numbers, instead of ``text_column``.  ``target_column`` (CSV/JSONL): a column of numbers to
    predict (as a ``<Number>`` or ``<Rating>`` is answered), instead of ``label_column``.
    """
    if source in BUILTIN + REGRESSION + SPANS:
        return load_dataset(source)
    path = pathlib.Path(source)
    if not path.exists():
        raise SimulationError(
            f"{source!r} is neither a built-in dataset ({', '.join(BUILTIN + REGRESSION + SPANS)}) nor an existing file"
        )
    if path.suffix.lower() == ".json":
        if target_column:
            raise SimulationError(f"{path}: --target-column is for CSV/JSONL files; in an export, name the "
                                  "<Number> or <Rating> with --label-column")
        return load_label_studio_export(path, text_key=text_column, control_name=label_column,
                                        label_config=label_config, encoding=encoding)
    given = {kind: col for kind, col in (("text", text_column), ("image", image_column), ("numbers", number_column))
             if col}
    if len(given) > 1:
        raise SimulationError(f"{path}: give one of --text-column, --image-column and --number-column")
    if label_column and target_column:
        raise SimulationError(f"{path}: give one of --label-column (a label to choose) and --target-column "
                              "(a number to predict)")
    if not given or not (label_column or target_column):
        raise SimulationError(f"{path}: a CSV/JSONL file needs --text-column (or --image-column, or "
                              "--number-column) and --label-column (or --target-column, for a number to predict)")
    (kind, column), = given.items()
    if target_column:
        return load_table(path, column, target_column, encoding=encoding, kind=kind, target=NUMBER)
    return load_table(path, column, label_column, encoding=encoding, kind=kind)


# --------------------------------------------------------------------------
# Protocol
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How one comparison is run; validated on construction.

    ``budget`` counts every label the oracle reveals, the initial set
    included.  ``initial=0`` starts from the cold-start ranking, as a new
    project does; ``warm_start`` fits each round from the last round's
    model, as the worker does.  :data:`LOOP` and :data:`BATCH` are the two
    presets of the command line.  ``control_share`` is the share of each batch the worker
    draws at random (production default :data:`backend.selection.strategies.DEFAULT_CONTROL_SHARE`).
    ``max_rows`` keeps a stratified subsample of the dataset (0 = all rows).
    ``batch_growth`` makes a round take ``max(batch_size, batch_growth * labels)``
    labels: the live worker retrains after every label while a fit is quick,
    and coalesces the labels saved during a longer refresh, so long runs
    (thousands of labels) stay affordable without coarsening their start.
    ``class_weight`` is the model's (:class:`ChoicesClassifier`), for every
    curve and for the full-data reference alike; by default the worker's.
    """

    strategies: tuple[str, ...] = ("random", named_strategies.DEFAULT_STRATEGY)
    seeds: int = 10
    seed: int = 0
    budget: int = 1000
    batch_size: int = 100
    initial: int = 100
    test_size: float = 0.2
    control_share: float = named_strategies.DEFAULT_CONTROL_SHARE
    max_rows: int = 0
    warm_start: bool = False
    batch_growth: float = 0.0
    class_weight: str | None = SINGLE_CHOICE_CLASS_WEIGHT
    #: The featurizer's (``Featurizer.duplicate_cosine``); ``simulate`` sets it from the one it uses.
    near_duplicate_threshold: float = 0.9

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in named_strategies.STRATEGIES]
        if unknown:
            raise SimulationError(
                f"unknown strategy {', '.join(map(repr, unknown))}; known: {', '.join(sorted(named_strategies.STRATEGIES))}"
            )
        if "random" not in self.strategies:
            raise SimulationError("the strategies must include 'random', the baseline every strategy is compared to")
        if len(set(self.strategies)) != len(self.strategies):
            raise SimulationError(f"a strategy is listed twice: {list(self.strategies)}")
        for name in ("seeds", "budget", "batch_size"):
            if getattr(self, name) < 1:
                raise SimulationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.initial < 0 or self.max_rows < 0:
            raise SimulationError(f"initial and max_rows must be >= 0, got {self.initial} and {self.max_rows}")
        if self.initial > self.budget:
            raise SimulationError(f"the initial set ({self.initial}) is larger than the budget ({self.budget})")
        if not 0.0 < self.test_size < 1.0:
            raise SimulationError(f"test_size must be between 0 and 1 (a share of the rows), got {self.test_size}")
        if not 0.0 <= self.control_share < 1.0:
            raise SimulationError(f"control_share must be in [0, 1), got {self.control_share}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise SimulationError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if not 0.0 <= self.batch_growth < 1.0:
            raise SimulationError(f"batch_growth must be in [0, 1) (a share of the labels), got {self.batch_growth}")

    def round_size(self, labeled: int) -> int:
        """Labels the next round asks for, ``labeled`` being those revealed so far."""
        return max(self.batch_size, int(self.batch_growth * labeled))

    def to_dict(self) -> dict:
        return {**asdict(self), "strategies": list(self.strategies)}


#: The loop as the worker runs it (the default): a retraining after every label (``train_every``
#: defaults to 1), warm-started, from the cold-start ranking with no random initial set.
LOOP = {"seeds": 10, "budget": 1000, "batch_size": 1, "initial": 0, "warm_start": True, "batch_growth": 0.0,
        "class_weight": SINGLE_CHOICE_CLASS_WEIGHT}
#: The protocol of the earlier runs in docs/label-efficiency.md: batches of 100 from 100 random labels.
BATCH = {"seeds": 10, "budget": 1000, "batch_size": 100, "initial": 100, "warm_start": False, "batch_growth": 0.0,
         "class_weight": None}  # the model of those runs
PROTOCOLS = {"loop": LOOP, "batch": BATCH}


def _seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The one place randomness is derived: ``seed`` plus a key path."""
    return np.random.SeedSequence(seed, spawn_key=tuple(key))


def _strategy_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


# Key paths under the root seed (stable: changing them changes every result):
# (repetition, _SPLIT), (repetition, _INITIAL), (repetition, _STRATEGY, crc32(name)),
# and (_SUBSAMPLE,) for the one subsample shared by all repetitions.
_SPLIT, _INITIAL, _STRATEGY = 0, 1, 2
_SUBSAMPLE = 2**32 - 1


@dataclass(frozen=True)
class Split:
    """Row indices of one repetition: the pool the oracle may reveal, the test split it never does."""

    pool: np.ndarray
    test: np.ndarray
    initial: np.ndarray


def make_split(labels: Sequence[str | float], protocol: Protocol, repetition: int,
               target: Target = TARGETS[CHOICES]) -> Split:
    """The test split (stratified by label for choices) and random initial set of one repetition."""
    y = target.as_array(labels)
    strata = target.stratify(y)
    rows = np.arange(len(y))
    if protocol.max_rows and protocol.max_rows < len(y):
        seed = int(np.random.default_rng(_seed_sequence(protocol.seed, _SUBSAMPLE)).integers(2**31 - 1))
        rows, _ = train_test_split(rows, train_size=protocol.max_rows, stratify=strata, random_state=seed)
        rows = np.sort(rows)
    rng = np.random.default_rng(_seed_sequence(protocol.seed, repetition, _SPLIT))
    try:
        pool, test = train_test_split(
            rows, test_size=protocol.test_size, stratify=None if strata is None else strata[rows],
            random_state=int(rng.integers(2**31 - 1)),
        )
    except ValueError as exc:
        raise SimulationError(f"cannot split {len(rows)} rows into a stratified test split: {exc}") from None
    pool, test = np.sort(pool), np.sort(test)
    if protocol.initial > len(pool):
        raise SimulationError(f"the initial set ({protocol.initial}) is larger than the pool ({len(pool)} rows)")
    init_rng = np.random.default_rng(_seed_sequence(protocol.seed, repetition, _INITIAL))
    initial = np.sort(init_rng.choice(pool, size=protocol.initial, replace=False))
    return Split(pool=pool, test=test, initial=initial)


class Oracle:
    """The annotators: reveals the label of a pool task when, and only when, asked.

    Holds the labels of the pool only (the test split's labels are not in
    it), refuses any other task and any task asked twice, and keeps the log of
    what was asked so tests can check the protocol.
    """

    def __init__(self, labels: Sequence[str | float], pool: np.ndarray) -> None:
        self._labels = {int(i): labels[int(i)] for i in pool}  # label names, or numbers to predict
        self._asked_set: set[int] = set()
        self.asked: list[int] = []

    def reveal(self, rows: Sequence[int]) -> list[str | float]:
        """Labels of ``rows`` (dataset row indices), in order."""
        out = []
        for r in map(int, rows):
            if r not in self._labels:
                raise SimulationError(f"row {r} is not in the pool the annotators may label (a test task?)")
            if r in self._asked_set:
                raise SimulationError(f"row {r} was asked for twice")
            self._asked_set.add(r)
            self.asked.append(r)
            out.append(self._labels[r])
        return out


@dataclass
class Curve:
    """A learning curve: test scores after each retraining.

    ``scores`` maps each of the target's metrics (:attr:`Target.metrics`,
    the headline first: accuracy, or skill for numbers) to one value per point.
    """

    strategy: str
    repetition: int
    labels: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    random_picks: int = 0  # labels that came from the random control share
    seconds: float = 0.0
    features: list[str] = field(default_factory=list)  # the representation of each point
    choices: list[dict] = field(default_factory=list)  # ``features="auto"``: each comparison's Choice

    @property
    def headline(self) -> list[float]:
        """The first metric's curve (higher is better): what AULC and savings are computed on."""
        return next(iter(self.scores.values()), [])

    @property
    def accuracy(self) -> list[float]:
        return self.scores["accuracy"]

    @property
    def macro_f1(self) -> list[float]:
        return self.scores["macro_f1"]

    def add(self, labels: int, scores: Mapping[str, float], features: str) -> None:
        """One point: the scores of the model trained on ``labels`` labels."""
        self.labels.append(labels)
        for name, value in scores.items():
            self.scores.setdefault(name, []).append(value)
        self.features.append(features)


class TimeLimitReached(Exception):
    """Raised inside a run when the deadline passed; the repetition is dropped."""


def run_strategy(
    X: Matrix | Mapping[str, Matrix],
    labels: Sequence[str],
    split: Split,
    strategy: str,
    protocol: Protocol,
    repetition: int,
    *,
    target: Target = TARGETS[CHOICES],
    inputs: np.ndarray | None = None,
    oracle: Oracle | None = None,
    on_round: Callable[[], None] | None = None,
    deadline: float | None = None,
) -> Curve:
    """One strategy, one repetition: the annotation loop until the budget is spent.

    ``X`` holds every dataset row's features; ``labels`` every row's label
    (or number, for a ``target`` of numbers to predict), used only to build
    the :class:`Oracle` (over the pool) and to score on the test split.
    ``inputs``: what the model reads per row when it reads the tasks' texts
    (``target.reads_text``), while ``X`` stays the strategies' geometry.  A mapping of representation name to rows is
    ``features="auto"``: the representation is chosen from the labels as they
    arrive (:mod:`backend.learning.auto_features`, as the worker does), and
    a switch refits from scratch, as the worker's does.
    """
    t0 = time.monotonic()
    y_all = target.as_array(labels)
    oracle = oracle if oracle is not None else Oracle(labels, split.pool)
    reference = y_all[split.pool]
    reps = dict(X) if isinstance(X, Mapping) else {"": X}
    current = (featurizers.DEFAULT if featurizers.DEFAULT in X else next(iter(X))) if isinstance(X, Mapping) else ""
    compared_at: int | None = None
    model_in = (lambda: inputs) if inputs is not None else (lambda: reps[current])  # the model's rows
    X_test, y_test = model_in()[split.test], y_all[split.test]
    rng = np.random.default_rng(_seed_sequence(protocol.seed, repetition, _STRATEGY, _strategy_key(strategy)))
    params = named_strategies.SelectionParams(  # only a batch of each ranking is read
        strategy=strategy, batch_size=protocol.batch_size, control_share=protocol.control_share,
        head=protocol.batch_size, near_duplicate_threshold=protocol.near_duplicate_threshold,
    )
    budget = min(protocol.budget, len(split.pool))
    labeled: list[int] = list(map(int, split.initial))
    y_labeled: list = oracle.reveal(labeled)
    unlabeled = np.zeros(y_all.shape[0], dtype=bool)
    unlabeled[split.pool] = True
    unlabeled[labeled] = False
    curve = Curve(strategy=strategy, repetition=repetition)
    model = None
    while True:
        if labeled:
            if len(reps) > 1 and auto_features.due(len(labeled), compared_at):
                choice = _auto_choice(reps, labeled, y_labeled, current, protocol)
                if choice is not None:
                    compared_at = len(labeled)
                    curve.choices.append(choice.to_dict())
                    if choice.switched:
                        current, model = choice.chosen, None
                        X_test = reps[current][split.test]
            model = target.fit(model_in()[labeled], y_labeled, model if protocol.warm_start else None,
                               protocol.class_weight)
            curve.add(len(labeled), target.score(model, y_labeled, X_test, y_test, reference), current)
        if len(labeled) >= budget:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeLimitReached
        X_now = reps[current]
        rows = np.flatnonzero(unlabeled)  # ascending, like the worker's sorted pool ids
        pool = target.selection_pool(X_now[rows], model, X_now[labeled] if labeled else None, y_labeled,
                                     CONTROL_NAME, None if inputs is None else inputs[rows])
        take = min(protocol.round_size(len(labeled)), budget - len(labeled))
        if take != params.batch_size:
            params = replace(params, batch_size=take, head=take)
        ranked = named_strategies.rank_pool(pool, params, rng)
        head = ranked.order[:take]
        curve.random_picks += int(np.sum(ranked.source[head] == named_strategies.RANDOM_PICK))
        asked = rows[head]
        y_labeled.extend(oracle.reveal(asked))
        labeled.extend(map(int, asked))
        unlabeled[asked] = False
        if on_round is not None:
            on_round()
    curve.seconds = time.monotonic() - t0
    return curve


def _auto_choice(reps: Mapping[str, Matrix], labeled: list[int], y: list[str], current: str,
                 protocol: Protocol) -> auto_features.Choice | None:
    """The worker's comparison of representations on the labels revealed so far."""
    comparison = auto_features.compare({name: X[labeled] for name, X in reps.items()}, y,
                                       ChoicesClassifier(class_weight=protocol.class_weight))
    return None if comparison is None else auto_features.choose(comparison, current)


def rounds_per_run(protocol: Protocol, pool_size: int) -> int:
    """Retrainings per run after the first one (what the progress bar counts)."""
    budget = min(protocol.budget, pool_size)
    labeled, rounds = protocol.initial, 0
    while labeled < budget:
        labeled += min(protocol.round_size(labeled), budget - labeled)
        rounds += 1
    return rounds


@dataclass
class Repetition:
    """All strategies on one split, plus the full-data reference (each metric of the target's)."""

    repetition: int
    full: dict[str, float]
    curves: dict[str, Curve]

    @property
    def full_headline(self) -> float:
        return next(iter(self.full.values()))

    @property
    def full_accuracy(self) -> float:
        return self.full["accuracy"]

    @property
    def full_macro_f1(self) -> float:
        return self.full["macro_f1"]


@dataclass
class SimulationResult:
    dataset: str
    n_rows: int
    classes: list[str]  # empty for numbers to predict
    protocol: Protocol
    repetitions: list[Repetition]
    seconds: float
    stopped_early: bool = False
    feature_seconds: float = 0.0
    features: str = featurizers.DEFAULT
    pool_size: int = 0
    test_size: int = 0
    target: str = CHOICES


def full_data_scores(X: Matrix | Mapping[str, Matrix], labels: Sequence[str | float], split: Split,
                     class_weight: str | None = SINGLE_CHOICE_CLASS_WEIGHT,
                     target: Target = TARGETS[CHOICES], inputs: np.ndarray | None = None) -> dict[str, float]:
    """The same model trained on the whole pool: the scores every curve is measured against.

    Several representations (``features="auto"``): the best of them by the
    headline metric, so that a curve is measured against the best
    representation there is.
    """
    if isinstance(X, Mapping):
        return max((full_data_scores(rows, labels, split, class_weight, target) for rows in X.values()),
                   key=lambda scores: scores[target.metrics[0]])
    y = target.as_array(labels)
    X = X if inputs is None else inputs
    pool = list(y[split.pool])
    model = target.fit(X[split.pool], pool, class_weight=class_weight)
    return target.score(model, pool, X[split.test], y[split.test], y[split.pool])


# Worker processes read the dataset from these globals (inherited by fork, not pickled).
_SHARED: dict = {}


def _run_repetition(repetition: int, deadline: float | None, on_round: Callable[[], None] | None = None) -> Repetition | None:
    X, labels, protocol, target = _SHARED["X"], _SHARED["labels"], _SHARED["protocol"], _SHARED["target"]
    inputs = _SHARED["inputs"]
    # One BLAS thread: results must not depend on how many processes run (float sums
    # in threaded BLAS can differ with the thread count) and processes must not oversubscribe.
    with threadpool_limits(limits=1):
        split = make_split(labels, protocol, repetition, target)
        full = full_data_scores(X, labels, split, protocol.class_weight, target, inputs)
        curves = {}
        try:
            for strategy in protocol.strategies:
                curves[strategy] = run_strategy(X, labels, split, strategy, protocol, repetition, target=target,
                                                inputs=inputs, on_round=on_round, deadline=deadline)
        except TimeLimitReached:
            return None
    return Repetition(repetition=repetition, full=full, curves=curves)


def simulate(
    dataset: Dataset,
    protocol: Protocol,
    *,
    jobs: int = 1,
    time_limit: float | None = None,
    progress: bool | None = None,
    features: str = featurizers.KIND_DEFAULT,
) -> SimulationResult:
    """Run every strategy on ``protocol.seeds`` repetitions of ``dataset``.

    Parameters
    ----------
    jobs : worker processes, one repetition each at a time; results do not depend on it.
    time_limit : seconds; repetitions not finished by then are dropped (``stopped_early``).
    progress : show a progress bar on stderr (None: only on a terminal).
    features : the featurizer's registry name (:data:`backend.learning.featurizers.FEATURIZERS`),
        ``"default"``: the default for the dataset's kind of data (n-grams for texts, the pretrained
        embedding for images), or ``"auto"``: every available one, chosen from the labels as they arrive.
    """
    from tqdm import tqdm

    if features == auto_features.AUTO and dataset.target != CHOICES:
        raise SimulationError("features 'auto' compares representations by accuracy, so it chooses for a "
                              "<Choices> only; name a featurizer for numbers to predict (e.g. --features numbers)")
    t0 = time.monotonic()
    deadline = None if time_limit is None else t0 + time_limit
    try:
        names = (auto_features.candidates(dataset.kind) if features == auto_features.AUTO
                 else [featurizers.resolve(features, dataset.kind)])
    except featurizers.FeaturizerError as exc:
        raise SimulationError(str(exc)) from None
    specs = {name: featurizers.get(name) for name in names}
    specs = {name: f.fit(dataset.texts) if f.fitted_on_pool else f for name, f in specs.items()}
    by_name = {name: f.transform(dataset.texts) for name, f in specs.items()}
    X = by_name if features == auto_features.AUTO else by_name[names[0]]
    protocol = replace(protocol, near_duplicate_threshold=min(f.duplicate_cosine for f in specs.values()))
    if dataset.target != CHOICES:
        protocol = replace(protocol, class_weight=None)  # a regressor has no classes to weigh
    feature_seconds = time.monotonic() - t0
    target = TARGETS[dataset.target]
    first = make_split(dataset.labels, protocol, 0, target)
    per_run = rounds_per_run(protocol, len(first.pool))
    inputs = np.asarray(dataset.texts, dtype=object) if target.reads_text else None
    _SHARED.update(X=X, labels=list(dataset.labels), protocol=protocol, target=target, inputs=inputs)
    reps: list[Repetition] = []
    stopped = False
    total = protocol.seeds * len(protocol.strategies) * per_run
    with tqdm(total=total, unit="round", disable=None if progress is None else not progress,
              desc=f"simulate {dataset.name} ({features})", dynamic_ncols=True) as bar:
        try:
            if jobs <= 1:
                for r in range(protocol.seeds):
                    rep = _run_repetition(r, deadline, on_round=lambda: bar.update(1))
                    if rep is None:
                        stopped = True
                        break
                    reps.append(rep)
            else:
                ctx = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as ex:
                    futures = [ex.submit(_run_repetition, r, deadline) for r in range(protocol.seeds)]
                    for fut in futures:
                        rep = fut.result()
                        bar.update(len(protocol.strategies) * per_run)
                        if rep is None:
                            stopped = True
                        else:
                            reps.append(rep)
        finally:
            _SHARED.clear()
    if not reps:
        raise SimulationError(
            f"the time limit ({time_limit:g} s) passed before one repetition finished; raise --time-limit "
            "or lower --budget / --seeds"
        )
    return SimulationResult(
        dataset=dataset.name,
        n_rows=len(dataset),
        classes=target.classes(dataset.labels),
        target=target.name,
        protocol=protocol,
        repetitions=reps,
        seconds=time.monotonic() - t0,
        stopped_early=stopped,
        feature_seconds=feature_seconds,
        features=features if features == auto_features.AUTO else names[0],
        pool_size=len(first.pool),
        test_size=len(first.test),
    )
