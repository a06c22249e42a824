"""Streaming batch scoring: same rows in the same order, nothing left by an interrupted run."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from permed.cli.main import app
from permed.engine import LocalEngine
from permed.exceptions import DataError
from permed.workflow import _batch as batch
from permed.workflow import predict_run


@pytest.fixture
def cohort_parquet(trust_run, tmp_path):
    _, frame = trust_run
    path = tmp_path / "cohort.parquet"
    frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(("batch_size", "engine"), [(97, None), (1000, None),
                                                    (64, LocalEngine(n_jobs=1))])
def test_streamed_scores_equal_whole_table_scores(trust_run, cohort_parquet, tmp_path,
                                                  batch_size, engine):
    run, frame = trust_run
    out = tmp_path / "scores.parquet"
    rows = batch.predict_batched(run, cohort_parquet, out, batch_size=batch_size,
                                 engine=engine, wave=2)
    streamed = pd.read_parquet(out)
    whole = predict_run(run, cohort_parquet)
    assert rows == len(frame) == len(streamed)
    pd.testing.assert_frame_equal(streamed, whole, check_dtype=False)


def test_cli_streams_a_csv_with_batch_size(trust_run, tmp_path):
    run, frame = trust_run
    data = tmp_path / "cohort.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["predict", str(run), str(data), "--out", str(out),
                                      "--batch-size", "150", "--quiet"])
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out)
    assert len(scored) == len(frame)
    pd.testing.assert_frame_equal(scored, predict_run(run, data), check_dtype=False)


def test_interrupted_run_leaves_no_file(trust_run, cohort_parquet, tmp_path, monkeypatch):
    run, _ = trust_run
    out_dir = tmp_path / "out"
    calls = []
    real = batch._clean

    def failing(frame, path):
        calls.append(len(frame))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(frame, path)

    monkeypatch.setattr(batch, "_clean", failing)
    with pytest.raises(KeyboardInterrupt):
        batch.predict_batched(run, cohort_parquet, out_dir / "scores.parquet", batch_size=50)
    assert len(calls) == 3
    assert list(out_dir.iterdir()) == []


def test_stream_needs_parquet_output(trust_run, cohort_parquet, tmp_path):
    run, _ = trust_run
    with pytest.raises(DataError, match=r"batch scoring writes Parquet, got --out '.*scores\.csv'"
                       r": use a \.parquet name"):
        batch.predict_batched(run, cohort_parquet, tmp_path / "scores.csv")


@pytest.mark.parametrize(("out", "batch_size", "explain", "expected"), [
    ("s.parquet", 10, False, True), ("s.parquet", None, False, False),
    ("s.csv", 10, False, False), ("s.parquet", 10, True, False), (None, 10, False, False)])
def test_when_predict_streams(cohort_parquet, out, batch_size, explain, expected):
    assert batch.should_stream(cohort_parquet, out, batch_size, explain) is expected
