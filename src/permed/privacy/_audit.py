"""An append-only, hash-chained audit log, and its verification.

One JSON object per line: ``seq`` (1, 2, ...), ``time`` (UTC), ``user``, ``action``,
``outcome``, ``details`` (file fingerprints and counts, never patient data), ``key_id``,
``prev`` (the MAC of the entry before) and ``mac``: HMAC-SHA256 of the rest with the integrity
key's ``"audit"`` sub-key. Editing an entry breaks its MAC; deleting or moving one breaks the
sequence and the chain; the ``LOG.head`` file (the last entry's number and MAC, itself MAC'd)
shows a deleted last entry. Every append writes the head, so a missing head, or an empty log,
cannot be verified and is reported as a problem (fail closed). Appends hold an exclusive
lock, so concurrent commands never fork the chain.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from permed.exceptions import IntegrityError
from permed.privacy._crypto import write_bytes
from permed.privacy._keys import Key, integrity_key, permed_home
from permed.privacy._signing import canonical_json

try:  # POSIX: appends take an exclusive lock
    import fcntl
except ImportError:  # pragma: no cover - Windows: appends are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditLog", "AuditReport", "audited", "current_user", "file_digest", "home_log",
           "run_log", "set_user", "verify_log"]

ENV_USER = "PERMED_USER"
LOG_NAME = "audit.log"
_ZERO = "0" * 64
_PURPOSE = "audit"
_TAIL_BYTES = 1 << 16
_USER: contextvars.ContextVar[str | None] = contextvars.ContextVar("permed_user", default=None)


def set_user(name: str | None) -> None:
    """Name the person acting (``permed --user NAME``); the OS user otherwise."""
    if name:
        _USER.set(name)


def current_user() -> str:
    """``--user``, else ``PERMED_USER``, else the operating-system user."""
    named = _USER.get() or os.environ.get(ENV_USER)
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def home_log() -> Path:
    """The user's own log, for actions outside a run directory: ``$PERMED_HOME/audit.log``."""
    return permed_home() / LOG_NAME


def run_log(run_dir: str | Path) -> Path:
    """``RUN_DIR/audit.log`` for a permed run directory, else the user's own log."""
    run_dir = Path(run_dir)
    return run_dir / LOG_NAME if (run_dir / "manifest.json").is_file() else home_log()


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: names the data without revealing it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _mac(entry: dict[str, Any], key: Key) -> str:
    body = {k: v for k, v in entry.items() if k != "mac"}
    return hmac.new(key.derive(_PURPOSE), canonical_json(body), hashlib.sha256).hexdigest()


def _head_mac(seq: int, mac: str, key: Key) -> str:
    return hmac.new(key.derive(_PURPOSE), f"head:{seq}:{mac}".encode(), hashlib.sha256).hexdigest()


class AuditLog:
    """An audit log file that entries are appended to.

    Parameters
    ----------
    path : str or Path
        The log (created with its folder on the first append).
    key : Key, optional
        The integrity key (default: :func:`permed.privacy.integrity_key`).
    """

    def __init__(self, path: str | Path, key: Key | None = None) -> None:
        self.path = Path(path)
        self._key = key

    @classmethod
    def continued(cls, previous: str | Path, path: str | Path) -> AuditLog:
        """A log at ``path`` that goes on from ``previous`` (copied with its head), if any.

        ``permed train`` uses it when it replaces a run directory: the new run keeps the old
        run's trail.
        """
        log, old = cls(path), cls(previous)
        if old.path.is_file():
            log.path.write_bytes(old.path.read_bytes())
            if old.head_path.is_file():
                log.head_path.write_bytes(old.head_path.read_bytes())
        return log

    @property
    def key(self) -> Key:
        if self._key is None:
            self._key = integrity_key()
        return self._key

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    def append(self, action: str, outcome: str = "success", **details: Any) -> dict[str, Any]:
        """Add one entry, chained to the last; return it.

        Raises
        ------
        IntegrityError
            The last line of the log is not an entry (the log was damaged): run
            ``permed audit verify``.
        """
        key = self.key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            seq, prev = self._tail(handle)
            entry: dict[str, Any] = {
                "seq": seq + 1, "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "user": current_user(), "action": action, "outcome": outcome,
                "details": json.loads(json.dumps(details, default=str)),
                "key_id": key.key_id, "prev": prev}
            entry["mac"] = _mac(entry, key)
            handle.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            head = {"seq": entry["seq"], "mac": entry["mac"], "key_id": key.key_id,
                    "head_mac": _head_mac(entry["seq"], entry["mac"], key)}
            write_bytes(self.head_path, json.dumps(head).encode())
        return entry

    def _tail(self, handle: IO[bytes]) -> tuple[int, str]:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0, _ZERO
        handle.seek(max(0, size - _TAIL_BYTES))
        lines = [line for line in handle.read().splitlines() if line.strip()]
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["mac"])
        except (IndexError, ValueError, KeyError, TypeError):
            raise IntegrityError(
                f"audit log '{self.path}' ends with a line that is not an entry (it was edited or "
                f"truncated): run `permed audit verify {self.path}` and restore the log before "
                "using this run again") from None


