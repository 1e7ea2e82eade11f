"""Get a record of named numbers out of a task's data (``<Table>``, or any numeric field).

A task's field may hold a list of numbers (``[5.1, 3.5, 1.4]``: named by
position), an object of named numbers (``{"age": 41, "bmi": 27.3}``, as
``<Table>`` shows it), or either one as JSON text.  Values are read as the
user would: numbers, ``true``/``false`` as 1/0, and numeric text such as
``"3.5"``; anything else (``null``, ``""``, ``"n/a"``, a nested object) is a
*missing* value, which the numeric featurizer imputes.  Only a record with
no number at all is a per-task skip.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from backend.labelstudio.task_data import TaskDataError

#: More fields than this are refused (a record is a row of a table, not a data set).
MAX_FIELDS = 10_000


def as_number(value: Any) -> float:
    """A value as the user means it: a number, true/false as 1/0, numeric text; NaN for anything else."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip().replace(",", ""))
        except ValueError:
            return math.nan
    else:
        return math.nan
    return x if math.isfinite(x) else math.nan


def record(value: Any, key: str) -> dict[str, float]:
    """``value`` as ``{field name: number or NaN}``; ``TaskDataError`` when it holds no number."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise TaskDataError(f"'{key}' should be a list or an object of numbers, got text that is not JSON") from None
    if isinstance(value, list):
        value = {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise TaskDataError(f"'{key}' should be a list or an object of numbers, got {type(value).__name__}")
    if len(value) > MAX_FIELDS:
        raise TaskDataError(f"'{key}' has {len(value)} fields; at most {MAX_FIELDS} are read")
    out = {str(k): as_number(v) for k, v in value.items()}
    if not any(not math.isnan(x) for x in out.values()):
        raise TaskDataError(f"'{key}' holds no number")
    return out
