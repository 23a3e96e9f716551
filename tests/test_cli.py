"""``python -m core train|ablate|report``: the same stored runs, tables and report as the pages.

Every test works on a private copy of the workspace holding the 60-patient cohort "tiny"
(``app_workspace_template`` in conftest.py). Runs are small to stay fast: 2 x 5-fold CV with at
most 60 trees for ``train``, 1 x 5 folds and 3 permutations for ``ablate``.
"""

import argparse
import contextlib
import io
import shutil
import signal

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import core.ablation
import core.modelling.validation
from core.ablation import AblationConfig, ablation_digest
from core.cli import add_research_commands, main
from core.data.schema import MODALITY_LABELS
from core.evaluation.metrics import METRICS, roc_auc
from core.evaluation.performance import score_table
from core.evaluation.report import model_report_html, prediction_table
from core.modelling.validation import CohortSplitter, CVSettings, run_digest
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from tests.app_support import APP

# The run every test trains: 2 repeats, 60 trees at learning rate 0.1 (the page offers all three).
TRAIN_OPTIONS = ["--repeats", "2", "--trees", "60", "--learning-rate", "0.1"]
ABLATE_OPTIONS = ["--repeats", "1", "--permutations", "3"]

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


def run_cli(*argv) -> tuple[int, str, str]:
    """``core.cli.main(argv)``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse: --help, or options it cannot parse
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def page_run(cohort) -> str:
    """The digest the Prediction page gives TRAIN_OPTIONS: the arguments pages/prediction.py passes."""
    return run_digest(cohort, "responder", CohortSplitter(n_splits=5, n_repeats=2), {"n_estimators": 60, "learning_rate": 0.1}, list(cohort.features.columns))


def refuse_to_retrain(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("retrained a run that is stored")

    for name in ("cross_validate", "cross_validate_fusion", "cross_validate_stacked"):
        monkeypatch.setattr(core.modelling.validation, name, refuse)


@pytest.fixture(scope="module")
def trained_template(app_workspace_template, tmp_path_factory):
    """The "tiny" workspace after ``python -m core train`` with TRAIN_OPTIONS, and that command's output."""
    path = shutil.copytree(app_workspace_template, tmp_path_factory.mktemp("cli") / "workspace")
    return path, run_cli("train", "--workspace", path, "--cohort", "tiny", *TRAIN_OPTIONS)


@pytest.fixture
def trained(trained_template, tmp_path):
    path = shutil.copytree(trained_template[0], tmp_path / "workspace")
    ws = Workspace(path)
    tiny = ws.load("tiny")
    return ws, tiny, ws.load_cv(page_run(tiny), tiny)


# --- train ------------------------------------------------------------------------------------------


def test_train_stores_the_run_the_prediction_page_opens_and_never_trains_it_twice(trained_template, trained, monkeypatch, tmp_path):
    status, out, err = trained_template[1]
    ws, tiny, stored = trained
    run = page_run(tiny)
    assert status == 0, err
    assert stored is not None and len(stored.fold_models) == 2 * 5
    assert stored.params == {"n_estimators": 60, "learning_rate": 0.1}
    assert f"trained and stored run {run}" in out and stored.scheme in out
    assert "folds trained and explained: 10 of 10" in err  # progress per fold, on stderr
    auc = roc_auc(tiny.outcomes["responder"], stored.prediction)
    assert "ROC AUC" in out and f"{auc:.3f} (" in out  # the summary table: the page's numbers with CIs

    # The Prediction page with the same settings shows it as a saved run: nothing is trained.
    refuse_to_retrain(monkeypatch)
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(ws.path))
    at = AppTest.from_file(str(APP), default_timeout=180).switch_page("pages/prediction.py").run()
    at.number_input(key="pred-repeats").set_value(2)
    at.number_input(key="pred-trees").set_value(60)
    at.number_input(key="pred-eta").set_value(0.1)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(f"Run `{run}` (loaded saved run)" in c.value for c in at.caption)
    (shown,) = [m.value for m in at.metric if m.label == "OOF AUC"]
    assert shown == f"{auc:.3f}"

    # A second train, here with the same settings from a YAML file, finds the run and trains nothing.
    config = tmp_path / "run.yaml"
    CVSettings(n_repeats=2, n_estimators=60, learning_rate=0.1).to_yaml(config)
    status, out, err = run_cli("train", "--workspace", ws.path, "--cohort", "tiny", "--config", config)
    assert status == 0, err
    assert f"run {run} of cohort 'tiny'" in out and "already stored" in out and "nothing was retrained" in out


