"""Seeded synthetic patients and notes carrying all 18 Safe Harbor identifier kinds.

For testing de-identification and measuring the text scrubber (``benchmarks/privacy.py``): every
identifier written into a note is recorded with its position and kind, each kind appears in
several formats, and the notes also carry clinical text that is *not* an identifier (doses,
vital signs, laboratory values, lone years, ages below 90, codes) so precision means something.
All names, numbers and places are invented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SeededNote", "phi_notes", "phi_table"]

_FIRST = ["John", "Maria", "Wei", "Aisha", "Carlos", "Olga", "Priya", "James", "Fatima", "Liam",
          "Sofia", "Kenji", "Amara", "Dmitri", "Lucia", "Noah", "Chloe", "Ibrahim", "Elena",
          "Mateo", "Hannah", "Ravi", "Grace", "Tomasz", "Nadia", "Samuel", "Yuki", "Omar",
          "Ingrid", "Diego", "Leila", "Patrick", "Mei", "Kwame", "Astrid", "Jorge"]
_LAST = ["Smith", "Lopez", "Chen", "Okafor", "Garcia", "Petrova", "Patel", "O'Brien", "Haddad",
         "Murphy", "Rossi", "Tanaka", "Mensah", "Volkov", "Fernandez", "Nguyen", "Dubois",
         "Rahman", "Kowalski", "Alvarez", "Schmidt", "Sharma", "Johansson", "Kim", "Costa",
         "Novak", "Yamamoto", "Hassan", "Larsen", "Moreno", "Farouk", "Walsh", "Wong",
         "Asante", "Lindqvist", "Herrera", "McAllister", "Abernathy"]
_CITIES = ["Springfield", "Worcester", "New Bedford", "Fall River", "Lowell", "Pittsfield",
           "Brockton", "Quincy", "Framingham", "Haverhill", "Salem", "Chicopee", "Taunton",
           "Fort Wayne", "Grand Rapids", "Ann Arbor", "Boulder", "Eugene", "Santa Fe"]
_STATES = ["MA", "NH", "CT", "RI", "NY", "VT", "ME", "MI", "IN", "CO", "OR", "NM"]
_COUNTIES = ["Hampden", "Berkshire", "Essex", "Bristol", "Plymouth", "Middlesex", "Norfolk"]
_STREETS = ["Main", "Oak", "Elm", "Maple", "Cedar", "Pine", "Washington", "Lake", "Hill",
            "Park", "Chestnut", "Walnut", "Highland", "Sunset", "Church"]
_SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Court", "Way"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_DOMAINS = ["example.org", "mail.example.com", "inbox.example.net", "uni.example.edu"]

_CLINICAL = [
    "BP {sbp}/{dbp}, HR {hr}, RR 16, SpO2 {spo2}% on room air, temp 98.{t} F.",
    "Metformin {dose} mg twice daily; lisinopril 10mg daily; atorvastatin 40 MG at bedtime.",
    "HbA1c {a1c}%, LDL {ldl} mg/dL, creatinine 1.{cr}, eGFR {egfr}, WBC 11.2, platelets "
    "250,000.",
    "History of T2DM diagnosed in {year}, CKD stage 3, and COVID-19 in 2020.",
    "ICD-10 E11.9; CPT 99214; procedure code 0DTJ4ZZ.",
    "A {young}-year-old sibling has asthma.",
    "Follow up in {months} months; repeat labs in 6 weeks.",
    "Ejection fraction 35-40%; NYHA class II; BMI 31.4 kg/m2.",
    "Given 2 L O2 via nasal cannula, albuterol q6h, 1/2 tab as needed; pain {pain}/10.",
    "CD4 count {cd4} cells/uL, viral load <20 copies/mL, ferritin 1200 ng/mL.",
    "Mother: HTN. Father: MI at {young}.",
    "EKG at 14:30 showed sinus rhythm; troponin negative x2.",
    "Patient denies chest pain, fever or chills; tolerating diet.",
    "Room 412, bed B; fall precautions; vitamin D 50000 IU weekly, B12 1000 mcg daily.",
    "Plan: continue current regimen, insulin glargine 20 units at night.",
    "Hemoglobin 9.8 g/dL, INR 1.1, potassium 4.2 mmol/L, sodium 138.",
    "Parkinson disease and Crohn disease in the family; screened with PHQ-9 score 6.",
    "Stage IIIA, HER2 negative, ER positive; Ki-67 20%; BRCA1 not detected.",
    "In {year} she moved to Vermont; referred to Mass General Hospital for a second opinion.",
    "Insurance: Medicare Part B; case discussed at the tumor board; sample sent to the lab.",
    "Attending: Agree with the assessment and plan above.",
    "Take 1 tab by mouth 3 times daily for 10 days; MELD score 14; Wells score 4.5.",
    "May need further imaging in June; last A1c in {month_name}.",
    "Bed 12, Unit 4B, Ward 7; contact precautions; Dr. on call notified at 02:15.",
]


@dataclass
class SeededNote:
    """A synthetic note, the identifier spans in it, and the record's own identifiers."""

    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    known: dict[str, list[str]] = field(default_factory=dict)

    @property
    def values(self) -> list[tuple[str, str]]:
        """``(kind, text)`` of every seeded identifier."""
        return [(kind, self.text[a:b]) for a, b, kind in self.spans]


