"""Training settings: everything needed to reproduce a run, recorded in manifest.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from permed.exceptions import PermedError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """How to train.

    Parameters
    ----------
    models : list of str
        Model families to compare (empty: the task's defaults).
    cv : int
        Folds of the stratified cross-validation on the development split.
    test_size : float
        Share of patients held out and evaluated once.
    seed : int
        Seed for splits, models, bootstrap.
    budget : float
        Seconds of Optuna tuning shared by the models (0: no tuning).
    calibration : {"auto", "none", "sigmoid", "isotonic"}
    threshold_rule : {"youden", "target_sensitivity"}
    target_sensitivity : float, optional
    positive_class : str, optional
        The class counted as positive in binary metrics (default: the second in sorted order).
    n_boot : int
        Bootstrap replicates for confidence intervals.
    coverage : float
        Target coverage of the conformal prediction sets (diagnose).
    clip : bool
        Clip numeric features to their 0.5%-99.5% quantiles (learned in each fold).
    device : str
        Torch device for deep models ("auto", "cpu", "cuda").
    cluster : str, optional
        Dask scheduler address for the fan-out work.
    horizons : list of float
        Risk: times at which absolute risk is reported (default: quartiles of event times).
    event_value : str, optional
        Risk: the value of the event column that means "the event happened" (default 1/True).
    higher_is_better : bool
        Treat: whether a larger outcome is better for the patient.
    direction_given : bool
        Treat: ``higher_is_better`` was stated by the user (``--higher-is-better`` or
        ``--lower-is-better``), not left at its default; a binary outcome's modelled level is
        warned about only when it was not.
    randomized : bool
        Treat: assignment was randomized (propensities are the arm shares).
    trim : float
        Treat: drop patients whose propensity for any arm is below this (0 = keep all).
    encrypt : bool
        Encrypt predictions.csv and the model bundle at rest with the data key (AES-256-GCM).
    image_settings : dict
        Images: parameters of :class:`permed.models.deep.CNNClassifier` (``max_epochs``,
        ``width``, ``max_seconds``...) overriding its defaults.
    """

    models: list[str] = field(default_factory=list)
    cv: int = 5
    test_size: float = 0.2
    seed: int = 42
    budget: float = 0.0
    calibration: str = "auto"
    threshold_rule: str = "youden"
    target_sensitivity: float | None = None
    positive_class: str | None = None
    n_boot: int = 1000
    coverage: float = 0.95
    clip: bool = False
    device: str = "auto"
    cluster: str | None = None
    horizons: list[float] = field(default_factory=list)
    event_value: str | None = None
    higher_is_better: bool = True
    direction_given: bool = False
    randomized: bool = False
    trim: float = 0.0
    encrypt: bool = False
    image_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target_sensitivity is not None:
            self.threshold_rule = "target_sensitivity"
        problems = [message for failed, message in self._checks() if failed]
        if problems:
            raise PermedError(problems[0])

    def _checks(self) -> list[tuple[bool, str]]:
        sensitivity = self.target_sensitivity
        return [
            (self.cv < 2, f"--cv must be at least 2 folds, got {self.cv}"),
            (not 0.05 <= self.test_size <= 0.5,
             f"--test-size must be between 0.05 and 0.5 (a share of patients), got "
             f"{self.test_size}"),
            (self.calibration not in ("auto", "none", "sigmoid", "isotonic"),
             f"--calibration '{self.calibration}' unknown; use auto, none, sigmoid or isotonic"),
            (sensitivity is not None and not 0.0 < sensitivity < 1.0,
             f"--target-sensitivity must be between 0 and 1, got {sensitivity}"),
            (self.budget < 0, f"--budget must be 0 or more seconds, got {self.budget}"),
            (any(h <= 0 for h in self.horizons),
             f"--horizons must be positive times, got {self.horizons}"),
            (not 0.0 <= self.trim < 0.5,
             f"--trim must be a propensity between 0 and 0.5, got {self.trim}"),
            (not 0.5 <= self.coverage < 1.0,
             f"--coverage must be in [0.5, 1), got {self.coverage}"),
            (self.n_boot < 100, f"--bootstrap needs at least 100 replicates, got {self.n_boot}"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
