"""A [study] setting written at the top of the file or under [roles] is refused with the fix."""

from __future__ import annotations

import re

import pytest

from permed.exceptions import StudyError
from permed.study import Study


@pytest.mark.parametrize(("raw", "message"), [
    ({"task": "diagnose", "roles": {"id": "pid"}},
     "study: unknown section(s) ['task']; expected [study], [roles], [columns.NAME], "
     "[deidentify], [fhir]: task is a setting of [study], not of the top level: put task under "
     "[study]"),
    ({"roles": {"task": "diagnose", "id": "pid"}},
     "study: unknown role(s) ['task']; expected ['actionable', 'drop', 'event', 'events', "
     "'genes', 'id', 'identifiers', 'images', 'notes', 'on_bad_file', 'outcome', 'propensity', "
     "'quasi_identifiers', 'sensitive', 'target', 'time', 'treatment', 'true_effect', "
     "'use_sensitive']: task is a setting of [study], not of [roles]: put task under [study]"),
])
def test_a_study_setting_in_the_wrong_place_says_where_it_goes(raw, message):
    with pytest.raises(StudyError, match=f"^{re.escape(message)}"):
        Study.from_dict(raw)


def test_two_misplaced_settings_are_named_together_and_other_keys_get_no_hint():
    with pytest.raises(StudyError, match=r": missing and text_encoder are settings of \[study\], "
                       r"not of \[roles\]: put missing and text_encoder under \[study\]$"):
        Study.from_dict({"roles": {"missing": ["n/a"], "text_encoder": "tfidf"}})
    with pytest.raises(StudyError, match=r"\[deidentify\], \[fhir\]$"):
        Study.from_dict({"deidentifiy": {}})
