"""permed train and permed init on tables whose columns are named or written awkwardly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def _coded(n: int, seed: int = 1) -> pd.DataFrame:
    """Patients with a record number written with leading zeros (000101...), in random order."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"mrn": [f"{i:06d}" for i in rng.permutation(np.arange(101, 101 + n))],
                         "age": rng.integers(30, 80, n), "sbp": rng.normal(130, 15, n).round(1),
                         "dx": rng.integers(0, 2, n)})


def test_init_lists_an_mrn_with_leading_zeros_beside_the_id_under_identifiers(tmp_path):
    # read as numbers (101...), the MRN had been left without a role: a numeric feature
    frame = _coded(40)
    frame.insert(0, "study_id", np.random.default_rng(2).permutation(40) + 1)
    frame.to_csv(tmp_path / "cohort.csv", index=False)
    result = permed("init", tmp_path / "cohort.toml", "--from", tmp_path / "cohort.csv")
    assert result.returncode == 0, result.stderr
    assert ("guessed: target 'dx' (the last column, 2 values); id 'study_id'; identifiers "
            "'mrn'; no sensitive column") in " ".join(result.stderr.split())
    written = (tmp_path / "cohort.toml").read_text()
    assert 'id = "study_id"' in written
    assert 'identifiers = ["mrn"]' in written
    assert "[columns.mrn]" not in written
    checked = permed("validate", tmp_path / "cohort.csv", "--study", tmp_path / "cohort.toml")
    assert checked.returncode == 0, checked.stdout
    assert "features: age=numeric, sbp=numeric\n" in checked.stdout


@pytest.mark.parametrize("order", ["shuffled", "sorted"])
def test_init_takes_a_code_written_with_leading_zeros_as_the_id(tmp_path, order):
    # as numbers, 30 shuffled record numbers had been a numeric feature and sorted ones a row
    # counter listed under drop
    frame = _coded(30).rename(columns={"mrn": "record"})
    if order == "sorted":
        frame = frame.sort_values("record")
    frame.to_csv(tmp_path / "cohort.csv", index=False)
    result = permed("init", tmp_path / "cohort.toml", "--from", tmp_path / "cohort.csv")
    assert result.returncode == 0, result.stderr
    assert "id 'record'" in " ".join(result.stderr.split())
    written = (tmp_path / "cohort.toml").read_text()
    assert 'id = "record"' in written
    assert "# drop = " in written
    assert "[columns.record]" not in written


def test_init_keeps_zip_codes_and_repeated_codes_out_of_the_id():
    from permed.cli.study import guess_study

    frame = _coded(30)
    frame["zip"] = [f"0{2100 + i}" for i in range(30)]  # a place each, as text (Parquet)
    frame["ward"] = [f"{i % 5:02d}" for i in range(30)]  # leading zeros, but shared
    study = guess_study(frame[["zip", "ward", "age", "sbp", "dx"]])
    assert study.id is None
    assert study.identifiers == []
    assert {"zip", "ward"} <= set(study.columns)


def test_init_guesses_a_risk_study_from_follow_up_times_and_an_event(tmp_path):
    # GBSG2 as exported (time in days, then cens 0/1 last) had been scaffolded as
    # task = "diagnose", target = "cens": a classifier that reads every censored patient as
    # recurrence-free
    permed("datasets", "export", "gbsg2", tmp_path / "gbsg2.csv")
    result = permed("init", tmp_path / "gbsg2.toml", "--from", tmp_path / "gbsg2.csv")
    assert result.returncode == 0, result.stderr
    study = (tmp_path / "gbsg2.toml").read_text()
    assert 'task = "risk"' in study
    assert 'time = "time"' in study
    assert 'event = "cens"' in study
    assert "\ntarget =" not in study
    assert "a risk study: time 'time', event 'cens'" in " ".join(result.stderr.split())


@pytest.mark.parametrize(("columns", "expected"), [
    ({"os_months": [1.5, 30.0], "death": [0, 1]}, ("risk", "os_months", "death")),
    ({"duration": [3.0, 99.3], "event": [1, 0]}, ("risk", "duration", "event")),
    # a length of stay is a feature, not follow-up: the binary last column stays a target
    ({"days_in_hospital": [3.0, 12.0], "readmitted": [0, 1]}, ("diagnose", None, None)),
    # an event coded by name is not guessed: its event value must be given
    ({"time": [3.0, 12.0], "status": ["alive", "dead"]}, ("diagnose", None, None)),
])
def test_follow_up_times_are_recognised_by_name_and_values(columns, expected):
    from permed.cli.study import guess_study

    rng = np.random.default_rng(2)
    n = 60
    frame = pd.DataFrame({"age": rng.integers(30, 80, n)})
    for name, (low, high) in columns.items():
        frame[name] = rng.choice([low, high], n) if isinstance(low, str) \
            else rng.integers(0, 2, n) if name in ("death", "event", "readmitted") \
            else rng.uniform(low, high, n).round(1)
    study = guess_study(frame)
    assert (study.task, study.time, study.event) == expected
