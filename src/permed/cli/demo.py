"""permed demo: every task end to end on bundled real data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from permed.cli._console import RichProgress, err, out
from permed.cli.train import summarize_run
from permed.ingest import export_dataset, get_dataset
from permed.workflow import TrainConfig, train_run

__all__ = ["demo"]

# (task, dataset, extra training settings): the demo's steps, in order.
_STEPS: list[tuple[str, str, dict[str, Any]]] = [("diagnose", "breast_cancer", {})]
# risk: GBSG2 recurrence-free survival at 1, 3 and 5 years (3 folds, no DeepSurv: demo budget)
_STEPS.append(("risk", "gbsg2", {"horizons": [365, 1095, 1825], "cv": 3, "n_boot": 200,
                                 "models": ["coxph", "random_survival_forest",
                                            "gradient_boosting", "ensemble"]}))
# treat: ACTG 320 randomized IDV vs control; outcome = AIDS or death during follow-up
_STEPS.append(("treat", "aids", {"higher_is_better": False, "randomized": True, "cv": 3,
                                 "models": ["t_learner", "causal_forest"], "n_boot": 200}))


def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out", help="Folder for the demo runs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries."),
) -> None:
    """Run diagnose, risk and treat end to end on bundled data and print where the reports are.

    Example: permed demo --out demo-output
    """
    reports = []
    for task, name, settings in _STEPS:
        dataset = get_dataset(name)
        data = export_dataset(name, out_dir / "data" / f"{name}.csv")
        study = dataset.study(task)
        if not quiet:
            err.rule(f"{task}: {dataset.title}")
        run_dir = train_run(data, study, TrainConfig(**settings), out_dir / task,
                            RichProgress(quiet), command=f"permed demo ({task} on {name})")
        if not quiet:
            summarize_run(run_dir)
        reports.append(run_dir / "report.html")
    out.print("reports:\n" + "\n".join(f"  {r}" for r in reports), highlight=False)
