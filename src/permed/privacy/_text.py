"""Free-text scrubbing: offline pattern recognizers for the Safe Harbor identifiers in notes.

Each recognizer finds one kind of identifier and names it with a tag; every found span is
replaced with ``[TAG]``. There is no statistical model and no download: the recognizers are
regular expressions of three sorts, from most to least specific:

1. **the record's own identifiers**: names (and their parts) taken from the record's name
   fields, and the literal values of its other identifier columns (MRN, phone, ...);
2. **labelled values**: a cue word and the value after it (``MRN: 00482913``, ``member ID
   XHP1234``, ``license plate 7ABC123``, ``serial no. PM-88213``); the cue decides the tag;
3. **formats**: dates in numeric and written forms (``03/2021``, ``04.03.21``, ``Christmas
   2020``, ``3/4`` after a date cue such as "seen" or "admitted"), phone and fax numbers (7 digits
   after a cue), e-mail, SSN, URLs, IPv4/IPv6, street addresses (``221B Baker Street``, ``on Elm
   Street``), cities after an address, before a state or a country or after a location cue
   (``12 Main St, Boston``, ``Cambridge MA 02139``, ``lives in Tromsø``, ``discharged to
   Boston``; states and countries stay), ZIP codes after a state, such a city or a cue, ages
   over 89 (in digits or words: ``90 years of age``, ``93F``, ``the patient, 96,``), image
   file names, VINs, long digit runs and letter-digit codes; names after a title (with
   particles: ``Ms. de la Cruz``), after "Patient", "Pt" or "Nurse", before "(wife)" or
   "(patient)", after a relation or a label. Names and places are matched in any alphabet with
   capitals (García, Tromsø).

Ages of 89 and below, lone years, doses, vital signs, laboratory values, fractions and scores
(``pain 7/10``, ``3/4 of the tablet``), temperatures (``T 99 F``) and services, wards and
eponyms after a location cue (``transferred to Medicine``, ``from Hodgkin lymphoma``) are left
alone. Recall and precision on a seeded synthetic corpus are measured by
``benchmarks/privacy.py``.
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
    # A match is dropped when this is found just before it, in the same clause: "T 99 F" is a
    # temperature, "pain from 7/10" a score, not an age and a date.
    unless: re.Pattern[str] | None = None
    # A cheap pattern (one that starts with a literal or a character set) that a text must hold
    # for the recognizer to be run on it at all: most notes have no "(wife)" and no "93F".
    needs: re.Pattern[str] | None = None
    # Further groups replaced with their own tag when the match is accepted: the ZIP code after
    # a city ("Cambridge MA 02139" is "[LOCATION] MA [ZIP]").
    also: tuple[tuple[str, str], ...] = ()
    # A place found by a cue ("lives in", "from") that is a state or a country is left in the
    # text: Safe Harbor removes only geographic subdivisions smaller than a state.
    regions_kept: bool = False


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
_AGE_OVER_89 = rf"(?:9\d|1[01]\d|{_SPELLED_OVER_89})"
_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra|Rev)"
# Lowercase particles inside a surname (de la Cruz, van der Berg) and ones glued to it (d'Arcy,
# al-Hassan); a name part is a capitalized word with any of them before it.
_PARTICLES = ("de|del|della|der|den|di|da|das|do|dos|du|la|le|van|von|ter|ten|bin|ibn|ben|al|"
              "el|y|zu")
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
_NAME_PART = rf"(?:(?:(?:{_PARTICLES})\s+){{1,3}}|(?:d|l|al|el)['\u2019-])?{_CAP}"
# Words that follow "Patient", "Pt" or "Nurse", or stand before "(patient)", capitalized but
# not names: headers, roles, verbs of a sentence in title case.
_NOT_NAMES = ("reports?|reported|denies|denied|states?|stated|is|was|has|had|have|presents?|"
              "presented|complains?|seen|examined|notes?|feels|remains|agrees|declined|refused|"
              "understands|verbalized|tolerat\\w*|ambulat\\w*|endorses|alert|awake|oriented|stable|"
              "doing|resting|and|or|the|with|for|on|in|at|to|of|an?|no|not|care|education|"
              "information|info|history|name|portal|instructions?|summary|plan|identification|"
              "demographics|safety|navigator|advocate|practitioners?|manager|assessment|visit|"
              "consent|status|records?|room|age|sex|gender|address|phone|transport|transfer|"
              "controlled|analgesia|satisfaction|experience|services?|relations|representative|"
              "registration|access|account|centered|centred|outcomes?|health|questionnaire|"
              "tech|technician|aide|assistant|supervisor|educator|specialist|anesthetist|"
              "midwife|triage|station|call|light|bell|line|unit|ward|floor|sitter|progress|"
              "admission|discharge|intake|flow|sheet|chart|profile|list|problems?|medications?|"
              "allergy|allergies|label|band|belongings|family|preferences?|goals|case|charge|"
              "home|liaison|coordinator|clinician|manual|handoff|report|medicare|medicaid|"
              "identifiers?|number|id|mrn|dob|social|work|worker|self|checklist|pain|unknown")
_NOT_NAME = rf"(?!(?i:{_NOT_NAMES})\b)"
# A name word that holds a small letter (Jane, O'Brien, Garcia-Lopez), so that abbreviations
# such as "PT INR" or "CHF COPD" are not names.
_TITLE_WORD = rf"(?={_UPPER}[{_UP}{_LOW}'\-]*{_LOWER}){_NOT_NAME}{_CAP}"
_PERSON_NAME = rf"{_TITLE_WORD}(?:\s+(?:{_UPPER}\.|{_TITLE_WORD})){{1,2}}"
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


# What before a number makes it a temperature, a score or a titer rather than an age or a date.
_TEMPERATURE = _compile(r"\b(?:t|temp\w*|tmax|tm|fever\w*|febrile|afebrile|pyrex\w*|"
                        r"hypotherm\w*|hypertherm\w*)\b", re.IGNORECASE)
_SCORE = _compile(r"\b(?:pain|scores?|scored|scale|rated?|rating|VAS|NRS|strength|power|motor|"
                  r"reflex\w*|grades?|graded|murmur|GCS|apgar|out of|nausea|dyspn\w*|fatigue)\b",
                  re.IGNORECASE)
_TITER = _compile(r"\b(?:titer|titre|dilution|diluted|ratio|ANA|antibod\w*)\b", re.IGNORECASE)
# Words after which "3/4" is a date (month/day or month/year), not a fraction.
_DATE_CUES = (r"on|since|from|until|till|through|thru|dated|date|DOB|seen|admit(?:ted)?|"
              r"admission|discharged?|visits?|follow(?:ed)?[- ]?up|f/u|returned|presented")
_FRACTION_OF = (r"(?!\s*(?:of\b|tabs?\b|tablets?\b|caps?\b|capsules?\b|pills?\b|doses?\b|"
                r"strength\b|mg\b|mcg\b|ml\b|units?\b|cups?\b|tsp\b|inch|%))")
_HOLIDAYS = (r"Christmas(?:\s+(?:Day|Eve))?|X-?mas|Thanksgiving(?:\s+Day)?|"
             r"Easter(?:\s+(?:Sunday|Monday))?|New\s+Year['\u2019]?s(?:\s+(?:Day|Eve))?|Halloween|"
             r"Independence\s+Day|Fourth\s+of\s+July|July\s+4th|Memorial\s+Day|"
             r"Labou?r\s+Day|Valentine['\u2019]?s\s+Day|Mother['\u2019]?s\s+Day|"
             r"Father['\u2019]?s\s+Day|Veterans\s+Day|MLK\s+Day|Presidents['\u2019]?\s+Day|"
             r"Good\s+Friday|Boxing\s+Day|Hanukkah|Chanukah|Passover|Ramadan|Diwali|"
             r"Yom\s+Kippur|Rosh\s+Hashanah|(?:Lunar|Chinese)\s+New\s+Year")
_PERSON_NOUNS = (r"[Pp]atient|[Pp]t|[Mm]an|[Ww]oman|[Gg]entleman|[Ll]ady|[Mm]ale|[Ff]emale|"
                 r"[Ww]idow(?:er)?|[Rr]esident|[Vv]eteran")
_ROLE_CUES = r"(?:[Pp]atient(?:\s+[Nn]ame)?|PATIENT(?:\s+NAME)?|[Pp]t\.?|[Nn]urse|NURSE|RN)"
_IN_PARENTHESES = (rf"(?i:patient|pt|self|{_RELATIONS}|nurse|doctor|physician|POA|HCP|"
                   r"health care proxy|interpreter)")
_STREET_WORDS = "Street|Avenue|Road|Boulevard|Lane|Drive|Terrace|Highway|Parkway"


def _word_set(words: str) -> frozenset[str]:
    """The words of a ``|``-separated list."""
    return frozenset(words.split("|"))


# ---- places: cities, towns and ZIP codes (Safe Harbor (B): every geographic subdivision smaller
# than a state, and the ZIP code; a state or a country stays) ----------------------------------

# A place name: capitalized words (Zürich, Wilkes-Barre, O'Fallon, McAllen, St. Louis), with
# lowercase particles inside (Rio de Janeiro); acronyms (ICU, ED, OR) are not places.
_PLACE_WORD = (rf"{_UPPER}(?:['\u2019]{_UPPER})?{_LOWER}+(?:{_UPPER}{_LOWER}+)?"
               rf"(?:-{_UPPER}?{_LOWER}+)*")
_PLACE = (rf"(?:(?:St|Ste|Mt|Ft)\.?\s+)?{_PLACE_WORD}(?:\s+(?:(?:de|da|del|do|dos|das|du|des|"
          rf"la|le|los|las|am|an|der|sur|upon)\s+)?{_PLACE_WORD}){{0,2}}")
_STATE_NAME = "|".join(sorted((name.title() for name in _STATE_NAMES), key=len, reverse=True))
_STATE = rf"(?:(?:{_STATES})\b|(?:{_STATE_NAME})\b)"
# State codes that are also clinical abbreviations or words ("Vitals, OK", "Hypertension, MI",
# "Heparin, SC"): after "City," they name a state only with a ZIP code or a preposition before.
_CLINICAL_STATES = "OK|OR|IN|ME|MD|PA|CT|MI|MS|CO|GA|DC|NC|SC|ND|SD|PR|VA|AR|VT|LA|ID|TX"
_ZIP_CODE = r"(?<![\d-])\d{5}(?:-\d{4})?(?![\d-])"
# After a city: its state, then its ZIP code, both optional ("Boston, MA 02115", "Boston 02115").
_PLACE_TAIL = rf"(?:,?\s+{_STATE})?(?:,?\s+(?P<zip>{_ZIP_CODE}))?"
_COUNTRIES = _word_set(
    "afghanistan|albania|algeria|andorra|angola|argentina|armenia|australia|austria|azerbaijan|"
    "bahamas|bahrain|bangladesh|barbados|belarus|belgium|belize|benin|bhutan|bolivia|bosnia|"
    "botswana|brazil|brunei|bulgaria|burkina faso|burundi|cambodia|cameroon|canada|cape verde|"
    "chad|chile|china|colombia|comoros|congo|costa rica|croatia|cuba|cyprus|czechia|"
    "czech republic|denmark|djibouti|dominica|dominican republic|ecuador|egypt|el salvador|"
    "england|eritrea|estonia|eswatini|ethiopia|fiji|finland|france|gabon|gambia|germany|ghana|"
    "greece|grenada|guatemala|guinea|guyana|haiti|honduras|hungary|iceland|india|indonesia|iran|"
    "iraq|ireland|israel|italy|ivory coast|jamaica|japan|jordan|kazakhstan|kenya|korea|kosovo|"
    "kuwait|kyrgyzstan|laos|latvia|lebanon|lesotho|liberia|libya|liechtenstein|lithuania|"
    "luxembourg|madagascar|malawi|malaysia|maldives|mali|malta|mauritania|mauritius|mexico|"
    "moldova|monaco|mongolia|montenegro|morocco|mozambique|myanmar|namibia|nepal|netherlands|"
    "new zealand|nicaragua|niger|nigeria|north korea|north macedonia|northern ireland|norway|"
    "oman|pakistan|palestine|panama|papua new guinea|paraguay|peru|philippines|poland|"
    "portugal|qatar|romania|russia|rwanda|samoa|san marino|saudi arabia|scotland|senegal|serbia|"
    "sierra leone|singapore|slovakia|slovenia|somalia|south africa|south korea|south sudan|"
    "spain|sri lanka|sudan|suriname|sweden|switzerland|syria|taiwan|tajikistan|tanzania|"
    "thailand|togo|tonga|trinidad|tunisia|turkey|turkmenistan|uganda|ukraine|"
    "united arab emirates|united kingdom|united states|uruguay|uzbekistan|venezuela|vietnam|"
    "wales|yemen|zambia|zimbabwe")
_COUNTRY = "|".join(sorted((name.title() for name in _COUNTRIES), key=len, reverse=True))
# Words after the same cues that are not places: services, wards and facilities ("transferred to
# Medicine", "discharged to Skilled Nursing Facility"), people, titles, time words, and the
# eponyms of diseases ("suffers from Hodgkin lymphoma"). A place is what is left once these are
# taken off its start; nothing left, no place.
_NOT_PLACES = _word_set(
    "the|a|an|this|that|these|those|his|her|their|our|my|your|he|she|they|we|it|there|here|"
    "patient|patients|pt|pts|dr|mr|mrs|ms|miss|mx|prof|nurse|doctor|physician|provider|team|"
    "service|staff|wife|husband|spouse|partner|mother|father|mom|dad|son|daughter|sister|"
    "brother|family|friend|friends|children|child|parents|home|house|apartment|shelter|rehab|"
    "rehabilitation|hospice|hospital|facility|nursing|skilled|assisted|living|long|term|care|"
    "acute|subacute|inpatient|outpatient|observation|telemetry|tele|floor|ward|unit|room|bed|"
    "clinic|office|department|emergency|urgent|intensive|critical|step|stepdown|intermediate|"
    "medicine|medical|surgery|surgical|cardiology|cardiac|oncology|neurology|neuro|nephrology|"
    "pulmonary|pulmonology|gastroenterology|urology|orthopedics|ortho|psychiatry|psych|"
    "pediatrics|peds|obstetrics|gynecology|radiology|pathology|pharmacy|dermatology|"
    "endocrinology|hematology|rheumatology|infectious|internal|trauma|burn|labor|delivery|"
    "operating|recovery|post|pre|main|general|outside|other|another|same|local|nearby|"
    "lab|laboratory|imaging|dialysis|infusion|transplant|cath|palliative|geriatrics|"
    "anesthesia|anaesthesia|postanesthesia|postanaesthesia|post-anesthesia|pacu|holding|"
    "tower|wing|pavilion|building|bldg|med|transitional|behavioral|behavioural|health|mental|"
    "adult|day|group|foster|memory|independent|sub|veterans|short|stay|respite|residential|"
    "treatment|detox|psychiatric|pediatric|neonatal|physical|occupational|speech|therapy|"
    "primary|surg|baseline|admission|discharge|today|tonight|yesterday|tomorrow|morning|"
    "afternoon|evening|night|week|weekend|month|year|work|school|college|church|jail|prison|"
    "street|chair|wheelchair|stretcher|left|right|upper|lower|bilateral|covid|influenza|"
    "hodgkin|non-hodgkin|crohn|parkinson|alzheimer|hashimoto|graves|addison|cushing|bell|raynaud|"
    "sjogren|sjögren|huntington|kaposi|wilms|ewing|burkitt|barrett|guillain|gehrig|tourette|"
    "asperger|down|lyme|marfan|kawasaki|meniere|ménière|paget|reiter|wegener|whipple")
# What after a capitalized word makes it an eponym, not a place: "from Lyme disease".
_EPONYM_NOUN = re.compile(r"(?:['\u2019]s)?\s+(?i:disease|syndrome|lymphoma|sarcoma|tumou?r|"
                          r"palsy|phenomenon|sign|test|score|criteria|classification|scale|"
                          r"procedure|operation|repair|fracture|ulcer|esophagus|anomaly|"
                          r"encephalopathy|thyroiditis|cyst|virus|fever|disorder|dystrophy|"
                          r"ataxia|chorea|type)\b")
# The cues before a place: where a patient lives, comes from or goes to.
_PLACE_CUES = (
    r"(?:lives|living|lived|resides|residing|resided|grew\s+up|raised|born|settled|home)\s+"
    r"(?:in|at|near|outside(?:\s+of)?)"
    r"|(?:moved|moving|relocated|relocating)(?:\s+back)?\s+(?:to|from|in)"
    r"|(?:originally|hails|immigrated|emigrated|visiting|arrived|arriving|travell?ed|returned|"
    r"returning)\s+from"
    r"|(?:transferred|transfer|transported|discharged|d/c'?d)\s+(?:to|from)"
    r"|(?:native|resident)\s+of|hometown(?:\s+is)?"
    # "she is from", "a 45 yo from", "patient originally from": a person comes from a place
    r"|(?:patient|pt|man|woman|gentleman|lady|male|female|boy|girl|he|she|they|who|family|"
    r"parents|veteran|y/?o|yo|year[- ]old)(?:\s+(?:is|was|are|were|originally|recently))*\s+from")
_STREET_ADDRESS = (rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:{_WORD}\s+){{1,3}}"
                   rf"(?:{_STREET})\b\.?"
                   r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?\s*#?\s*[A-Z0-9-]+)?")
_PO_BOX = r"\b(?i:P\.?\s?O\.?\s+Box)\s+\d+\b"

_FORMATS: list[_Recognizer] = [
    # dates
    _Recognizer("DATE", _compile(rf"\b{_MON}[/-]{_DAY}[/-](?:\d{{4}}|\d{{2}})\b")),
    _Recognizer("DATE", _compile(rf"\b(?:1[3-9]|2\d|3[01])[/.]{_MON}[/.](?:\d{{4}}|\d{{2}})\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}\.{_MON}\.\d{{4}}\b")),
    # 04.03.21, day or month first, not inside a longer dotted run (an IP, a version)
    _Recognizer("DATE", _compile(rf"(?<![\d.])\b{_DAY}\.{_DAY}\.\d{{2}}\b(?!\.\d)"),
                unless=_compile(r"\b(?:version|ver|v|release|build)\b", re.IGNORECASE),
                needs=_compile(r"\d\.\d\d?\.\d")),
    # 03/2021, 11-2019 (month and year)
    _Recognizer("DATE", _compile(r"(?<![\d/.-])\b(?:0?[1-9]|1[0-2])[/-](?:19|20)\d{2}\b(?![/-]\d)"),
                unless=_TITER, needs=_compile(r"[/-](?:19|20)\d\d")),
    _Recognizer("DATE", _compile(r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.]"
                                 r"(?:0?[1-9]|[12]\d|3[01])(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b")),
    _Recognizer("DATE", _compile(rf"\b{_MONTH}\.?\s+{_DAY}{_ORD}(?:,?\s+(?:19|20)\d{{2}})?\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}{_ORD}\s+(?:of\s+)?{_MONTH}\.?"
                                 r"(?:,?\s+(?:19|20)\d{2})?\b")),
    _Recognizer("DATE", _compile(rf"\b{_MONTH}\.?,?\s+(?:of\s+)?(?:19|20)\d{{2}}\b")),
    _Recognizer("DATE", _compile(rf"\b{_DAY}([-/]){_MONTH}\1(?:\d{{4}}|\d{{2}})\b")),
    # 3/4, 3/21 after a cue: seen, admitted, discharged, on, since, visit, follow up ...
    _Recognizer("DATE", _compile(rf"\b(?:{_DATE_CUES})(?:\s*:\s*|\s+)(?:on\s+)?"
                                 rf"(?P<value>{_MON}/(?:\d{{2}}|[1-9]))\b(?![/.]\d){_FRACTION_OF}",
                                 re.IGNORECASE), "value", unless=_SCORE,
                needs=_compile(r"\d/\d")),
    # a holiday and a year: "Christmas 2020" (capitalized: case-blind matching is 3x slower)
    _Recognizer("DATE", _compile(rf"\b(?:{_HOLIDAYS}),?\s+(?:of\s+)?(?:19|20)\d{{2}}\b")),
    _Recognizer("DATE", _compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                                 r"(?:_\d{4,6})?\b")),
    # ages over 89
    _Recognizer("AGE", _compile(rf"\b{_AGE_OVER_89}\s*-?\s*(?:years?|yrs?)(?:\s*-?\s*old\b|"
                                rf"\s+of\s+age\b)|\b{_AGE_OVER_89}\s*-?\s*(?:y/?o|yo|y\.o\.)(?!\w)",
                                re.IGNORECASE), priority=2),
    # 93F, 101 M: an age and a sex, unless a temperature ("T 99 F")
    _Recognizer("AGE", _compile(r"(?<![\d.,/:])\b(?:9\d|1[01]\d)\s?[FM]\b"), priority=2,
                unless=_TEMPERATURE, needs=_compile(r"\d\s?[FM]\b")),
    # "the patient, 96, lives alone"; "Mrs. Smith (94)"
    _Recognizer("AGE", _compile(rf"(?:\b(?:{_PERSON_NOUNS})|\b{_TITLES}\.?\s+{_CAP}"
                                rf"(?:\s+{_CAP})?)\s*[,(]\s*(?P<value>(?i:{_AGE_OVER_89}))\s*[,)]"),
                "value", priority=2,
                needs=_compile(rf"[,(]\s*(?i:{_AGE_OVER_89})\s*[,)]")),
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
    # a 7-digit number or a 5-digit extension after a cue: "phone 555-0100", "pager 4-5678"
    _Recognizer("PHONE", _compile(r"\b(?:phone|ph|tel|telephone|cell|mobile|pager|beeper|fax|call|"
                                  r"ext|extension)\b\.?(?:\s*(?:#|no\.?|number|back|at)\b)*\s*:?\s*"
                                  r"(?P<value>\d{3}[\s.-]?\d{4}|\d[\s.-]\d{4})(?![\d/-]|\.\d)",
                                  re.IGNORECASE), "value", priority=2,
                needs=_compile(r"\d(?:\d\d[\s.-]?|[\s.-])\d{4}")),
    _Recognizer("IP", _compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d))"
                               r"{3}\b"), priority=3),
    _Recognizer("DEVICE", _compile(r"\b(?:[0-9A-F]{2}[:-]){5}[0-9A-F]{2}\b", re.IGNORECASE),
                priority=4),
    _Recognizer("IP", _compile(r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b|"
                               r"\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?",
                               re.IGNORECASE), priority=3),
    # places
    _Recognizer("ADDRESS", _compile(_STREET_ADDRESS), priority=2),
    _Recognizer("ADDRESS", _compile(_PO_BOX), priority=2),
    # a street without a number: "lives on Elm Street"
    _Recognizer("ADDRESS", _compile(rf"\b(?i:on|at|off)\s+(?P<value>(?:{_WORD}\s+){{1,3}}"
                                    rf"(?:{_STREET_WORDS}))\b"), "value", priority=2,
                needs=_compile(_STREET_WORDS)),
    # the city after an address: "12 Main Street, Boston", "PO Box 12, Springfield MA 01103"
    _Recognizer("LOCATION", _compile(rf"(?:{_STREET_ADDRESS}|{_PO_BOX}),\s+(?P<value>{_PLACE})"
                                     rf"{_PLACE_TAIL}"), "value", priority=2,
                also=(("zip", "ZIP"),), regions_kept=True),
    # "City, ST", "City, State", "City ST 02139": the state stays
    _Recognizer("LOCATION", _compile(
        rf"\b(?P<value>{_PLACE})(?:,\s*|\s+(?={_STATE},?\s+{_ZIP_CODE}))"
        rf"(?:{_STATE}(?=,?\s+{_ZIP_CODE})|(?!(?:{_CLINICAL_STATES})\b){_STATE})"
        rf"(?:,?\s+(?P<zip>{_ZIP_CODE}))?"), "value", priority=2, also=(("zip", "ZIP"),)),
    _Recognizer("LOCATION", _compile(rf"\b(?i:in|at|to|from|of|near)\s+(?P<value>{_PLACE}),\s*"
                                     rf"(?:{_CLINICAL_STATES})\b"), "value", priority=2),
    # a place after a cue: "lives in Tromsø", "discharged to Boston", "Mr. Müller from Zürich"
    _Recognizer("LOCATION", _compile(
        rf"\b(?:(?i:{_PLACE_CUES})|{_TITLES}\.?\s+{_NAME_PART}(?:\s+{_NAME_PART}){{0,2}}\s+from|"
        rf"{_ROLE_CUES}\s+{_PERSON_NAME}\s+from)(?:\s*:\s*|\s+)(?P<value>{_PLACE}){_PLACE_TAIL}"),
        "value", priority=2, also=(("zip", "ZIP"),), regions_kept=True),
    # "from Zurich, Switzerland": a place before a country
    _Recognizer("LOCATION", _compile(rf"\b(?i:from)\s+(?P<value>{_PLACE}),\s+(?:{_COUNTRY})\b"),
                "value", priority=2, regions_kept=True),
    _Recognizer("LOCATION", _compile(rf"\b{_WORD}(?:\s+{_WORD})?\s+County\b"), priority=2),
    _Recognizer("ZIP", _compile(r"\b(?:zip(?:\s*code)?|postal\s*code|postcode)\s*:?\s*"
                                r"(?P<value>\d{5}(?:-\d{4})?)\b", re.IGNORECASE), "value", 3),
    # a ZIP code after a state: "MA 02139", "Massachusetts 02139-1234"
    _Recognizer("ZIP", _compile(rf"(?<![\w-]){_STATE},?\s+(?P<value>{_ZIP_CODE})"), "value", 3),
    # names by context
    _Recognizer("NAME", _compile(rf"\b{_TITLES}\.?\s+(?:{_UPPER}\.\s*)?{_NAME_PART}"
                                 rf"(?:\s+{_NAME_PART}){{0,2}}"),
                priority=2),
    # "Patient Jane Doe", "Pt John Q. Public", "Nurse Kelly Brown": two or three name words
    _Recognizer("NAME", _compile(rf"\b{_ROLE_CUES}\s+(?P<value>{_PERSON_NAME})"), "value",
                priority=2),
    # "Bob Johnson (patient)", "Maria Garcia-Lopez (wife)"
    _Recognizer("NAME", _compile(rf"\b(?P<value>{_PERSON_NAME})\s*\({_IN_PARENTHESES}\)"),
                "value", priority=2, needs=_compile(rf"\({_IN_PARENTHESES}\)")),
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


_CLAUSE_END = re.compile(r"[;\n]|\.\s")


def _said_before(cue: re.Pattern[str], match: re.Match[str]) -> bool:
    """Whether ``cue`` is in the 40 characters before the match, within its clause."""
    before = match.string[max(0, match.start() - 40):match.start()]
    return cue.search(_CLAUSE_END.split(before)[-1]) is not None


def _accepted(recognizer: _Recognizer, match: re.Match[str]) -> bool:
    """Checks a regular expression cannot express: case, the shape of an id, states, context."""
    if recognizer.unless is not None and _said_before(recognizer.unless, match):
        return False
    if recognizer.labelled:
        return _looks_like_id(match.group("value"))
    return _name_case_ok(recognizer, match)


def _place_span(recognizer: _Recognizer, match: re.Match[str]) -> tuple[int, int] | None:
    """The span of the place a LOCATION recognizer found, once the words that are no place are
    taken off its start ("Patient Springfield, MA"); None when nothing is left, or when it is a
    month or a day, the first word of an eponym ("from Lyme disease"), or, after a cue, a state
    or a country."""
    start, end = match.span(recognizer.group)
    text = match.string
    for word in re.finditer(r"\S+", text[start:end]):
        if re.sub(r"(?:['\u2019]s|\.)$", "", word.group()).lower() not in _NOT_PLACES:
            start += word.start()
            break
    else:
        return None
    value = text[start:end]
    if _MONTH_WORD.fullmatch(value) or _EPONYM_NOUN.match(text, end):
        return None
    if recognizer.regions_kept and value.lower() in _STATE_NAMES | _COUNTRIES:
        return None
    return start, end


# ---- scrubbing --------------------------------------------------------------------------------


def find_spans(text: str, known: Mapping[str, Iterable[object]] | None = None) -> list[Span]:
    """Every identifier span in ``text``, overlapping spans merged (higher priority names it)."""
    spans = []
    for recognizer in _known_recognizers(known) + _RECOGNIZERS:
        if recognizer.needs is not None and recognizer.needs.search(text) is None:
            continue
        for match in recognizer.pattern.finditer(text):
            spans += _match_spans(recognizer, match)
    return _merge(spans, text)


def _match_spans(recognizer: _Recognizer, match: re.Match[str]) -> list[Span]:
    """The spans one match of a recognizer replaces: none when it is not accepted."""
    if not _accepted(recognizer, match):
        return []
    place = recognizer.tag == "LOCATION" and recognizer.group == "value"
    found = _place_span(recognizer, match) if place else match.span(recognizer.group)
    if found is None or found[1] <= found[0]:
        return []
    start, end = found
    tag = recognizer.tag
    if tag == "PHONE" and _is_fax(match.string[max(0, start - 30):start]):
        tag = "FAX"
    spans = [Span(start, end, tag, recognizer.priority)]
    spans += [Span(*match.span(group), also, recognizer.priority + 1)
              for group, also in recognizer.also if match.group(group)]
    return spans


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
