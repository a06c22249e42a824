"""Free-text formats the privacy audit found missed (REPORT A.4), and clinical text kept whole.

Each positive case was left unchanged by the scrubber before these formats were added; each
negative case is clinical shorthand of the same shape that must stay as written.
"""

from __future__ import annotations

import pytest

from permed.privacy import scrub_text


@pytest.mark.parametrize(("text", "expected"), [
    ("Patient is 90 years of age.", "Patient is [AGE]."),
    ("She is ninety-three years of age.", "She is [AGE]."),
    ("93F presenting with fall.", "[AGE] presenting with fall."),
    ("93 F presenting with fall.", "[AGE] presenting with fall."),
    ("A 101M with sepsis.", "A [AGE] with sepsis."),
    ("The patient, 96, lives alone.", "The patient, [AGE], lives alone."),
    ("The patient (ninety-four) lives alone.", "The patient ([AGE]) lives alone."),
    ("ninety-five yo woman", "[AGE] woman"),
    ("a one hundred and two y/o man", "a [AGE] man"),
])
def test_ages_over_89_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "A 67-year-old; 45F with asthma; 89 years of age.",
    "T 99 F; temp 101 F overnight; febrile to 102 F.",
    "She scored 96, 97 and 98 on the three tests.",
    "Patient, 96 mg given.",
    "Ninety days of amoxicillin.",
])
def test_ages_of_89_or_less_and_numbers_that_are_not_ages_are_kept(text):
    assert scrub_text(text).text == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Follow up 03/2021.", "Follow up [DATE]."),
    ("Last echo 11-2019.", "Last echo [DATE]."),
    ("Seen 3/21.", "Seen [DATE]."),
    ("Admitted 3/4 with pneumonia.", "Admitted [DATE] with pneumonia."),
    ("Discharged 7/8.", "Discharged [DATE]."),
    ("Seen 3/4, discharged 3/9.", "Seen [DATE], discharged [DATE]."),
    ("Next visit: 4/12.", "Next visit: [DATE]."),
    ("Follow-up 5/6 in clinic.", "Follow-up [DATE] in clinic."),
    ("Seen on 04.03.21.", "Seen on [DATE]."),
    ("Last seen Christmas 2020.", "Last seen [DATE]."),
    ("Fell on Thanksgiving Day 2019.", "Fell on [DATE]."),
    ("Since New Year's Eve, 2018.", "Since [DATE]."),
])
def test_dates_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "Pain 7/10; pain improved from 7/10 to 3/10.",
    "Strength improved from 4/5 to 5/5.",
    "BP 120/80, HR 72.",
    "Grade 3/4 neutropenia.",
    "Take 3/4 of the tablet; was on 1/2 tablet since then.",
    "Murmur 2/6 at the apex.",
    "Version 2.1.3 of the order set; version 10.4.21 of the EHR.",
    "Titer 1/2000.",
    "Every Christmas she visits her son.",
])
def test_fractions_scores_and_ratios_are_not_dates(text):
    assert scrub_text(text).text == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Ms. de la Cruz called.", "[NAME] called."),
    ("Dr. van der Berg reviewed.", "[NAME] reviewed."),
    ("Seen by Dr. Juan de la Cruz today.", "Seen by [NAME] today."),
    ("Mr. d'Arcy and Mrs. al-Hassan.", "[NAME] and [NAME]."),
    ("Patient Jane Doe reports pain.", "Patient [NAME] reports pain."),
    ("Pt John Q. Public seen.", "Pt [NAME] seen."),
    ("Pt. Ana María López seen.", "Pt. [NAME] seen."),
    ("Nurse Kelly Brown at bedside.", "Nurse [NAME] at bedside."),
    ("Patient name Jane Doe.", "Patient name [NAME]."),
    ("Bob Johnson (patient) and Maria Garcia-Lopez (wife) attended.",
     "[NAME] (patient) and [NAME] (wife) attended."),
])
def test_names_after_a_title_a_role_or_before_a_relation_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "Patient reports chest pain. Patient denies fever. Patient is stable.",
    "Pt states she feels better; pt has no complaints.",
    "Patient Education Materials given. Nurse Practitioner Note.",
    "Patient Care Plan reviewed with Nurse Navigator.",
    "PT OT Evaluation ordered; PT INR 2.3.",
    "Pt Metformin 500 mg; patient Lisinopril 10 mg daily.",
    "Dr. reviewed the chart; discussed with Dr. on call.",
    "Stage II (patient preference) and Heart Failure (patient reported).",
    "CD4 350; Stage II; HbA1c 7.2%; 2 mg/kg; T 37.5.",
])
def test_role_words_and_clinical_terms_are_not_names(text):
    assert scrub_text(text).text == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Lives at 221B Baker Street with her son.", "Lives at [ADDRESS] with her son."),
    ("Lives on Elm Street with her son.", "Lives on [ADDRESS] with her son."),
])
def test_addresses_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "Took 2 tablets; on Medicare Part D.",
    "Discharged to Rehab Unit on Main Campus.",
])
def test_words_near_address_shapes_are_kept(text):
    assert scrub_text(text).text == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Phone 555-0100.", "Phone [PHONE]."),
    ("tel 555 0100", "tel [PHONE]"),
    ("Pager 4-5678 for questions.", "Pager [PHONE] for questions."),
    ("Call back at 555.0100.", "Call back at [PHONE]."),
    ("Fax 555-0199.", "Fax [FAX]."),
    ("Pager 5-1234 or ext 4-5678.", "Pager [PHONE] or ext [PHONE]."),
])
def test_seven_digit_phone_numbers_with_a_cue_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "Call back in 2-3 days; WBC 4-5 per field.",
    "Platelets 150-400; LDL 100-129.",
])
def test_number_ranges_are_not_phone_numbers(text):
    assert scrub_text(text).text == text
