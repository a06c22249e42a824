import json
import re

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from permed.evaluate import expected_calibration_error
from permed.exceptions import PermedError
from permed.fairness import GROUP_METRICS, audit_classification
from permed.fairness._audit import _binary_group, _Data, _replicate

N_BOOT = 50
GROUP_KEYS = ["n", "prevalence", *GROUP_METRICS, "too_small"]
CI_KEYS = {"value", "ci_low", "ci_high"}


def _model(y, quality, rng):
    """Probabilities that separate the classes by ``quality`` (0 random, 1 perfect)."""
    noise = rng.random(len(y))
    return np.clip(quality * (0.8 * y + 0.1) + (1 - quality) * noise, 0, 1)


def _perfect_vs_random(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sex = rng.choice(["F", "M"], n)
    p = np.where(sex == "F", _model(y, 1.0, rng), _model(y, 0.0, rng))
    return y, p, (p >= 0.5).astype(int), pd.DataFrame({"sex": sex})


def test_perfect_for_one_group_random_for_other_is_flagged():
    y, p, pred, sensitive = _perfect_vs_random()
    audit = audit_classification(y, p, pred, sensitive, ["no", "yes"], n_boot=N_BOOT)
    sex = audit["attributes"]["sex"]
    assert list(sex["groups"]) == ["F", "M"]
    assert sex["groups"]["F"]["auroc"]["value"] == 1.0
    assert sex["groups"]["M"]["auroc"]["value"] == pytest.approx(0.5, abs=0.1)
    eod = sex["disparities"]["equalized_odds_difference"]
    assert eod["value"] > 0.3
    assert eod["ci_low"] <= eod["value"] <= eod["ci_high"]
    assert eod["ci_low"] > 0.1
    flag = next(f for f in sex["flags"] if f.startswith("equalized odds difference"))
    assert re.fullmatch(r"equalized odds difference 0\.\d\d for 'sex' exceeds 0\.10", flag)
    assert f"{eod['value']:.2f}" in flag
    assert any(f.startswith("auroc gap") for f in sex["flags"])


def test_a_small_groups_proportion_of_one_gets_a_wilson_interval_not_zero_width():
    # 17 women, all 8 with the disease found: the bootstrap (class counts kept) gave
    # sensitivity 1.00 (1.00-1.00)
    from scipy.stats import binomtest

    rng = np.random.default_rng(3)
    y = np.r_[np.repeat([1, 0], [8, 9]), rng.integers(0, 2, 200)]
    p = np.r_[np.repeat([0.9, 0.2], [8, 9]), rng.random(200)]
    sex = pd.DataFrame({"sex": ["F"] * 17 + ["M"] * 200})
    audit = audit_classification(y, p, (p >= 0.5).astype(int), sex, ["no", "yes"],
                                 n_boot=N_BOOT)
    women = audit["attributes"]["sex"]["groups"]["F"]
    assert women["sensitivity"]["value"] == 1.0
    wilson = binomtest(8, 8).proportion_ci(0.95, method="wilson")
    assert women["sensitivity"]["ci_low"] == pytest.approx(wilson.low)
    assert women["sensitivity"]["ci_low"] < 0.8
    assert women["sensitivity"]["ci_high"] == pytest.approx(1.0)
    men = audit["attributes"]["sex"]["groups"]["M"]
    tp = int(((y[17:] == 1) & (p[17:] >= 0.5)).sum())
    selected = int((p[17:] >= 0.5).sum())
    assert men["ppv"]["ci_low"] == pytest.approx(
        binomtest(tp, selected).proportion_ci(0.95, method="wilson").low)
    assert "Wilson score intervals" in audit["note"]


def test_equal_groups_have_small_gaps_and_no_flag():
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 2, n)
    p = _model(y, 0.6, rng)
    sensitive = pd.DataFrame({"sex": rng.choice(["F", "M"], n)})
    audit = audit_classification(y, p, (p >= 0.5).astype(int), sensitive, ["no", "yes"],
                                 n_boot=N_BOOT)
    sex = audit["attributes"]["sex"]
    for name, gap in sex["disparities"].items():
        assert gap["value"] < 0.05, name
    assert sex["flags"] == []


