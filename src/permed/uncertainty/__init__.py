"""Calibrated probabilities, conformal prediction, out-of-distribution flags, abstention."""

from permed.uncertainty._calibration import (
    CALIBRATION_METHODS,
    ProbabilityCalibrator,
    choose_calibration,
)

__all__ = ["CALIBRATION_METHODS", "ProbabilityCalibrator", "choose_calibration"]
