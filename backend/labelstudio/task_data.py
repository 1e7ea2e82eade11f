"""Get the text a control reads out of a task's data (images: ``task_images.py``; any kind: ``content.py``).

Task data is whatever the user imported, so every problem here is a per-task
skip with a reason (``TaskDataError``), never a failed request.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Protocol

import orjson

from backend.labelstudio.tasktypes import Control, ObjectTag

URL_PATTERN = re.compile(r"^(https?://|/data/|/storage-data/)", re.IGNORECASE)



class Fetch(Protocol):
    """Reads a URL given in task data: its text, or with ``binary`` its bytes (``fetch.SafeFetcher.for_project``)."""

    def __call__(self, link: str, binary: bool = False) -> str | bytes: ...


class TaskDataError(ValueError):
    """This task cannot be featurised; the message is the logged reason."""


class _TextOnly(HTMLParser):
    """Collects text nodes, skipping scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def _paragraphs_text(value: Any, obj: ObjectTag) -> str:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise TaskDataError(f"'{obj.value_key}' should be a list of paragraphs, got text that is not JSON") from None
    if not isinstance(value, list):
        raise TaskDataError(f"'{obj.value_key}' should be a list of paragraphs, got {type(value).__name__}")
    parts = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get(obj.text_key), str):
            parts.append(item[obj.text_key])
    if not parts:
        raise TaskDataError(f"no paragraph in '{obj.value_key}' has a text under '{obj.text_key}'")
    return "\n".join(parts)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def without_lone_surrogates(value: Any) -> Any:
    """``value`` with lone UTF-16 surrogates (JSON's ``"\\ud800"``) replaced by U+FFFD.

    JSON may escape a lone surrogate, and Python's parser accepts it, but no
    UTF-8 encoder (orjson, Redis, the featuriser) does: one such character
    in one task used to fail the whole request with a 500.  The common case
    costs one ``orjson.dumps``; only a payload that fails it is rebuilt.
    """
    try:
        orjson.dumps(value)
    except TypeError:
        return _scrub(value)
    return value


def object_value(data: Any, obj: ObjectTag) -> Any:
    """What ``data`` holds under the object tag's key (any kind); ``TaskDataError`` naming the keys there are."""
    if not isinstance(data, dict):
        raise TaskDataError(f"task data is {type(data).__name__}, expected an object")
    if obj.value_key not in data:
        keys = ", ".join(sorted(map(str, data))[:10]) or "none"
        raise TaskDataError(f"task data has no key '{obj.value_key}' (keys: {keys})")
    return data[obj.value_key]


def object_text(data: dict, obj: ObjectTag, fetch: Fetch | None = None) -> str:
    """The text of one object tag in ``data`` (fetched when it is a URL)."""
    value = object_value(data, obj)
    if isinstance(value, str) and (obj.is_url or URL_PATTERN.match(value.strip())):
        if fetch is None:
            raise TaskDataError(
                f"'{obj.value_key}' is a URL and no Label Studio URL is configured to read it "
                "(set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)"
            )
        value = fetch(value.strip())
    if obj.tag == "Paragraphs":
        return _paragraphs_text(value, obj)
    if not isinstance(value, str):
        raise TaskDataError(f"'{obj.value_key}' holds {type(value).__name__}, expected text")
    return html_to_text(value) if obj.tag == "HyperText" else value


def control_text(data: Any, control: Control, *, max_chars: int, fetch: Fetch | None = None) -> str:
    """The text a control classifies: its objects' texts joined, cut to ``max_chars``.

    Raises
    ------
    TaskDataError
        Missing key, wrong type, unreadable URL or empty text.
    """
    text = "\n".join(object_text(data, obj, fetch) for obj in control.objects).strip()
    if not text:
        raise TaskDataError("the text is empty")
    return text[:max_chars]


def exact_text(data: Any, control: Control, *, max_chars: int, fetch: Fetch | None = None) -> str:
    """The text of a control's one object exactly as Label Studio shows it: not stripped, only cut.

    A span's ``start``/``end`` index this very string, so nothing may move
    a character; cutting at ``max_chars`` keeps every offset before the cut.

    Raises
    ------
    TaskDataError
        Missing key, wrong type, unreadable URL or a text of only whitespace.
    """
    text = object_text(data, control.objects[0], fetch)
    if not text.strip():
        raise TaskDataError("the text is empty")
    return text[:max_chars]
