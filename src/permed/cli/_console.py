"""Console output for the CLI: rich progress bars (silenced by --quiet), notes, tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = ["RichProgress", "err", "metric_cell", "out"]

# Messages carry column names, paths and values ("[study]", "dose[mg]"): no markup is read in
# them. Colour comes from style= or rich Text.
out = Console(markup=False)
err = Console(stderr=True, markup=False)


class RichProgress:
    """Progress bars on standard error; nothing at all when ``quiet``."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    @contextmanager
    def step(self, label: str, total: int | None = None) -> Iterator[Any]:
        if self.quiet:
            yield lambda n=1: None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(label, total=total)
            try:
                yield lambda n=1: bar.advance(task, n)
            except BaseException:
                bar.remove_task(task)  # a failed step leaves no bar above its error message
                raise

    def note(self, message: str) -> None:
        if not self.quiet:
            err.print(message, style="yellow", highlight=False)


def metric_cell(entry: dict[str, Any] | None) -> str:
    """``0.93 (0.89-0.96)`` for a metric with a CI, ``0.93 ± 0.02`` for a CV summary."""
    if not entry:
        return "—"
    if "mean" in entry:
        mean, std = entry.get("mean"), entry.get("std")
        return "—" if mean is None else f"{mean:.3f} ± {std or 0:.3f}"
    value, low, high = entry.get("value"), entry.get("ci_low"), entry.get("ci_high")
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column)
    return t
