"""Classification metrics with stratified bootstrap confidence intervals.

The functions here produce the ``test``, ``cv``, ``per_class`` and ``confusion_matrix``
entries of ``metrics.json`` (see ``docs/run-directory.md``).
"""

from permed.evaluate._bootstrap import bootstrap_ci, bootstrap_dict, bootstrap_many
from permed.evaluate._cautions import (
    calibration_warning,
    cautions,
    chance_warning,
    counts_in_test,
    miscalibration,
    small_test_warning,
)
from permed.evaluate.classification import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    PER_CLASS_METRICS,
    calibration_slope_intercept,
    classification_report,
    cv_summary,
    expected_calibration_error,
    net_benefit,
    point_metrics,
    threshold_for_sensitivity,
    youden_threshold,
)

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "PER_CLASS_METRICS",
    "bootstrap_ci",
    "bootstrap_dict",
    "bootstrap_many",
    "calibration_slope_intercept",
    "calibration_warning",
    "cautions",
    "chance_warning",
    "counts_in_test",
    "classification_report",
    "cv_summary",
    "expected_calibration_error",
    "miscalibration",
    "net_benefit",
    "point_metrics",
    "small_test_warning",
    "threshold_for_sensitivity",
    "youden_threshold",
]
