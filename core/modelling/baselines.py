"""Baselines the response model must beat, on the same folds.

- A logistic regression (ridge regression for the continuous outcome) on the clinical features
  alone: what a clinic gets without imaging or neurophysiology. Imputation and scaling are fitted
  inside each training fold.
- The PREP2 rule (Stinear et al. 2017) on stroke patients, as an ordinal score (Excellent 3,
  Good 2, Limited 1, Poor 0); a published rule is not trained, so it needs no folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.data.schema import OUTCOMES
from core.modelling.prep2 import CATEGORIES, prep2_prediction

PREP2_SCORE = {name: float(len(CATEGORIES) - 1 - i) for i, name in enumerate(CATEGORIES)}


def clinical_baseline(cohort, outcome: str, folds: list) -> pd.Series:
    """Out-of-fold predictions of a linear model on the ``clin.*`` features, mean over repeats."""
    columns = [c for c in cohort.features_of("clin") if cohort.features[c].notna().any()]
    X = cohort.features[columns].to_numpy(dtype=float)
    y = cohort.outcomes[outcome].to_numpy(dtype=float)
    binary = OUTCOMES[outcome] == "binary"
    total = np.zeros(len(y))
    count = np.zeros(len(y))
    for fold in folds:
        estimator = LogisticRegression(max_iter=2000) if binary else Ridge(alpha=1.0)
        model = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler(), estimator)
        model.fit(X[fold.train], y[fold.train])
        total[fold.test] += model.predict_proba(X[fold.test])[:, 1] if binary else model.predict(X[fold.test])
        count[fold.test] += 1
    return pd.Series(total / count, index=cohort.features.index, name="clinical linear model")


def prep2_score(cohort) -> pd.Series:
    """PREP2 category as a score 0-3 for stroke patients with the rule's inputs; NaN otherwise."""
    f = cohort.features
    needed = ["clin.safe_score", "clin.age", "emg.mep_present", "clin.nihss"]
    if not set(needed) <= set(f.columns):
        return pd.Series(np.nan, index=f.index, name="PREP2 rule")
    category = prep2_prediction(*(f[c] for c in needed))
    score = np.array([PREP2_SCORE.get(c, np.nan) if c is not None else np.nan for c in category])
    stroke = (cohort.patients["indication"] == "stroke").to_numpy() if "indication" in cohort.patients else np.ones(len(f), bool)
    return pd.Series(np.where(stroke, score, np.nan), index=f.index, name="PREP2 rule")
