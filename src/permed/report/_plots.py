"""Plots of the report as inline PNG strings (``data:image/png;base64,...``).

Figures are drawn on the Agg canvas directly (``matplotlib.figure.Figure`` +
``FigureCanvasAgg``), never through ``pyplot``: no GUI backend is touched, no global figure
registry fills up in a long-running service, and each figure is released once encoded.
Curves are computed with scikit-learn from ``predictions.csv``; nothing here reads files.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

__all__ = [
    "calibration_plot",
    "confusion_plot",
    "decision_curve_plot",
    "net_benefit",
    "precision_recall_plot",
    "roc_plot",
]

_SIZE = (4.6, 3.9)
_DPI = 100
_GREY = "#888888"


def _new_figure(size: tuple[float, float] = _SIZE, fixed: bool = True) -> Figure:
    # fixed margins suit the curve plots (known labels) and halve the drawing time;
    # the confusion matrix has labels of any length and needs the layout engine
    fig = Figure(figsize=size, dpi=_DPI, layout=None if fixed else "constrained")
    if fixed:
        fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.92, hspace=0.08)
    FigureCanvasAgg(fig)
    return fig


def _to_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    try:
        # no "Software" metadata: the same run gives byte-identical images
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        fig.clear()
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _one_vs_rest(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str],
                 positive: str | None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(class, is-that-class, its probability) for each class with both outcomes present."""
    if len(classes) == 2:
        positive = positive if positive in classes else classes[1]
        wanted = [classes.index(positive)]
    else:
        wanted = list(range(len(classes)))
    for k in wanted:
        y_bin = (y_true == classes[k]).astype(int)
        if 0 < y_bin.sum() < len(y_bin):
            yield classes[k], y_bin, proba[:, k]


def _legend_label(label: str, classes: Sequence[str], value: float, name: str) -> str:
    prefix = f"class {label} vs rest, " if len(classes) > 2 else ""
    return f"{prefix}{name} {value:.2f}"


def _square_axes(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)


def roc_plot(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str],
             positive: str | None = None) -> str:
    """ROC curve of the positive class, or one-vs-rest curves for more than two classes.

    Parameters
    ----------
    y_true : ndarray of str, shape (n,)
        True labels.
    proba : ndarray, shape (n, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : sequence of str
        The class labels.
    positive : str, optional
        The positive class of a binary task (default: the second class).

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    for label, y_bin, p in _one_vs_rest(y_true, proba, classes, positive):
        fpr, tpr, _ = roc_curve(y_bin, p)
        ax.plot(fpr, tpr, lw=1.8, label=_legend_label(label, classes, auc(fpr, tpr), "AUROC"))
    ax.plot([0, 1], [0, 1], ls="--", color=_GREY, lw=1, label="chance")
    _square_axes(ax, "1 \u2212 specificity (false-positive rate)", "Sensitivity",
                 "ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return _to_data_uri(fig)


def precision_recall_plot(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str],
                          positive: str | None = None) -> str:
    """Precision-recall curve(s), with the prevalence as the no-skill line.

    Parameters and return value as :func:`roc_plot`.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    for label, y_bin, p in _one_vs_rest(y_true, proba, classes, positive):
        precision, recall, _ = precision_recall_curve(y_bin, p)
        line = ax.step(recall, precision, where="post", lw=1.8, label=_legend_label(
            label, classes, average_precision_score(y_bin, p), "AUPRC"))
        ax.axhline(y_bin.mean(), ls="--", lw=1, color=line[0].get_color(), alpha=0.6)
    _square_axes(ax, "Sensitivity (recall)", "Positive predictive value (precision)",
                 "Precision\u2013recall curve (dashed: prevalence)")
    ax.legend(loc="lower left", fontsize=8)
    return _to_data_uri(fig)


