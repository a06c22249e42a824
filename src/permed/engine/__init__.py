"""Where fan-out work runs (CV folds x models, tuning trials, bootstrap, scoring partitions)."""

from permed.engine._engine import (
    DaskEngine,
    Engine,
    EngineTaskError,
    LocalEngine,
    as_items,
    get_engine,
)
from permed.engine._progress import Progress, SilentProgress

__all__ = ["DaskEngine", "Engine", "EngineTaskError", "LocalEngine", "Progress", "SilentProgress",
           "as_items", "get_engine"]
