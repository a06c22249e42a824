"""`permed users` and `permed serve` as a user runs them: real processes, exit codes, messages,
and HTTPS with --tls-cert/--tls-key."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from permed.testing import run_permed as permed


def test_users_add_prints_a_one_time_key_and_lists_users(tmp_path):
    added = permed("users", "add", "alice", "--role", "clinician", "--data-dir", tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().startswith("pmd_")
    assert "user 'alice' (clinician) added; their API key (shown once" in added.stderr
    listed = permed("users", "list", "--data-dir", tmp_path)
    assert listed.stdout.split() == ["alice", "clinician", "active", "1", "key(s)"]
    assert added.stdout.strip() not in (tmp_path / "permed.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(("args", "message"), [
    (["users", "add", "bob", "--role", "nurse"],
     "error: --role 'nurse' is not known; expected one of clinician, scientist, admin"),
    (["serve", "no-such-run"],
     "error: 'no-such-run' is not a permed run: no model/bundle.json; train one with permed "
     "train ... --out RUN_DIR"),
    (["serve", "x", "--tls-cert", "cert.pem"],
     "error: --tls-cert and --tls-key go together: give both, or neither"),
    (["users", "end-sessions", "nobody"],
     "error: user 'nobody' does not exist: add them with permed users add nobody --role "
     "clinician"),
])
def test_bad_commands_say_what_to_do(tmp_path, args, message, capsys):
    from permed.cli.main import main

    assert main([*args, "--data-dir", str(tmp_path)]) == 1
    assert " ".join(capsys.readouterr().err.split()) == message


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_a_tls_key_readable_by_others_is_refused(tmp_path, capsys):
    from permed.cli.main import main

    cert, key = _self_signed(tmp_path)
    key.chmod(0o644)
    assert main(["serve", "x", "--tls-cert", str(cert), "--tls-key", str(key),
                 "--data-dir", str(tmp_path)]) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: --tls-key '{key}' can be read by other users (mode 0644): restrict it with "
        f"`chmod 600 {key}`")


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("10.1.2.3", True),
                                              ("127.0.0.1", False), ("localhost", False),
                                              ("::1", False)])
def test_a_non_loopback_address_without_tls_is_warned_about(tmp_path, capsys, host, warned):
    from permed.cli.main import main

    assert main(["serve", "no-such-run", "--host", host, "--data-dir", str(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    warning = (f"warning: --host {host} without --tls-cert/--tls-key: API keys, tokens and "
               "patient data will cross the network in clear; give a certificate, or bind "
               "127.0.0.1 behind a TLS proxy")
    assert err.startswith(warning) is warned
    assert err.endswith("error: 'no-such-run' is not a permed run: no model/bundle.json; train "
                        "one with permed train ... --out RUN_DIR")


def test_serve_speaks_https_with_hsts_when_given_a_certificate(runs, tmp_path):
    import socket

    cert, key = _self_signed(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "permed.cli.main", "serve", f"vitals={runs['vitals']}", "--port",
         str(port), "--data-dir", str(tmp_path), "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, response = time.monotonic() + 120, None
        while response is None and time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/health", verify=str(cert))
            except httpx.HTTPError:
                time.sleep(0.3)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)  # no plain HTTP
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert response is not None, stderr
    assert response.json()["status"] == "ok"
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    assert f"serving vitals on https://127.0.0.1:{port}/" in stderr


def test_users_end_sessions_and_revoke_reach_a_running_service(runs, tmp_path, start_service):
    # the commands run in processes of their own, as an administrator runs them
    from permed.serve import Settings

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"ivy": "clinician", "jon": "clinician"})
    try:
        with service.client("ivy") as client:
            token = client.post("/v1/auth/token").json()["access_token"]
        with service.client(Authorization=f"Bearer {token}") as client:
            assert client.get("/v1/models").status_code == 200
            ended = permed("users", "end-sessions", "ivy", "--data-dir", tmp_path)
            refused = client.get("/v1/models")  # at once: tokens are checked on every request
        until = service.app.state.storage.active_user("ivy")[1]
        with service.client("ivy") as client:
            assert client.get("/v1/models").status_code == 200  # the key still works
        with service.client("jon") as client:
            assert client.get("/v1/models").status_code == 200  # the key is now cached
            revoked = permed("users", "revoke", "jon", "--data-dir", tmp_path)
            deadline = time.monotonic() + 10  # the service reads the epoch every second
            while (response := client.get("/v1/models")).status_code == 200:
                assert time.monotonic() < deadline, "the key revoked by the CLI was still trusted"
                time.sleep(0.05)
    finally:
        service.stop()
    assert ended.returncode == 0, ended.stderr
    message = " ".join(ended.stderr.split())
    stamped = dt.datetime.fromtimestamp(until, dt.UTC).isoformat(timespec="milliseconds")
    assert message.startswith(f"sessions of user 'ivy' ended: their bearer tokens issued up to "
                              f"now ({stamped}) are refused; their API keys still work ")
    assert "warning" not in message  # recorded: this process holds the service's key
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("the session was ended by an administrator")
    assert revoked.returncode == 0, revoked.stderr
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key was revoked"


def test_end_sessions_lists_what_a_stolen_admin_token_made_and_both_commands_are_audited(
        runs, tmp_path, start_service, monkeypatch):
    import os
    import pwd

    from permed.serve import Settings

    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # whoever runs it may set these
        monkeypatch.setenv(variable, "someone-else")
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"ada": "admin", "jon": "clinician", "root": "admin"})
    try:
        with service.client("ada") as client:
            token = client.post("/v1/auth/token").json()["access_token"]
        with service.client(Authorization=f"Bearer {token}") as stolen:  # the thief's calls
            assert stolen.post("/v1/users", json={"name": "mal", "role": "admin"}
                               ).status_code == 201
            made = stolen.post("/v1/users/jon/keys")
            assert made.status_code == 201
        ended = permed("users", "end-sessions", "ada", "--data-dir", tmp_path)
        revoked = permed("users", "revoke", "mal", "--data-dir", tmp_path)
        added = permed("users", "add", "zed", "--role", "scientist", "--data-dir", tmp_path)
        issued = permed("users", "key", "jon", "--data-dir", tmp_path)
        with service.client("root") as client:
            entries = client.get("/v1/audit", params={"limit": 20}).json()
            verified = client.get("/v1/audit/verify").json()
        with service.app.state.storage.engine.connect() as connection:
            keys = dict(connection.exec_driver_sql(
                "SELECT k.key_id, u.name FROM api_keys k JOIN users u ON u.id = k.user_id").all())
    finally:
        service.stop()
    assert ended.returncode == 0, ended.stderr
    lines = ended.stderr.splitlines()
    review = lines.index(next(line for line in lines if line.startswith("made since ")))
    assert lines[review].endswith(  # one line: not wrapped, for grep
        ", the earliest start of a session this ended (check that 'ada' made them; a stolen "
        "token could have; revoke the others with permed users revoke NAME):")
    listed = [" ".join(line.split()) for line in lines[review + 1:]]
    seq = {e["action"]: e["seq"] for e in entries if e["user"] == "ada"}
    ada_key = next(key_id for key_id, user in keys.items() if user == "ada")
    stolen_jon_key = made.json()["api_key"].split("_")[1]
    assert any(line.startswith(f"API key {stolen_jon_key} of 'jon', made ") and
               line.endswith(" (not a key of 'ada')") for line in listed), listed
    for expected in (f"API key {ada_key} of 'ada', made ",
                     f"audit entry {seq['add_user']}, ",
                     f"audit entry {seq['new_key']}, "):
        assert any(line.startswith(expected) for line in listed), (expected, listed)
    assert any(line.endswith(": add_user (/v1/users)") for line in listed)
    assert any(line.endswith(": new_key (/v1/users/{name}/keys) for user 'jon'")
               for line in listed)
    assert any(line.startswith("user 'mal' (admin) added ") for line in listed)
    assert revoked.returncode == 0, revoked.stderr
    assert "warning" not in revoked.stderr
    for granted in (added, issued):  # they grant credentials: recorded like the others
        assert granted.returncode == 0, granted.stderr
        assert "warning" not in granted.stderr
    login = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    cli = [e for e in entries if e["user"].startswith("cli:")]
    assert [(e["user"], e["action"], e["outcome"], e["details"]["command"],
             e["details"]["target"], e["details"]["uid"]) for e in cli] == [
        (login, "end_sessions", "success", "permed users end-sessions", "ada", os.geteuid()),
        (login, "revoke", "success", "permed users revoke", "mal", os.geteuid()),
        (login, "add_user", "success", "permed users add", "zed", os.geteuid()),
        (login, "new_key", "success", "permed users key", "jon", os.geteuid())]
    assert (cli[2]["details"]["role"], cli[2]["details"]["key_id"]) == (
        "scientist", added.stdout.strip().split("_")[1])
    assert cli[3]["details"]["key_id"] == issued.stdout.strip().split("_")[1]
    assert added.stdout.strip() not in json.dumps(entries)  # the key id, never the secret
    assert cli[1]["details"]["revoked_keys"] == 1
    assert verified["ok"] is True, verified


def test_a_command_without_the_services_integrity_key_is_not_audited_and_says_why(
        runs, tmp_path, start_service, monkeypatch):
    from permed.privacy import create_key_file
    from permed.serve import Settings

    fresh = tmp_path / "fresh"  # a database no service has written to: no chain yet
    assert permed("users", "add", "una", "--role", "clinician", "--data-dir",
                  fresh).returncode == 0
    unchained = permed("users", "end-sessions", "una", "--data-dir", fresh)
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"ada": "admin", "kit": "clinician"})
    try:
        with service.client("ada") as client:
            assert client.get("/v1/users").status_code == 200  # the chain's first entry
        chained = service.app.state.key.key_id
        other = create_key_file(tmp_path / "other.key")
        monkeypatch.setenv("PERMED_INTEGRITY_KEY", str(tmp_path / "other.key"))
        ended = permed("users", "end-sessions", "kit", "--data-dir", tmp_path)
        monkeypatch.setenv("PERMED_INTEGRITY_KEY", str(tmp_path / "missing.key"))
        revoked = permed("users", "revoke", "kit", "--data-dir", tmp_path)
        with service.client("ada") as client:
            entries = client.get("/v1/audit", params={"limit": 20}).json()
            verified = client.get("/v1/audit/verify").json()
    finally:
        service.stop()
    assert unchained.returncode == 0, unchained.stderr
    assert " ".join(unchained.stderr.split()).endswith(
        "warning: not recorded in the service's audit trail: it has no entry yet, so the key "
        "that chains it is unknown: start the service once")
    assert ended.returncode == 0, ended.stderr
    assert " ".join(ended.stderr.split()).endswith(
        f"warning: not recorded in the service's audit trail: it is chained with integrity key "
        f"{chained}, and {tmp_path / 'other.key'} is key {other.key_id}: run the command on the "
        "service's host as the service's account, which reads the service's own key file")
    assert revoked.returncode == 0, revoked.stderr
    assert " ".join(revoked.stderr.split()) == (
        f"user 'kit' deactivated; 1 key(s) revoked warning: not recorded in the service's audit "
        f"trail: no integrity key at {tmp_path / 'missing.key'}: run the command on the "
        "service's host as the service's account, which reads the service's own key file")
    assert not [e for e in entries if e["user"].startswith("cli:")]
    assert verified["ok"] is True, verified


def test_a_database_that_refuses_the_migration_is_an_error_message(tmp_path, capsys):
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from permed.cli.main import main
    from permed.serve import Storage

    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    with storage.engine.begin() as connection:  # as an older permed left it
        connection.exec_driver_sql("ALTER TABLE users DROP COLUMN sessions_not_before")
    storage.dispose()

    def owner_only(dbapi_connection, _):  # the service's database user may not alter tables
        dbapi_connection.set_authorizer(lambda code, *_: sqlite3.SQLITE_DENY
                                        if code == sqlite3.SQLITE_ALTER_TABLE
                                        else sqlite3.SQLITE_OK)

    event.listen(Engine, "connect", owner_only)
    try:
        assert main(["users", "list", "--data-dir", str(tmp_path)]) == 1
    finally:
        event.remove(Engine, "connect", owner_only)
    assert " ".join(capsys.readouterr().err.split()) == (
        "error: the database lacks column users.sessions_not_before, which this version of "
        "permed needs, and could not add it (not authorized): this database user may not change "
        "the schema: as the table's owner, run ALTER TABLE users ADD COLUMN sessions_not_before "
        "FLOAT; then start again")


@pytest.mark.parametrize("args", [["revoke", "kit"], ["end-sessions", "kit"]])
def test_a_failed_audit_entry_is_a_warning_after_the_changes_outcome(tmp_path, args):
    """The change is committed before its audit entry: a database error in the entry had
    ended in a traceback, and the outcome was never printed."""
    import sqlite3

    assert permed("users", "add", "kit", "--role", "clinician", "--data-dir",
                  tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "permed.db") as connection:  # a damaged audit head
        connection.executescript("DROP TABLE audit_head; "
                                 "CREATE TABLE audit_head (id INTEGER PRIMARY KEY)")
    done = permed("users", *args, "--data-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert message.startswith("user 'kit' deactivated; 1 key(s) revoked" if args[0] == "revoke"
                              else "sessions of user 'kit' ended: their bearer tokens issued")
    assert message.endswith("warning: not recorded in the service's audit trail: no such "
                            "column: audit_head.seq")
