"""Bundles are signed and verified before anything is unpickled; run directories appear whole
or not."""

from __future__ import annotations

import hashlib
import json

import pytest

from permed.bundle import atomic_directory, bundle_is_encrypted, load_bundle, save_bundle
from permed.exceptions import BundleError, IntegrityError, PermedError, SecurityError
from permed.privacy import generate_key, use_key
from permed.study import FeatureSpec, FittedSchema

MARKER = "permed-unpickled.marker"


class Exploding:
    """Unpickling this runs code (it writes a marker file); a tampered bundle never gets there."""

    def __init__(self, marker: str = MARKER) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_explode, (self.marker,))


def _explode(marker: str) -> None:
    with open(marker, "w") as handle:  # proof that code in the pickle ran
        handle.write("ran")


@pytest.fixture
def schema():
    return FittedSchema("diagnose", [FeatureSpec("age", "numeric", 20.0, 90.0)], "y", ["0", "1"])


def test_round_trip(tmp_path, schema):
    save_bundle({"weights": [1, 2, 3]}, schema, tmp_path / "model")
    model, loaded = load_bundle(tmp_path)
    assert model == {"weights": [1, 2, 3]}
    assert loaded == schema


def test_the_marker_proves_that_unpickling_runs_code(tmp_path, schema):
    marker = tmp_path / MARKER
    save_bundle(Exploding(str(marker)), schema, tmp_path / "model")
    load_bundle(tmp_path)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("position", [0, 0.5, -1])
def test_changed_byte_is_refused_before_unpickling(tmp_path, schema, position):
    marker = tmp_path / MARKER
    save_bundle(Exploding(str(marker)), schema, tmp_path / "model")
    path = tmp_path / "model" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[int(position * (len(data) - 1)) if position != -1 else -1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="bundle file 'model.joblib' .* has changed since it "
                       "was saved"):
        load_bundle(tmp_path)
    assert not marker.exists()


def test_edited_index_is_refused_by_its_signature(tmp_path, schema):
    marker = tmp_path / MARKER
    save_bundle(Exploding(str(marker)), schema, tmp_path / "model")
    model = tmp_path / "model" / "model.joblib"
    model.write_bytes(model.read_bytes() + b"x")
    index_path = tmp_path / "model" / "bundle.json"
    index = json.loads(index_path.read_text())
    index["files"]["model.joblib"] = hashlib.sha256(model.read_bytes()).hexdigest()
    index_path.write_text(json.dumps(index))
    with pytest.raises(BundleError, match="bundle file 'bundle.json' in .* has changed since it "
                       r"was signed \(its signature does not match\)"):
        load_bundle(tmp_path)
    assert not marker.exists()


def test_unsigned_bundle_is_refused(tmp_path, schema):
    save_bundle({}, schema, tmp_path / "model")
    index_path = tmp_path / "model" / "bundle.json"
    index = json.loads(index_path.read_text())
    del index["signature"]
    index_path.write_text(json.dumps(index))
    with pytest.raises(BundleError, match="bundle file 'bundle.json' in .* is not signed: "
                       "refusing to trust it"):
        load_bundle(tmp_path)


def test_bundle_signed_with_another_integrity_key_is_refused(tmp_path, schema, monkeypatch):
    save_bundle({}, schema, tmp_path / "model")
    monkeypatch.setenv("PERMED_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(BundleError, match="was signed with integrity key id [0-9a-f]{16}, but "
                       "this machine's integrity key .* has id [0-9a-f]{16}"):
        load_bundle(tmp_path)


def test_encrypted_bundle_needs_its_key(tmp_path, schema):
    key = generate_key()
    save_bundle({"weights": [1, 2, 3]}, schema, tmp_path / "model", key=key)
    for name in ("model.joblib", "schema.json"):
        assert (tmp_path / "model" / name).read_bytes().startswith(b"permed-enc")
    assert b'"age"' not in (tmp_path / "model" / "schema.json").read_bytes()
    assert bundle_is_encrypted(tmp_path)
    with pytest.raises(SecurityError, match="schema.json' is encrypted: reading it needs the "
                       "data key: pass --key-file KEY or set PERMED_KEY"):
        load_bundle(tmp_path)
    with pytest.raises(IntegrityError, match="was encrypted with key id"), \
            use_key(generate_key()):
        load_bundle(tmp_path)
    with use_key(key):
        model, loaded = load_bundle(tmp_path)
    assert model == {"weights": [1, 2, 3]}
    assert loaded == schema


@pytest.mark.parametrize(("action", "message"), [
    ("remove", "bundle file 'schema.json' is missing"),
    ("add", "bundle file 'extra.pkl' .* is not part of the bundle"),
])
def test_missing_or_extra_files_are_refused(tmp_path, schema, action, message):
    save_bundle({}, schema, tmp_path / "model")
    if action == "remove":
        (tmp_path / "model" / "schema.json").unlink()
    else:
        (tmp_path / "model" / "extra.pkl").write_bytes(b"x")
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(BundleError, match="is not a permed run: no model/bundle.json"):
        load_bundle(tmp_path)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    def fail() -> None:
        with atomic_directory(out) as staging:
            (staging / "metrics.json").write_text("{}")
            raise RuntimeError("training failed")

    with pytest.raises(RuntimeError, match="training failed"):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_a_previous_run(tmp_path):
    out = tmp_path / "run"
    for value in ("1", "2"):
        with atomic_directory(out) as staging:
            (staging / "manifest.json").write_text(value)
    assert (out / "manifest.json").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(PermedError, match="exists and is not a permed output folder"), \
            atomic_directory(tmp_path):
        pass
    assert (tmp_path / "precious.txt").read_text() == "keep"
