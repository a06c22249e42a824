"""A run's own patients found again in an "external" cohort.

Train keeps keyed digests of its development and test rows in ``row_digests.json``; ``permed
evaluate`` digests the cohort's rows with the same key and counts the matches, however the
patients were re-exported (another file, a subset, reordered rows, extra columns). The file
holds no value: each row is an HMAC of its feature values, keyed with a random salt drawn per
run, so equal rows give equal digests. The salt is kept beside them (evaluate needs it), so
whoever holds the file can test a guess of a whole row or of an id: it is protected as
predictions.csv is (encrypted with the run's data key under ``--encrypt``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import BundleError
from permed.privacy import read_bytes
from permed.study import FittedSchema
from permed.study._columns import plural, rows_phrase

__all__ = ["DIGEST_FILE", "CohortOverlap", "cohort_overlap", "overlap_digests"]

DIGEST_FILE = "row_digests.json"
FORMAT = 2  # 1: ``chance`` held shares; 2: the counts they come from
SALT_BYTES = 32
DIGEST_HEX = 16  # 64 bits: a million rows against a million collide by chance 1 time in 2e7
SEPARATOR = "\x1f"  # the ASCII unit separator, between a row's values
METHOD = ("HMAC-SHA256 of each row's feature values (the model's features in schema order, "
          "read as the model reads them; numbers as Python float repr, missing as empty), keyed "
          "with the development run's random salt and truncated to 16 hex digits; ids likewise, "
          "trimmed, a whole number written as a decimal (1250.0) as the whole number")
# Rows matching development ones are warned about when cohorts of patients distinct from the
# development ones would match as many less often than this, by the beta-binomial predictive
# distribution of their matches: the rate at which distinct patients match is not known, only
# estimated from the run's test split (k of its n rows match a development row), so its
# uncertainty (Jeffreys posterior Beta(k + 1/2, n - k + 1/2)) is part of what chance gives. A
# plug-in binomial at k / n warned about new patients in 9% to 29% of runs with 6 coarse
# features (Cleveland heart data) and a test split of 60 to 10 rows (any match warning at k 0).
CHANCE_LEVEL = 0.001
# Features so coarse that more than this share of distinct patients share a row with some
# development patient identify nobody: a cohort drawn from a narrower range (ages 50-70 of a
# development cohort of 30-90) then matches more often than the development data's own rate,
# with no patient repeated. Their matches are counted in metrics.json, not warned about; ids,
# when the study has them, are still matched.
COARSE_RATE = 0.05
_WHOLE = re.compile(r"([+-]?\d+)\.0*")  # an id written as a decimal: 1250.0


def overlap_digests(frame: pd.DataFrame, schema: FittedSchema, development: pd.Index,
                    test: pd.Index) -> dict[str, Any]:
    """row_digests.json of a run: the digests of its development and test rows of ``frame``
    (the table as read; ``development`` and ``test`` are index labels), sorted and deduplicated
    so that they follow no row order, and how often distinct patients match by chance.

    ``chance`` counts, for the development split, the test rows whose features equal a
    development row's and the development rows equal to another development row's (``matches``
    of ``of``; for the test split, the other way round): the rows compared are different
    patients (or, within a split, the same patient twice, which only makes the rate higher and
    the warning more cautious), so this is how often features this coarse coincide between
    patients who are not the same. Comparing within the development split as well keeps a small
    test split from leaving the rate loosely known: with continuous features and 0 matches of
    48 test rows alone, 13 of 100 cohort rows could repeat development patients unwarned.
    """
    salt = secrets.token_bytes(SALT_BYTES)
    dev, held = frame.loc[development], frame.loc[test]
    features = [_feature_digests(schema, part, salt) for part in (dev, held)]
    ids = [_id_digests(schema, part, salt) for part in (dev, held)]
    return {
        "format": FORMAT, "method": METHOD, "salt": salt.hex(),
        "id_column": schema.id if ids[0] is not None else None,
        "chance": {"development": _pooled(_found_in(features[1], features[0]),
                                          _twins(features[0])),
                   "test": _pooled(_found_in(features[0], features[1]), _twins(features[1]))},
        **{name: {"rows": len(part), "features": _stored(features[i]), "ids": _stored(ids[i])}
           for i, (name, part) in enumerate((("development", dev), ("test", held)))},
    }


@dataclass
class CohortOverlap:
    """The cohort rows (0-based input rows) whose features equal a development or test row's,
    and whose id is a development patient's; None where the run keeps no such digests.
    ``chance`` holds, per split, how many rows of the other split match it, of how many."""

    rows: int
    development: pd.Index | None = None
    test: pd.Index | None = None
    ids: pd.Index | None = None
    chance: dict[str, tuple[int, int]] = field(default_factory=dict)
    note: str | None = None

    def entry(self) -> dict[str, Any]:
        """metrics.json's ``external.overlap``."""
        counts = {key: None if rows is None else len(rows) for key, rows in (
            ("matching_development", self.development), ("matching_test", self.test),
            ("matching_ids", self.ids))}
        entry: dict[str, Any] = {"rows": self.rows, **counts,
                                 "method": None if self.note else METHOD}
        if self.note:
            return {**entry, "note": self.note}
        return {**entry, "expected_by_chance": {
            split: round(_rate(self.chance.get(split)) * self.rows, 1)
            for split in ("development", "test")}}

    def warnings(self, id_column: str | None) -> list[str]:
        """What the figures must be read with: the run's development and test patients (by
        their features, beyond chance) and, among the other rows, development ids."""
        found = [
            _feature_warning(self.development, self.rows, self.chance.get("development"),
                             "patients the model was developed on",
                             "an external validation must use patients the model never saw, "
                             "so these figures are optimistic"),
            _feature_warning(self.test, self.rows, self.chance.get("test"),
                             "patients of the run's test split",
                             "they are the development data's patients, not an external "
                             "cohort, so these figures partly repeat the test figures")]
        told = pd.Index([], dtype=np.int64)  # rows a warning names already
        for rows, warning in zip((self.development, self.test), found, strict=True):
            told = told.union(rows) if warning and rows is not None else told
        ids = None if self.ids is None else self.ids.difference(told, sort=False)
        if ids is not None and len(ids):
            found.append(
                f"{len(ids)} {'more ' if len(told) else ''}of {plural(self.rows, 'patient')} "
                f"of this cohort have an id in '{id_column}' that a patient of the development "
                f"data had ({rows_phrase(ids)}): if they are the same patients, the model has "
                "seen them and these figures are optimistic; remove those rows, or ignore this "
                "if the two sites number their patients independently")
        return [w for w in found if w]


