"""docs/study.md: every example parses, and every key the study file accepts is documented."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from permed.exceptions import StudyError
from permed.privacy._deidentify import ACTIONS
from permed.study import ColumnSpec, Study
from permed.study._study import KINDS, MONOTONE, ON_BAD_FILE, TASKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "study.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```toml\n(.*?)^```", TEXT, flags=re.MULTILINE | re.DOTALL)


def test_doc_has_one_example_per_task():
    tasks = sorted(re.search(r'^task = "(\w+)"', b, flags=re.MULTILINE).group(1) for b in BLOCKS)
    assert tasks == sorted(TASKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example_parses(block, tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(block, encoding="utf-8")
    study = Study.from_toml(path)
    assert study.task in TASKS


def test_every_column_key_is_documented():
    missing = [f.name for f in fields(ColumnSpec) if f"`{f.name}`" not in TEXT]
    assert not missing, f"ColumnSpec keys not in docs/study.md: {missing}"


def _accepted_roles() -> list[str]:
    """The [roles] keys from_dict accepts, read from its own error message."""
    with pytest.raises(StudyError, match="unknown role") as caught:
        Study.from_dict({"roles": {"no_such_role": "x"}})
    return re.findall(r"'(\w+)'", str(caught.value).split("expected", 1)[1])


def test_every_role_is_documented():
    accepted = _accepted_roles()
    assert len(accepted) > 10
    assert set(accepted) <= {f.name for f in fields(Study)}
    missing = [r for r in accepted if f"| `{r}` |" not in TEXT]
    assert not missing, f"roles not in the [roles] table of docs/study.md: {missing}"


def test_every_study_field_is_documented():
    # fields set from other tables: task and text_encoder in [study], the three tables
    missing = [f.name for f in fields(Study) if f"`{f.name}`" not in TEXT
               and f"[{f.name}" not in TEXT]
    assert not missing, f"Study fields not in docs/study.md: {missing}"


def test_every_value_is_documented():
    values = [*TASKS, *ACTIONS, *KINDS, *MONOTONE, *ON_BAD_FILE]
    missing = [v for v in values if f"`{v}`" not in TEXT and f'"{v}"' not in TEXT]
    assert not missing, f"values not in docs/study.md: {missing}"


def test_the_header_points_to_the_doc():
    assert "docs/study.md" in Study().to_toml()
