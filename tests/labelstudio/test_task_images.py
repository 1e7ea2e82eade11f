"""Reading a task's image: data: URIs, Label Studio links through the safe fetcher, hostile files."""

from __future__ import annotations

import base64
import http.server
import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from backend.labelstudio import task_images, task_numbers
from backend.labelstudio.content import control_content
from backend.labelstudio.fetch import SafeFetcher
from backend.labelstudio.label_config import parse_label_config
from backend.labelstudio.task_data import TaskDataError
from backend.settings import Settings
from backend.simulation.datasets import load_fashion_mnist

IMAGE_CONFIG = ('<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
                '<Choice value="a"/><Choice value="b"/></Choices></View>')


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, fmt, **save)
    return buf.getvalue()


def data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


@pytest.fixture(scope="module")
def shirt() -> np.ndarray:
    return load_fashion_mnist(limit=1)[0][0]


def test_a_data_uri_is_decoded_without_any_network(shirt):
    control = parse_label_config(IMAGE_CONFIG).controls[0]
    got = control_content({"image": data_uri(png(shirt))}, control, max_chars=100)
    assert got.dtype == np.uint8 and got.shape == (28, 28) and np.array_equal(got, shirt)


def test_colour_modes_become_grey_or_rgb():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    assert task_images.decode_image(png(rgba, "RGBA")).shape == (10, 12, 3)
    palette = Image.fromarray(rgba[..., :3]).convert("P")
    buf = io.BytesIO()
    palette.save(buf, "GIF")
    assert task_images.decode_image(buf.getvalue()).shape == (10, 12, 3)
    sixteen = Image.fromarray(np.full((5, 6), 40000, np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, "PNG")
    assert task_images.decode_image(buf.getvalue()).shape == (5, 6)


def test_a_large_photo_is_shrunk_to_the_long_side_cap():
    photo = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    got = task_images.decode_image(png(photo, fmt="JPEG", quality=90))
    assert max(got.shape[:2]) == task_images.MAX_SIDE and got.shape[2] == 3
    assert abs(got.shape[1] / got.shape[0] - 1200 / 900) < 0.01  # the aspect ratio is kept


def test_exif_orientation_is_applied_as_a_browser_shows_it():
    tall = np.zeros((40, 20, 3), np.uint8)
    img = Image.fromarray(tall)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert task_images.decode_image(buf.getvalue()).shape[:2] == (20, 40)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("raw, reason", [
    (_png_claiming(30_000, 30_000), "images over 50,000,000 pixels are not read"),
    (_png_claiming(8_000, 8_000), "the image is 8000x8000 pixels; images over 50,000,000 pixels"),
    (b"GIF89a not really", "not an image that can be read"),
    (b"plain text, not an image", "not an image that can be read"),
    (b"", "not an image that can be read"),
])
def test_hostile_or_broken_files_are_a_per_task_skip(raw, reason):
    with pytest.raises(TaskDataError, match=reason):
        task_images.decode_image(raw)


def test_a_truncated_png_is_a_per_task_skip(shirt):
    raw = png(np.kron(shirt, np.ones((8, 8), np.uint8)))
    with pytest.raises(TaskDataError, match="could not be decoded|not an image"):
        task_images.decode_image(raw[: len(raw) // 2])


@pytest.mark.parametrize("uri, reason", [
    ("data:image/png;base64,!!!!", "not an image"),  # undecodable base64 gives no image
    ("data:image/png;base64", "malformed"),
    ("data:" + "A" * 100, "malformed"),
])
def test_bad_data_uris_say_what_is_wrong(uri, reason):
    with pytest.raises(TaskDataError, match=reason):
        task_images.image_array(uri, "image", None, max_bytes=1024)


def test_a_data_uri_over_the_byte_cap_is_refused_before_decoding(shirt):
    uri = data_uri(png(np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8)))
    with pytest.raises(TaskDataError, match="more than AL_FETCH_MAX_BYTES"):
        task_images.image_array(uri, "image", None, max_bytes=10_000)


def test_a_link_without_a_fetcher_or_not_a_string_is_explained():
    with pytest.raises(TaskDataError, match="no Label Studio URL is configured"):
        task_images.image_array("/data/upload/1/a.png", "image", None, max_bytes=1024)
    with pytest.raises(TaskDataError, match="should be an image URL, got int"):
        task_images.image_array(7, "image", None, max_bytes=1024)
    control = parse_label_config(IMAGE_CONFIG).controls[0]
    with pytest.raises(TaskDataError, match="task data has no key 'image'"):
        control_content({"text": "x"}, control, max_chars=100)


@pytest.fixture
def image_server(shirt):
    """A real HTTP server on loopback serving one PNG (as Label Studio serves /data/upload/...)."""
    body = png(shirt)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/data/upload/1/shirt.png" else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", body
    srv.shutdown()


def test_an_image_url_is_read_as_bytes_by_the_safe_fetcher(image_server, shirt):
    url, body = image_server
    fetcher = SafeFetcher(Settings(AL_FETCH_ALLOW_HOSTS="127.0.0.1"))
    assert fetcher.fetch(f"{url}/data/upload/1/shirt.png", None, binary=True) == body
    fetch = fetcher.for_project(lambda: {})
    got = task_images.image_array(f"{url}/data/upload/1/shirt.png", "image", fetch, max_bytes=2**20)
    assert np.array_equal(got, shirt)
    with pytest.raises(TaskDataError, match="could not be read"):  # a 404 is one and the same failure
        task_images.image_array(f"{url}/data/upload/1/other.png", "image", fetch, max_bytes=2**20)
    # A host nobody allowed is never asked.
    closed = SafeFetcher(Settings()).for_project(lambda: {})
    with pytest.raises(TaskDataError, match="could not be read"):
        task_images.image_array(f"{url}/data/upload/1/shirt.png", "image", closed, max_bytes=2**20)


@pytest.mark.parametrize("value, expected", [
    ([5.1, "3.5", None, True], {"0": 5.1, "1": 3.5, "2": float("nan"), "3": 1.0}),
    ({"age": 41, "income": "52,000", "note": "n/a"}, {"age": 41.0, "income": 52000.0, "note": float("nan")}),
    ('{"a": 1, "b": [2]}', {"a": 1.0, "b": float("nan")}),
    ({"x": float("inf"), "y": 2}, {"x": float("nan"), "y": 2.0}),
])
def test_records_of_numbers_are_read_as_a_user_would(value, expected):
    got = task_numbers.record(value, "row")
    assert got.keys() == expected.keys()
    assert all((np.isnan(got[k]) and np.isnan(v)) or got[k] == v for k, v in expected.items())


@pytest.mark.parametrize("value, reason", [
    ("not json", "not JSON"), (3.5, "got float"), ({"a": None, "b": "x"}, "holds no number"),
    ({str(i): i for i in range(task_numbers.MAX_FIELDS + 1)}, "at most"),
])
def test_records_without_numbers_are_a_per_task_skip(value, reason):
    with pytest.raises(TaskDataError, match=reason):
        task_numbers.record(value, "row")
