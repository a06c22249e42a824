"""Stable gene selection: which genes an elastic-net keeps across resamples of the cohort.

With thousands of genes and dozens of patients, the genes one fit selects are partly chance:
a co-expressed gene could have been picked instead. Stability selection (Meinshausen and
Buhlmann, 2010) refits a sparse model on many half-samples and reports how often each gene is
selected; genes selected in most half-samples are the ones to read. The report lists them by
name with the class in which they are higher.

It runs on the development split only (the test split stays untouched) and describes the
cohort's signal; the model that predicts is the selected one of the comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit

from permed.engine import Engine, LocalEngine, Progress
from permed.preprocess import gene_pipeline
from permed.study import FittedSchema

__all__ = ["gene_stability"]

RESAMPLES = 30
SHOWN = 25
STABLE = 0.6  # selected in at least this share of half-samples


def _selected(task: tuple[np.ndarray, np.ndarray, int]) -> tuple[np.ndarray, np.ndarray]:
    """The genes one elastic-net fit on ``(X, y, seed)`` selects, and its coefficients."""
    X, y, seed = task
    # saga needs up to 3,416 passes on Golub's half-samples (15-19 patients, 1,000 genes): a
    # cap of 3,000 stopped 5 of 30 fits early, each printing scikit-learn's ConvergenceWarning
    model = LogisticRegression(l1_ratio=0.5, C=0.5, solver="saga", max_iter=20_000,
                               random_state=seed).fit(X, y)
    coef = model.coef_ if model.coef_.shape[0] > 1 else np.vstack([-model.coef_, model.coef_])
    return np.abs(coef).max(axis=0) > 0, coef


def gene_stability(features: pd.DataFrame, y: np.ndarray, schema: FittedSchema,
                   seed: int, engine: Engine | None = None, progress: Progress | None = None,
                   resamples: int = RESAMPLES) -> dict[str, Any]:
    """Selection frequency of each gene over elastic-net fits on stratified half-samples.

    Parameters
    ----------
    features : DataFrame
        The development split, coerced by ``schema``.
    y : ndarray of int
        Class indices into ``schema.classes``.
    schema : FittedSchema
    seed : int
    engine : Engine, optional
        Where the fits run (default: one after another in this process).
    progress : Progress, optional
    resamples : int

    Returns
    -------
    dict
        For ``metrics["genes"]``: the preprocessing, the method, and the most often selected
        genes with their frequency and the class in which they are higher.
    """
    genes = schema.genes
    preprocess = gene_pipeline().fit(features[genes])
    X = preprocess.transform(features[genes])
    kept = preprocess[:-2].get_feature_names_out(genes)
    counts = np.zeros(X.shape[1])
    signs = np.zeros((len(schema.classes), X.shape[1]))
    splitter = StratifiedShuffleSplit(resamples, train_size=0.5, random_state=seed)
    tasks = [(X[half], y[half], seed + k) for k, (half, _) in enumerate(splitter.split(X, y))]
    for chosen, coef in (engine or LocalEngine(1)).map(_selected, tasks, label="gene stability",
                                                        progress=progress):
        counts += chosen
        signs += coef
    frequency = counts / resamples
    order = np.argsort(-frequency, kind="stable")[:SHOWN]
    top = [{"gene": str(kept[j]), "frequency": round(float(frequency[j]), 3),
            "higher_in": str(schema.classes[int(np.argmax(signs[:, j]))]),
            "mean_coefficient": round(float(signs[:, j].max() / resamples), 4)}
           for j in order if frequency[j] > 0]
    return {
        "columns": len(genes),
        "kept_by_variance_filter": int(X.shape[1]),
        "log_transform": bool(preprocess.named_steps["log"].apply_log_),
        "method": (f"stability selection: elastic-net logistic (l1_ratio 0.5, C 0.5) on "
                   f"{resamples} stratified half-samples of the development split, after the "
                   "log transform and variance filter"),
        "resamples": resamples,
        "stable_threshold": STABLE,
        "stable_genes": int((frequency >= STABLE).sum()),
        "top": top,
    }
