"""Where fan-out work runs: in-process worker processes by default, a Dask cluster when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from joblib import Parallel, delayed

from permed.engine._progress import Progress, SilentProgress
from permed.exceptions import PermedError

__all__ = ["DaskEngine", "Engine", "LocalEngine", "get_engine"]


class Engine:
    """Run ``fn(item)`` for every item and return the results in item order."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, label: str = "work",
            progress: Progress | None = None) -> list[Any]:
        raise NotImplementedError


class LocalEngine(Engine):
    """Worker processes on this machine (joblib/loky), one per core by default."""

    def __init__(self, n_jobs: int | None = None) -> None:
        self.n_jobs = n_jobs or max(1, min(os.cpu_count() or 1, 8))

    def map(self, fn, items, *, label="work", progress=None):
        progress = progress or SilentProgress()
        items = list(items)
        with progress.step(label, total=len(items)) as advance:
            if self.n_jobs == 1 or len(items) == 1:
                return [_tick(fn(item), advance) for item in items]
            runner = Parallel(n_jobs=self.n_jobs, return_as="generator")
            return [_tick(r, advance) for r in runner(delayed(fn)(item) for item in items)]


class DaskEngine(Engine):
    """The same work on an existing Dask distributed cluster."""

    def __init__(self, address: str) -> None:
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

    def map(self, fn, items, *, label="work", progress=None):
        from dask.distributed import as_completed

        progress = progress or SilentProgress()
        items = list(items)
        futures = self.client.map(fn, items, pure=False, retries=2)
        with progress.step(label, total=len(items)) as advance:
            for _ in as_completed(futures):
                advance()
        return self.client.gather(futures)


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
