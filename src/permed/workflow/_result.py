"""What a training run produces, before it is written to a run directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from permed.study import FittedSchema

__all__ = ["RunResult", "Timings"]


@dataclass
class RunResult:
    """Metrics, held-out predictions and the fitted model of one run."""

    task: str
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    model: Any
    schema: FittedSchema
    warnings: list[str] = field(default_factory=list)
    # further JSON files of the run directory, by name (e.g. explanations.json)
    files: dict[str, Any] = field(default_factory=dict)
    # index labels, in the table as read, of the development and test patients: train_run
    # keeps their digests (row_digests.json) for permed evaluate to find them again
    split_rows: tuple[pd.Index, pd.Index] | None = None


class Timings(dict):
    """Seconds per step: ``with timings("cv"): ...``."""

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[step] = round(self.get(step, 0.0) + time.perf_counter() - started, 3)
