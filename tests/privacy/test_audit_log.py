"""The hash-chained audit log: verify names every edited, deleted or reordered entry."""

from __future__ import annotations

import json

import pytest

from permed.cli.main import main
from permed.exceptions import IntegrityError
from permed.privacy import AuditLog, audited, create_key_file, set_user, verify_log


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    for number in range(1, 6):
        audit.append("predict", rows=number)
    return audit


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("\n".join(lines) + "\n")


def test_an_intact_log_verifies(log):
    report = verify_log(log.path)
    assert report.ok
    assert report.entries == 5
    assert report.notes == []
    entry = json.loads(_lines(log)[0])
    assert set(entry) == {"seq", "time", "user", "action", "outcome", "details", "key_id", "prev",
                          "mac"}


def test_an_edited_entry_is_named(log):
    lines = _lines(log)
    lines[2] = lines[2].replace('"rows":3', '"rows":30')
    _write(log, lines)
    assert verify_log(log.path).problems == [
        "entry 3 (line 3) was edited: its MAC does not match its content"]


def test_a_deleted_entry_is_named(log):
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    assert verify_log(log.path).problems == ["entry 2 was deleted"]


def test_a_deleted_last_entry_is_caught_by_the_head(log):
    _write(log, _lines(log)[:-1])
    assert verify_log(log.path).problems == [
        "entry 5 was deleted (the last entries: 'audit.log.head' records entry 5)"]


def test_swapped_entries_are_named(log):
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log, lines)
    assert verify_log(log.path).problems == [
        "entry 2 (line 3) comes after entry 3 (line 2): entries were swapped or reordered"]


def test_an_entry_from_another_log_breaks_the_chain(log, tmp_path):
    other = AuditLog(tmp_path / "other.log")
    for number in range(1, 4):
        other.append("predict", rows=number * 100)
    lines = _lines(log)
    lines[2] = other.path.read_text().splitlines()[2]
    _write(log, lines)
    assert verify_log(log.path).problems == [
        "entry 3 (line 3) does not chain to entry 2: an entry was replaced or taken from another "
        "log", "entry 4 (line 4) does not chain to entry 3: an entry was replaced or taken from "
        "another log"]


def test_a_log_checked_with_another_key_says_so(log, tmp_path):
    other = create_key_file(tmp_path / "other.key")
    problems = verify_log(log.path, other).problems
    assert len(problems) == 6
    assert problems[0].startswith("entry 1 (line 1) was written with integrity key id ")


def test_appending_to_a_damaged_log_is_refused(log):
    log.path.write_text(log.path.read_text() + "garbage\n")
    with pytest.raises(IntegrityError, match="ends with a line that is not an entry"):
        log.append("predict")


def test_audited_records_who_what_and_the_outcome_without_the_message(tmp_path):
    set_user("dr.alvarez")
    data = tmp_path / "new.csv"
    data.write_text("name\nMaria Lopez\n")
    with pytest.raises(ValueError, match="Maria Lopez"), \
            audited(tmp_path / "audit.log", "predict", data=data):
        raise ValueError("bad value 'Maria Lopez'")
    entries = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(e["action"], e["outcome"], e["user"]) for e in entries] == [
        ("read", "success", "dr.alvarez"), ("predict", "failure: ValueError", "dr.alvarez")]
    assert entries[0]["details"]["data"].startswith("sha256:")
    assert "Maria" not in (tmp_path / "audit.log").read_text()
    set_user("")


def test_cli_verify_exits_1_and_names_the_entry(log, capsys):
    assert main(["audit", "verify", str(log.path)]) == 0
    assert "5 entries, intact" in capsys.readouterr().out
    lines = _lines(log)
    lines[3] = lines[3].replace('"predict"', '"export"')
    _write(log, lines)
    assert main(["audit", "verify", str(log.path)]) == 1
    assert "entry 4 (line 4) was edited" in capsys.readouterr().err


def test_a_missing_head_cannot_be_verified(log):
    log.head_path.unlink()
    _write(log, _lines(log)[:-1])  # the last entry deleted, then the head that records it
    assert verify_log(log.path).problems == [
        "cannot verify: 'audit.log.head' is missing, so deleted last entries cannot be ruled "
        "out; restore 'audit.log.head' from a backup"]


def test_an_emptied_log_without_its_head_cannot_be_verified(log):
    log.head_path.unlink()
    log.path.write_text("")
    report = verify_log(log.path)
    assert report.entries == 0
    assert report.problems == [
        "cannot verify: the log holds no entries and 'audit.log.head' is missing: it was emptied "
        "(or its entries deleted), or nothing was ever recorded in it"]


def test_cli_verify_exits_1_when_the_log_cannot_be_verified(log, capsys):
    log.head_path.unlink()
    assert main(["audit", "verify", str(log.path)]) == 1
    captured = capsys.readouterr()
    assert "intact" not in captured.out
    assert "cannot verify: 'audit.log.head' is missing" in captured.err