Segment = str | tuple[str, str]


class _Person:
    """One invented patient with a value of every identifier kind."""

    def __init__(self, rng: np.random.Generator, index: int) -> None:
        self.rng = rng
        self.first = self.pick(_FIRST)
        self.last = self.pick(_LAST)
        self.relative = f"{self.pick(_FIRST)} {self.pick(_LAST)}"
        self.doctor = self.pick(_LAST)
        self.city, self.state = self.pick(_CITIES), self.pick(_STATES)
        self.zip = f"{self.int(1001, 99950):05d}"
        self.street = f"{self.int(1, 9999)} {self.pick(_STREETS)} {self.pick(_SUFFIXES)}"
        self.age = int(self.int(91, 104)) if index % 3 == 0 else int(self.int(30, 88))
        self.digits = lambda n: "".join(str(d) for d in rng.integers(0, 10, n))
        self.mrn = f"{self.int(10, 99)}{self.digits(6)}"
        self.phone = f"{self.int(201, 989)}{self.int(200, 999)}{self.int(1000, 9999)}"
        self.fax = f"{self.int(201, 989)}{self.int(200, 999)}{self.int(1000, 9999)}"
        self.ssn = f"{self.int(100, 899)}-{self.int(10, 99)}-{self.int(1000, 9999)}"

    def pick(self, items: list[str]) -> str:
        return str(items[int(self.rng.integers(len(items)))])

    def int(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high))

    def code(self, letters: int, digits: int) -> str:
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ"
        head = "".join(alphabet[i] for i in self.rng.integers(0, len(alphabet), letters))
        return head + self.digits(digits)

    def date(self) -> str:
        year, month, day = self.int(1995, 2024), self.int(1, 13), self.int(1, 29)
        name = _MONTHS[month - 1]
        formats = [f"{month:02d}/{day:02d}/{year}", f"{month}/{day}/{str(year)[2:]}",
                   f"{year}-{month:02d}-{day:02d}", f"{name} {day}, {year}",
                   f"{day} {name[:3]} {year}", f"{name[:3]}. {day}th", f"{day}th of {name} {year}",
                   f"{name} {year}", f"{day}.{month:02d}.{year}"]
        return self.pick(formats)

    def phone_text(self, digits: str) -> str:
        a, b, c = digits[:3], digits[3:6], digits[6:]
        return self.pick([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}",
                          f"{a} {b} {c}", f"{a}-{b}-{c} ext. {self.int(10, 99)}"])


