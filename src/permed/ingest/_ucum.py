"""UCUM units permed converts between: one table for ``permed ingest fhir`` (training) and
``permed serve`` (a live Bundle), so that both read a value in the same unit.

Units convert within a dimension (mass, length, temperature, rates, pressure, mass and substance
concentration, time...). Mass and substance concentrations (mg/dL, mmol/L) are not converted
into one another: that needs the analyte's molar mass, and a LOINC code names one of the two
properties (2345-7 is glucose by mass, 14749-6 by moles).
"""

from __future__ import annotations

__all__ = ["UCUM", "UnitError", "convert", "ucum_unit"]

# UCUM code -> (dimension, factor, offset): value in the dimension's base = value * factor + offset
UCUM: dict[str, tuple[str, float, float]] = {
    "kg": ("mass", 1.0, 0.0), "g": ("mass", 1e-3, 0.0), "mg": ("mass", 1e-6, 0.0),
    "[lb_av]": ("mass", 0.45359237, 0.0), "[oz_av]": ("mass", 0.028349523125, 0.0),
    "m": ("length", 1.0, 0.0), "cm": ("length", 0.01, 0.0), "mm": ("length", 1e-3, 0.0),
    "[in_i]": ("length", 0.0254, 0.0), "[ft_i]": ("length", 0.3048, 0.0),
    "K": ("temperature", 1.0, 0.0), "Cel": ("temperature", 1.0, 273.15),
    "[degF]": ("temperature", 5 / 9, 459.67 * 5 / 9),
    "/s": ("frequency", 1.0, 0.0), "/min": ("frequency", 1 / 60, 0.0),
    "{beats}/min": ("frequency", 1 / 60, 0.0), "{breaths}/min": ("frequency", 1 / 60, 0.0),
    "/h": ("frequency", 1 / 3600, 0.0),
    "%": ("fraction", 0.01, 0.0), "1": ("fraction", 1.0, 0.0),
    "Pa": ("pressure", 1.0, 0.0), "kPa": ("pressure", 1000.0, 0.0),
    "mm[Hg]": ("pressure", 133.322387415, 0.0), "cm[H2O]": ("pressure", 98.0665, 0.0),
    "g/L": ("mass concentration", 1.0, 0.0), "g/dL": ("mass concentration", 10.0, 0.0),
    "mg/dL": ("mass concentration", 0.01, 0.0), "mg/L": ("mass concentration", 1e-3, 0.0),
    "ug/mL": ("mass concentration", 1e-3, 0.0), "ng/mL": ("mass concentration", 1e-6, 0.0),
    "mol/L": ("substance concentration", 1000.0, 0.0),
    "mmol/L": ("substance concentration", 1.0, 0.0),
    "umol/L": ("substance concentration", 1e-3, 0.0),
    "nmol/L": ("substance concentration", 1e-6, 0.0),
    "kg/m2": ("body mass index", 1.0, 0.0),
    "a": ("time", 365.25, 0.0), "mo": ("time", 365.25 / 12, 0.0), "wk": ("time", 7.0, 0.0),
    "d": ("time", 1.0, 0.0), "h": ("time", 1 / 24, 0.0), "min": ("time", 1 / 1440, 0.0),
    "U/L": ("catalytic concentration", 1.0, 0.0),
    "10*3/uL": ("number concentration", 1.0, 0.0), "10*9/L": ("number concentration", 1.0, 0.0),
}

# Spellings UCUM itself makes equal, and no others: the litre is both "L" and "l" in the
# case-sensitive form (mg/dl is mg/dL), and the case-insensitive form is all capitals
# (MG/DL), where pascal, year and hour are PAL, ANN and HR. A mixed-case variant such as
# "Mg/dL" is not read as mg/dL: case-sensitive UCUM reads it as megagrams.
_LITRE = {code.replace("L", "l"): code for code in UCUM if "L" in code}
_CAPITALS = {"Pa": "PAL", "kPa": "KPAL", "a": "ANN", "h": "HR", "/h": "/HR"}
_CASE_INSENSITIVE = {_CAPITALS.get(code, code.upper()): code for code in UCUM}


class UnitError(ValueError):
    """A unit that is not known, or not convertible to the one expected."""


def ucum_unit(unit: str) -> str:
    """The table's spelling of a UCUM unit (``mg/dl`` and ``MG/DL`` are ``mg/dL``); any other
    text as it is.

    Examples
    --------
    >>> ucum_unit("mmol/l"), ucum_unit("MM[HG]"), ucum_unit("Mg/dL"), ucum_unit("mmHg")
    ('mmol/L', 'mm[Hg]', 'Mg/dL', 'mmHg')
    """
    if unit in UCUM:
        return unit
    if unit in _LITRE:
        return _LITRE[unit]
    if unit == unit.upper():
        return _CASE_INSENSITIVE.get(unit, unit)
    return unit


def convert(value: float, unit: str, target: str) -> float:
    """``value`` in UCUM ``unit`` expressed in ``target``.

    Raises
    ------
    UnitError
        Either unit is unknown, or they measure different things.

    Examples
    --------
    >>> round(convert(98.6, "[degF]", "Cel"), 2)
    37.0
    >>> convert(100.0, "mg/dl", "mg/dL")
    100.0
    """
    unit_code, target_code = ucum_unit(unit), ucum_unit(target)
    if unit_code == target_code:
        return value
    if unit_code not in UCUM:
        raise UnitError(f"unit '{unit}' is not a UCUM unit permed can convert")
    if target_code not in UCUM:
        raise UnitError(f"the model's unit '{target}' is not a UCUM unit permed can convert")
    dimension, factor, offset = UCUM[unit_code]
    expected, target_factor, target_offset = UCUM[target_code]
    if dimension != expected:
        raise UnitError(f"unit '{unit}' measures {dimension}, not {expected} ('{target}')")
    return (value * factor + offset - target_offset) / target_factor
