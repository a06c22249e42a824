"""Shared fixtures: small real tables and the shared data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True, scope="session")
def _permed_home(tmp_path_factory: pytest.TempPathFactory):
    """The session's integrity key and audit logs live in a temporary PERMED_HOME."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERMED_HOME", str(tmp_path_factory.mktemp("permed-home")))
        for name in ("PERMED_KEY", "PERMED_INTEGRITY_KEY", "PERMED_USER"):
            patch.delenv(name, raising=False)
        yield


POSTGRES = "PERMED_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL for this test process (from ``PERMED_TEST_DATABASE_URL``).

    Under pytest-xdist each worker gets a database of its own (``permed_test_gw0``...), created
    empty and dropped at the end, so two workers never share the service's tables.
    """
    url = os.environ.get(POSTGRES)
    if not url:
        pytest.skip(f"{POSTGRES} is not set: .ci/run starts a PostgreSQL and sets it")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield url
        return
    from psycopg import connect, sql
    from sqlalchemy.engine import make_url

    base = make_url(url)
    own = base.set(database=f"{base.database}_{worker}")
    name = sql.Identifier(own.database)
    with connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    yield own.render_as_string(hide_password=False)
    with connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


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


@pytest.fixture(scope="session")
def trust_run(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A diagnose run with actionable features, a sensitive attribute and the scorecard.

    400 synthetic patients: age, chol (monotone "decrease"), sbp, smoker (actionable: chol,
    sbp, smoker), sex (sensitive); logistic regression and the points scorecard compared.
    Returns the run directory and the feature table (without the target).
    """
    from permed.study import ColumnSpec, Study
    from permed.workflow import TrainConfig, train_run

    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({
        "age": rng.normal(60, 10, n).round(),
        "chol": rng.normal(230, 45, n).round(),
        "sbp": rng.normal(135, 18, n).round(),
        "smoker": rng.choice(["never", "former", "current"], n),
        "sex": rng.choice(["F", "M"], n),
    })
    logit = (0.07 * (frame["age"] - 60) + 0.03 * (frame["chol"] - 230)
             + 0.03 * (frame["sbp"] - 135) + 1.0 * (frame["smoker"] == "current"))
    frame["disease"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    tmp = tmp_path_factory.mktemp("trust")
    frame.to_csv(tmp / "cohort.csv", index=False)
    study = Study(task="diagnose", target="disease", sensitive=["sex"],
                  actionable=["chol", "sbp", "smoker"],
                  columns={"chol": ColumnSpec(monotone="decrease"),
                           "sbp": ColumnSpec(valid_range=(60, 250))})
    run = train_run(tmp / "cohort.csv", study,
                    TrainConfig(models=["logistic", "scorecard"], cv=3, n_boot=100),
                    tmp / "run")
    return run, frame.drop(columns="disease")


@pytest.fixture(scope="session")
def synthea_constant_features() -> list[str]:
    """The features of the shared Synthea COVID-19 bundles (``permed ingest fhir``) that hold
    one value for every patient, in the order the study lists them under ``drop`` (after
    ``deceased`` and ``marital_status``): one visit each, so every vital sign is counted once,
    and every respiratory virus but SARS-CoV-2 is negative."""
    counts = [f"{name}_count" for name in (
        "body_temperature_8310_5", "body_weight_29463_7", "diastolic_blood_pressure_8462_4",
        "heart_rate_8867_4", "oxygen_saturation_in_arterial_blood_2708_6",
        "respiratory_rate_9279_1", "systolic_blood_pressure_8480_6")]
    negative = [f"{name}_result" for name in (
        "adenovirus_a_b_c_d_e_dna_presence_in_res_94040_3",
        "human_metapneumovirus_rna_presence_in_re_92134_6",
        "influenza_virus_a_rna_presence_in_respir_92142_9",
        "influenza_virus_b_rna_presence_in_respir_92141_1",
        "parainfluenza_virus_1_rna_presence_in_re_92140_3",
        "parainfluenza_virus_2_rna_presence_in_re_92139_5",
        "parainfluenza_virus_3_rna_presence_in_re_92138_7",
        "respiratory_syncytial_virus_rna_presence_92131_2",
        "rhinovirus_rna_presence_in_respiratory_s_92130_4")]
    return counts + negative
