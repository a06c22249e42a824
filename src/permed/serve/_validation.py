"""Check one patient's fields against a model's schema: every bad field named at once."""

from __future__ import annotations

import difflib
import json
import math
import typing
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_core.core_schema import ErrorType

from permed.serve._images import EXPECTED as IMAGE_EXPECTED
from permed.serve._images import check_image
from permed.study import FittedSchema
from permed.study._schema import MAX_CATEGORIES_KEPT

__all__ = ["FieldError", "PatientError", "api_errors", "check_patient", "duplicate_keys",
           "expected_text", "number_text", "received_kind", "shown"]

# a received format value (a media type, a unit) longer than this is cut in error bodies
SHOWN_CHARS = 200
# features named in an unknown field's message (a gene panel has thousands)
LISTED_FEATURES = 40


@dataclass
class FieldError:
    """One bad field: what it is, what was expected, what came.

    Its body (:meth:`to_dict`) says what kind of value came (:func:`received_kind`), never the
    value: an error body goes into client logs and screens, and through proxies, and a value
    sent in the wrong place can be a patient's. ``format`` marks a received value that is the
    sender's format, not data about a patient (a media type, a unit code): sent back as it
    came, since it is what the fix is about.
    """

    field: str
    expected: str
    received: Any
    message: str
    format: bool = False

    def to_dict(self) -> dict[str, Any]:
        received = shown(self.received) if self.format else received_kind(self.received)
        return {"field": self.field, "expected": self.expected, "received": received,
                "message": self.message}


class PatientError(ValueError):
    """A request whose patient fields do not fit the model; ``errors`` has one per field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))


def _number(value: float) -> str:
    """A learned number (a training range) in six significant digits."""
    return f"{value:g}"


def number_text(value: float | int) -> str:
    """A number as sent, in %g style with as many significant digits (6 to 17) as it takes to
    read back as the same float: 120.0000001 is not shown as 120, nor 1e308 as 309 digits.

    An integer too large for a float is shown by its leading digits and exponent; infinities
    and NaN by their JSON names.
    """
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            mantissa, exponent = f"{Decimal(value):.6e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = f"{value:g}"
    for digits in range(7, 18):
        if float(text) == value:
            break
        text = f"{value:.{digits}g}"
    return text


def shown(value: Any) -> Any:
    """A received value as it can be sent back in a JSON error body: infinities, NaN and
    integers beyond a float as text (:func:`number_text`), long text cut, other objects as
    text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float | int):
        if (math.isfinite(value) if isinstance(value, float) else abs(value) < 2 ** 53):
            return value
        return number_text(value)
    if isinstance(value, str):
        return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {str(k): shown(v) for k, v in value.items()}
    return shown(str(value))


