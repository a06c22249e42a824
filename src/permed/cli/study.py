"""permed init / validate: write a study from a table; check a table against a study."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import typer
from rich.text import Text

from permed.cli._console import err, out
from permed.cli._options import split_list
from permed.exceptions import PermedError
from permed.ingest import ReadWarning, read_table
from permed.privacy import audited, home_log
from permed.study import ColumnSpec, Finding, Study, validate
from permed.study._columns import (
    guess_kind,
    is_row_number,
    looks_like_dates,
    looks_like_identifier,
    written_code,
)

__all__ = ["init", "validate_command"]


def init(
    study_file: Path = typer.Argument(..., help="The study TOML to write."),
    data: Path | None = typer.Option(None, "--from", help="Table to guess column kinds from."),
    force: bool = typer.Option(False, help="Overwrite an existing study file."),
) -> None:
    """Write a study file, guessing each column's kind from a table (asks nothing).

    Example: permed init heart.toml --from heart.csv
    """
    if study_file.exists() and not force:
        raise PermedError(f"'{study_file}' exists: pass --force to overwrite it")
    study = Study()
    if data is not None:
        with audited(home_log(), "init", data=data):
            frame, _ = read_table(data)
            frame = codes_as_written(frame, data)
        study = guess_study(frame)
    study_file.parent.mkdir(parents=True, exist_ok=True)
    study_file.write_text(study.to_toml())
    out.print(str(study_file), highlight=False)
    for column in study.drop:
        what = "a row counter" if is_row_number(frame[column]) else "calendar dates"
        err.print(f"column '{column}' holds {what}: listed under drop", highlight=False)
    if data is not None:
        err.print(guessed_roles(study, frame), highlight=False)
    err.print("check the roles (target or time and event, id, sensitive) before training",
              highlight=False)


def codes_as_written(frame: pd.DataFrame, data: Path) -> pd.DataFrame:
    """``frame`` with the columns that are codes written with leading zeros (an MRN
    ``000101``, see ``written_code``) as the text of the file, not as the numbers they were
    read as (101): read as numbers, a record number looks like a measurement, or like a row
    counter when the table is sorted by it. Only whole-number columns with a different value for
    every patient can be such codes: only they are read again, as text."""
    candidates = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])
                  and not pd.api.types.is_bool_dtype(frame[c]) and frame[c].is_unique]
    if not candidates or data.suffix.lower() == ".parquet":  # Parquet keeps text as text
        return frame
    with warnings.catch_warnings():  # the first read said what there is to say of the file
        warnings.simplefilter("ignore")
        written, _ = read_table(data, text_columns=candidates)
    codes = {c: written[c] for c in candidates if written_code(written[c])}
    return frame.assign(**codes) if codes else frame


def guessed_roles(study: Study, frame: pd.DataFrame) -> str:
    """What init guessed, said, so that a wrong guess is seen before training."""
    last = frame.columns[-1]
    if study.time:
        target = (f"a risk study: time '{study.time}', event '{study.event}' (1 = event; "
                  "censored patients are not event-free)")
    elif study.target:
        target = (f"target '{study.target}' (the last column, "
                  f"{frame[study.target].nunique()} values)")
    else:
        target = (f"no target: the last column '{last}' has {frame[last].nunique()} values, "
                  "too many for classes; set target (diagnose), time and event (risk) or "
                  "treatment and outcome (treat) under [roles]")
    ident = f"id '{study.id}'" if study.id else "no id column"
    if study.identifiers:  # record numbers beside the id: never features
        ident += f"; identifiers {', '.join(repr(c) for c in study.identifiers)}"
    return f"guessed: {target}; {ident}; no sensitive column (add sensitive = [...])"


def guess_study(frame: pd.DataFrame) -> Study:
    """A study whose column kinds are guessed; the last column is taken as the target, or as
    the event of a risk study beside a column of follow-up times (``follow_up_column``).

    A row counter and calendar dates are listed under ``drop``, not given a kind: a
    declared kind would make validation keep them as features. The id is the first column
    named like one (``id``, ``mrn``, ``*_id``) or, after them, holding digits written with
    leading zeros (``000101``: see ``written_code``; ``codes_as_written`` keeps them as
    written); without either, the first holding a different whole number for every patient.
    Further such columns (an admission number beside the patient's) are listed under
    ``identifiers``: never features.
    """
    target = frame.columns[-1]
    ids = [c for c in frame.columns
           if c.lower() in ("id", "patient_id", "subject_id", "mrn")
           or (c.lower().endswith("_id") and frame[c].is_unique)]
    ids += [c for c in frame.columns[:-1] if c not in ids and written_code(frame[c])]
    # whole numbers unique to each patient may be a measurement too: besides the first, taken
    # as the id, they get no kind, so that validation says what they look like
    numbers = [] if ids else [c for c in frame.columns[:-1]
                              if looks_like_identifier(frame[c]) and not is_row_number(frame[c])]
    time = follow_up_column(frame, target)
    task = "risk" if time else "diagnose" if frame[target].nunique() <= 50 else None
    outcome = [target, time] if time else [target]
    rest = [c for c in frame.columns if c not in outcome and c not in ids + numbers]
    drop = [c for c in rest if is_row_number(frame[c]) or looks_like_dates(frame[c])]
    roles = {"time": time, "event": target} if time else {"target": target if task else None}
    return Study(task=task, **roles, id=(ids + numbers or [None])[0],
                 identifiers=ids[1:], drop=drop,
                 columns={c: ColumnSpec(kind=guess_kind(frame[c])) for c in rest if c not in drop})


# A follow-up time column: one of these names, or a name whose first or last word is one of
# _TIME_WORDS (time_days, os_months, survival_time, followup_years); not days_in_hospital.
_TIME_NAMES = ("time", "duration", "futime", "lenfol", "follow_up", "followup", "survival",
               "days", "months", "years", "t", "os", "pfs", "dfs", "rfs")
_TIME_WORDS = ("time", "duration", "futime", "survival", "followup", "os", "pfs", "dfs", "rfs")


def follow_up_column(frame: pd.DataFrame, event: str) -> str | None:
    """The column of follow-up times when ``event`` (the last column) codes an event 0/1
    and a column named like a time (``_TIME_NAMES``) holds positive numbers; else ``None``.

    Taken as a classification target, an event column would treat every censored patient as
    event-free: a risk study is guessed instead, and said.
    """
    codes = set(pd.unique(frame[event].dropna()))
    if not codes or not codes <= {0, 1}:  # True and False are 1 and 0
        return None
    for column in frame.columns:
        words = column.lower().replace("-", "_").replace(" ", "_").split("_")
        if column == event or not ("_".join(words) in _TIME_NAMES
                                   or words[0] in _TIME_WORDS or words[-1] in _TIME_WORDS):
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().mean() > 0.9 and (values.dropna() >= 0).all() \
                and values.nunique() > 10:
            return column
    return None


def validate_command(
    data: Path = typer.Argument(..., help="Patient table: .csv, .tsv or .parquet."),
    study_file: Path = typer.Option(..., "--study", help="Study TOML (permed init writes one)."),
    cv: int = typer.Option(5, help="Folds the training will use (smallest class size)."),
    models: str | None = typer.Option(
        None, help="The models the training will use, as for permed train: with --models "
        "fusion, patients without an image are allowed (their image is masked). Only fusion "
        "changes the checks; permed train checks the names."),
) -> None:
    """Data-quality report of a table against a study; exit status 1 when there are errors.

    Example: permed validate heart.csv --study heart.toml
    """
    from permed.workflow import validated_study

    study = validated_study(Study.from_toml(study_file), split_list([models] if models else None))
    with audited(home_log(), "validate", data=data), warnings.catch_warnings():
        warnings.simplefilter("ignore", ReadWarning)  # info.notes: told and counted below
        frame, info = read_table(data, text_columns=[study.id] if study.id else [],
                                 missing=study.missing)
    report = validate(frame, study, min_class_size=cv)
    report.findings[:0] = [Finding("warning", note) for note in info.notes]
    out.print(f"{info.path}: {info.rows} rows x {info.columns} columns ({info.fingerprint[:19]})",
              highlight=False)
    for finding in report.findings:
        colour = "red" if finding.level == "error" else "yellow"
        out.print(Text.assemble((finding.level, colour), f": {finding.message}"), highlight=False)
    kinds = ", ".join(f"{k}={v}" for k, v in report.kinds.items())
    out.print(f"features: {kinds}", highlight=False)
    out.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    if report.errors:
        raise typer.Exit(1)
