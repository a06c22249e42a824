"""Report wording of a risk run's proportional-hazards check."""

from __future__ import annotations

from pathlib import Path

import pytest

from permed.report._html import DASH, Note, RunFiles, Table
from permed.report._risk import ph_section


def _ph(violated: bool, violating: list[str]) -> dict:
    """The check of a Cox model on age and a three-level grade (one term, 2 df)."""
    return {
        "features": {"age": {"statistic": 3.1, "df": 1, "p_value": 0.078, "rho": 0.09},
                     "tgrade": {"statistic": 5.6, "df": 2, "p_value": 0.061, "rho": None}},
        "global": {"statistic": 9.9, "df": 3, "p_value": 0.019 if violated else 0.2},
        "events": 299, "model": "coxph", "method": "Grambsch-Therneau test", "alpha": 0.05,
        "violated": violated, "violating_features": violating}


def _section(ph: dict):
    run = RunFiles(Path("run"), {"task": "risk", "proportional_hazards": ph}, {"config": {}},
                   {"task": "risk"}, None)
    return ph_section(run)


def _note(section) -> Note:
    return next(block for block in section.blocks if isinstance(block, Note))


def test_a_global_violation_with_no_single_predictor_flagged_lists_none_to_stratify():
    # the report said "stratify the variables below" and listed none
    note = _note(_section(_ph(True, [])))
    assert note.tone == "warning"
    assert "stratify the variables below" not in note.text
    assert not note.items
    assert note.text.endswith(
        "No single predictor's test reaches p < 0.05: the departure is spread over several "
        "predictors, none of which can be singled out to stratify. Prefer a model without "
        "this assumption (random survival forest).")


def test_a_flagged_predictor_is_named_to_stratify():
    note = _note(_section({**_ph(True, ["tgrade"]),
                           "features": {"tgrade": {"statistic": 8.0, "df": 2,
                                                   "p_value": 0.018, "rho": None}}}))
    assert note.text.endswith("or stratify the variables below.")
    assert list(note.items) == ["tgrade"]


@pytest.mark.parametrize("violated", [False, True])
def test_a_categorical_predictor_is_one_row_with_its_degrees_of_freedom(violated):
    table = next(b for b in _section(_ph(violated, [])).blocks if isinstance(b, Table))
    assert list(table.header) == ["Predictor", "Correlation with time", "Chi-squared", "df",
                                  "p"]
    assert [list(row) for row in table.rows] == [
        ["tgrade", DASH, "5.60", "2", "0.061"],
        ["age", "0.09", "3.10", "1", "0.078"],
        ["global", DASH, "9.90", "3", "0.019" if violated else "0.200"]]


def _selected(model: str, description: str, assumes: bool) -> dict:
    return {"selected_model": model, "selected_description": description,
            "selected_assumes_proportional_hazards": assumes}


def test_a_selected_boosted_cox_model_is_said_to_make_the_same_assumption():
    # the section had said only "no Cox model among the candidates" for --models
    # gradient_boosting, whose curves S0(t) ** exp(score) cannot cross either
    section = _section({**_ph(True, ["tgrade"]),
                        **_selected("gradient_boosting", "gradient-boosted Cox model", True)})
    intro = section.blocks[0].text
    assert intro.startswith(
        "The selected model (gradient-boosted Cox model) makes the same assumption as a Cox "
        "model: its hazard is a baseline hazard times exp(risk score), so one patient's hazard "
        "is the same multiple of another's at every time and two patients' survival curves "
        "never cross.")
    assert "in a ridge Cox model on the same predictors. Test: Grambsch-Therneau test" in intro
    note = _note(section)
    assert note.tone == "warning"
    assert note.text.startswith("The proportional-hazards assumption is violated (global p = "
                                "0.019): the selected model, like the Cox model, averages")


def test_a_selected_forest_is_said_not_to_make_the_assumption():
    section = _section({**_ph(True, ["tgrade"]),
                        **_selected("random_survival_forest", "random survival forest", False)})
    assert section.blocks[0].text.startswith(
        "The selected model (random survival forest) does not assume proportional hazards: "
        "its survival curves may cross. The test below is of the Cox model among the "
        "candidates")
    note = _note(section)
    assert (note.tone, list(note.items)) == ("info", ["tgrade"])
    assert note.text == ("The Cox model's proportional-hazards assumption is violated (global "
                         "p = 0.019); the selected model (random survival forest) does not "
                         "make it.")


def test_a_selected_ensemble_is_said_to_relax_the_assumption_only_in_part():
    section = _section({**_ph(True, ["tgrade"]),
                        **_selected("ensemble", "mean of three families", False),
                        "selected_partly_proportional_hazards": True})
    intro = section.blocks[0].text
    assert intro.startswith(
        "The selected model (mean of three families) averages the survival curves of two "
        "models that assume proportional hazards and of a forest that does not: its curves "
        "may cross, but in two of its three members a predictor's effect cannot change over "
        "follow-up, so such an effect is represented mainly by the forest. The test below "
        "checks each predictor's effect over time in a ridge Cox model on the same "
        "predictors, a stand-in for the ensemble's Cox members, not a test of the ensemble "
        "itself.")
    note = _note(section)
    assert (note.tone, list(note.items)) == ("warning", ["tgrade"])
    assert note.text.startswith(
        "The proportional-hazards assumption is violated (global p = 0.019): two of the "
        "selected ensemble's three members average effects that change over time, and its "
        "absolute risks may be off at some horizons. Prefer a model without this assumption "
        "(random survival forest)")
