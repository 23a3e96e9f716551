"""Long work keeps its finished pieces in the workspace (``Workspace.piece_checkpoint``): a stopped
held-out evaluation, transfer curve, distillation bound, learning curve or cohort generation resumes
with the pieces it finished, computes only the others, and stores what an uninterrupted run stores."""

import pandas as pd
import pytest

import core.evaluation.anyoutcome as anyoutcome
import core.evaluation.learning as learning
import core.evaluation.transfer as transfer
import core.synth.generator as generator
from core.errors import InputError
from core.evaluation.anyoutcome import AnyOutcomeSettings
from core.evaluation.learning import learning_curve_key
from core.evaluation.transfer import bound_key, transfer_key
from core.modelling.validation import CVSettings
from core.store.workspace import Workspace
from core.synth.config import CohortConfig

CHEAP = ["emg", "kin", "clin"]
SIZES = [40, 60, 80]
N_REFERENCE = 400  # patients of the cheap-only limit's reference cohort: small, so the test is quick
LEARNING = CVSettings(n_splits=3, n_repeats=1)


@pytest.fixture(scope="module")
def cohort(small_cohort):
    return small_cohort.subset(small_cohort.patients.index[:80])


def _evaluations(cohort):
    """For each long evaluation: how to run it on a workspace, its checkpoint, the function of one piece, and its pieces."""
    settings = AnyOutcomeSettings(n_splits=2)
    n_families = len({s.family for s in cohort.measure_specs().values()})
    return {
        "any_outcome": (lambda ws, progress: ws.any_outcome_evaluation(cohort, settings, progress=progress).predictions,
                        ("any_outcome_predictions", settings.key(cohort)), (anyoutcome, "_evaluate_piece"), 2 * n_families),
        "transfer": (lambda ws, progress: ws.transfer_curve(cohort, CHEAP, SIZES, progress=progress, n_reference=N_REFERENCE)[0],
                     ("transfer_curves", transfer_key(cohort, CHEAP, SIZES)), (transfer, "_transfer_rows"), len(SIZES)),
        "bound": (lambda ws, progress: ws.distillation_bound(cohort, CHEAP, 3, progress=progress),
                  ("transfer_bounds", bound_key(cohort, CHEAP, n_subsamples=3)), (transfer, "_bound_rows"), 3),
        "learning_curve": (lambda ws, progress: ws.learning_curves(cohort, LEARNING, ["xgboost"], SIZES, progress=progress),
                           ("learning_curves", learning_curve_key(cohort, LEARNING, ["xgboost"], SIZES)), (learning, "_learning_rows"), len(SIZES)),
    }


def _stop_after(pieces: int):
    def progress(done, total, *label):
        if done >= pieces:
            raise KeyboardInterrupt  # as Ctrl-C, or a job's cancel, right after a piece
    return progress


@pytest.mark.parametrize("what", ["any_outcome", "transfer", "bound", "learning_curve"])
def test_a_stopped_evaluation_resumes_with_its_finished_pieces_and_equals_an_uninterrupted_one(what, cohort, tmp_path, monkeypatch):
    run, (kind, key), (module, piece_function), n_pieces = _evaluations(cohort)[what]
    stopped = Workspace(tmp_path / "stopped")
    with pytest.raises(KeyboardInterrupt):
        run(stopped, _stop_after(2))
    checkpoint = stopped.piece_checkpoint(kind, key)
    assert checkpoint.count() == 2 and stopped.load_table(kind, key) is None

    computed = []
    original = getattr(module, piece_function)
    monkeypatch.setattr(module, piece_function, lambda *a, **k: computed.append(1) or original(*a, **k))
    limits = []
    original_limit = transfer.cheap_bayes_limit
    monkeypatch.setattr(transfer, "cheap_bayes_limit", lambda *a, **k: limits.append(1) or original_limit(*a, **k))
    resumed = run(stopped, None)
    assert len(computed) == n_pieces - 2  # the two kept pieces are read, not computed again
    assert limits == []  # the cheap-only limit stored before the first size is kept too
    assert not checkpoint.folder.exists()  # the finished table replaces the pieces

    monkeypatch.setattr(module, piece_function, original)
    uninterrupted = run(Workspace(tmp_path / "uninterrupted"), None)
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_a_piece_counts_only_once_whole_and_a_damaged_one_is_computed_again(tmp_path):
    checkpoint = Workspace(tmp_path).piece_checkpoint("transfer_curves", "0123456789abcdef")
    rows = pd.DataFrame({"n_patients": [40, 40], "model": ["full", "student"], "auc": [0.81, 0.79]})
    assert checkpoint.load("n40") is None
    checkpoint.keep("n40", {"rows": rows})
    pd.testing.assert_frame_equal(checkpoint.load("n40")["rows"], rows)
    # A table written without its marker (a process killed between the two) is not a kept piece.
    rows.to_parquet(checkpoint.folder / "n60.rows.parquet")
    assert checkpoint.load("n60") is None and checkpoint.count() == 1
    # A damaged table is computed again rather than read.
    (checkpoint.folder / "n40.rows.parquet").write_bytes(b"PAR1 truncated")
    assert checkpoint.load("n40") is None
    with pytest.raises(InputError, match=r"piece name '\.\./n40': expected letters, digits, '_' or '-'"):
        checkpoint.keep("../n40", {"rows": rows})
    with pytest.raises(InputError, match=r"no checkpoint for a 'transfer_curves' table under key 'nope'"):
        Workspace(tmp_path).piece_checkpoint("transfer_curves", "nope")


def test_a_stopped_generation_resumes_with_its_finished_chunks_and_saves_the_same_cohort(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "CHUNK_SIZE", 50)  # 4 chunks of a 200-patient cohort
    config = CohortConfig(name="resumed", n_patients=200, seed=4)
    stopped = Workspace(tmp_path / "stopped")
    with pytest.raises(KeyboardInterrupt):
        stopped.generate(config, progress=_stop_after(2), n_jobs=1)
    assert stopped.generation_progress(config) == 2 and "resumed" not in stopped

    computed = []
    original = generator._raw_feature_chunk
    monkeypatch.setattr(generator, "_raw_feature_chunk", lambda chunk: computed.append(chunk[1].index[0]) or original(chunk))
    reported = []
    resumed = stopped.generate(config, progress=lambda done, total: reported.append((done, total)), n_jobs=1)
    assert computed == ["P00101", "P00151"]  # the two kept chunks are read, not made again
    assert reported == [(2, 4), (3, 4), (4, 4)]
    assert stopped.generation_progress(config) == 0 and stopped.load("resumed").digest == resumed.digest

    monkeypatch.setattr(generator, "_raw_feature_chunk", original)
    uninterrupted = Workspace(tmp_path / "uninterrupted").generate(config, n_jobs=1)
    assert resumed.digest == uninterrupted.digest
    pd.testing.assert_frame_equal(resumed.features, uninterrupted.features)
    with pytest.raises(InputError, match="'resumed' is already saved"):
        stopped.generate(config, n_jobs=1)  # refused before any work
