"""The simulator's image and number inputs: CSV/JSONL files a user brings, read as the worker reads tasks."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from backend.simulation.datasets import load_fashion_mnist
from backend.simulation.replay import SimulationError, load_source


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """40 real images as PNG files, a CSV naming them (one path broken, one data: URI), and a JSONL of pixels."""
    out = tmp_path_factory.mktemp("fmnist")
    (out / "img").mkdir()
    images, labels = load_fashion_mnist(limit=40)
    with open(out / "images.csv", "w", newline="") as f, open(out / "pixels.jsonl", "w") as jsonl:
        rows = csv.writer(f)
        rows.writerow(["path", "kind"])
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(out / "img" / f"{i}.png")
            if i == 0:
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, "PNG")
                rows.writerow(["data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), label])
            else:
                rows.writerow([f"img/{i}.png", label])
            record = {f"p{j}": int(v) for j, v in enumerate(image.ravel()[:50])}
            jsonl.write(json.dumps({"pixels": record if i % 2 else list(record.values()), "kind": label}) + "\n")
        rows.writerow(["img/missing.png", labels[0]])
    return out, images, labels


def test_images_by_path_are_read_relative_to_the_file(files):
    out, images, labels = files
    ds = load_source(str(out / "images.csv"), image_column="path", label_column="kind")
    assert ds.kind == "image" and len(ds) == 40 and ds.labels == labels
    assert all(np.array_equal(a, b) for a, b in zip(ds.texts, images))  # the data: URI row too


def test_an_unreadable_image_skips_its_row_with_the_reason(files, caplog):
    out, _, _ = files
    load_source(str(out / "images.csv"), image_column="path", label_column="kind")
    assert "whose image under 'path' cannot be read (line 42 (" in caplog.text and "missing.png" in caplog.text


def test_records_of_numbers_are_read_from_lists_and_objects(files):
    out, images, _ = files
    ds = load_source(str(out / "pixels.jsonl"), number_column="pixels", label_column="kind")
    assert ds.kind == "numbers" and len(ds) == 40
    assert list(ds.texts[1].values())[:5] == [float(v) for v in images[1].ravel()[:5]]


def test_one_input_column_at_a_time(files):
    out, _, _ = files
    with pytest.raises(SimulationError, match="give one of --text-column, --image-column and --number-column"):
        load_source(str(out / "images.csv"), image_column="path", text_column="path", label_column="kind")


def test_simulate_runs_on_image_files_from_the_command_line(files, tmp_path):
    out, _, _ = files
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "simulate", str(out / "images.csv"), "--image-column",
                           "path", "--label-column", "kind", "--features", "hog", "--budget", "20", "--seeds", "2",
                           "--test-size", "0.3", "--no-progress", "--out", str(tmp_path / "sim")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "sim" / "results.json").read_text())
    assert result["dataset"]["rows"] == 40 and "| margin |" in proc.stdout