def test_options_on_the_command_line_override_the_config_file(trained, monkeypatch, tmp_path):
    ws, tiny, _ = trained
    refuse_to_retrain(monkeypatch)
    config = tmp_path / "run.yaml"
    CVSettings(n_repeats=4, n_estimators=60, learning_rate=0.2).to_yaml(config)
    status, out, err = run_cli("train", "--workspace", ws.path, "--cohort", "tiny", "--config", config, "--repeats", "2", "--learning-rate", "0.1")
    assert status == 0, err
    assert f"run {page_run(tiny)} " in out and "already stored" in out


# --- report -----------------------------------------------------------------------------------------


def test_report_writes_the_pages_report_and_exports_of_the_stored_run(trained, monkeypatch, tmp_path):
    from components.panels.prediction import report_html as page_report

    ws, tiny, stored = trained
    run = page_run(tiny)
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("report", "--workspace", ws.path, "--cohort", "tiny", *TRAIN_OPTIONS, "--csv")
    assert status == 0, err
    html = tmp_path / f"tiny-responder-{run}-model-report.html"
    expected = model_report_html(tiny, stored, run)
    assert html.read_bytes() == expected.encode() == page_report(tiny, stored, run, 0.5).encode()
    scores = score_table(tiny, stored)
    assert (tmp_path / f"tiny-responder-{run}-oof-predictions.csv").read_bytes() == prediction_table(stored, scores).to_csv().encode()
    assert (tmp_path / f"tiny-responder-{run}-shap.csv").read_bytes() == stored.explanation.to_frame().to_csv().encode()
    assert str(html) in out

    # Another threshold, rounded to 0.01 as the page's slider, into a named file.
    target = tmp_path / "reports" / "tiny.html"
    status, _, err = run_cli("report", "--workspace", ws.path, "--cohort", "tiny", *TRAIN_OPTIONS, "--threshold", "0.304", "--out", target)
    assert status == 0, err
    written = target.read_bytes().decode()
    assert written == model_report_html(tiny, stored, run, threshold=0.3) == page_report(tiny, stored, run, 0.3)
    assert "at a predicted probability of 0.30" in written
    assert not (tmp_path / "reports" / "tiny-shap.csv").exists()


def test_report_of_a_run_never_trained_says_how_to_train_it(trained):
    ws, tiny, _ = trained
    status, out, err = run_cli("report", "--workspace", ws.path, "--cohort", "tiny", "--repeats", "3", "--max-depth", "4")
    assert status == 2 and out == ""
    assert err.startswith("error: no stored run of cohort 'tiny'")
    assert "python -m core train --workspace" in err and "--cohort tiny --outcome responder --folds 5 --repeats 3 --max-depth 4" in err
    assert "Traceback" not in err


# --- ablate -----------------------------------------------------------------------------------------


def test_ablate_stores_the_run_the_ablation_page_opens_and_prints_its_headline(app_workspace, monkeypatch):
    status, out, err = run_cli("ablate", "--workspace", app_workspace, "--cohort", "tiny", *ABLATE_OPTIONS)
    assert status == 0, err
    ws = Workspace(app_workspace)
    tiny = ws.load("tiny")
    digest = ablation_digest(tiny, AblationConfig(n_repeats=1, n_permutations=3))  # the Ablation page's config for these settings
    result = ws.load_ablation(digest)
    assert result is not None and result.is_complete
    assert f"ablation run {digest}" in out and "model fits done: 90 of 90" in err
    shapley, loo = result.shapley("auc"), result.design("leave_one_out", "auc")
    for modality, row in shapley.iterrows():
        assert any(MODALITY_LABELS[modality] in line and f"{row['value']:.3f}" in line for line in out.splitlines())
    for modality, change in zip(loo["modality"], loo["change"]):
        assert any(MODALITY_LABELS[modality] in line and f"{change:+.3f}" in line for line in out.splitlines())
    full = result.subsets("auc").set_index("subset").loc[result.full_label]
    assert f"Full model {METRICS['auc'].label}: {full['mean']:.3f}" in out

    # The Ablation page with the same settings loads it; a second ablate refits nothing.
    def refuse(*args, **kwargs):
        raise AssertionError("refitted an ablation run that is stored")

    monkeypatch.setattr(core.ablation, "run_ablation", refuse)
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    at = AppTest.from_file(str(APP), default_timeout=180).switch_page("pages/ablation.py").run()
    at.number_input(key="abl-repeats").set_value(1)
    at.number_input(key="abl-permutations").set_value(3)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(c.value.startswith(f"Run `{digest}` (loaded saved run)") for c in at.caption)
    status, again, err = run_cli("ablate", "--workspace", app_workspace, "--cohort", "tiny", *ABLATE_OPTIONS)
    assert status == 0, err
    assert "already stored" in again and again.split("\n\n", 1)[1] == out.split("\n\n", 1)[1]  # the same tables


