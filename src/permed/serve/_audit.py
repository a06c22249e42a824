"""The service's audit trail: one hash-chained entry per request, in the database.

Entries are those of :mod:`permed.privacy`'s audit log (``seq``, ``time``, ``user``,
``action``, ``outcome``, ``details``, ``key_id``, ``prev``, ``mac``) with the same MAC (HMAC-SHA256
with the integrity key's ``"audit"`` sub-key over the canonical JSON of the entry) and the same
chaining, so verification is :func:`permed.privacy.verify_log` itself, run on an export of the
rows: an edited row breaks its MAC, a deleted or reordered one breaks the sequence and the
chain, and the stored head shows deleted last entries. ``permed audit verify`` checks an
export (:meth:`AuditTrail.export`) the same way.

``details`` never holds patient data: the endpoint, the model, the HTTP status and a request id,
and for a request that stored predictions, ``predictions``: each prediction's id and the SHA-256
of its stored row (:func:`prediction_digest`). The chain's MACs cover those digests, so
:meth:`AuditTrail.verify` reports a prediction whose stored answer (or user, model, time...)
was changed, a deleted one, and one added to the database outside the service.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from permed.exceptions import IntegrityError
from permed.privacy import AuditReport, Key, verify_log
from permed.privacy._audit import _PURPOSE, _ZERO, _head_mac, _mac
from permed.serve._storage import BUSY_SECONDS, Storage, WriterBusy, safe_url

__all__ = ["AuditTrail", "prediction_digest"]

_RETRIES = 20


# Detail values stored as they are; others (numbers of numpy, paths, lists) go through JSON.
_PLAIN = (str, int, float, bool)
# The columns of a prediction row that its digest covers (all of them).
_PREDICTION_FIELDS = ("id", "time", "user", "model", "version", "task", "input_digest", "answer")


def prediction_digest(row: dict[str, Any]) -> str:
    """``sha256:<hex>`` of a prediction row as stored (``answer`` is its JSON text).

    The fields are joined by NUL, which none of them holds (JSON escapes it in the answer).
    """
    text = "\0".join(str(row[name]) for name in _PREDICTION_FIELDS)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class AuditTrail:
    """Append to and verify the chain of audit entries in a :class:`Storage`.

    Parameters
    ----------
    storage : Storage
    key : Key
        The integrity key.
    """

    def __init__(self, storage: Storage, key: Key) -> None:
        self.storage = storage
        self.key = _Derived(key)
        self._lock = threading.Lock()
        self._first: str | None = None

    def append(self, user: str, action: str, outcome: str, **details: Any) -> dict[str, Any]:
        """Chain one entry to the last one and store it; return it."""
        return self.write([self.event(user, action, outcome, **details)])[0]

    @staticmethod
    def event(user: str, action: str, outcome: str, **details: Any) -> dict[str, Any]:
        """An entry before it is chained, stamped with the time now."""
        if not all(value is None or type(value) in _PLAIN for value in details.values()):
            details = json.loads(json.dumps(details, default=str))  # JSON's values only
        return {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "user": user,
                "action": action, "outcome": outcome, "details": details}

    def write(self, events: list[dict[str, Any]],
              predictions: list[dict[str, Any]] | None = None,
              patience: float = BUSY_SECONDS) -> list[dict[str, Any]]:
        """Chain ``events`` (from :meth:`event`) after the last entry and store them, with
        ``predictions`` rows, in one transaction; return the stored entries.

        The tail is read inside the transaction, under the database's writer lock where it has
        one (SQLite, PostgreSQL); elsewhere another process appending the same sequence number
        makes the transaction fail and it is retried on the new tail. The chain never forks.

        Raises
        ------
        WriterBusy
            Another thread of this process was writing, or another connection held SQLite's
            writer lock, for ``patience`` seconds: nothing was stored.
        """
        if not self._lock.acquire(timeout=patience):
            raise WriterBusy(f"another thread was writing the audit trail for {patience:g} s")
        try:
            for _ in range(_RETRIES):
                stored = self.storage.write(lambda tail: self._chain(events, tail),
                                            predictions or [], patience)
                if stored is not None:
                    return stored
        finally:
            self._lock.release()
        raise IntegrityError("could not append to the audit trail: it kept changing under this "
                             "process; check for a runaway writer")

    def _chain(self, events: list[dict[str, Any]], tail: tuple[int, str] | None
               ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The entries of ``events`` after ``tail`` (seq, mac), and the head they leave."""
        seq, prev = tail or (0, _ZERO)
        entries = []
        for event in events:
            seq += 1
            entry = {"seq": seq, **event, "key_id": self.key.key_id, "prev": prev}
            entry["mac"] = prev = _mac(entry, self.key)
            entries.append(entry)
        head = None if not entries else {"seq": seq, "mac": prev, "key_id": self.key.key_id,
                                         "head_mac": _head_mac(seq, prev, self.key)}
        return entries, head

    def export(self, path: str | Path) -> Path:
        """Write the chain as an audit log file (and its ``.head``) for ``permed audit verify``."""
        path = Path(path)
        lines = [json.dumps(entry, separators=(",", ":")) for entry in self.storage.audit_rows()]
        path.write_text("".join(line + "\n" for line in lines))
        head = self.storage.audit_head()
        if head is not None:
            path.with_name(path.name + ".head").write_text(json.dumps(head))
        return path

    def verify(self) -> AuditReport:
        """Check every entry's MAC, the sequence, the chain and the head, then every stored
        prediction against the digest its audit entry recorded."""
        path = Path(f"database:{safe_url(self.storage.url)}")
        if self.storage.audit_head() is None and not self.storage.audit_rows(limit=1):
            return AuditReport(path, problems=[
                "cannot verify: the service's audit trail holds no entries: nothing has been "
                "recorded yet (a new service), or every entry was deleted"])
        with tempfile.TemporaryDirectory(prefix="permed-audit-") as folder:
            report = verify_log(self.export(Path(folder) / "audit.log"), self.key)
        report.path = path
        _check_predictions(self.storage, report)
        return report

    def check_prediction(self, row: dict[str, Any]) -> str | None:
        """Why a stored prediction ``row`` (:meth:`Storage.prediction_record`) does not match
        the audit trail, or None when it does.

        The audit entry that recorded the row must still hold its MAC (with the integrity key,
        which the database does not hold: a digest rewritten with the row is caught) and the
        row's SHA-256. A row no entry records is refused when it is stamped no earlier than the
        first prediction an entry recorded (added outside the service, as :meth:`verify` says);
        one stored before the service recorded digests cannot be checked and passes, as
        :meth:`verify` notes it. The chain as a whole (deleted
        or reordered entries) is :meth:`verify`'s work: it reads every entry.
        """
        pid = str(row["id"])
        entry = self.storage.audit_entry_with(f'"{pid}": "sha256:', accept=lambda e: isinstance(
            e["details"].get("predictions"), dict) and pid in e["details"]["predictions"])
        if entry is None:
            first = self._first_recorded()
            if first is None or str(row["time"]) < first:
                return None
            return ("it is in no audit entry, though it was stored after the service began "
                    "recording each prediction's digest: it was added to the prediction log "
                    "outside the service")
        seq = entry["seq"]
        if not hmac.compare_digest(_mac(entry, self.key), str(entry["mac"])):
            return (f"audit entry {seq}, which records it, was edited: its MAC does not match "
                    "its content")
        if not hmac.compare_digest(prediction_digest(row),
                                   str(entry["details"]["predictions"][pid])):
            return (f"the stored row no longer matches the SHA-256 recorded in audit entry "
                    f"{seq}: it was changed after it was recorded")
        return None

    def _first_recorded(self) -> str | None:
        """When the service began recording digests: the time of the earliest prediction the
        first such audit entry records (its rows are stamped before the entry), else of the
        entry; None when no entry has. Remembered once found: it does not change."""
        if self._first is None:
            entry = self.storage.audit_entry_with('"predictions": {', newest=False,
                                                  accept=lambda e: isinstance(
                                                      e["details"].get("predictions"), dict))
            if entry is not None:
                ids = [str(pid) for pid in entry["details"]["predictions"]]
                self._first = self.storage.earliest_prediction(ids) or str(entry["time"])
        return self._first


