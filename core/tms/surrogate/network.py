"""The 3D-CNN of the threshold surrogate (one per cell type), built lazily so that importing needs no torch.

It follows Aberra et al. 2023 (NeuroImage 275:120184): the input is the E-field on a 9 x 9 x 9 grid
around the soma in the cell's frame, normalised by |E| at the soma; the output is the threshold |E|
at the soma (V/m), predicted as a log.

Model (:func:`ThresholdCNN`)
----------------------------
Input (3, 9, 9, 9): the field components along the cell's x, y, z (z = the cortical normal
towards the pia). Four Conv3D layers, kernel 3, no padding, ReLU, so the grid shrinks
9 -> 7 -> 5 -> 3 -> 1 and the last layer sees the whole grid; channels (8, 16, 32, 64) by default.
Then two dense layers: the 64 conv features, concatenated with (a) a one-hot code of the
*morphological variant* and (b) the standardised log of the *uniform-field threshold* of that
variant along the field direction at the soma (``core.tms.surrogate.baseline``, from the cell's
direction map), -> 64 (ReLU) -> 1. Output: the standardised natural log of the threshold (the
training mean and s.d. are stored with the weights). About 78 k parameters, 1.1 M multiply-adds a
grid.

Why these inputs. Both variants of a cell type share the convolutional trunk (they respond to the
same spatial features of the field) and differ in the dense head, so a map runs the trunk once
for both. The direction-map input (``baseline_input=True``) hands the network the dependence on
the field direction, measured on 128 exact uniform fields per variant, which it would otherwise
have to learn from ~1,900 rows; the convolutions then learn what the non-uniform field adds. On
an inner split of the training rows (held-out placements 2 mod 4 or region 3; the test sets
untouched) it lowered the MAPE from 2.19 to 1.86 % (L2/3 PC) and from 2.09 to 1.74 % (L4 LBC,
where the pure CNN was no better than the baseline, 1.98 %). Predicting the *residual* over the
baseline instead was worse than both (2.80 % for L2/3 PC): the barycentric interpolation has
kinks along the triangle edges that a CNN cannot undo. Aberra's network is larger (more filters,
trained on far more samples); this one is sized to train in a few minutes per cell type on one
CPU core and to evaluate ~10^4 grids a second.
"""

from __future__ import annotations

from core.errors import InputError

__all__ = ["ThresholdCNN", "import_torch"]


def import_torch():
    """The ``torch`` module, imported on first use (the maps and the page import this package
    before they need a network)."""
    import torch

    return torch


def _module_class():
    torch = import_torch()
    nn = torch.nn

    class ThresholdCNN(nn.Module):
        """Grid (n, 3, 9, 9, 9) + code (n, n_variants + n_extra) -> standardised log threshold (n,).

        The code is the variant's one-hot vector, followed (``n_extra`` = 1) by the standardised
        log uniform-field threshold. See the module docstring. ``features(x)`` is the
        convolutional trunk, ``head(f, code)`` the two dense layers.
        """

        def __init__(self, channels=(8, 16, 32, 64), hidden=64, n_variants=2, grid_points=9, n_extra=0):
            super().__init__()
            layers, c, size = [], 3, grid_points
            for out in channels:
                layers += [nn.Conv3d(c, out, 3), nn.ReLU()]
                c, size = out, size - 2
            if size < 1:
                raise InputError(f"{len(channels)} conv layers need a grid of at least {2 * len(channels) + 1} points.",
                                 field="channels")
            self.trunk = nn.Sequential(*layers, nn.Flatten())
            self.n_variants = n_variants
            self.dense1 = nn.Linear(c * size**3 + n_variants + n_extra, hidden)
            self.dense2 = nn.Linear(hidden, 1)

        def features(self, x):
            return self.trunk(x)

        def head(self, f, code):
            return self.dense2(torch.relu(self.dense1(torch.cat([f, code], dim=1)))).squeeze(1)

        def forward(self, x, code):
            return self.head(self.features(x), code)

    return ThresholdCNN


_CNN = None


def ThresholdCNN(*args, **kwargs):  # noqa: N802 - a class, built lazily so that importing this module needs no torch
    """The network (a ``torch.nn.Module``); see the module docstring. Arguments: ``channels``,
    ``hidden``, ``n_variants``, ``grid_points``, ``n_extra``."""
    global _CNN
    if _CNN is None:
        _CNN = _module_class()
    return _CNN(*args, **kwargs)
