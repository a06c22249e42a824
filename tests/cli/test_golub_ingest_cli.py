"""permed ingest genes on the shipped Golub files, as the README shows it (their repeated
Affymetrix 'call' columns had been refused as duplicate column names)."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.testing import run_permed as permed
from permed.testing import shared_data

GOLUB = "golub_leukemia"


@pytest.mark.parametrize(("name", "samples", "aml"), [
    ("data_set_ALL_AML_train.csv", 38, 11),
    ("data_set_ALL_AML_independent.csv", 34, 14),
])
def test_the_documented_golub_example_reads_the_shipped_files(tmp_path, name, samples, aml):
    out = tmp_path / "golub.csv"
    result = permed("ingest", "genes", shared_data(f"{GOLUB}/{name}"), "--labels",
                    shared_data(f"{GOLUB}/actual.csv"), "--label-name", "ALL_AML",
                    "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{samples} samples x 7129 genes: ")
    table = pd.read_csv(out)
    assert table.shape == (samples, 1 + 7129)
    assert table.columns[0] == "ALL_AML"
    assert all(c.startswith("gene_") for c in table.columns[1:])
    assert not any(c.lower().startswith("gene_call") for c in table.columns)
    assert table["ALL_AML"].value_counts().to_dict() == {"ALL": samples - aml, "AML": aml}


def test_golub_rows_keep_their_labels_and_values(tmp_path):
    out = tmp_path / "golub.csv"
    result = permed("ingest", "genes", shared_data(f"{GOLUB}/data_set_ALL_AML_train.csv"),
                    "--labels", shared_data(f"{GOLUB}/actual.csv"), "--label-name", "ALL_AML",
                    "--keep-ids", "sample", "--out", out)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out).set_index("sample")
    # the file's sample columns run 1-27, 34-38, 28-33 (28-38 are AML)
    assert table.loc[1, ["ALL_AML", "gene_AFFX-BioB-5_at"]].tolist() == ["ALL", -214]
    assert table.loc[34, ["ALL_AML", "gene_AFFX-BioB-5_at"]].tolist() == ["AML", -20]
    assert table.index.tolist()[26:29] == [27, 34, 35]