@dataclass
class AuditReport:
    """What :func:`verify_log` found: ``problems`` empty means the log is intact."""

    path: Path
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(path: str | Path, key: Key | None = None) -> AuditReport:
    """Check every entry's MAC, the sequence, the chain and the head of an audit log.

    Parameters
    ----------
    path : str or Path
        The log.
    key : Key, optional
        The integrity key it was written with (default: this user's integrity key).

    Returns
    -------
    AuditReport
        One problem per edited, deleted, reordered or foreign entry, naming it; a missing log,
        a missing head or an empty log is a problem too ("cannot verify").
    """
    path = Path(path)
    key = key or integrity_key()
    report = AuditReport(path)
    if not path.is_file():
        report.problems.append(f"audit log '{path}' does not exist: check the path")
        return report
    entries = _parse_entries(path, key, report)
    report.entries = len(entries)
    valid = [(line, entry) for line, entry, ok in entries if ok]
    _check_order(valid, {int(entry["seq"]) for _, entry, _ in entries}, report)
    _check_head(AuditLog(path, key), entries, key, report)
    return report


def _parse_entries(path: Path, key: Key,
                   report: AuditReport) -> list[tuple[int, dict[str, Any], bool]]:
    """Each line as ``(line number, entry, MAC verified)``; unreadable lines are problems."""
    found = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            seq = int(entry["seq"])
        except (ValueError, KeyError, TypeError):
            report.problems.append(f"line {number} is not an audit entry: it was edited or "
                                   "truncated")
            continue
        if entry.get("key_id") != key.key_id:
            report.problems.append(
                f"entry {seq} (line {number}) was written with integrity key id "
                f"{entry.get('key_id')}, not this key ({key.key_id}, {key.source}): verify with "
                "the key it was written with (PERMED_INTEGRITY_KEY=FILE)")
            found.append((number, entry, False))
            continue
        verified = hmac.compare_digest(str(entry.get("mac")), _mac(entry, key))
        if not verified:
            report.problems.append(f"entry {seq} (line {number}) was edited: its MAC does not "
                                   "match its content")
        found.append((number, entry, verified))
    return found


def _check_order(valid: list[tuple[int, dict[str, Any]]], present: set[int],
                 report: AuditReport) -> None:
    """Reordered entries, deleted entries, and links of the chain."""
    for (line_a, a), (line_b, b) in zip(valid, valid[1:], strict=False):
        if int(b["seq"]) <= int(a["seq"]):
            report.problems.append(
                f"entry {b['seq']} (line {line_b}) comes after entry {a['seq']} (line {line_a}): "
                "entries were swapped or reordered")
    if present:
        missing = [n for n in range(1, max(present) + 1) if n not in present]
        if missing:
            report.problems.append(_deleted(missing))
    previous: dict[int, str] = {int(e["seq"]): str(e["mac"]) for _, e in valid}
    for line, entry in valid:
        seq = int(entry["seq"])
        expected = _ZERO if seq == 1 else previous.get(seq - 1)
        if expected is not None and entry.get("prev") != expected:
            report.problems.append(f"entry {seq} (line {line}) does not chain to entry {seq - 1}:"
                                   " an entry was replaced or taken from another log")


