"""Get a ``<TimeSeries>`` out of a task's data, as a record of summary numbers per channel.

Label Studio 1.23 gives a series in one of two ways (its ``TimeSeries``
tag): with ``valueType="url"``, the default, the task holds a link to a CSV
file with a header row (``sep`` separates the columns); with
``valueType="json"``, the task holds the columns themselves, an object of
equal-length lists (``{"time": [...], "power": [...]}``).  The channels are
the ``<Channel column="...">`` tags, or every column but ``timeColumn``.

A model wants the same features for series of any length, so each channel
becomes a fixed set of named numbers: its level and spread (mean, standard
deviation, quantiles, minimum, maximum), its trend (least-squares slope
over the series scaled to [0, 1], first and last values), how much it
moves (mean absolute step), where its peak and trough fall, and its shape
as the means of :data:`SEGMENTS` equal stretches (piecewise aggregate
approximation, Keogh et al. 2001).  The numbers' featurizer then
standardises them like any record (``backend/learning/featurizers/numbers.py``).
Values that are not numbers are missing and skipped; a channel with none
is missing in every summary number; a series with no number at all is a
per-task skip.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from backend.labelstudio.task_data import Fetch, TaskDataError
from backend.labelstudio.task_numbers import as_number
from backend.labelstudio.tasktypes import ObjectTag

#: Equal stretches whose means describe a channel's shape.
SEGMENTS = 8
#: Most values read per task (all channels together) and most channels.
MAX_VALUES = 2_000_000
MAX_CHANNELS = 64
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _columns_from_csv(text: str, sep: str, key: str) -> dict[str, list]:
    rows = csv.reader(io.StringIO(text), delimiter=sep if len(sep) == 1 else ",")
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise TaskDataError(f"the CSV file of '{key}' is empty") from None
    columns: dict[str, list] = {h: [] for h in header}
    count = 0
    for row in rows:
        count += len(row)
        if count > MAX_VALUES:
            raise TaskDataError(f"the series of '{key}' has more than {MAX_VALUES:,} values; at most that is read")
        for h, v in zip(header, row):
            columns[h].append(v)
    return columns


def _columns(value: Any, obj: ObjectTag, fetch: Fetch | None) -> dict[str, list]:
    key = obj.value_key
    if isinstance(value, str) and obj.is_url:
        if fetch is None:
            raise TaskDataError(f"'{key}' is a URL and no Label Studio URL is configured to read it "
                                "(set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
        return _columns_from_csv(fetch(value.strip()), obj.sep, key)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise TaskDataError(f"'{key}' should be an object of columns (valueType=\"json\"), "
                                "got text that is not JSON") from None
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise TaskDataError(f"'{key}' should be an object of columns, each a list of values "
                            f"(valueType=\"json\"), got {type(value).__name__}")
    if sum(len(v) for v in value.values()) > MAX_VALUES:
        raise TaskDataError(f"the series of '{key}' has more than {MAX_VALUES:,} values; at most that is read")
    return {str(k): v for k, v in value.items()}


def _summary(name: str, values: np.ndarray) -> dict[str, float]:
    """The fixed set of numbers describing one channel (NaN-free input, at least one value)."""
    n = values.size
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    out = {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
           "max": float(values.max()), "first": float(values[0]), "last": float(values[-1]),
           "slope": float(np.polyfit(t, values, 1)[0]) if n > 1 else 0.0,
           "step": float(np.abs(np.diff(values)).mean()) if n > 1 else 0.0,
           "argmax": float(t[int(values.argmax())]), "argmin": float(t[int(values.argmin())])}
    out.update({f"q{int(q * 100)}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))})
    # A series shorter than SEGMENTS is interpolated, so every series has the same SEGMENTS shape numbers.
    shape = ([part.mean() for part in np.array_split(values, SEGMENTS)] if n >= SEGMENTS
             else np.interp(np.linspace(0.0, 1.0, SEGMENTS), t, values))
    out.update({f"seg{i}": float(v) for i, v in enumerate(shape)})
    return {f"{name}.{k}": v for k, v in out.items()}


def summary(value: Any, obj: ObjectTag, fetch: Fetch | None = None) -> dict[str, float]:
    """The series in ``value`` as ``{"<channel>.<feature>": number}``; ``TaskDataError`` when it holds no number."""
    columns = _columns(value, obj, fetch)
    names = list(obj.channels) or [c for c in columns if c != obj.time_column]
    if len(names) > MAX_CHANNELS:
        raise TaskDataError(f"the series of '{obj.value_key}' has {len(names)} channels; at most {MAX_CHANNELS} are read")
    missing = [c for c in names if c not in columns]
    if missing and len(missing) == len(names):
        raise TaskDataError(f"the series of '{obj.value_key}' has none of the channels {', '.join(names[:5])} "
                            f"(columns: {', '.join(list(columns)[:10]) or 'none'})")
    record: dict[str, float] = {}
    for name in names:
        values = np.array([as_number(v) for v in columns.get(name, [])], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size:
            record.update(_summary(name, values))
    if not record:
        raise TaskDataError(f"the series of '{obj.value_key}' holds no number")
    return {k: (v if math.isfinite(v) else math.nan) for k, v in record.items()}
