"""The engine: same results in-process and on a real Dask LocalCluster; failures named; lost
workers' tasks retried."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permed.engine import EngineTaskError, LocalEngine
from permed.study import Study
from permed.workflow import TrainConfig, train_run

distributed = pytest.importorskip("dask.distributed", reason="needs the 'distributed' extra")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


def _square(x: int) -> int:
    return x * x


def _fails_on_table(task: tuple) -> None:
    raise ValueError("bad")


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("bad value")
    return x


def _dies_once(args: tuple[int, str]) -> int:
    """Kill this worker process the first time any task runs (a marker file remembers)."""
    x, marker = args
    if not os.path.exists(marker):
        Path(marker).write_text("killed")
        os._exit(1)
    return x * 10


def _holds_memory(x: int) -> int:
    """Keep 320 MB alive in this worker process (on ``sys``, which outlives every task)."""
    sys.__dict__.setdefault("_permed_test_kept", []).append(np.ones(40_000_000))
    time.sleep(1.1)  # loky checks a worker's memory at most once a second
    return x


def test_a_replaced_worker_loses_no_task_and_prints_no_warning():
    # loky replaces a worker whose memory grew by 300 MB, and warns about it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert LocalEngine(2).map(_holds_memory, range(6)) == list(range(6))
    assert [str(w.message) for w in caught if "worker stopped" in str(w.message)] == []


def test_local_engine_keeps_item_order():
    assert LocalEngine(2).map(_square, range(10)) == [x * x for x in range(10)]


def test_a_failed_task_is_named_by_its_parameters():
    with pytest.raises(EngineTaskError, match=r"squares task \(x=3\) failed: ValueError: bad"):
        LocalEngine(1).map(_fails_on_three, range(5), label="squares",
                           describe=lambda x: f"x={x}")


def test_cluster_training_gives_the_same_metrics_as_in_process(cluster, breast_cancer_csv,
                                                                tmp_path):
    study = Study(task="diagnose", target="diagnosis")
    settings = {"models": ["logistic", "lightgbm"], "cv": 2, "n_boot": 100}
    local = train_run(breast_cancer_csv, study, TrainConfig(**settings), tmp_path / "local")
    remote = train_run(breast_cancer_csv, study,
                       TrainConfig(**settings, cluster=cluster.scheduler_address),
                       tmp_path / "remote")
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (local, remote))
    assert a["cv"] == b["cv"]
    assert a["test"] == b["test"]
    assert a["selected_model"] == b["selected_model"]


def test_a_killed_workers_tasks_are_retried(cluster, tmp_path):
    from permed.engine import DaskEngine

    engine = DaskEngine(cluster.scheduler_address)
    try:
        marker = str(tmp_path / "killed-once")
        results = engine.map(_dies_once, [(x, marker) for x in range(6)], label="retry")
    finally:
        engine.close()
    assert results == [x * 10 for x in range(6)]
    assert Path(marker).read_text() == "killed"


def test_a_failed_task_without_a_description_is_not_named_by_its_data():
    """The item of a fold task holds the patients' table: its repr had gone into the message."""
    table = pd.DataFrame({"age": [91.5]})
    with pytest.raises(EngineTaskError) as raised:
        LocalEngine(1).map(_fails_on_table, [(table, 0)], label="fold")
    assert str(raised.value) == "fold task (a tuple) failed: ValueError: bad"
    assert "91.5" not in str(raised.value)