def calibration_plot(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str],
                     positive: str | None = None, n_bins: int = 10) -> str:
    """Reliability diagram: observed share against mean predicted probability per bin.

    A histogram of the predicted probabilities sits below (binary tasks), so sparse bins can
    be told from well-estimated ones.

    Parameters
    ----------
    y_true, proba, classes, positive
        As :func:`roc_plot`.
    n_bins : int, default 10
        Equal-width probability bins.

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    curves = list(_one_vs_rest(y_true, proba, classes, positive))
    fig = _new_figure((_SIZE[0], _SIZE[1] + 0.9))
    fig.subplots_adjust(bottom=0.1, top=0.94)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], ls="--", color=_GREY, lw=1, label="perfect calibration")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for label, y_bin, p in curves:
        observed, predicted = calibration_curve(y_bin, p, n_bins=n_bins, strategy="uniform")
        name = f"class {label}" if len(classes) > 2 else "model"
        line = top.plot(predicted, observed, marker="o", ms=4, lw=1.5, label=name)
        bottom.hist(p, bins=edges, histtype="step", lw=1.3, color=line[0].get_color())
    _square_axes(top, "", "Observed share with the outcome", "Calibration (reliability)")
    top.legend(loc="upper left", fontsize=8)
    bottom.set(xlabel="Predicted probability", ylabel="Patients")
    bottom.grid(alpha=0.3)
    return _to_data_uri(fig)


def net_benefit(y_bin: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Net benefit of treating patients with ``p >= t``: TP/n − FP/n · t/(1 − t).

    Parameters
    ----------
    y_bin : ndarray of {0, 1}, shape (n,)
    p : ndarray, shape (n,)
        Predicted probability of the positive class.
    thresholds : ndarray, shape (m,)
        Threshold probabilities in (0, 1).

    Returns
    -------
    ndarray, shape (m,)

    Examples
    --------
    >>> net_benefit(np.array([1, 0]), np.array([0.9, 0.2]), np.array([0.5]))
    array([0.5])
    """
    flagged = p[None, :] >= thresholds[:, None]
    n = len(y_bin)
    true_pos = (flagged & (y_bin[None, :] == 1)).sum(axis=1) / n
    false_pos = (flagged & (y_bin[None, :] == 0)).sum(axis=1) / n
    return true_pos - false_pos * thresholds / (1 - thresholds)


def decision_curve_plot(y_bin: np.ndarray, p: np.ndarray, threshold: float | None = None) -> str:
    """Decision curve: net benefit of the model, of treating all and of treating none.

    Parameters
    ----------
    y_bin : ndarray of {0, 1}, shape (n,)
        1 for patients with the outcome (the positive class).
    p : ndarray, shape (n,)
        Predicted probability of the positive class.
    threshold : float, optional
        The model's decision threshold, marked with a vertical line.

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    prevalence = float(np.mean(y_bin))
    model = net_benefit(y_bin, p, thresholds)
    treat_all = prevalence - (1 - prevalence) * thresholds / (1 - thresholds)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(thresholds, model, lw=1.8, label="model")
    ax.plot(thresholds, treat_all, lw=1.2, color="#d62728", label="treat all")
    ax.axhline(0.0, lw=1.2, color="black", label="treat none")
    if threshold is not None:
        ax.axvline(threshold, ls=":", color=_GREY, lw=1.2, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), ylim=(-0.05, max(prevalence, 0.05) * 1.15),
           xlabel="Threshold probability", ylabel="Net benefit")
    ax.set_title("Decision curve", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _to_data_uri(fig)


def confusion_plot(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Confusion matrix heat map: actual class in rows, predicted class in columns.

    Parameters
    ----------
    labels : sequence of str
        Class labels, in the order of the rows and columns.
    matrix : array-like of int, shape (k, k)
        Counts of patients.

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    counts = np.asarray(matrix, dtype=float)
    k = len(labels)
    fig = _new_figure((max(3.6, 1.1 * k + 1.8), max(3.2, 1.0 * k + 1.5)), fixed=False)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0)
    high = counts.max() / 2 if counts.size else 0
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{n:.0f}", ha="center", va="center", fontsize=11,
                color="white" if n > high else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="Predicted", ylabel="Actual")
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels)
    ax.set_title("Confusion matrix (test patients)", fontsize=11)
    return _to_data_uri(fig)
