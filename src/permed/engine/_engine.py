"""Where fan-out work runs: in-process worker processes by default, a Dask cluster when asked.

Both engines run the same picklable ``fn(item)`` calls and return results in item order, so a
run gives the same numbers on a laptop and on a cluster for the same seed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from joblib import Parallel, delayed

from permed.engine._progress import Progress, SilentProgress
from permed.exceptions import PermedError

__all__ = ["DaskEngine", "Engine", "EngineTaskError", "LocalEngine", "as_items", "get_engine"]

Describe = Callable[[Any], str]

# loky replaces a worker whose memory grew by 300 MB over its tasks (its leak heuristic: a
# forest fitted on thousands of patients trips it) and warns, though no task is lost and the
# results are unchanged. Users read it as a fault, so the engine keeps it off their screen.
_WORKER_REPLACED = "A worker stopped while some jobs were given to the executor"


class EngineTaskError(RuntimeError):
    """One fan-out task failed; the message names the task by its parameters."""


class Engine:
    """Run ``fn(item)`` for every item and return the results in item order.

    ``describe(item)`` names a task in error messages (e.g. ``"model=lightgbm fold=2"``).
    """

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, label: str = "work",
            progress: Progress | None = None, describe: Describe | None = None) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (a no-op for the local engine)."""


def _guarded(fn: Callable[[Any], Any], describe: Describe | None, label: str) -> Callable:
    return _Guarded(fn, describe, label)


class _Guarded:
    """``fn`` whose exceptions say which task failed (picklable for worker processes)."""

    def __init__(self, fn: Callable[[Any], Any], describe: Describe | None, label: str) -> None:
        self.fn, self.describe, self.label = fn, describe, label

    def __call__(self, item: Any) -> Any:
        try:
            return self.fn(item)
        except PermedError:
            raise
        except Exception as exc:
            # never the item itself: a fold task holds the patients' table
            name = self.describe(item) if self.describe else f"a {type(item).__name__}"
            raise EngineTaskError(
                f"{self.label} task ({name}) failed: {type(exc).__name__}: {exc}") from exc


class LocalEngine(Engine):
    """Worker processes on this machine (joblib/loky), one per core by default."""

    def __init__(self, n_jobs: int | None = None) -> None:
        self.n_jobs = n_jobs or max(1, min(os.cpu_count() or 1, 8))

    def map(self, fn, items, *, label="work", progress=None, describe=None):
        progress = progress or SilentProgress()
        items = list(items)
        task = _guarded(fn, describe, label)
        with progress.step(label, total=len(items)) as advance:
            if self.n_jobs == 1 or len(items) == 1:
                return [_tick(task(item), advance) for item in items]
            runner = Parallel(n_jobs=self.n_jobs, return_as="generator")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_WORKER_REPLACED, category=UserWarning)
                return [_tick(r, advance) for r in runner(delayed(task)(item) for item in items)]


class DaskEngine(Engine):
    """The same work on an existing Dask distributed cluster.

    A task whose worker dies is rescheduled on another worker by the scheduler (up to its
    ``allowed-failures``, 3 by default); a task that raises is retried ``retries`` times, then
    reported with its parameters.
    """

    def __init__(self, address: str, retries: int = 1) -> None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise PermedError(
                f"--cluster {address} needs Dask: pip install 'permed[distributed]'") from None
        try:
            self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise PermedError(
                f"cannot reach the Dask scheduler at '{address}' ({exc}): check the address "
                "(tcp://HOST:8786) and that the scheduler is running") from None
        self.retries = retries

    def map(self, fn, items, *, label="work", progress=None, describe=None):
        from dask.distributed import as_completed

        progress = progress or SilentProgress()
        items = list(items)
        futures = self.client.map(_guarded(fn, describe, label), items, pure=False,
                                  retries=self.retries)
        with progress.step(label, total=len(items)) as advance:
            for _ in as_completed(futures):
                advance()
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()


def _tick(result: Any, advance: Callable[..., None]) -> Any:
    advance()
    return result


def get_engine(cluster: str | None = None, n_jobs: int | None = None) -> Engine:
    """The engine for ``--cluster`` / ``PERMED_DASK_SCHEDULER``, else the local one."""
    address = cluster or os.environ.get("PERMED_DASK_SCHEDULER")
    return DaskEngine(address) if address else LocalEngine(n_jobs)


def as_items(*iterables: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Every combination of the iterables, as a flat list of tuples (for ``map``)."""
    result: list[tuple[Any, ...]] = [()]
    for iterable in iterables:
        result = [(*r, x) for r in result for x in iterable]
    return result
