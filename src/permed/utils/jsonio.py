"""JSON files that are valid JSON: NaN and infinities become null, numpy scalars plain numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["clean", "dumps", "read_json", "write_json"]


def clean(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def dumps(value: Any) -> str:
    """``value`` as indented, strict JSON text, ending with a newline."""
    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as indented, strict JSON."""
    Path(path).write_text(dumps(value))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