def test_group_entries_have_the_documented_shape():
    y, p, pred, sensitive = _perfect_vs_random(n=200, seed=2)
    audit = audit_classification(y, p, pred, sensitive, ["no", "yes"], n_boot=N_BOOT)
    assert list(audit) == ["attributes", "min_group_size", "max_gap", "note"]
    assert audit["min_group_size"] == 20
    assert audit["max_gap"] == 0.1
    sex = audit["attributes"]["sex"]
    assert list(sex) == ["groups", "disparities", "flags"]
    assert list(sex["disparities"]) == [
        "equalized_odds_difference",
        "demographic_parity_difference",
        "auroc_gap",
        "calibration_gap",
    ]
    for group in sex["groups"].values():
        assert list(group) == GROUP_KEYS
        assert isinstance(group["n"], int)
        assert group["too_small"] is False
        for metric in GROUP_METRICS:
            assert set(group[metric]) == CI_KEYS


def test_values_match_sklearn_fairlearn_and_the_bootstrap_path():
    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 2, n)
    race = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    p = np.where(race == "a", _model(y, 0.7, rng), _model(y, 0.3, rng))
    pred = (p >= 0.5).astype(int)
    audit = audit_classification(y, p, pred, pd.DataFrame({"race": race}), ["0", "1"],
                                 n_boot=N_BOOT)
    result = audit["attributes"]["race"]
    for level, group in result["groups"].items():
        rows = race == level
        assert group["n"] == rows.sum()
        assert group["prevalence"] == pytest.approx(y[rows].mean(), abs=1e-12)
        expected = {
            "auroc": roc_auc_score(y[rows], p[rows]),
            "sensitivity": recall_score(y[rows], pred[rows]),
            "specificity": recall_score(y[rows], pred[rows], pos_label=0),
            "ppv": precision_score(y[rows], pred[rows]),
            "ece": expected_calibration_error(y[rows], p[rows]),
            "selection_rate": pred[rows].mean(),
        }
        for metric, value in expected.items():
            assert group[metric]["value"] == pytest.approx(value, abs=1e-12), (level, metric)
    gaps = result["disparities"]
    assert gaps["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=race), abs=1e-12
    )
    assert gaps["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=race), abs=1e-12
    )
    aurocs = [g["auroc"]["value"] for g in result["groups"].values()]
    assert gaps["auroc_gap"]["value"] == pytest.approx(max(aurocs) - min(aurocs), abs=1e-12)
    # the replicates recompute the same figures in NumPy: on the full data they agree
    data = _Data(y=y, proba=np.column_stack([1 - p, p]), pred=pred, group_metrics=_binary_group,
                 min_group_size=20, max_gap=0.1, n_boot=1, seed=0)
    codes = pd.Categorical(race, categories=["a", "b", "c"]).codes.astype(np.int64)
    full = _replicate(y, data.proba, pred, codes, np.ones(3, dtype=bool), data)
    for name, gap in gaps.items():
        assert full[("gap", name)] == pytest.approx(gap["value"], abs=1e-12), name


def test_small_group_is_reported_and_left_out_of_the_disparities():
    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)
    p = _model(y, 0.5, rng)
    pred = (p >= 0.5).astype(int)
    site = np.array(["north"] * 150 + ["south"] * 138 + ["island"] * 12)
    audit = audit_classification(y, p, pred, pd.DataFrame({"site": site}), ["0", "1"],
                                 n_boot=N_BOOT)
    result = audit["attributes"]["site"]
    island = result["groups"]["island"]
    assert island["too_small"] is True
    assert island["n"] == 12
    assert island["selection_rate"]["value"] == pytest.approx(pred[site == "island"].mean())
    assert result["groups"]["north"]["too_small"] is False
    big = site != "island"
    assert result["disparities"]["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y[big], pred[big], sensitive_features=site[big]),
        abs=1e-12,
    )
    assert "fewer than 20 patients are reported with too_small=true" in audit["note"]


