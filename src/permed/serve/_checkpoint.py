"""Background checkpoints of the service's SQLite database.

In WAL mode every commit appends to the write-ahead log, and the connection whose commit
takes the log past 1,000 pages copies it back into the database file and syncs both (SQLite's
automatic checkpoint). In the service that is the journal's commit of some request, and the
copy and the fsync held up every request waiting for that commit: about 1% of commits held
the writer for more than 5 ms (two workers, concurrency 8, benchmarks/serve.py's load).
:class:`Checkpoints` runs SQLite's ``PASSIVE`` checkpoint on a thread and connection of its
own every :data:`CHECKPOINT_SECONDS`, at nice :data:`CHECKPOINT_NICE`, so the log seldom
reaches the automatic threshold, which stays as the fallback. A passive checkpoint waits for
no reader or writer. Other databases keep no such log: no thread is started for them.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from permed.serve._priority import lower_priority
from permed.serve._storage import Storage

__all__ = ["CHECKPOINT_NICE", "CHECKPOINT_SECONDS", "Checkpoints"]

log = logging.getLogger("permed.serve")

# At 500 requests/s the journal appends about 2,500 pages/s to the log: a checkpoint every
# quarter second copies a few hundred, well before the automatic one's 1,000.
CHECKPOINT_SECONDS = 0.25
CHECKPOINT_NICE = 10  # below the requests, without starving on a busy worker's single CPU


class Checkpoints:
    """Checkpoint ``storage``'s write-ahead log from a background thread (SQLite only).

    Parameters
    ----------
    storage : Storage
    seconds : float
        Between two checkpoints.

    Attributes
    ----------
    runs : int
        Checkpoints done so far.
    """

    def __init__(self, storage: Storage, seconds: float = CHECKPOINT_SECONDS) -> None:
        self.storage = storage
        self.seconds = seconds
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (nothing for a database other than SQLite)."""
        if self.storage.engine.dialect.name != "sqlite" or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="permed-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread, after the checkpoint under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        lower_priority(CHECKPOINT_NICE)
        connection = self.storage.engine.raw_connection()  # no transaction: pysqlite begins
        try:                                               # one only before a data change
            while not self._stop.wait(self.seconds):
                try:
                    connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception:  # noqa: BLE001 - the writers' own checkpoints remain
                    log.exception("the background checkpoint of the database failed")
                    continue
                self.runs += 1
        finally:
            with contextlib.suppress(Exception):  # a broken connection: nothing to give back
                connection.close()
