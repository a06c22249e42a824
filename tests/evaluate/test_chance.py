"""The warning that a model is not shown to discriminate better than chance."""

from __future__ import annotations

import pytest

from permed.evaluate import chance_warning


def _ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


@pytest.mark.parametrize(("test", "label"), [
    ({"auroc": _ci(0.577, 0.318, 0.824), "brier": _ci(0.2, 0.1, 0.3)}, "AUROC"),
    ({"c_index": _ci(0.55, 0.5, 0.6), "ibs": _ci(0.2, 0.1, 0.3)}, "C-index"),  # 0.5 reached
])
def test_a_ci_reaching_one_half_is_flagged(test, label):
    entry = next(iter(test.values()))
    assert chance_warning(test) == (
        f"the test {label} is {entry['value']:.3f}, and its 95% CI ({entry['ci_low']:.3f}-"
        f"{entry['ci_high']:.3f}) reaches 0.5: on these patients the model is not shown to rank "
        "patients better than chance; do not use it for decisions before it is trained on more "
        "patients (or events) or better predictors and validated again")


@pytest.mark.parametrize("test", [
    {"auroc": _ci(0.62, 0.501, 0.74)},  # just above chance
    {"c_index": _ci(0.63, 0.59, 0.67)},
    {"auroc": {"value": 0.7}},  # no CI (bootstrap off): nothing to read
    {"ate": _ci(0.1, -0.2, 0.4)},  # treat runs have no discrimination figure
    {},
])
def test_no_warning_otherwise(test):
    assert chance_warning(test) is None
