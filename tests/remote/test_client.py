"""The remote ML backend's protocol, against a real server on loopback speaking it (``harness.remote_backend``)."""

from __future__ import annotations

import time

import pytest

from backend.remote.client import RemoteError, RemoteModel, batches, retry_delay
from backend.remote.uncertainty import uncertainties
from harness.remote_backend import Behaviour, RemoteBackend

CONFIG = '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">' \
         '<Label value="car"/></RectangleLabels></View>'


def _tasks(confidences):
    return [{"id": i, "data": {"image": f"/data/upload/1/{i}.jpg", "confidence": c}} for i, c in enumerate(confidences)]


def test_predictions_come_back_one_per_task_in_order_with_their_version():
    with RemoteBackend() as remote:
        model = RemoteModel(remote.url, timeout=5)
        assert model.health()
        got = model.predict(_tasks([0.9, 0.2, 0.6]), project="1.1", label_config=CONFIG)
        assert [p["result"][0]["type"] for p in got] == ["rectanglelabels"] * 3
        assert all(p["model_version"] == "detector-v1" for p in got)
        assert uncertainties(got).tolist() == pytest.approx([0.1, 0.8, 0.4])
        assert remote.behaviour.calls == [3]


def test_a_slow_remote_is_a_timeout_error_not_a_hang():
    with RemoteBackend(Behaviour(delay=2.0)) as remote:
        t0 = time.monotonic()
        with pytest.raises(RemoteError, match="took longer than 0.5 s"):
            RemoteModel(remote.url, timeout=0.5).predict(_tasks([0.5]), project="1.1", label_config=CONFIG)
        assert time.monotonic() - t0 < 2.0


def test_a_failing_remote_is_an_error_naming_its_status():
    with RemoteBackend(Behaviour(fail=True)) as remote:
        with pytest.raises(RemoteError, match="HTTP 500"):
            RemoteModel(remote.url, timeout=5).predict(_tasks([0.5]), project="1.1", label_config=CONFIG)


def test_nobody_listening_is_an_error():
    with RemoteBackend() as remote:
        url = remote.url
    with pytest.raises(RemoteError, match="could not be reached"):
        RemoteModel(url, timeout=2).predict(_tasks([0.5]), project="1.1", label_config=CONFIG)
    assert not RemoteModel(url, timeout=2).health()


@pytest.mark.parametrize("url", ["ftp://host/x", "http://user:pw@host:9090", "http://host:9090/?a=1", "host:9090",
                                 "http://"])
def test_urls_outside_the_protocol_are_refused(url):
    with pytest.raises(ValueError):
        RemoteModel(url)


def test_credentials_stay_out_of_the_repr():
    model = RemoteModel("http://127.0.0.1:9/", auth=("lead", "s3cret"))
    assert "s3cret" not in repr(model) and model.url == "http://127.0.0.1:9"


def test_batches_and_back_off():
    assert [list(b) for b in batches(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        list(batches([1], 0))
    assert [retry_delay(n) for n in range(0, 5)] == [0.0, 5.0, 10.0, 20.0, 40.0]
    assert retry_delay(100) == 300.0
