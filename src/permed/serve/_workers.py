"""Several server processes on one port: ``permed serve --workers N``.

The parent loads and verifies every run once (so a bad bundle is one clear message), then starts
the workers with the import string of :func:`worker_app`; each worker process rebuilds the
service from the settings the parent left in :data:`ENV_SETTINGS`. The settings travel as JSON
without ``jwt_secret``: a worker reads ``PERMED_JWT_SECRET`` from the environment it inherits, as
the parent did, so no secret is copied into another variable.

Connections are handed out in turn, as Node's ``cluster`` module does on Linux: the parent alone
accepts, and passes connection i to worker i mod N (:class:`~permed.serve._dispatch.Dispatcher`).
When the workers shared the listening socket and the kernel chose who accepted, one worker often
took 6 or 7 of 8 kept-alive client connections (uvloop accepts in a loop while the other sleeps):
one core saturated, the other idle, and the same benchmark gave anything from 210 to 410
predictions/s. ``SO_REUSEPORT`` does not help: a hash of 8 connections into 2 buckets is 4/4
only 27% of the time. The parent waits until every worker has started before it accepts the
first connection, so the first ones are spread evenly too.

A worker that dies takes its connections with it (they are closed; clients reconnect, and
``httpx`` or a browser does so on its own): the parent starts another, and hands it connections
once its application has started; until then the other workers take them all. A worker that
cannot start at all (uvicorn's ``STARTUP_FAILURE`` status) stops the service, since its
replacement would fail the same way. SIGINT or SIGTERM to the parent stop every worker
gracefully (requests under way finish) and the parent exits 0.

Each worker holds its own copy of every model (memory x N), its own per-key rate limiter (the
parent gives each ``ceil(rate_limit / N)``) and its own API-key cache: a key revoked through
another process is dropped from it within about a second, when the worker next reads the
database's security epoch (:class:`~permed.serve._auth.Revocations`). The audit chain is shared
through the database: each process appends under the database's writer lock
(:meth:`~permed.serve.Storage.write`), so the chain never forks.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from permed.exceptions import PermedError
from permed.serve._settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ENV_SETTINGS", "WORKER_APP", "per_worker", "serve_workers", "settings_from_json",
           "settings_to_json", "worker_app"]

ENV_SETTINGS = "PERMED_SERVE_SETTINGS"
WORKER_APP = "permed.serve._workers:worker_app"

# Settings fields that travel as they are (JSON numbers, booleans, strings or null)
_PLAIN = ("database_url", "jwt_audience", "token_minutes", "rate_limit", "max_auth_failures",
          "max_body_bytes", "max_batch", "explain", "onnx", "tls", "key_cache_seconds")


def settings_to_json(settings: Settings) -> str:
    """The settings as JSON for the worker processes, without ``jwt_secret``.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    str
        ``runs`` as ``{name: path}``, ``data_dir`` as a path string, and every other field but
        ``jwt_secret`` (a worker reads ``PERMED_JWT_SECRET`` itself).

    Examples
    --------
    >>> from pathlib import Path
    >>> text = settings_to_json(Settings(runs={"bc": Path("runs/bc")}, data_dir=Path("d")))
    >>> settings_from_json(text).runs
    {'bc': PosixPath('runs/bc')}
    """
    document: dict[str, Any] = {"runs": {name: str(path) for name, path in settings.runs.items()},
                                "data_dir": str(settings.data_dir)}
    document.update({name: getattr(settings, name) for name in _PLAIN})
    return json.dumps(document, sort_keys=True)


def settings_from_json(text: str) -> Settings:
    """The :class:`Settings` that :func:`settings_to_json` wrote.

    ``jwt_secret`` takes its default (``PERMED_JWT_SECRET``, else derived from the integrity key).

    Raises
    ------
    PermedError
        The text is not such a document.
    """
    try:
        document = json.loads(text)
        runs = {str(name): Path(path) for name, path in document["runs"].items()}
        plain = {name: document[name] for name in _PLAIN}
        data_dir = Path(document["data_dir"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise PermedError(f"{ENV_SETTINGS} does not hold the settings permed serve writes "
                          f"({type(error).__name__}: {error}): start workers with "
                          "permed serve ... --workers N") from None
    return Settings(runs=runs, data_dir=data_dir, **plain)


def per_worker(settings: Settings, workers: int) -> Settings:
    """A worker's settings: the per-key rate limit split over ``workers`` processes.

    Each process counts requests on its own, so each gets ``ceil(rate_limit / workers)`` and the
    service as a whole allows about ``rate_limit`` per key (0 stays unlimited).
    """
    if settings.rate_limit <= 0:
        return settings
    return replace(settings, rate_limit=math.ceil(settings.rate_limit / workers))


def worker_app() -> FastAPI:
    """The service of one worker process, from the settings in ``PERMED_SERVE_SETTINGS``.

    uvicorn calls this factory in every worker (``factory=True``).

    Raises
    ------
    SystemExit
        With uvicorn's ``STARTUP_FAILURE`` status when the service cannot be built (the variable
        is missing, a bundle no longer verifies, the database cannot be opened): uvicorn
        restarts a worker that dies in any other way, and this one would fail again. A
        :class:`PermedError` is printed as one ``error:`` line, anything else with its traceback.
    """
    from uvicorn.config import STARTUP_FAILURE

    try:
        return _service()
    except PermedError as error:
        print(f"error: {error}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
    raise SystemExit(STARTUP_FAILURE)


def _service() -> FastAPI:
    from permed.serve._app import create_app

    text = os.environ.get(ENV_SETTINGS)
    if not text:
        raise PermedError(f"{ENV_SETTINGS} is not set: worker processes are started by "
                          "permed serve ... --workers N")
    return create_app(settings_from_json(text))


def serve_workers(settings: Settings, workers: int, host: str, port: int,
                  ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                  pin: bool = True) -> None:
    """Run ``workers`` uvicorn worker processes behind one listening socket.

    This process binds the socket, accepts every connection and hands it to the workers in turn
    (see the module's description). The runs must already have been verified (``create_app``
    in this process) so that the tables exist and a bad bundle is reported once, before any
    worker starts.

    Parameters
    ----------
    settings : Settings
        The service's settings; each worker gets :func:`per_worker` of them.
    workers : int
        Number of worker processes (2 or more).
    host, port
        Where to listen.
    ssl_certfile, ssl_keyfile : str, optional
        The TLS certificate and private key (PEM) for HTTPS; None for plain HTTP. Each worker
        does the TLS handshake of the connections it is handed.
    pin : bool, default True
        Run each worker on a CPU of its own when there are enough
        (:class:`~permed.serve._dispatch.Dispatcher`).

    Raises
    ------
    PermedError
        A worker could not start (the others are then stopped).
    """
    from uvicorn import Config

    from permed.serve._dispatch import Dispatcher

    os.environ[ENV_SETTINGS] = settings_to_json(per_worker(settings, workers))
    config = Config(WORKER_APP, factory=True, workers=workers, host=host, port=port,
                    log_level="warning", ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    sock = config.bind_socket()
    dispatcher = Dispatcher(config, sock, workers, pin)
    try:
        dispatcher.run()
    finally:
        sock.close()
    if dispatcher.startup_failed:
        raise PermedError("a worker process could not start (its message is above), so the "
                          "server stopped: fix that and run permed serve again")
