"""Group commit of the audit chain and the prediction log: one transaction for many requests.

Every request's audit entry, and every prediction it logs, must be stored before its answer
goes out. Stored one transaction per request, the chain's read-modify-write and the commit
cost more than scoring a patient. A :class:`Journal` hands them to one writer thread instead:
the thread takes everything queued while it was writing, chains the entries in arrival order
and stores them and the prediction rows in one transaction (:meth:`AuditTrail.write`), then
releases every request of the batch. A request still waits for its own commit, so nothing is
answered that is not recorded; under load the requests share commits. The middleware
submits a request's audit event together with the prediction rows its handler left in
``scope["state"]["predictions"]``, so a request waits for one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

from permed.serve._audit import AuditTrail

__all__ = ["Journal"]

_MOST_PER_COMMIT = 512


@dataclass
class _Item:
    events: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


class Journal:
    """The service's writer of audit entries and prediction rows.

    Parameters
    ----------
    trail : AuditTrail
        Chains the entries and stores them with the prediction rows.
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def record(self, events: list[dict[str, Any]],
                     predictions: list[dict[str, Any]] | None = None) -> None:
        """Store audit events (:meth:`AuditTrail.event`) and prediction rows; return once they
        are committed.

        Raises
        ------
        Exception
            The database's error, when the commit failed.
        """
        loop = asyncio.get_running_loop()
        item = _Item(events, predictions or [], loop, loop.create_future())
        self._start()
        self._queue.put(item)
        await item.done

    def close(self) -> None:
        """Commit what is queued and stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="permed-journal",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < _MOST_PER_COMMIT:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            self._commit([item for item in batch if item is not None])

    def _commit(self, batch: list[_Item]) -> None:
        if not batch:
            return
        error: Exception | None = None
        try:
            self.trail.write([e for item in batch for e in item.events],
                             [p for item in batch for p in item.predictions])
        except Exception as exc:  # noqa: BLE001 - every waiting request hears of it
            error = exc
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for item in batch:
            loops.setdefault(item.loop, []).append(item.done)
        for loop, futures in loops.items():  # one wake-up per event loop, not per request
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, futures, error)


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
