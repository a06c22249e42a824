"""Save and load a trained model with its schema: signed, optionally encrypted, checked on load.

A bundle is a folder (``model/`` in a run directory) with ``model.joblib``, ``schema.json`` and
``bundle.json``: the index of every other file's SHA-256, signed with the integrity key
(HMAC-SHA256, see :mod:`permed.privacy`). With a data key the two files are encrypted at rest
(AES-256-GCM) and the digests are those of the encrypted bytes.

``load`` verifies the signature of the index, then every file's digest, *before* it decrypts or
unpickles anything: a changed, added, removed or unsigned file is refused with its name, and no
code in a tampered pickle ever runs. The model is a pickle because a fitted scikit-learn
pipeline has no data-only format; the schema is JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from permed import __version__
from permed.exceptions import BundleError, IntegrityError
from permed.privacy._crypto import read_bytes
from permed.privacy._crypto import write_bytes as _write_file
from permed.privacy._keys import Key, integrity_key
from permed.privacy._signing import sign_document, verify_document
from permed.study import FittedSchema

__all__ = ["BUNDLE_DIR", "bundle_is_encrypted", "load_bundle", "read_schema", "reseal_bundle",
           "save_bundle"]

BUNDLE_DIR = "model"
FORMAT = "permed-bundle/2"
_MODEL_FILE = "model.joblib"
_SCHEMA_FILE = "schema.json"
_INDEX_FILE = "bundle.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _label(name: str) -> str:
    return f"{BUNDLE_DIR}/{name}"


def save_bundle(model: Any, schema: FittedSchema, directory: str | Path,
                key: Key | None = None) -> Path:
    """Write ``model.joblib``, ``schema.json`` and the signed index ``bundle.json``.

    Parameters
    ----------
    model : object
        The fitted model (pickled with joblib).
    schema : FittedSchema
        The features and roles the model expects.
    directory : str or Path
        The bundle folder (created if needed).
    key : Key, optional
        A data key: encrypt both files at rest with AES-256-GCM.

    Returns
    -------
    Path
        ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    _write_file(directory / _MODEL_FILE, buffer.getvalue(), key, _label(_MODEL_FILE))
    _write_file(directory / _SCHEMA_FILE, json.dumps(schema.to_dict(), indent=2).encode(), key,
                _label(_SCHEMA_FILE))
    index = {
        "format": FORMAT,
        "permed_version": __version__,
        "task": schema.task,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encrypted": key is not None,
        "data_key_id": key.key_id if key is not None else None,
    }
    _write_index(directory, index)
    return directory


def _write_index(directory: Path, index: dict[str, Any]) -> None:
    index["files"] = {p.name: _sha256(p) for p in sorted(directory.iterdir())
                      if p.is_file() and p.name != _INDEX_FILE}
    signed = sign_document(index, integrity_key())
    _write_file(directory / _INDEX_FILE, json.dumps(signed, indent=2).encode())


def reseal_bundle(run_dir: str | Path, data_key: Key | None) -> None:
    """Re-sign a bundle whose files were re-encrypted (key rotation) with new digests."""
    directory = _directory(run_dir)
    index = _read_index(directory)
    index["data_key_id"] = data_key.key_id if data_key is not None else None
    _write_index(directory, index)


def read_schema(run_dir: str | Path) -> FittedSchema:
    """The fitted schema of a run, after checking the bundle's signature and digests."""
    directory, _ = _verified(run_dir)
    return _schema(directory)


def load_bundle(run_dir: str | Path) -> tuple[Any, FittedSchema]:
    """Load a run's model and schema after verifying the signed index and every file's SHA-256.

    Parameters
    ----------
    run_dir : str or Path
        A run directory (or its ``model/`` folder).

    Returns
    -------
    model : object
    schema : FittedSchema

    Raises
    ------
    BundleError
        The run or bundle is missing, unsigned, signed with another key, or a file was added,
        removed or changed; nothing was unpickled.
    SecurityError
        The bundle is encrypted and no data key was given (``--key-file`` or ``PERMED_KEY``).
    IntegrityError
        The data key is not the one the bundle was encrypted with.
    """
    directory, _ = _verified(run_dir)
    schema = _schema(directory)
    model_bytes = read_bytes(directory / _MODEL_FILE, _label(_MODEL_FILE))
    # The index is signed and every digest matched: these are the bytes permed wrote.
    return joblib.load(io.BytesIO(model_bytes)), schema


def bundle_is_encrypted(run_dir: str | Path) -> bool:
    """Whether a run's bundle was saved encrypted (read from its index, not verified)."""
    try:
        return bool(_read_index(_directory(run_dir)).get("encrypted"))
    except BundleError:
        return False


def _schema(directory: Path) -> FittedSchema:
    raw = read_bytes(directory / _SCHEMA_FILE, _label(_SCHEMA_FILE))
    return FittedSchema.from_dict(json.loads(raw))


def _directory(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    directory = run_dir / BUNDLE_DIR if (run_dir / BUNDLE_DIR).is_dir() else run_dir
    if not (directory / _INDEX_FILE).is_file():
        raise BundleError(
            f"'{run_dir}' is not a permed run: no {BUNDLE_DIR}/{_INDEX_FILE}; train one with "
            "permed train ... --out RUN_DIR")
    return directory


def _read_index(directory: Path) -> dict[str, Any]:
    index_path = directory / _INDEX_FILE
    try:
        index = json.loads(index_path.read_text())
        dict(index["files"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise BundleError(f"bundle file '{_INDEX_FILE}' in '{directory}' is damaged: retrain "
                          "the model or restore the run") from None
    return dict(index)


def _verified(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    directory = _directory(run_dir)
    index = _read_index(directory)
    try:
        verify_document(index, integrity_key(), f"bundle file '{_INDEX_FILE}' in '{directory}'")
    except IntegrityError as exc:
        raise BundleError(str(exc)) from None
    expected = dict(index["files"])
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != _INDEX_FILE}
    for name in sorted(set(expected) | present):
        if name not in present:
            raise BundleError(f"bundle file '{name}' is missing from '{directory}'")
        if name not in expected:
            raise BundleError(f"bundle file '{name}' in '{directory}' is not part of the bundle")
        if _sha256(directory / name) != expected[name]:
            raise BundleError(
                f"bundle file '{name}' in '{directory}' has changed since it was saved "
                "(its SHA-256 does not match the signed index): refusing to load it; retrain "
                "or restore the run")
    return directory, index
