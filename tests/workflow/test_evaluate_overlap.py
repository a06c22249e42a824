"""permed evaluate finds the run's own patients in an "external" cohort however re-exported (a
subset, reordered rows, an extra column), by their features and their ids, from the keyed row
digests train keeps in row_digests.json; a run without that file evaluates as before. Feature
matches are warned about beyond what chance gives, the chance rate being an estimate from the
test split: a beta-binomial predictive rule, checked here against a plug-in binomial one by
simulation."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import BundleError
from permed.privacy import generate_key, is_encrypted, use_key
from permed.study import Study
from permed.workflow import TrainConfig, evaluate_run, train_run
from permed.workflow._overlap import CHANCE_LEVEL, _beyond_chance, _id_text

FAST = {"models": ["logistic"], "n_boot": 100, "cv": 3}
DIAGNOSE = Study(task="diagnose", target="disease", id="patient_id", sensitive=["sex"])
DEVELOPED_ON = ("have the same values in every feature as patients the model was developed on "
                "({rows}): an external validation must use patients the model never saw, so "
                "these figures are optimistic; remove those rows or evaluate a cohort from "
                "elsewhere")
IN_TEST = ("have the same values in every feature as patients of the run's test split "
           "({rows}): they are the development data's patients, not an external cohort, so "
           "these figures partly repeat the test figures; remove those rows or evaluate a "
           "cohort from elsewhere")
SAME_IDS = ("have an id in 'patient_id' that a patient of the development data had ({rows}): "
            "if they are the same patients, the model has seen them and these figures are "
            "optimistic; remove those rows, or ignore this if the two sites number their "
            "patients independently")


def _patients(n: int, seed: int, prefix: str) -> pd.DataFrame:
    """Patients with continuous measurements (no two alike), a categorical and a sensitive
    column, and a binary target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n).round(2)
    marker = rng.lognormal(0, 0.5, n).round(4)
    pain = rng.choice(["1", "2", "3", "4"], n)
    logit = 0.1 * (age - 60) + np.log(marker) + (pain == "4") - 0.3
    disease = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"patient_id": [f"{prefix}-{i:04d}" for i in range(n)], "age": age,
                         "marker": marker, "pain": pain, "sex": rng.choice(["F", "M"], n),
                         "disease": disease})


def _rows(positions: list[int]) -> str:
    """A message's 1-based rows, as permed writes them."""
    shown = ", ".join(str(p + 1) for p in positions[:5])
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return f"{'row' if len(positions) == 1 else 'rows'} {shown}{more}"


@pytest.fixture(scope="module")
def diagnose(tmp_path_factory):
    """A diagnose run on 240 patients, its data and the input rows of its test split."""
    tmp = tmp_path_factory.mktemp("overlap")
    data = _patients(240, 0, "P0")
    data.to_csv(tmp / "development.csv", index=False)
    run = train_run(tmp / "development.csv", DIAGNOSE, TrainConfig(**FAST), tmp / "run")
    test = set(pd.read_csv(run / "predictions.csv")["row"])
    return tmp, run, data, test


@pytest.fixture(scope="module")
def risk(tmp_path_factory):
    """A Cox run on GBSG2, its data and the input rows of its test split."""
    from permed.ingest import export_dataset

    tmp = tmp_path_factory.mktemp("overlap_risk")
    path = export_dataset("gbsg2", tmp / "gbsg2.csv")
    run = train_run(path, Study(task="risk", time="time", event="cens"),
                    TrainConfig(models=["coxph"], n_boot=100, cv=3,
                                horizons=[365, 1095, 1825]), tmp / "run")
    test = set(pd.read_csv(run / "predictions.csv")["row"])
    return tmp, run, pd.read_csv(path), test


def _evaluate(tmp, run, frame: pd.DataFrame, name: str) -> tuple[dict, list[str]]:
    frame.to_csv(tmp / f"{name}.csv", index=False)
    out = evaluate_run(run, tmp / f"{name}.csv", tmp / f"ev_{name}", n_boot=100)
    return (json.loads((out / "metrics.json").read_text())["external"],
            json.loads((out / "manifest.json").read_text())["warnings"])


