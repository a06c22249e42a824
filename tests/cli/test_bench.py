"""permed bench scale on a tiny cohort: every measurement present, no timing asserted."""

import json

import pytest
from typer.testing import CliRunner

from permed.cli.bench import scale
from permed.cli.main import app
from permed.exceptions import PermedError
from permed.workflow._scale import growth


def test_bench_scale_tiny(tmp_path):
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(app, ["bench", "scale", "--rows", "800", "--bootstrap", "100",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    (size,) = payload["results"]
    assert size["rows"] == 800
    assert size["diagnose_train"]["ok"], size["diagnose_train"]
    assert size["diagnose_train"]["peak_mb"] > 0
    assert set(size["scoring_rows_per_s"]) == {"permed_predict_stream", "permed_predict_proba",
                                               "permed_predict_frame", "onnxruntime",
                                               "lightgbm_direct"}
    # the tree is sampled every half second, so on a loaded machine it can miss a short peak
    # that ru_maxrss keeps: it must still have seen the training process itself (permed and its
    # libraries take well over 100 MB)
    assert size["diagnose_train"]["peak_tree_mb"] > 100
    assert size["bootstrap_s"]["test_rows"] == 160
    assert "rows  diag_s  diag_MB" in result.output


@pytest.mark.parametrize(("rows", "message"), [
    ("10k", "--rows must be comma-separated integers, got '10k'"),
    ("100", "--rows needs sizes of at least 500 patients, got '100'")])
def test_bench_scale_refuses_bad_sizes(rows, message, tmp_path):
    with pytest.raises(PermedError, match=message):
        scale(rows=rows, risk=False, dask=False, bootstrap=200, out_file=tmp_path / "s.json")


def test_growth_is_the_ratio_per_decade():
    results = [{"rows": 1000, "diagnose_train": {"wall_s": 2.0, "peak_mb": 100.0}},
               {"rows": 100_000, "diagnose_train": {"wall_s": 200.0, "peak_mb": 400.0}}]
    ratios = growth(results)
    assert ratios["diagnose_train_wall"] == pytest.approx(10.0)
    assert ratios["diagnose_train_peak_mb"] == pytest.approx(2.0)
    assert ratios["risk_train_wall"] is None
