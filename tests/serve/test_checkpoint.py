"""The service's SQLite log is copied into the database file by a background thread."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time

from permed.privacy import generate_key
from permed.serve import AuditTrail, Settings, Storage
from permed.serve._checkpoint import CHECKPOINT_NICE, Checkpoints


def _in_database_file(db, copy) -> int:
    """Audit entries in the database file alone (a copy without its write-ahead log)."""
    shutil.copyfile(db, copy)
    with sqlite3.connect(copy) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        count = (connection.execute("SELECT count(*) FROM audit_events").fetchone()[0]
                 if "audit_events" in tables else 0)
    os.remove(copy)
    return count


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_log_reaches_the_database_file_without_the_writers_checkpoint(tmp_path):
    db = tmp_path / "permed.db"
    storage = Storage(f"sqlite:///{db}")
    trail = AuditTrail(storage, generate_key())
    for i in range(20):
        trail.append("alice", "predict", "success", request=i)
    # 20 small commits stay far below SQLite's automatic checkpoint (1,000 pages)
    assert _in_database_file(db, tmp_path / "copy.db") == 0
    checkpoints = Checkpoints(storage, seconds=0.02)
    checkpoints.start()
    try:
        thread = checkpoints._thread
        assert thread is not None
        assert thread.name == "permed-checkpoint"
        if sys.platform.startswith("linux"):
            assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == CHECKPOINT_NICE
        for i in range(20, 40):
            trail.append("alice", "predict", "success", request=i)
        done = checkpoints.runs
        _wait_for(lambda: checkpoints.runs >= done + 2)
        assert _in_database_file(db, tmp_path / "copy.db") == 40
        assert trail.verify().ok
    finally:
        checkpoints.close()
    assert checkpoints._thread is None
    assert not thread.is_alive()
    storage.dispose()


def test_no_thread_for_a_database_without_a_write_ahead_log(postgres_url):
    storage = Storage(postgres_url)
    checkpoints = Checkpoints(storage)
    checkpoints.start()
    assert checkpoints._thread is None
    checkpoints.close()
    storage.dispose()


def test_the_service_checkpoints_while_it_runs(runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None), {"alice": "clinician"})
    checkpoints = service.app.state.checkpoints
    try:
        assert checkpoints._thread is not None
        assert checkpoints._thread.is_alive()
        _wait_for(lambda: checkpoints.runs >= 1)
    finally:
        service.stop()
    assert checkpoints._thread is None