def received_kind(value: Any) -> str | None:
    """What kind of value was sent, never the value: ``"text"``, ``"a number"``, ``"a
    boolean"``, ``"a list"``, ``"an object"``; None for null.

    An error body goes into the client's logs and screens, and through proxies: a value sent
    back there can be a patient's (a name in the wrong field, an SSN, a birth date).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str | bytes):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value of another kind"


# Pydantic error types (of pydantic-core 2.x) whose message quotes what was sent: a custom
# validator's error, a union's tag, an attribute's or a mapping's error, a time zone offset.
# The others name the schema's constraints only (a parser's ``error``, for JSON, dates, URLs,
# UUIDs, is a fixed phrase and a position). A type pydantic-core does not list (a custom
# error) is described without its message as well.
_QUOTING = {"value_error", "assertion_error", "union_tag_invalid", "timezone_offset",
            "no_such_attribute", "get_attribute_error", "iteration_error", "mapping_type",
            "datetime_object_invalid", "bytes_invalid_encoding"}
_SAFE = set(typing.get_args(ErrorType)) - _QUOTING
_FIXES = {"missing": "add it", "extra_forbidden": "remove it",
          "json_invalid": "send the body as valid JSON"}
# received, where the value pydantic hands back is not the field's own
_RECEIVED = {"missing": None, "json_invalid": "a body that is not valid JSON"}


def api_errors(errors: Any) -> list[dict[str, Any]]:
    """One error entry per problem pydantic (or FastAPI) found in a request: the field, what
    was expected and the fix, and the kind of value received (:func:`received_kind`).

    Nothing that was sent comes back: pydantic's ``input`` is left out, and so is a message
    that would quote it (a custom validator's ``ctx``), for the reason
    :func:`received_kind` gives.
    """
    entries = []
    for error in errors:
        kind, sent = str(error.get("type", "")), error.get("input")
        location = [str(p) for p in error.get("loc", ())]
        field = ".".join(p for p in location if p != "body") or "body"
        expected = str(error.get("msg", ""))
        if kind not in _SAFE:
            expected = "a value of the type and form the API's schema gives (GET /openapi.json)"
        fix = _FIXES.get(kind, "correct it (the API's schema: GET /openapi.json)")
        entries.append({"field": field, "expected": expected,
                        "received": _RECEIVED[kind] if kind in _RECEIVED else received_kind(sent),
                        "message": f"{'.'.join(location)}: {expected}: {fix}"})
    return entries


def expected_text(feature: Any) -> str:
    """What a field accepts, in words: type, training range, valid range, unit."""
    unit = f" {feature.unit}" if feature.unit else ""
    if feature.kind == "numeric":
        text = "a number or null"
        if feature.valid_range is not None:
            low, high = feature.valid_range
            text += f" in [{number_text(low)}, {number_text(high)}]{unit}"
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


def _finite(value: int | float) -> float | None:
    """``value`` as a float, or None when it is not finite (an integer too large for a float
    too: 400 digits are not a measurement)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _check_numeric(feature: Any, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"field '{feature.name}' must be a number (or null when unknown)"
    number = _finite(value)
    if number is None:
        return None, (f"field '{feature.name}' is not a finite number (infinite, NaN, or "
                      "beyond a float's range): send a finite number (or null when unknown)")
    if feature.valid_range is not None:
        low, high = feature.valid_range
        if not low <= number <= high:
            unit = f" {feature.unit}" if feature.unit else ""
            side = "below" if number < low else "above"
            return None, (f"field '{feature.name}' is {side} its valid range "
                          f"[{number_text(low)}, {number_text(high)}]{unit}: check the value "
                          "and its unit")
    return number, None


def _label(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or _finite(value) is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_categorical(feature: Any, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    label = _label(value)
    if label is None:
        return None, f"field '{feature.name}' must be a text value (or null when unknown)"
    categories = feature.categories or []
    if categories and len(categories) < MAX_CATEGORIES_KEPT and label not in categories:
        known = ", ".join(f"'{c}'" for c in categories)
        return None, (f"field '{feature.name}' holds a value the model never saw; expected "
                      f"one of {known} (or null when unknown)")
    return label, None


_CHECKS = {"numeric": _check_numeric, "image": check_image}


def _unknown(field: str, name: str, names: list[str]) -> str:
    """An unknown field's message: the closest name when it looks like a typo, and the
    features."""
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.75)
    fix = f"did you mean '{lower[close[0]]}'? Otherwise remove it" if close else "remove it"
    listed = ", ".join(names[:LISTED_FEATURES])
    if len(names) > LISTED_FEATURES:
        listed += f" and {len(names) - LISTED_FEATURES} more: see the model's schema"
    return f"field '{field}' is not a feature of this model: {fix} (features: {listed})"


def check_patient(schema: FittedSchema, patient: dict[str, Any],
                  where: str = "") -> tuple[dict[str, Any], list[str]]:
    """Typed feature values of one patient, and the features left missing.

    Absent and null features are missing (the model imputes them, and the answer lists them).
    The schema's id column may be given and is passed through; the other columns the study
    named (sensitive and outcome columns) may be given and are ignored, as ``permed predict``
    ignores them: they are neither scored nor kept.

    Raises
    ------
    PatientError
        Listing every unknown field and every value of the wrong type, outside the study's
        valid range, or an unseen category.
    """
    features = {f.name: f for f in schema.features}
    named = {*schema.sensitive, *schema.outcome_columns}
    if schema.id:
        named.add(schema.id)
    errors = []
    for name in patient:
        if name not in features and name not in named:
            errors.append(FieldError(where + name, "no such field", patient[name],
                                     _unknown(where + name, name, list(features))))
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


class _Keys(dict[str, Any]):
    """A parsed JSON object that remembers the keys it was given more than once."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Keys:
    keys = _Keys(pairs)
    keys.repeated = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
    return keys


def _repeated(value: Any, where: str) -> list[str]:
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _repeated(v, f"{where}[{i}]")]
    if not isinstance(value, _Keys):
        return []
    prefix = f"{where}." if where else ""
    return [prefix + k for k in value.repeated] + [
        f for k, v in value.items() for f in _repeated(v, prefix + k)]


def duplicate_keys(body: bytes, keys: int) -> list[FieldError]:
    """One error per key given twice in the same object of a JSON ``body`` (a JSON parser
    keeps the last silently: ``{"age": 30, "age": 80}`` would be scored as 80).

    ``keys`` is the number of keys the body parsed into; when the body holds as many ``":``
    (each key's end when written without a space before its colon) there is no repeat and
    the body is not parsed again.
    """
    if body.count(b'":') == keys:
        return []
    try:
        parsed = json.loads(body, object_pairs_hook=_pairs)
    except ValueError:
        return []  # already parsed once: not reached
    return [FieldError(field, "each field once", None, f"field '{field}' is given more than "
                       "once: send it once (a JSON parser keeps only the last)")
            for field in _repeated(parsed, "")]
