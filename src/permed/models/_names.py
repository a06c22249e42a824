"""The message for a model name that no family has."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["unknown_model"]


def unknown_model(task: str, name: str, known: Iterable[str], more: str = "") -> str:
    """``--models: unknown <task> model 'x'; did you mean 'y'? available: ...``.

    Examples
    --------
    >>> unknown_model("diagnose", "logstic", ["logistic", "mlp"])
    "--models: unknown diagnose model 'logstic'; did you mean 'logistic'? available: logistic, mlp"
    """
    known = list(known)
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"--models: unknown {task} model '{name}'; {hint}available: {', '.join(known)}{more}"
