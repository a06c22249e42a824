"""Security acceptance: credentials, tokens, roles, record isolation, audit chain, rate limits,
headers and verified bundles."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import text

from permed.exceptions import BundleError
from permed.serve import Settings, create_app


@pytest.mark.parametrize(("headers", "detail"), [
    ({}, "authentication required: send Authorization: Bearer <API key>"),
    ({"Authorization": "Basic YWxpY2U6cHc="},
     "authentication required: send Authorization: Bearer <API key>"),
    ({"Authorization": "Bearer pmd_000000000000_guess"}, "the API key is not known"),
    ({"Authorization": "Bearer pmd_nonsense"},
     "the API key is malformed: it should read pmd_<id>_<secret>"),
    ({"Authorization": "Bearer hello"},
     "the bearer credential is neither an API key nor a token"),
])
def test_missing_or_unknown_credentials_are_401(live, headers, detail):
    with live.client(**headers) as client:
        response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json() == {"detail": detail, "errors": []}
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_secret_for_a_known_key_id_is_401(live):
    key_id = live.keys["alice"].split("_")[1]
    with live.client(Authorization=f"Bearer pmd_{key_id}_not-the-secret") as client:
        response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key is not valid"


def _token(live, **claims):
    secret = live.app.state.tokens._secret
    now = datetime.now(UTC)
    body = {"sub": "alice", "aud": "permed", "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def _unsigned(claims):
    def part(data):
        import base64
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(("make", "detail"), [
    (lambda live: _token(live, exp=datetime.now(UTC) - timedelta(minutes=1)),
     "the bearer token has expired: request a new one"),
    (lambda live: _token(live, aud="another-service"),
     "the bearer token is for another audience"),
    (lambda live: jwt.encode({"sub": "alice", "aud": "permed",
                              "exp": datetime.now(UTC) + timedelta(minutes=5)},
                             "forged-secret-of-32-bytes-or-more!!", algorithm="HS256"),
     "the bearer token is not valid"),
    (lambda live: _unsigned({"sub": "alice", "aud": "permed", "exp": 4102444800}),
     "the bearer token's algorithm is not accepted (only HS256)"),
    (lambda live: _token(live, exp=None), "the bearer token is not valid"),
    (lambda live: _token(live, sub="mallory"),
     "the bearer token names user 'mallory', who is not active"),
])
def test_bad_tokens_are_401(live, make, detail):
    with live.client(Authorization=f"Bearer {make(live)}") as client:
        response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["detail"] == detail


def test_issued_token_works_and_carries_no_role(live):
    with live.client("alice") as client:
        issued = client.post("/v1/auth/token").json()
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "aud", "iat", "exp", "auth_time"}
    with live.client(Authorization=f"Bearer {issued['access_token']}") as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/users").status_code == 403


def _claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_a_renewed_token_keeps_the_time_of_the_login(live):
    with live.client("alice") as client:
        first = client.post("/v1/auth/token").json()
    with live.client(Authorization=f"Bearer {first['access_token']}") as client:
        renewed = client.post("/v1/auth/token").json()
    login = _claims(first["access_token"])
    assert abs(login["auth_time"] - datetime.now(UTC).timestamp()) < 60
    assert _claims(renewed["access_token"])["auth_time"] == login["auth_time"]
    assert 0 < renewed["expires_in"] <= 15 * 60


def _session_token(live, minutes_ago, claim="auth_time", **claims):
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return _token(live, **{claim: int(started.timestamp())}, **claims)


@pytest.mark.parametrize(("minutes_ago", "claim", "began"), [
    (12 * 60 + 5, "auth_time", "12 h 5 min"),
    (3 * 24 * 60, "auth_time", "72 h"),
    (12 * 60 + 1, "iat", "12 h 1 min"),  # a token from before auth_time was written
])
def test_a_token_is_not_renewed_past_the_sessions_maximum_lifetime(live, minutes_ago, claim,
                                                                  began):
    # the token itself is still valid (a stolen one, renewed every few minutes while the
    # user is active): it keeps working until it expires, but gets no successor
    token = _session_token(live, minutes_ago, claim)
    with live.client(Authorization=f"Bearer {token}") as client:
        used = client.get("/v1/models")
        renewal = client.post("/v1/auth/token")
    assert used.status_code == 200
    assert renewal.status_code == 401
    assert renewal.headers["www-authenticate"] == "Bearer"
    assert renewal.json() == {"detail": f"the session began {began} ago and reached its maximum "
                              "lifetime of 12 h: log in again with your API key (POST "
                              "/v1/auth/token with Authorization: Bearer <API key>)",
                              "errors": []}


def test_a_token_without_a_session_start_is_not_renewed(live):
    with live.client(Authorization=f"Bearer {_token(live)}") as client:  # no auth_time, no iat
        renewal = client.post("/v1/auth/token")
    assert renewal.status_code == 401
    assert renewal.json()["detail"] == (
        "the bearer token does not say when its session began (no auth_time or iat claim): "
        "log in again with your API key")


def test_the_maximum_session_lifetime_is_a_setting_and_bounds_the_last_token(
        runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_session_minutes=60),
                            {"alice": "clinician"})
    try:
        near_end = _session_token(service, 55)
        over = _session_token(service, 61)
        with service.client(Authorization=f"Bearer {near_end}") as client:
            last = client.post("/v1/auth/token").json()
        with service.client(Authorization=f"Bearer {over}") as client:
            refused = client.post("/v1/auth/token")
        with service.client("alice") as client:  # the API key starts a new session
            login = client.post("/v1/auth/token")
    finally:
        service.stop()
    # the session's last token ends with the session (5 minutes left), not 15 minutes later
    claims = _claims(last["access_token"])
    assert claims["exp"] - claims["auth_time"] <= 60 * 60
    assert 4 * 60 <= last["expires_in"] <= 5 * 60
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith(
        "the session began 1 h 1 min ago and reached its maximum lifetime of 1 h: log in again")
    assert login.status_code == 200
    assert login.json()["expires_in"] == 15 * 60


@pytest.mark.parametrize(("user", "method", "path", "body"), [
    ("sam", "post", "/v1/models/bc/predict", {"patient": {}}),
    ("ada", "post", "/v1/models/bc/predict", {"patient": {}}),
    ("sam", "post", "/v1/models/bc/explain", {"patient": {}}),
    ("ada", "post", "/fhir/RiskAssessment/$evaluate?model=vitals", {"resourceType": "Bundle"}),
    ("sam", "post", "/cds-services/permed-vitals", {"hook": "patient-view", "hookInstance": "x"}),
    ("alice", "get", "/v1/models/bc/card", None),
    ("alice", "get", "/v1/models/bc/metrics", None),
    ("ada", "get", "/v1/models", None),
    ("alice", "get", "/v1/users", None),
    ("sam", "post", "/v1/users", {"name": "eve", "role": "admin"}),
    ("alice", "get", "/v1/audit", None),
    ("sam", "get", "/v1/audit/verify", None),
    ("sam", "get", "/v1/predictions", None),
])
def test_a_role_cannot_call_another_roles_endpoints(live, user, method, path, body):
    with live.client(user) as client:
        response = client.request(method.upper(), path, json=body)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("this endpoint is for the ")


def test_a_clinician_cannot_read_another_clinicians_predictions(live, bc_patients):
    with live.client("bob") as client:
        bobs = client.post("/v1/models/bc/predict",
                           json={"patient": bc_patients[2], "explain": False}).json()
    bob_id = bobs["results"][0]["prediction_id"]
    with live.client("alice") as client:
        mine = client.get("/v1/predictions", params={"limit": 500}).json()
        theirs = client.get(f"/v1/predictions/{bob_id}")
    assert bob_id not in {e["id"] for e in mine}
    assert all(e["user"] == "alice" for e in mine)
    assert theirs.status_code == 404
    assert theirs.json()["detail"] == f"no prediction '{bob_id}' of yours"
    with live.client("bob") as client:
        assert client.get(f"/v1/predictions/{bob_id}").json()["id"] == bob_id


def test_every_request_is_audited_without_patient_data(live, bc_patients):
    with live.client("alice") as client:
        client.post("/v1/models/bc/predict", json={"patient": bc_patients[3], "explain": False})
    with live.client() as client:
        client.get("/v1/models")
    with live.client("ada") as client:
        entries = client.get("/v1/audit", params={"limit": 2}).json()
        listing = client.get("/v1/audit", params={"limit": 1}).json()[0]  # the call before
    predict, denied = entries
    assert predict["user"] == "alice"
    assert predict["action"] == "predict"
    assert predict["outcome"] == "success"
    assert predict["details"]["endpoint"] == "/v1/models/{name}/predict"
    assert predict["details"]["model"] == "bc"
    assert predict["details"]["credential"] == live.keys["alice"].split("_")[1]
    assert denied["user"] == "anonymous"
    assert denied["outcome"] == "denied: 401"
    assert listing["action"] == "entries"
    # timestamps and MACs are digits too, so values are looked for where request data could land
    details = json.dumps([entry["details"] for entry in entries])
    assert not [value for value in bc_patients[3].values() if str(value) in details]
    assert not [name for name in bc_patients[3] if name in json.dumps(entries)]
    assert predict["seq"] + 1 == denied["seq"]
    assert denied["prev"] == predict["mac"]


def test_audit_chain_verifies_and_an_edited_row_is_detected(runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None,
                             rate_limit=0), {"ada": "admin", "alice": "clinician"})
    try:
        with service.client("alice") as client:
            for _ in range(3):
                client.get("/v1/models")
        with service.client("ada") as client:
            intact = client.get("/v1/audit/verify").json()
            engine = service.app.state.storage.engine
            with engine.begin() as connection:
                connection.execute(text("UPDATE audit_events SET user = 'mallory' WHERE seq = 2"))
            edited = client.get("/v1/audit/verify").json()
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
            deleted = client.get("/v1/audit/verify").json()
    finally:
        service.stop()
    assert intact["ok"], intact
    assert intact["entries"] == 3  # the verify call is recorded after it answers
    assert not edited["ok"]
    assert edited["problems"] == ["entry 2 (line 2) was edited: its MAC does not match its "
                                  "content"]
    assert "entry 3 was deleted" in deleted["problems"]


def test_rate_limit_per_key_is_429_with_retry_after(runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None,
                             rate_limit=3), {"alice": "clinician", "bob": "clinician"})
    try:
        with service.client("alice") as client:
            codes = [client.get("/v1/models").status_code for _ in range(4)]
            limited = client.get("/v1/models")
        with service.client("bob") as client:
            other = client.get("/v1/models").status_code
    finally:
        service.stop()
    assert codes == [200, 200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["detail"] == ("rate limit of 3 requests per minute reached for this "
                                        "key: retry later")
    assert other == 200


@pytest.mark.parametrize("path", ["/", "/health", "/v1/models", "/cds-services"])
def test_security_headers_on_every_response(live, path):
    with live.client("alice") as client:
        response = client.get(path)
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain HTTP here


def test_revoked_key_stops_working_at_once(runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None),
                    {"carol": "clinician", "ada": "admin"})
    try:
        with service.client("carol") as client:
            assert client.get("/v1/models").status_code == 200
            with service.client("ada") as admin:
                assert admin.delete("/v1/users/carol").json() == {"name": "carol",
                                                                  "revoked_keys": 1}
            response = client.get("/v1/models")
    finally:
        service.stop()
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key was revoked"


def test_expired_api_key_is_401(runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None),
                    {"dan": "clinician"})
    try:
        with service.app.state.storage.engine.begin() as connection:
            connection.execute(text("UPDATE api_keys SET expires = '2000-01-01T00:00:00+00:00'"))
        with service.client("dan") as client:
            response = client.get("/v1/models")
    finally:
        service.stop()
    assert response.status_code == 401
    assert response.json()["detail"] == ("the API key has expired: ask an administrator for a "
                                         "new one")


def test_a_tampered_bundle_is_refused_at_startup(runs, tmp_path):
    import shutil

    copy = tmp_path / "bc"
    shutil.copytree(runs["bc"], copy)
    onnx = copy / "model" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(BundleError, match=r"bundle file 'model.onnx' in '.*' has changed since "
                       r"it was saved"):
        create_app(Settings(runs={"bc": copy}, data_dir=tmp_path))


def test_a_key_is_checked_once_for_the_requests_that_carry_it_meanwhile(runs, tmp_path,
                                                                         start_service):
    # argon2 costs ~0.2 s of CPU: when a key's cache entry expires under load, every request in
    # flight with it must not run its own check (key_cache_seconds=0: each request misses)
    import threading

    import httpx

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, key_cache_seconds=0),
                            {"alice": "clinician"})
    storage = service.app.state.storage
    checks = []
    verify = storage.verify_key

    def counted(key, recheck=False):
        checks.append(key)
        return verify(key, recheck)

    storage.verify_key = counted
    start = threading.Barrier(8)
    statuses = []

    def call(key):
        with httpx.Client(base_url=service.url, timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            start.wait()
            statuses.append(client.get("/v1/models").status_code)

    wrong = service.keys["alice"][:-4] + "xxxx"
    try:
        threads = [threading.Thread(target=call, args=(key,))
                   for key in [service.keys["alice"]] * 4 + [wrong] * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        service.stop()
    assert sorted(statuses) == [200] * 4 + [401] * 4
    assert len(checks) <= 4  # one check per key (a straggler may start a second)


def test_a_key_is_rechecked_before_its_entry_expires(runs, tmp_path, start_service):
    # a request in the last quarter of the key's cache entry is answered from the entry and
    # starts a background check, which renews the entry: no request waits for argon2
    import os
    import threading
    import time

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, key_cache_seconds=4),
                            {"alice": "clinician"})
    storage = service.app.state.storage
    key = service.keys["alice"]
    checks = []
    verify = storage.verify_key

    def counted(key, recheck=False):
        thread = threading.current_thread().name.split("_")[0]
        checks.append((recheck, thread, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return verify(key, recheck)

    storage.verify_key = counted
    try:
        with service.client("alice") as client:
            assert client.get("/v1/models").status_code == 200  # checked: a fresh entry
            while not storage.cached(key)[1]:  # live, and due in its last second
                time.sleep(0.05)
            assert client.get("/v1/models").status_code == 200  # from the entry; recheck starts
            deadline = time.monotonic() + 10
            while storage.cached(key) is None or storage.cached(key)[1]:
                assert time.monotonic() < deadline, "the background recheck did not renew it"
                time.sleep(0.05)
    finally:
        service.stop()
    # the background recheck runs at the lowest priority, not to slow the requests down
    assert [(recheck, thread) for recheck, thread, _ in checks] == [
        (False, "AnyIO worker thread"), (True, "permed-recheck")]
    assert checks[1][2] == 19


def _other_id(pid):
    """Another id of the same form (a uuid hex that starts with f would give itself back)."""
    return ("e" if pid.startswith("f") else "f") + pid[1:]


def test_an_edited_deleted_or_added_prediction_row_is_reported_by_verify(runs, tmp_path,
                                                                         start_service,
                                                                         bc_patients):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None,
                             rate_limit=0), {"ada": "admin", "alice": "clinician"})
    try:
        with service.client("alice") as client:
            answer = client.post("/v1/models/bc/predict",
                                 json={"patients": bc_patients[:2], "explain": False}).json()
        edited_id, deleted_id = (r["prediction_id"] for r in answer["results"])
        engine = service.app.state.storage.engine
        with service.client("ada") as client:
            intact = client.get("/v1/audit/verify").json()
            with engine.begin() as connection:
                stored = json.loads(connection.execute(
                    text("SELECT answer FROM predictions WHERE id = :id"),
                    {"id": edited_id}).scalar_one())
                stored.update(prob_1=0.01, predicted="0", refer_to_clinician=False)
                connection.execute(text("UPDATE predictions SET answer = :a WHERE id = :id"),
                                   {"a": json.dumps(stored), "id": edited_id})
                connection.execute(text("DELETE FROM predictions WHERE id = :id"),
                                   {"id": deleted_id})
                connection.execute(text(
                    "INSERT INTO predictions SELECT :copy, time, user, model, version, task, "
                    "input_digest, answer FROM predictions WHERE id = :id"),
                    {"copy": _other_id(edited_id), "id": edited_id})
            tampered = client.get("/v1/audit/verify").json()
    finally:
        service.stop()
    assert intact == {"ok": True, "entries": 1, "problems": [], "notes": []}
    added_id = _other_id(edited_id)
    assert tampered["ok"] is False
    assert sorted(tampered["problems"]) == sorted([
        f"prediction {edited_id} (audit entry 1) was edited: the stored row no longer matches "
        "the SHA-256 recorded in the audit trail",
        f"prediction {deleted_id} (audit entry 1) was deleted from the prediction log",
        f"prediction {added_id} is in no audit entry: it was added to the prediction log "
        "outside the service"])


def _edit_answer(db, pid):
    answer = json.loads(db.execute("SELECT answer FROM predictions WHERE id = ?",
                                   (pid,)).fetchone()[0])
    answer.update(prob_1=0.01, predicted="0", refer_to_clinician=False)
    db.execute("UPDATE predictions SET answer = ? WHERE id = ?", (json.dumps(answer), pid))
    return pid


def _edit_answer_and_its_digest(db, pid):
    from permed.serve._audit import prediction_digest

    _edit_answer(db, pid)
    names = ("id", "time", "user", "model", "version", "task", "input_digest", "answer")
    row = dict(zip(names, db.execute(f"SELECT {', '.join(names)} FROM predictions WHERE id = ?",
                                     (pid,)).fetchone(), strict=True))
    details = json.loads(db.execute("SELECT details FROM audit_events WHERE seq = 1").fetchone()[0])
    details["predictions"][pid] = prediction_digest(row)
    db.execute("UPDATE audit_events SET details = ? WHERE seq = 1", (json.dumps(details),))
    return pid


def _copy_row(db, pid, time=None):
    copy = _other_id(pid)
    db.execute("INSERT INTO predictions SELECT ?, coalesce(?, time), user, model, version, task, "
               "input_digest, answer FROM predictions WHERE id = ?", (copy, time, pid))
    return copy


@pytest.mark.parametrize(("edit", "problem"), [
    (_edit_answer, "the stored row no longer matches the SHA-256 recorded in audit entry 1: it "
                   "was changed after it was recorded"),
    (_edit_answer_and_its_digest, "audit entry 1, which records it, was edited: its MAC does "
                                  "not match its content"),
    (_copy_row, "it is in no audit entry, though it was stored after the service began "
                "recording each prediction's digest: it was added to the prediction log "
                "outside the service"),
])
def test_a_stored_prediction_that_no_longer_matches_its_audit_record_is_withheld(
        runs, tmp_path, start_service, bc_patients, caplog, edit, problem):
    import sqlite3

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0), {"alice": "clinician"})
    try:
        with service.client("alice") as client:
            answer = client.post("/v1/models/bc/predict",
                                 json={"patient": bc_patients[0], "explain": False}).json()
            pid = answer["results"][0]["prediction_id"]
            intact = client.get(f"/v1/predictions/{pid}")
            with sqlite3.connect(tmp_path / "permed.db") as db:  # the file, outside the service
                edited = edit(db, pid)
            with caplog.at_level(logging.ERROR, logger="permed.serve"):
                withheld = client.get(f"/v1/predictions/{edited}")
        entries = service.app.state.storage.audit_rows()
    finally:
        service.stop()
    assert (intact.status_code, intact.json()["id"]) == (200, pid)
    assert withheld.status_code == 500
    assert withheld.json() == {"detail": (
        f"the stored prediction '{edited}' does not match its audit record ({problem}), so it "
        "is withheld: ask the service's administrator to run its audit verification "
        "(GET /v1/audit/verify) and restore the prediction log from a backup"), "errors": []}
    assert [r.getMessage() for r in caplog.records if r.name == "permed.serve"] == [
        f"prediction {edited} does not match its audit record: {problem}"]
    assert entries[-1]["outcome"] == "failure: 500"


def test_a_prediction_stored_before_the_audit_recorded_digests_is_still_served(
        runs, tmp_path, start_service, bc_patients):
    import sqlite3

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0), {"alice": "clinician"})
    try:
        with service.client("alice") as client:
            answer = client.post("/v1/models/bc/predict",
                                 json={"patient": bc_patients[0], "explain": False}).json()
            pid = answer["results"][0]["prediction_id"]
            with sqlite3.connect(tmp_path / "permed.db") as db:
                older = _copy_row(db, pid, time="2025-01-01T00:00:00.000+00:00")
            response = client.get(f"/v1/predictions/{older}")
    finally:
        service.stop()
    # it predates the first entry that recorded a digest: it cannot be checked (verify notes it)
    assert response.status_code == 200
    assert response.json()["id"] == older


def test_the_database_and_its_new_folder_are_owner_only(runs, tmp_path, start_service):
    data = tmp_path / "data"
    umask = os.umask(0o022)
    try:
        service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=data,
                                         database_url=None, rate_limit=0),
                                {"alice": "clinician"})
        try:
            with service.client("alice") as client:
                assert client.get("/v1/models").status_code == 200
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}
            modes[data.name] = stat.S_IMODE(data.stat().st_mode)
        finally:
            service.stop()
    finally:
        os.umask(umask)
    assert modes == {"data": 0o700, "permed.db": 0o600, "permed.db-wal": 0o600,
                     "permed.db-shm": 0o600}


def test_a_database_readable_by_others_is_restricted_when_opened(runs, tmp_path, start_service):
    database = tmp_path / "permed.db"
    database.touch()
    database.chmod(0o644)
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0), {})
    service.stop()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_failed_authentications_are_throttled_per_address_before_argon2(runs, tmp_path,
                                                                        start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=3),
                            {"sam": "scientist", "alice": "clinician"})
    storage = service.app.state.storage
    checks = []
    check = storage._check_key
    storage._check_key = lambda key: checks.append(key) or check(key)
    key_id = service.keys["alice"].split("_")[1]
    try:
        with service.client("sam") as client:
            assert client.get("/v1/models").status_code == 200  # verified and cached
        with service.client(Authorization=f"Bearer pmd_{key_id}_wrong") as client:
            codes = [client.get("/v1/models").status_code for _ in range(3)]
            throttled = client.get("/v1/models")
        with service.client("alice") as client:
            valid_but_throttled = client.get("/v1/models").status_code
        with service.client("sam") as client:
            cached = client.get("/v1/models").status_code
        entries = storage.audit_rows()
    finally:
        service.stop()
    assert codes == [401, 401, 401]
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.json() == {"detail": "3 failed authentications from this address in 60 s: "
                                "retry later", "errors": []}
    assert len(checks) == 4  # sam's first check and the three wrong secrets: no argon2 after
    assert valid_but_throttled == 429
    assert cached == 200
    denied = [entry for entry in entries if entry["user"] == "anonymous"]
    assert [(e["outcome"], e["details"].get("attempted_key")) for e in denied] == [
        ("denied: 401", key_id)] * 3 + [("failure: 429", key_id), ("failure: 429", key_id)]
    assert "wrong" not in json.dumps(entries)


SESSION_ENDED = ("the session was ended by an administrator: log in again with your API key "
                 "(POST /v1/auth/token with Authorization: Bearer <API key>)")


def test_ended_sessions_refuse_earlier_tokens_and_a_new_login_works(runs, tmp_path,
                                                                    start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"erin": "clinician", "fred": "clinician", "ada": "admin"})
    try:
        tokens = {}
        for user in ("erin", "fred"):
            with service.client(user) as client:
                tokens[user] = client.post("/v1/auth/token").json()["access_token"]
        stolen = service.client(Authorization=f"Bearer {tokens['erin']}")
        other = service.client(Authorization=f"Bearer {tokens['fred']}")
        old_style = service.client(Authorization="Bearer " + _token(
            service, sub="erin", iat=int(datetime.now(UTC).timestamp()) - 60))
        assert stolen.get("/v1/models").status_code == 200
        with service.client("ada") as admin:
            ended = admin.delete("/v1/users/erin/sessions")
            unknown = admin.delete("/v1/users/nobody/sessions")
            audit = admin.get("/v1/audit", params={"limit": 3}).json()
        refused, renewal = stolen.get("/v1/models"), stolen.post("/v1/auth/token")
        refused_old = old_style.get("/v1/models")
        unaffected = other.get("/v1/models")
        with service.client("erin") as client:  # the API key still works: a new session
            login = client.post("/v1/auth/token").json()["access_token"]
        with service.client(Authorization=f"Bearer {login}") as client:
            fresh = client.get("/v1/models")
        for client in (stolen, other, old_style):
            client.close()
    finally:
        service.stop()
    assert ended.status_code == 200
    assert ended.json()["name"] == "erin"
    since = datetime.fromisoformat(ended.json()["sessions_not_before"])
    assert abs((since - datetime.now(UTC)).total_seconds()) < 60
    assert unknown.status_code == 404
    for response in (refused, renewal, refused_old):
        assert response.status_code == 401
        assert response.json() == {"detail": SESSION_ENDED, "errors": []}
        assert response.headers["www-authenticate"] == "Bearer"
    assert unaffected.status_code == 200
    assert fresh.status_code == 200
    assert _claims(login)["auth_time"] >= since.timestamp()
    entry = next(e for e in audit if e["action"] == "end_sessions")
    assert (entry["user"], entry["outcome"]) == ("ada", "success")
    assert entry["details"]["endpoint"] == "/v1/users/{name}/sessions"
    assert entry["details"]["model"] == "erin"  # the path's name, as for DELETE /v1/users/{name}
    assert entry["details"]["method"] == "DELETE"


def test_a_key_revoked_by_another_process_is_refused_within_seconds(runs, tmp_path,
                                                                    start_service):
    # the CLI's view: a Storage of its own on the same database file; the service's key cache
    # (60 s) must not keep trusting the key
    import time

    from permed.serve import Storage

    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"gina": "clinician", "hal": "clinician", "ada": "admin"})
    storage = service.app.state.storage
    other = Storage(storage.url)
    try:
        with service.client("gina") as gina, service.client("hal") as hal:
            assert gina.get("/v1/models").status_code == 200  # both keys now cached
            assert hal.get("/v1/models").status_code == 200
            assert storage.cached(service.keys["gina"]) is not None
            assert other.revoke("gina") == 1
            revoked = time.monotonic()
            deadline = revoked + 10  # generous: the service reads the epoch every second
            while (response := gina.get("/v1/models")).status_code == 200:
                assert time.monotonic() < deadline, "the revoked key was still trusted"
                time.sleep(0.05)
            delay = time.monotonic() - revoked
            still = hal.get("/v1/models")
            hal_cached = storage.cached(service.keys["hal"])
    finally:
        other.dispose()
        service.stop()
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key was revoked"
    print(f"revocation by another process refused after {delay:.2f} s")
    assert still.status_code == 200
    assert hal_cached is not None  # the other key stayed cached: no argon2 check again


def test_a_report_ticket_and_a_token_of_the_same_millisecond_die_with_the_session(
        runs, tmp_path, start_service):
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path,
                                     database_url=None, rate_limit=0, max_auth_failures=0),
                            {"iris": "clinician"})
    storage, tokens = service.app.state.storage, service.app.state.tokens
    try:
        with service.client("iris") as client:
            token = client.post("/v1/auth/token").json()["access_token"]
        with service.client(Authorization=f"Bearer {token}") as client:
            url = client.post("/v1/models/bc/report-ticket").json()["url"]
        with service.client() as anyone:  # a report link needs no other credential
            before = anyone.get(url)
            ended = storage.end_sessions("iris")
            after = anyone.get(url)
        same = tokens.issue("iris", auth_time=ended)  # a login in the same millisecond
        later = tokens.issue("iris", auth_time=round(ended + 0.001, 3))
        with service.client(Authorization=f"Bearer {same}") as client:
            refused = client.get("/v1/models")
        with service.client(Authorization=f"Bearer {later}") as client:
            accepted = client.get("/v1/models")
    finally:
        service.stop()
    assert _claims(url.split("ticket=")[1])["auth_time"] == _claims(token)["auth_time"]
    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json() == {"detail": f"report link: {SESSION_ENDED}", "errors": []}
    assert refused.status_code == 401
    assert refused.json() == {"detail": SESSION_ENDED, "errors": []}
    assert accepted.status_code == 200


def _epoch_table(storage, present):
    from permed.serve._storage import SecurityEpochRow

    table = SecurityEpochRow.__table__
    (table.create if present else table.drop)(storage.engine)


def test_an_unreadable_security_epoch_is_logged_once_then_a_line_a_while_then_the_recovery(
        tmp_path, caplog):
    # a real SQLite file whose epoch table goes missing: each read fails as an unreachable
    # database does, every 10 ms here; the log must not get a traceback per read
    import re
    import time

    from permed.serve import Storage
    from permed.serve._auth import Revocations

    storage = Storage(f"sqlite:///{tmp_path / 'permed.db'}")
    revocations = Revocations(storage, seconds=0.01, quiet_seconds=0.2)
    try:
        with caplog.at_level(logging.INFO, logger="permed.serve"):
            revocations.start()
            _epoch_table(storage, present=False)
            broken = time.monotonic()
            time.sleep(0.7)
            _epoch_table(storage, present=True)
            deadline = time.monotonic() + 10
            while not any(r.getMessage().startswith("read the security epoch again")
                          for r in caplog.records):
                assert time.monotonic() < deadline, "the recovery was not logged"
                time.sleep(0.01)
            outage = time.monotonic() - broken
            revocations.close()
    finally:
        revocations.close()
        storage.dispose()
    records = [r for r in caplog.records if r.name == "permed.serve"]
    first, *summaries, recovered = records
    assert first.exc_info is not None
    assert first.getMessage() == (
        "could not read the security epoch: keys revoked by another process stay trusted here "
        "until their cache entry expires (at most key_cache_seconds); retrying every second")
    assert 1 <= len(summaries) <= outage / 0.2  # about 0.7 s of failures: a line per 0.2 s
    for record in summaries:
        assert record.exc_info is None
        assert re.fullmatch(r"still cannot read the security epoch: \d+ failed reads in \d+ s, "
                            r"the last: OperationalError: \(sqlite3.OperationalError\) no such "
                            r"table: security_epoch", record.getMessage()), record.getMessage()
    assert re.fullmatch(r"read the security epoch again after \d+ failed reads in \d+ s",
                        recovered.getMessage())


def test_closing_does_not_wait_for_a_read_that_hangs(caplog):
    import threading
    import time

    from permed.serve._auth import Revocations

    class Hanging:  # a database that stopped answering mid-read
        def __init__(self):
            self.reading, self.release = threading.Event(), threading.Event()

        def sync_revocations(self):
            self.reading.set()
            self.release.wait(30)
            return 0

    storage = Hanging()
    revocations = Revocations(storage, seconds=0.01)
    revocations.start()
    assert storage.reading.wait(10)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="permed.serve"):
        revocations.close(timeout=0.2)
    took = time.monotonic() - started
    storage.release.set()
    assert took < 5
    assert [r.getMessage() for r in caplog.records if r.name == "permed.serve"] == [
        "the security epoch's reader did not stop within 0.2 s (a read of the database is "
        "hanging); it ends with the process"]


def test_after_deleted_last_audit_entries_a_prediction_is_withheld_and_verify_says_so(
        runs, tmp_path, start_service, bc_patients):
    """An append had chained after the shortened tail and moved the head onto it, so the
    deletion no longer showed."""
    service = start_service(Settings(runs={"bc": runs["bc"]}, data_dir=tmp_path, database_url=None,
                             rate_limit=0), {"ada": "admin", "alice": "clinician"})
    try:
        with service.client("alice") as client:
            for _ in range(3):
                assert client.get("/v1/models").status_code == 200
            with service.app.state.storage.engine.begin() as connection:
                connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
            predicted = client.post("/v1/models/bc/predict", json={"patient": bc_patients[0]})
        with service.client("ada") as client:
            verified = client.get("/v1/audit/verify").json()
        seqs = [row["seq"] for row in service.app.state.storage.audit_rows()]
    finally:
        service.stop()
    assert predicted.status_code == 503
    assert predicted.json()["detail"].startswith(
        "the prediction could not be recorded in the prediction log and audit trail, so it is "
        "withheld")
    assert seqs == [1, 2]  # nothing was chained onto the shortened trail
    assert not verified["ok"]
    assert verified["problems"] == [
        "entry 3 was deleted (the last entries: 'audit.log.head' records entry 3)"]
