"""The clinician web page end to end in headless Chromium (Debian's package, driven by Playwright).

The screenshot is kept in test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PATIENT = {"age": "9", "heart_rate": "128", "resp_rate": "34", "temperature": "103.1",
           "spo2": "90", "weight": "61"}


@pytest.fixture(scope="module")
def page(live, chromium_page):
    with chromium_page(live.url + "/") as page:
        yield page


def test_a_wrong_key_is_refused(page):
    page.fill("#api-key", "pmd_000000000000_wrong")
    page.click("#sign-in")
    # a locator assertion, not wait_for_function: that one polls with eval, which the page's
    # Content-Security-Policy refuses whenever the answer is not there at the first look
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#signin-error")).to_have_text("This API key is not valid.")


def test_clinician_signs_in_fills_a_patient_and_reads_the_answer(page, live):
    page.fill("#api-key", live.keys["alice"])
    page.click("#sign-in")
    page.wait_for_selector("#workspace", state="visible")
    page.wait_for_selector("#f-mean_radius")  # the first model's form
    page.select_option("#model", "vitals")
    page.wait_for_selector("#f-temperature")
    assert "[degF]" in page.text_content("[data-field='temperature'] label")
    assert "valid 86–113" in page.text_content("[data-field='temperature'] small")
    for name, value in PATIENT.items():
        page.fill(f"#f-{name}", value)
    page.select_option("#f-sex", "M")
    page.click("#predict")
    page.wait_for_selector("#result", state="visible")
    summary = page.text_content("#result-summary")
    assert summary.startswith("admitted = ")
    assert page.text_content("#gauge-value").endswith("%")
    assert page.locator("#waterfall rect").count() >= 3
    assert page.locator("#factor-list li").count() >= 3
    assert "vitals" in page.text_content("#result-model")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-clinician-page.png"), full_page=True)
    assert (ARTIFACTS / "serve-clinician-page.png").stat().st_size > 10_000
    assert page.problems == []


def test_a_bad_value_is_shown_on_its_field(page):
    page.fill("#f-temperature", "37")  # Celsius typed into a Fahrenheit field
    page.click("#predict")
    page.wait_for_selector("[data-field='temperature'].bad")
    assert ("field 'patient.temperature' is below its valid range [86, 113] [degF]: check "
            "the value and its unit") in page.text_content("#errors")
