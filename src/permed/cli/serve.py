"""permed serve / permed users: run the prediction service and manage who may use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from permed.cli._console import err, out
from permed.exceptions import PermedError

if TYPE_CHECKING:
    from permed.serve import Settings

__all__ = ["serve", "users_app"]

users_app = typer.Typer(help="Users of permed serve and their API keys.", no_args_is_help=True)

_WORKERS_HELP = ("Server processes sharing the port; each loads every model (memory x N) and "
                 "allows ceil(--rate-limit / N) requests per minute per key, so the service "
                 "allows about --rate-limit.")
_DATA_DIR_HELP = ("Folder of the service's SQLite database (default: $PERMED_HOME/serve); "
                  "ignored when PERMED_DATABASE_URL is set.")


def _settings(data_dir: Path | None, **options: Any) -> Settings:
    from permed.serve import Settings

    settings = Settings(**options)
    if data_dir is not None:
        settings.data_dir = data_dir
    return settings


def serve(
    runs: list[str] = typer.Argument(..., help="Run directories written by permed train "
                                     "(NAME=RUN_DIR to choose the model's name)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    rate_limit: int = typer.Option(600, "--rate-limit",
                                   help="Requests per minute per API key (0: unlimited)."),
    max_auth_failures: int = typer.Option(
        10, "--max-auth-failures", help="Failed authentications per client address per "
        "minute; more are answered 429 before the credential is checked (0: unlimited)."),
    max_batch: int = typer.Option(100, "--max-batch", help="Most patients per request."),
    no_onnx: bool = typer.Option(False, "--no-onnx", help="Score natively even where a "
                                 "verified model.onnx exists."),
    workers: int = typer.Option(1, "--workers", help=_WORKERS_HELP),
    no_pin: bool = typer.Option(False, "--no-pin", help="Let the operating system move the "
                                "workers between CPUs (by default, with no more workers than "
                                "CPUs, worker i runs on CPU i alone)."),
) -> None:
    """Serve trained runs: REST API, FHIR, CDS Hooks and a clinician web page.

    Every run's bundle is verified before it is loaded. Open http://HOST:PORT/ and sign in
    with an API key from `permed users add`.

    With --workers N, N processes share the port: each loads every model (memory x N) and
    limits a key to ceil(--rate-limit / N) per minute; a key revoked through another process
    (another worker, `permed users revoke`) is refused by every worker within about a second.
    With no more workers than CPUs, worker i runs on CPU i alone (--no-pin to let the operating
    system place them).

    Example: permed serve runs/heart runs/gbsg --port 8000 --workers 2
    """
    import uvicorn

    from permed.serve import create_app, parse_runs
    from permed.serve._settings import check_tls_key, is_loopback

    if (tls_cert is None) != (tls_key is None):
        raise PermedError("--tls-cert and --tls-key go together: give both, or neither")
    if workers < 1:
        raise PermedError(f"--workers must be at least 1; got {workers}")
    if tls_key is not None:
        check_tls_key(tls_key)
    elif not is_loopback(host):
        err.print(f"warning: --host {host} without --tls-cert/--tls-key: API keys, tokens and "
                  "patient data will cross the network in clear; give a certificate, or bind "
                  "127.0.0.1 behind a TLS proxy", style="yellow", highlight=False, soft_wrap=True)
    settings = _settings(data_dir, runs=parse_runs(list(runs)), rate_limit=rate_limit,
                         max_auth_failures=max_auth_failures, max_batch=max_batch,
                         onnx=not no_onnx, tls=tls_cert is not None)
    app = create_app(settings)  # loads and verifies every run before listening
    scheme = "https" if tls_cert else "http"
    processes = f"; {workers} workers" if workers > 1 else ""
    err.print(f"serving {', '.join(app.state.models)} on {scheme}://{host}:{port}/ "
              f"(database: {settings.url.split('://')[0]}{processes})", highlight=False)
    cert, key = (str(tls_cert), str(tls_key)) if tls_cert and tls_key else (None, None)
    if workers > 1:  # the workers load the runs again; this process only supervises them
        from permed.serve._workers import serve_workers

        app.state.storage.dispose()
        del app
        serve_workers(settings, workers, host, port, ssl_certfile=cert, ssl_keyfile=key,
                      pin=not no_pin)
        return
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=cert,
                ssl_keyfile=key)


@users_app.command("add")
def add_user(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(..., "--role", help="clinician, scientist or admin."),
    expires_days: int | None = typer.Option(None, "--expires-days",
                                            help="The key expires after this many days."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """Add a user and print their API key, once: only its argon2 hash is stored.

    Recorded in the service's audit trail as user cli:<your login> when run on the service's
    host as its account (with its integrity key); otherwise a warning says why not.

    Example: permed users add alice --role clinician
    """
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        key = storage.add_user(name, role, expires_days)
        err.print(f"user '{name}' ({role}) added; their API key (shown once, keep it secret):",
                  highlight=False)
        out.print(key, highlight=False, soft_wrap=True)
        _record(storage, "add", "add_user", target=name, role=role, key_id=_key_id(key),
                expires_days=expires_days)
    finally:
        storage.dispose()


@users_app.command("key")
def new_key(
    name: str = typer.Argument(..., help="User name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """Print another API key for an existing user (shown once).

    Recorded in the service's audit trail as user cli:<your login> when run on the service's
    host as its account (with its integrity key); otherwise a warning says why not.
    """
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        key = storage.new_key(name)
        out.print(key, highlight=False, soft_wrap=True)
        _record(storage, "key", "new_key", target=name, key_id=_key_id(key))
    finally:
        storage.dispose()


def _key_id(key: str) -> str:
    """The id part of an API key (``pmd_<key id>_<secret>``): the audit trail names the key
    by it, never by the secret."""
    return key.split("_", 2)[1]


@users_app.command("list")
def list_users(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """List users, their roles and how many active keys they hold."""
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        for user in storage.users():
            state = "active" if user["active"] else "revoked"
            out.print(f"{user['name']}\t{user['role']}\t{state}\t{user['keys']} key(s)",
                      highlight=False)
    finally:
        storage.dispose()


@users_app.command("revoke")
def revoke_user(
    name: str = typer.Argument(..., help="User name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """Deactivate a user and revoke all their keys.

    A running service refuses their keys within about a second, and their bearer tokens at
    once. Recorded in the service's audit trail as user cli:<your login> when this process
    holds the integrity key that chains it.
    """
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        count = storage.revoke(name)
        err.print(f"user '{name}' deactivated; {count} key(s) revoked", highlight=False)
        _record(storage, "revoke", "revoke", target=name, revoked_keys=count)
    finally:
        storage.dispose()


@users_app.command("end-sessions")
def end_sessions(
    name: str = typer.Argument(..., help="User name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """End a user's sessions: every bearer token issued to them so far is refused, at once.

    Their API keys still work: they log in again with one (POST /v1/auth/token). For a token
    that may have been stolen; use `permed users revoke` for a key. Lists the API keys and
    users made since the earliest session this ended, which a stolen token could have made:
    review them (docs/security.md). Recorded in the service's audit trail as user
    cli:<your login> when this process holds the integrity key that chains it.

    Example: permed users end-sessions alice
    """
    from permed.serve import Storage

    settings = _settings(data_dir)
    storage = Storage(settings.url)
    try:
        ended = storage.end_sessions(name)
        since = ended - 60 * settings.max_session_minutes  # no session still open began earlier
        err.print(f"sessions of user '{name}' ended: their bearer tokens issued up to now "
                  f"({_iso(ended)}) are refused; their API keys still work", highlight=False)
        _review(name, since, storage.made_since(name, since))
        _record(storage, "end-sessions", "end_sessions", target=name,
                sessions_not_before=_iso(ended))
    finally:
        storage.dispose()


def _iso(seconds: float) -> str:
    """A time to the millisecond, as the service writes times."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _review(name: str, since: float, made: dict[str, list[dict[str, Any]]]) -> None:
    """Print what a stolen token of ``name`` could have made since ``since``, if anything."""
    lines = [f"  API key {key['key_id']} of '{key['user']}', made {key['created']}"
             + (" (revoked)" if key["revoked"] else "")
             + ("" if key["user"] == name else f" (not a key of '{name}')")
             for key in made["keys"]]
    lines += [f"  audit entry {grant['seq']}, {grant['time']}: {grant['action']} "
              f"({grant['endpoint']})" + (f" for user '{grant['user']}'" if grant["user"]
                                          else "") for grant in made["grants"]]
    lines += [f"  user '{user['name']}' ({user['role']}) added {user['created']}"
              + ("" if user["active"] else " (deactivated)") for user in made["users"]]
    if not lines:
        return
    err.print(f"made since {_iso(since)}, the earliest start of a session this ended (check "
              f"that '{name}' made them; a stolen token could have; revoke the others with "
              "permed users revoke NAME):", highlight=False, soft_wrap=True)
    for line in lines:
        err.print(line, highlight=False, soft_wrap=True)


