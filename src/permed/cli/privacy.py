"""permed keys / deidentify / audit: data keys, de-identification and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from permed.cli._console import err, out, table
from permed.cli._options import check_table_out, split_list
from permed.exceptions import StudyError
from permed.ingest import read_table, table_columns
from permed.privacy import (
    ACTIONS,
    AuditLog,
    Key,
    active_key,
    audited,
    create_key_file,
    deidentify_frame,
    generate_key,
    home_log,
    read_as_text,
    read_key_file,
    rotate,
    save_table,
    use_key,
    verify_log,
)
from permed.study import Study

__all__ = ["audit_app", "deidentify", "key_file_option", "keyed", "keys_app"]

keys_app = typer.Typer(help="Data keys: create one; rotate encrypted runs and files to a new one.",
                       no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify that a log is intact.",
                        no_args_is_help=True)


def key_file_option(purpose: str = "encrypted files") -> Any:
    """The ``--key-file`` option (a fresh Option object for each command)."""
    return typer.Option(
        None, "--key-file", help=f"Data key file for {purpose} (permed keys create --out KEY "
        "makes one; or set PERMED_KEY).")


@contextmanager
def keyed(key_file: Path | None) -> Iterator[Key | None]:
    """Make ``--key-file``'s key the data key while a command runs."""
    with use_key(read_key_file(key_file) if key_file else None) as key:
        yield key


@keys_app.command("create")
def create(
    out_file: Path = typer.Option(..., "--out", help="Where to write the new key (mode 0600)."),
) -> None:
    """Create a random 256-bit data key in a file only its owner can read.

    Example: permed keys create --out site.key
    """
    key = create_key_file(out_file)
    AuditLog(home_log()).append("keys.create", key=key.key_id)
    err.print(f"key id {key.key_id}: keep the file apart from the data it protects and back it "
              "up safely; data encrypted with a lost key cannot be read", highlight=False,
              soft_wrap=True)
    out.print(str(out_file), highlight=False, soft_wrap=True)


@keys_app.command("rotate")
def rotate_command(
    paths: list[Path] = typer.Argument(..., help="Run directories and encrypted files."),
    old: Path = typer.Option(..., "--old", help="The key the data is encrypted with now."),
    new: Path = typer.Option(..., "--new", help="The new key (created when the file does not "
                             "exist)."),
) -> None:
    """Re-encrypt runs and files with a new data key, each one atomically.

    A run is re-encrypted in a copy that replaces it in one step: if the command is
    interrupted, the run stays whole under the old key. Run it again to finish.

    Example: permed keys rotate --old site.key --new site2.key runs/x
    """
    old_key = read_key_file(old)
    new_key = read_key_file(new) if new.exists() else create_key_file(new)
    if old_key.key_id == new_key.key_id:
        raise StudyError(f"--old and --new are the same key (id {new_key.key_id}): create a new "
                         "one with permed keys create --out NEW")
    with audited(home_log(), "keys.rotate", old_key=old_key.key_id, new_key=new_key.key_id):
        done = rotate(paths, old_key, new_key)
    for item in done:
        err.print(f"{item.path}: {item.files} file(s) re-encrypted with key id "
                  f"{new_key.key_id}", highlight=False, soft_wrap=True)


def _parse_actions(values: list[str] | None) -> dict[str, str]:
    actions = {}
    for item in split_list(values):
        column, sep, action = item.partition("=")
        if not sep or not column.strip() or action.strip() not in ACTIONS:
            raise StudyError(f"--action '{item}' must be COLUMN=ACTION with ACTION one of "
                             f"{', '.join(ACTIONS)}, e.g. --action admit_date=shift_date")
        actions[column.strip()] = action.strip()
    return actions


