"""Group commit: requests share transactions, the chain stays whole, and an answer whose
prediction could not be recorded is withheld."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from permed.privacy import generate_key
from permed.serve import AuditTrail, Settings, Storage
from permed.serve._journal import Journal
from permed.serve._storage import _Base


class CountingStorage(Storage):
    """A real SQLite storage that counts its transactions."""

    writes = 0

    def write(self, chain, predictions):
        self.writes += 1
        return super().write(chain, predictions)


def test_concurrent_requests_share_commits_and_keep_one_chain(tmp_path):
    storage = CountingStorage(f"sqlite:///{tmp_path / 'permed.db'}")
    trail = AuditTrail(storage, generate_key())
    journal = Journal(trail)

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


def test_a_failed_commit_reaches_every_waiting_request(tmp_path):
    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    journal = Journal(AuditTrail(storage, generate_key()))
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
