"""Out-of-distribution flags: is this patient unlike the patients the model learned from?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

__all__ = ["OutOfDistribution"]


class OutOfDistribution:
    """An isolation forest on the model's preprocessed features, plus the features to name.

    A patient is flagged when their isolation score is below the ``quantile`` of the
    development patients' scores (by default the 1% most isolated). The reason names the
    numeric features furthest from the development median, in robust z-scores (IQR units).

    Parameters
    ----------
    quantile : float
        Share of development patients that would be flagged.
    seed : int
    """

    def __init__(self, quantile: float = 0.01, seed: int = 0) -> None:
        self.quantile = quantile
        self.seed = seed

    def fit(self, transformed: np.ndarray, numeric: pd.DataFrame) -> OutOfDistribution:
        """Fit on the preprocessed development matrix and the raw numeric features."""
        self.forest_ = IsolationForest(n_estimators=200, random_state=self.seed).fit(transformed)
        self.cutoff_ = float(np.quantile(self.forest_.score_samples(transformed), self.quantile))
        self.median_ = numeric.median()
        iqr = numeric.quantile(0.75) - numeric.quantile(0.25)
        self.scale_ = iqr.where(iqr > 0, numeric.std()).replace(0, 1.0).fillna(1.0)
        return self

    def flag(self, transformed: np.ndarray) -> np.ndarray:
        """True where a patient is more isolated than the cutoff."""
        return self.forest_.score_samples(transformed) < self.cutoff_

    def reasons(self, numeric: pd.DataFrame, top: int = 2) -> list[str]:
        """Per patient, the numeric features furthest from the development median."""
        z = ((numeric - self.median_) / self.scale_).abs()
        texts = []
        for _, row in z.iterrows():
            largest = row.dropna().sort_values(ascending=False).head(top)
            texts.append(", ".join(f"{name} ({value:.1f} IQR from median)"
                                   for name, value in largest.items()))
        return texts