def _sentences(p: _Person) -> dict[str, list[Callable[[], list[Segment]]]]:
    """Sentence makers for each kind; each returns plain text and ``(kind, value)`` parts."""
    full = lambda: p.pick([f"{p.first} {p.last}", f"{p.last}, {p.first}",  # noqa: E731
                           f"{p.first} {p.last}".upper(), f"{p.first[0]}. {p.last}"])
    email = lambda: p.pick([f"{p.first}.{p.last}".lower().replace("'", ""),  # noqa: E731
                            f"{p.first[0]}{p.last}{p.int(1, 99)}".lower().replace("'", ""),
                            f"{p.first}.{p.last}".replace("'", "")]) + "@" + p.pick(_DOMAINS)
    # Only an age over 89 is an identifier; younger ages stay as plain text.
    age: Segment = ("AGE", str(p.age)) if p.age > 89 else str(p.age)
    return {
        "NAME": [lambda: ["Patient: ", ("NAME", full()), "."],
                 lambda: [("NAME", p.first), " reports feeling better today."],
                 lambda: ["Seen with her daughter ", ("NAME", p.relative), " at the bedside."],
                 lambda: ["Discussed the plan with Dr. ", ("NAME", p.doctor), "."],
                 lambda: ["Mr. ", ("NAME", p.last), " tolerated the procedure well."],
                 lambda: ["Emergency contact: ", ("NAME", p.relative), "."]],
        "DATE": [lambda: ["Admitted on ", ("DATE", p.date()), " for chest pain."],
                 lambda: ["Date of birth: ", ("DATE", p.date()), "."],
                 lambda: ["Last colonoscopy ", ("DATE", p.date()), ", normal."],
                 lambda: ["Follow-up scheduled for ", ("DATE", p.date()), "."],
                 lambda: ["Symptoms began on ", ("DATE", f"{p.int(1, 13)}/{p.int(1, 29)}"), "."]],
        "AGE": [lambda: ["A ", age, "-year-old presents with dyspnea."],
                lambda: ["Patient is ", age, " yo and lives alone."],
                lambda: ["Aged ", age, ", still walks daily."],
                lambda: ["Age: ", age, "."]],
        "PHONE": [lambda: ["Call back at ", ("PHONE", p.phone_text(p.phone)), "."],
                  lambda: ["Phone: ", ("PHONE", p.phone_text(p.phone)), "."],
                  lambda: ["Reached the family on ", ("PHONE", p.phone_text(p.phone)), "."]],
        "FAX": [lambda: ["Records faxed to ", ("FAX", p.phone_text(p.fax)), "."],
                lambda: ["Fax: ", ("FAX", p.phone_text(p.fax)), "."]],
        "EMAIL": [lambda: ["Prefers e-mail at ", ("EMAIL", email()), "."],
                  lambda: ["Email: ", ("EMAIL", email()), "."]],
        "SSN": [lambda: ["SSN ", ("SSN", p.ssn), " on file."],
                lambda: ["Social security number ", ("SSN", p.ssn.replace("-", " ")), "."],
                lambda: ["SSN: ", ("SSN", p.ssn.replace("-", "")), "."]],
        "MRN": [lambda: ["MRN: ", ("MRN", p.mrn), "."],
                lambda: ["Medical record number ", ("MRN", f"{p.mrn[:4]}-{p.mrn[4:]}"), "."],
                lambda: ["MR# ", ("MRN", "A" + p.mrn), " reviewed."]],
        "HEALTH_PLAN": [lambda: ["Member ID: ", ("HEALTH_PLAN", p.code(3, 9)), "."],
                        lambda: ["Medicare ID ", ("HEALTH_PLAN", f"{p.int(1, 9)}EG{p.int(1, 9)}-"
                                                  f"TE{p.int(1, 9)}-MK{p.int(10, 99)}"), "."],
                        lambda: ["Health plan beneficiary number ",
                                 ("HEALTH_PLAN", p.code(1, 7)), "."],
                        lambda: ["Policy no. ", ("HEALTH_PLAN", f"{p.int(10, 99)}-"
                                                 f"{p.int(1000, 9999)}-A"), "."]],
        "ACCOUNT": [lambda: ["Account number ", ("ACCOUNT", f"00{p.int(10, 99)}-"
                                                f"{p.int(100, 999)}-{p.int(100, 999)}"), "."],
                    lambda: ["Acct #: ", ("ACCOUNT", p.digits(8)), "."],
                    lambda: ["Billing account ", ("ACCOUNT", "AC-" + p.digits(5)), "."]],
        "LICENSE": [lambda: ["Driver's license ", ("LICENSE", p.code(1, 7)), " copied."],
                    lambda: ["License no. ", ("LICENSE", f"S{p.int(100, 999)}-{p.digits(4)}-"
                                              f"{p.digits(4)}"), "."],
                    lambda: ["DEA # ", ("LICENSE", p.code(2, 7)), "."],
                    lambda: ["Certificate number ", ("LICENSE", "CERT-" + p.digits(5)), "."]],
        "VEHICLE": [lambda: ["License plate ", ("VEHICLE", f"{p.int(1, 9)}{p.code(3, 3)}"), "."],
                    lambda: ["Car at the entrance, plate: ", ("VEHICLE", p.code(3, 4)), "."],
                    lambda: ["VIN ", ("VEHICLE", "1HG" + p.code(2, 5) + "A" + p.digits(6)), "."]],
        "DEVICE": [lambda: ["Pacemaker serial number ", ("DEVICE", f"PM-{p.digits(5)}-X"), "."],
                   lambda: ["Device ID ", ("DEVICE", p.digits(14)), "."],
                   lambda: ["Insulin pump S/N ", ("DEVICE", p.digits(4) + "XQ" + p.digits(1)),
                            "."],
                   lambda: ["Glucose monitor IMEI ", ("DEVICE", p.digits(15)), "."]],
        "URL": [lambda: ["Blog at ", ("URL", f"www.{p.first.lower()}{p.int(1, 99)}blog.net"), "."],
                lambda: ["Profile: ", ("URL", f"https://social.example.com/{p.first.lower()}."
                                              f"{p.int(1000, 9999)}"), "."],
                lambda: ["Portal page ", ("URL", f"http://portal.example.org/u/{p.digits(5)}"),
                         "."]],
        "IP": [lambda: ["Portal login from IP ", ("IP", f"{p.int(11, 223)}.{p.int(0, 255)}."
                                                        f"{p.int(0, 255)}.{p.int(1, 254)}"), "."],
               lambda: ["Telehealth session from ", ("IP", f"2001:db8::{p.int(16, 255):x}:"
                                                           f"{p.int(4096, 65535):x}"), "."]],
        "BIOMETRIC": [lambda: ["Fingerprint ID ", ("BIOMETRIC", f"FP-{p.digits(5)}-3"), "."],
                      lambda: ["Voiceprint ", ("BIOMETRIC", f"VP{p.digits(4)}AX"), " enrolled."],
                      lambda: ["Retinal scan ID ", ("BIOMETRIC", "RS-" + p.digits(5)), "."]],
        "PHOTO": [lambda: ["Full-face photograph on file: ", ("PHOTO", f"IMG_{p.digits(4)}.jpg"),
                           "."],
                  lambda: ["Wound photo saved as ", ("PHOTO", f"face_{p.digits(5)}.png"), "."]],
        "ID": [lambda: ["Study ID ", ("ID", f"RX-{p.int(10, 99)}-{p.int(2010, 2024)}-A"), "."],
               lambda: ["Participant code ", ("ID", p.code(2, 4) + "K"), "."],
               lambda: ["Biobank sample ", ("ID", "BB-" + p.digits(7)), " stored."]],
        "ADDRESS": [lambda: ["Lives at ", ("ADDRESS", p.street), "."],
                    lambda: ["Mail to ", ("ADDRESS", f"PO Box {p.int(100, 9999)}"), "."],
                    lambda: ["Home: ", ("ADDRESS", f"{p.street}, Apt {p.int(1, 9)}B"), "."]],
        "LOCATION": [lambda: ["Lives in ", ("LOCATION", p.city), " with her husband."],
                     lambda: ["Grew up in ", ("LOCATION", p.city), "."],
                     lambda: ["Resides in ", ("LOCATION", p.pick(_COUNTIES)), " County."]],
        "ZIP": [lambda: ["Address on file: ", ("ADDRESS", p.street), ", ", ("LOCATION", p.city),
                         f", {p.state} ", ("ZIP", p.zip), "."],
                lambda: ["ZIP ", ("ZIP", p.zip), "."],
                lambda: ["Zip code ", ("ZIP", f"{p.zip}-{p.digits(4)}"), "."]],
    }