def _deleted(missing: list[int]) -> str:
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    word = "entry" if len(missing) == 1 else "entries"
    return f"{word} {shown} {'was' if len(missing) == 1 else 'were'} deleted"


def _check_head(log: AuditLog, entries: list[tuple[int, dict[str, Any], bool]], key: Key,
                report: AuditReport) -> None:
    """The head file records the last entry: a deleted last entry shows here."""
    last = max((int(e["seq"]) for _, e, _ in entries), default=0)
    if not log.head_path.is_file():
        # every append writes the head (since the first version of the log), so a log without
        # one was emptied, truncated with its head deleted, or is not a permed log: fail closed
        name = log.head_path.name
        if last:
            report.problems.append(f"cannot verify: '{name}' is missing, so deleted last "
                                   f"entries cannot be ruled out; restore '{name}' from a backup")
        else:
            report.problems.append(f"cannot verify: the log holds no entries and '{name}' is "
                                   "missing: it was emptied (or its entries deleted), or nothing "
                                   "was ever recorded in it")
        return
    try:
        head = json.loads(log.head_path.read_bytes())
        seq, mac = int(head["seq"]), str(head["mac"])
        authentic = hmac.compare_digest(str(head["head_mac"]), _head_mac(seq, mac, key))
    except (ValueError, KeyError, TypeError):
        authentic, seq, mac = False, 0, ""
    if not authentic:
        report.problems.append(f"'{log.head_path.name}' was edited or written with another key")
    elif seq > last:
        report.problems.append(_deleted(list(range(last + 1, seq + 1))) + " (the last "
                               f"entries: '{log.head_path.name}' records entry {seq})")
    elif seq < last:
        report.notes.append(f"entries after {seq} are not yet in '{log.head_path.name}' (a "
                            "command was interrupted while writing)")
    elif not any(int(e["seq"]) == seq and e.get("mac") == mac for _, e, _ in entries):
        report.problems.append(f"entry {seq} (the last) was replaced: it differs from the one "
                               f"recorded in '{log.head_path.name}'")


@dataclass
class AuditSession:
    """Details a command adds to its audit event while it runs."""

    details: dict[str, Any] = field(default_factory=dict)
    output: Path | None = None

    def add(self, **details: Any) -> None:
        self.details.update(details)


@contextmanager
def audited(log: str | Path, action: str, data: str | Path | None = None,
            failures_only: bool = False, **details: Any) -> Iterator[AuditSession]:
    """Record one command: a ``read`` of ``data``, then ``action`` with its outcome.

    The ``read`` entry is written before the command runs (an attempted access is recorded
    too); on success an ``export`` entry follows when the command set ``session.output``. On
    failure ``action`` is recorded with outcome ``failure: <error class>`` (never the message,
    which may quote data) and the error is raised again. With ``failures_only`` (``permed
    train``, whose run directory records its own success) nothing is written unless it fails.
    """
    audit = AuditLog(log)
    session = AuditSession(dict(details))
    readable = data is not None and Path(data).is_file()
    if readable and not failures_only:
        audit.append("read", data=file_digest(str(data)))
    try:
        yield session
    except BaseException as exc:
        if readable and failures_only:
            _append_quietly(audit, "read", "success", {"data": file_digest(str(data))})
        _append_quietly(audit, action, f"failure: {type(exc).__name__}", session.details)
        raise
    if failures_only:
        return
    audit.append(action, "success", **session.details)
    if session.output is not None and Path(session.output).is_file():
        audit.append("export", output=file_digest(session.output))


def _append_quietly(audit: AuditLog, action: str, outcome: str, details: dict[str, Any]) -> None:
    # the command's own error matters more than a log that cannot be written
    with contextlib.suppress(OSError, IntegrityError):
        audit.append(action, outcome, **details)