def _reexported(data: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` rows of ``data`` in a random order, with a column of the new site; and which."""
    chosen = np.random.default_rng(seed).permutation(len(data))[:n]
    return data.iloc[chosen].reset_index(drop=True).assign(site="B"), chosen


def _split(chosen: np.ndarray, test: set[int]) -> tuple[list[int], list[int]]:
    """The cohort rows that are development patients, and those that are test patients."""
    held = [i for i, row in enumerate(chosen) if row in test]
    return [i for i in range(len(chosen)) if i not in held], held


def test_a_reexported_subset_is_found_by_features_and_ids(diagnose):
    """60 development patients in another order, with a column more; 5 of them with their
    marker measured again: found by their ids only."""
    tmp, run, data, test = diagnose
    cohort, chosen = _reexported(data, 60, 1)
    remeasured = [0, 11, 12, 40, 59]
    cohort.loc[remeasured, "marker"] = (cohort.loc[remeasured, "marker"] * 1.1).round(4)
    developed, held = _split(chosen, test)
    developed, held = ([i for i in rows if i not in remeasured] for rows in (developed, held))
    assert developed
    assert held
    external, warnings = _evaluate(tmp, run, cohort, "subset")
    assert external["development_data"] is False  # another file: the fingerprint misses it
    assert external["overlap"] == {
        "rows": 60, "matching_development": len(developed), "matching_test": len(held),
        "matching_ids": 60, "method": external["overlap"]["method"],
        "expected_by_chance": {"development": 0.0, "test": 0.0}}
    assert external["overlap"]["method"].startswith("HMAC-SHA256 of each row's feature values")
    assert [w for w in warnings if "of this cohort have" in w] == [
        f"{len(developed)} of 60 patients of this cohort "
        + DEVELOPED_ON.format(rows=_rows(developed)),
        f"{len(held)} of 60 patients of this cohort " + IN_TEST.format(rows=_rows(held)),
        "5 more of 60 patients of this cohort " + SAME_IDS.format(rows="rows 1, 12, 13, 41, 60")]
    html = (tmp / "ev_subset" / "report.html").read_text()
    assert IN_TEST.format(rows=_rows(held)).replace("'", "&#39;") in html


def test_a_cohort_from_elsewhere_matches_nothing(diagnose):
    tmp, run, _, _ = diagnose
    external, warnings = _evaluate(tmp, run, _patients(150, 7, "Q7"), "elsewhere")
    assert {k: external["overlap"][k] for k in
            ("rows", "matching_development", "matching_test", "matching_ids")} == {
        "rows": 150, "matching_development": 0, "matching_test": 0, "matching_ids": 0}
    assert not [w for w in warnings if "of this cohort have" in w]


def test_development_ids_on_other_values_are_found_by_id_only(diagnose):
    tmp, run, data, _ = diagnose
    cohort = _patients(100, 8, "Q8")
    reused = [2, 30, 31, 77]
    cohort.loc[reused, "patient_id"] = data["patient_id"].iloc[[5, 6, 100, 200]].to_numpy()
    external, warnings = _evaluate(tmp, run, cohort, "ids")
    assert external["overlap"]["matching_development"] == 0
    assert external["overlap"]["matching_test"] == 0
    assert external["overlap"]["matching_ids"] == 4
    assert [w for w in warnings if "of this cohort have" in w] == [
        "4 of 100 patients of this cohort " + SAME_IDS.format(rows="rows 3, 31, 32, 78")]
    for value in data["patient_id"].iloc[[5, 6, 100, 200]]:  # never quoted
        assert not [w for w in warnings if value in w]


def test_the_development_file_itself_is_told_once(diagnose):
    """The same file is the same-data warning's: the overlap counts are recorded, not
    repeated as warnings."""
    tmp, run, data, test = diagnose
    external, warnings = _evaluate(tmp, run, data, "same")
    assert external["development_data"] is True
    assert external["overlap"]["matching_development"] == 240 - len(test)
    assert external["overlap"]["matching_test"] == len(test)
    assert any("is the data the run" in w for w in warnings)
    assert not [w for w in warnings if "of this cohort have" in w]


def test_the_digest_file_holds_no_value(diagnose):
    _, run, data, test = diagnose
    text = (run / "row_digests.json").read_text()
    saved = json.loads(text)
    assert set(saved) == {"format", "method", "salt", "id_column", "chance", "development",
                          "test"}
    assert re.fullmatch("[0-9a-f]{64}", saved["salt"])
    assert saved["format"] == 2
    # each split against the other and within itself: 240 comparisons each way
    assert saved["chance"] == {"development": {"matches": 0, "of": 240},
                               "test": {"matches": 0, "of": 240}}
    assert saved["development"]["rows"] == 240 - len(test)
    assert saved["test"]["rows"] == len(test)
    for split in ("development", "test"):
        digests = saved[split]["features"] + saved[split]["ids"]
        assert all(re.fullmatch("[0-9a-f]{16}", d) for d in digests)
    for value in [*data["patient_id"], *data["age"].astype(str), *data["marker"].astype(str)]:
        assert value not in text
    assert not {"age", "marker", "pain"} & set(re.findall(r"[a-z]+", text.replace(
        saved["method"], "")))  # nor a feature's name


def test_the_salt_is_drawn_per_run(diagnose, tmp_path):
    tmp, run, _, _ = diagnose
    again = train_run(tmp / "development.csv", DIAGNOSE, TrainConfig(**FAST), tmp_path / "run")
    first, second = (json.loads((r / "row_digests.json").read_text()) for r in (run, again))
    assert first["salt"] != second["salt"]
    assert not set(first["development"]["features"]) & set(second["development"]["features"])


@pytest.mark.parametrize("task", ["diagnose", "risk"])
def test_a_run_without_the_digests_evaluates_as_before(task, request, tmp_path):
    tmp, run, data, _ = request.getfixturevalue(task)
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "row_digests.json").unlink()
    cohort, _ = _reexported(data, 120, 2)
    external, warnings = _evaluate(tmp_path, old, cohort, "old")
    assert external["overlap"] == {
        "rows": 120, "matching_development": None, "matching_test": None, "matching_ids": None,
        "method": None, "note": "the run has no row_digests.json (an image or fusion run, or one "
                                "trained before permed kept row digests): rows repeating its "
                                "patients are not looked for"}
    assert not [w for w in warnings if "of this cohort have" in w]


def test_a_risk_cohort_repeating_gbsg2_patients_is_found(risk):
    tmp, run, data, test = risk
    cohort, chosen = _reexported(data, 200, 3)
    developed, held = _split(chosen, test)
    external, warnings = _evaluate(tmp, run, cohort, "subset")
    assert external["overlap"] == {
        "rows": 200, "matching_development": len(developed), "matching_test": len(held),
        "matching_ids": None, "method": external["overlap"]["method"],
        "expected_by_chance": {"development": 0.0, "test": 0.0}}
    assert [w for w in warnings if "of this cohort have" in w] == [
        f"{len(developed)} of 200 patients of this cohort "
        + DEVELOPED_ON.format(rows=_rows(developed)),
        f"{len(held)} of 200 patients of this cohort " + IN_TEST.format(rows=_rows(held))]


def test_coarse_features_shared_by_chance_are_counted_not_warned(tmp_path):
    """Three coarse features: distinct patients often share every value. The counts are
    recorded with the number chance gives; only a clear excess is warned about."""
    def coarse(n: int, seed: int, prefix: str) -> pd.DataFrame:
        frame = _patients(n, seed, prefix)
        return frame.assign(age=(frame["age"] // 10) * 10).drop(columns="marker")

    coarse(240, 0, "P0").to_csv(tmp_path / "development.csv", index=False)
    run = train_run(tmp_path / "development.csv", DIAGNOSE, TrainConfig(**FAST),
                    tmp_path / "run")
    external, warnings = _evaluate(tmp_path, run, coarse(150, 9, "Q9"), "coarse")
    overlap = external["overlap"]
    assert overlap["matching_development"] > 100  # most, yet other patients
    assert overlap["expected_by_chance"]["development"] > 100
    assert not [w for w in warnings if "of this cohort have" in w]


def test_an_encrypted_run_keeps_its_digests_encrypted(diagnose, tmp_path):
    tmp, _, data, _ = diagnose
    with use_key(generate_key()):
        run = train_run(tmp / "development.csv", DIAGNOSE, TrainConfig(**FAST, encrypt=True),
                        tmp_path / "run")
        assert is_encrypted(run / "row_digests.json")
        external, _ = _evaluate(tmp_path, run, data.iloc[::-1], "reversed")
    assert external["development_data"] is False
    assert external["overlap"]["matching_ids"] == 240


@pytest.mark.parametrize("content", ["not json", '{"format": 1}'])
def test_a_damaged_digest_file_is_refused_with_the_fix(diagnose, tmp_path, content):
    tmp, run, data, _ = diagnose
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    (damaged / "row_digests.json").write_text(content)
    data.to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(BundleError, match=re.escape(
            f"'{damaged / 'row_digests.json'}' is not the JSON permed train writes")
            + r".*: restore it from the run, or delete it to evaluate without looking for the "
            "run's own patients$"):
        evaluate_run(damaged, tmp_path / "cohort.csv", tmp_path / "out", n_boot=100)


def _plug_in(count: int, total: int, matches: int, of: int) -> bool:
    """The rule permed used before: a binomial at the estimated rate, any match at 0."""
    from scipy.stats import binom

    rate = matches / of
    return count > 0 and (rate == 0 or count > binom.ppf(1 - CHANCE_LEVEL, total, rate))


@pytest.mark.parametrize(("test_rows", "plug_in_warned"), [(10, 88), (20, 43), (60, 12)])
def test_new_patients_are_not_warned_about_when_the_chance_rate_is_estimated_loosely(
        test_rows, plug_in_warned):
    """As on the Cleveland heart data with 6 coarse features (a new patient equals some
    development patient in 1 case of 10): in 300 simulated runs, the test split's k of n
    matches and a cohort of 103 new patients. The plug-in rate (k / n, 0 in a third of the
    runs with 10 test rows) warned in 4% to 29% of them; the predictive rule in none."""
    rng = np.random.default_rng(0)
    known = rng.binomial(test_rows, 0.1, 300)
    found = rng.binomial(103, 0.1, 300)
    plug_in = sum(_plug_in(m, 103, k, test_rows) for k, m in zip(known, found, strict=True))
    warned = sum(_beyond_chance(m, 103, k, test_rows) for k, m in zip(known, found, strict=True))
    assert (plug_in, warned) == (plug_in_warned, 0)


def test_development_patients_presented_again_are_still_warned_about():
    """30 development patients among 73 new ones (matching 1 time in 10 by chance), 60 test
    rows: warned about in most of 300 runs. With continuous features (none of 48 test rows
    matching) more than 13 of 100 matching are warned about; more test rows tell fewer apart."""
    rng = np.random.default_rng(1)
    known = rng.binomial(60, 0.1, 300)
    found = 30 + rng.binomial(73, 0.1, 300)
    caught = np.mean([_beyond_chance(m, 103, k, 60) for k, m in zip(known, found, strict=True)])
    assert caught > 0.8
    assert _beyond_chance(14, 100, 0, 48)
    assert not _beyond_chance(13, 100, 0, 48)
    assert _beyond_chance(3, 100, 0, 1000)
    assert not _beyond_chance(0, 100, 0, 1000)


@pytest.mark.parametrize(("written", "as_digested"), [
    (1250.0, "1250"), (np.float64(7.0), "7"), (1250, "1250"), (" 1250 ", "1250"),
    ("1250.0", "1250"), ("1250.", "1250"), ("-3.00", "-3"), (12.5, "12.5"),
    ("000101", "000101"), ("000101.0", "000101"), ("A-1.0", "A-1.0")])
def test_ids_are_digested_trimmed_and_whole_numbers_as_integers(written, as_digested):
    """Zero-padded codes keep their zeros: 000101 and 101 are different ids."""
    assert _id_text(written) == as_digested


def test_numeric_ids_written_as_decimals_match(tmp_path):
    """A cohort whose id column has a blank is written by pandas with ids like 1250.0: they
    are the development patients' 1250."""
    data = _patients(240, 0, "P0").assign(patient_id=np.arange(1001, 1241))
    data.to_csv(tmp_path / "development.csv", index=False)
    run = train_run(tmp_path / "development.csv", DIAGNOSE, TrainConfig(**FAST),
                    tmp_path / "run")
    cohort = _patients(100, 12, "Q12").assign(patient_id=np.arange(5001, 5101).astype(float))
    cohort.loc[[3, 40, 41], "patient_id"] = [1150, 1001, 1240]
    cohort.loc[0, "patient_id"] = np.nan
    external, warnings = _evaluate(tmp_path, run, cohort, "decimals")
    assert "1150.0" in (tmp_path / "decimals.csv").read_text()
    assert external["overlap"]["matching_ids"] == 3
    assert [w for w in warnings if "of this cohort have" in w] == [
        "3 of 100 patients of this cohort " + SAME_IDS.format(rows="rows 4, 41, 42")]


def test_a_digest_file_of_the_first_format_is_read_with_its_shares(diagnose, tmp_path):
    """row_digests.json of format 1 kept the chance shares only: the counts are recovered from
    the rows of the split they were measured on."""
    tmp, run, data, test = diagnose
    old = tmp_path / "old"
    shutil.copytree(run, old)
    saved = json.loads((old / "row_digests.json").read_text())
    saved.update(format=1, chance={"development": 0.25, "test": 0.0})
    (old / "row_digests.json").write_text(json.dumps(saved))
    cohort, chosen = _reexported(data, 60, 4)
    developed, _ = _split(chosen, test)
    external, _ = _evaluate(tmp_path, old, cohort, "first")
    assert external["overlap"]["matching_development"] == len(developed)
    assert external["overlap"]["expected_by_chance"] == {"development": 15.0, "test": 0.0}


def test_the_chance_rate_also_counts_twins_within_a_split_so_a_small_test_split_is_enough():
    """With 48 test rows alone, 0 matches left the rate so loose that 13 of 100 cohort rows
    repeating development patients went unwarned; counting development rows equal to another
    development row too (here none, of 192) narrows it: 5 of 100 are then warned about."""
    from permed.workflow._overlap import _beyond_chance, _pooled, _twins

    assert _twins(["a", "b", "a", None, "c"]) == {"matches": 2, "of": 5}
    assert _pooled({"matches": 0, "of": 48}, {"matches": 0, "of": 192}) == {"matches": 0,
                                                                            "of": 240}
    assert not _beyond_chance(5, 100, 0, 48)
    assert _beyond_chance(5, 100, 0, 240)


def test_features_that_identify_nobody_are_not_warned_about_even_beyond_their_rate():
    """Rounded age alone: 110 of 120 development patients share it with another; a cohort of
    ages 50-70 (the development cohort's middle) matched all 150, beyond that rate, and was
    told its patients were the development ones."""
    import pandas as pd

    from permed.workflow._overlap import _feature_warning

    rows = pd.RangeIndex(150)
    assert _feature_warning(rows, 150, (110, 120), "patients", "why") == ""
    assert _feature_warning(rows[:10], 150, (0, 240), "patients", "why").startswith(
        "10 of 150 patients of this cohort have the same values in every feature as patients")