def _record(storage: Any, command: str, action: str, **details: Any) -> None:
    """Record a change already made (and printed) by ``permed users COMMAND`` in the service's
    audit chain, or warn why not in one line: the change stands either way, so nothing here
    may end in a traceback."""
    try:
        unrecorded = _audit(storage, command, action, **details)
    except Exception as exc:  # noqa: BLE001 - a database or file error: the change is made
        unrecorded = f"not recorded in the service's audit trail: {_reason(exc)}"
    if unrecorded is not None:
        err.print(f"warning: {unrecorded}", style="yellow", highlight=False, soft_wrap=True)


def _reason(exc: Exception) -> str:
    """An exception in one line: the database's own message for a database error."""
    from sqlalchemy.exc import DBAPIError

    said = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    lines = said.strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _audit(storage: Any, command: str, action: str, **details: Any) -> str | None:
    """Append a successful ``action`` by ``cli:<login>`` to the service's audit chain; None
    when done, else why not.

    Only with the integrity key that chains the trail (its head's key id), found as the
    service finds it: run on the service's host, as its account. A key of another account, or
    one created here on first use, would append entries that break verification. The key also
    signs model bundles, so it is never to be copied elsewhere for this.
    """
    from permed.exceptions import SecurityError
    from permed.privacy import ENV_INTEGRITY, permed_home, read_key_file
    from permed.serve import AuditTrail
    from permed.serve._storage import WriterBusy

    named = os.environ.get(ENV_INTEGRITY)
    path = Path(named) if named else permed_home() / "integrity.key"
    why = "not recorded in the service's audit trail: "
    fix = ("run the command on the service's host as the service's account, which reads the "
           "service's own key file")
    head = storage.audit_head()
    if head is None:
        return why + ("it has no entry yet, so the key that chains it is unknown: start the "
                      "service once")
    if not path.is_file():
        return why + f"no integrity key at {path}: {fix}"
    try:
        key = read_key_file(path)
    except SecurityError as exc:
        return why + str(exc)
    if key.key_id != head["key_id"]:
        return why + (f"it is chained with integrity key {head['key_id']}, and {path} is key "
                      f"{key.key_id}: {fix}")
    try:
        AuditTrail(storage, key).append(f"cli:{_login()}", action, "success",
                                        command=f"permed users {command}",
                                        uid=os.geteuid(), **details)
    except (PermedError, WriterBusy) as exc:
        return why + str(exc)
    return None


def _login() -> str:
    """The account running the command, from its effective uid: never LOGNAME or USER, which
    whoever runs it may set to any name."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # no passwd entry (a container)
        return f"uid {os.geteuid()}"
