"""Keys: the data key (a key file or ``PERMED_KEY``) and the integrity key (under PERMED_HOME).

Two kinds of secret, kept apart on purpose:

- the **data key** encrypts files at rest (AES-256-GCM) and keys the pseudonyms and date
  shifts of de-identification. It comes from ``--key-file KEY`` (made by ``permed keys
  create``), or from the ``PERMED_KEY`` environment variable. Nothing is encrypted without it.
- the **integrity key** signs bundles and chains the audit log (HMAC-SHA256). It comes from the
  key file named by ``PERMED_INTEGRITY_KEY``, else from ``$PERMED_HOME/integrity.key``
  (``PERMED_HOME`` defaults to ``~/.permed``), created with mode 0600 on first use. It never
  depends on ``--key-file``: an auditor verifies a log without being able to decrypt patient
  data, and rotating the data key leaves signatures and logs valid.

Each purpose uses its own sub-key derived with HKDF-SHA256, so one secret never serves two
algorithms.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import hmac
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from permed.exceptions import SecurityError

__all__ = [
    "ENV_HOME",
    "ENV_INTEGRITY",
    "ENV_KEY",
    "Key",
    "active_key",
    "check_owner_only",
    "create_key_file",
    "generate_key",
    "integrity_key",
    "permed_home",
    "read_key_file",
    "require_key",
    "use_key",
]

ENV_KEY = "PERMED_KEY"
ENV_HOME = "PERMED_HOME"
ENV_INTEGRITY = "PERMED_INTEGRITY_KEY"
KEY_BYTES = 32
_PREFIX = "permed-key-v1:"
_CREATE_HINT = "create one with `permed keys create --out site.key`"

_ACTIVE: contextvars.ContextVar[Key | None] = contextvars.ContextVar("permed_key", default=None)


@dataclass(frozen=True, repr=False)
class Key:
    """A 256-bit secret and where it came from; its repr never shows the secret.

    Parameters
    ----------
    material : bytes
        32 random bytes.
    source : str
        Where the key was read from, for messages (``"key file 'site.key'"``).
    """

    material: bytes
    source: str = "a key"

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise SecurityError(f"{self.source} holds {len(self.material)} bytes; a permed key "
                                f"has {KEY_BYTES}: {_CREATE_HINT}")

    @property
    def key_id(self) -> str:
        """16 hex digits that name the key without revealing it (an HMAC of a fixed label)."""
        return hmac.new(self.material, b"permed key id", hashlib.sha256).hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        """The 32-byte sub-key for one purpose (``"encrypt"``, ``"sign"``, ``"audit"``...)."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                    info=b"permed/" + purpose.encode()).derive(self.material)

    def text(self) -> str:
        """The key as one line of text (the key file format, also accepted by PERMED_KEY)."""
        return _PREFIX + base64.urlsafe_b64encode(self.material).decode()

    def __repr__(self) -> str:
        return f"Key(id={self.key_id}, source={self.source!r})"


def generate_key(source: str = "a new key") -> Key:
    """A fresh random key from the operating system's CSPRNG."""
    return Key(os.urandom(KEY_BYTES), source)


def parse_key(text: str, source: str) -> Key:
    """Read the one-line key format (``permed-key-v1:<base64>``; plain base64 also accepted)."""
    body = text.strip()
    body = body[len(_PREFIX):] if body.startswith(_PREFIX) else body
    try:
        material = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        material = b""
    if len(material) != KEY_BYTES:
        raise SecurityError(f"{source} is not a permed key (expected '{_PREFIX}' followed by "
                            f"{KEY_BYTES} base64-encoded bytes): {_CREATE_HINT}")
    return Key(material, source)


def create_key_file(path: str | Path, key: Key | None = None) -> Key:
    """Write a new key file readable by its owner only (mode 0600); never overwrite one.

    Parameters
    ----------
    path : str or Path
        Where to write the key.
    key : Key, optional
        The key to write (default: a fresh random key).

    Returns
    -------
    Key

    Raises
    ------
    SecurityError
        The file already exists.
    """
    path = Path(path)
    key = key or generate_key()
    if path.exists():
        raise SecurityError(f"key file '{path}' already exists: choose another path (a key is "
                            "never overwritten: data encrypted with it would be lost)")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, (key.text() + "\n").encode())
    return Key(key.material, f"key file '{path}'")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a 0600 temporary file and link it into place: never a partial key."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if path exists: two writers never mix their keys
    finally:
        tmp.unlink(missing_ok=True)


def check_owner_only(path: Path, source: str, missing: str) -> None:
    """Refuse a secret file (a key) that is missing or that group or others can read.

    Raises
    ------
    SecurityError
        Naming ``source``; ``missing`` is the fix for an absent file, the ``chmod`` the fix for
        a readable one.
    """
    if not path.is_file():
        raise SecurityError(f"{source} does not exist: {missing}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise SecurityError(f"{source} can be read by other users (mode {mode:04o}): restrict it "
                            f"with `chmod 600 {path}`")


def read_key_file(path: str | Path) -> Key:
    """Read a key file, refusing one that other users can read.

    Raises
    ------
    SecurityError
        The file is missing, readable by group or others, or not a permed key.
    """
    path = Path(path)
    source = f"key file '{path}'"
    check_owner_only(path, source, f"check the path, or {_CREATE_HINT}")
    return parse_key(path.read_text(encoding="ascii", errors="replace"), source)


def key_from_env() -> Key | None:
    """The key in ``PERMED_KEY``, if it is set."""
    text = os.environ.get(ENV_KEY)
    return parse_key(text, f"the {ENV_KEY} environment variable") if text else None


@contextmanager
def use_key(key: Key | None) -> Iterator[Key | None]:
    """Make ``key`` the data key for reading and writing protected files in this context.

    ``None`` leaves the current choice (``PERMED_KEY`` or an outer context) in place.

    Examples
    --------
    >>> with use_key(read_key_file("site.key")):  # doctest: +SKIP
    ...     predict_run("runs/x", "new.csv")
    """
    if key is None:
        yield active_key()
        return
    token = _ACTIVE.set(key)
    try:
        yield key
    finally:
        _ACTIVE.reset(token)


def active_key() -> Key | None:
    """The data key in use: the one given to :func:`use_key`, else ``PERMED_KEY``, else None."""
    return _ACTIVE.get() or key_from_env()


def require_key(needed_for: str) -> Key:
    """The active data key, or a :class:`SecurityError` that says how to give one."""
    key = active_key()
    if key is None:
        raise SecurityError(f"{needed_for} needs the data key: pass --key-file KEY or set "
                            f"{ENV_KEY} ({_CREATE_HINT})")
    return key


def permed_home() -> Path:
    """permed's folder for per-user secrets and logs: ``$PERMED_HOME`` or ``~/.permed`` (0700)."""
    home = Path(os.environ.get(ENV_HOME) or Path.home() / ".permed").expanduser()
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        if os.name == "posix":
            home.chmod(0o700)
    return home


def integrity_key() -> Key:
    """The key that signs bundles and chains audit logs.

    ``PERMED_INTEGRITY_KEY`` names a key file (e.g. one shared by a site's service accounts);
    otherwise ``$PERMED_HOME/integrity.key`` is used, created (mode 0600) on first use.
    """
    named = os.environ.get(ENV_INTEGRITY)
    if named:
        return read_key_file(named)
    path = permed_home() / "integrity.key"
    if not path.exists():
        # another process may create it first: then read theirs
        with contextlib.suppress(SecurityError, FileExistsError):
            create_key_file(path)
    return read_key_file(path)
