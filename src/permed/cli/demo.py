"""permed demo: every task end to end on bundled real data."""

from __future__ import annotations

from pathlib import Path

import typer

from permed.cli._console import RichProgress, err, out
from permed.cli.train import summarize_run
from permed.ingest import export_dataset, get_dataset
from permed.study import Study
from permed.workflow import TrainConfig, train_run

__all__ = ["demo"]

# (task, dataset): the demo's steps, in order.
_STEPS = [("diagnose", "breast_cancer")]


def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out", help="Folder for the demo runs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries."),
) -> None:
    """Run diagnose end to end on bundled data and print where the reports are.

    Example: permed demo --out demo-output
    """
    reports = []
    for task, name in _STEPS:
        dataset = get_dataset(name)
        data = export_dataset(name, out_dir / "data" / f"{name}.csv")
        roles = {k: v for k, v in dataset.roles.items() if k != "task"}
        study = Study(task=task, **{k: v for k, v in roles.items() if k in ("target", "sensitive")})
        if not quiet:
            err.rule(f"{task}: {dataset.title}")
        run_dir = train_run(data, study, TrainConfig(), out_dir / task, RichProgress(quiet),
                            command=f"permed train {data} --task {task} --target "
                                    f"{study.target} --out {out_dir / task}")
        if not quiet:
            summarize_run(run_dir)
        reports.append(run_dir / "report.html")
    out.print("reports:\n" + "\n".join(f"  {r}" for r in reports), highlight=False)
