"""permed ingest fhir|mimic|genes, and training on genes, notes and EHR tables end to end."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pandas as pd
import pytest

from permed.cli.main import main
from permed.study import Study
from permed.testing import shared_data

FAST = ["--cv", "3", "--bootstrap", "100", "--quiet"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def permed(capsys):
    """Run the command line in this process (one import of the libraries for every call)."""
    def run(*args: object) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_ingest_fhir_writes_table_and_study(permed, tmp_path):
    folder = tmp_path / "bundles"
    folder.mkdir()
    for name in ("Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json",
                 "Cris921_Rath779_d4519c92-d241-b2b2-7360-291d60be699e.json"):
        shutil.copy(shared_data(f"synthea_fhir_covid_juvenile/{name}"), folder / name)
    result = permed("ingest", "fhir", folder, "--out", tmp_path / "patients.parquet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 patients x ")
    frame = pd.read_parquet(tmp_path / "patients.parquet")
    assert frame["patient_id"].is_unique
    assert len(frame) == 2
    study = Study.from_toml(tmp_path / "patients.study.toml")
    assert study.id == "patient_id"
    assert study.columns["body_temperature_8310_5_latest"].unit == "Cel"
    assert study.fhir["body_temperature_8310_5_latest"] == {"loinc": "8310-5", "unit": "Cel"}


def test_ingest_fhir_hands_over_a_study_that_validates(permed, tmp_path, monkeypatch,
                                                      synthea_constant_features):
    monkeypatch.chdir(tmp_path)
    result = permed("ingest", "fhir", shared_data("synthea_fhir_covid_juvenile"), "--out",
                    "patients.parquet")
    assert result.returncode == 0, result.stderr
    assert " ".join(result.stdout.split()) == (
        "10 patients x 51 features from 12 file(s): patients.parquet; column roles and units: "
        "patients.study.toml "
        "18 column(s) hold one value for every patient (nothing to learn from; validation "
        "refuses them as features), so patients.study.toml lists them under drop: deceased, "
        f"marital_status, {', '.join(synthea_constant_features)} "
        "permed serve reads 9 of the 33 features from a live Bundle ([fhir] in the study: "
        "gender, age_years, the latest value of 7 observation(s)) "
        "the other 24 (observation mean, min, max, coded results, active conditions) are not "
        "read from a Bundle: when serving they are missing and the model imputes them; drop "
        "them to train on what serving reads")
    checked = permed("validate", "patients.parquet", "--study", "patients.study.toml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 error(s), 0 warning(s)" in checked.stdout


def _glucose_bundle(path, *dated_values):
    entries = [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-02"}}]
    entries += [{"resource": {
        "resourceType": "Observation", "status": "final", "effectiveDateTime": when,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7",
                             "display": "Glucose"}]},
        "valueQuantity": {"value": value, "code": "mg/dL"}}} for when, value in dated_values]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": entries}))
    return path


def test_ingest_fhir_as_of_leaves_out_what_came_after(permed, tmp_path):
    bundle = _glucose_bundle(tmp_path / "b.json", ("2023-01-01", 100), ("2025-06-01", 400))
    result = permed("ingest", "fhir", bundle, "--out", tmp_path / "o.csv", "--as-of",
                    "2024-01-01")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "o.csv")
    assert frame[["glucose_2345_7_latest", "glucose_2345_7_mean"]].values.tolist() == [
        [100, 100]]
    assert ("--as-of 2024-01-01: 1 Observation(s) of 1 patient(s) dated after it are left out"
            in result.stdout)
    helped = permed("ingest", "fhir", "--help")
    assert "only Observations and Conditions dated on or before it feed" in " ".join(
        helped.stdout.replace("│", " ").split())


@pytest.mark.parametrize(("as_of", "message"), [
    ("garbage", "error: --as-of 'garbage' is not a date: expected an ISO 8601 date, YYYY-MM-DD, "
     "or date and time, YYYY-MM-DDThh:mm:ss with Z or an offset such as +01:00"),
    ("01/02/2024", "error: --as-of '01/02/2024' is not an ISO date: a date written with "
     "slashes or dots reads differently from country to country (day or month first); write "
     "it as YYYY-MM-DD (2024-01-02 or 2024-02-01)"),
])
def test_ingest_fhir_refuses_an_as_of_that_is_not_iso(permed, tmp_path, as_of, message):
    bundle = _glucose_bundle(tmp_path / "b.json", ("2023-01-01", 100))
    result = permed("ingest", "fhir", bundle, "--out", tmp_path / "o.csv", "--as-of", as_of)
    assert result.returncode == 1
    assert " ".join(result.stderr.split()) == message
    assert not (tmp_path / "o.csv").exists()


def test_ingest_refuses_an_unknown_output_suffix(permed, tmp_path):
    result = permed("ingest", "mimic", shared_data("mimic3_demo"), "--out", tmp_path / "x.xlsx")
    assert result.returncode == 1
    assert "--out '" in result.stderr
    assert "ends in '.xlsx'; expected .csv, .tsv, .parquet" in result.stderr


@pytest.mark.slow
def test_mimic_mortality_end_to_end(permed, tmp_path):
    table = tmp_path / "icu.parquet"
    result = permed("ingest", "mimic", shared_data("mimic3_demo"), "--task", "mortality",
                    "--out", table)
    assert result.returncode == 0, result.stderr
    assert "100 patients (33% died in hospital)" in result.stdout
    run = tmp_path / "run"
    result = permed("train", table, "--study", tmp_path / "icu.study.toml", "--models",
                    "logistic", "--out", run, *FAST)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target"]["column"] == "died_in_hospital"
    assert (run / "report.html").is_file()
    new = pd.read_parquet(table).drop(columns="died_in_hospital").head(5)
    new.to_csv(tmp_path / "new.csv", index=False)
    result = permed("predict", run, tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 5


@pytest.fixture
def golub300(permed, tmp_path):
    tmp = tmp_path
    source = shared_data("golub_leukemia/data_set_ALL_AML_train.csv")
    pd.read_csv(source, nrows=300).to_csv(tmp / "genes.csv", index=False)
    result = permed("ingest", "genes", tmp / "genes.csv", "--labels",
                    shared_data("golub_leukemia/actual.csv"), "--label-name", "ALL_AML",
                    "--out", tmp / "golub.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("38 samples x 300 genes")
    return tmp


def test_genes_without_labels_or_ids_is_warned_about(permed, golub300):
    result = permed("ingest", "genes", golub300 / "genes.csv", "--out", golub300 / "bare.csv")
    assert result.returncode == 0, result.stderr
    assert ("warning: no --labels and no --keep-ids: the table holds neither a sample id nor a "
            "label") in " ".join(result.stderr.split())
    assert "warning" not in permed("ingest", "genes", golub300 / "genes.csv", "--keep-ids",
                                   "sample", "--out", golub300 / "ids.csv").stderr


@pytest.mark.slow
def test_genes_train_report_and_predict(permed, golub300):
    run = golub300 / "run"
    result = permed("train", golub300 / "golub.csv", "--task", "diagnose", "--genes",
                    "gene_*", "--target", "ALL_AML", "--models", "elasticnet", "--out", run,
                    *FAST)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    genes = metrics["genes"]
    assert genes["columns"] == 300
    assert genes["log_transform"] is True
    assert all(g["gene"].startswith("gene_") for g in genes["top"])
    assert "Genes: preprocessing and stable selection" in (run / "report.html").read_text()
    new = pd.read_csv(golub300 / "golub.csv").drop(columns="ALL_AML").head(4)
    new.to_csv(golub300 / "new.csv", index=False)
    result = permed("predict", run, golub300 / "new.csv", "--out", golub300 / "p.csv")
    assert result.returncode == 0, result.stderr
    assert set(pd.read_csv(golub300 / "p.csv")["predicted"]) <= {"ALL", "AML"}


def test_genes_pattern_matching_nothing_is_an_error(permed, golub300):
    result = permed("train", golub300 / "golub.csv", "--genes", "probe_*", "--target",
                    "ALL_AML", "--out", golub300 / "bad", "--quiet")
    assert result.returncode == 1
    assert "genes pattern 'probe_*' (from --genes) matches no column of the data" in result.stderr


@pytest.mark.slow
def test_notes_train_report_and_predict(permed, tmp_path):
    frame = pd.read_csv(shared_data("clinical_text/Symptom2Disease.csv"))
    chosen = sorted(frame["label"].unique())[:4]
    notes = (frame[frame["label"].isin(chosen)].groupby("label").head(25)
             .rename(columns={"label": "disease"})[["disease", "text"]])
    notes.to_csv(tmp_path / "notes.csv", index=False)
    run = tmp_path / "run"
    result = permed("train", tmp_path / "notes.csv", "--task", "diagnose", "--note", "text",
                    "--target", "disease", "--models", "logistic", "--out", run, *FAST)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"]["value"] > 0.7  # 4 diseases: chance is 0.25
    notes.drop(columns="disease").head(3).to_csv(tmp_path / "new.csv", index=False)
    result = permed("predict", run, tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    assert set(pd.read_csv(tmp_path / "p.csv")["predicted"]) <= set(chosen)
