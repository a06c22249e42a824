"""The service's database: users, hashed API keys, the audit chain and the prediction log.

SQLite (a file in the data folder) by default; PostgreSQL or any SQLAlchemy database when a URL
is given. API keys are stored as argon2id hashes only: the key itself is shown once, when it
is made. A key reads ``pmd_<key id>_<secret>``: the id finds the row without revealing
anything, the argon2 hash checks the secret.

Every change that takes trust away (a key revoked, a user deactivated) also bumps the one-row
*security epoch* in the same transaction. A running service reads it once a second
(:meth:`Storage.sync_revocations`, from :class:`permed.serve._auth.Revocations`) and, when it
moved, drops the cached keys that are no longer valid: a key revoked by ``permed users revoke``
(another process) stops working within about a second, not after the key cache's minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic_core
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateTable

from permed.exceptions import IntegrityError as ChainBroken
from permed.exceptions import PermedError, SecurityError
from permed.serve._settings import ROLES

__all__ = ["BUSY_SECONDS", "GRANTS", "KEY_PREFIX", "LOCK_SECONDS", "Principal", "Storage",
           "UnknownUser", "WriterBusy", "make_engine", "now_seconds", "safe_url"]

KEY_PREFIX = "pmd"
# The audited actions of the service that give someone a credential (router function names).
GRANTS = ("add_user", "new_key")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
BUSY_SECONDS = 30  # how long SQLite waits for another writer


class WriterBusy(Exception):
    """Another connection held SQLite's writer lock longer than a writer's patience
    (:meth:`Storage.write`)."""


class _Base(DeclarativeBase):
    pass


class UserRow(_Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # seconds since the epoch (to the millisecond): a bearer token whose session began before
    # is refused (permed users end-sessions); added to older databases by _migrate
    sessions_not_before: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)


class SecurityEpochRow(_Base):
    """One row (id 1) whose ``epoch`` every revocation or deactivation increments."""

    __tablename__ = "security_epoch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(Integer)


class KeyRow(_Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    hash: Mapped[str] = mapped_column(String(200))
    created: Mapped[str] = mapped_column(String(40))
    expires: Mapped[str | None] = mapped_column(String(40), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditRow(_Base):
    __tablename__ = "audit_events"
    # the sequence number is the key: two writers can never both append entry n
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(40))
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    prev: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(_Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    head_mac: Mapped[str] = mapped_column(String(64))


class PredictionRow(_Base):
    __tablename__ = "predictions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    time: Mapped[str] = mapped_column(String(40))
    user: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(16))
    input_digest: Mapped[str] = mapped_column(String(80))
    answer: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user and their role, and the credential used."""

    user: str
    role: str
    credential: str  # an API key id, or "jwt:<subject>"
    auth_time: float | None = None  # a token's: when its session (the API key login) began


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def now_seconds() -> float:
    """Seconds since the epoch, to the millisecond: a session's start (a token's
    ``auth_time``) and the time its sessions were ended are compared in this unit."""
    return round(time.time(), 3)


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine; SQLite in WAL mode, PostgreSQL through psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _private_database(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            # WAL: readers never block the writer; NORMAL: a commit survives a crash of the
            # process (not necessarily a power cut), at a fraction of FULL's fsync cost
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def safe_url(url: str) -> str:
    """The database URL without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _said(exc: DBAPIError) -> str:
    """The database's own message, in one line."""
    said = str(exc.orig) if exc.orig is not None else str(exc)
    lines = said.strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _private_database(path: Path) -> None:
    """Make the SQLite file owner-only before SQLite opens it: a new folder 0700, the database
    0600 (SQLite gives its -wal and -shm files the database's mode). It holds users, key hashes,
    the audit trail and every answer; with the usual umask it was readable by every local user.
    An existing folder keeps its mode; database files readable by others are restricted."""
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        if os.name == "posix":
            folder.chmod(0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # absent, or another user's file: SQLite will say
            if os.name == "posix" and stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)


class Storage:
    """Users, keys, audit entries and predictions in one database.

    Parameters
    ----------
    url : str
        An SQLAlchemy URL; tables are created when missing.
    key_cache_seconds : int, default 60
        How long a verified API key is remembered (argon2 costs 0.3-0.4 s of CPU on purpose;
        a key revoked through this process is forgotten at once, one revoked through another
        at the next :meth:`sync_revocations`). In the last quarter of that time :meth:`cached`
        says the entry is due, and the service rechecks the key in the background
        (:class:`permed.serve._auth.Verifications`).
    """

    def __init__(self, url: str, key_cache_seconds: int = 60) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            _create_tables(self.engine)
            _migrate(self.engine)
            _first_epoch(self.engine)
            with self.session() as session:
                self._epoch = _epoch(session)  # the last one sync_revocations acted on
        except DBAPIError as exc:  # not reachable, or not a database permed can open
            self.engine.dispose()
            raise PermedError(f"could not open the service's database {safe_url(url)} "
                              f"({_said(exc)}): check that it is running and reachable from "
                              "here, and its URL (PERMED_DATABASE_URL)") from None
        except BaseException:
            self.engine.dispose()  # no connection left open (and no lock kept) by a failure
            raise
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._cache_seconds = key_cache_seconds
        self._lock = threading.Lock()
        self._statements = _Statements(self.engine)
        self._writers = threading.local()  # each writing thread's own connection
        self._kept: list[Any] = []

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        with self._lock:
            kept, self._kept = self._kept, []
        for connection in kept:
            with contextlib.suppress(Exception):  # already broken: nothing to give back
                connection.close()
        self.engine.dispose()

    def _writer(self) -> Any:
        """This thread's connection for :meth:`write`, kept out of the pool: a checkout, a
        reset and a busy-timeout switch per request cost more than the writes themselves."""
        connection = getattr(self._writers, "connection", None)
        if connection is None:
            connection = self.engine.raw_connection()
            self._statements.prepare(connection)
            self._writers.connection = connection
            with self._lock:
                self._kept.append(connection)
        return connection

    def _drop_writer(self, connection: Any) -> None:
        """Forget a writer connection that failed (the next write opens another)."""
        self._writers.connection = None
        with self._lock:
            if connection in self._kept:
                self._kept.remove(connection)
        with contextlib.suppress(Exception):
            connection.invalidate()

    # ---- users and keys --------------------------------------------------------------------
    def add_user(self, name: str, role: str, expires_days: int | None = None) -> str:
        """Create a user and return their first API key (shown once, stored hashed).

        Raises
        ------
        PermedError
            Unknown role, bad name, or the user exists.
        """
        if role not in ROLES:
            raise PermedError(f"--role '{role}' is not known; expected one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
            raise PermedError(f"user name '{name}' must be 1-64 letters, digits or . _ - @")
        _check_expiry(expires_days)
        with self.session() as session:
            existing = session.scalar(select(UserRow).where(UserRow.name == name))
            if existing is not None and not existing.active:
                raise PermedError(_deactivated(name))
            if existing is not None:
                raise PermedError(f"user '{name}' already exists: issue another key with "
                                  f"permed users key {name}")
            user = UserRow(name=name, role=role, created=_now(), active=True)
            session.add(user)
            session.flush()
            key = self._new_key(session, user.id, expires_days)
            session.commit()
        return key

    def new_key(self, name: str, expires_days: int | None = None) -> str:
        """Another API key for an existing, active user.

        Raises
        ------
        UnknownUser
            No such user.
        PermedError
            The user was deactivated, or ``expires_days`` is below 1.
        """
        _check_expiry(expires_days)
        with self.session() as session:
            user = self._user(session, name)
            if not user.active:
                raise PermedError(_deactivated(name))
            key = self._new_key(session, user.id, expires_days)
            session.commit()
        return key

    def _new_key(self, session: Session, user_id: int, expires_days: int | None) -> str:
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        expires = (None if expires_days is None else
                   (datetime.now(UTC) + timedelta(days=expires_days)).isoformat())
        session.add(KeyRow(key_id=key_id, user_id=user_id, hash=_HASHER.hash(key),
                           created=_now(), expires=expires, revoked=False))
        return key

    def _user(self, session: Session, name: str) -> UserRow:
        user = session.scalar(select(UserRow).where(UserRow.name == name))
        if user is None:
            raise UnknownUser(f"user '{name}' does not exist: add them with permed users add "
                              f"{name} --role clinician")
        return user

    def users(self) -> list[dict[str, Any]]:
        """Every user with their role, state and number of active keys."""
        with self.session() as session:
            rows = session.execute(select(UserRow).order_by(UserRow.name)).scalars().all()
            keys = session.execute(select(KeyRow)).scalars().all()
        active: dict[int, int] = {}
        for key in keys:
            if not key.revoked:
                active[key.user_id] = active.get(key.user_id, 0) + 1
        return [{"name": u.name, "role": u.role, "created": u.created, "active": u.active,
                 "keys": active.get(u.id, 0)} for u in rows]

    def revoke(self, name: str) -> int:
        """Revoke every key of a user and deactivate them; return the number of keys.

        Raises
        ------
        UnknownUser
            No such user.
        PermedError
            The user is the last active administrator: nobody could manage users after.
        """
        with self.session() as session:
            user = self._user(session, name)
            admins = session.scalar(select(func.count()).select_from(UserRow).where(
                UserRow.role == "admin", UserRow.active))
            if user.active and user.role == "admin" and admins == 1:
                raise PermedError(f"user '{name}' is the last active admin: add another admin "
                                  "first (permed users add NAME --role admin)")
            user.active = False
            user.sessions_not_before = now_seconds()
            keys = session.execute(select(KeyRow).where(KeyRow.user_id == user.id)).scalars()
            count = 0
            for key in keys:
                count += not key.revoked
                key.revoked = True
            _bump_epoch(session)  # other processes drop the keys from their caches
            session.commit()
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v[0].user != name}
        return count

    def end_sessions(self, name: str) -> float:
        """End a user's sessions: every bearer token whose session began before now is refused
        (:meth:`active_user`); their API keys keep working, so they log in again. Return the
        time (seconds since the epoch).

        A token is checked against the user row on every request, so this takes effect at once
        in every process; the security epoch is not bumped (no cached key changes).

        Raises
        ------
        UnknownUser
            No such user.
        """
        with self.session() as session:
            user = self._user(session, name)
            user.sessions_not_before = ended = now_seconds()
            session.commit()
        return ended

    def made_since(self, name: str, since: float) -> dict[str, list[dict[str, Any]]]:
        """What a stolen credential of user ``name`` could have left behind since ``since``
        (seconds since the epoch): ``keys``, every API key made since, of any user (key id,
        its user, time, whether revoked: a stolen administrator's credential can make a key
        for anyone, and the audit entry that would name it may have failed); ``grants``, the
        successful ``add_user`` and ``new_key`` requests they made through the service since
        (audit entries: seq, time, action, endpoint, the user named in the path; an
        ``add_user`` entry does not name the user added); and ``users``, every user added
        since, by anyone (name, role, time, whether active).

        Raises
        ------
        UnknownUser
            No such user.
        """
        after = datetime.fromtimestamp(since, UTC).isoformat(timespec="milliseconds")
        with self.session() as session:
            self._user(session, name)
            keys = session.execute(select(KeyRow.key_id, UserRow.name, KeyRow.created,
                                          KeyRow.revoked)
                                   .join(UserRow, UserRow.id == KeyRow.user_id)
                                   .where(KeyRow.created >= after)
                                   .order_by(KeyRow.created, KeyRow.id)).all()
            entries = session.execute(select(AuditRow).where(
                AuditRow.user == name, AuditRow.action.in_(GRANTS),
                AuditRow.outcome == "success", AuditRow.time >= after)
                .order_by(AuditRow.seq)).scalars().all()
            users = session.execute(select(UserRow).where(UserRow.created >= after)
                                    .order_by(UserRow.created)).scalars().all()
        grants = []
        for row in entries:
            details = json.loads(row.details)
            grants.append({"seq": row.seq, "time": row.time, "action": row.action,
                           "endpoint": details.get("endpoint"),
                           "user": details.get("model")})  # the path's {name}
        return {"keys": [{"key_id": k.key_id, "user": k.name, "created": k.created,
                          "revoked": k.revoked} for k in keys], "grants": grants,
                "users": [{"name": u.name, "role": u.role, "created": u.created,
                           "active": u.active} for u in users]}

    def active_user(self, name: str) -> tuple[str, float | None] | None:
        """The role of an active user and the time before which their sessions were ended
        (None when never), in one read; None when unknown or deactivated."""
        with self.session() as session:
            row = session.execute(select(UserRow.role, UserRow.active,
                                         UserRow.sessions_not_before)
                                  .where(UserRow.name == name)).first()
        if row is None or not row.active:
            return None
        return row.role, row.sessions_not_before

    def user_role(self, name: str) -> str | None:
        """The role of an active user (None when unknown or deactivated)."""
        found = self.active_user(name)
        return None if found is None else found[0]

    def sync_revocations(self) -> int:
        """Read the security epoch; when it moved since the last call (a key revoked or a user
        deactivated, by any process), drop the cached keys that were revoked or expired, or
        whose user was deactivated or changed role, in one read of their rows. Return the
        number of entries dropped.

        Cheap when nothing changed (one one-row read), so a service calls it every second. The
        cached keys still valid stay: dropping them all would cost each an argon2 check.
        """
        with self.session() as session:
            epoch = _epoch(session)
            if epoch == self._epoch:
                return 0
            with self._lock:
                credentials = {principal.credential for principal, _ in self._cache.values()}
            valid = self._valid(session, credentials) if credentials else set()
        with self._lock:
            kept = {digest: entry for digest, entry in self._cache.items()
                    if (entry[0].credential, entry[0].user, entry[0].role) in valid}
            dropped = len(self._cache) - len(kept)
            self._cache = kept
            self._epoch = epoch  # a check that read its key before now caches nothing (verify_key)
        return dropped

    @staticmethod
    def _valid(session: Session, key_ids: set[str]) -> set[tuple[str, str, str]]:
        """(key id, user, role) of those of ``key_ids`` that are valid now."""
        rows = session.execute(
            select(KeyRow.key_id, KeyRow.expires, UserRow.name, UserRow.role)
            .join(UserRow, UserRow.id == KeyRow.user_id)
            .where(KeyRow.key_id.in_(key_ids), ~KeyRow.revoked, UserRow.active)).all()
        now = datetime.now(UTC)
        return {(row.key_id, row.name, row.role) for row in rows
                if row.expires is None or datetime.fromisoformat(row.expires) >= now}

    def cached(self, key: str) -> tuple[Principal, bool] | None:
        """The principal of a key verified in the last ``key_cache_seconds``, and whether its
        entry is due for a recheck (in its last quarter); None when there is no live entry."""
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is None:
            return None
        left = cached[1] - time.monotonic()
        return (cached[0], left < self._cache_seconds / 4) if left > 0 else None

    def verify_key(self, key: str, recheck: bool = False) -> Principal:
        """The user an API key belongs to.

        Parameters
        ----------
        key : str
        recheck : bool, default False
            Check the key even when its cache entry is live (the entry is renewed when the key
            passes, and dropped when it fails).

        Raises
        ------
        SecurityError
            Malformed, unknown, wrong, revoked or expired key (the message says which, without
            the key).
        """
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            cached = self._cache.get(digest)
        if not recheck and cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            principal, epoch = self._check_key(key)
        except SecurityError:
            with self._lock:
                self._cache.pop(digest, None)
            raise
        with self._lock:
            # a key read before a revocation that sync_revocations has already acted on is
            # not cached: the sync could not see this entry, which may be stale
            if epoch >= self._epoch:
                self._cache[digest] = (principal, time.monotonic() + self._cache_seconds)
            else:
                self._cache.pop(digest, None)
        return principal

    def _check_key(self, key: str) -> tuple[Principal, int]:
        """The argon2 check of an API key against its stored hash, and its validity; with the
        security epoch read before the key's row."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise SecurityError("the API key is malformed: it should read pmd_<id>_<secret>")
        with self.session() as session:
            epoch = _epoch(session)
            row = session.scalar(select(KeyRow).where(KeyRow.key_id == parts[1]))
            user = session.get(UserRow, row.user_id) if row is not None else None
        if row is None or user is None:
            raise SecurityError("the API key is not known")
        try:
            _HASHER.verify(row.hash, key)
        except (VerificationError, InvalidHashError):
            raise SecurityError("the API key is not valid") from None
        if row.revoked or not user.active:
            raise SecurityError("the API key was revoked")
        if row.expires is not None and datetime.fromisoformat(row.expires) < datetime.now(UTC):
            raise SecurityError("the API key has expired: ask an administrator for a new one")
        return Principal(user.name, user.role, row.key_id), epoch

    # ---- prediction log ----------------------------------------------------------------------
    @staticmethod
    def prediction_rows(principal: Principal, model: str, version: str, task: str,
                        entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Rows of the prediction log (input digest and answer, never the inputs), each with a
        new ``id``."""
        now = _now()
        return [{"id": uuid.uuid4().hex, "time": now, "user": principal.user, "model": model,
                 "version": version, "task": task, "input_digest": digest,
                 "answer": pydantic_core.to_json(answer, fallback=str).decode()}
                for digest, answer in entries]

    def log_predictions(self, principal: Principal, model: str, version: str, task: str,
                        entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Record predictions now, in their own transaction; return their ids."""
        rows = self.prediction_rows(principal, model, version, task, entries)
        self.write(lambda tail: ([], None), rows)
        return [row["id"] for row in rows]

    def predictions(self, user: str, limit: int = 50) -> list[dict[str, Any]]:
        """A user's own predictions, newest first."""
        with self.session() as session:
            rows = session.execute(select(PredictionRow).where(PredictionRow.user == user)
                                   .order_by(PredictionRow.time.desc()).limit(limit)).scalars()
            return [_prediction(r) for r in rows]

    def prediction(self, user: str, prediction_id: str) -> dict[str, Any] | None:
        """One of a user's predictions; None when it does not exist *or belongs to another*."""
        with self.session() as session:
            row = session.get(PredictionRow, prediction_id)
        if row is None or not hmac.compare_digest(row.user, user):
            return None
        return _prediction(row)

    def prediction_record(self, user: str, prediction_id: str) -> dict[str, Any] | None:
        """One of a user's predictions as stored (``answer`` as its JSON text, as
        :func:`permed.serve._audit.prediction_digest` reads it); None when it does not exist
        *or belongs to another*."""
        with self.session() as session:
            row = session.get(PredictionRow, prediction_id)
        if row is None or not hmac.compare_digest(row.user, user):
            return None
        return _stored(row)

    def earliest_prediction(self, ids: list[str]) -> str | None:
        """The time of the earliest stored prediction among ``ids``; None when none is
        stored."""
        with self.session() as session:
            earliest: str | None = session.scalar(
                select(func.min(PredictionRow.time)).where(PredictionRow.id.in_(ids)))
        return earliest

    def prediction_records(self) -> Iterator[dict[str, Any]]:
        """Every stored prediction row as stored (``answer`` as its JSON text), for
        verification against the audit trail."""
        with self.session() as session:
            for row in session.execute(select(PredictionRow)).scalars().yield_per(1000):
                yield _stored(row)

    # ---- audit rows (the chain itself lives in permed.serve._audit) --------------------------
    def write(self, chain: Callable[[tuple[int, str] | None], tuple[list[dict[str, Any]],
                                                                   dict[str, Any] | None]],
              predictions: list[dict[str, Any]], patience: float = BUSY_SECONDS
              ) -> list[dict[str, Any]] | None:
        """Chain audit entries after the stored tail, store them, move the head and add
        prediction rows, in one transaction; return the entries.

        ``chain(tail)`` gives the entries and head from the last entry's (seq, mac), read inside
        the transaction after taking the database's writer lock (SQLite's ``BEGIN IMMEDIATE``,
        a PostgreSQL transaction-level advisory lock), so concurrent processes append in turn.
        That tail must be the one the stored head records: after the last entries were deleted
        (or the last one replaced) outside the service, appending would move the head onto the
        shortened chain and hide the deletion, so an ``IntegrityError`` (of
        :mod:`permed.exceptions`) is raised instead and nothing is stored.
        Returns None, and stores nothing, if an entry's ``seq`` already exists (a database
        without such a lock, where another process appended first). A SQLite writer lock
        held by another connection for ``patience`` seconds raises :class:`WriterBusy`, and
        nothing is stored (a caller that must not block for long gives a short patience and
        tries again later).

        This runs for every request, so it skips SQLAlchemy's per-statement work: the
        statements are compiled once for the database's dialect and run on the driver's
        connection (``executemany``).
        """
        connection = self._writer()
        try:
            cursor = connection.cursor()
            self._statements.lock(cursor, patience)
            entries, head = chain(self._statements.checked_tail(cursor))
            audit = [{k: (json.dumps(v) if k == "details" else v) for k, v in entry.items()}
                     for entry in entries]
            self._statements.run(cursor, "prediction", predictions)
            self._statements.run(cursor, "audit", audit)
            if head is not None:
                self._statements.run(cursor, "move_head", [{"head_id": 1, **head}])
                if cursor.rowcount == 0:
                    self._statements.run(cursor, "first_head", [{"id": 1, **head}])
            connection.commit()
        except self._statements.conflict:
            connection.rollback()
            return None
        except WriterBusy:  # no transaction was begun
            raise
        except BaseException:
            try:
                connection.rollback()
            except Exception:  # noqa: BLE001 - the connection is gone: open another next time
                self._drop_writer(connection)
            raise
        return entries

    def audit_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries in sequence order (the last ``limit`` when given)."""
        with self.session() as session:
            query = select(AuditRow).order_by(AuditRow.seq.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = list(session.execute(query).scalars())[::-1]
        return [_entry(r) for r in rows]

    def audit_entry_with(self, text: str, newest: bool = True,
                         accept: Callable[[dict[str, Any]], bool] = lambda entry: True
                         ) -> dict[str, Any] | None:
        """The newest (or oldest) audit entry whose stored details contain ``text`` and that
        ``accept`` takes (the text match is a cheap filter; ``accept`` reads the parsed
        details); None when there is none.

        The entries are walked by their sequence number (the key) from the end it starts at,
        so an entry near that end is found without reading the others.
        """
        order = AuditRow.seq.desc() if newest else AuditRow.seq.asc()
        query = (select(AuditRow).where(AuditRow.details.contains(text, autoescape=True))
                 .order_by(order))
        with self.session() as session:
            for row in session.execute(query).scalars().yield_per(100):
                try:
                    entry = _entry(row)
                except ValueError:  # details that are not JSON: not an entry the service wrote
                    continue
                if accept(entry):
                    return entry
        return None

    def audit_head(self) -> dict[str, Any] | None:
        with self.session() as session:
            row = session.get(AuditHeadRow, 1)
        return None if row is None else {"seq": row.seq, "mac": row.mac, "key_id": row.key_id,
                                         "head_mac": row.head_mac}


# Any constant naming the audit chain's writer lock among PostgreSQL's advisory locks.
_AUDIT_LOCK = 7_270_001


class _Statements:
    """The writes of every request, compiled once for the engine's dialect and driver."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self.dialect = dialect.name
        self.conflict = dialect.loaded_dbapi.IntegrityError  # a duplicate audit seq
        self.locked = dialect.loaded_dbapi.OperationalError  # SQLite: "database is locked"
        statements = {
            "prediction": insert(PredictionRow),
            "audit": insert(AuditRow),
            "move_head": update(AuditHeadRow).where(AuditHeadRow.id == bindparam("head_id"))
            .values({c: bindparam(c) for c in ("seq", "mac", "key_id", "head_mac")}),
            "first_head": insert(AuditHeadRow),
        }
        self._compiled = {}
        for name, statement in statements.items():
            compiled = statement.compile(dialect=dialect)
            self._compiled[name] = (str(compiled), compiled.positiontup)
        self._tail = str(select(AuditRow.seq, AuditRow.mac).order_by(AuditRow.seq.desc())
                         .limit(1).compile(dialect=dialect,
                                           compile_kwargs={"literal_binds": True}))
        self._head = str(select(AuditHeadRow.seq, AuditHeadRow.mac).where(AuditHeadRow.id == 1)
                         .compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    def lock(self, cursor: Any, patience: float = BUSY_SECONDS) -> None:
        """Begin the transaction holding the audit chain's writer lock (where there is one);
        on SQLite, :class:`WriterBusy` when another connection holds it for ``patience``
        seconds."""
        if self.dialect == "sqlite":
            self._begin_immediate(cursor, patience)
        elif self.dialect == "postgresql":
            cursor.execute(f"SELECT pg_advisory_xact_lock({_AUDIT_LOCK})")

    def prepare(self, connection: Any) -> None:
        """Set up a writer connection: SQLite's busy handler off (:meth:`lock` polls)."""
        if self.dialect == "sqlite":
            connection.cursor().execute("PRAGMA busy_timeout = 0")

    def _begin_immediate(self, cursor: Any, patience: float) -> None:
        """SQLite's writer lock, polled every fraction of a millisecond: its own busy handler
        sleeps 1, 2, 5, 10... ms between tries, and two processes committing in turn can keep
        one of them asleep for a second."""
        deadline, pause = time.monotonic() + patience, 0.0001
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except self.locked as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise WriterBusy(f"SQLite's writer lock was held by another connection for "
                                     f"{patience:g} s") from None
                time.sleep(pause)
                pause = min(2 * pause, 0.002)

    def tail(self, cursor: Any) -> tuple[int, str] | None:
        """The last audit entry's (seq, mac), None for an empty chain."""
        cursor.execute(self._tail)
        row = cursor.fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def checked_tail(self, cursor: Any) -> tuple[int, str] | None:
        """:meth:`tail`, once it is checked against the stored head (where there is one).

        Raises
        ------
        permed.exceptions.IntegrityError
            The last entry is not the one the head records.
        """
        tail = self.tail(cursor)
        cursor.execute(self._head)
        row = cursor.fetchone()
        if row is None or tail == (int(row[0]), str(row[1])):
            return tail
        head_seq = int(row[0])
        if tail is None:
            found = "holds no entry"
        elif tail[0] == head_seq:
            found = f"ends at entry {tail[0]}, whose MAC is not the one the head records"
        else:
            found = f"ends at entry {tail[0]}"
        raise ChainBroken(
            f"refusing to append to the audit trail: it {found}, but its head records entry "
            f"{head_seq}: entries were deleted or replaced outside the service. Check it with "
            "GET /v1/audit/verify, and restore the database from a backup")

    def run(self, cursor: Any, name: str, rows: list[dict[str, Any]]) -> None:
        """Run statement ``name`` once per row (``executemany``); nothing for no rows."""
        if not rows:
            return
        sql, order = self._compiled[name]
        params = rows if order is None else [tuple(row[c] for c in order) for row in rows]
        if len(params) == 1:  # rowcount is that of this row (the head's update reads it)
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)


def _epoch(session: Session) -> int:
    """The security epoch (0 where its row is missing)."""
    return session.scalar(select(SecurityEpochRow.epoch).where(SecurityEpochRow.id == 1)) or 0


def _bump_epoch(session: Session) -> None:
    """Increment the security epoch in ``session``'s transaction."""
    bumped = session.connection().execute(update(SecurityEpochRow)
                                          .where(SecurityEpochRow.id == 1)
                                          .values(epoch=SecurityEpochRow.epoch + 1))
    if bumped.rowcount == 0:
        session.add(SecurityEpochRow(id=1, epoch=1))


def _first_epoch(engine: Engine) -> None:
    """Add the security epoch's row when missing (another process may add it meanwhile)."""
    with contextlib.suppress(IntegrityError), Session(engine) as session:
        if session.get(SecurityEpochRow, 1) is None:
            session.add(SecurityEpochRow(id=1, epoch=0))
            session.commit()


# Columns added since the first release: (table, column). create_all makes missing tables,
# never missing columns, so a database made by an older permed gets them here.
_ADDED = (("users", "sessions_not_before"),)
# How long a schema change waits for a table's lock. PostgreSQL's ALTER TABLE waits for every
# open transaction that read the table (an older worker's), and every query on the table queues
# behind it meanwhile: without a bound, start-up would hang and stall the running service too.
LOCK_SECONDS = 5.0


def _create_tables(engine: Engine) -> None:
    """``create_all``, waiting at most :data:`LOCK_SECONDS` for a lock; a
    :class:`PermedError` with the DDL to run when the database user may not create a table."""
    try:
        with _bounded(engine) as connection:
            _Base.metadata.create_all(connection)
    except DBAPIError as exc:
        present = set(inspect(engine).get_table_names())
        missing = [t for name, t in _Base.metadata.tables.items() if name not in present]
        if not missing:  # another process made them meanwhile
            return
        ddl = "; ".join(" ".join(str(CreateTable(table).compile(dialect=engine.dialect))
                                 .split()) for table in missing)
        names = ", ".join(f"'{table.name}'" for table in missing)
        what = f"table {names}" if len(missing) == 1 else f"tables {names}"
        raise PermedError(_schema_failed(what, exc, ddl, engine, "the schema's owner")
                          ) from None


def _migrate(engine: Engine) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each column of :data:`_ADDED` that the database lacks
    (SQLite and PostgreSQL alike: a nullable column, no default), waiting at most
    :data:`LOCK_SECONDS` for the table's lock. Two processes starting at once may both try: the
    one that finds the column added meanwhile goes on.

    Raises
    ------
    PermedError
        The column could not be added (the database user may not alter the table, or another
        connection held the table's lock): the message names the column and the statement to
        run as the table's owner.
    """
    for table_name, column_name in _ADDED:
        if _has_column(engine, table_name, column_name):
            continue
        ddl = _add_column(engine, table_name, column_name)
        try:
            with _bounded(engine) as connection:
                connection.execute(text(ddl))
        except DBAPIError as exc:
            if not _has_column(engine, table_name, column_name):
                raise PermedError(_schema_failed(f"column {table_name}.{column_name}", exc,
                                                 ddl, engine)) from None


def _add_column(engine: Engine, table_name: str, column_name: str) -> str:
    """The ``ALTER TABLE ... ADD COLUMN`` statement of one column of :data:`_ADDED`."""
    column = _Base.metadata.tables[table_name].c[column_name]
    kind = column.type.compile(dialect=engine.dialect)
    preparer = engine.dialect.identifier_preparer
    return (f"ALTER TABLE {preparer.quote(table_name)} ADD COLUMN "
            f"{preparer.quote(column_name)} {kind}")


@contextlib.contextmanager
def _bounded(engine: Engine) -> Iterator[Connection]:
    """A transaction whose statements wait at most :data:`LOCK_SECONDS` for a lock (PostgreSQL:
    ``lock_timeout``, for this transaction only; SQLite: the connection's busy handler, given
    back its usual patience after)."""
    milliseconds = int(LOCK_SECONDS * 1000)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {milliseconds}")
                elif connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                yield connection
        finally:
            if sqlite:  # the pooled connection serves requests next
                with contextlib.suppress(DBAPIError):
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")
                    connection.commit()


def _schema_failed(what: str, exc: DBAPIError, ddl: str, engine: Engine,
                   owner: str = "the table's owner") -> str:
    """Why a schema change failed and the statement to run instead (as ``owner``), from the
    database's error; for an SQLite file this process may not write, its permissions to check
    (SQLite has no owner to run a statement as)."""
    said = _said(exc)
    code = getattr(exc.orig, "sqlstate", None)
    lowered = said.lower()
    if engine.dialect.name == "sqlite" and "readonly" in lowered:  # attempt to write a readonly
        return (f"the database lacks {what}, which this version of permed needs, and could not "
                f"add it ({said}): this process may not write the SQLite file "
                f"{engine.url.database}: check the permissions of the file, of its -wal and -shm "
                "files and of its folder (the service's account must be able to write them), "
                "then start again")
    if code == "55P03" or "lock" in lowered:  # lock_not_available; SQLite: database is locked
        why = (f"another connection held a lock on it for more than {LOCK_SECONDS:g} s (a "
               "running permed serve, or a transaction left open): stop it, or run")
    elif code == "42501" or any(word in lowered for word in (
            "permission", "privilege", "owner", "not authorized", "readonly", "read-only")):
        why = f"this database user may not change the schema: as {owner}, run"
    else:
        why = f"run, as {owner},"
    return (f"the database lacks {what}, which this version of permed needs, and could not "
            f"add it ({said}): {why} {ddl}; then start again")


def _has_column(engine: Engine, table: str, column: str) -> bool:
    return any(c["name"] == column for c in inspect(engine).get_columns(table))


def _entry(row: AuditRow) -> dict[str, Any]:
    return {"seq": row.seq, "time": row.time, "user": row.user, "action": row.action,
            "outcome": row.outcome, "details": json.loads(row.details), "key_id": row.key_id,
            "prev": row.prev, "mac": row.mac}


def _stored(row: PredictionRow) -> dict[str, Any]:
    return {"id": row.id, "time": row.time, "user": row.user, "model": row.model,
            "version": row.version, "task": row.task, "input_digest": row.input_digest,
            "answer": row.answer}


def _prediction(row: PredictionRow) -> dict[str, Any]:
    return {"id": row.id, "time": row.time, "user": row.user, "model": row.model,
            "version": row.version, "task": row.task, "input_digest": row.input_digest,
            "answer": json.loads(row.answer)}


class UnknownUser(PermedError):
    """No user of that name (the service answers 404)."""


def _check_expiry(expires_days: int | None) -> None:
    if expires_days is not None and expires_days < 1:
        raise PermedError(f"--expires-days must be at least 1 (found {expires_days}): a key "
                          "would be expired when issued")


def _deactivated(name: str) -> str:
    return (f"user '{name}' was deactivated, and a name is not given again so that the audit "
            "trail names one person: add them under another name")
