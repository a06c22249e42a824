"""Free-text scrubbing: offline pattern recognizers for the Safe Harbor identifiers in notes.

Each recognizer finds one kind of identifier and names it with a tag; every found span is
replaced with ``[TAG]``. There is no statistical model and no download: the recognizers are
regular expressions of three sorts, from most to least specific:

1. **the record's own identifiers**: names (and their parts) taken from the record's name
   fields, and the literal values of its other identifier columns (MRN, phone, ...);
2. **labelled values**: a cue word and the value after it (``MRN: 00482913``, ``member ID
   XHP1234``, ``license plate 7ABC123``, ``serial no. PM-88213``); the cue decides the tag;
3. **formats**: dates in numeric and written forms, phone and fax numbers, e-mail, SSN, URLs,
   IPv4/IPv6, street addresses, ``City, ST 02139``, ages over 89 (in digits or words), image file
   names, VINs, long digit runs and letter-digit codes; names after a title, a relation or a
   label. Names and places are matched in any alphabet with capitals (García, Tromsø).

Ages of 89 and below, lone years, doses, vital signs and laboratory values are left alone.
Recall and precision on a seeded synthetic corpus are measured by ``benchmarks/privacy.py``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["TAGS", "Scrubbed", "Span", "scrub_text"]

# Tag -> the Safe Harbor identifier kind (45 CFR 164.514(b)(2)(i)) it stands for.
TAGS: dict[str, str] = {
    "NAME": "(A) names",
    "ADDRESS": "(B) street address",
    "LOCATION": "(B) city, county and other geographic subdivisions",
    "ZIP": "(B) ZIP code",
    "DATE": "(C) dates (except year)",
    "AGE": "(C) ages over 89",
    "PHONE": "(D) telephone numbers",
    "FAX": "(E) fax numbers",
    "EMAIL": "(F) e-mail addresses",
    "SSN": "(G) social security numbers",
    "MRN": "(H) medical record numbers",
    "HEALTH_PLAN": "(I) health plan beneficiary numbers",
    "ACCOUNT": "(J) account numbers",
    "LICENSE": "(K) certificate/license numbers",
    "VEHICLE": "(L) vehicle identifiers and serial numbers, license plates",
    "DEVICE": "(M) device identifiers and serial numbers",
    "URL": "(N) web URLs",
    "IP": "(O) IP addresses",
    "BIOMETRIC": "(P) biometric identifiers",
    "PHOTO": "(Q) full-face photographs and comparable images",
    "ID": "(R) any other unique identifying number or code",
}


@dataclass(frozen=True)
class Span:
    """One identifier found in a text: ``text[start:end]`` is replaced with ``[tag]``."""

    start: int
    end: int
    tag: str
    priority: int = 0


@dataclass
class Scrubbed:
    """The scrubbed text and the spans of the original that were replaced."""

    text: str
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True)
class _Recognizer:
    tag: str
    pattern: re.Pattern[str]
    group: int | str = 0
    priority: int = 1
    labelled: bool = False


# ---- the patterns ---------------------------------------------------------------------------


def _letter_classes() -> tuple[str, str]:
    """The insides of two character classes: capitals, and what follows a capital in a word.

    Python's ``re`` has no ``\\p{Lu}``: the classes are built from ``unicodedata`` over the
    Basic Multilingual Plane (every cased alphabet in use for names), as ranges, so names such as
    García, Müller-Lüdenscheidt or Ødegård and places such as Tromsø are whole. Small letters,
    modifier letters and combining marks follow a capital (``Garci`` + U+0301 is García too).
    """
    ranges: dict[bool, list[list[int]]] = {True: [], False: []}
    for code in range(0x10000):
        category = unicodedata.category(chr(code))
        if category not in ("Lu", "Lt", "Ll", "Lm", "Mn"):
            continue
        runs = ranges[category in ("Lu", "Lt")]
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    upper, lower = (
        "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                for a, b in ranges[capital]) for capital in (True, False))
    return upper, lower


_UP, _LOW = _letter_classes()
_UPPER = f"[{_UP}]"
_LOWER = f"[{_LOW}]"
_WORD = f"{_UPPER}{_LOWER}+"  # a capitalized word: Boston, Tromsø, Zürich

_MONTHS = ("Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           "Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?")
_MONTH = f"(?:{_MONTHS}|{_MONTHS.upper()})"
_MONTH_WORD = re.compile(rf"(?:{_MONTHS}|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|"
                         r"Sunday)\b", re.IGNORECASE)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_ORD = r"(?:st|nd|rd|th)?"
_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|"
           "NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR")
_STREET = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|"
           "Terrace|Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Row|Alley")
_ONES = "one|two|three|four|five|six|seven|eight|nine"
# Ages over 89 written out: ninety to ninety-nine, a hundred to a hundred and nineteen.
_SPELLED_OVER_89 = (rf"(?:ninety(?:[-\s](?:{_ONES}))?|(?:a|one)[-\s]hundred(?:(?:[-\s]and)?"
                    rf"[-\s](?:{_ONES}|ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|nine)"
                    r"teen))?)")
_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra|Rev)"
# A state is not an identifier under Safe Harbor: a place found by context that is a state is
# left in the text.
_STATE_NAMES = frozenset((
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut",
    "delaware", "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa", "kansas",
    "kentucky", "louisiana", "maine", "maryland", "massachusetts", "michigan", "minnesota",
    "mississippi", "missouri", "montana", "nebraska", "nevada", "new hampshire", "new jersey",
    "new mexico", "new york", "north carolina", "north dakota", "ohio", "oklahoma", "oregon",
    "pennsylvania", "rhode island", "south carolina", "south dakota", "tennessee", "texas",
    "utah", "vermont", "virginia", "washington", "west virginia", "wisconsin", "wyoming",
    "puerto rico"))
_CAP = rf"{_UPPER}[{_UP}{_LOW}'\-]+"
_RELATIONS = ("wife|husband|spouse|partner|daughter|son|mother|father|mom|dad|sister|brother|"
              "aunt|uncle|niece|nephew|grandson|granddaughter|grandmother|grandfather|friend|"
              "neighbou?r|caregiver|guardian|fianc[eé]e?|boyfriend|girlfriend|roommate|employer|"
              "landlord|cousin")
_NAME_LABELS = ("patient name|patient|pt|name|signed by|seen by|attending|resident|nurse|RN|NP|"
                "PA-C|contact|emergency contact|next of kin|NOK|referred by|referring|PCP|"
                "provider|physician|clinician|author|dictated by")
# A value after a cue: letters and digits with inner separators (a space only before digits);
# it must hold a digit and five letters or digits (checked by _looks_like_id).
_VALUE = r"(?P<value>(?=[A-Za-z0-9./-]*\d)[A-Za-z0-9]+(?:(?:[-./]| (?=\d{2}))[A-Za-z0-9]+)*)"
_CUE_GLUE = r"(?:\s*(?:(?:number|num|no|id|code)\b\.?|#))*\s*(?::|=|is\b|of\b)?\s*"
_UNITS = r"(?:MG|MCG|ML|KG|G|L|IU|MMHG|MEQ|MMOL|UNITS?|TABS?|CAPS?)"

_LABELLED: dict[str, str] = {
    "VEHICLE": r"licen[cs]e plates?|plates?|tag|VIN|vehicle identification|vehicle(?: serial)?",
    "MRN": (r"MRN|MR\s?#|medical record|record|chart|hospital|patient (?:id|number)|"
            r"unit number"),
    "HEALTH_PLAN": (r"member(?:ship)?(?: id)?|subscriber(?: id)?|policy|plan|insurance|"
                    r"beneficiary|medicare(?: beneficiary identifier)?|medicaid|group|MBI|"
                    r"health plan(?: beneficiary)?"),
    "ACCOUNT": (r"account|acct|billing(?: account)?|invoice|claim|encounter|visit|"
                r"bank account|routing"),
    "LICENSE": (r"(?:driver'?s?\s+)?licen[cs]e(?!\s+plate)|DEA|NPI|certificate|"
                r"certification|registration|passport|permit|board certification"),
    "DEVICE": (r"serial|S/N|SN|device(?: identifier)?|UDI|IMEI|implant|pacemaker|"
               r"defibrillator|pump|monitor|model"),
    "BIOMETRIC": (r"finger ?print(?: template| scan)?|voice ?print|retina(?:l)?(?: scan)?|"
                  r"iris(?: scan)?|biometric(?: template)?|palm ?print|face ?print|"
                  r"gait signature|dna profile"),
    "PHOTO": r"photo(?:graph)?|image|picture|selfie|headshot|portrait",
    "SSN": r"SSN|SS#|social security",
    "ID": (r"study|participant|subject|research|trial|enrollment|enrolment|case|badge|"
           r"employee|student|reference|ref|registry|biobank|specimen|sample|accession|"
           r"member of staff|staff"),
}


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _labelled(tag: str, cues: str) -> _Recognizer:
    return _Recognizer(tag, _compile(rf"\b(?:{cues})(?:(?<=#)|(?!\w)){_CUE_GLUE}{_VALUE}",
                                     re.IGNORECASE),
                       "value", priority=3, labelled=True)


def _looks_like_id(value: str) -> bool:
    return any(c.isdigit() for c in value) and sum(c.isalnum() for c in value) >= 5


_FORMATS: list[_Recognizer] = [
    # dates
    _Recognizer("DATE", _compile(rf"\b{_MON}[/-]{_DAY}[/-](?:\d{{4}}|\d{{2}})\b")),
    _Recognizer("DATE", _compile(rf"\b(?:1[3-9]|2\d|3[01])[/.]{_MON}[/.](?:\d{{4}}|\d{{2}})\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}\.{_MON}\.\d{{4}}\b")),
    _Recognizer("DATE", _compile(r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.]"
                                 r"(?:0?[1-9]|[12]\d|3[01])(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b")),
    _Recognizer("DATE", _compile(rf"\b{_MONTH}\.?\s+{_DAY}{_ORD}(?:,?\s+(?:19|20)\d{{2}})?\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}{_ORD}\s+(?:of\s+)?{_MONTH}\.?"
                                 r"(?:,?\s+(?:19|20)\d{2})?\b")),
    _Recognizer("DATE", _compile(rf"\b{_MONTH}\.?,?\s+(?:of\s+)?(?:19|20)\d{{2}}\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}([-/]){_MONTH}\1(?:\d{{4}}|\d{{2}})\b")),
    _Recognizer("DATE", _compile(rf"\b(?:on|since|from|until|till|dated|date:?|DOB:?)\s+"
                                 rf"(?P<value>{_MON}/{_DAY})\b", re.IGNORECASE), "value"),
    _Recognizer("DATE", _compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                                 r"(?:_\d{4,6})?\b")),
    # ages over 89
    _Recognizer("AGE", _compile(rf"\b(?:9\d|1[01]\d|{_SPELLED_OVER_89})\s*-?\s*(?:years?|yrs?)"
                                r"\s*-?\s*old\b|\b(?:9\d|1[01]\d)\s*(?:y/?o|yo|y\.o\.)(?!\w)",
                                re.IGNORECASE), priority=2),
    _Recognizer("AGE", _compile(rf"\b(?:age[ds]?|aged)\s*:?\s*(?P<value>9\d|1[01]\d|"
                                rf"{_SPELLED_OVER_89})\b", re.IGNORECASE), "value", priority=2),
    # contact
    _Recognizer("EMAIL", _compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), priority=6),
    _Recognizer("URL", _compile(r"\b(?:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:)\]]",
                                re.IGNORECASE), priority=6),
    _Recognizer("URL", _compile(r"\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io"
                                r"|info|me|us|co|health|biz)(?:/[^\s<>\"']*[^\s<>\"'.,;:)\]])?\b",
                                re.IGNORECASE), priority=6),
    _Recognizer("SSN", _compile(r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b"), priority=3),
    _Recognizer("PHONE", _compile(r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}"
                                  r"[\s.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?\b", re.IGNORECASE),
                priority=2),
    _Recognizer("IP", _compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d))"
                               r"{3}\b"), priority=3),
    _Recognizer("DEVICE", _compile(r"\b(?:[0-9A-F]{2}[:-]){5}[0-9A-F]{2}\b", re.IGNORECASE),
                priority=4),
    _Recognizer("IP", _compile(r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b|"
                               r"\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?",
                               re.IGNORECASE), priority=3),
    # places
    _Recognizer("ADDRESS", _compile(
        rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:{_WORD}\s+){{1,3}}(?:{_STREET})\b\.?"
        r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?\s*#?\s*[A-Z0-9-]+)?"), priority=2),
    _Recognizer("ADDRESS", _compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.IGNORECASE), priority=2),
    _Recognizer("LOCATION", _compile(rf"\b{_WORD}(?:\s+{_WORD}){{0,2}},\s+(?:{_STATES})"
                                     r"(?:\s+\d{5}(?:-\d{4})?)?\b"), priority=2),
    _Recognizer("LOCATION", _compile(
        r"\b(?i:lives|living|resides|residing|moved|relocated|born|grew up|hometown|"
        r"originally from|hails from)\s+(?i:in|to|at|is|from)?\s*"
        rf"(?P<value>{_WORD}(?:\s+{_WORD}){{0,2}})"), "value", priority=2),
    _Recognizer("LOCATION", _compile(rf"\b{_WORD}(?:\s+{_WORD})?\s+County\b"), priority=2),
    _Recognizer("ZIP", _compile(r"\b(?:zip(?:\s*code)?|postal\s*code|postcode)\s*:?\s*"
                                r"(?P<value>\d{5}(?:-\d{4})?)\b", re.IGNORECASE), "value", 3),
    # names by context
    _Recognizer("NAME", _compile(rf"\b{_TITLES}\.?\s+(?:{_UPPER}\.\s*)?{_CAP}"
                                 rf"(?:\s+{_CAP}){{0,2}}"),
                priority=2),
    _Recognizer("NAME", _compile(rf"\b(?i:{_RELATIONS})(?:,|\s+named|\s+is)?\s+"
                                 rf"(?P<value>{_CAP}(?:\s+{_CAP}){{0,2}})"), "value", priority=2),
    _Recognizer("NAME", _compile(rf"\b(?i:{_NAME_LABELS})\s*[:\-]\s*"
                                 rf"(?P<value>{_CAP}(?:,?\s+(?:{_CAP}|{_UPPER}\.))" r"{0,2})"),
                "value", priority=2),
    # images
    _Recognizer("PHOTO", _compile(r"\b[\w-]+\.(?:jpe?g|png|gif|bmp|tiff?|heic|webp|dcm)\b",
                                  re.IGNORECASE), priority=3),
    # numbers and codes without a label
    _Recognizer("VEHICLE", _compile(r"\b(?=[A-HJ-NPR-Z0-9]*[A-Z])(?=[A-HJ-NPR-Z0-9]*\d)"
                                    r"[A-HJ-NPR-Z0-9]{17}\b"), priority=1),
    _Recognizer("ID", _compile(r"\b\d{7,}\b"), priority=0),
    _Recognizer("ID", _compile(r"\b(?=[A-Z0-9-]*[A-Z])(?=(?:[A-Z-]*\d){4})[A-Z0-9]+(?:-[A-Z0-9]+)+"
                               r"\b"), priority=0),
    _Recognizer("ID", _compile(rf"\b(?=\w*\d{{3}})(?=\w*[A-Z]\w*[A-Z])(?![0-9]+{_UNITS}\b)"
                               r"[A-Z0-9]{6,}\b"), priority=0),
]

_RECOGNIZERS: list[_Recognizer] = [_labelled(tag, cues) for tag, cues in _LABELLED.items()]
_RECOGNIZERS += _FORMATS
_PHONE_CUES = re.compile(r"\b(?:(?P<fax>fax|facsimile)|phone|tel|telephone|cell|mobile|call|"
                         r"pager|contact)\b", re.IGNORECASE)


# ---- the record's own identifiers -------------------------------------------------------------


def _known_recognizers(known: Mapping[str, Iterable[object]] | None) -> list[_Recognizer]:
    """Recognizers for the record's own values: names by their parts, others literally."""
    if not known:
        return []
    found = []
    for tag, values in known.items():
        texts = [str(v).strip() for v in values if v is not None and str(v).strip()
                 and str(v).strip().lower() not in ("nan", "none")]
        if tag == "NAME":
            parts = {p for text in texts for p in re.split(r"[\s,]+", text) if len(p) >= 2}
            parts |= set(texts)
            if parts:
                names = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
                pattern = (rf"(?<!\w)(?:{_TITLES}\.?\s+|{_UPPER}\.\s?)?(?P<value>{names})"
                           r"(?:'s)?(?!\w)")
                found.append(_Recognizer("NAME", _compile(pattern, re.IGNORECASE), 0, 5))
        else:
            literal = [t for t in texts if len(t) >= 4]
            if literal:
                ordered = sorted(literal, key=len, reverse=True)
                alternatives = "|".join(re.escape(t) for t in ordered)
                found.append(_Recognizer(tag, _compile(rf"(?<!\w)(?:{alternatives})(?!\w)",
                                                       re.IGNORECASE), 0, 5))
    return found


