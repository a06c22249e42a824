"""Group commit of the audit chain and the prediction log: one transaction for many requests.

Every request's audit entry, and every prediction it logs, must be stored before its answer
goes out. Stored one transaction per request, the chain's read-modify-write and the commit
cost more than scoring a patient. A journal stores everything queued while it was writing in
one transaction (:meth:`AuditTrail.write`), chained in arrival order, then releases every
request of the batch. A request still waits for its own commit, so nothing is answered that is
not recorded; under load the requests share commits. The middleware submits a request's audit
event together with the prediction rows its handler left in ``scope["state"]["predictions"]``,
so a request waits for one commit. :func:`journal_for` picks one of two journals:

- :class:`LoopJournal` (SQLite) commits on the event loop itself, once per pass of the loop. A
  SQLite commit in write-ahead-log mode with ``synchronous=NORMAL`` writes to the operating
  system's cache and syncs nothing (the checkpoint thread does that: :mod:`._checkpoint`), so it
  is a fraction of a millisecond of CPU. A thread doing it instead had to win Python's GIL from
  the busy event loop several times per commit (the sqlite3 module releases it around every
  statement), up to the 5 ms switch interval each time: that wait was the tail of the latency
  under load. When another process holds the writer lock, the loop polls it for up to 2 ms
  (another worker's commit holds it for a fraction of a millisecond: a pass of the busy loop
  takes longer); a lock held longer than that is tried again between other requests.
- :class:`Journal` (PostgreSQL, or any other server) commits on a writer thread: a commit there
  is a network round trip, which must not hold up the event loop.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from permed.serve._audit import AuditTrail
from permed.serve._storage import BUSY_SECONDS, WriterBusy

__all__ = ["Journal", "LoopJournal", "journal_for"]

_MOST_PER_COMMIT = 512
# LoopJournal: how long a commit polls a writer lock held by another process on the event loop,
# then the pauses between tries (doubled each time) while requests are served meanwhile
_PATIENCE_ON_LOOP = 0.002
_FIRST_PAUSE, _LONGEST_PAUSE = 0.001, 0.01


def journal_for(trail: AuditTrail) -> Journal | LoopJournal:
    """The journal for the trail's database: on the event loop for SQLite, a thread otherwise.
    """
    if trail.storage.engine.dialect.name == "sqlite":
        return LoopJournal(trail)
    return Journal(trail)


@dataclass
class _Item:
    events: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]


class _Recorder(abc.ABC):
    """What the middleware calls: :meth:`record` hands the request to ``_submit`` and waits."""

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
        self._submit(item)
        await item.done

    @abc.abstractmethod
    def _submit(self, item: _Item) -> None:
        """Queue ``item`` for a commit that settles ``item.done``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Commit what is queued and stop."""


class Journal(_Recorder):
    """The service's writer of audit entries and prediction rows, on a thread of its own.

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

    def _submit(self, item: _Item) -> None:
        self._start()
        self._queue.put(item)

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
        error = _write(self.trail, batch, BUSY_SECONDS)
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for item in batch:
            loops.setdefault(item.loop, []).append(item.done)
        for loop, futures in loops.items():  # one wake-up per event loop, not per request
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, futures, error)


class LoopJournal(_Recorder):
    """The service's writer of audit entries and prediction rows, on each event loop that
    records: everything a pass of the loop recorded is committed in one transaction at the
    start of the next pass.

    Parameters
    ----------
    trail : AuditTrail
        Chains the entries and stores them with the prediction rows (SQLite).
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        # per event loop (an application may be driven from several): its queued requests
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}

    def _submit(self, item: _Item) -> None:
        pending = self._pending.get(item.loop)
        if pending is None:  # no commit scheduled on this loop
            self._pending[item.loop] = [item]
            item.loop.call_soon(self._flush, item.loop, None)
        else:
            pending.append(item)

    def close(self) -> None:
        """Commit what is queued (waiting for the writer lock as long as it takes)."""
        for loop in list(self._pending):
            batch = self._pending.pop(loop, [])
            error = _write(self.trail, batch, BUSY_SECONDS)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                _settle([item.done for item in batch], error)

    def _flush(self, loop: asyncio.AbstractEventLoop, deadline: float | None,
               pause: float = _FIRST_PAUSE) -> None:
        """Commit the loop's queued requests; ``deadline`` is set once the writer lock was
        found busy (then each try is one attempt, and ``pause`` the wait before the next)."""
        pending = self._pending.get(loop)
        if not pending:
            self._pending.pop(loop, None)
            return
        batch = pending[:_MOST_PER_COMMIT]
        error = _write(self.trail, batch, _PATIENCE_ON_LOOP if deadline is None else 0.0)
        if isinstance(error, WriterBusy):
            if deadline is None:
                deadline = time.monotonic() + BUSY_SECONDS
            if time.monotonic() < deadline:  # try again; requests arriving meanwhile join in
                loop.call_later(pause, self._flush, loop, deadline,
                                min(2 * pause, _LONGEST_PAUSE))
                return
            error = WriterBusy(f"the database's writer lock was held by another connection "
                               f"for {BUSY_SECONDS:g} s")
        del pending[:len(batch)]
        if pending:  # more than one commit's worth arrived
            loop.call_soon(self._flush, loop, None)
        else:
            del self._pending[loop]
        _settle([item.done for item in batch], error)


def _write(trail: AuditTrail, batch: list[_Item], patience: float) -> Exception | None:
    """Store a batch's events and prediction rows in one transaction; the error if that
    failed (every request of the batch hears of it)."""
    try:
        trail.write([e for item in batch for e in item.events],
                    [p for item in batch for p in item.predictions], patience)
    except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
        return exc
    return None


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
