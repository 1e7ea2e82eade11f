"""Real files for ``al-backend simulate``: long fields, odd encodings, blank labels.

Each case either loads (and then the texts and labels are exactly the
file's) or fails with a one-line message naming the line and the fix, and the
command exits 2 without a traceback.  Files are written to ``tmp_path``.
"""

from __future__ import annotations

import csv
import json
import logging

import pytest

from backend.simulation import replay
from backend.settings import Settings
from backend.simulation.replay import CSV_FIELD_LIMIT, MAX_TEXT_CHARS, SimulationError
from tests.simulation.test_simulation import ROOT, _annotation, _cli

ROWS = [("great fun", "pos"), ("dull and long", "neg"), ("café – naïve", "pos")]


def _write_csv(path, rows, encoding="utf-8"):
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows([("review", "label"), *rows])
    return path


def _fails(*args):
    """The CLI's stderr on a bad input, after checking it is one clean error."""
    proc = _cli(*args, "--quick", "--no-progress", cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("al-backend simulate: error: ")
    return proc.stderr


def _load(path, **kw):
    return replay.load_source(str(path), text_column="review", label_column="label", **kw)


# -- long fields -------------------------------------------------------------------


def test_field_longer_than_pythons_csv_limit_is_read_and_cut_as_the_worker_cuts_it(tmp_path):
    mail = "Dear team,\n" + "a long mail, " * 16_000  # ~200 KB, past csv's default 131,072
    path = _write_csv(tmp_path / "mails.csv", [(mail, "spam"), *ROWS])
    d = _load(path)
    assert len(mail) > 200_000 and d.texts[0] == mail.strip()[:MAX_TEXT_CHARS]
    assert MAX_TEXT_CHARS == Settings().max_text_chars  # the worker's default AL_MAX_TEXT_CHARS
    assert d.labels == ["spam", "pos", "neg", "pos"]
    assert csv.field_size_limit() == 131_072  # the process-wide limit is put back


def test_field_past_the_bound_names_its_line_and_the_likely_cause(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('review,label\nfine,pos\n"an unbalanced quote,neg\n' + "x" * CSV_FIELD_LIMIT + "\n")
    err = _fails(str(path), "--text-column", "review", "--label-column", "label")
    assert "line 3" in err and "unbalanced double quote" in err and f"{CSV_FIELD_LIMIT:,}" in err


# -- encodings -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_utf8_bom_is_dropped_in_every_format(tmp_path, suffix):
    path = tmp_path / f"excel{suffix}"
    if suffix == ".csv":
        _write_csv(path, ROWS, encoding="utf-8-sig")
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps({"review": t, "label": y}) for t, y in ROWS), encoding="utf-8-sig")
    else:
        tasks = [{"id": i, "data": {"review": t}, "annotations": [_annotation(y)]} for i, (t, y) in enumerate(ROWS)]
        path.write_text(json.dumps(tasks), encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    d = replay.load_source(str(path), text_column="review", label_column=None if suffix == ".json" else "label")
    assert sorted(zip(d.texts, d.labels)) == sorted(ROWS)


def test_utf16_with_bom_is_detected(tmp_path):
    path = _write_csv(tmp_path / "powershell.csv", ROWS, encoding="utf-16")
    assert path.read_bytes()[:2] == b"\xff\xfe"
    assert _load(path).texts == [t for t, _ in ROWS]


def test_utf16_without_bom_is_a_clear_error(tmp_path):
    path = _write_csv(tmp_path / "nobom.csv", ROWS, encoding="utf-16-le")
    err = _fails(str(path), "--text-column", "review", "--label-column", "label")
    assert "UTF-16 without a byte-order mark" in err and "--encoding utf-16-le" in err and "not a text file" in err
    assert _load(path, encoding="utf-16-le").texts == [t for t, _ in ROWS]


def test_cp1252_bytes_name_their_offset_and_the_encoding_option(tmp_path):
    path = _write_csv(tmp_path / "excel.csv", ROWS, encoding="cp1252")
    offset = path.read_bytes().index("é".encode("cp1252"))
    err = _fails(str(path), "--text-column", "review", "--label-column", "label")
    assert f"byte {offset} (line 4) is not valid utf-8" in err and "--encoding cp1252" in err
    assert _load(path, encoding="cp1252").texts[2] == "café – naïve"


def test_unknown_encoding_is_a_clear_error(tmp_path):
    path = _write_csv(tmp_path / "d.csv", ROWS)
    err = _fails(str(path), "--text-column", "review", "--label-column", "label", "--encoding", "klingon")
    assert "unknown text encoding 'klingon' (--encoding)" in err


# -- blank and missing labels ----------------------------------------------------------


def test_blank_labels_are_skipped_and_counted_with_their_lines(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text(
        "review,label\n"
        "great fun,pos\n"
        '"a review over\ntwo lines",neg\n'  # lines 3-4
        "no label,\n"  # line 5
        "only spaces,   \n"  # line 6
        "a short row\n"  # line 7: no label column value at all
        ",neg\n"  # line 8: a label without a text
        "fine,pos\n"
    )
    with caplog.at_level(logging.WARNING, logger=replay.__name__):
        d = _load(path)
    assert d.texts == ["great fun", "a review over\ntwo lines", "fine"] and d.labels == ["pos", "neg", "pos"]
    assert "skipped 4 of 7 rows" in caplog.text
    assert "3 with a blank 'label' (line 5, 6, 7)" in caplog.text
    assert "1 with a blank 'review' (line 8)" in caplog.text


def test_all_labels_blank_is_a_clear_error(tmp_path):
    path = _write_csv(tmp_path / "unlabeled.csv", [(t, " ") for t, _ in ROWS])
    err = _fails(str(path), "--text-column", "review", "--label-column", "label")
    assert "none of the 3 rows has both a text and a label: 3 with a blank 'label' (line 2, 3, 4)" in err
    assert "--label-column" in err


def test_jsonl_records_without_the_label_key_are_skipped_and_lists_refused(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    records = [{"review": "a", "label": "pos"}, {"review": "b"}, {"review": "c", "label": None},
               {"review": "d", "label": 0}, {"review": "e", "label": 1}]
    path.write_text("\n".join(map(json.dumps, records)) + "\n\n")
    with caplog.at_level(logging.WARNING, logger=replay.__name__):
        d = _load(path)
    assert d.texts == ["a", "d", "e"] and d.labels == ["pos", "0", "1"]
    assert "2 with a blank 'label' (line 2, 3)" in caplog.text
    path.write_text("\n".join(map(json.dumps, [*records, {"review": "f", "label": ["pos", "neg"]}])))
    with pytest.raises(SimulationError, match=r"line 6: 'label' holds a JSON list; expected a string or a number"):
        _load(path)


def test_export_tasks_without_annotations_or_only_cancelled_are_skipped_and_counted(tmp_path, caplog):
    tasks = [
        {"id": 1, "data": {"text": "loved it"}, "annotations": [_annotation("pos")]},
        {"id": 2, "data": {"text": "hated it"}, "annotations": [_annotation("neg")]},
        {"id": 3, "data": {"text": "not yet"}, "annotations": []},
        {"id": 4, "data": {"text": "no key"}},
        {"id": 5, "data": {"text": "skipped"}, "annotations": [_annotation("pos", cancelled=True)]},
        {"id": 6, "data": {"text": "   "}, "annotations": [_annotation("pos")]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with caplog.at_level(logging.WARNING, logger=replay.__name__):
        d = replay.load_source(str(path))
    assert sorted(zip(d.texts, d.labels)) == [("hated it", "neg"), ("loved it", "pos")]
    assert "skipped 4 of 6 tasks" in caplog.text
    assert "2 without annotations (task ids 3, 4)" in caplog.text
    assert "1 with only cancelled annotations (task ids 5)" in caplog.text
    assert "1 whose text under 'text' is blank or unreadable (task ids 6)" in caplog.text


def test_export_with_no_submitted_annotation_is_a_clear_error(tmp_path):
    tasks = [{"id": 1, "data": {"text": "a"}, "annotations": [_annotation("pos", cancelled=True)]},
             {"id": 2, "data": {"text": "b"}, "annotations": []}, {"id": 3, "data": {"text": "c"}}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    err = _fails(str(path))
    assert "no submitted annotation has a choices, number or rating result (3 tasks: 2 without annotations, 1 with only cancelled" in err
