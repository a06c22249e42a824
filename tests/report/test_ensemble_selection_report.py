"""Report wording of why a risk run kept or replaced the ensemble."""

from __future__ import annotations

from permed.report._html import _ensemble_contest

CONTEST = {"family": "gradient_boosting", "families": 4, "selection_optimism": 0.0015,
           "gain_standard_error": 0.0033, "threshold": 0.0038}


def _text(selection: dict) -> str:
    (paragraph,) = _ensemble_contest(selection)
    return paragraph.text


def test_a_lead_within_the_noise_keeps_the_ensemble():
    text = _text({"ensemble_kept": True, "against_ensemble": {
        **CONTEST, "cv_gain": 0.001, "replaced_ensemble": False}})
    assert text == (
        "The best single family, gradient_boosting, led the ensemble by +0.0010 in mean CV "
        "C-index; less 0.0015 for having picked the best of 4 families (-0.0005), its lead had "
        "to exceed 0.0038 (one standard error of the per-fold gain): it did not, so the "
        "ensemble was kept.")


def test_a_clear_lead_replaces_the_ensemble():
    text = _text({"ensemble_kept": False, "against_ensemble": {
        **CONTEST, "cv_gain": 0.03, "replaced_ensemble": True}})
    assert text.endswith("(+0.0285), its lead had to exceed 0.0038 (one standard error of the "
                         "per-fold gain): it did, so it replaced the ensemble.")


def test_an_ensemble_ahead_in_cv_is_said_to_lead():
    text = _text({"ensemble_kept": True, "against_ensemble": {
        **CONTEST, "cv_gain": -0.002, "replaced_ensemble": False}})
    assert text == ("The ensemble had the highest mean CV C-index; the best single family, "
                    "gradient_boosting, trailed it by 0.0020.")


def test_an_ensemble_without_a_score_and_runs_without_the_contest():
    text = _text({"ensemble_kept": False, "against_ensemble": {
        "family": "coxph", "note": "the ensemble has no cross-validated C-index"}})
    assert text == ("The ensemble was not kept: the ensemble has no cross-validated C-index; "
                    "coxph was the best of the other families.")
    assert _ensemble_contest({"rule": "highest mean cross-validated Harrell's C-index"}) == []
