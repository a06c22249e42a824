"""The service's storage on a real SQLite file and a real PostgreSQL (started by .ci/run)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from permed.exceptions import PermedError, SecurityError
from permed.privacy import generate_key
from permed.serve import AuditTrail, Storage
from permed.serve._storage import UnknownUser, _Base


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'permed.db'}"
    else:  # tests/conftest.py: one database per pytest-xdist worker
        url = request.getfixturevalue("postgres_url")
    store = Storage(url)
    yield store
    _Base.metadata.drop_all(store.engine)
    store.dispose()


def test_sqlite_is_a_file_in_the_data_dir(tmp_path):
    from permed.serve import Settings

    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    Storage(settings.url).dispose()
    assert (tmp_path / "data" / "permed.db").is_file()


def test_keys_are_stored_as_argon2_hashes_only(storage):
    key = storage.add_user("alice", "clinician")
    with storage.engine.connect() as connection:
        stored = connection.execute(text("SELECT hash FROM api_keys")).scalar_one()
    assert key.startswith("pmd_")
    assert stored.startswith("$argon2id$")
    assert key not in stored
    principal = storage.verify_key(key)
    assert (principal.user, principal.role) == ("alice", "clinician")


@pytest.mark.parametrize(("name", "role", "message"), [
    ("alice", "nurse", "--role 'nurse' is not known; expected one of clinician, scientist, "
     "admin"),
    ("a b", "admin", "user name 'a b' must be 1-64 letters, digits or . _ - @"),
])
def test_bad_users_are_refused(storage, name, role, message):
    with pytest.raises(PermedError, match=f"^{message}$"):
        storage.add_user(name, role)


def test_a_user_is_added_once(storage):
    storage.add_user("alice", "clinician")
    with pytest.raises(PermedError, match="^user 'alice' already exists: issue another key "
                       "with permed users key alice$"):
        storage.add_user("alice", "admin")


def test_a_deactivated_user_gets_no_new_key_and_their_name_is_not_given_again(storage):
    storage.add_user("carol", "clinician")
    storage.revoke("carol")
    deactivated = ("^user 'carol' was deactivated, and a name is not given again so that the "
                   "audit trail names one person: add them under another name$")
    with pytest.raises(PermedError, match=deactivated):
        storage.new_key("carol")
    with pytest.raises(PermedError, match=deactivated):
        storage.add_user("carol", "clinician")
    with pytest.raises(UnknownUser, match="^user 'dave' does not exist: add them with permed "
                                          "users add dave --role clinician$"):
        storage.new_key("dave")


def test_the_last_active_admin_is_not_deactivated(storage):
    storage.add_user("root", "admin")
    with pytest.raises(PermedError, match="^user 'root' is the last active admin: add another "
                                          r"admin first \(permed users add NAME --role admin\)$"):
        storage.revoke("root")
    storage.add_user("root2", "admin")
    assert storage.revoke("root") == 1
    assert storage.user_role("root") is None


@pytest.mark.parametrize("days", [0, -5])
def test_a_key_is_not_issued_already_expired(storage, days):
    message = (rf"^--expires-days must be at least 1 \(found {days}\): a key would be expired "
               "when issued$")
    with pytest.raises(PermedError, match=message):
        storage.add_user("erin", "clinician", expires_days=days)
    storage.add_user("erin", "clinician")
    with pytest.raises(PermedError, match=message):
        storage.new_key("erin", expires_days=days)


def test_revoked_keys_fail(storage):
    key = storage.add_user("bob", "scientist")
    storage.verify_key(key)
    assert storage.revoke("bob") == 1
    with pytest.raises(SecurityError, match="^the API key was revoked$"):
        storage.verify_key(key)


def test_a_key_entry_falls_due_and_a_failed_recheck_drops_it(storage):
    import time

    key = storage.add_user("carol", "clinician")
    cache = Storage(storage.url, key_cache_seconds=2)  # another process's view of the same users
    try:
        assert cache.cached(key) is None
        principal = cache.verify_key(key)
        assert cache.cached(key) == (principal, False)
        while cache.cached(key) != (principal, True):  # live, and due in its last half second
            assert cache.cached(key) == (principal, False)
            time.sleep(0.05)
        assert cache.verify_key(key, recheck=True) == principal  # renewed
        assert cache.cached(key) == (principal, False)
        storage.revoke("carol")  # elsewhere: this cache still trusts the key
        assert cache.cached(key) == (principal, False)
        with pytest.raises(SecurityError, match="^the API key was revoked$"):
            cache.verify_key(key, recheck=True)
        assert cache.cached(key) is None
    finally:
        cache.dispose()


def test_prediction_log_is_per_user(storage):
    from permed.serve import Principal

    alice, bob = Principal("alice", "clinician", "a"), Principal("bob", "clinician", "b")
    (mine,) = storage.log_predictions(alice, "m", "v1", "diagnose", [("hmac:1", {"p": 0.5})])
    (theirs,) = storage.log_predictions(bob, "m", "v1", "diagnose", [("hmac:2", {"p": 0.7})])
    assert [p["id"] for p in storage.predictions("alice")] == [mine]
    assert storage.prediction("alice", theirs) is None
    assert storage.prediction("bob", theirs)["answer"] == {"p": 0.7}


def test_audit_chain_verifies_and_detects_an_edited_row(storage):
    trail = AuditTrail(storage, generate_key())
    for i in range(5):
        trail.append("alice", "predict", "success", model="m", status=200, request=i)
    intact = trail.verify()
    assert intact.ok, intact.problems
    assert intact.entries == 5
    with storage.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET outcome = 'denied: 403' WHERE seq = 4"))
    edited = trail.verify()
    assert edited.problems == ["entry 4 (line 4) was edited: its MAC does not match its content"]


def test_audit_details_are_stored_as_json_values(storage):
    trail = AuditTrail(storage, generate_key())
    trail.append("alice", "predict", "success", status=200, model=None, score=0.5, flag=True)
    trail.append("alice", "predict", "success", score=np.float64(0.25), run=Path("runs/a"),
                 classes=("a", "b"))
    plain, converted = (row["details"] for row in storage.audit_rows())
    assert plain == {"status": 200, "model": None, "score": 0.5, "flag": True}
    assert converted == {"score": 0.25, "run": "runs/a", "classes": ["a", "b"]}
    assert trail.verify().ok


def test_audit_chain_detects_deleted_last_entries(storage):
    trail = AuditTrail(storage, generate_key())
    for _ in range(3):
        trail.append("alice", "predict", "success")
    with storage.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    assert trail.verify().problems == [
        "entry 3 was deleted (the last entries: 'audit.log.head' records entry 3)"]


def test_two_writers_never_fork_the_chain(storage):
    """Two trails (as two processes would have) appending at once: one chain, no gaps."""
    key = generate_key()
    other = Storage(storage.url)
    trails = [AuditTrail(storage, key), AuditTrail(other, key)]

    def write(trail):
        for _ in range(15):
            trail.append("svc", "predict", "success", request=uuid.uuid4().hex)

    threads = [threading.Thread(target=write, args=(t,)) for t in trails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    report = trails[0].verify()
    assert report.ok, report.problems
    assert report.entries == 30


def test_exported_trail_verifies_with_permed_audit_verify_logic(storage, tmp_path):
    from permed.privacy import verify_log

    key = generate_key()
    trail = AuditTrail(storage, key)
    trail.append("ada", "list_users", "success")
    exported = trail.export(tmp_path / "audit.log")
    assert verify_log(exported, key).ok
    assert (tmp_path / "audit.log.head").is_file()


def test_a_trail_with_no_entry_cannot_be_verified_and_says_why(storage):
    """A new service (or one whose every entry was deleted): the report had named the head file
    of a temporary export, 'audit.log.head', which the service has no such file of."""
    trail = AuditTrail(storage, generate_key())
    report = trail.verify()
    assert not report.ok
    assert report.problems == [
        "cannot verify: the service's audit trail holds no entries: nothing has been recorded "
        "yet (a new service), or every entry was deleted"]
    trail.append("ada", "list_users", "success")
    assert trail.verify().ok


def test_ending_sessions_records_the_time_read_with_the_role(storage):
    import time

    storage.add_user("erin", "clinician")
    storage.add_user("root", "admin")
    assert storage.active_user("erin") == ("clinician", None)
    before = time.time()
    ended = storage.end_sessions("erin")
    assert before - 0.001 <= ended <= time.time() + 0.001
    assert storage.active_user("erin") == ("clinician", ended)
    assert storage.active_user("root") == ("admin", None)  # another user's sessions go on
    assert storage.user_role("erin") == "clinician"  # still active: their keys still work
    storage.revoke("erin")
    assert storage.active_user("erin") is None
    with storage.engine.connect() as connection:
        stamped = connection.execute(text(
            "SELECT sessions_not_before FROM users WHERE name = 'erin'")).scalar_one()
    assert stamped >= ended  # revoke ends the sessions too
    with pytest.raises(UnknownUser, match="^user 'nobody' does not exist"):
        storage.end_sessions("nobody")


def test_a_revocation_elsewhere_drops_only_that_key_at_the_next_sync(storage):
    carol, dave = storage.add_user("carol", "clinician"), storage.add_user("dave", "clinician")
    cache = Storage(storage.url)  # a running service's view of the same database
    try:
        cache.verify_key(carol)
        cache.verify_key(dave)
        assert cache.sync_revocations() == 0  # nothing changed: one read of the epoch
        storage.end_sessions("dave")  # tokens only: no cached key changes
        assert cache.sync_revocations() == 0
        storage.revoke("carol")  # elsewhere: this cache still trusts the key until it syncs
        assert cache.cached(carol) is not None
        assert cache.sync_revocations() == 1
        assert cache.cached(carol) is None
        assert cache.cached(dave) is not None  # still valid: no argon2 check again
        assert cache.sync_revocations() == 0
        with pytest.raises(SecurityError, match="^the API key was revoked$"):
            cache.verify_key(carol)
    finally:
        cache.dispose()


# The tables as permed made them before users.sessions_not_before and the security epoch
_OLD_SCHEMA = """
CREATE TABLE users (id {id} NOT NULL, name VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL,
    created VARCHAR(40) NOT NULL, active BOOLEAN NOT NULL, PRIMARY KEY (id), UNIQUE (name));
