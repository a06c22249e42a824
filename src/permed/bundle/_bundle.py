"""Save and load a trained model with its schema; every file's digest is checked on load.

The digests are verified *before* anything is unpickled, so a changed or truncated file is
refused rather than executed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from permed import __version__
from permed.exceptions import BundleError
from permed.study import FittedSchema

__all__ = ["BUNDLE_DIR", "load_bundle", "save_bundle"]

BUNDLE_DIR = "model"
_MODEL_FILE = "model.joblib"
_SCHEMA_FILE = "schema.json"
_INDEX_FILE = "bundle.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_bundle(model: Any, schema: FittedSchema, directory: str | Path) -> Path:
    """Write ``model.joblib``, ``schema.json`` and ``bundle.json`` (the digests) to a folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / _MODEL_FILE, compress=3)
    (directory / _SCHEMA_FILE).write_text(json.dumps(schema.to_dict(), indent=2))
    files = {
        p.name: _sha256(p) for p in sorted(directory.iterdir())
        if p.is_file() and p.name != _INDEX_FILE
    }
    index = {
        "format": "permed-bundle/1",
        "permed_version": __version__,
        "task": schema.task,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    (directory / _INDEX_FILE).write_text(json.dumps(index, indent=2))
    return directory


def read_schema(run_dir: str | Path) -> FittedSchema:
    """The fitted schema of a run, after checking the bundle's digests."""
    directory = _verified(run_dir)
    return FittedSchema.from_dict(json.loads((directory / _SCHEMA_FILE).read_text()))


def load_bundle(run_dir: str | Path) -> tuple[Any, FittedSchema]:
    """Load a run's model and schema after verifying every file's SHA-256.

    Raises
    ------
    BundleError
        The run directory or bundle is missing, a file was added, removed or changed.
    """
    directory = _verified(run_dir)
    schema = FittedSchema.from_dict(json.loads((directory / _SCHEMA_FILE).read_text()))
    return joblib.load(directory / _MODEL_FILE), schema


def _verified(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    directory = run_dir / BUNDLE_DIR if (run_dir / BUNDLE_DIR).is_dir() else run_dir
    index_path = directory / _INDEX_FILE
    if not index_path.is_file():
        raise BundleError(
            f"'{run_dir}' is not a permed run: no {BUNDLE_DIR}/{_INDEX_FILE}; train one with "
            "permed train ... --out RUN_DIR")
    try:
        index = json.loads(index_path.read_text())
        expected = dict(index["files"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise BundleError(f"'{index_path}' is damaged: retrain the model") from None
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != _INDEX_FILE}
    for name in sorted(set(expected) | present):
        if name not in present:
            raise BundleError(f"bundle file '{name}' is missing from '{directory}'")
        if name not in expected:
            raise BundleError(f"bundle file '{name}' in '{directory}' is not part of the bundle")
        if _sha256(directory / name) != expected[name]:
            raise BundleError(
                f"bundle file '{name}' in '{directory}' has changed since it was saved "
                "(its SHA-256 does not match): refusing to load it; retrain or restore the run")
    return directory
