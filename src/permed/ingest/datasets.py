"""Bundled real datasets, each with its column roles preset.

They ship inside scikit-learn and scikit-survival, so they work offline and need no copy here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from permed.exceptions import DataError

__all__ = ["Dataset", "export_dataset", "get_dataset", "list_datasets", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """A bundled dataset: how to load it, where it came from, and its roles."""

    name: str
    title: str
    source: str
    loader: Callable[[], pd.DataFrame]
    roles: dict[str, object] = field(default_factory=dict)

    def study(self, task: str):
        """A :class:`~permed.study.Study` for ``task`` with this dataset's roles."""
        from permed.study import Study

        roles = {k: v for k, v in self.roles.items() if k != "task"}
        if task != "diagnose":
            roles.pop("target", None)
        if task != "treat":
            roles.pop("treatment", None)
            roles.pop("outcome", None)
        if task == "diagnose":
            roles.pop("time", None)
            roles.pop("event", None)
        return Study(task=task, **roles)

    @property
    def tasks(self) -> list[str]:
        """The tasks the preset roles support."""
        tasks = []
        if "target" in self.roles:
            tasks.append("diagnose")
        if "time" in self.roles:
            tasks.append("risk")
        if "treatment" in self.roles and "outcome" in self.roles:
            tasks.append("treat")
        return tasks


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    # scikit-learn codes 0 = malignant, 1 = benign; name the labels so the positive class is
    # the disease.
    frame["diagnosis"] = bunch.target.map({0: "malignant", 1: "benign"}).astype(str)
    return frame


def _survival(loader_name: str, event: str, time: str, **kwargs: object) -> pd.DataFrame:
    import sksurv.datasets as sd

    features, outcome = getattr(sd, loader_name)(**kwargs)
    frame = features.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    frame[time] = outcome[time]
    frame[event] = outcome[event].astype(int)
    return frame


def _flchain() -> pd.DataFrame:
    frame = _survival("load_flchain", "death", "futime")
    # Three people died on the day their serum was sampled (futime 0). A survival model
    # needs follow-up > 0, so, as is usual for this cohort, they count half a day; dropping
    # them would hide three early deaths.
    frame.loc[frame["futime"] == 0, "futime"] = 0.5
    return frame


_REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "breast_cancer",
            "Breast cancer Wisconsin (diagnostic): 569 tumours x 30 image features",
            "scikit-learn sklearn.datasets.load_breast_cancer (UCI ML repository, Wolberg et al.)",
            _breast_cancer,
            {"task": "diagnose", "target": "diagnosis"},
        ),
        Dataset(
            "gbsg2",
            "German Breast Cancer Study Group 2: 686 patients, recurrence-free survival (days)",
            "scikit-survival sksurv.datasets.load_gbsg2 (Schumacher et al. 1994)",
            lambda: _survival("load_gbsg2", "cens", "time"),
            {"task": "risk", "time": "time", "event": "cens"},
        ),
        Dataset(
            "whas500",
            "Worcester Heart Attack Study: 500 patients, survival after MI (days)",
            "scikit-survival sksurv.datasets.load_whas500 (Hosmer, Lemeshow & May 2008)",
            lambda: _survival("load_whas500", "fstat", "lenfol"),
            {"task": "risk", "time": "lenfol", "event": "fstat", "sensitive": ["gender"]},
        ),
        Dataset(
            "aids",
            "AIDS Clinical Trials Group 320: 1,151 patients randomized to two regimens",
            "scikit-survival sksurv.datasets.load_aids (Hosmer, Lemeshow & May 2008)",
            lambda: _survival("load_aids", "censor", "time", endpoint="aids"),
            # treat outcome: censor = 1 when an AIDS-defining event or death was observed
            # during the trial's follow-up (at most 364 days, ended for both arms at once when
            # the trial stopped early), so lower is better; time is follow-up, never a feature
            {"task": "treat", "time": "time", "event": "censor", "treatment": "tx",
             "outcome": "censor", "drop": ["txgrp"], "sensitive": ["sex", "raceth"]},
        ),
        Dataset(
            "flchain",
            "Serum free light chain cohort (Olmsted County): 7,874 people, all-cause death "
            "(days; the 3 deaths on day 0 count half a day)",
            "scikit-survival sksurv.datasets.load_flchain (Dispenzieri et al. 2012)",
            _flchain,
            {"task": "risk", "time": "futime", "event": "death", "drop": ["chapter"],
             "sensitive": ["sex"]},
        ),
    )
}


def list_datasets() -> list[Dataset]:
    """All bundled datasets, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_dataset(name: str) -> Dataset:
    """Look a dataset up by name; an unknown name suggests the closest one."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise DataError(
        f"no bundled dataset named '{name}': {hint}available: {', '.join(sorted(_REGISTRY))} "
        "(see permed datasets list)"
    )


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset as one table (features, then outcome columns)."""
    return get_dataset(name).loader()


def export_dataset(name: str, path: str | Path) -> Path:
    """Write a bundled dataset as CSV; its diagnose target, when it has one, is the last column."""
    dataset = get_dataset(name)
    frame = dataset.loader()
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"export file '{path}' must end in .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
