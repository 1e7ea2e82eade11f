"""Getting a control's text out of task data: every problem is a per-task reason."""

from __future__ import annotations

import pytest

from backend.labelstudio.label_config import parse_label_config
from backend.labelstudio.task_data import TaskDataError, control_text, html_to_text

TEXT = parse_label_config(
    '<View><Text name="t" value="$review"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>'
).controls[0]
HTML = parse_label_config(
    '<View><HyperText name="t" value="$html"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>'
).controls[0]
PARAS = parse_label_config(
    '<View><Paragraphs name="t" value="$chat"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>'
).controls[0]


def test_text_under_any_key():
    assert control_text({"review": " good film "}, TEXT, max_chars=100) == "good film"


def test_hypertext_is_stripped_of_markup():
    html = "<p>Hello <b>world</b></p><script>alert(1)</script><style>p{}</style>"
    assert control_text({"html": html}, HTML, max_chars=100) == "Hello world"
    assert html_to_text("a &amp; b") == "a & b"


def test_paragraphs_are_joined():
    chat = [{"author": "x", "text": "hi"}, {"author": "y", "text": "there"}, {"author": "z"}]
    assert control_text({"chat": chat}, PARAS, max_chars=100) == "hi\nthere"


def test_long_text_is_cut():
    assert len(control_text({"review": "x" * 5_000_000}, TEXT, max_chars=1000)) == 1000


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"other": "x"}, "no key 'review' (keys: other)"),
        ({"review": ""}, "empty"),
        ({"review": "   "}, "empty"),
        ({"review": 42}, "holds int, expected text"),
        ({"review": None}, "holds NoneType"),
        ("not a dict", "task data is str"),
        ({"review": "https://example.org/a.txt"}, "no Label Studio URL"),
    ],
)
def test_bad_task_data_gives_a_reason(data, reason):
    with pytest.raises(TaskDataError) as err:
        control_text(data, TEXT, max_chars=100)
    assert reason in str(err.value)


def test_url_values_are_fetched():
    seen = []

    def fetch(url: str) -> str:
        seen.append(url)
        return "fetched text"

    assert control_text({"review": "/data/upload/1/a.txt"}, TEXT, max_chars=100, fetch=fetch) == "fetched text"
    assert seen == ["/data/upload/1/a.txt"]