def test_ctrl_c_saves_the_finished_fits_and_the_same_command_resumes(app_workspace, monkeypatch):
    real_run = core.ablation.run_ablation

    def interrupted_run(*args, progress=None, **kwargs):
        def progress_then_ctrl_c(done, total):
            progress(done, total)
            if done == 5:
                signal.raise_signal(signal.SIGINT)

        return real_run(*args, progress=progress_then_ctrl_c, **kwargs)

    monkeypatch.setattr(core.ablation, "run_ablation", interrupted_run)
    command = ["ablate", "--workspace", app_workspace, "--cohort", "tiny", *ABLATE_OPTIONS]
    status, _, err = run_cli(*command)
    assert status == 130
    ws = Workspace(app_workspace)
    tiny = ws.load("tiny")
    config = AblationConfig(n_repeats=1, n_permutations=3)
    partial = ws.load_ablation(ablation_digest(tiny, config))
    done, total = partial.progress()
    assert 5 <= done < total == 90
    assert f"stopped after {done} of 90 model fits" in err and "Run the same command again to resume" in err

    monkeypatch.setattr(core.ablation, "run_ablation", real_run)
    status, out, err = run_cli(*command)
    assert status == 0, err
    assert f"{done} of 90 model fits are saved" in err
    resumed = ws.load_ablation(ablation_digest(tiny, config))
    pd.testing.assert_frame_equal(resumed.scores, real_run(tiny, config).scores)


# --- help and errors --------------------------------------------------------------------------------

RUN_OPTIONS = ["--workspace", "--cohort", "--config", "--outcome", "--folds", "--repeats", "--max-depth", "--learning-rate", "--trees", "--patience",
               "--model", "--fusion", "--epochs", "--inner-folds"]
OPTIONS = {
    "train": [*RUN_OPTIONS, "--n-jobs"],
    "report": [*RUN_OPTIONS, "--threshold", "--out", "--csv"],
    "ablate": ["--workspace", "--cohort", "--config", "--outcome", "--folds", "--repeats", "--seed", "--group-by-site", "--permutations", "--metric", "--n-jobs"],
}


@pytest.mark.parametrize("command", list(OPTIONS))
def test_help_of_each_command_explains_every_option(command):
    status, out, _ = run_cli(command, "--help")
    assert status == 0
    assert all(option in out for option in OPTIONS[command])
    subparsers = argparse.ArgumentParser().add_subparsers(dest="command")
    add_research_commands(subparsers)
    sub = subparsers.choices[command]
    options = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    assert options == set(OPTIONS[command])
    assert all(len(a.help or "") > 20 for a in sub._actions if a.option_strings != ["-h", "--help"])


@pytest.mark.parametrize(
    "command, config, expected",
    [
        (["train", "--cohort", "nobody"], None, "no saved cohort named 'nobody'; saved cohorts: tiny"),
        (["ablate", "--cohort", "nobody"], None, "no saved cohort named 'nobody'"),
        (["report", "--cohort", "nobody"], None, "no saved cohort named 'nobody'"),
        (["train", "--cohort", "tiny"], "trees: 200\n", "run.yaml: unknown field(s) ['trees']"),
        (["train", "--cohort", "tiny"], "max_depth: 40\n", "run.yaml: max_depth must be from 1 to 10, found 40"),
        (["report", "--cohort", "tiny"], "max_depth: [3]\n", "run.yaml: max_depth must be a whole number"),
        (["ablate", "--cohort", "tiny"], "n_repeats: 0\n", "run.yaml: n_repeats must be 1..50, found 0"),
        (["train", "--cohort", "tiny"], "- not a mapping\n", "run.yaml: expected a mapping of config fields, found list"),
        (["ablate", "--cohort", "tiny", "--n-jobs", "0"], None, "--n-jobs must be a positive number of workers"),
        (["ablate", "--cohort", "tiny", "--outcome", "improvement_pct", "--metric", "auc"], None, "unknown metric 'auc' for the outcome 'improvement_pct'"),
        (["export-upload", "never-written.zip", "--cohort", "tiny", "--measures", "wmft"], None, "tiny: [measures] the cohort holds no outcome measure 'wmft'"),
        (["export-upload", "never-written.zip", "--cohort", "tiny", "--patients", "0"], None, "--patients must be at least 1, found 0"),
    ],
)
def test_bad_input_exits_2_with_the_message_and_no_traceback(app_workspace, tmp_path, command, config, expected):
    argv = [*command, "--workspace", app_workspace]
    if config is not None:
        (tmp_path / "run.yaml").write_text(config)
        argv += ["--config", tmp_path / "run.yaml"]
    status, out, err = run_cli(*argv)
    assert status == 2
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err and out == ""