CREATE TABLE api_keys (id {id} NOT NULL, key_id VARCHAR(32) NOT NULL, user_id INTEGER NOT NULL,
    hash VARCHAR(200) NOT NULL, created VARCHAR(40) NOT NULL, expires VARCHAR(40),
    revoked BOOLEAN NOT NULL, PRIMARY KEY (id), UNIQUE (key_id),
    FOREIGN KEY(user_id) REFERENCES users (id));
INSERT INTO users (name, role, created, active) VALUES
    ('olga', 'clinician', '2025-01-01T00:00:00.000+00:00', TRUE),
    ('root', 'admin', '2025-01-01T00:00:00.000+00:00', TRUE);
"""


def test_a_database_from_before_sessions_not_before_gains_the_column(storage):
    from argon2 import PasswordHasher

    _Base.metadata.drop_all(storage.engine)
    serial = "SERIAL" if storage.engine.dialect.name == "postgresql" else "INTEGER"
    key = "pmd_0123456789ab_" + "s" * 43
    with storage.engine.begin() as connection:
        for statement in _OLD_SCHEMA.format(id=serial).split(";"):
            if statement.strip():
                connection.execute(text(statement))
        connection.execute(text(
            "INSERT INTO api_keys (key_id, user_id, hash, created, revoked) SELECT "
            "'0123456789ab', id, :hash, '2025-01-01T00:00:00+00:00', FALSE FROM users "
            "WHERE name = 'olga'"), {"hash": PasswordHasher().hash(key)})
    opened = Storage(storage.url)
    again = Storage(storage.url)  # the column is there now: nothing to add
    try:
        assert {c["name"] for c in inspect(opened.engine).get_columns("users")} >= {
            "sessions_not_before", "active"}
        assert again.verify_key(key).user == "olga"  # cached there
        assert opened.active_user("olga") == ("clinician", None)
        ended = opened.end_sessions("olga")
        assert again.active_user("olga") == ("clinician", ended)
        new = opened.add_user("pat", "scientist")
        assert again.verify_key(new).role == "scientist"
        assert opened.revoke("olga") == 1
        assert again.sync_revocations() == 1  # olga's cached key
        with pytest.raises(SecurityError, match="^the API key was revoked$"):
            again.verify_key(key)
    finally:
        opened.dispose()
        again.dispose()


_NO_COLUMN = ("the database lacks column users.sessions_not_before, which this version of "
              "permed needs, and could not add it ")


def _without_the_column(storage):
    """``storage``'s database as an older permed left it: no users.sessions_not_before."""
    with storage.engine.begin() as connection:
        connection.execute(text("ALTER TABLE users DROP COLUMN sessions_not_before"))
    storage.dispose()


