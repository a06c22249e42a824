"""Calibrated probabilities, conformal prediction sets, out-of-distribution flags."""

from permed.uncertainty._calibration import (
    CALIBRATION_METHODS,
    ProbabilityCalibrator,
    choose_calibration,
)
from permed.uncertainty._conformal import ConformalSets
from permed.uncertainty._ood import OutOfDistribution

__all__ = ["CALIBRATION_METHODS", "ConformalSets", "OutOfDistribution", "ProbabilityCalibrator",
           "choose_calibration"]
