"""A run trained on notes keeps no note's text and no name from the record's identifier columns:
not in the vocabulary, the bundle's SHAP background, explanations.json, report.html or
``permed predict --explain``."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import zlib

import pandas as pd
import pytest

from permed.bundle import load_bundle
from permed.report import write_report
from permed.study import Study
from permed.testing import shared_data
from permed.workflow import TrainConfig, predict_run, train_run

FIRST = ["Fatima", "John", "Olusegun", "Priya", "Wei", "Maria", "Kofi", "Ingrid", "Tomasz",
         "Aiko"]
LAST = ["Lopez", "Smith", "Adeyemi", "Raghunathan", "Nowak", "Haddad", "Mensah", "Lindqvist",
        "Kowalczyk", "Tanaka"]


def _notes_with_identifiers(diseases: int) -> pd.DataFrame:
    """Symptom2Disease notes (25 per disease) that name their patient without a cue."""
    frame = pd.read_csv(shared_data("clinical_text/Symptom2Disease.csv"))
    chosen = sorted(frame["label"].unique())[:diseases]
    table = (frame[frame["label"].isin(chosen)].groupby("label").head(25)
             .rename(columns={"label": "disease"})[["disease", "text"]].reset_index(drop=True))
    k = table.index % len(FIRST)
    table["mrn"] = [f"MRN{100000 + i}" for i in table.index]
    table["first_name"], table["last_name"] = [FIRST[i] for i in k], [LAST[i] for i in k]
    table["phone"] = [f"617-555-{1000 + i}" for i in table.index]
    table["age"] = 20 + table.index % 60
    table["note"] = [f"{text} {last.upper()}, {first.upper()} seen today. {first} {last} "
                     f"called back at {phone}."
                     for text, first, last, phone in zip(table["text"], table["first_name"],
                                                         table["last_name"], table["phone"],
                                                         strict=True)]
    return table.drop(columns="text")


def _secrets(table: pd.DataFrame) -> list[str]:
    """Names, phone numbers and a stretch of every note's own text."""
    names = [*table["first_name"], *table["last_name"], *table["phone"]]
    return [*{n.lower() for n in names}, *(n[10:40].lower() for n in table["note"])]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    lowered = text.lower()
    return [s for s in secrets if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", lowered)]


@pytest.fixture(scope="module", params=[("logistic", 4), ("lightgbm", 2)],
                ids=["permutation", "tree"])
def notes_run(request, tmp_path_factory):
    model, diseases = request.param
    tmp = tmp_path_factory.mktemp("notes")
    table = _notes_with_identifiers(diseases)
    table.to_csv(tmp / "notes.csv", index=False)
    study = Study(task="diagnose", target="disease", id="mrn", notes=["note"],
                  identifiers=["first_name", "last_name", "phone"])
    run = train_run(tmp / "notes.csv", study, TrainConfig(models=[model], n_boot=100, cv=3),
                    tmp / "run")
    return table, tmp, run


@pytest.mark.slow
def test_no_name_from_the_identifier_columns_reaches_the_vocabulary(notes_run):
    table, _, run = notes_run
    model, _ = load_bundle(run)
    vocabulary = " ".join(model.pipeline[0].named_transformers_["note_0"].vectorizer_.vocabulary_)
    assert _leaks(vocabulary, _secrets(table)) == []
    assert "fever" in vocabulary or "skin" in vocabulary


@pytest.mark.slow
def test_the_bundle_holds_no_note(notes_run):
    table, _, run = notes_run
    model, _ = load_bundle(run)
    assert set(model.background["note"]) == {""}
    raw = (run / "model" / "model.joblib").read_bytes()
    with contextlib.suppress(zlib.error):  # joblib's compress=3 writes one zlib stream
        raw = zlib.decompress(raw)
    assert _leaks(raw.decode("latin-1"), _secrets(table)) == []


@pytest.mark.slow
def test_explanations_and_report_never_quote_a_note(notes_run):
    table, _, run = notes_run
    explanations = (run / "explanations.json").read_text()
    report = (run / "report.html").read_text()
    assert _leaks(explanations, _secrets(table)) == []
    assert _leaks(report, _secrets(table)) == []
    patients = json.loads(explanations)["patients"]
    notes = [f for p in patients for f in p["factors"] if f["feature"] == "note"]
    assert notes
    assert {f["value"] for f in notes} == {"(free text)"}
    assert any("note (free text) " in p["text"] for p in patients)
    assert "notes are empty (no note" in report


@pytest.mark.slow
def test_predict_explain_never_quotes_a_note(notes_run):
    table, tmp, run = notes_run
    new = table.drop(columns="disease").head(5)
    new.to_csv(tmp / "new.csv", index=False)
    out = predict_run(run, tmp / "new.csv", explain=True)
    assert out["explanation"].str.contains("note (free text)", regex=False).any()
    assert _leaks(out.to_csv(index=False), _secrets(new)) == []


@pytest.mark.slow
def test_the_report_of_an_older_run_does_not_quote_its_notes(notes_run, tmp_path):
    # runs trained before notes were withheld wrote them into explanations.json
    table, _, run = notes_run
    older = tmp_path / "run"
    shutil.copytree(run, older)
    content = json.loads((older / "explanations.json").read_text())
    for patient, note in zip(content["patients"], table["note"], strict=False):
        for factor in patient["factors"]:
            if factor["feature"] == "note":
                factor["value"] = note
        patient["text"] = patient["text"].replace("note (free text)", f"note = {note}")
    (older / "explanations.json").write_text(json.dumps(content))
    report = write_report(older).read_text()
    assert _leaks(report, _secrets(table)) == []
    assert "note (free text) " in report