def test_a_migration_waits_a_bounded_time_for_a_lock_held_elsewhere(storage, monkeypatch):
    # an older worker's transaction that read (PostgreSQL) or writes (SQLite) the table: the
    # ALTER TABLE must give up after LOCK_SECONDS, not hang start-up (and, on PostgreSQL, every
    # query queued behind it)
    import re
    import time

    from permed.serve import _storage

    monkeypatch.setattr(_storage, "LOCK_SECONDS", 0.5)
    _without_the_column(storage)
    blocker = storage.engine.raw_connection()
    try:
        cursor = blocker.cursor()
        if storage.engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        else:
            cursor.execute("SELECT count(*) FROM users")  # psycopg opens a transaction
        started = time.monotonic()
        with pytest.raises(PermedError) as refused:
            Storage(storage.url)
        took = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert took < 5
    assert re.fullmatch(
        re.escape(_NO_COLUMN) + r"\(.*lock.*\): another connection held a lock on it for more "
        r"than 0\.5 s \(a running permed serve, or a transaction left open\): stop it, or run "
        r"ALTER TABLE users ADD COLUMN sessions_not_before (FLOAT|DOUBLE PRECISION); then start "
        r"again", str(refused.value)), str(refused.value)
    opened = Storage(storage.url)  # the lock released: the column is added
    try:
        assert "sessions_not_before" in {
            c["name"] for c in inspect(opened.engine).get_columns("users")}
    finally:
        opened.dispose()


