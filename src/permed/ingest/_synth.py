"""A synthetic patient cohort with known mechanisms, for scale tests and method checks.

Every outcome is drawn from a stated model of the features, so a method's estimates can be
compared with the truth: the diagnosis from a logistic model (with a non-linear age term and an
interaction), time to event from a Weibull proportional-hazards model with uniform censoring,
and a treatment whose assignment depends on age and blood pressure (confounded, as in
observational data) with a heterogeneous effect on the outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synthetic_cohort"]

_REGIONS = np.array(["north", "south", "east", "west", "centre"])
_SMOKING = np.array(["never", "former", "current"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def synthetic_cohort(rows: int, seed: int = 0, truth: bool = False,
                     missing: float = 0.05) -> pd.DataFrame:
    """Draw ``rows`` patients.

    Parameters
    ----------
    rows : int
        Number of patients.
    seed : int
    truth : bool
        Add the true quantities: ``p_disease``, ``risk_score``, ``propensity``, ``mu0``, ``mu1``
        and ``true_effect`` (never use them as features).
    missing : float
        Share of values removed at random from the laboratory columns.

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, demographics, vitals, labs, ``disease`` (diagnose target), ``time`` and
        ``event`` (risk), ``treatment`` (0/1) and ``outcome`` (treat; lower is better: systolic
        blood pressure at follow-up).

    Examples
    --------
    >>> synthetic_cohort(5, seed=1).shape
    (5, 16)
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(60, 12, rows), 18, 95).round()
    sex = rng.choice(np.array(["F", "M"]), rows)
    male = (sex == "M").astype(float)
    bmi = np.clip(rng.normal(27 + 0.5 * male, 4.5, rows), 15, 60).round(1)
    sbp = np.clip(rng.normal(128 + 0.4 * (age - 60) + 0.8 * (bmi - 27), 15, rows), 80, 230).round()
    chol = np.clip(rng.normal(200 + 0.5 * (age - 60), 38, rows), 90, 400).round()
    hba1c = np.clip(rng.lognormal(np.log(5.6) + 0.01 * (bmi - 27), 0.12, rows), 4, 14).round(1)
    creatinine = np.clip(rng.lognormal(np.log(0.9) + 0.1 * male, 0.25, rows), 0.3, 8).round(2)
    smoker = rng.choice(_SMOKING, rows, p=[0.55, 0.28, 0.17])
    current = (smoker == "current").astype(float)
    region = rng.choice(_REGIONS, rows)
    comorbidities = rng.poisson(np.exp(-0.5 + 0.025 * (age - 60)), rows)

    z_age = (age - 60) / 12
    linear = (-1.2 + 0.8 * z_age + 0.35 * z_age**2 + 0.6 * current + 0.02 * (sbp - 128)
              + 0.8 * (hba1c - 5.6) + 0.3 * male * z_age + 0.15 * comorbidities)
    p_disease = _sigmoid(linear)
    disease = (rng.random(rows) < p_disease).astype(int)

    risk_score = (0.6 * z_age + 0.5 * current + 0.015 * (sbp - 128) + 0.4 * (creatinine - 0.9)
                  + 0.2 * comorbidities)
    scale, shape = 3000.0, 1.3  # Weibull baseline, in days
    event_time = scale * (-np.log(rng.random(rows)) / np.exp(risk_score)) ** (1 / shape)
    censor_time = rng.uniform(365, 3650, rows)
    time = np.minimum(event_time, censor_time).round().clip(1)
    event = (event_time <= censor_time).astype(int)

    propensity = _sigmoid(-0.3 + 0.5 * z_age + 0.02 * (sbp - 128))
    treatment = (rng.random(rows) < propensity).astype(int)
    true_effect = -8.0 - 4.0 * z_age + 5.0 * current  # mmHg; negative = lowers blood pressure
    mu0 = sbp - 2.0 + 0.1 * (bmi - 27)
    mu1 = mu0 + true_effect
    outcome = (np.where(treatment == 1, mu1, mu0) + rng.normal(0, 6, rows)).round(1)

    frame = pd.DataFrame({
        "patient_id": [f"S{i:08d}" for i in range(rows)], "age": age, "sex": sex, "bmi": bmi,
        "sbp": sbp, "chol": chol, "hba1c": hba1c, "creatinine": creatinine, "smoker": smoker,
        "region": region, "comorbidities": comorbidities, "disease": disease, "time": time,
        "event": event, "treatment": treatment, "outcome": outcome})
    for column in ("chol", "hba1c", "creatinine"):
        frame.loc[rng.random(rows) < missing, column] = np.nan
    if truth:
        frame = frame.assign(p_disease=p_disease, risk_score=risk_score, propensity=propensity,
                             mu0=mu0, mu1=mu1, true_effect=true_effect)
    return frame
