"""The errors permed raises.

Bad data or a bad request is a :class:`PermedError` (a ``ValueError``): its message names the
column or field, what was expected, what was found and the fix. The CLI prints such errors
without a traceback and exits with status 1.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError

__all__ = [
    "BundleError",
    "DataError",
    "IntegrityError",
    "NotFittedError",
    "PermedError",
    "SchemaMismatchError",
    "SecurityError",
    "StudyError",
]


class PermedError(ValueError):
    """A user error: bad data, a bad study, a bad option. Never a bug in permed."""


class DataError(PermedError):
    """The data table cannot be used as it is (a column, a value, a row is wrong)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class StudyError(PermedError):
    """The study (roles, types, ranges) is inconsistent or names columns that do not exist."""


class SchemaMismatchError(DataError):
    """New data does not match the columns a model was fitted on.

    ``markers`` are the common spellings of a missing value (``n/a``, ``-``) found as text in
    its numeric columns: a caller that can read a table's own markers as missing (``permed
    predict --missing``) names them.
    """

    def __init__(self, message: str, problems: list[str] | None = None,
                 markers: list[str] | None = None) -> None:
        self.markers = markers or []
        super().__init__(message, problems)


class BundleError(PermedError):
    """A run directory or model bundle is missing, incomplete or has been changed."""


class SecurityError(PermedError):
    """A key is missing, unreadable or too widely readable; a protected file cannot be used."""


class IntegrityError(SecurityError):
    """Encrypted or signed content does not verify: wrong key, or changed since it was written."""
