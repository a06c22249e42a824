"""permed serve / permed users: run the prediction service and manage who may use it."""

from __future__ import annotations

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

    Example: permed users add alice --role clinician
    """
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        key = storage.add_user(name, role, expires_days)
    finally:
        storage.dispose()
    err.print(f"user '{name}' ({role}) added; their API key (shown once, keep it secret):",
              highlight=False)
    out.print(key, highlight=False, soft_wrap=True)


@users_app.command("key")
def new_key(
    name: str = typer.Argument(..., help="User name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """Print another API key for an existing user (shown once)."""
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        out.print(storage.new_key(name), highlight=False, soft_wrap=True)
    finally:
        storage.dispose()


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
    once.
    """
    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        count = storage.revoke(name)
    finally:
        storage.dispose()
    err.print(f"user '{name}' deactivated; {count} key(s) revoked", highlight=False)


@users_app.command("end-sessions")
def end_sessions(
    name: str = typer.Argument(..., help="User name."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
) -> None:
    """End a user's sessions: every bearer token issued to them so far is refused, at once.

    Their API keys still work: they log in again with one (POST /v1/auth/token). For a token
    that may have been stolen; use `permed users revoke` for a key.

    Example: permed users end-sessions alice
    """
    from datetime import UTC, datetime

    from permed.serve import Storage

    storage = Storage(_settings(data_dir).url)
    try:
        ended = storage.end_sessions(name)
    finally:
        storage.dispose()
    since = datetime.fromtimestamp(ended, UTC).isoformat(timespec="seconds")
    err.print(f"sessions of user '{name}' ended: their bearer tokens from before {since} are "
              "refused; their API keys still work", highlight=False)
