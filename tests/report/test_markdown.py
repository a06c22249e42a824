"""Required sections in both report formats, the Markdown report, and predict --explain."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from permed.cli.main import main
from permed.report import render_markdown, render_report, required_sections, write_markdown
from permed.report._card import REQUIRED_SECTIONS


def _html_sections(html: str) -> set[str]:
    return set(re.findall(r'<section id="([^"]+)"', html))


def _markdown_sections(text: str) -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>\n\n## ', text))


def test_every_required_section_is_in_both_formats(trust_run):
    run, _ = trust_run
    required = set(required_sections("diagnose"))
    assert {"model-card", "explanations", "tripod"} <= required
    html_missing = required - _html_sections(render_report(run))
    md_missing = required - _markdown_sections(render_markdown(run))
    assert not html_missing, f"report.html lacks the required sections {sorted(html_missing)}"
    assert not md_missing, f"report.md lacks the required sections {sorted(md_missing)}"


@pytest.mark.parametrize(("render", "sections"), [(render_report, _html_sections),
                                                  (render_markdown, _markdown_sections)])
def test_a_missing_required_section_is_detected(trust_run, monkeypatch, render, sections):
    run, _ = trust_run
    monkeypatch.setitem(REQUIRED_SECTIONS, "diagnose", [*REQUIRED_SECTIONS["diagnose"],
                                                         "not-a-section"])
    assert set(required_sections("diagnose")) - sections(render(run)) == {"not-a-section"}


def test_markdown_has_the_model_card_tripod_items_and_placeholders(trust_run):
    run, _ = trust_run
    text = write_markdown(run).read_text(encoding="utf-8")
    assert text.startswith("# permed model report \u2014 diagnose: disease\n")
    assert "| Intended use | **[To complete]** the clinical setting, target population" in text
    assert "| Sample size and events per variable |" in text
    assert "## Explanations: what drives the predictions" in text
    assert "## Glass-box scorecard" in text
    assert "- *Figure (in report.html): Beeswarm." in text
    assert "<span" not in text  # Markup is flattened to text
    metrics = json.loads((run / "metrics.json").read_text())
    top = next(iter(metrics["explanations"]["importance"]))
    assert f"| {top} |" in text


def test_the_html_report_shows_the_importance_bar_and_the_beeswarm(trust_run):
    run, _ = trust_run
    html = render_report(run)
    section = html[html.index('<section id="explanations"'):]
    section = section[:section.index("</section>")]
    assert section.count('<img src="data:image/png;base64,') == 2
    assert 'alt="Global importance"' in section
    assert 'alt="Beeswarm"' in section
    assert "raises the probability of disease = 1 by" in section or \
        "lowers the probability of disease = 1 by" in section


def test_cli_report_format_md_and_a_bad_format(trust_run, capsys):
    run, _ = trust_run
    assert main(["report", str(run), "--format", "md"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.md")
    assert main(["report", str(run), "--format", "pdf"]) == 1
    assert "--format must be html or md, got 'pdf'" in capsys.readouterr().err


def test_cli_predict_explain_adds_the_top_factors(trust_run, tmp_path):
    run, frame = trust_run
    frame.head(5).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--explain", "--quiet",
                 "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 5
    assert {"explanation", "top_factor_1", "top_factor_2", "top_factor_3",
            "explained_output"} <= set(out.columns)
    for text, first in zip(out["explanation"], out["top_factor_1"], strict=True):
        assert text.startswith(first + " ")
        assert len(text.split("; ")) == 3


def test_the_run_keeps_per_patient_explanations(trust_run):
    run, _ = trust_run
    metrics = json.loads((run / "metrics.json").read_text())
    entry = metrics["explanations"]
    assert (entry["scale"], entry["method"]) == ("probability", "permutation")
    assert set(entry["importance"]) == {"age", "chol", "sbp", "smoker"}
    details = json.loads((run / "explanations.json").read_text())
    rows = set(pd.read_csv(run / "predictions.csv")["row"])
    assert len(details["patients"]) == entry["patients"] == 60  # 60 of the 80 test patients
    assert entry["sample"] == "60 of 80 test patients, drawn at random"
    for patient, values in zip(details["patients"], details["values"], strict=True):
        assert patient["row"] in rows
        assert patient["base_value"] + sum(values) == pytest.approx(patient["prediction"],
                                                                    abs=1e-4)
