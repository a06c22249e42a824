"""Cities, towns and ZIP codes in notes (Safe Harbor (B)): found after an address, a state or a
location cue, and clinical phrases after the same cues left alone. States and countries stay."""

from __future__ import annotations

import pytest

from permed.privacy import scrub_text


@pytest.mark.parametrize(("text", "expected"), [
    # the hospital tester's notes
    ("Lives at 45 Oak Ave, Cambridge MA 02139.", "Lives at [ADDRESS], [LOCATION] MA [ZIP]."),
    ("lives in Cambridge MA 02139.", "lives in [LOCATION] MA [ZIP]."),
    ("Seen at 12 Main Street, Boston. Call back.", "Seen at [ADDRESS], [LOCATION]. Call back."),
    ("Ready to be discharged to Boston tomorrow.", "Ready to be discharged to [LOCATION] "
     "tomorrow."),
    ("Visiting from Zurich, Switzerland.", "Visiting from [LOCATION], Switzerland."),
    ("Patient Jürgen Müller from Zürich, aged 91.", "Patient [NAME] from [LOCATION], aged "
     "[AGE]."),
    # ZIP codes after a state, a city or an address, and ZIP+4
    ("Mail to PO Box 1234, Springfield MA 01103-4411.", "Mail to [ADDRESS], [LOCATION] MA "
     "[ZIP]."),
    ("Address: Worcester, Massachusetts 01608.", "Address: [LOCATION], Massachusetts [ZIP]."),
    ("He moved to Ohio 43210 last year.", "He moved to Ohio [ZIP] last year."),
    ("lives in Lowell 01852 with her son", "lives in [LOCATION] [ZIP] with her son"),
    ("New York, NY 10001", "[LOCATION], NY [ZIP]"),
    # places after the location cues
    ("She was transferred from Springfield to us.", "She was transferred from [LOCATION] to us."),
    ("Transferred to Fall River on day 3.", "Transferred to [LOCATION] on day 3."),
    ("Resides in Ann Arbor; born in Rio de Janeiro, Brazil.", "Resides in [LOCATION]; born in "
     "[LOCATION], Brazil."),
    ("A native of Wilkes-Barre who moved to North Andover.", "A native of [LOCATION] who moved "
     "to [LOCATION]."),
    ("A 45 yo from Eastchester presents.", "A 45 yo from [LOCATION] presents."),
    ("Mr. Okafor from Quincy called.", "[NAME] from [LOCATION] called."),
    ("Hometown: Pittsfield.", "Hometown: [LOCATION]."),
    ("She lives in St. Louis, MO.", "She lives in [LOCATION], MO."),
    ("Home in Tulsa, OK since 2019.", "Home in [LOCATION], OK since 2019."),
])
def test_cities_and_zip_codes_are_replaced_and_states_kept(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "Creatinine back to 1.1 from baseline 1.4; transferred from the ED to ICU.",
    "Transferred to ICU, then to Medicine; discharged to home with services.",
    "Discharged to Skilled Nursing Facility. Transferred to Step Down on Monday.",
    "Pain worse from Monday to Friday; PT from March.",
    "Years of follow-up after he was transferred from Hodgkin lymphoma clinic.",
    "Patient was transferred from Lyme disease clinic; she is from Parkinson's group.",
    "He was transferred from Outside Hospital to the Postanesthesia Care Unit.",
    "In 2019 she moved to Vermont; she is from Brazil; he returned from Mexico.",
    "Switched from Lasix to Bumex; rash from Bactrim.",
    "Vitals, OK. Hypertension, MI, CHF. Heparin, SC. Chest CT 12/3.",
])
def test_clinical_phrases_after_location_cues_are_kept(text):
    assert scrub_text(text).text == text


def test_a_long_number_after_a_state_code_is_no_zip_code():
    """'ID' and 'CT' are state codes too: an 11-digit device id is not a city's ZIP code."""
    text = "Device ID 49034643021 checked."
    assert [s.tag for s in scrub_text(text).spans] == ["DEVICE"]
