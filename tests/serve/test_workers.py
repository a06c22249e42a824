"""`permed serve --workers N`: the settings the workers receive, and a real two-process server
that shares one port, one database and one audit chain; the parent hands connections to the
workers in turn, over HTTPS too, and replaces a worker that dies."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from http.client import HTTPConnection, HTTPSConnection
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
    server, base = _serve_two_workers(runs, tmp_path)
    try:
        health = _wait_for_health(base, server)
        workers = _workers_of(server.pid)
        placed = [os.sched_getaffinity(pid) for pid in workers]
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
    assert placed == [os.sched_getaffinity(0)] * 2  # --no-pin: the scheduler places them
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


def _serve_two_workers(runs, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """``permed serve`` of the vitals run with two unpinned workers, on the SQLite database in
    ``tmp_path``; the process and its base URL."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if name != "PERMED_DATABASE_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "permed.cli.main", "serve", f"vitals={runs['vitals']}", "--port",
         str(port), "--data-dir", str(tmp_path), "--workers", "2", "--no-pin"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return server, f"http://127.0.0.1:{port}"


def test_a_key_revoked_through_one_worker_is_refused_by_the_other_within_seconds(runs, tmp_path):
    url = f"sqlite:///{tmp_path / 'permed.db'}"
    storage = Storage(url)
    try:
        keys = {name: storage.add_user(name, role)
                for name, role in (("alice", "clinician"), ("ada", "admin"))}
    finally:
        storage.dispose()
    server, base = _serve_two_workers(runs, tmp_path)
    bearer = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    try:
        assert _wait_for_health(base, server) is not None
        # kept-alive connections 1 and 2 (after /health's) go to worker 2 and worker 1: the key
        # is cached in both before it is revoked through the next connection (worker 2)
        clients = [httpx.Client(base_url=base, headers=bearer["alice"], timeout=60)
                   for _ in range(2)]
        before = [client.get("/v1/models").status_code for client in clients]
        with httpx.Client(base_url=base, headers=bearer["ada"], timeout=60) as admin:
            revoked = admin.delete("/v1/users/alice")
        deadline = time.monotonic() + 10  # generous: each worker reads the epoch every second
        after = []
        for client in clients:
            while (response := client.get("/v1/models")).status_code == 200:
                assert time.monotonic() < deadline, "a worker still trusted the revoked key"
                time.sleep(0.05)
            after.append(response)
            client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert before == [200, 200], stderr
    assert revoked.json() == {"name": "alice", "revoked_keys": 1}
    assert [r.status_code for r in after] == [401, 401]
    assert {r.json()["detail"] for r in after} == {"the API key was revoked"}
    assert "Traceback" not in stderr


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


# connections handed out in turn: which worker process holds which client connection

