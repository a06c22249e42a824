"""A numeric column of a table to score that writes missing values as 'n/a' or '-': the error
names --missing (which predict and evaluate take), not only 'correct or leave them empty'."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.ingest import export_dataset
from permed.testing import run_permed as permed


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hint")
    export_dataset("breast_cancer", folder / "bc.csv")
    result = permed("train", folder / "bc.csv", "--target", "diagnosis", "--models", "logistic",
                    "--cv", "3", "--bootstrap", "100", "--quiet", "--out", folder / "run")
    assert result.returncode == 0, result.stderr
    return folder


def _site(folder, name, texts):
    frame = pd.read_csv(folder / "bc.csv").head(40).astype(object)
    for row, text in zip((2, 5), texts, strict=False):
        frame.loc[row, "mean radius"] = text
    frame.to_csv(folder / name, index=False)
    return folder / name


@pytest.mark.parametrize(("command", "extra"), [
    ("predict", []),
    ("predict", ["--batch-size", "20", "--out", "streamed.parquet"]),  # streamed
    ("evaluate", ["--out", "ev", "--bootstrap", "100", "--quiet"]),
])
def test_missing_value_spellings_name_the_missing_option(trained, command, extra):
    data = _site(trained, "site.csv", ["n/a", "-"])
    refused = permed(command, trained / "run", data, *extra, cwd=trained)
    assert refused.returncode == 1
    rows = 20 if "--batch-size" in extra else 40  # the partition's rows
    assert " ".join(refused.stderr.split()) == (
        f"error: column 'mean radius' must be numeric (as in training) but 2 of {rows} values are "
        "text (rows 3, 6; 'n/a' and '-', which mark missing values): correct the values or "
        "leave them empty; to read 'n/a' and '-' as missing (imputed), add --missing n/a,-")
    scored = permed(command, trained / "run", data, *extra, "--missing", "n/a,-", cwd=trained)
    assert scored.returncode == 0, scored.stderr


def test_a_spelling_with_a_space_is_quoted_for_the_shell(trained):
    refused = permed("predict", trained / "run", _site(trained, "spaced.csv", ["not done"]))
    assert " ".join(refused.stderr.split()).endswith(
        "to read 'not done' as missing (imputed), add --missing 'not done'")


def test_other_text_gets_no_missing_hint(trained):
    refused = permed("predict", trained / "run", _site(trained, "units.csv", ["12 mm"]))
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert said.endswith("correct the values or leave them empty")
    assert "--missing" not in said
