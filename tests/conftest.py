"""Shared fixtures: small real tables and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present (the shared data folder sits beside the clone in CI)")
    return path


@pytest.fixture
def breast_cancer_csv(tmp_path: Path) -> Path:
    from permed.ingest import export_dataset

    return export_dataset("breast_cancer", tmp_path / "bc.csv")


@pytest.fixture
def small_cohort() -> pd.DataFrame:
    """200 synthetic patients: numeric, categorical, id, sensitive, binary target."""
    rng = np.random.default_rng(0)
    n = 200
    age = rng.normal(60, 10, n).round()
    chol = rng.normal(220, 40, n).round()
    sex = rng.choice(["F", "M"], n)
    smoker = rng.choice(["never", "former", "current"], n)
    logit = 0.08 * (age - 60) + 0.02 * (chol - 220) + (smoker == "current") * 1.0
    disease = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"patient_id": [f"P{i:04d}" for i in range(n)], "age": age,
                         "chol": chol, "sex": sex, "smoker": smoker, "disease": disease})
