"""Get the image an ``<Image>`` object shows out of a task's data, as a pixel array.

Label Studio gives an image as a URL: ``/data/upload/...`` (files uploaded
to the project), ``/data/local-files/?d=...`` (local storage), ``http(s)``,
or the image itself as a ``data:`` URI.  URLs are read by the one safe
fetcher (``backend/labelstudio/fetch.py``); a ``data:`` URI is decoded
here, without any network.  Image files are hostile input like the rest of
the task data, so:

* the encoded size is capped by ``AL_FETCH_MAX_BYTES`` (for a ``data:`` URI
  too), and the pixel count by :data:`MAX_PIXELS` *before* the pixels are
  decoded, so a small file that claims to be a huge image (a decompression
  bomb) costs nothing;
* every decoding problem is a per-task skip with a reason
  (:class:`~backend.labelstudio.task_data.TaskDataError`), never a failed
  request;
* the decoded image is shrunk to at most :data:`MAX_SIDE` pixels on its long
  side: the featurizers look at 224 pixels at most, and a refresh holds a
  batch of decoded images at a time.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import numpy as np

from backend.labelstudio.task_data import Fetch, TaskDataError

#: Images claiming more pixels are refused unread (a 40-megapixel photo passes).
MAX_PIXELS = 50_000_000
#: Long side of the decoded array (the featurizers resize further, to 224 at most).
MAX_SIDE = 512
TOO_BIG = f"images over {MAX_PIXELS:,} pixels are not read"
DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                      re.IGNORECASE)


def data_uri_bytes(uri: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded), refusing more than ``max_bytes``."""
    m = DATA_URI.match(uri)
    if m is None:
        raise TaskDataError("the data: URI is malformed (expected data:image/png;base64,...)")
    payload = uri[m.end():]
    if len(payload) * 3 // 4 > max_bytes:
        raise TaskDataError(f"the data: URI holds more than AL_FETCH_MAX_BYTES ({max_bytes} bytes)")
    if not m.group("b64"):
        from urllib.parse import unquote_to_bytes
        return unquote_to_bytes(payload)
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise TaskDataError("the data: URI is not valid base64") from None


def decode_image(raw: bytes) -> np.ndarray:
    """``raw`` (PNG, JPEG, GIF, WebP, BMP, TIFF…) as a uint8 array: HxW (grey) or HxWx3 (RGB).

    EXIF orientation is applied, as browsers do when Label Studio shows the
    image; transparency is dropped; an animation gives its first frame.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise TaskDataError(f"the image is {width}x{height} pixels; {TOO_BIG}")
                im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale (much faster)
                im = ImageOps.exif_transpose(im)
                im = im.convert("L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB")
                im.thumbnail((MAX_SIDE, MAX_SIDE))
                return np.asarray(im, dtype=np.uint8)
    except TaskDataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TaskDataError(f"the image claims a huge size; {TOO_BIG}") from None
    except UnidentifiedImageError:
        raise TaskDataError("the file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP or TIFF)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise TaskDataError(f"the image could not be decoded ({type(exc).__name__})") from None


def image_array(value: object, key: str, fetch: Fetch | None, *, max_bytes: int) -> np.ndarray:
    """The image a task's ``value`` (a URL or a ``data:`` URI) points to, decoded."""
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"'{key}' should be an image URL, got {type(value).__name__ if value else 'nothing'}")
    link = value.strip()
    if link[:5].lower() == "data:":
        raw = data_uri_bytes(link, max_bytes)
    elif fetch is None:
        raise TaskDataError(f"'{key}' is an image URL and no Label Studio URL is configured to read it "
                            "(set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    else:
        raw = fetch(link, binary=True)
    return decode_image(raw)