def test_only_one_large_group_gives_no_disparity():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    p = _model(y, 0.5, rng)
    site = np.array(["big"] * 50 + ["tiny"] * 10)
    audit = audit_classification(y, p, (p >= 0.5).astype(int), pd.DataFrame({"site": site}),
                                 ["0", "1"], n_boot=N_BOOT)
    gaps = audit["attributes"]["site"]["disparities"]
    assert all(gap == {"value": None, "ci_low": None, "ci_high": None} for gap in gaps.values())
    assert audit["attributes"]["site"]["flags"] == []


def test_numeric_column_is_binned_into_quartiles():
    rng = np.random.default_rng(6)
    n = 400
    y = rng.integers(0, 2, n)
    p = _model(y, 0.5, rng)
    age = rng.integers(18, 91, n).astype(float)
    age[:5] = np.nan
    smoker = rng.integers(0, 2, n)  # numeric, but only two values: kept as is
    sensitive = pd.DataFrame({"age": age, "smoker": smoker})
    audit = audit_classification(y, p, (p >= 0.5).astype(int), sensitive, ["0", "1"],
                                 n_boot=N_BOOT)
    groups = audit["attributes"]["age"]["groups"]
    levels = list(groups)
    assert len(levels) == 5
    assert levels[-1] == "age missing"
    assert groups["age missing"]["n"] == 5
    pattern = re.compile(r"age \[(\d+(?:\.\d+)?), (\d+(?:\.\d+)?)([)\]])")
    for level in levels[:-1]:
        low, high, bracket = pattern.fullmatch(level).groups()
        inside = (age >= float(low)) & (
            (age <= float(high)) if bracket == "]" else (age < float(high))
        )
        assert groups[level]["n"] == inside.sum(), level
    assert sum(g["n"] for g in groups.values()) == n
    assert list(audit["attributes"]["smoker"]["groups"]) == ["0", "1"]
    distinct = pd.Series(age).nunique()
    assert f"Numeric column 'age' has {distinct} distinct values (more than 5)" in audit["note"]
    assert "binned into quartile groups" in audit["note"]
    assert "'smoker'" not in audit["note"]


def test_nullable_integer_column_with_missing_values_is_binned():
    rng = np.random.default_rng(11)
    n = 120
    y = rng.integers(0, 2, n)
    p = _model(y, 0.5, rng)
    age = pd.array(rng.integers(20, 80, n), dtype="Int64")
    age[[0, 1]] = pd.NA
    audit = audit_classification(y, p, (p >= 0.5).astype(int), pd.DataFrame({"age": age}),
                                 ["0", "1"], n_boot=5)
    groups = audit["attributes"]["age"]["groups"]
    assert groups["age missing"]["n"] == 2
    assert sum(g["n"] for g in groups.values()) == n


def test_intersections_only_with_two_or_more_columns():
    rng = np.random.default_rng(7)
    n = 400
    y = rng.integers(0, 2, n)
    p = _model(y, 0.5, rng)
    pred = (p >= 0.5).astype(int)
    sensitive = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "race": pd.Categorical(rng.choice(["b", "a"], n), categories=["b", "a"]),
    })
    audit = audit_classification(y, p, pred, sensitive, ["0", "1"], n_boot=N_BOOT)
    assert list(audit["intersections"]) == ["sex & race"]
    cross = audit["intersections"]["sex & race"]
    assert list(cross["groups"]) == ["F & b", "F & a", "M & b", "M & a"]
    both = (sensitive["sex"] == "M") & (sensitive["race"] == "a")
    assert cross["groups"]["M & a"]["n"] == both.sum()
    assert list(cross) == ["groups", "disparities", "flags"]
    assert "Intersections cross every pair" in audit["note"]
    single = audit_classification(y, p, pred, sensitive[["sex"]], ["0", "1"], n_boot=N_BOOT)
    assert "intersections" not in single


