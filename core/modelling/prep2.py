"""The PREP2 rule (Stinear et al. 2017, Ann Clin Transl Neurol 4:811) for upper-limb outcome after stroke.

Step 1, SAFE score (shoulder abduction + finger extension, MRC grades, 0-10) on day 3: SAFE >= 8,
or SAFE >= 5 under age 80, predicts Excellent; SAFE 5-7 at age >= 80 predicts Good.
Step 2, SAFE < 5: a motor-evoked potential (MEP+) to TMS predicts Good.
Step 3, MEP-: NIHSS < 7 predicts Limited, NIHSS >= 7 predicts Poor.
The outcome categories are Action Research Arm Test (ARAT) bands at 3 months: Excellent 50-57,
Good 34-49, Limited 13-33, Poor 0-12. PREP2 was 75% correct at development and 78% in external
validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = ("Excellent", "Good", "Limited", "Poor")
PUBLISHED_ACCURACY = {"development": 0.75, "external validation": 0.78}


def prep2_prediction(safe_score, age, mep_present, nihss) -> np.ndarray:
    """PREP2 category per patient; None where an input the rule needs is missing."""
    safe, age, mep, nihss = (np.asarray(x, dtype=float) for x in (safe_score, age, mep_present, nihss))
    out = np.full(safe.shape, None, dtype=object)
    step1 = safe >= 5
    out[step1 & ((safe >= 8) | (age < 80))] = "Excellent"
    out[step1 & (safe < 8) & (age >= 80)] = "Good"
    step2 = safe < 5
    out[step2 & (mep == 1)] = "Good"
    out[step2 & (mep == 0) & (nihss < 7)] = "Limited"
    out[step2 & (mep == 0) & (nihss >= 7)] = "Poor"
    return out


def arat_category(arat) -> np.ndarray:
    """ARAT (0-57) to the PREP2 outcome band; None where ARAT is missing."""
    arat = np.asarray(arat, dtype=float)
    out = np.full(arat.shape, None, dtype=object)
    out[arat >= 50] = "Excellent"
    out[(arat >= 34) & (arat < 50)] = "Good"
    out[(arat >= 13) & (arat < 34)] = "Limited"
    out[arat < 13] = "Poor"
    return out


def prep2_evaluation(cohort) -> dict:
    """PREP2 on a cohort's stroke patients against their 3-month ARAT band.

    Returns ``{"accuracy", "n_evaluated", "n_not_predictable", "confusion"}``; the confusion table
    has predicted categories as rows and observed bands as columns. Patients whose inputs are
    missing (e.g. no EMG, so no MEP status when SAFE < 5) are counted, not guessed.
    """
    if "arat_3mo" not in cohort.outcomes:
        return {"accuracy": float("nan"), "n_evaluated": 0, "n_not_predictable": 0, "confusion": pd.DataFrame()}
    stroke = cohort.patients["indication"] == "stroke"
    f = cohort.features[stroke]
    predicted = prep2_prediction(f["clin.safe_score"], f["clin.age"], f["emg.mep_present"], f["clin.nihss"])
    observed = arat_category(cohort.outcomes.loc[stroke, "arat_3mo"])
    ok = np.array([p is not None and o is not None for p, o in zip(predicted, observed)], dtype=bool)
    confusion = pd.crosstab(
        pd.Categorical(predicted[ok], CATEGORIES, ordered=True),
        pd.Categorical(observed[ok], CATEGORIES, ordered=True),
        rownames=["PREP2 prediction"],
        colnames=["observed at 3 months"],
        dropna=False,
    )
    return {
        "accuracy": float(np.mean(predicted[ok] == observed[ok])) if ok.any() else float("nan"),
        "n_evaluated": int(ok.sum()),
        "n_not_predictable": int((~ok).sum()),
        "confusion": confusion,
    }