def cohort_overlap(run_dir: str | Path, schema: FittedSchema,
                   cohort: pd.DataFrame) -> CohortOverlap:
    """The rows of ``cohort`` (indexed by 0-based input row) that repeat the run's patients.

    A run without ``row_digests.json`` (an image or fusion run, or one trained before it was
    kept) gives counts of None and a note.

    Raises
    ------
    BundleError
        When ``row_digests.json`` is not the JSON train writes.
    """
    saved = _read(Path(run_dir) / DIGEST_FILE)
    if saved is None:
        return CohortOverlap(len(cohort), note=(
            f"the run has no {DIGEST_FILE} (an image or fusion run, or one trained before "
            "permed kept row digests): rows repeating its patients are not looked for"))
    salt = bytes.fromhex(saved["salt"])
    development, test = saved["development"], saved["test"]
    features = _feature_digests(schema, cohort, salt)
    ids = _id_digests(schema, cohort, salt)
    known_ids = (None if ids is None or development.get("ids") is None
                 else set(development["ids"]) | set(test.get("ids") or []))
    return CohortOverlap(
        len(cohort),
        development=_matching(cohort.index, features, development.get("features")),
        test=_matching(cohort.index, features, test.get("features")),
        ids=_matching(cohort.index, ids, known_ids),
        chance=_chance(saved))


