"""`permed serve --workers N`: the settings the workers receive, and a real two-process server
that shares one port, one database and one audit chain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from permed.privacy import integrity_key
from permed.serve import AuditTrail, Settings, Storage
from permed.serve._workers import (
    ENV_SETTINGS,
    per_worker,
    settings_from_json,
    settings_to_json,
    worker_app,
)

REQUESTS = 20
CONNECTIONS = 4


def test_settings_survive_the_json_round_trip_without_the_jwt_secret(monkeypatch):
    monkeypatch.delenv("PERMED_JWT_SECRET", raising=False)
    settings = Settings(runs={"bc": Path("/runs/bc"), "vitals": Path("runs/vitals")},
                        data_dir=Path("/srv/permed"), database_url="sqlite:////tmp/x.db",
                        jwt_secret="do-not-copy", jwt_audience="site", token_minutes=5,
                        rate_limit=7, max_body_bytes=1234, max_batch=3, explain=False,
                        onnx=False, tls=True, key_cache_seconds=9)
    text = settings_to_json(settings)
    back = settings_from_json(text)
    assert "do-not-copy" not in text
    assert back == Settings(**{**vars(settings), "jwt_secret": None})
    assert all(isinstance(path, Path) for path in back.runs.values())
    assert isinstance(back.data_dir, Path)


def test_a_worker_reads_the_jwt_secret_from_its_environment(monkeypatch):
    monkeypatch.setenv("PERMED_JWT_SECRET", "from-the-environment")
    assert settings_from_json(settings_to_json(Settings())).jwt_secret == "from-the-environment"


@pytest.mark.parametrize(("limit", "workers", "each"), [(600, 2, 300), (601, 2, 301),
                                                         (1, 4, 1), (0, 3, 0)])
def test_each_worker_gets_its_share_of_the_rate_limit(limit, workers, each):
    assert per_worker(Settings(rate_limit=limit), workers).rate_limit == each


@pytest.mark.parametrize(("value", "message"), [
    (None, f"{ENV_SETTINGS} is not set: worker processes are started by permed serve ... "
           "--workers N"),
    ('{"runs": []}', f"{ENV_SETTINGS} does not hold the settings permed serve writes"),
])
def test_a_worker_that_cannot_start_says_why_and_stops_the_server(monkeypatch, capsys, value,
                                                                   message):
    from uvicorn.config import STARTUP_FAILURE

    if value is None:
        monkeypatch.delenv(ENV_SETTINGS, raising=False)
    else:
        monkeypatch.setenv(ENV_SETTINGS, value)
    with pytest.raises(SystemExit) as stopped:
        worker_app()
    assert stopped.value.code == STARTUP_FAILURE  # uvicorn then stops instead of restarting it
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_workers_must_be_at_least_one(tmp_path, capsys):
    from permed.cli.main import main

    assert main(["serve", "x", "--workers", "0", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert " ".join(err.split()) == "error: --workers must be at least 1; got 0"
    assert "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workers_of(pid: int) -> list[int]:
    """The uvicorn worker processes under ``pid`` (multiprocessing's resource tracker is not
    one)."""
    try:
        import psutil
    except ImportError:  # Linux without psutil: read /proc
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                              if ":\t" in line)
                cmdline = (status.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields.get("PPid", "0")) == pid and b"spawn_main" in cmdline:
                found.append(int(status.parent.name))
        return found
    return [child.pid for child in psutil.Process(pid).children()
            if "spawn_main" in " ".join(child.cmdline())]


def _predict(url: str, key: str, patients: list[dict[str, Any]]) -> list[int]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as client:
        return [client.post("/v1/models/vitals/predict",
                            json={"patient": patient, "explain": False}).status_code
                for patient in patients]


def _wait_for_health(url: str, server: subprocess.Popen[str]) -> httpx.Response | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            return httpx.get(f"{url}/health", timeout=5)
        except httpx.HTTPError:
            time.sleep(0.2)
    return None


def test_two_workers_share_the_port_the_database_and_the_audit_chain(runs, tmp_path):
    url = f"sqlite:///{tmp_path / 'permed.db'}"
    storage = Storage(url)
    try:
        key = storage.add_user("alice", "clinician")
    finally:
        storage.dispose()
    frame = pd.read_csv(runs["vitals"].parent / "vitals.csv").drop(columns=["admitted"])
    patients = frame.iloc[:REQUESTS].to_dict("records")
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if name != "PERMED_DATABASE_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "permed.cli.main", "serve", f"vitals={runs['vitals']}", "--port",
         str(port), "--data-dir", str(tmp_path), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_for_health(base, server)
        workers = _workers_of(server.pid)
        shares = [patients[i::CONNECTIONS] for i in range(CONNECTIONS)]
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            codes = [code for share in pool.map(lambda s: _predict(base, key, s), shares)
                     for code in share]
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert health is not None, stderr
    assert health.json()["status"] == "ok"
    assert len(workers) == 2, stderr
    assert codes == [200] * REQUESTS, stderr
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"serving vitals on {base}/ (database: sqlite; 2 workers)" in stderr
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # stopped with the parent
    storage = Storage(url)
    try:
        report = AuditTrail(storage, integrity_key()).verify()
        entries = storage.audit_rows()
    finally:
        storage.dispose()
    assert report.ok, report.problems
    assert report.entries == REQUESTS  # /health is not audited
    assert [entry["action"] for entry in entries] == ["predict"] * REQUESTS


_SERVE_BROKEN = """
import sys
from pathlib import Path

from permed.exceptions import PermedError
from permed.serve import Settings
from permed.serve._workers import serve_workers

settings = Settings(runs={"gone": Path(sys.argv[1])}, data_dir=Path(sys.argv[2]))
try:
    serve_workers(settings, 2, "127.0.0.1", int(sys.argv[3]))
except PermedError as error:
    sys.exit(f"error: {error}")
"""


def test_workers_that_cannot_start_stop_the_server_with_their_message(tmp_path):
    # the parent verified the run, then it went away before the workers loaded it
    env = {name: value for name, value in os.environ.items() if name != "PERMED_DATABASE_URL"}
    done = subprocess.run([sys.executable, "-c", _SERVE_BROKEN, str(tmp_path / "gone"),
                           str(tmp_path), str(_free_port())],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert f"error: '{tmp_path / 'gone'}' is not a permed run: no model/bundle.json; train one " \
           "with permed train ... --out RUN_DIR" in lines
    assert lines[-1] == ("error: a worker process could not start (its message is above), so "
                         "the server stopped: fix that and run permed serve again")
