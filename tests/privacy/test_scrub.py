"""Free-text scrubbing: each Safe Harbor kind in several formats, and clinical text left alone."""

from __future__ import annotations

import pytest

from permed.privacy import scrub_text
from permed.privacy._synthetic import phi_notes
from permed.privacy._text import find_spans


@pytest.mark.parametrize(("text", "expected"), [
    ("Seen 03/14/2021.", "Seen [DATE]."),
    ("Seen 3/14/21 and 2021-03-14.", "Seen [DATE] and [DATE]."),
    ("Born March 14, 1931; seen 14 Mar 2021 and Mar. 14th.", "Born [DATE]; seen [DATE] and "
     "[DATE]."),
    ("Symptoms began on 3/14; pain 4/10.", "Symptoms began on [DATE]; pain 4/10."),
    ("A 93-year-old woman; aged 91; 95 yo; age: 102.", "A [AGE] woman; aged [AGE]; [AGE]; "
     "age: [AGE]."),
    ("Call (617) 555-0142 or +1 617 555 0142.", "Call [PHONE] or [PHONE]."),
    ("Fax: 617.555.0199.", "Fax: [FAX]."),
    ("Email J.Smith+1@mail.example.com today.", "Email [EMAIL] today."),
    ("SSN 123-45-6789; social security number 123 45 6789.", "SSN [SSN]; social security "
     "number [SSN]."),
    ("MRN: 00482913; MR# A0048291.", "MRN: [MRN]; MR# [MRN]."),
    ("Member ID: XHP123456789; Medicare ID 1EG4-TE5-MK73.", "Member ID: [HEALTH_PLAN]; Medicare "
     "ID [HEALTH_PLAN]."),
    ("Acct #: 77182934.", "Acct #: [ACCOUNT]."),
    ("Driver's license D1234567; DEA # AB1234563.", "Driver's license [LICENSE]; DEA # "
     "[LICENSE]."),
    ("License plate 7ABC123; VIN 1HGCM82633A004352.", "License plate [VEHICLE]; VIN [VEHICLE]."),
    ("Pacemaker serial number PM-88213-X; MAC 00:1A:2B:3C:4D:5E.", "Pacemaker serial number "
     "[DEVICE]; MAC [DEVICE]."),
    ("See https://social.example.com/john.4421 or www.jsblog.net.", "See [URL] or [URL]."),
    ("Login from 192.168.14.201 and 2001:db8::ff00:42.", "Login from [IP] and [IP]."),
    ("Fingerprint ID FP-99812-3; voiceprint VP2291AX.", "Fingerprint ID [BIOMETRIC]; voiceprint "
     "[BIOMETRIC]."),
    ("Photo on file: IMG_2034.jpg.", "Photo on file: [PHOTO]."),
    ("Study ID RX-55-2019-A; participant code ZQ7741K.", "Study ID [ID]; participant code [ID]."),
    ("Lives at 45 Oak Ave., Apt 4B.", "Lives at [ADDRESS]."),
    ("Mail to PO Box 1234, Springfield, MA 01103.", "Mail to [ADDRESS], [LOCATION], MA "
     "[ZIP]."),
    ("Lives in New Bedford with her son; ZIP 02139.", "Lives in [LOCATION] with her son; ZIP "
     "[ZIP]."),
    ("Seen with her daughter Maria Lopez and Dr. Alvarez.", "Seen with her daughter [NAME] and "
     "[NAME]."),
    ("Emergency contact: Omar Haddad.", "Emergency contact: [NAME]."),
])
def test_each_kind_is_replaced_by_its_tag(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Follow up with Dr. García.", "Follow up with [NAME]."),
    ("Daughter Ana María López called.", "Daughter [NAME] called."),
    ("Dr. Müller-Lüdenscheidt reviewed.", "[NAME] reviewed."),
    ("Emergency contact: Ødegård, Ingrid.", "Emergency contact: [NAME]."),
    ("Ingrid lives in Tromsø with her son.", "Ingrid lives in [LOCATION] with her son."),
    ("Seen by Dr. Garci\u0301a.", "Seen by [NAME]."),  # García with a combining accent
])
def test_accented_names_and_places_are_replaced_whole(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Seen 14-Mar-2021 and 3/APR/21.", "Seen [DATE] and [DATE]."),
    ("A ninety-two years old woman; aged ninety; a one hundred and three-year-old man.",
     "A [AGE] woman; aged [AGE]; a [AGE] man."),
])
def test_written_dates_and_ages_over_89_are_replaced(text, expected):
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", [
    "BP 128/82, HR 72, SpO2 97% on room air, temp 98.6 F.",
    "Metformin 500 mg twice daily; atorvastatin 40 MG at bedtime; B12 1000 mcg daily.",
    "HbA1c 7.2%, LDL 104 mg/dL, platelets 250,000; ICD-10 E11.9; CPT 99214.",
    "History of T2DM diagnosed in 2015 and COVID-19 in 2020.",
    "A 67-year-old man; follow up in 3 months; pain 4/10; EKG at 14:30.",
    "Mother: HTN. Father: MI at 60. In 2019 she moved to Vermont.",
    "Stage IIIA, HER2 negative; Ki-67 20%; BRCA1 not detected; procedure code 0DTJ4ZZ.",
    "Ninety days of amoxicillin; ninety percent adherence; a 92 mg dose.",
    "Échocardiographie normale. Überweisung an Kardiologie. Señal estable.",
])
def test_clinical_text_is_left_alone(text):
    assert scrub_text(text).text == text


@pytest.mark.parametrize("written", ["John Smith", "Smith, John", "JOHN SMITH", "J. Smith",
                                     "Mr. Smith", "Smith's"])
def test_the_records_own_names_are_found_in_any_form(written):
    scrubbed = scrub_text(f"Seen {written} today.", {"NAME": ["John", "Smith"]}).text
    assert "Smith" not in scrubbed.replace("SMITH", "Smith")
    assert "[NAME]" in scrubbed


def test_a_name_that_is_also_a_word_is_matched_only_capitalized():
    scrubbed = scrub_text("Will said he will come.", {"NAME": ["Will Turner"]}).text
    assert scrubbed == "[NAME] said he will come."


def test_the_records_other_identifiers_are_matched_literally():
    text = "Chart reviewed, ref A-778812 noted."
    assert scrub_text(text, {"ID": ["A-778812"]}).text == "Chart reviewed, ref [ID] noted."


def test_recall_and_precision_on_a_seeded_corpus():
    """The benchmark's measure on a small corpus (benchmarks/privacy.py runs the full one)."""
    notes = phi_notes(40, seed=11)
    found = covered = predicted = correct = 0
    for note in notes:
        spans = find_spans(note.text, note.known)
        hit = {i for s in spans for i in range(s.start, s.end)}
        found += len(note.spans)
        covered += sum(all(i in hit for i in range(a, b)) for a, b, _ in note.spans)
        predicted += len(spans)
        correct += sum(any(s.start < b and a < s.end for a, b, _ in note.spans) for s in spans)
    assert covered / found >= 0.98
    assert correct / predicted >= 0.90


def test_every_safe_harbor_kind_is_seeded():
    kinds = {kind for note in phi_notes(20, seed=0) for _, _, kind in note.spans}
    assert kinds == {"NAME", "ADDRESS", "LOCATION", "ZIP", "DATE", "AGE", "PHONE", "FAX",
                     "EMAIL", "SSN", "MRN", "HEALTH_PLAN", "ACCOUNT", "LICENSE", "VEHICLE",
                     "DEVICE", "URL", "IP", "BIOMETRIC", "PHOTO", "ID"}