def _name_case_ok(recognizer: _Recognizer, match: re.Match[str]) -> bool:
    """A record's name matched case-insensitively must still be capitalized in the text."""
    if recognizer.tag != "NAME" or recognizer.priority != 5:
        return True
    value = match.group("value")
    return value[:1].isupper()


def _accepted(recognizer: _Recognizer, match: re.Match[str]) -> bool:
    """Checks a regular expression cannot express: case, the shape of an id, states."""
    if recognizer.labelled:
        return _looks_like_id(match.group("value"))
    if recognizer.tag == "LOCATION" and recognizer.group == "value":
        value = match.group("value")
        return value.lower() not in _STATE_NAMES and not _MONTH_WORD.match(value)
    return _name_case_ok(recognizer, match)


# ---- scrubbing --------------------------------------------------------------------------------


def find_spans(text: str, known: Mapping[str, Iterable[object]] | None = None) -> list[Span]:
    """Every identifier span in ``text``, overlapping spans merged (higher priority names it)."""
    spans = []
    for recognizer in _known_recognizers(known) + _RECOGNIZERS:
        for match in recognizer.pattern.finditer(text):
            if not _accepted(recognizer, match):
                continue
            start, end = match.span(recognizer.group)
            if end <= start:
                continue
            tag = recognizer.tag
            if tag == "PHONE" and _is_fax(text[max(0, start - 30):start]):
                tag = "FAX"
            spans.append(Span(start, end, tag, recognizer.priority))
    return _merge(spans, text)