def test_an_option_out_of_the_pages_range_is_refused_by_the_parser():
    status, _, err = run_cli("train", "--cohort", "tiny", "--repeats", "21")
    assert status == 2 and "argument --repeats: must be from 1 to 20, found 21" in err


def test_train_fusion_and_stacked_store_the_runs_the_page_opens(app_workspace, monkeypatch):
    deep = ["--folds", "2", "--repeats", "1", "--epochs", "2"]
    status, out, err = run_cli("train", "--workspace", app_workspace, "--cohort", "tiny", "--model", "fusion", *deep)
    assert status == 0, err
    ws = Workspace(app_workspace)
    tiny = ws.load("tiny")
    fusion_run = CVSettings(model="fusion", n_splits=2, n_repeats=1, max_epochs=2).run_digest(tiny)
    stored = ws.load_cv(fusion_run, tiny)
    assert stored.model == "fusion" and f"trained and stored run {fusion_run}" in out
    assert "raw-data tensors, chunks cached: 1 of 1" in err and "repeat 1 fold 2: epoch 2" in err  # progress per chunk and per epoch
    status, out, err = run_cli("train", "--workspace", app_workspace, "--cohort", "tiny", "--model", "stacked", "--inner-folds", "2", *deep)
    assert status == 0, err
    stacked = ws.load_cv(CVSettings(model="stacked", n_splits=2, n_repeats=1, max_epochs=2, inner_splits=2).run_digest(tiny), tiny)
    assert stacked.model == "stacked" and stacked.features[-1] == "fusion.logit"
    for fold, model in zip(stacked.folds, stacked.fold_models):  # the stored fusion run's fold models serve the outer folds
        (position,) = [i for i, f in enumerate(stored.folds) if f.test.tolist() == fold.test.tolist()]
        assert model.fusion_.history_.equals(stored.fold_models[position].history_)

    refuse_to_retrain(monkeypatch)
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    at = AppTest.from_file(str(APP), default_timeout=180).switch_page("pages/prediction.py").run()
    at.selectbox(key="pred-model").set_value("fusion").run()
    at.number_input(key="pred-folds").set_value(2)
    at.number_input(key="pred-epochs").set_value(2)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(f"Run `{fusion_run}` (loaded saved run)" in c.value for c in at.caption)


# --- any-outcome and predict-outcome -----------------------------------------------------------------


@pytest.fixture(scope="module")
def outcome_workspace(tmp_path_factory):
    """A workspace holding "mid": 200 patients, enough for every measure in each training fold."""
    path = tmp_path_factory.mktemp("outcomes") / "workspace"
    assert run_cli("generate", "--workspace", path, "--preset", "default", "--name", "mid", "--n-patients", "200", "--seed", "5")[0] == 0
    return path


def test_any_outcome_stores_the_evaluation_the_page_opens_and_prints_signed_r(outcome_workspace, tmp_path):
    from core.evaluation.anyoutcome import AnyOutcomeSettings

    app_workspace = shutil.copytree(outcome_workspace, tmp_path / "workspace")
    status, out, err = run_cli("any-outcome", "--workspace", app_workspace, "--cohort", "mid", "--folds", "2", "--csv", tmp_path / "csv")
    assert status == 0, err
    ws = Workspace(app_workspace)
    mid = ws.load("mid")
    stored = ws.any_outcome_evaluation(mid, AnyOutcomeSettings(n_splits=2), compute=False)
    assert stored is not None and f"stored evaluation {AnyOutcomeSettings(n_splits=2).key(mid)}" in out
    zero_shot = stored.summary().query("K == 0 and method == 'zero_shot'")["mean_r"].iloc[0]
    assert f"zero_shot   {zero_shot:.3f}" in out
    assert stored.summary_sentence() in out
    assert (tmp_path / "csv" / "mid-any_outcome_per_measure.csv").exists()
    status, out, _ = run_cli("any-outcome", "--workspace", app_workspace, "--cohort", "mid", "--folds", "2")
    assert status == 0 and out.startswith("loaded the stored evaluation")


