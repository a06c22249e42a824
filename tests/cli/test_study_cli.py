"""permed train and permed init on tables whose columns are named or written awkwardly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permed.testing import run_permed as permed


def test_train_suggests_the_event_column_written_another_way(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    pd.DataFrame({"mrn": [f"{i:06d}" for i in range(n)], "age": rng.integers(30, 80, n),
                  "time_days": rng.integers(1, 900, n), "Event_Status": rng.integers(0, 2, n),
                  }).to_csv(tmp_path / "cohort.csv", index=False)
    result = permed("train", tmp_path / "cohort.csv", "--task", "risk", "--time", "duration",
                    "--event", "evnt", "--out", tmp_path / "run")
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert ("- time column 'duration' (from --time) is not in the data: the table's columns "
            "are 'mrn', 'age', 'time_days', 'Event_Status'") in said
    assert ("- event column 'evnt' (from --event) is not in the data: did you mean "
            "'Event_Status'?") in said
    assert not (tmp_path / "run").exists()