def test_result_is_json_ready_with_undefined_values_as_none():
    rng = np.random.default_rng(8)
    n = 200
    y = rng.integers(0, 2, n)
    group = rng.choice(["x", "y"], n)
    y[group == "y"] = 0  # no positive patient in group y: its auroc, sensitivity are undefined
    p = _model(y, 0.6, rng)
    sensitive = pd.DataFrame({"group": group, "score": rng.normal(size=n)})
    audit = audit_classification(y, p, (p >= 0.5).astype(int), sensitive, ["0", "1"],
                                 n_boot=N_BOOT)
    assert audit["attributes"]["group"]["groups"]["y"]["auroc"] == {
        "value": None, "ci_low": None, "ci_high": None
    }
    text = json.dumps(audit, allow_nan=False)
    assert json.loads(text) == audit


def test_reproducible_with_the_same_seed():
    y, p, pred, sensitive = _perfect_vs_random(n=200, seed=9)
    first = audit_classification(y, p, pred, sensitive, ["0", "1"], n_boot=N_BOOT, seed=1)
    again = audit_classification(y, p, pred, sensitive, ["0", "1"], n_boot=N_BOOT, seed=1)
    assert first == again


def test_multiclass_skips_disparities_with_a_note():
    rng = np.random.default_rng(10)
    n = 300
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sensitive = pd.DataFrame({"sex": rng.choice(["F", "M"], n)})
    audit = audit_classification(y, proba, proba.argmax(axis=1), sensitive, ["a", "b", "c"],
                                 n_boot=N_BOOT)
    sex = audit["attributes"]["sex"]
    assert sex["disparities"] == {}
    assert sex["flags"] == []
    female = sex["groups"]["F"]
    assert female["prevalence"] is None
    assert female["selection_rate"]["value"] is None
    rows = sensitive["sex"].to_numpy() == "F"
    assert female["auroc"]["value"] == pytest.approx(
        roc_auc_score(y[rows], proba[rows], multi_class="ovr"), abs=1e-12
    )
    assert "With 3 classes the disparities are skipped" in audit["note"]
    json.dumps(audit, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sensitive": pd.DataFrame({"sex": ["F"] * 3})},
         "sensitive has 3 rows but y has 4: pass the sensitive columns of the same patients"),
        ({"sensitive": pd.DataFrame(index=range(4))},
         "sensitive must be a pandas DataFrame with one column per sensitive attribute"),
        ({"predicted": [0, 1, 2, 0]}, r"predicted must hold 4 class indices in 0..1 like y"),
        ({"classes": ["only"]}, "classes names 1 classes but proba has 2 columns"),
        ({"min_group_size": 0}, "min_group_size must be a positive integer, got 0"),
        ({"sensitive": pd.DataFrame([["F", 1]] * 4, columns=["sex", "sex"])},
         r"sensitive has duplicated columns \['sex'\]: name each once"),
    ],
)
def test_bad_inputs_raise_permed_error(change, message):
    kwargs = {
        "y": [0, 1, 0, 1],
        "proba": [0.2, 0.7, 0.4, 0.9],
        "predicted": [0, 1, 0, 1],
        "sensitive": pd.DataFrame({"sex": ["F", "M", "F", "M"]}),
        "classes": ["no", "yes"],
    }
    kwargs.update(change)
    with pytest.raises(PermedError, match=message):
        audit_classification(**kwargs, n_boot=5)


def test_group_auroc_of_one_has_an_interval_of_nonzero_width():
    # every positive of group F outranks every negative: a class-kept bootstrap resamples 1.0
    # every time, so the interval read 1.00 (1.00-1.00)
    y, p, pred, sensitive = _perfect_vs_random(n=60, seed=4)
    audit = audit_classification(y, p, pred, sensitive, ["no", "yes"], n_boot=N_BOOT)
    female = audit["attributes"]["sex"]["groups"]["F"]
    assert female["auroc"]["value"] == 1.0
    assert female["auroc"]["ci_high"] == 1.0
    assert 0.5 < female["auroc"]["ci_low"] < 0.95
