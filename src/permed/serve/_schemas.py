"""The request and response bodies of the service (they make its OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = [
    "AuditEntry",
    "AuditVerification",
    "EndedSessions",
    "ErrorBody",
    "ExplainRequest",
    "FieldProblem",
    "ModelReference",
    "NewUser",
    "PatientResult",
    "PredictRequest",
    "PredictResponse",
    "PredictionRecord",
    "TokenResponse",
    "UserKey",
    "UserSummary",
]

Value = float | int | str | bool | None


class FieldProblem(BaseModel):
    """One bad field of a request."""

    field: str = Field(description="The field, e.g. 'patient.chol'.")
    expected: str = Field(description="Type, range and unit expected.")
    received: Any = Field(None, description=(
        "The kind of value received ('text', 'a number', 'a list', 'an object', 'a boolean'; "
        "null for null or nothing), never the value, which may be a patient's; only a "
        "format (a Content-Type, a FHIR unit code) is given as sent."))
    message: str


class ErrorBody(BaseModel):
    """Every error: a sentence, and for 422 one entry per bad field."""

    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


class PredictRequest(BaseModel):
    """One patient (``patient``) or a batch (``patients``): feature name -> value.

    Numbers for numeric features, text for categorical ones, null (or leaving the field out)
    when unknown: the model imputes it and the answer lists it as missing.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"patient": {"age": 63, "chol": 233, "sex": "1"}}]})

    patient: dict[str, Any] | None = None
    # at least one: checked by the route, whose 422 says so in words
    patients: list[dict[str, Any]] | None = Field(None, json_schema_extra={"minItems": 1})
    # strict: "yes", "false" or 0 are refused, not read as booleans
    explain: StrictBool | None = Field(None, description="Explain each answer (default: yes): "
                                       "true or false.")
    explain_scale: Literal["probability", "log-odds"] = Field(
        "probability", description="The output the factors add up to: the probability "
        "(percentage points, as permed predict --explain) or the log-odds.")


class ExplainRequest(BaseModel):
    """One patient to explain."""

    model_config = ConfigDict(extra="forbid")

    patient: dict[str, Any]
    top: int = Field(8, ge=1, le=100, description="Factors listed (the rest are summed).")
    explain_scale: Literal["probability", "log-odds"] = "probability"


class ModelReference(BaseModel):
    """Which model answered: every answer carries it."""

    name: str
    task: str
    version: str = Field(description="First 12 hex digits of the SHA-256 of the signed bundle "
                                     "index.")
    trained: str
    selected_model: str | None
    engine: Literal["onnx", "native"]


class Factor(BaseModel):
    feature: str
    value: Value
    contribution: float
    direction: str
    text: str


class ExplanationBody(BaseModel):
    """SHAP contributions: ``base_value + sum(contributions) + other == value``."""

    method: str
    scale: str
    output: str
    description: str
    base_value: float
    value: float
    factors: list[Factor]
    other: float
    text: str


class Interval(BaseModel):
    value: float | None
    low: float | None
    high: float | None


class Uncertainty(BaseModel):
    prediction_set: list[str] | None = Field(
        None, description="Conformal prediction set (diagnose).")
    coverage: float | None = Field(None, description="Its target coverage.")
    intervals: dict[str, Interval] | None = Field(None, description="95% CIs (treat).")
    note: str = ""


class Flags(BaseModel):
    out_of_range: bool
    out_of_range_features: list[str]
    out_of_distribution: bool | None = None
    low_overlap: bool | None = None
    missing_features: list[str]
    refer_to_clinician: bool
    refer_reason: str


class Curve(BaseModel):
    times: list[float]
    survival: list[float]


class PatientResult(BaseModel):
    """One patient's answer, its uncertainty, flags and top factors."""

    prediction_id: str
    summary: str
    answer: dict[str, Value]
    uncertainty: Uncertainty
    flags: Flags
    explanation: ExplanationBody | None
    explanation_note: str | None = None
    survival_curve: Curve | None = None


class PredictResponse(BaseModel):
    model: ModelReference
    results: list[PatientResult]


class PredictionRecord(BaseModel):
    """An entry of the prediction log (no patient inputs: their keyed digest)."""

    id: str
    time: str
    user: str
    model: str
    version: str
    task: str
    input_digest: str
    answer: dict[str, Value]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Literal["clinician", "scientist", "admin"]
    expires_days: int | None = Field(None, ge=1, le=3650)


class UserKey(BaseModel):
    name: str
    role: str
    api_key: str = Field(description="Shown once: only its argon2 hash is stored.")


class EndedSessions(BaseModel):
    name: str
    sessions_not_before: str = Field(description="Bearer tokens whose session began before "
                                     "this time (ISO 8601, UTC) are refused; the user's API "
                                     "keys still work.")


class UserSummary(BaseModel):
    name: str
    role: str
    created: str
    active: bool
    keys: int


class AuditEntry(BaseModel):
    seq: int
    time: str
    user: str
    action: str
    outcome: str
    details: dict[str, Any]
    key_id: str
    prev: str
    mac: str


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    problems: list[str]
    notes: list[str]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
