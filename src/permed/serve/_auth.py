"""Who is calling, and may they: API keys, bearer tokens, roles and rate limits.

Every endpoint but health and CDS Hooks discovery depends on :func:`authenticate`. A bearer
credential is either an API key (``pmd_<id>_<secret>``, checked against its argon2 hash) or a
JWT signed with HS256: only that algorithm is accepted (``alg: none`` and any other are
refused), and ``exp``, ``aud`` and ``sub`` are required and checked. Roles come from the user
database, never from the token, so deactivating a user takes effect at once; so does ending
their sessions (``permed users end-sessions``): a token whose session began before is refused.
A key revoked by another process is dropped from this one's key cache within about a second
(:class:`Revocations`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from permed.exceptions import SecurityError
from permed.serve._priority import lower_priority
from permed.serve._storage import Principal, Storage, now_seconds

__all__ = ["JWT_ALGORITHMS", "REVOCATION_SECONDS", "SESSION_ENDED", "FailedLogins",
           "RateLimiter", "Revocations", "TokenIssuer", "Verifications", "admit",
           "authenticate", "authorize", "require", "session_began"]

log = logging.getLogger("permed.serve")

JWT_ALGORITHMS = ["HS256"]
_BEARER = {"WWW-Authenticate": "Bearer"}
_KEY_ID = re.compile(r"pmd_([0-9a-f]{12})_")  # the form Storage issues; anything else unrecorded
REVOCATION_SECONDS = 1.0  # how often a service reads the security epoch
QUIET_SECONDS = 60.0  # while those reads fail: one line in the log at most this often
SESSION_ENDED = ("the session was ended by an administrator: log in again with your API key "
                 "(POST /v1/auth/token with Authorization: Bearer <API key>)")


class TokenIssuer:
    """Issues and checks the service's bearer tokens.

    A token records when its session began (``auth_time``, seconds since the epoch to the
    millisecond, as OpenID Connect names it): the API key login. A token renewed with a token
    keeps that time, and renewal is refused once the session is older than
    ``max_session_minutes``: a token taken from a user cannot be renewed for ever while they
    stay active. An administrator can end a user's sessions at once
    (:meth:`Storage.end_sessions`): their tokens from before (or the same millisecond) are
    refused, and so are report tickets minted with them (a ticket carries the session's start).

    Parameters
    ----------
    secret : bytes
        The HS256 key.
    audience : str
    minutes : int
        Lifetime of an issued token.
    max_session_minutes : int, default 720
        Absolute lifetime of a session: no renewal after it.
    """

    def __init__(self, secret: bytes, audience: str, minutes: int,
                 max_session_minutes: int = 12 * 60) -> None:
        self._secret = secret
        self.audience = audience
        self.minutes = minutes
        self.max_session_minutes = max_session_minutes

    def issue(self, user: str, audience: str | None = None, minutes: int | None = None,
              auth_time: float | None = None) -> str:
        """A token for ``user`` whose session began at ``auth_time`` (default: now)."""
        return self._issue(user, audience, minutes, auth_time)[0]

    def _issue(self, user: str, audience: str | None, minutes: int | None,
               auth_time: float | None) -> tuple[str, int]:
        now = datetime.now(UTC)
        # to the millisecond: a login just after an administrator ended the user's sessions
        # must start after that time (Storage.end_sessions), not in the same second
        started = now_seconds() if auth_time is None else auth_time
        # a token never outlives its session: the lifetime is absolute, not per renewal
        ends = min(now + timedelta(minutes=minutes or self.minutes),
                   datetime.fromtimestamp(started, UTC)
                   + timedelta(minutes=self.max_session_minutes))
        claims = {"sub": user, "aud": audience or self.audience, "iat": now, "exp": ends,
                  "auth_time": started}
        token = jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHMS[0])
        return token, max(0, int((ends - now).total_seconds()))

    def renew(self, principal: Principal) -> tuple[str, int]:
        """A token for the caller, and its lifetime in seconds: a new session for an API key,
        the same session (its ``auth_time``) for a token, ending with it at the latest.

        Raises
        ------
        SecurityError
            The caller's token does not say when its session began, or the session has
            lasted ``max_session_minutes``.
        """
        if not principal.credential.startswith("jwt:"):
            return self._issue(principal.user, None, None, None)  # a login: a new session
        began = principal.auth_time
        if began is None:
            raise SecurityError("the bearer token does not say when its session began (no "
                                "auth_time or iat claim): log in again with your API key")
        age = int(datetime.now(UTC).timestamp() - began)
        if age >= 60 * self.max_session_minutes:
            raise SecurityError(f"the session began {_span(age // 60)} ago and reached its "
                                f"maximum lifetime of {_span(self.max_session_minutes)}: log "
                                "in again with your API key (POST /v1/auth/token with "
                                "Authorization: Bearer <API key>)")
        return self._issue(principal.user, None, None, began)

    def claims(self, token: str, audience: str | None = None) -> dict[str, Any]:
        """The claims of a valid token.

        Raises
        ------
        SecurityError
            Expired, wrong audience, bad signature, unexpected algorithm, or not a JWT.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=JWT_ALGORITHMS,
                audience=audience or self.audience, options={"require": ["exp", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise SecurityError("the bearer token has expired: request a new one") from None
        except jwt.InvalidAudienceError:
            raise SecurityError("the bearer token is for another audience") from None
        except jwt.InvalidAlgorithmError:
            raise SecurityError(f"the bearer token's algorithm is not accepted (only "
                                f"{', '.join(JWT_ALGORITHMS)})") from None
        except jwt.InvalidTokenError:
            raise SecurityError("the bearer token is not valid") from None
        return claims

    def subject(self, token: str, audience: str | None = None) -> str:
        """The ``sub`` of a valid token (:meth:`claims` raises for an invalid one)."""
        return str(self.claims(token, audience)["sub"])


def _session_start(claims: dict[str, Any]) -> float | None:
    """When a token's session began: ``auth_time``; for a token issued before the service
    wrote it, ``iat`` (such a token is at most ``token_minutes`` old, so its chain of renewals
    starts over once, from there); None when the token has neither (not one this service
    issued)."""
    for name in ("auth_time", "iat"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def session_began(claims: dict[str, Any], not_before: float | None) -> float | None:
    """When the session of a token (or a report ticket) with ``claims`` began
    (:func:`_session_start`), checked against the time its user's sessions were ended.

    A session that began at that very millisecond is ended too: the administrator's command
    and a login in the same millisecond cannot be ordered, so the token is refused (a new
    login a millisecond later works).

    Raises
    ------
    SecurityError
        The user's sessions were ended (``not_before``) at or after the session began, or the
        token does not say when it began.
    """
    began = _session_start(claims)
    if not_before is not None and (began is None or began <= not_before):
        raise SecurityError(SESSION_ENDED)
    return began


def _span(minutes: int) -> str:
    """``12 h``, ``1 h 5 min``, ``40 min``."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


class RateLimiter:
    """A token bucket per credential: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, credential: str) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(credential, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[credential] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[credential] = (tokens - 1.0, now)
        return 0.0


class FailedLogins:
    """Failed authentications per client address, in a sliding window of ``window`` seconds.

    After ``limit`` failures an address is answered 429 until the oldest of them leaves the
    window, before its credential is checked: each wrong secret for a known key id would
    otherwise cost an argon2 verification (0.3-0.4 s of CPU), which any client could spend.
    A key already verified and cached still works from that address (it costs nothing).
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, address: str) -> float:
        """0 when ``address`` may try to authenticate, else the seconds until it may."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def failed(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:  # forget addresses whose failures have expired
                self._failures = {a: f for a, f in self._failures.items()
                                  if f and f[-1] > now - self.window}
            self._failures.setdefault(address, deque(maxlen=self.limit)).append(now)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers=_BEARER)


def _principal(request: Request, token: str, recheck: bool = False) -> Principal:
    state = request.app.state
    storage: Storage = state.storage
    if token.startswith("pmd_"):
        return storage.verify_key(token, recheck)
    if token.count(".") == 2:
        claims = state.tokens.claims(token)
        user = str(claims["sub"])
        found = storage.active_user(user)  # the role and the end of sessions: one read
        if found is None:
            raise SecurityError(f"the bearer token names user '{user}', who is not active")
        role, not_before = found
        return Principal(user, role, f"jwt:{user}", session_began(claims, not_before))
    raise SecurityError("the bearer credential is neither an API key nor a token")


class Verifications:
    """One check of a credential at a time: requests that carry it meanwhile wait for its verdict.

    A key's argon2 check costs 0.3-0.4 s of CPU on purpose. When its cache entry expired
    under load, every request in flight with that key ran one: 32 connections held a two-worker
    service still for 4.6 s (benchmarks/serve.py). With one check, they all still waited for it
    (p99 0.4 s); so a key whose entry is due (:meth:`Storage.cached`) is rechecked in the
    background while the entry is still live, and no request waits. The entry is trusted no
    longer than before: a recheck that fails drops it, and one still running when the entry
    expires is waited for.
    """

    def __init__(self) -> None:
        self._running: dict[bytes, asyncio.Future[Principal]] = {}
        self._background: ThreadPoolExecutor | None = None

    async def principal(self, request: Request, token: str) -> Principal:
        """The caller of ``token``, checked in a worker thread (at most once at a time)."""
        # a caller that goes away does not cancel the check the others wait for
        return await asyncio.shield(self._check(request, token, recheck=False))

    def refresh(self, request: Request, token: str) -> None:
        """Recheck ``token`` in the background, unless a check of it is under way.

        The recheck runs on a thread of the lowest scheduling priority (Linux): argon2's four
        lanes would otherwise take a pinned worker's CPU from its requests for 0.4 s (a worker of
        ``permed serve --workers`` has one CPU). The key's entry has a quarter of its time left
        for it to finish."""
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="permed-recheck",
                                                  initializer=lower_priority, initargs=(19,))
        self._check(request, token, recheck=True)

    def close(self) -> None:
        """Stop the background thread (after the recheck under way, if any)."""
        if self._background is not None:
            self._background.shutdown(wait=True)

    def _check(self, request: Request, token: str, recheck: bool) -> asyncio.Future[Principal]:
        digest = hashlib.sha256(token.encode()).digest()  # no secret kept as a key
        running = self._running.get(digest)
        loop = asyncio.get_running_loop()
        if running is None or running.get_loop() is not loop:
            if recheck:  # nobody awaits it: its error is retrieved here
                running = loop.run_in_executor(self._background, _principal, request, token,
                                               True)
                running.add_done_callback(_heard)
            else:
                running = asyncio.ensure_future(run_in_threadpool(_principal, request, token))
            self._running[digest] = running
            running.add_done_callback(lambda _: self._running.pop(digest, None))
        return running


class Revocations:
    """Every :data:`REVOCATION_SECONDS`, from a thread of its own, drop the cached keys that
    another process revoked (:meth:`Storage.sync_revocations`).

    Each revocation or deactivation bumps the database's security epoch in its transaction; a
    read of that one row a second is all this costs while nothing changes, and no request waits
    for it (a request reads the key cache only). Without it a key revoked by ``permed users
    revoke`` or by another worker stayed trusted here for up to ``key_cache_seconds``.

    Parameters
    ----------
    storage : Storage
    seconds : float
        Between two reads of the epoch.
    quiet_seconds : float
        While the reads fail: the first failure is logged with its traceback, then one line at
        most this often, and the first read that works again.

    Attributes
    ----------
    dropped : int
        Cache entries dropped so far.
    """

    def __init__(self, storage: Storage, seconds: float = REVOCATION_SECONDS,
                 quiet_seconds: float = QUIET_SECONDS) -> None:
        self.storage = storage
        self.seconds = seconds
        self.quiet_seconds = quiet_seconds
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="permed-revocations",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, after the read under way; wait for it at most ``timeout`` seconds
        (a read that hangs on an unreachable database must not hold up shutdown: the thread is
        a daemon and ends with the process)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the security epoch's reader did not stop within %g s (a read of "
                            "the database is hanging); it ends with the process", timeout)
            self._thread = None

    def _run(self) -> None:
        failing = _Outage(self.quiet_seconds)
        while not self._stop.wait(self.seconds):
            try:
                self.dropped += self.storage.sync_revocations()
            except Exception as exc:  # noqa: BLE001 - cached keys still expire meanwhile
                failing.failed(exc)
            else:
                failing.recovered()


class _Outage:
    """The log of a read that fails every second while the database is unreachable: the first
    failure with its traceback, then a one-line summary at most every ``quiet_seconds``, and
    the recovery."""

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self.failures = 0
        self._since = self._said = 0.0

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.failures == 1:
            self._since = self._said = now
            log.exception("could not read the security epoch: keys revoked by another "
                          "process stay trusted here until their cache entry expires (at most "
                          "key_cache_seconds); retrying every second")
        elif now - self._said >= self.quiet_seconds:
            self._said = now
            log.error("still cannot read the security epoch: %d failed reads in %.0f s, the "
                      "last: %s", self.failures, now - self._since, _one_line(exc))

    def recovered(self) -> None:
        if self.failures:
            log.warning("read the security epoch again after %d failed reads in %.0f s",
                        self.failures, time.monotonic() - self._since)
            self.failures = 0


def _one_line(exc: BaseException) -> str:
    """``Type: the first line of the message``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _heard(check: asyncio.Future[Principal]) -> None:
    """Retrieve a background recheck's error: the key's requests hear of it themselves."""
    if not check.cancelled():
        check.exception()


async def authenticate(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <API key or token>``; 401 otherwise, 429
    when their rate limit is spent.

    A key verified in the last minute is recognised on the event loop (and rechecked in the
    background before its entry expires; dropped within a second when another process revokes
    it, :class:`Revocations`); otherwise the argon2 check and the database run in a
    worker thread, once for all the requests that carry the key meanwhile
    (:class:`Verifications`).
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("authentication required: send Authorization: Bearer <API key>")
    token = token.strip()
    state = request.app.state
    cached = state.storage.cached(token)
    if cached is None:
        principal = await _verified(request, token)
    else:
        principal, due = cached
        if due:
            state.verifications.refresh(request, token)
    request.state.principal = principal
    wait = request.app.state.limiter.wait_time(principal.credential)
    if wait > 0:
        raise HTTPException(429, detail=f"rate limit of {request.app.state.limiter.per_minute} "
                            "requests per minute reached for this key: retry later",
                            headers={"Retry-After": str(max(1, round(wait)))})
    return principal


async def _verified(request: Request, token: str) -> Principal:
    """The caller of a credential not in the cache; 429 for an address with too many failed
    attempts (before any argon2), 401 for a failed one (counted, its key id audited)."""
    failures: FailedLogins = request.app.state.failed_logins
    address = request.client.host if request.client is not None else "unknown"
    attempted = _KEY_ID.match(token)
    request.state.attempted = attempted.group(1) if attempted else None
    wait = failures.wait_time(address)
    if wait > 0:
        raise HTTPException(429, detail=f"{failures.limit} failed authentications from this "
                            f"address in {failures.window:g} s: retry later",
                            headers={"Retry-After": str(max(1, round(wait)))})
    try:
        principal: Principal = await request.app.state.verifications.principal(request, token)
    except SecurityError as exc:
        failures.failed(address)
        raise _unauthorized(str(exc)) from None
    request.state.attempted = None
    return principal


def admit(principal: Principal, roles: tuple[str, ...]) -> Principal:
    """``principal`` when their role is one of ``roles``; 403 otherwise."""
    if principal.role not in roles:
        allowed = " or ".join(roles)
        raise HTTPException(403, detail=f"this endpoint is for the {allowed} role"
                            f"{'s' if len(roles) > 1 else ''}; user '{principal.user}' has the "
                            f"{principal.role} role")
    return principal


async def authorize(request: Request, *roles: str) -> Principal:
    """:func:`authenticate` and :func:`admit` called directly, for the predict route (which
    skips FastAPI's dependency resolution: see :mod:`permed.serve.routers.predict`)."""
    return admit(await authenticate(request), roles)


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only callers with one of ``roles`` (403 for the others)."""

    async def check(principal: Principal = Depends(authenticate)) -> Principal:
        return admit(principal, roles)

    check.__name__ = f"require_{'_'.join(roles)}"
    return check


def token_secret(configured: str | None, integrity: Any) -> bytes:
    """The HS256 key: the configured secret, else one derived from the integrity key."""
    return configured.encode() if configured else integrity.derive("serve-jwt")
