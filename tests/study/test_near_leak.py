"""A feature that gives the outcome away almost perfectly is warned about, with its figure; the
threshold leaves every genuine feature of the shared real datasets alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from permed.study import Study, validate
from permed.study._leakage import NEAR_LEAK_MEASURE, univariate_auroc
from permed.study._validate import ValidationReport
from permed.study._validate_risk import RiskOptions, check_risk
from permed.testing import shared_data

N = 200


def _near(messages: list[str]) -> list[str]:
    return [m for m in messages if "almost perfectly" in m]


def _warnings(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).warnings]


def _cohort(flips: int) -> pd.DataFrame:
    """Alternating diagnosis; ``near_leak`` names it but for ``flips`` patients of each class."""
    i = np.arange(N)
    disease = np.where(i % 2 == 1, "yes", "no")
    leak = np.where(disease == "yes", "cath lab", "ward")
    flipped = i < 2 * flips
    leak[flipped] = np.where(disease[flipped] == "yes", "ward", "cath lab")
    return pd.DataFrame({"age": 40 + i % 37, "near_leak": leak, "disease": disease})


def test_a_category_agreeing_with_the_diagnosis_for_96_percent_is_warned_about():
    assert _near(_warnings(_cohort(flips=4), Study(task="diagnose", target="disease"))) == [
        "column 'near_leak' separates the classes of 'disease' almost perfectly on its own "
        "(univariate AUROC 0.960 over 200 patients; 96 of the 100 'yes' patients and only 4 "
        "others have one of its values, a text of 8 characters with letters and spaces): likely "
        "leakage (recorded after or because of the diagnosis?); if it is not known when the "
        "prediction is made, drop it with --drop 'near_leak'"]


def test_a_category_agreeing_for_90_percent_is_not_warned_about():
    assert _near(_warnings(_cohort(flips=10), Study(task="diagnose", target="disease"))) == []



def test_a_large_cohort_is_screened_on_a_sample_and_told_in_whole_cohort_figures():
    from permed.study._leakage import SCREEN_ROWS, near_separation

    n = SCREEN_ROWS + 50_000
    rng = np.random.default_rng(1)
    disease = rng.random(n) < 0.3
    leak = np.where(disease, "cath lab", "ward").astype(object)
    flipped = rng.random(n) < 0.02
    leak[flipped] = np.where(disease[flipped], "ward", "cath lab")
    found = near_separation(pd.Series(leak), disease, "categorical")
    assert found is not None
    assert found.patients == n  # measured on every patient once the sample flagged it
    assert found.held + found.others == int((leak == found.level).sum())
    noise = pd.Series(np.where(rng.random(n) < 0.5, "a", "b").astype(object))
    assert near_separation(noise, disease, "categorical") is None

@pytest.mark.parametrize(("overlap", "warned"), [(10, True), (22, False)])
def test_a_measurement_is_warned_about_only_above_its_own_threshold(overlap, warned):
    """A measurement may rank a diagnosis defined from it well (breast cancer's worst
    perimeter: 0.975); 0.99 is suspect. The classes' values overlap over ``overlap`` units of
    100: AUROC 0.995 and 0.976."""
    i = np.arange(N)
    disease = i % 2
    value = i // 2 + (100 - overlap) * disease
    frame = pd.DataFrame({"age": 40 + i % 37, "marker": value, "disease": disease})
    found = _near(_warnings(frame, Study(task="diagnose", target="disease")))
    assert found == ([
        "column 'marker' separates the classes of 'disease' almost perfectly on its own "
        "(univariate AUROC 0.995 over 200 patients): likely leakage (recorded after or because "
        "of the diagnosis?); if it is not known when the prediction is made, drop it with "
        "--drop 'marker'"] if warned else [])


def test_one_class_of_several_separated_is_named():
    frame = _cohort(flips=4)
    frame.loc[frame["disease"] == "no", "disease"] = np.tile(["no", "maybe"], N // 4)
    frame.loc[frame["disease"] == "maybe", "near_leak"] = "ward"
    (message,) = _near(_warnings(frame, Study(task="diagnose", target="disease")))
    assert message.startswith(
        "column 'near_leak' separates 'disease' = 'yes' from the other classes almost perfectly "
        "on its own (univariate AUROC 0.970 over 200 patients; 98 of the 100 patients of other "
        "classes and only 4 others have its most common value, a text of 4 characters with "
        "letters): likely leakage")


def _whas_like(event: np.ndarray) -> pd.DataFrame:
    i = np.arange(len(event))
    return pd.DataFrame({"days": 30.0 + i, "age": 40 + i % 37, "fstat": event,
                         "dstat": np.where((event == "dead") & (i < 40), "Died in hospital",
                                           "Discharged alive")})


def test_a_status_every_patient_of_which_died_is_warned_about_with_a_named_event_value():
    """WHAS500 with fstat 'dead'/'alive', trained with --event-value dead."""
    frame = _whas_like(np.where(np.arange(N) % 2 == 0, "dead", "alive"))
    study = Study(task="risk", time="days", event="fstat")
    report = ValidationReport()
    check_risk(frame, study, report, RiskOptions(event_value="dead"))
    assert [f.message for f in report.warnings] == [
        "column 'dstat': all 20 patients with its 2nd most common value, a text of 16 "
        "characters with letters and spaces, had the event ('fstat'): likely leakage (recorded "
        "at or after the event, like a status at discharge?); if it is not known when the "
        "prediction is made, drop it with --drop 'dstat'"]


def test_a_feature_separating_who_had_the_event_is_warned_about():
    i = np.arange(N)
    event = (i % 2 == 0).astype(int)
    frame = pd.DataFrame({"days": 30.0 + i, "status": event,
                          "ward": np.where((event == 1) != (i < 8), "icu", "home")})
    (message,) = _near(_warnings(frame, Study(task="risk", time="days", event="status")))
    assert message == (
        "column 'ward' separates the patients who had the event ('status') from the censored "
        "almost perfectly on its own (univariate AUROC 0.960 over 200 patients; 96 of the 100 "
        "patients with the event and only 4 others have one of its values, a text of 3 "
        "characters with letters): likely leakage (recorded at or after the event?); if it is "
        "not known when the prediction is made, drop it with --drop 'ward'")


# --------------------------------------------------------------------------- real datasets


def _cleveland() -> tuple[pd.DataFrame, Study]:
    frame = pd.read_csv(shared_data("uci_heart_cleveland/processed.cleveland.tsv"), sep="\t",
                        na_values="?")
    return frame, Study(task="diagnose", target="diagnosis")


def _cleveland_binary() -> tuple[pd.DataFrame, Study]:
    frame, _ = _cleveland()
    frame["disease"] = (frame.pop("diagnosis") > 0).astype(int)
    return frame, Study(task="diagnose", target="disease")


def _breast_cancer() -> tuple[pd.DataFrame, Study]:
    return load_breast_cancer(as_frame=True).frame, Study(task="diagnose", target="target")


def _pycox(name: str) -> tuple[pd.DataFrame, Study]:
    frame = pd.read_csv(shared_data(f"survival_pycox_csv/{name}.csv"))
    return frame, Study(task="risk", time="duration", event="event")


def _whas500() -> tuple[pd.DataFrame, Study]:
    frame = pd.read_csv(shared_data("survival_raw_csv/whas500.csv"))
    return frame, Study(task="risk", time="lenfol", event="fstat", id="id",
                        drop=["admitdate", "disdate", "fdate"])


def _actg175() -> tuple[pd.DataFrame, Study]:
    frame = pd.read_csv(shared_data("actg175/ACTG175.csv"), na_values=["NA"])
    frame["cd420_above_median"] = (frame["cd420"] > frame["cd420"].median()).astype(int)
    # the treat outcome made binary, as a diagnosis: its baseline features against it
    return frame, Study(task="diagnose", target="cd420_above_median",
                        drop=["pidnum", "treat", "arms", "cd420", "cd496", "r", "cd820", "cens",
                              "days", "offtrt"])


@pytest.mark.parametrize("load", [
    _cleveland, _cleveland_binary, _breast_cancer, lambda: _pycox("gbsg"),
    lambda: _pycox("metabric"), _whas500, _actg175,
], ids=["cleveland", "cleveland_binary", "breast_cancer", "gbsg", "metabric", "whas500",
        "actg175"])
def test_no_genuine_feature_of_the_real_datasets_is_warned_about(load):
    frame, study = load()
    assert _near(_warnings(frame, study)) == []


def test_breast_cancer_worst_perimeter_sits_below_the_measurement_threshold():
    """The best genuine univariate figure of the shared data: scikit-learn's breast cancer
    (Wisconsin diagnostic), worst perimeter, AUROC 0.975."""
    frame = load_breast_cancer(as_frame=True).frame
    auroc = univariate_auroc(frame["worst perimeter"], frame["target"].to_numpy() == 0,
                             "numeric")
    assert auroc == pytest.approx(0.975, abs=5e-4)
    assert auroc < NEAR_LEAK_MEASURE