def _refusing(action):
    """Every new SQLite connection refuses ``action`` (an authorizer code of the sqlite3
    module), as a database refuses a user without the privilege."""
    import contextlib
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def authorize(dbapi_connection, _):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_authorizer(
                lambda code, *_: sqlite3.SQLITE_DENY if code == action else sqlite3.SQLITE_OK)

    @contextlib.contextmanager
    def refusing():
        event.listen(Engine, "connect", authorize)
        try:
            yield
        finally:
            event.remove(Engine, "connect", authorize)
    return refusing()


@pytest.mark.parametrize(("action", "drop", "message"), [
    ("SQLITE_ALTER_TABLE", "ALTER TABLE users DROP COLUMN sessions_not_before",
     _NO_COLUMN + "(not authorized): this database user may not change the schema: as the "
     "table's owner, run ALTER TABLE users ADD COLUMN sessions_not_before FLOAT; then start "
     "again"),
    ("SQLITE_CREATE_TABLE", "DROP TABLE security_epoch",
     "the database lacks table 'security_epoch', which this version of permed needs, and "
     "could not add it (not authorized): this database user may not change the schema: as the "
     "schema's owner, run CREATE TABLE security_epoch ( id INTEGER NOT NULL, epoch INTEGER NOT "
     "NULL, PRIMARY KEY (id) ); then start again"),
])
def test_a_schema_change_the_database_refuses_names_it_and_gives_the_statement(
        tmp_path, action, drop, message):
    import re
    import sqlite3

    url = f"sqlite:///{tmp_path / 'permed.db'}"
    first = Storage(url)
    first.add_user("olga", "clinician")
    with first.engine.begin() as connection:
        connection.execute(text(drop))
    first.dispose()
    with _refusing(getattr(sqlite3, action)), pytest.raises(PermedError,
                                                            match=f"^{re.escape(message)}$"):
        Storage(url)
    opened = Storage(url)  # as the owner: the change is made
    try:
        assert opened.active_user("olga") == ("clinician", None)
    finally:
        opened.dispose()


