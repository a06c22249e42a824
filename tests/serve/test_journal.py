"""Group commit: requests share transactions, the chain stays whole, and an answer whose
prediction could not be recorded is withheld."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from permed.privacy import generate_key
from permed.serve import AuditTrail, Settings, Storage
from permed.serve._journal import Journal, LoopJournal, journal_for
from permed.serve._storage import WriterBusy, _Base

JOURNALS = [Journal, LoopJournal]


class CountingStorage(Storage):
    """A real SQLite storage that counts its transactions."""

    writes = 0

    def write(self, chain, predictions, patience=30):
        self.writes += 1
        return super().write(chain, predictions, patience)


def _row(i: int) -> dict:
    return {"id": f"p{i}", "time": "t", "user": "alice", "model": "m", "version": "v",
            "task": "diagnose", "input_digest": f"d{i}", "answer": "{}"}


def test_sqlite_commits_on_the_event_loop(tmp_path):
    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    assert isinstance(journal_for(AuditTrail(storage, generate_key())), LoopJournal)
    storage.dispose()


def test_postgresql_commits_on_a_thread(postgres_url):
    storage = Storage(postgres_url)
    assert isinstance(journal_for(AuditTrail(storage, generate_key())), Journal)
    storage.dispose()


@pytest.mark.parametrize("kind", JOURNALS)
def test_concurrent_requests_share_commits_and_keep_one_chain(tmp_path, kind):
    storage = CountingStorage(f"sqlite:///{tmp_path / 'permed.db'}")
    trail = AuditTrail(storage, generate_key())
    journal = kind(trail)

    async def request(i: int) -> None:
        rows = [{"id": f"p{i}", "time": "t", "user": "alice", "model": "m", "version": "v",
                 "task": "diagnose", "input_digest": f"d{i}", "answer": "{}"}]
        await journal.record([AuditTrail.event("alice", "predict", "success", request=i)], rows)

    async def burst() -> None:
        await asyncio.gather(*(request(i) for i in range(40)))

    asyncio.run(burst())
    journal.close()
    entries = storage.audit_rows()
    assert [e["details"]["request"] for e in entries] == list(range(40))  # arrival order
    assert trail.verify().ok
    with storage.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 40
    assert storage.writes <= 10  # 40 requests, a handful of transactions
    _Base.metadata.drop_all(storage.engine)
    storage.dispose()


@pytest.mark.parametrize("kind", JOURNALS)
def test_a_failed_commit_reaches_every_waiting_request(tmp_path, kind):
    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    journal = kind(AuditTrail(storage, generate_key()))
    with storage.engine.begin() as connection:
        connection.execute(text("DROP TABLE predictions"))

    async def request(i: int) -> str:
        try:
            await journal.record([AuditTrail.event("alice", "predict", "success")],
                                 [{"id": f"p{i}", "time": "t", "user": "alice", "model": "m",
                                   "version": "v", "task": "diagnose", "input_digest": "d",
                                   "answer": "{}"}])
        except Exception as exc:  # noqa: BLE001 - the database's own error is the point
            return str(exc)
        return "stored"

    async def burst() -> list[str]:
        return await asyncio.gather(*(request(i) for i in range(5)))

    outcomes = asyncio.run(burst())
    journal.close()
    assert all("no such table: predictions" in o for o in outcomes)
    assert storage.audit_rows() == []  # the whole transaction was rolled back
    storage.dispose()


def test_a_prediction_that_cannot_be_recorded_is_withheld(runs, start_service, bc_patients,
                                                          tmp_path):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0), {"carol": "clinician"})
    try:
        with service.client("carol") as client:
            assert client.post("/v1/models/bc/predict",
                               json={"patient": bc_patients[0]}).status_code == 200
            with service.app.state.storage.engine.begin() as connection:
                connection.execute(text("DROP TABLE predictions"))
            response = client.post("/v1/models/bc/predict", json={"patient": bc_patients[0]})
            assert response.status_code == 503
            assert response.json()["detail"].startswith(
                "the prediction could not be recorded in the prediction log and audit trail, "
                "so it is withheld")
            assert "results" not in response.text
            assert response.headers["x-content-type-options"] == "nosniff"
            assert client.get("/v1/models").status_code == 200  # no prediction: answered
    finally:
        service.stop()


def test_a_sqlite_writer_waits_for_another_processs_lock(tmp_path):
    import sqlite3
    import threading
    import time

    path = tmp_path / "permed.db"
    storage = Storage(f"sqlite:///{path}")
    trail = AuditTrail(storage, generate_key())
    other = sqlite3.connect(path, check_same_thread=False)  # as another worker process would
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.05, other.commit)
    release.start()
    started = time.monotonic()
    entries = trail.write([AuditTrail.event("alice", "predict", "success")])
    assert time.monotonic() - started >= 0.04  # it waited for the lock instead of failing
    assert [e["seq"] for e in entries] == [1]
    raw = storage.engine.raw_connection()
    try:  # the pooled connection keeps SQLite's usual patience for other statements
        assert raw.cursor().execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    finally:
        raw.close()
    release.join()
    other.close()
    storage.dispose()


def test_the_service_keeps_what_it_loaded_out_of_the_cyclic_collector(runs, tmp_path,
                                                                     start_service):
    import gc

    from permed.serve._registry import ServedModel

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None), {"alice": "clinician"})
    try:
        frozen = gc.get_freeze_count()
        served = service.app.state.models["bc"]
        # the loaded model is in the permanent generation: no longer tracked by a collection
        assert isinstance(served, ServedModel)
        assert frozen > 10_000
        assert not any(o is served for o in gc.get_objects())
    finally:
        service.stop()
    assert gc.get_freeze_count() == 0  # an embedding process gets its collector back


def test_the_event_loop_serves_others_while_another_process_holds_the_writer_lock(tmp_path):
    path = tmp_path / "permed.db"
    storage = CountingStorage(f"sqlite:///{path}")
    trail = AuditTrail(storage, generate_key())
    journal = LoopJournal(trail)
    other = sqlite3.connect(path, check_same_thread=False)  # as another worker process would
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.1, other.commit)
    ticks = []

    async def ticker() -> None:
        while len(ticks) < 1000:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def scenario() -> float:
        clock = asyncio.create_task(ticker())
        release.start()
        started = time.monotonic()
        first = asyncio.create_task(journal.record([AuditTrail.event("alice", "predict",
                                                                     "success", request=0)],
                                                   [_row(0)]))
        await asyncio.sleep(0.03)  # the first is waiting for the lock: the second joins it
        await journal.record([AuditTrail.event("alice", "predict", "success", request=1)],
                             [_row(1)])
        await first
        waited = time.monotonic() - started
        clock.cancel()
        return waited

    waited = asyncio.run(scenario())
    release.join()
    other.close()
    assert waited >= 0.09  # stored only once the other connection let go
    assert len([t for t in ticks if t - ticks[0] < 0.09]) >= 10  # the loop kept running
    assert [e["details"]["request"] for e in storage.audit_rows()] == [0, 1]
    assert trail.verify().ok
    with storage.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 2
    storage.dispose()


def test_a_writer_lock_held_too_long_fails_the_waiting_requests(tmp_path, monkeypatch):
    import permed.serve._journal as journal_module

    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 0.05)
    path = tmp_path / "permed.db"
    storage = Storage(f"sqlite:///{path}")
    journal = LoopJournal(AuditTrail(storage, generate_key()))
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")

    async def request() -> str:
        try:
            await journal.record([AuditTrail.event("alice", "predict", "success")], [_row(0)])
        except WriterBusy as exc:
            return str(exc)
        return "stored"

    outcome = asyncio.run(request())
    other.commit()
    other.close()
    assert outcome == "the database's writer lock was held by another connection for 0.05 s"
    assert storage.audit_rows() == []
    storage.dispose()


def test_closing_the_loop_journal_commits_what_is_queued(tmp_path):
    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    journal = LoopJournal(AuditTrail(storage, generate_key()))

    async def scenario() -> list[dict]:
        waiting = asyncio.create_task(
            journal.record([AuditTrail.event("alice", "predict", "success")], [_row(0)]))
        await asyncio.sleep(0)  # the request is queued; its commit has not run yet
        assert storage.audit_rows() == []
        journal.close()
        stored = storage.audit_rows()
        await waiting  # released by the close
        return stored

    assert [e["seq"] for e in asyncio.run(scenario())] == [1]
    storage.dispose()