def _assemble(parts: list[Segment], note: SeededNote) -> None:
    for part in parts:
        if isinstance(part, str):
            note.text += part
        else:
            kind, value = part
            start = len(note.text)
            note.text += value
            note.spans.append((start, len(note.text), kind))
    note.text += " "


def _clinical(rng: np.random.Generator) -> str:
    template = _CLINICAL[int(rng.integers(len(_CLINICAL)))]
    values = {"sbp": rng.integers(100, 170), "dbp": rng.integers(60, 100),
              "hr": rng.integers(55, 110), "spo2": rng.integers(90, 100), "t": rng.integers(0, 9),
              "dose": rng.choice([500, 850, 1000]), "a1c": round(float(rng.uniform(5, 11)), 1),
              "ldl": rng.integers(60, 190), "cr": rng.integers(0, 9), "egfr": rng.integers(30, 99),
              "year": rng.integers(1990, 2023), "young": rng.integers(20, 89),
              "months": rng.integers(1, 12), "pain": rng.integers(0, 10),
              "cd4": rng.integers(50, 900), "month_name": _MONTHS[int(rng.integers(12))]}
    return template.format(**values) + " "


def phi_notes(n: int = 200, seed: int = 0, per_kind: int = 1) -> list[SeededNote]:
    """``n`` notes, each with every identifier kind ``per_kind`` times and clinical filler.

    Parameters
    ----------
    n : int
        Number of notes (one invented patient each).
    seed : int
        Seed of every random choice.
    per_kind : int
        Sentences per identifier kind in each note.

    Returns
    -------
    list of SeededNote
    """
    rng = np.random.default_rng(seed)
    return [_note(_Person(rng, index), rng, per_kind) for index in range(n)]


