"""Bundles are verified before anything is unpickled; run directories appear whole or not."""

from __future__ import annotations

import pytest

from permed.bundle import atomic_directory, load_bundle, save_bundle
from permed.exceptions import BundleError, PermedError
from permed.study import FeatureSpec, FittedSchema


class Exploding:
    """Unpickling this runs code; a verified bundle never gets that far when tampered."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("unpickled a tampered bundle")


@pytest.fixture
def schema():
    return FittedSchema("diagnose", [FeatureSpec("age", "numeric", 20.0, 90.0)], "y", ["0", "1"])


def test_round_trip(tmp_path, schema):
    save_bundle({"weights": [1, 2, 3]}, schema, tmp_path / "model")
    model, loaded = load_bundle(tmp_path)
    assert model == {"weights": [1, 2, 3]}
    assert loaded == schema


def test_changed_byte_is_refused_before_unpickling(tmp_path, schema):
    save_bundle(Exploding(), schema, tmp_path / "model")
    path = tmp_path / "model" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="bundle file 'model.joblib' .* has changed since it "
                       "was saved"):
        load_bundle(tmp_path)


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
