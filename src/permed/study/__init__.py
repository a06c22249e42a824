"""The data contract: column roles, validation and splits."""

from permed.study._columns import as_category, infer_kind, to_numeric
from permed.study._schema import FeatureSpec, FittedSchema
from permed.study._study import TASKS, ColumnSpec, Study
from permed.study._validate import Finding, ValidationReport, check_columns_exist, validate

__all__ = [
    "TASKS",
    "ColumnSpec",
    "FeatureSpec",
    "Finding",
    "FittedSchema",
    "Study",
    "ValidationReport",
    "as_category",
    "check_columns_exist",
    "infer_kind",
    "to_numeric",
    "validate",
]
