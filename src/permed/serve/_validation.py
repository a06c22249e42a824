"""Check one patient's fields against a model's schema: every bad field named at once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from permed.serve._images import EXPECTED as IMAGE_EXPECTED
from permed.serve._images import check_image
from permed.study import FittedSchema
from permed.study._schema import MAX_CATEGORIES_KEPT

__all__ = ["FieldError", "PatientError", "check_patient", "expected_text"]


@dataclass
class FieldError:
    """One bad field: what it is, what was expected, what came."""

    field: str
    expected: str
    received: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "received": self.received,
                "message": self.message}


class PatientError(ValueError):
    """A request whose patient fields do not fit the model; ``errors`` has one per field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))


def _number(value: float) -> str:
    return f"{value:g}"


def expected_text(feature: Any) -> str:
    """What a field accepts, in words: type, training range, valid range, unit."""
    unit = f" {feature.unit}" if feature.unit else ""
    if feature.kind == "numeric":
        text = "a number or null"
        if feature.valid_range is not None:
            low, high = feature.valid_range
            text += f" in [{_number(low)}, {_number(high)}]{unit}"
        elif unit:
            text += f" in{unit}"
        if feature.min is not None and feature.max is not None:
            text += f" (training range {_number(feature.min)} to {_number(feature.max)}{unit})"
        return text
    if feature.kind == "image":
        return IMAGE_EXPECTED
    categories = feature.categories or []
    if categories and len(categories) < MAX_CATEGORIES_KEPT:
        return "one of " + ", ".join(f"'{c}'" for c in categories) + " or null"
    return "a text value or null"


def _check_numeric(feature: Any, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, f"field '{feature.name}' must be a number (or null when unknown)"
    if feature.valid_range is not None:
        low, high = feature.valid_range
        if not low <= value <= high:
            unit = f" {feature.unit}" if feature.unit else ""
            return None, (f"field '{feature.name}' is {_number(value)}{unit}, outside its valid "
                          f"range [{_number(low)}, {_number(high)}]{unit}: check the value and "
                          "its unit")
    return float(value), None


def _label(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, str | int | float) else None


def _check_categorical(feature: Any, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    label = None if isinstance(value, bool) else _label(value)
    if label is None:
        return None, f"field '{feature.name}' must be a text value (or null when unknown)"
    categories = feature.categories or []
    if categories and len(categories) < MAX_CATEGORIES_KEPT and label not in categories:
        shown = ", ".join(f"'{c}'" for c in categories)
        return None, (f"field '{feature.name}' is '{label}', a value the model never saw; "
                      f"expected one of {shown} (or null when unknown)")
    return label, None


_CHECKS = {"numeric": _check_numeric, "image": check_image}


def check_patient(schema: FittedSchema, patient: dict[str, Any],
                  where: str = "") -> tuple[dict[str, Any], list[str]]:
    """Typed feature values of one patient, and the features left missing.

    Absent and null features are missing (the model imputes them, and the answer lists them);
    the schema's id column may be given and is passed through.

    Raises
    ------
    PatientError
        Listing every unknown field and every value of the wrong type, outside the study's
        valid range, or an unseen category.
    """
    features = {f.name: f for f in schema.features}
    errors = []
    for name in patient:
        if name not in features and name != schema.id:
            errors.append(FieldError(
                where + name, "no such field", patient[name],
                f"field '{where}{name}' is not a feature of this model: remove it (features: "
                + ", ".join(features) + ")"))
    values: dict[str, Any] = {}
    for name, feature in features.items():
        check = _CHECKS.get(feature.kind, _check_categorical)
        value, problem = check(feature, patient.get(name))
        if problem is not None:
            errors.append(FieldError(where + name, expected_text(feature), patient.get(name),
                                     problem.replace(f"'{name}'", f"'{where}{name}'", 1)))
        values[name] = value
    if errors:
        raise PatientError(errors)
    if schema.id and schema.id in patient:
        values[schema.id] = patient[schema.id]
    missing = [name for name in features if values[name] is None]
    return values, missing
