"""What a permed service serves and how: runs, storage, limits, tokens."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from permed.exceptions import PermedError
from permed.privacy import check_owner_only, permed_home

__all__ = ["ENV_DATABASE", "ENV_JWT_SECRET", "ROLES", "Settings", "check_tls_key",
           "default_data_dir", "is_loopback", "parse_runs"]

ENV_DATABASE = "PERMED_DATABASE_URL"
ENV_JWT_SECRET = "PERMED_JWT_SECRET"
ROLES = ("clinician", "scientist", "admin")


def default_data_dir() -> Path:
    """``$PERMED_HOME/serve``: the service's SQLite database when no URL is given."""
    return permed_home() / "serve"


def parse_runs(runs: list[str | Path]) -> dict[str, Path]:
    """Model names for run directories: ``NAME=RUN_DIR``, or the folder's name.

    Raises
    ------
    PermedError
        Two runs would be served under the same name.
    """
    named: dict[str, Path] = {}
    for run in runs:
        text = str(run)
        name, sep, path = text.partition("=")
        if not sep or not name or "/" in name:
            name, path = Path(text).resolve().name, text
        if name in named:
            raise PermedError(f"two runs would be served as '{name}' ({named[name]} and {path}):"
                              f" name them, e.g. permed serve {name}-a={named[name]} "
                              f"{name}-b={path}")
        named[name] = Path(path)
    return named


def check_tls_key(path: Path) -> None:
    """Refuse a TLS private key that group or others can read, as data keys are refused.

    Raises
    ------
    SecurityError
        The file is missing or readable by other users (the message gives the ``chmod``).
    """
    check_owner_only(path, f"--tls-key '{path}'", "check the path")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


@dataclass
class Settings:
    """Configuration of :func:`permed.serve.create_app`.

    Parameters
    ----------
    runs : dict of str to Path
        Model name -> run directory (see :func:`parse_runs`).
    data_dir : Path
        Where the SQLite database lives (``permed.db``) when ``database_url`` is not set.
    database_url : str, optional
        An SQLAlchemy URL (``postgresql://user@host/db``); default ``PERMED_DATABASE_URL``.
    jwt_secret : str, optional
        HS256 secret for bearer tokens (default ``PERMED_JWT_SECRET``, else a key derived from
        the integrity key, so every process of one site agrees).
    jwt_audience : str
        The ``aud`` every token must carry.
    token_minutes : int
        Lifetime of the tokens ``POST /v1/auth/token`` issues.
    max_session_minutes : int
        Absolute lifetime of a session: a token renews itself (``POST /v1/auth/token`` with
        the token) only until this long after the API key login that began it; then the user
        logs in again with their key. Without it a stolen token could be renewed for ever.
    rate_limit : int
        Requests per minute per API key or token subject (0: unlimited).
    max_auth_failures : int
        Failed authentications per client address per minute; more are answered 429 before
        the credential is checked (0: unlimited).
    max_body_bytes : int
        Larger request bodies are refused with 413.
    max_batch : int
        Most patients in one prediction request (413 above).
    explain : bool
        Explain predictions unless a request says ``explain=false``.
    onnx : bool
        Score with ONNX Runtime where the bundle has a verified ``model.onnx``.
    tls : bool
        The service is reached over HTTPS (adds Strict-Transport-Security).
    key_cache_seconds : int
        How long a verified API key is trusted without checking its argon2 hash again.
    """

    runs: dict[str, Path] = field(default_factory=dict)
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = field(default_factory=lambda: os.environ.get(ENV_DATABASE))
    jwt_secret: str | None = field(default_factory=lambda: os.environ.get(ENV_JWT_SECRET))
    jwt_audience: str = "permed"
    token_minutes: int = 15
    max_session_minutes: int = 12 * 60
    rate_limit: int = 600
    max_auth_failures: int = 10
    max_body_bytes: int = 1_000_000
    max_batch: int = 100
    explain: bool = True
    onnx: bool = True
    tls: bool = False
    key_cache_seconds: int = 60

    @property
    def url(self) -> str:
        """The database URL in use."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'permed.db'}"
