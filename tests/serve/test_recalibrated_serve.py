"""A recalibrated run (permed recalibrate) served over real sockets answers as permed predict
does: the update is part of the model in the bundle, applied after ONNX Runtime's
probabilities as after the native pipeline's, and in the risk model's survival curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.study import Study
from permed.testing import site_diagnose_cohort, site_risk_cohort
from permed.workflow import TrainConfig, predict_run, train_run
from permed.workflow._recalibrate import recalibrate_run


@pytest.fixture(scope="module")
def recalibrated_service(tmp_path_factory, start_service):
    from permed.serve import Settings

    tmp = tmp_path_factory.mktemp("recalibrated-serve")
    site_diagnose_cohort(600, 1).to_csv(tmp / "source.csv", index=False)
    site_diagnose_cohort(600, 2, shift=1.0).to_csv(tmp / "local.csv", index=False)
    site_risk_cohort(600, 1).to_csv(tmp / "risk_source.csv", index=False)
    site_risk_cohort(600, 2, 2.0).to_csv(tmp / "risk_local.csv", index=False)
    fast = {"cv": 3, "n_boot": 100}
    source = train_run(tmp / "source.csv", Study(task="diagnose", target="disease"),
                       TrainConfig(models=["logistic"], **fast), tmp / "src")
    risk = train_run(tmp / "risk_source.csv", Study(task="risk", time="years", event="died"),
                     TrainConfig(models=["coxph"], horizons=[1.0, 2.0], **fast), tmp / "risk")
    runs = {"dx": recalibrate_run(source, tmp / "local.csv", tmp / "dx", n_boot=100),
            "rk": recalibrate_run(risk, tmp / "risk_local.csv", tmp / "rk", n_boot=100)}
    service = start_service(Settings(runs=runs, data_dir=tmp, database_url=None, rate_limit=0),
                            {"alice": "clinician"})
    yield service, runs, tmp
    service.stop()


def test_serve_answers_the_recalibrated_probabilities_of_predict(recalibrated_service):
    service, runs, tmp = recalibrated_service
    patients = pd.read_csv(tmp / "local.csv").drop(columns="disease").head(5)
    with service.client("alice") as client:
        body = client.post("/v1/models/dx/predict",
                           json={"patients": patients.to_dict("records"), "explain": False})
    assert body.status_code == 200, body.text
    answer = body.json()
    assert answer["model"]["engine"] == "onnx"  # the source pipeline's graph, update after it
    patients.to_csv(tmp / "five.csv", index=False)
    expected = predict_run(runs["dx"], tmp / "five.csv")
    source = predict_run(tmp / "src", tmp / "five.csv")
    for result, (_, row) in zip(answer["results"], expected.iterrows(), strict=True):
        assert result["answer"]["prob_yes"] == pytest.approx(row["prob_yes"], abs=1e-6)
        assert result["answer"]["predicted"] == row["predicted"]
    # the update changed them (the local site's odds are e = 2.7 times the development's)
    assert (expected["prob_yes"] - source["prob_yes"]).abs().max() > 0.1


def test_serve_answers_the_recalibrated_risks_of_predict(recalibrated_service):
    service, runs, tmp = recalibrated_service
    patients = pd.read_csv(tmp / "risk_local.csv").drop(columns=["years", "died"]).head(3)
    with service.client("alice") as client:
        body = client.post("/v1/models/rk/predict",
                           json={"patients": patients.to_dict("records"), "explain": False})
    assert body.status_code == 200, body.text
    patients.to_csv(tmp / "three.csv", index=False)
    expected = predict_run(runs["rk"], tmp / "three.csv")
    for result, (_, row) in zip(body.json()["results"], expected.iterrows(), strict=True):
        for column in ("risk_at_1", "risk_at_2"):
            assert result["answer"][column] == pytest.approx(row[column], abs=1e-9)
        survival = np.asarray(result["survival_curve"]["survival"])
        assert np.all((survival >= 0) & (survival <= 1))
        assert np.all(np.diff(survival) <= 1e-12)
