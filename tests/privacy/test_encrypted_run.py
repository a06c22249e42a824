"""permed train --encrypt end to end: run files encrypted at rest, usable only with the key,
tamper-evident, rotated atomically even when the rotation is killed, and audited."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.cli.main import main
from permed.privacy import encrypted_key_id, is_encrypted, read_key_file, use_key, verify_log
from permed.privacy._rotate import ENV_PAUSE
from permed.privacy._synthetic import phi_table

FAST = ["--models", "logistic", "--cv", "2", "--bootstrap", "100", "--quiet"]
ENCRYPTED = ("predictions.csv", "explanations.json", "model/model.joblib",
             "model/schema.json")


def _say(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained with --encrypt on a table whose ids are raw MRNs."""
    tmp = tmp_path_factory.mktemp("encrypted")
    frame, _ = phi_table(60, seed=2)
    table = frame[["patient_id", "sbp", "sex", "disease"]]
    table.to_csv(tmp / "cohort.csv", index=False)
    table.drop(columns="disease").head(12).to_csv(tmp / "new.csv", index=False)
    assert main(["keys", "create", "--out", str(tmp / "site.key")]) == 0
    assert main(["keys", "create", "--out", str(tmp / "other.key")]) == 0
    code = main(["train", str(tmp / "cohort.csv"), "--target", "disease", "--id", "patient_id",
                 "--encrypt", "--key-file", str(tmp / "site.key"), "--out", str(tmp / "run"),
                 *FAST])
    assert code == 0
    return tmp, table


def test_run_files_are_encrypted_and_hold_no_plaintext(run):
    tmp, table = run
    key_id = read_key_file(tmp / "site.key").key_id
    for name in ENCRYPTED:
        stored = (tmp / "run" / name).read_bytes()
        assert is_encrypted(stored), name
        assert encrypted_key_id(tmp / "run" / name) == key_id
        for mrn in table["patient_id"].astype(str):
            assert mrn.encode() not in stored
        assert b"sbp" not in stored
    index = json.loads((tmp / "run" / "model" / "bundle.json").read_text())
    assert index["encrypted"] is True
    assert index["data_key_id"] == key_id
    assert index["signature"]["algorithm"] == "HMAC-SHA256"


def test_the_report_in_clear_shows_no_individual_patient(run):
    tmp, table = run
    html = (tmp / "run" / "report.html").read_text()
    assert "The run is encrypted and this report is not, so the example patients and their " \
           "factors are left out" in html
    assert "Examples: the test patients" not in html
    assert "Global importance" in html  # the aggregates stay
    for mrn in table["patient_id"].astype(str):
        assert mrn not in html


def test_predict_with_the_key(run):
    tmp, _ = run
    assert main(["predict", str(tmp / "run"), str(tmp / "new.csv"), "--key-file",
                 str(tmp / "site.key"), "--out", str(tmp / "preds.csv"), "--quiet"]) == 0
    assert len(pd.read_csv(tmp / "preds.csv")) == 12


@pytest.mark.parametrize(("command", "key", "message"), [
    ("predict", None, "'{run}/model/schema.json' is encrypted: reading it needs the data key: "
     "pass --key-file KEY or set PERMED_KEY"),
    ("predict", "other.key", "'{run}/model/schema.json' was encrypted with key id [0-9a-f]{{16}},"
     " but the key given \\(key file '.*other.key'\\) has id [0-9a-f]{{16}}: use the key it was "
     "encrypted with"),
    ("report", None, "'{run}/model/schema.json' is encrypted: reading it needs the data key"),
])
def test_without_the_right_key_a_clear_error(run, capsys, command, key, message):
    tmp, _ = run
    args = [command, str(tmp / "run")] + ([str(tmp / "new.csv")] if command == "predict" else [])
    args += ["--key-file", str(tmp / key)] if key else []
    assert main(args) == 1
    assert re.search(message.format(run=tmp / "run"), _say(capsys))


def test_report_and_evaluate_work_with_the_key(run):
    tmp, table = run
    table.head(30).to_csv(tmp / "external.csv", index=False)
    key = ["--key-file", str(tmp / "site.key")]
    assert main(["report", str(tmp / "run"), *key]) == 0
    assert main(["evaluate", str(tmp / "run"), str(tmp / "external.csv"), "--out",
                 str(tmp / "external"), "--bootstrap", "100", "--quiet", *key]) == 0
    assert is_encrypted(tmp / "external" / "predictions.csv")


def test_a_flipped_byte_in_predictions_is_an_integrity_error(run, capsys):
    tmp, _ = run
    shutil.copytree(tmp / "run", tmp / "flipped")
    path = tmp / "flipped" / "predictions.csv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))
    assert main(["report", str(tmp / "flipped"), "--key-file", str(tmp / "site.key")]) == 1
    assert "predictions.csv' failed its integrity check (AES-GCM tag mismatch): it was changed " \
           "or damaged after it was encrypted" in _say(capsys)


def test_every_access_is_in_the_runs_audit_log(run):
    tmp, _ = run
    log = tmp / "run" / "audit.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    actions = [(e["action"], e["outcome"]) for e in entries]
    assert actions[:2] == [("read", "success"), ("train", "success")]
    assert ("predict", "success") in actions
    assert ("predict", "failure: SecurityError") in actions
    assert ("export", "success") in actions
    text = log.read_text()
    assert not [mrn for mrn in run[1]["patient_id"].astype(str) if mrn in text]
    assert verify_log(log).ok
    assert main(["audit", "verify", str(log)]) == 0


def _consistent(run_dir, keys):
    """Every encrypted file is under one key, and the run loads with it."""
    ids = {encrypted_key_id(run_dir / name) for name in ENCRYPTED}
    assert len(ids) == 1, ids
    key = next(k for k in keys if k.key_id in ids)
    with use_key(key):
        model, _ = load_bundle(run_dir)
    assert hasattr(model, "predict_frame")
    return key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_killed_at_a_random_point_leaves_a_readable_run(run, tmp_path, seed):
    tmp, _ = run
    target = tmp_path / "run"
    shutil.copytree(tmp / "run", target)
    old, new = read_key_file(tmp / "site.key"), tmp_path / "new.key"
    pause = 0.4
    env = {**os.environ, ENV_PAUSE: str(pause)}
    process = subprocess.Popen(
        [sys.executable, "-m", "permed.cli.main", "keys", "rotate", "--old", str(tmp / "site.key"),
         "--new", str(new), str(target)], stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr.readline().startswith("rotate: re-encrypted")  # under way
    time.sleep(random.Random(seed).uniform(0, 2.5 * pause))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    keys = [old, read_key_file(new)]
    assert _consistent(target, keys).key_id == old.key_id  # killed before the exchange
    assert main(["keys", "rotate", "--old", str(tmp / "site.key"), "--new", str(new),
                 str(target)]) == 0
    assert _consistent(target, keys).key_id == keys[1].key_id
    assert not list(tmp_path.glob(".run.rotate-*"))
    log = [json.loads(line) for line in (target / "audit.log").read_text().splitlines()]
    assert log[-1]["action"] == "rotate"
    assert verify_log(target / "audit.log").ok
