"""The GRU over EHR event sequences: tokenizer, learning, the pipeline hook and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from permed.exceptions import PermedError
from permed.models.deep._sequence import MAX_EVENTS, EventGRUClassifier, with_events
from permed.models.diagnose._registry import require_events
from permed.preprocess import make_preprocessor
from permed.preprocess._events import OOV_ID, EventTokenizer
from permed.testing import assert_valid_proba, run_permed, shared_data

NO_EVENTS = r"--models gru reads each patient's event sequence, but the study names no events " \
            r"column: add --events COL"


def _cohort(n: int, seed: int) -> pd.DataFrame:
    """Sequences of 3-15 tokens from 30 codes; the label is whether DX:42 occurs (with 5% of
    labels flipped), anywhere in the sequence."""
    rng = np.random.default_rng(seed)
    codes = [f"RX:drug{k}" for k in range(29)] + ["DX:42"]
    rows = []
    for _ in range(n):
        length = int(rng.integers(3, 16))
        tokens = list(rng.choice(codes[:-1], length))
        if rng.random() < 0.4:
            tokens[int(rng.integers(0, length))] = "DX:42"
        label = int("DX:42" in tokens) ^ int(rng.random() < 0.05)
        rows.append({"age": rng.normal(60, 10), "events": " ".join(["ADM:EMERGENCY", *tokens]),
                     "y": label})
    return pd.DataFrame(rows)


def test_tokenizer_keeps_the_most_recent_events_and_pads():
    tokens = EventTokenizer(max_length=3, min_count=1).fit(
        pd.DataFrame({"events": ["A B C D", "B"]}))
    ids = tokens.transform(pd.DataFrame({"events": ["A B C D", "B", "", "Z B"]}))
    vocab = tokens.vocabulary_
    assert vocab["B"] == 2  # in both rows: the most frequent gets the first id
    assert ids.tolist() == [[vocab["B"], vocab["C"], vocab["D"]], [vocab["B"], 0, 0], [0, 0, 0],
                            [OOV_ID, vocab["B"], 0]]
    assert list(tokens.get_feature_names_out()) == ["events_0", "events_1", "events_2"]


def test_repeated_sequences_are_tokenized_and_encoded_as_each_row_alone():
    # explanations repeat a few sequences thousands of times: each distinct one is done once
    from permed.models.deep._sequence import _distinct_rows

    tokenizer = EventTokenizer(max_length=4, min_count=1).fit(
        pd.DataFrame({"events": ["A B C", "B D"]}))
    texts = ["A B C", None, "B D", "A B C", "E", "B D", "A B C D E"]
    together = tokenizer.transform(pd.DataFrame({"events": texts}))
    alone = np.vstack([tokenizer.transform(pd.DataFrame({"events": [t]})) for t in texts])
    assert np.array_equal(together, alone)
    ids = together.astype(np.int64)
    distinct, inverse = _distinct_rows(ids)
    assert len(distinct) == 5
    assert np.array_equal(distinct[inverse], ids)


def test_vocabulary_comes_from_the_training_rows_only():
    frame = _cohort(60, seed=0)
    train, test = frame.iloc[:40].copy(), frame.iloc[40:].copy()
    test["events"] = test["events"] + " RX:only_in_test RX:only_in_test"
    preprocess, model = with_events(make_preprocessor(["age"], []),
                                    EventGRUClassifier(max_epochs=2, device="cpu",
                                                       random_state=0), ["events"])
    pipeline = make_pipeline(preprocess, model).fit(train, train["y"])
    tokenizer = pipeline[0].named_transformers_["events"]
    assert "RX:only_in_test" not in tokenizer.vocabulary_
    assert set(tokenizer.vocabulary_) <= {t for row in train["events"] for t in row.split()}
    ids = pipeline[0].transform(test)[:, 1:]
    assert ids.shape[1] == MAX_EVENTS == model.event_columns
    assert (ids == OOV_ID).sum(axis=1).min() >= 2  # the unseen token is out of vocabulary
    assert_valid_proba(pipeline.predict_proba(test), 20, 2)


def test_gru_learns_which_token_decides_the_label():
    frame = _cohort(320, seed=1)
    train, test = frame.iloc[:240], frame.iloc[240:]
    tokenizer = EventTokenizer(max_length=20, min_count=2).fit(train[["events"]])
    model = EventGRUClassifier(event_columns=20, max_epochs=30, device="cpu", random_state=0)
    model.fit(tokenizer.transform(train[["events"]]), train["y"])
    proba = model.predict_proba(tokenizer.transform(test[["events"]]))
    assert_valid_proba(proba, 80, 2)
    assert roc_auc_score(test["y"], proba[:, 1]) > 0.8  # 5% label noise: at most ~0.95


def test_fitting_is_reproducible_and_leaves_torch_seeded_state_alone():
    import torch

    frame = _cohort(60, seed=2)
    ids = EventTokenizer(max_length=10, min_count=1).fit_transform(frame[["events"]])
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = EventGRUClassifier(event_columns=10, max_epochs=3, device="cpu",
                               random_state=0).fit(ids, frame["y"]).predict_proba(ids)
    assert torch.rand(1) == before
    second = EventGRUClassifier(event_columns=10, max_epochs=3, device="cpu",
                                random_state=0).fit(ids, frame["y"]).predict_proba(ids)
    np.testing.assert_allclose(first, second)


@pytest.mark.parametrize(("params", "message"), [
    ({"event_columns": 5}, r"event_columns=5 but X has 3 columns: the last event_columns "
                           r"columns must hold the EventTokenizer's ids"),
    ({"event_columns": 2}, r"the last 2 columns of X must hold event ids \(integers >= 0, 0 = "
                           r"padding\) from permed's EventTokenizer; found -1.5 to 2.0"),
    ({"dropout": 1.0}, r"dropout=1.0 must be a number >= 0 and below 1.0"),
])
def test_bad_inputs_are_refused(params, message):
    X = np.asarray([[0.0, 1.0, 2.0], [1.0, -1.5, 1.0]])
    with pytest.raises(PermedError, match=message):
        EventGRUClassifier(device="cpu", **params).fit(X, [0, 1])


def test_gru_without_an_events_column_is_refused():
    with pytest.raises(PermedError, match=NO_EVENTS):
        require_events(["lightgbm", "gru"], None)
    require_events(["lightgbm"], None)  # tabular models need no events
    # inside the library (the explainer tests of every family) it falls back to the table
    preprocess = make_preprocessor(["age"], [])
    same, model = with_events(preprocess, EventGRUClassifier(event_columns=7), [])
    assert same is preprocess
    assert model.event_columns == 0


def test_cli_ingest_train_predict_on_the_mimic_demo(tmp_path):
    folder = shared_data("mimic3_demo")
    table = tmp_path / "icu.parquet"
    assert run_permed("ingest", "mimic", folder, "--task", "mortality", "--events",
                      "--out", table).returncode == 0
    result = run_permed("train", table, "--task", "diagnose", "--target", "died_in_hospital",
                        "--id", "hadm_id", "--events", "events", "--models", "lightgbm,gru",
                        "--cv", "2", "--bootstrap", "100", "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["cv"]) == {"lightgbm", "gru"}
    assert 0 <= metrics["cv"]["gru"]["auroc"]["mean"] <= 1
    predicted = run_permed("predict", tmp_path / "run", table, "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 91


def test_validation_reads_the_events_column_as_its_own_kind():
    from permed.study import Study, validate

    frame = _cohort(40, seed=3)
    study = Study(task="diagnose", target="y", events="events")
    frame.loc[0, "events"] = ""
    report = validate(frame, study)
    assert report.kinds == {"age": "numeric", "events": "events"}
    assert [f.message for f in report.warnings] == [
        "events column 'events' is empty for 1 of 40 patients: their sequence is read as "
        "having no event"]
    report = validate(frame.assign(events=""), study)
    assert [f.message for f in report.errors] == [
        "events column 'events' (from --events) has no event for any patient: give the column "
        "of space-separated event tokens (permed ingest mimic --events writes 'events')"]
