"""The TMS surface figure: where the coil and the direction letters are drawn."""

import numpy as np
import pytest

from components.views.tms import COMPASS_RADIUS_MM, surface_figure
from core.tms.efield import CoilPlacement


def _sphere(radius_mm=70.0, n=400):
    """A point cloud on a sphere with a few faces: enough for the figure, which draws whatever mesh it gets."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(n, 3))
    points *= radius_mm / np.linalg.norm(points, axis=1, keepdims=True)
    faces = np.array([[i, i + 1, i + 2] for i in range(0, n - 2, 3)])
    return points, faces


@pytest.mark.parametrize("normal, hidden", [((0.0, 0.0, 1.0), "IS"), ((-1.0, 0.0, 0.0), "LR"), ((-0.5, 0.0, 0.866), "IS")])
def test_direction_letters_lie_around_the_coil_in_the_plane_it_faces(normal, hidden):
    positions, faces = _sphere()
    normal = np.asarray(normal) / np.linalg.norm(normal)
    handle = np.cross(normal, [0.0, 1.0, 0.0])
    handle = handle / np.linalg.norm(handle) if np.linalg.norm(handle) > 0 else np.array([1.0, 0.0, 0.0])
    centre = 80.0 * normal
    placement = CoilPlacement(centre_mm=tuple(centre), normal=tuple(normal), handle_direction=tuple(handle))
    fig = surface_figure(positions, faces, np.linspace(0, 100, len(positions)), "efield", placement)
    (compass,) = [t for t in fig.data if t.name == "directions"]
    letters = dict(zip(compass.text, np.column_stack([compass.x, compass.y, compass.z])))
    # Directions along the coil axis would stand on top of the coil centre: only the others are named.
    assert set(letters) == set("LRPAIS") - set(hidden)
    axis = {"L": (0, -1), "R": (0, 1), "P": (1, -1), "A": (1, 1), "I": (2, -1), "S": (2, 1)}
    for letter, point in letters.items():
        offset = point - centre
        height = offset @ normal
        assert height > 0  # above the coil's plane, off the cortex
        in_plane = offset - height * normal
        assert np.linalg.norm(in_plane) == pytest.approx(COMPASS_RADIUS_MM)
        dim, sign = axis[letter]
        assert sign * in_plane[dim] > 0.6 * COMPASS_RADIUS_MM  # the letter points the way it names
    # No mm axes: seen this close, their ticks and titles would be cut off at the view's edges.
    assert not any(fig.layout.scene[f"{a}axis"].visible for a in "xyz")