def _is_fax(before: str) -> bool:
    """Whether the nearest phone-like cue before a number is 'fax'."""
    cues = list(_PHONE_CUES.finditer(before))
    return bool(cues) and cues[-1].group("fax") is not None


def _merge(spans: list[Span], text: str) -> list[Span]:
    """Union of overlapping spans; names next to each other ("Smith, John") become one."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and _joins(merged[-1], span, text):
            last = merged[-1]
            tag = last.tag if last.priority >= span.priority else span.tag
            merged[-1] = Span(last.start, max(last.end, span.end), tag,
                              max(last.priority, span.priority))
        else:
            merged.append(span)
    return merged


def _joins(last: Span, span: Span, text: str) -> bool:
    if span.start < last.end:
        return True
    gap = text[last.end:span.start]
    return last.tag == span.tag == "NAME" and len(gap) <= 2 and not gap.strip(" ,")


def scrub_text(text: str, known: Mapping[str, Iterable[object]] | None = None) -> Scrubbed:
    """Replace every identifier in ``text`` with its tag, e.g. ``[NAME]``, ``[DATE]``.

    Parameters
    ----------
    text : str
        A clinical note or any free text.
    known : mapping of tag to values, optional
        The record's own identifiers: ``{"NAME": ["John Smith"], "MRN": ["00482913"]}``.
        Names are matched by each of their parts (``John``, ``Smith``), capitalized, with an
        optional title or initial before them; other values literally.

    Returns
    -------
    Scrubbed
        The new text and the replaced spans of the original.

    Examples
    --------
    >>> scrub_text("Seen 03/14/2021, call 617-555-0142.").text
    'Seen [DATE], call [PHONE].'
    """
    if not isinstance(text, str) or not text:
        return Scrubbed(text if isinstance(text, str) else "", [])
    spans = find_spans(text, known)
    pieces, cursor = [], 0
    for span in spans:
        pieces += [text[cursor:span.start], f"[{span.tag}]"]
        cursor = span.end
    pieces.append(text[cursor:])
    return Scrubbed("".join(pieces), spans)