def test_predict_outcome_writes_the_zero_shot_table(outcome_workspace, tmp_path):
    from core.data.outcome_bank import described_outcome
    from core.modelling.anyoutcome import zero_shot_table

    out_csv = tmp_path / "wmft.csv"
    description = "Wolf Motor Function Test, seconds to complete timed arm tasks"
    status, out, err = run_cli("predict-outcome", "--workspace", outcome_workspace, "--cohort", "mid", "--description", description,
                               "--indication", "stroke", "--direction", "higher_worse", "--out", out_csv)
    assert status == 0, err
    written = pd.read_csv(out_csv, index_col=0)
    expected = zero_shot_table(Workspace(outcome_workspace).load("mid"), described_outcome(description, "stroke", "higher_worse"))
    pd.testing.assert_frame_equal(written, expected, check_names=False, check_index_type=False)
    status, _, err = run_cli("predict-outcome", "--workspace", outcome_workspace, "--cohort", "mid", "--measure", "grip_kg_w12", "--description", "x")
    assert status == 2 and "give either --measure KEY" in err
    status, _, err = run_cli("predict-outcome", "--workspace", outcome_workspace, "--cohort", "mid", "--description", description)
    assert status == 2 and "a described measure needs --indication and --direction" in err


def test_transfer_refuses_an_unknown_modality(outcome_workspace):
    status, out, err = run_cli("transfer", "--workspace", outcome_workspace, "--cohort", "mid", "--cheap", "clin,eeg")
    assert status == 2 and err == "error: [cheap_modalities] unknown modality name(s) ['eeg']; expected some of ['dti', 'emg', 'kin', 'clin'].\n" and out == ""


def test_transfer_bound_prints_the_perfect_teacher_bound(outcome_workspace, tmp_path):
    from core.evaluation.transfer import distillation_bound, distillation_bound_sentence, distillation_bound_summary

    workspace = shutil.copytree(outcome_workspace, tmp_path / "workspace")
    status, out, err = run_cli("transfer", "--workspace", workspace, "--cohort", "mid", "--bound", "2")
    assert status == 0, err
    cohort = Workspace(workspace).load("mid")
    expected = distillation_bound_summary(distillation_bound(cohort, 200, 2, ["emg", "kin", "clin"]))
    table = out.split("oracle_taught: the student's method taught by the true probabilities):\n", 1)[1]
    columns = ["auc", "diff_vs_cheap_only", "diff_ci_low", "diff_ci_high", "target_truth_r", "teacher_truth_r"]
    assert table == expected[columns].round(4).to_string() + "\n" + distillation_bound_sentence(expected) + "\n"
    assert "subsamples done: 2 of 2" in err
    # Stored where the page reads it: a second call prints the same without computing.
    stored = Workspace(workspace).distillation_bound(cohort, ["emg", "kin", "clin"], 2, compute=False)
    assert distillation_bound_summary(stored).equals(expected)
    status, again, err = run_cli("transfer", "--workspace", workspace, "--cohort", "mid", "--bound", "2")
    assert status == 0 and again == out and "subsamples done" not in err
    status, _, err = run_cli("transfer", "--workspace", workspace, "--cohort", "mid", "--bound", "1")
    assert status == 2 and "[n_subsamples] n_subsamples must be a whole number of at least 2" in err