def deidentify(
    data: Path = typer.Argument(..., help="Table with identifiers: .csv, .tsv or .parquet."),
    out_file: Path = typer.Option(..., "--out", help="De-identified table (.csv, .tsv or "
                                  ".parquet)."),
    study_file: Path | None = typer.Option(
        None, "--study", help="Study TOML: roles (id, identifiers, quasi_identifiers) and the "
        "[deidentify] action of each column."),
    key_file: Path | None = key_file_option("pseudonyms, date shifts and --encrypt"),
    text_column: list[str] | None = typer.Option(
        None, "--text-column", help="Free-text column(s) to scrub, e.g. --text-column note."),
    id_column: str | None = typer.Option(None, "--id", help="Patient id column (pseudonymized; "
                                         "dates shift alike within a patient)."),
    action: list[str] | None = typer.Option(
        None, "--action", help="COLUMN=ACTION, repeated: " + ", ".join(ACTIONS) + "."),
    quasi: list[str] | None = typer.Option(
        None, "--quasi", help="Quasi-identifiers for the re-identification risk, e.g. "
        "--quasi age,sex,zip."),
    encrypt: bool = typer.Option(False, help="Encrypt the output with the data key."),
    report_file: Path | None = typer.Option(None, "--report", help="Write the actions, "
                                            "warnings and risk as JSON here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """Remove the Safe Harbor identifiers from a table and its notes.

    Identifiers are dropped or pseudonymized with a keyed HMAC (stable across files with the
    same key), dates shifted per patient (intervals kept) or cut to the year, ages over 89
    grouped as 90+, ZIP codes cut to 3 digits, free text scrubbed. k-anonymity over the
    quasi-identifiers is reported before and after.

    Example: permed deidentify raw.csv --study study.toml --key-file site.key --out clean.parquet
    """
    check_table_out(out_file)
    study = (Study.from_toml(study_file) if study_file else Study()).with_overrides(id=id_column)
    with keyed(key_file), audited(home_log(), "deidentify", data=data) as session:
        key = active_key()
        if key is None:
            if encrypt:
                raise StudyError("--encrypt needs the data key: pass --key-file KEY (permed keys "
                                 "create --out KEY makes one) or set PERMED_KEY")
            err.print("no --key-file: pseudonyms and date shifts use a one-time key and will not "
                      "match other files; pass --key-file to link records", style="yellow",
                      highlight=False, soft_wrap=True)
        overrides = _parse_actions(action)
        frame, _ = read_table(data, text_columns=read_as_text(table_columns(data), study,
                                                              overrides))
        result = deidentify_frame(frame, key or generate_key(), study,
                                  text_columns=tuple(split_list(text_column)),
                                  actions=overrides,
                                  quasi_identifiers=split_list(quasi) or None)
        save_table(result.frame, out_file, key if encrypt else None)
        session.add(rows=len(result.frame), columns=len(result.frame.columns),
                    replaced_in_text=result.replaced, encrypted=encrypt)
        session.output = out_file
    summary = _summary(result, key.key_id if key else None)
    if report_file is not None:
        report_file.write_text(json.dumps(summary, indent=2))
    if not quiet:
        _print_summary(result, summary)
    out.print(str(out_file), highlight=False, soft_wrap=True)


def _summary(result: Any, key_id: str | None) -> dict[str, Any]:
    return {"rows": len(result.frame), "actions": result.actions, "warnings": result.warnings,
            "replaced_in_text": result.replaced, "key_id": key_id,
            "risk": {k: v.to_dict() for k, v in result.risk.items()}}


def _print_summary(result: Any, summary: dict[str, Any]) -> None:
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow", highlight=False, soft_wrap=True)
    actions = table("De-identification", ["column", "action"])
    for column, action in result.actions.items():
        actions.add_row(column, action)
    err.print(actions)
    if summary["risk"]:
        risk = table("Re-identification risk over " + ", ".join(
            result.risk["before"].quasi_identifiers), ["", "k", "unique records", "in classes < 5"])
        for when, entry in summary["risk"].items():
            risk.add_row(when, str(entry["k"]), f"{entry['unique_share']:.1%}",
                         f"{entry['at_risk_share']:.1%}")
        err.print(risk)
    err.print(f"{result.replaced} identifiers replaced in free text", highlight=False,
              soft_wrap=True)


@audit_app.command("verify")
def verify(
    log: Path | None = typer.Argument(None, help="The log (default: $PERMED_HOME/audit.log), "
                                      "e.g. runs/x/audit.log."),
    integrity_key_file: Path | None = typer.Option(
        None, "--integrity-key", help="The integrity key file the log was written with "
        "(default: PERMED_INTEGRITY_KEY or $PERMED_HOME/integrity.key)."),
) -> None:
    """Check an audit log: every entry's MAC, the order, the chain and the last entry.

    Exits with status 1 and names each edited, deleted or reordered entry.

    Example: permed audit verify runs/x/audit.log
    """
    path = log or home_log()
    report = verify_log(path, read_key_file(integrity_key_file) if integrity_key_file else None)
    for note in report.notes:
        err.print(f"note: {note}", style="yellow", highlight=False, soft_wrap=True)
    if report.ok:
        out.print(f"{path}: {report.entries} entries, intact", highlight=False, soft_wrap=True)
        return
    for problem in report.problems:
        err.print(Text.assemble((f"{path}:", "bold red"), f" {problem}"), highlight=False,
                  soft_wrap=True)
    raise typer.Exit(1)
