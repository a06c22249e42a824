"""The command line as a user runs it: real processes, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from permed import __version__ as permed_version
from permed.testing import run_permed as permed

FAST = ["--models", "logistic", "--cv", "3", "--bootstrap", "200", "--quiet"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    assert permed("datasets", "export", "breast_cancer", tmp / "bc.csv").returncode == 0
    return tmp


@pytest.fixture(scope="module")
def trained(workspace):
    result = permed("train", workspace / "bc.csv", "--target", "diagnosis", "--out",
                    workspace / "run", *FAST)
    assert result.returncode == 0, result.stderr
    return workspace / "run"


def test_train_prints_the_report_path(trained):
    assert (trained / "report.html").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["selected_model"] == "logistic"


def test_predict_writes_one_row_per_patient(workspace, trained):
    new = pd.read_csv(workspace / "bc.csv").drop(columns="diagnosis").head(30)
    new.to_csv(workspace / "new.csv", index=False)
    result = permed("predict", trained, workspace / "new.csv", "--out", workspace / "p.csv")
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(workspace / "p.csv")
    assert len(predictions) == 30
    assert {"prob_benign", "prob_malignant", "predicted", "out_of_range"} <= set(predictions)


def test_predict_warns_of_a_feature_the_site_does_not_record(workspace, trained):
    new = pd.read_csv(workspace / "bc.csv").drop(columns="diagnosis").head(30)
    new.assign(**{"mean radius": None}).to_csv(workspace / "no_radius.csv", index=False)
    result = permed("predict", trained, workspace / "no_radius.csv", "--out",
                    workspace / "no_radius_p.csv")
    assert result.returncode == 0, result.stderr
    warned = ("warning: column 'mean radius' is empty for all 30 patients, against 0% missing "
              "in development: its values were filled in from the development patients, so "
              "the predictions are those of a model without 'mean radius'; record 'mean "
              "radius' at this site, or train a model without it")
    assert warned in " ".join(result.stderr.split())
    assert len(pd.read_csv(workspace / "no_radius_p.csv")) == 30


def test_predict_to_standard_output(workspace, trained):
    result = permed("predict", trained, workspace / "bc.csv")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("prob_benign,prob_malignant,predicted")
    assert len(result.stdout.splitlines()) == 570


def test_evaluate_on_another_cohort(workspace, trained):
    cohort = pd.read_csv(workspace / "bc.csv").sample(200, random_state=1)
    cohort.to_csv(workspace / "other.csv", index=False)
    result = permed("evaluate", trained, workspace / "other.csv", "--out", workspace / "ext",
                    "--bootstrap", "200", "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((workspace / "ext" / "metrics.json").read_text())
    assert metrics["external"]["run"] == str(trained)
    assert metrics["data"]["test_rows"] == 200
    assert metrics["test"]["auroc"]["ci_low"] <= metrics["test"]["auroc"]["value"]
    assert "External validation" in (workspace / "ext" / "report.html").read_text()


@pytest.mark.parametrize("out", ["run", "other_run"])
def test_evaluate_refuses_to_write_over_a_trained_run(workspace, trained, out):
    """It had replaced the run's model/ (itself, or another run's) without a word."""
    import shutil

    if out == "other_run" and not (workspace / out).exists():
        shutil.copytree(trained, workspace / out)
    bundle = (workspace / out / "model" / "bundle.json").read_bytes()
    result = permed("evaluate", trained, workspace / "bc.csv", "--out", workspace / out)
    assert result.returncode != 0
    assert "holds a trained run (model/bundle.json): the evaluation would replace its model" \
        in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert (workspace / out / "model" / "bundle.json").read_bytes() == bundle


@pytest.fixture(scope="module")
def external(workspace, trained):
    """An external validation on 150 benign and 60 malignant patients (the development file
    has 357 and 212), with its own bootstrap count (the development run used 200)."""
    frame = pd.read_csv(workspace / "bc.csv")
    cohort = pd.concat([frame[frame["diagnosis"] == "benign"].head(150),
                        frame[frame["diagnosis"] == "malignant"].head(60)])
    cohort.to_csv(workspace / "cohort.csv", index=False)
    result = permed("evaluate", trained, workspace / "cohort.csv", "--out",
                    workspace / "external", "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    return workspace / "external", result


def test_external_report_describes_the_external_cohort(external):
    out_dir, _ = external
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["target"]["counts"] == {"benign": 150, "malignant": 60}
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["permed_version"] == permed_version
    assert manifest["created"].startswith("20")
    assert manifest["config"] == {"task": "diagnose", "n_boot": 100, "seed": 42}
    html = (out_dir / "report.html").read_text()
    assert "Outcome classes of the 210 patients evaluated" in html
    assert "<td>150</td><td>71.4%</td>" in html
    assert "Patients per class: benign: 150, malignant: 60." in html
    assert "is missing" not in html  # the external run has no model/ and needs none
    assert "30 predictors the model uses (from model/schema.json of the development run" in html
    assert "<th scope=\"row\">mean radius</th>" in html
    assert "<th scope=\"row\">Created</th><td>\u2014</td>" not in html
    assert "95% CIs of its held-out test figures: 200 bootstrap replicates" in html
    assert "This external validation: 95% CIs from 100 bootstrap replicates" in html


def test_evaluate_titles_the_external_cohorts_figures(external, trained):
    _, result = external
    printed = " ".join(result.stderr.split())
    assert f"Development run: {trained} (logistic, applied unchanged)" in printed
    assert "External cohort cohort.csv, 210 patients, logistic (95% CI)" in printed
    assert "Held-out test" not in printed
    assert "Cross-validation" not in printed


def test_training_into_an_existing_run_says_it_replaced_it(workspace):
    args = ["train", workspace / "bc.csv", "--target", "diagnosis", "--out",
            workspace / "again", *FAST[:-1]]
    assert permed(*args).returncode == 0
    created = json.loads((workspace / "again" / "manifest.json").read_text())["created"]
    result = permed(*args)
    assert result.returncode == 0, result.stderr
    assert f"warning: replaced the run trained {created} in" in " ".join(result.stderr.split())


def test_report_is_rewritten(trained):
    (trained / "report.html").unlink()
    result = permed("report", trained)
    assert result.returncode == 0
    assert result.stdout.strip() == str(trained / "report.html")
    assert (trained / "report.html").is_file()


def test_misspelled_target_suggests_the_name(workspace):
    result = permed("train", workspace / "bc.csv", "--target", "diagnosiz", "--out",
                    workspace / "typo", *FAST)
    assert result.returncode == 1
    assert ("target column 'diagnosiz' (from --target) is not in the data: did you mean "
            "'diagnosis'?") in result.stderr
    assert not (workspace / "typo").exists()


def test_text_in_a_numeric_column_is_named(workspace):
    frame = pd.read_csv(workspace / "bc.csv")
    frame["mean radius"] = frame["mean radius"].astype(object)
    frame.loc[4:6, "mean radius"] = "twelve"
    frame.to_csv(workspace / "garbage.csv", index=False)
    result = permed("train", workspace / "garbage.csv", "--target", "diagnosis", *FAST)
    assert result.returncode == 1
    assert ("column 'mean radius' is numeric but 3 of 569 values are text (rows 5, 6, 7; a "
            "value of 6 characters with letters)") in " ".join(result.stderr.split())


def test_brackets_in_a_message_are_printed_as_written(workspace):
    # rich would read "[study]" and "dose[mg]" as markup and print nothing of them
    study = workspace / "sections.toml"
    study.write_text('task = "diagnose"\n')
    result = permed("validate", workspace / "bc.csv", "--study", study)
    assert result.returncode == 1
    assert ("unknown section(s) ['task']; expected [study], [roles], [columns.NAME], "
            "[deidentify], [fhir]") in " ".join(result.stderr.split())
    frame = pd.read_csv(workspace / "bc.csv").rename(columns={"mean area": "area[mm2]"})
    frame["area[mm2]"] = frame["area[mm2]"].astype(object)
    frame.loc[0, "area[mm2]"] = "big"
    frame.to_csv(workspace / "bracketed.csv", index=False)
    study.write_text('[roles]\ntarget = "diagnosis"\n')
    result = permed("validate", workspace / "bracketed.csv", "--study", study)
    assert "error: column 'area[mm2]' is numeric" in " ".join(result.stdout.split())


def test_a_sites_own_missing_markers_are_named_with_missing(workspace, trained):
    """Site B writes 'n/a' and '-' where the development study had no such markers."""
    frame = pd.read_csv(workspace / "bc.csv").head(40).astype(object)
    column = frame.columns[1]
    frame.loc[2, column], frame.loc[5, column] = "n/a", "-"
    frame.to_csv(workspace / "site_b.csv", index=False)
    refused = permed("predict", trained, workspace / "site_b.csv")
    assert refused.returncode != 0
    assert (f"column '{column}' must be numeric (as in training) but 2 of 40 values are text "
            "(rows 3, 6; 'n/a' and '-', which mark missing values)") in \
        " ".join(refused.stderr.split())
    scored = permed("predict", trained, workspace / "site_b.csv", "--missing", "n/a,-",
                    "--out", workspace / "site_b_scored.csv")
    assert scored.returncode == 0, scored.stderr
    assert len(pd.read_csv(workspace / "site_b_scored.csv")) == 40
    evaluated = permed("evaluate", trained, workspace / "site_b.csv", "--missing", "n/a",
                       "--missing", "-", "--out", workspace / "site_b_ev", "--bootstrap", "100",
                       "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr


def test_predict_with_a_missing_column_is_refused(workspace, trained):
    frame = pd.read_csv(workspace / "bc.csv").drop(columns=["mean radius", "diagnosis"])
    frame.to_csv(workspace / "missing.csv", index=False)
    result = permed("predict", trained, workspace / "missing.csv", "--out", workspace / "x.csv")
    assert result.returncode == 1
    assert ("1 column(s) the model was trained on are missing: 'mean radius'"
            in " ".join(result.stderr.split()))
    assert "scoring" not in result.stderr  # the failed step's bar is gone, the error stands
    assert not (workspace / "x.csv").exists()


def test_one_class_target_is_refused(workspace):
    frame = pd.read_csv(workspace / "bc.csv").assign(diagnosis="benign")
    frame.to_csv(workspace / "one.csv", index=False)
    result = permed("train", workspace / "one.csv", "--target", "diagnosis", *FAST)
    assert result.returncode == 1
    assert "has one class only ('benign' for all 569 patients)" in " ".join(result.stderr.split())


def test_predict_from_a_folder_that_is_not_a_run(workspace):
    result = permed("predict", workspace, workspace / "bc.csv")
    assert result.returncode == 1
    assert "is not a permed run: no model/bundle.json" in " ".join(result.stderr.split())


def test_task_is_required(workspace):
    result = permed("train", workspace / "bc.csv")
    assert result.returncode == 1
    assert "say what to learn: --task diagnose --target COL" in " ".join(result.stderr.split())


def test_init_then_validate(workspace):
    study = workspace / "bc.toml"
    result = permed("init", study, "--from", workspace / "bc.csv")
    assert result.returncode == 0
    # the guess is said, so that a wrong target is seen before training
    assert ("guessed: target 'diagnosis' (the last column, 2 values); no id column; no "
            "sensitive column (add sensitive = [...])") in " ".join(result.stderr.split())
    text = study.read_text()
    assert 'target = "diagnosis"' in text
    assert 'task = "diagnose"' in text
    result = permed("validate", workspace / "bc.csv", "--study", study)
    assert result.returncode == 0, result.stdout
    assert "0 error(s)" in result.stdout


def test_init_takes_a_record_number_as_the_id_when_no_column_is_named_like_one():
    from permed.cli.study import guess_study
    from permed.testing import shared_data

    actg = pd.read_csv(shared_data("actg175/ACTG175.csv"), na_values=["NA"])
    assert guess_study(actg).id == "pidnum"
    named = actg.rename(columns={"age": "patient_id"})
    assert guess_study(named).id == "patient_id"


def test_init_lists_a_saved_index_and_dates_under_drop(workspace):
    frame = pd.read_csv(workspace / "bc.csv")
    frame.insert(0, "admitted", [f"{1 + i % 12}/{1 + i % 28}/1997" for i in range(len(frame))])
    frame.to_csv(workspace / "indexed.csv")  # the index too, as pandas saves it by default
    study = workspace / "indexed.toml"
    result = permed("init", study, "--from", workspace / "indexed.csv")
    assert result.returncode == 0, result.stderr
    assert "column 'Unnamed: 0' holds a row counter: listed under drop" in result.stderr
    assert "column 'admitted' holds calendar dates: listed under drop" in result.stderr
    assert 'drop = ["Unnamed: 0", "admitted"]' in study.read_text()
    result = permed("validate", workspace / "indexed.csv", "--study", study)
    assert "0 error(s), 0 warning(s)" in result.stdout
    features = result.stdout.split("features: ")[1]
    assert "admitted" not in features
    assert "Unnamed" not in features


def test_validate_exits_1_on_errors(workspace):
    frame = pd.read_csv(workspace / "bc.csv").assign(**{"mean area": None})
    frame.to_csv(workspace / "empty_col.csv", index=False)
    study = '[study]\ntask = "diagnose"\n[roles]\ntarget = "diagnosis"\n'
    (workspace / "s.toml").write_text(study)
    result = permed("validate", workspace / "empty_col.csv", "--study", workspace / "s.toml")
    assert result.returncode == 1
    assert "column 'mean area' is entirely missing" in result.stdout


def test_datasets_list_and_show():
    listing = permed("datasets", "list")
    assert listing.returncode == 0
    for name in ("breast_cancer", "gbsg2", "whas500", "aids", "flchain"):
        assert name in listing.stdout
    shown = permed("datasets", "show", "gbsg2")
    assert "time=time" in shown.stdout


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "report", "demo"])
def test_help_gives_an_example(command):
    result = permed(command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout


@pytest.mark.parametrize(("args", "error"), [
    (["train", "data.csv", "--bogus"], "Error: No such option: --bogus"),
    (["validate"], "Error: Missing argument 'data'."),
    (["ingest", "mimic", "folder", "-q"], "Error: No such option: -q"),
    (["users", "add"], "Error: Missing argument"),
])
def test_usage_errors_print_usage_and_the_error_without_a_traceback(args, error):
    result = permed(*args)
    assert result.returncode == 2
    assert error in result.stderr
    assert "Usage: permed " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_evaluate_on_the_development_data_warns_that_it_is_not_external(workspace, trained):
    result = permed("evaluate", trained, workspace / "bc.csv", "--out", workspace / "ev_same",
                    "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stderr.split())
    assert (f"warning: 'bc.csv' is the data the run '{trained}' was developed on (the same "
            "file fingerprint), not an external cohort: the model was fitted, selected and "
            "calibrated on most of these patients, so these figures are optimistic") in printed
    manifest = json.loads((workspace / "ev_same" / "manifest.json").read_text())
    assert manifest["warnings"][0].startswith("'bc.csv' is the data the run ")


def test_evaluate_prints_the_test_figures_cautions(workspace, trained):
    # 6 malignant patients: the caution train gives about a small test class, on evaluate
    frame = pd.read_csv(workspace / "bc.csv")
    cohort = pd.concat([frame[frame["diagnosis"] == "benign"].head(80),
                        frame[frame["diagnosis"] == "malignant"].head(6)])
    cohort.to_csv(workspace / "few.csv", index=False)
    result = permed("evaluate", trained, workspace / "few.csv", "--out", workspace / "ev_few",
                    "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    assert "holds 6 patients with 'malignant': the test figures and their 95% CIs rest on " \
        "so few" in " ".join(result.stderr.split())


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_renamed_column_gets_a_did_you_mean(workspace, trained, command):
    frame = pd.read_csv(workspace / "bc.csv").rename(columns={"mean radius": "mean_radius"})
    frame.to_csv(workspace / "renamed.csv", index=False)
    result = permed(command, trained, workspace / "renamed.csv", "--out",
                    workspace / f"renamed_{command}")
    assert result.returncode == 1
    assert ("error: 1 column(s) the model was trained on are missing: 'mean radius' (did you "
            "mean 'mean_radius'?): add them") in " ".join(result.stderr.split())