def _read(path: Path) -> dict[str, Any] | None:
    """row_digests.json's content (decrypted with the data key when the run is encrypted); None
    when absent or of another format."""
    if not path.is_file():
        return None
    problem = ""
    try:
        saved = json.loads(read_bytes(path, DIGEST_FILE).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        saved, problem = None, f" ({error})"
    if not isinstance(saved, dict) or not {"format", "salt", "development", "test"} <= set(saved):
        raise BundleError(f"'{path}' is not the JSON permed train writes{problem}: restore it "
                          "from the run, or delete it to evaluate without looking for the "
                          "run's own patients")
    return saved if saved["format"] in (1, FORMAT) else None


def _chance(saved: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per split, the rows of the other split matching it and how many were looked at. A file
    of format 1 kept only the share (0 when absent): its count is recovered from the rows of
    the other split."""
    chance: dict[str, tuple[int, int]] = {}
    for split, other in (("development", "test"), ("test", "development")):
        stored = (saved.get("chance") or {}).get(split, 0.0)
        if isinstance(stored, dict):
            chance[split] = (int(stored.get("matches", 0)), int(stored.get("of", 0)))
        else:
            of = int(saved[other].get("rows") or 0)
            chance[split] = (round(float(stored) * of), of)
    return chance


def _rate(chance: tuple[int, int] | None) -> float:
    """The share of rows matching by chance (0 when none were looked at)."""
    return chance[0] / chance[1] if chance and chance[1] else 0.0


def _feature_warning(rows: pd.Index | None, total: int, chance: tuple[int, int] | None,
                     whose: str, why: str) -> str:
    """A warning when more cohort rows equal ``whose`` rows than chance would give."""
    matches, of = chance or (0, 0)
    if (rows is None or _rate(chance) > COARSE_RATE
            or not _beyond_chance(len(rows), total, matches, of)):
        return ""
    expected = _rate(chance) * total
    by_chance = f"; about {expected:.0f} would by chance" if expected >= 0.5 else ""
    return (f"{len(rows)} of {plural(total, 'patient')} of this cohort have the same values in "
            f"every feature as {whose} ({rows_phrase(rows)}{by_chance}): {why}; remove those "
            "rows or evaluate a cohort from elsewhere")


def _beyond_chance(count: int, total: int, matches: int, of: int) -> bool:
    """Whether ``count`` of ``total`` cohort rows matching exceeds what distinct patients give
    in all but :data:`CHANCE_LEVEL` of cohorts, when ``matches`` of ``of`` rows of the other
    split matched: the beta-binomial predictive distribution of the matches, over the Jeffreys
    posterior Beta(matches + 1/2, of - matches + 1/2) of the rate they estimate.

    Examples
    --------
    >>> _beyond_chance(3, 100, 0, 1000), _beyond_chance(3, 100, 0, 20)
    (True, False)
    """
    if count == 0:
        return False
    from scipy.stats import betabinom

    matches = min(max(matches, 0), of)
    return bool(count > betabinom.ppf(1 - CHANCE_LEVEL, total, matches + 0.5,
                                      of - matches + 0.5))


def _matching(index: pd.Index, digests: list[str | None] | None,
              known: list[str] | set[str] | None) -> pd.Index | None:
    """The labels of ``index`` whose digest is ``known`` (None when either side has none)."""
    if digests is None or known is None:
        return None
    known = set(known)
    return index[np.fromiter((d is not None and d in known for d in digests), dtype=bool,
                             count=len(digests))]


def _found_in(digests: list[str | None] | None,
              others: list[str | None] | None) -> dict[str, int]:
    """How many of ``digests`` are found among ``others``, of how many (0 of 0 when either is
    absent)."""
    if digests is None or others is None:
        return {"matches": 0, "of": 0}
    known = set(others)
    return {"matches": sum(d in known for d in digests), "of": len(digests)}


def _twins(digests: list[str | None] | None) -> dict[str, int]:
    """How many of ``digests`` equal another of them, of how many."""
    if digests is None:
        return {"matches": 0, "of": 0}
    counts = Counter(digests)
    return {"matches": sum(counts[d] > 1 for d in digests), "of": len(digests)}


def _pooled(*found: dict[str, int]) -> dict[str, int]:
    return {"matches": sum(f["matches"] for f in found), "of": sum(f["of"] for f in found)}


def _stored(digests: list[str | None] | None) -> list[str] | None:
    return None if digests is None else sorted({d for d in digests if d is not None})


def _feature_digests(schema: FittedSchema, frame: pd.DataFrame,
                     salt: bytes) -> list[str | None] | None:
    """Each row's digest of its feature values; None for a model without features."""
    if not schema.features:
        return None
    coerced = schema.coerce(frame)
    columns = [_texts(column) for _, column in coerced.items()]
    return [_digest(SEPARATOR.join(values), salt) for values in zip(*columns, strict=True)]


def _id_digests(schema: FittedSchema, frame: pd.DataFrame,
                salt: bytes) -> list[str | None] | None:
    """Each row's digest of its id (None for a row without one); None without an id column."""
    if not schema.id or schema.id not in frame.columns:
        return None
    ids = frame[schema.id]
    return [None if missing else _digest(_id_text(value), salt)
            for value, missing in zip(ids.tolist(), ids.isna().tolist(), strict=True)]


def _id_text(value: Any) -> str:
    """An id as digested: trimmed, and a whole number written as a decimal (``1250.0``, as
    pandas writes a column of numeric ids with a blank) as the whole number. Leading zeros
    stay: ``000101`` and ``101`` are different codes."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    whole = _WHOLE.fullmatch(text)
    return whole.group(1) if whole else text


def _texts(column: pd.Series) -> list[str]:
    """A column's values in a stable text form: numbers as the repr of a float, missing as
    empty, anything else as its text."""
    missing = column.isna().tolist()
    if pd.api.types.is_numeric_dtype(column.dtype):
        return ["" if gap else repr(float(v))
                for v, gap in zip(column.tolist(), missing, strict=True)]
    return ["" if gap else str(v) for v, gap in zip(column.tolist(), missing, strict=True)]


def _digest(text: str, salt: bytes) -> str:
    return hmac.new(salt, text.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGEST_HEX]
