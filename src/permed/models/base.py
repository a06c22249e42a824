"""One vocabulary per task.

- diagnose: ``predict`` (class label) and ``predict_proba`` (one column per class);
- risk: ``predict`` (a risk score, higher = earlier event) and ``predict_survival_function``;
- treat: ``effect``, ``effect_interval`` and ``recommend``.

Every permed estimator follows the scikit-learn contract: ``__init__`` stores parameters,
``fit`` learns and returns ``self``, learned attributes end in ``_``.
"""

from __future__ import annotations

__all__ = ["DIAGNOSE_METHODS", "RISK_METHODS", "TREAT_METHODS"]

DIAGNOSE_METHODS = ("fit", "predict", "predict_proba")
RISK_METHODS = ("fit", "predict", "predict_survival_function")
TREAT_METHODS = ("fit", "effect", "effect_interval", "recommend")
