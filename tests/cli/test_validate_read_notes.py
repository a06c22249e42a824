"""permed validate counts how the table was read (a Windows-1252 file, thousands separators)
among its warnings: it printed them, then '0 error(s), 0 warning(s)'."""

from __future__ import annotations

from permed.testing import run_permed as permed


def _write(folder):
    lines = ["patient_id;âge;bmi;income;disease"]
    for i in range(60):
        lines.append(f"P{i:03d};{30 + i % 40};{20 + i % 9},{i % 10};{1 + i % 5}.{100 + i % 7};"
                     f"{'yes' if i % 3 else 'no'}")
    data = folder / "extract.csv"
    data.write_text("\n".join(lines) + "\n", encoding="cp1252")
    study = folder / "extract.toml"
    study.write_text('[study]\ntask = "diagnose"\n[roles]\nid = "patient_id"\n'
                     'target = "disease"\n', encoding="utf-8")
    return data, study


def test_validate_counts_the_reader_warnings(tmp_path):
    _write(tmp_path)
    # relative paths: the console wraps long lines, and a long path could be cut anywhere
    data = "extract.csv"
    result = permed("validate", data, "--study", "extract.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert (f"warning: data file '{data}' is not UTF-8: line 1 (the header), column 'âge' holds "
            "byte 0xe2; it was read as Windows-1252") in said
    assert f"warning: column 'income' of data file '{data}' writes thousands with '.'" in said
    assert said.endswith("features: âge=numeric, bmi=numeric, income=numeric 0 error(s), "
                         "2 warning(s)")
    assert "warning" not in result.stderr  # told once, in the report
