"""core.modelling.whatif: scenarios start from the out-of-fold prediction and are explained by the models."""

import numpy as np
import pytest

from core.errors import InputError
from core.modelling.validation import CohortSplitter, cross_validate
from core.modelling.whatif import WhatIf


def test_what_if_starts_from_the_out_of_fold_prediction_and_flags_unseen_values(small_cohort):
    result = cross_validate(small_cohort, "responder", splitter=CohortSplitter(n_repeats=2), params={"n_estimators": 80}, interactions=False, n_jobs=1)
    whatif = WhatIf(result, small_cohort.features)
    pid = small_cohort.patients.index[0]
    unchanged = whatif.scenario(pid)
    assert unchanged.prediction == pytest.approx(result.prediction[pid], abs=1e-5)
    assert unchanged.spread[0] <= unchanged.prediction <= unchanged.spread[1]
    assert unchanged.out_of_range == []
    # The scenario's explanation is the out-of-fold one, for this patient.
    np.testing.assert_allclose(unchanged.explanation.values, result.explanation[pid].values, atol=1e-6)
    assert unchanged.explanation.output == pytest.approx(unchanged.prediction, abs=0.05)  # mean of margins vs mean of probabilities
    far = whatif.scenario(pid, {"clin.age": 130.0})
    assert far.out_of_range == ["clin.age"]
    assert far.explanation.data[list(far.explanation.feature_names).index("clin.age")] == 130.0
    gone = whatif.scenario(pid, {"clin.age": None})
    assert np.isnan(gone.explanation.data[list(gone.explanation.feature_names).index("clin.age")])
    with pytest.raises(InputError, match="unknown feature 'clin.shoe_size'"):
        whatif.scenario(pid, {"clin.shoe_size": 44})
    with pytest.raises(InputError, match="no patient 'P99999'"):
        whatif.scenario("P99999")