def _check_predictions(storage: Storage, report: AuditReport) -> None:
    """Each prediction recorded in an audit entry must be stored unchanged, and each stored
    one recorded (rows older than the first recorded one predate the digests: a note)."""
    recorded = _recorded_predictions(storage)
    unrecorded: list[dict[str, Any]] = []
    found: set[str] = set()
    first: str | None = None
    for row in storage.prediction_records():
        known = recorded.get(row["id"])
        if known is None:
            unrecorded.append(row)
            continue
        found.add(row["id"])
        first = row["time"] if first is None else min(first, row["time"])
        if prediction_digest(row) != known[1]:
            report.problems.append(
                f"prediction {row['id']} (audit entry {known[0]}) was edited: the stored row no "
                "longer matches the SHA-256 recorded in the audit trail")
    report.problems += [f"prediction {pid} (audit entry {seq}) was deleted from the prediction "
                        "log" for pid, (seq, _) in recorded.items() if pid not in found]
    added = [row["id"] for row in unrecorded if first is not None and row["time"] >= first]
    report.problems += [f"prediction {pid} is in no audit entry: it was added to the prediction "
                        "log outside the service" for pid in added]
    if len(unrecorded) > len(added):
        report.notes.append(f"{len(unrecorded) - len(added)} prediction(s) were stored before "
                            "the audit trail recorded a digest of each prediction: they cannot "
                            "be checked")


def _recorded_predictions(storage: Storage) -> dict[str, tuple[int, str]]:
    """Prediction id -> (audit entry, digest), from the entries' ``predictions`` details."""
    recorded: dict[str, tuple[int, str]] = {}
    for entry in storage.audit_rows():
        digests = entry["details"].get("predictions")
        if isinstance(digests, dict):
            recorded.update((str(k), (int(entry["seq"]), str(v))) for k, v in digests.items())
    return recorded


class _Derived(Key):
    """The integrity key with its audit sub-key derived once (HKDF costs more than the MAC)."""

    def __init__(self, key: Key) -> None:
        super().__init__(key.material, key.source)
        object.__setattr__(self, "_audit", key.derive(_PURPOSE))
        object.__setattr__(self, "_key_id", key.key_id)

    @property
    def key_id(self) -> str:
        return str(self._key_id)  # type: ignore[attr-defined]

    def derive(self, purpose: str) -> bytes:
        if purpose == _PURPOSE:
            return bytes(self._audit)  # type: ignore[attr-defined]
        return super().derive(purpose)
