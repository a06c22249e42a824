"""UCUM units shared by permed ingest fhir and permed serve."""

from __future__ import annotations

import re

import pytest

from permed.ingest._ucum import UnitError, convert, ucum_unit


@pytest.mark.parametrize(("unit", "expected"), [
    ("mg/dL", "mg/dL"), ("mg/dl", "mg/dL"), ("mmol/l", "mmol/L"), ("10*3/ul", "10*3/uL"),
    ("MG/DL", "mg/dL"), ("MM[HG]", "mm[Hg]"), ("CEL", "Cel"), ("KPAL", "kPa"), ("ANN", "a"),
    # case-sensitive UCUM reads these as other units (megagram, ampere): left as they are
    ("Mg/dL", "Mg/dL"), ("A", "A"), ("mmHg", "mmHg"),
])
def test_units_are_matched_as_ucum_allows(unit, expected):
    assert ucum_unit(unit) == expected


@pytest.mark.parametrize(("value", "unit", "target", "expected"), [
    (120.0, "mg/dl", "mg/dL", 120.0), (200.0, "MG/DL", "g/L", 2.0),
    (5.5, "mmol/l", "umol/L", 5500.0),
])
def test_case_variants_convert(value, unit, target, expected):
    assert convert(value, unit, target) == pytest.approx(expected, rel=1e-12)


def test_a_mixed_case_variant_is_not_converted():
    with pytest.raises(UnitError, match=re.escape("unit 'Mg/dL' is not a UCUM unit permed can "
                                                  "convert")):
        convert(1.0, "Mg/dL", "mg/dL")
