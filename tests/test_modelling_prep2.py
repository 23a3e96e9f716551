import numpy as np

from core.modelling.prep2 import arat_category, prep2_prediction


def test_prep2_follows_the_published_decision_tree():
    #            SAFE, age, MEP, NIHSS -> category
    cases = [
        (8, 85, np.nan, np.nan, "Excellent"),  # SAFE >= 8 at any age
        (5, 79, np.nan, np.nan, "Excellent"),  # SAFE 5-7 under 80
        (7, 80, np.nan, np.nan, "Good"),  # SAFE 5-7 at 80 or older
        (4, 60, 1, 20, "Good"),  # MEP+
        (4, 60, 0, 6, "Limited"),  # MEP-, NIHSS < 7
        (0, 60, 0, 7, "Poor"),  # MEP-, NIHSS >= 7
        (3, 60, np.nan, 9, None),  # needs TMS, none recorded
    ]
    safe, age, mep, nihss, expected = zip(*cases)
    assert list(prep2_prediction(safe, age, mep, nihss)) == list(expected)


def test_arat_bands():
    assert list(arat_category([57, 50, 49, 34, 33, 13, 12, 0, np.nan])) == ["Excellent", "Excellent", "Good", "Good", "Limited", "Limited", "Poor", "Poor", None]