def _worker_pids(pid: int) -> list[int]:
    """The worker processes of the server ``pid``: its children that multiprocessing spawned
    (not its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _owners(port: int, client: socket.socket, pids: list[int]) -> list[int]:
    """The processes among ``pids`` that hold the server side of ``client``'s connection: the
    entry of /proc/net/tcp whose local port is the server's and whose remote port is the
    client's gives the socket's inode, which a process lists as ``socket:[inode]`` in its fds."""
    local = client.getsockname()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if (int(fields[1].rsplit(":", 1)[1], 16) == port
                    and int(fields[2].rsplit(":", 1)[1], 16) == local):
                inodes.add(f"socket:[{fields[9]}]")
    owners = []
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    owners.append(pid)
            except OSError:  # closed in the meantime
                continue
    return owners


def _kept_alive(port: int, context: ssl.SSLContext | None = None) -> HTTPConnection:
    """A client connection that asked for /health once (200) and stays open."""
    if context is None:
        connection = HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        connection = HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return connection


def _start(runs: dict[str, Path], tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str],
                                                                          int]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if name != "PERMED_DATABASE_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "permed.cli.main", "serve", f"vitals={runs['vitals']}", "--port",
         str(port), "--data-dir", str(tmp_path), "--workers", "2", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return server, port


def _wait_for(condition: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    return None


def test_the_parent_hands_https_connections_to_the_workers_in_turn(runs, tmp_path):
    from test_cli_serve import _self_signed

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    server, port = _start(runs, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    connections: list[HTTPConnection] = []
    try:
        # the parent accepts the first connection once both workers have started
        health = _wait_for(lambda: _health_over_tls(port, context))
        workers = _worker_pids(server.pid)
        placed = [os.sched_getaffinity(pid) for pid in workers]
        connections = [_kept_alive(port, context) for _ in range(4)]
        owners = [_owners(port, connection.sock, workers) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert health is not None, stderr
    assert len(workers) == 2, stderr
    assert all(len(owner) == 1 for owner in owners), owners  # each held by one worker
    first, second = owners[0][0], owners[1][0]
    assert first != second
    assert [owner[0] for owner in owners] == [first, second, first, second]  # 2 each, in turn
    assert sorted(placed) == _pinned(2)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _pinned(workers: int) -> list[set[int]]:
    """Where ``workers`` workers run by default: each on a CPU of its own when there are
    enough, else wherever this process may."""
    cpus = sorted(os.sched_getaffinity(0))
    if workers > len(cpus):
        return [set(cpus)] * workers
    return [{cpu} for cpu in cpus[:workers]]


def _health_over_tls(port: int, context: ssl.SSLContext) -> bool:
    try:
        _kept_alive(port, context).close()
    except OSError:
        return False
    return True


def _served_by(port: int, pids: list[int]) -> list[int]:
    """Which of ``pids`` serves a new connection; [] if the connection failed (one handed to a
    worker in the instant it dies is lost with it)."""
    try:
        with closing(_kept_alive(port)) as connection:
            return _owners(port, connection.sock, pids)
    except OSError:
        return []


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(runs, tmp_path):
    server, port = _start(runs, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_for_health(base, server)
        workers = _worker_pids(server.pid)
        held = [_kept_alive(port), _kept_alive(port)]  # one in each worker
        victim, survivor = (_owners(port, connection.sock, workers)[0] for connection in held)
        victim_cpus = os.sched_getaffinity(victim)
        os.kill(victim, signal.SIGKILL)
        held[0].sock.settimeout(10)
        try:  # the connection the victim held is closed, not left hanging
            closed = held[0].sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
        # the survivor's connection still works (within uvicorn's 5 s keep-alive)
        held[1].request("GET", "/health")
        survivor_answers = held[1].getresponse().status
        replaced = _wait_for(lambda: [pid for pid in _worker_pids(server.pid)
                                      if pid not in workers])
        # new connections go to the survivor until the replacement has started, then in turn
        served_by = [_served_by(port, [survivor, *replaced]) for _ in range(2)]
        replacement_serves = _wait_for(lambda: _served_by(port, replaced))
        now = _worker_pids(server.pid)
        replacement_cpus = os.sched_getaffinity(replaced[0]) if replaced else None
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert health is not None, stderr
    assert victim != survivor
    assert closed
    assert replaced is not None, stderr
    assert len(replaced) == 1, stderr
    assert sorted(now) == sorted([survivor, *replaced])
    assert all(len(owner) == 1 for owner in served_by), served_by  # served, by one worker
    assert replacement_serves == replaced, stderr
    assert replacement_cpus == victim_cpus  # the replacement takes the victim's CPU
    assert survivor_answers == 200
    assert (f"worker process [{victim}] died (exit code -9); its connections were closed; "
            "starting another") in stderr
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr


async def _hello(scope: dict[str, Any], receive: Callable[..., Any],
                 send: Callable[..., Any]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_worker_serves_the_connections_it_is_handed_and_stops_at_end_of_file():
    from uvicorn import Config

    from permed.serve._dispatch import ChannelServer

    parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = ChannelServer(Config(_hello, lifespan="off", log_level="warning"), worker_end)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    parent_end.settimeout(10)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        accepted, _ = listener.accept()
    with client:
        ready = parent_end.recv(1)
        socket.send_fds(parent_end, [b"c"], [accepted.fileno()])
        accepted.close()  # as the parent does: the worker holds its own copy
        client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        response = b""
        while not response.endswith(b"hello"):
            chunk = client.recv(4096)
            if not chunk:
                break
            response += chunk
        parent_end.close()  # end of file: the parent is gone
        thread.join(10)
        after = client.recv(4096)  # the kept-alive connection is closed on shutdown
    assert ready == b"r"
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not thread.is_alive()
    assert after == b""
