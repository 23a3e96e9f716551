"""Colours shared by every figure (Okabe-Ito: distinguishable with common colour-vision deficiencies).

Importing this module also makes ``plotly_white`` plotly's default template: figures pick it up
when they are built, instead of paying for a template re-validation per figure when shown.
"""

import plotly.io as pio

pio.templates.default = "plotly_white"

BLACK, ORANGE, SKY_BLUE, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
YELLOW, BLUE, VERMILLION, PURPLE = "#F0E442", "#0072B2", "#D55E00", "#CC79A7"
OKABE_ITO = [BLUE, ORANGE, GREEN, PURPLE, SKY_BLUE, VERMILLION, YELLOW, BLACK]
MODALITY_COLORS = {"dti": BLUE, "emg": ORANGE, "kin": GREEN, "clin": PURPLE}
GROUP_COLORS = {"responder": GREEN, "non-responder": VERMILLION}


def translucent(hex_color: str, alpha: float) -> str:
    """``#RRGGBB`` as a CSS ``rgba()`` with opacity ``alpha`` (0 to 1), for fills behind lines."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
