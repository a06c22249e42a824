"""The protocols that turn a table into a validated run directory, and use one."""

from permed.workflow._apply import evaluate_run, predict_run, write_table
from permed.workflow._config import TrainConfig
from permed.workflow._fitted import DiagnoseModel
from permed.workflow._result import RunResult
from permed.workflow._run import train_run, validated_study

__all__ = ["DiagnoseModel", "RunResult", "TrainConfig", "evaluate_run", "predict_run",
           "train_run", "validated_study", "write_table"]