def _note(person: _Person, rng: np.random.Generator, per_kind: int) -> SeededNote:
    makers = _sentences(person)
    chunks: list[list[Segment] | str] = []
    for options in makers.values():
        for _ in range(per_kind):
            chunks.append(options[int(rng.integers(len(options)))]())
    chunks += [_clinical(rng) for _ in range(8)]
    note = SeededNote("", [], {"NAME": [person.first, person.last], "MRN": [person.mrn]})
    for position in rng.permutation(len(chunks)):
        chunk = chunks[position]
        if isinstance(chunk, str):
            note.text += chunk
        else:
            _assemble(chunk, note)
    note.text = note.text.rstrip()
    return note


def phi_table(n: int = 30, seed: int = 0) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A patient table with a column for every identifier kind, a note, features and a target.

    Returns
    -------
    frame : pandas.DataFrame
        ``patient_id`` (the MRN), name, address, city, zip, dates, age, contact numbers, plan,
        account, licence, plate, device, URL, IP, fingerprint, photo and study code columns,
        ``note``, and features ``sbp``, ``sex`` with target ``disease``.
    seeded : dict of str to list of str
        Every identifier value written, by column (the note's by kind), for grepping outputs.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    seeded: dict[str, list[str]] = {}
    for index in range(n):
        p = _Person(rng, index)
        admit = pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(0, 900)))
        discharge = admit + pd.Timedelta(days=int(rng.integers(1, 30)))
        row = {
            "patient_id": p.mrn, "first_name": p.first, "last_name": p.last,
            "street": p.street, "city": p.city, "zip": p.zip,
            "birth_date": (admit - pd.Timedelta(days=365 * p.age + 40)).strftime("%m/%d/%Y"),
            "admit_date": admit.strftime("%m/%d/%Y"), "discharge_date": discharge.strftime(
                "%m/%d/%Y"), "age": p.age, "phone": p.phone_text(p.phone),
            "fax": p.phone_text(p.fax), "email": f"{p.first}.{p.last}{index}@example.org".lower()
            .replace("'", ""), "ssn": p.ssn, "health_plan_id": p.code(3, 9),
            "account_number": "AC-" + p.digits(7), "license_number": p.code(1, 8),
            "vehicle_plate": f"{p.int(1, 9)}{p.code(3, 3)}", "device_serial": f"PM-{p.digits(6)}",
            "url": f"https://social.example.com/{p.first.lower()}{index}{p.digits(4)}",
            "ip_address": f"{p.int(11, 223)}.{p.int(0, 255)}.{p.int(0, 255)}.{p.int(1, 254)}",
            "fingerprint_id": f"FP-{p.digits(6)}", "photo_file": f"face_{p.digits(6)}.jpg",
            "study_code": f"RX-{p.digits(5)}-A",
            "sbp": int(rng.integers(100, 170)), "sex": p.pick(["F", "M"]),
        }
        note = _note(p, rng, 1)
        own = (f"{p.first} {p.last} (MRN {p.mrn}) seen on {row['admit_date']}; phone "
               f"{row['phone']}, e-mail {row['email']}. ")
        row["note"] = own + note.text
        row["disease"] = int(row["sbp"] > 135) if index % 5 else int(rng.integers(0, 2))
        for column in row:
            if column not in ("age", "sbp", "sex", "disease", "note"):
                seeded.setdefault(column, []).append(str(row[column]))
        for kind, value in note.values:
            seeded.setdefault(f"note:{kind}", []).append(value)
        rows.append(row)
    return pd.DataFrame(rows), seeded