def test_jobs_lists_the_pages_jobs_cancels_one_and_prints_its_log(app_workspace):
    """A job started as the Prediction page starts it, seen and cancelled from the command line."""
    from core.jobs import JobRunner, cv_job
    from tests.jobs_support import finish_jobs, wait_for_progress

    runner = JobRunner(app_workspace)
    tiny = Workspace(app_workspace).load("tiny")
    params, key = cv_job(tiny, CVSettings(n_splits=5, n_repeats=20))  # 100 folds: still running when cancelled
    job = wait_for_progress(runner, runner.submit("cv", params, "local", key).id)
    status, out, err = run_cli("jobs", "--workspace", app_workspace)
    assert status == 0, err
    header, row = out.splitlines()
    assert header.split()[:4] == ["job", "kind", "status", "progress"]
    assert row.split()[:3] == [job.id, "cv", "running"] and row.split()[3].endswith("/100")
    status, out, _ = run_cli("jobs", "--workspace", app_workspace, "--cancel", job.id)
    assert status == 0 and out == f"job {job.id} (cv): cancel requested\n"
    (done,) = finish_jobs(app_workspace)
    assert done.status == "cancelled"
    status, out, _ = run_cli("jobs", "--workspace", app_workspace)
    assert out.splitlines()[1].split()[:3] == [job.id, "cv", "cancelled"] and done.message in out
    status, out, _ = run_cli("jobs", "--workspace", app_workspace, "--log", job.id)
    assert status == 0 and out == runner.log(job.id) and f"job {job.id}: cv of 'local'" in out
    status, out, err = run_cli("jobs", "--workspace", app_workspace, "--owner", "bob", "--cancel", job.id)
    assert status == 2 and out == "" and err.startswith("error: ")
    status, out, _ = run_cli("jobs", "--workspace", app_workspace, "--owner", "bob")
    assert status == 0 and out == f"no jobs of 'bob' in {runner.folder}\n"


def test_ctrl_c_keeps_the_finished_cohort_sizes_and_the_same_transfer_command_resumes(outcome_workspace, tmp_path, monkeypatch):
    import core.evaluation.transfer as transfer

    monkeypatch.setattr(transfer, "CHEAP_LIMIT_REFERENCE", 400)  # a small reference cohort for the cheap-only limit: quick
    real_rows = transfer._transfer_rows
    calls = []

    def ctrl_c_in_the_second_size(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_rows(*args, **kwargs)

    workspace = shutil.copytree(outcome_workspace, tmp_path / "workspace")
    command = ["transfer", "--workspace", workspace, "--cohort", "mid"]
    monkeypatch.setattr(transfer, "_transfer_rows", ctrl_c_in_the_second_size)
    status, out, err = run_cli(*command)
    assert status == 130 and out == ""
    assert "stopped: 1 of 2 cohort sizes finished and kept in the workspace. Run the same command again to resume:\n  python -m core transfer" in err

    monkeypatch.setattr(transfer, "_transfer_rows", lambda *a, **k: calls.append(1) or real_rows(*a, **k))
    status, resumed, err = run_cli(*command)
    assert status == 0 and len(calls) == 3, err  # only the size that was stopped is computed again
    monkeypatch.setattr(transfer, "_transfer_rows", real_rows)
    status, uninterrupted, _ = run_cli("transfer", "--workspace", shutil.copytree(outcome_workspace, tmp_path / "fresh"), "--cohort", "mid")
    assert status == 0 and resumed == uninterrupted


def test_ctrl_c_keeps_the_finished_chunks_and_the_same_generate_command_resumes(tmp_path, monkeypatch):
    import core.synth.generator as generator

    monkeypatch.setattr(generator, "CHUNK_SIZE", 60)  # 2 chunks of 120 patients, made in this process
    real_chunk = generator._raw_feature_chunk
    calls = []

    def ctrl_c_in_the_second_chunk(chunk):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_chunk(chunk)

    command = ["generate", "--workspace", tmp_path / "ws", "--preset", "default", "--name", "g", "--n-patients", "120", "--seed", "2"]
    monkeypatch.setattr(generator, "_raw_feature_chunk", ctrl_c_in_the_second_chunk)
    status, out, err = run_cli(*command)
    assert status == 130 and out == ""
    assert "stopped: 1 of 2 chunks of 60 patients of 'g' finished and kept in the workspace. Run the same command again to resume:\n  python -m core generate" in err

    monkeypatch.setattr(generator, "_raw_feature_chunk", lambda chunk: calls.append(1) or real_chunk(chunk))
    status, out, err = run_cli(*command)
    assert status == 0 and len(calls) == 3 and "saved 120 patients as 'g'" in out, err  # only the second chunk is made
    fresh = tmp_path / "fresh"
    monkeypatch.setattr(generator, "_raw_feature_chunk", real_chunk)
    assert run_cli(*command[:2], fresh, *command[3:])[0] == 0
    assert Workspace(tmp_path / "ws").load("g").digest == Workspace(fresh).load("g").digest
