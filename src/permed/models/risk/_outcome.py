"""Survival outcomes inside permed: scikit-survival's structured arrays.

A survival outcome is a follow-up time and an event indicator per patient. permed passes it
around as scikit-survival's structured array (``sksurv.util.Surv.from_arrays``), with the
fields ``event`` (bool) and ``time`` (float), so every scikit-survival function accepts it as
it is.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sksurv.util import Surv

from permed.exceptions import PermedError

__all__ = ["split_survival_y", "survival_y"]


def survival_y(time: Any, event: Any) -> np.ndarray:
    """Build the structured survival outcome of scikit-survival.

    Parameters
    ----------
    time : array-like of shape (n_samples,)
        Follow-up time: the time of the event, or of the last contact for a censored patient.
    event : array-like of shape (n_samples,)
        True (or 1) where the event was observed, False (or 0) where the patient was censored.

    Returns
    -------
    ndarray of shape (n_samples,)
        A structured array with fields ``event`` (bool) and ``time`` (float64).

    Examples
    --------
    >>> y = survival_y([5.0, 8.0], [1, 0])
    >>> y["time"].tolist(), y["event"].tolist()
    ([5.0, 8.0], [True, False])
    """
    return Surv.from_arrays(event=np.asarray(event, dtype=bool),
                            time=np.asarray(time, dtype=np.float64))


def _from_structured(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = y.dtype.names or ()
    kinds = [y.dtype[name].kind for name in names]
    if len(names) != 2 or "b" not in kinds:
        raise PermedError(
            f"a structured survival y needs two fields, a boolean event and a numeric time "
            f"(as sksurv.util.Surv.from_arrays builds), got fields {list(names)}")
    event_field = names[kinds.index("b")]
    time_field = next(name for name in names if name != event_field)
    return y[time_field].astype(np.float64), y[event_field].astype(bool)


def _from_plain(y: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected: it is read "
                      "as event times (every patient has the event)", DataConversionWarning,
                      stacklevel=4)
        values = values.ravel()
    if values.ndim != 1:
        raise PermedError(
            f"y has shape {values.shape}: pass a structured survival outcome "
            "(sksurv.util.Surv.from_arrays(event, time)) or a 1-D array of event times")
    if values.dtype.kind == "c":
        raise PermedError("Complex data not supported: y holds complex numbers; follow-up "
                          "times are real numbers")
    try:
        time = values.astype(np.float64)
    except (TypeError, ValueError):
        raise PermedError(
            "y holds values that are not numbers: pass a structured survival outcome "
            "(sksurv.util.Surv.from_arrays(event, time)) or a 1-D array of event times"
        ) from None
    return time, np.ones(len(time), dtype=bool)


def split_survival_y(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Time and event arrays of a survival outcome, checked.

    Parameters
    ----------
    y : structured array or array-like of shape (n_samples,)
        A structured array with a boolean event field and a numeric time field (what
        :func:`survival_y` and ``sksurv.util.Surv.from_arrays`` build), or a plain 1-D array of
        times, read as times of observed events (nobody censored).

    Returns
    -------
    time : ndarray of float64
    event : ndarray of bool

    Raises
    ------
    ValueError
        If ``y`` is None, has the wrong shape, holds non-finite or negative times, or has no
        event.
    """
    if y is None:
        raise PermedError("this survival estimator requires y to be passed, but the target y "
                          "is None: pass sksurv.util.Surv.from_arrays(event, time)")
    if isinstance(y, np.ndarray) and y.dtype.names:
        time, event = _from_structured(y)
    else:
        time, event = _from_plain(y)
    if not np.all(np.isfinite(time)):
        raise PermedError(f"y has {int((~np.isfinite(time)).sum())} missing or infinite times: "
                          "every patient needs a follow-up time")
    if np.any(time < 0):
        raise PermedError(f"y has {int((time < 0).sum())} negative times (min {time.min():g}): "
                          "follow-up times start at 0")
    if len(event) and not event.any():
        raise PermedError("y has no event (every patient is censored): a survival model needs "
                          "observed events to learn from")
    return time, event
