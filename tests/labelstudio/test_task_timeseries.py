"""``<TimeSeries>`` task data read as a record of summary numbers (``backend/labelstudio/task_timeseries.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.labelstudio.content import control_content
from backend.labelstudio.label_config import LabelConfig, parse_label_config
from backend.labelstudio.task_data import TaskDataError
from backend.labelstudio import task_timeseries

JSON_CONFIG = ('<View><TimeSeries name="ts" value="$ts" valueType="json" timeColumn="time">'
               '<Channel column="power"/><Channel column="temp"/></TimeSeries>'
               '<Choices name="season" toName="ts"><Choice value="winter"/><Choice value="summer"/></Choices></View>')
CSV_CONFIG = ('<View><TimeSeries name="ts" value="$csv" sep=";" timeColumn="t"/>'
              '<Choices name="season" toName="ts"><Choice value="winter"/><Choice value="summer"/></Choices></View>')


def test_a_time_series_config_is_predicted_and_keeps_its_channels_through_storage():
    cfg = parse_label_config(JSON_CONFIG)
    (control,) = cfg.controls
    obj = control.objects[0]
    assert control.kind == "numbers" and obj.tag == "TimeSeries" and not obj.is_url
    assert obj.channels == ("power", "temp") and obj.time_column == "time"
    assert LabelConfig.from_dict(cfg.to_dict()) == cfg
    csv_obj = parse_label_config(CSV_CONFIG).controls[0].objects[0]
    assert csv_obj.is_url and csv_obj.sep == ";" and csv_obj.channels == ()  # Label Studio's default is a CSV link


def test_each_channel_becomes_the_same_named_summary_whatever_its_length():
    control = parse_label_config(JSON_CONFIG).controls[0]
    day = list(range(24))
    a = control_content({"ts": {"time": day, "power": [float(h) for h in day], "temp": [5.0] * 24}}, control,
                        max_chars=100)
    b = control_content({"ts": {"time": day[:6], "power": [1, "2", None, 4, 5, 6], "temp": [1, 2, 3, 4, 5, 6]}},
                        control, max_chars=100)
    assert set(a) == set(b) and len(a) == 2 * (10 + len(task_timeseries.QUANTILES) + task_timeseries.SEGMENTS)
    assert "time.mean" not in a  # the time column is not a channel
    assert a["power.mean"] == pytest.approx(11.5) and a["power.slope"] == pytest.approx(23.0)
    assert a["power.argmax"] == 1.0 and a["power.first"] == 0.0 and a["temp.std"] == 0.0
    assert a["power.seg0"] == pytest.approx(1.0) and a["power.seg7"] == pytest.approx(22.0)
    assert b["power.mean"] == pytest.approx(18 / 5)  # None is missing, "2" is a number


def test_a_csv_link_is_read_through_the_fetcher_with_the_configs_separator():
    control = parse_label_config(CSV_CONFIG).controls[0]
    links = []

    def fetch(link: str, binary: bool = False) -> str:
        links.append(link)
        return "t;load;note\n0;1.5;x\n1;2.5;y\n2;3.5;z\n"

    got = control_content({"csv": " /data/upload/3/day.csv "}, control, max_chars=100, fetch=fetch)
    assert links == ["/data/upload/3/day.csv"]
    assert got["load.mean"] == pytest.approx(2.5) and not any(k.startswith(("t.", "note.")) for k in got)
    with pytest.raises(TaskDataError, match="no Label Studio URL is configured"):
        control_content({"csv": "/data/upload/3/day.csv"}, control, max_chars=100)


@pytest.mark.parametrize("value, reason", [
    ({"time": [1, 2], "power": ["a", None]}, "holds no number"),
    ({"time": [1, 2], "volts": [1, 2]}, "has none of the channels power, temp"),
    ([1, 2, 3], "should be an object of columns"),
    ({"power": 3}, "should be an object of columns"),
    ("not json", "not JSON"),
    ({"power": [0.0] * (task_timeseries.MAX_VALUES + 1)}, "at most that is read"),
])
def test_series_that_cannot_be_read_are_a_per_task_skip_with_the_reason(value, reason):
    control = parse_label_config(JSON_CONFIG).controls[0]
    with pytest.raises(TaskDataError, match=reason):
        control_content({"ts": value}, control, max_chars=100)


def test_a_channel_without_numbers_is_missing_not_fatal():
    control = parse_label_config(JSON_CONFIG).controls[0]
    got = control_content({"ts": {"power": [1, 2, 3], "temp": ["n/a"] * 3}}, control, max_chars=100)
    assert "power.mean" in got and not any(k.startswith("temp.") for k in got)
    assert all(math.isfinite(v) for v in got.values())


def test_the_built_in_series_read_as_tasks_are():
    from backend.simulation.datasets import load_dataset, load_series

    series, labels = load_series("italy-power-demand")
    ds = load_dataset("italy-power-demand")
    assert len(series) == len(ds.texts) == 1029 and {len(s) for s in series} == {24} and set(labels) == {"1", "2"}
    control = parse_label_config(JSON_CONFIG.replace("power", "demand").replace('<Channel column="temp"/>', ""))
    got = control_content({"ts": {"demand": series[0]}}, control.controls[0], max_chars=100)
    assert got == pytest.approx(ds.texts[0]) and np.isclose(got["demand.mean"], np.mean(series[0]))