def test_what_a_stolen_credential_could_have_made_since_a_time(storage):
    import time

    storage.add_user("root", "admin")
    storage.add_user("old", "clinician")
    with storage.engine.begin() as connection:  # made before the window
        connection.execute(text("UPDATE users SET created = '2025-01-01T00:00:00.000+00:00'"))
        connection.execute(text("UPDATE api_keys SET created = '2025-01-01T00:00:00.000+00:00'"))
    since = time.time()
    trail = AuditTrail(storage, generate_key())
    trail.append("root", "add_user", "success", endpoint="/v1/users", model=None)
    mallory_key = storage.add_user("mallory", "admin")
    trail.append("root", "new_key", "success", endpoint="/v1/users/{name}/keys", model="old")
    old_key = storage.new_key("old")  # another user's key: listed though its entry may fail
    root_key = storage.new_key("root")
    trail.append("root", "new_key", "denied: 403", endpoint="/v1/users/{name}/keys", model="x")
    trail.append("old", "new_key", "success", endpoint="/v1/users/{name}/keys", model="old")
    trail.append("root", "list_users", "success", endpoint="/v1/users", model=None)
    made = storage.made_since("root", since)
    assert [(k["key_id"], k["user"], k["revoked"]) for k in made["keys"]] == [
        (mallory_key.split("_")[1], "mallory", False), (old_key.split("_")[1], "old", False),
        (root_key.split("_")[1], "root", False)]
    assert [(g["seq"], g["action"], g["endpoint"], g["user"]) for g in made["grants"]] == [
        (1, "add_user", "/v1/users", None), (2, "new_key", "/v1/users/{name}/keys", "old")]
    assert [(u["name"], u["role"], u["active"]) for u in made["users"]] == [
        ("mallory", "admin", True)]
    with pytest.raises(UnknownUser, match="^user 'nobody' does not exist"):
        storage.made_since("nobody", since)


def test_an_append_after_deleted_last_entries_is_refused(storage):
    """Appending had chained after the shortened tail and moved the head onto it: the deletion
    then no longer showed on verify."""
    from permed.exceptions import IntegrityError

    trail = AuditTrail(storage, generate_key())
    for _ in range(3):
        trail.append("alice", "predict", "success")
    with storage.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    with pytest.raises(IntegrityError, match=(
            r"^refusing to append to the audit trail: it ends at entry 2, but its head records "
            r"entry 3: entries were deleted or replaced outside the service\. Check it with GET "
            r"/v1/audit/verify, and restore the database from a backup$")):
        trail.append("ada", "list_users", "success")
    assert [row["seq"] for row in storage.audit_rows()] == [1, 2]
    assert storage.audit_head()["seq"] == 3
    assert trail.verify().problems == [
        "entry 3 was deleted (the last entries: 'audit.log.head' records entry 3)"]
    with storage.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events"))
    with pytest.raises(IntegrityError, match="^refusing to append to the audit trail: it holds "
                                             "no entry, but its head records entry 3: "):
        trail.append("ada", "list_users", "success")


def test_an_sqlite_file_this_process_may_not_write_is_named_with_its_permissions(tmp_path):
    """SQLite has no owner to run ALTER TABLE as: the message had said to run it as one."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    path = tmp_path / "permed.db"
    first = Storage(f"sqlite:///{path}")
    _without_the_column(first)

    def read_only(dbapi_connection, _):  # as a file of another account, opened by root or not
        dbapi_connection.execute("PRAGMA query_only = 1")

    event.listen(Engine, "connect", read_only)
    try:
        with pytest.raises(PermedError) as refused:
            Storage(f"sqlite:///{path}")
    finally:
        event.remove(Engine, "connect", read_only)
    assert str(refused.value) == (
        _NO_COLUMN + "(attempt to write a readonly database): this process may not write the "
        f"SQLite file {path}: check the permissions of the file, of its -wal and -shm files and "
        "of its folder (the service's account must be able to write them), then start again")


def test_an_unreachable_database_is_an_error_naming_it_without_its_password():
    with pytest.raises(PermedError) as refused:
        Storage("postgresql://permed:s3cret@127.0.0.1:1/permed")
    message = str(refused.value)
    assert message.startswith("could not open the service's database "
                              "postgresql://127.0.0.1:1/permed (connection failed: "), message
    assert message.endswith("): check that it is running and reachable from here, and its URL "
                            "(PERMED_DATABASE_URL)")
    assert "s3cret" not in message
    assert "\n" not in message
