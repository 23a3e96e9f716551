"""ezc3d's reading of a C3D file, in a module of its own: :func:`core.io.safety.run_isolated` runs it
in a new process, which then imports only numpy and ezc3d. The checks before it and the conversion
after it are in :mod:`core.io.kinematics`."""

from __future__ import annotations

import numpy as np

from core.errors import InputError
from core.io.safety import bytes_as_path


def ezc3d_points(label: str, raw: bytes) -> tuple:
    """ezc3d's reading of a checked C3D file: points (4, n_markers, n_frames), residuals, labels,
    the POINT:UNITS value and the point rate (Hz). Run it through :func:`core.io.safety.run_isolated`."""
    import ezc3d

    with bytes_as_path(raw, ".c3d") as path:
        try:
            c3d = ezc3d.c3d(path)
            points = np.asarray(c3d["data"]["points"], dtype=np.float64)
            residuals = np.asarray(c3d["data"]["meta_points"]["residuals"], dtype=np.float64)
            point_params = c3d["parameters"]["POINT"]
            labels = [str(s).strip() for s in point_params["LABELS"]["value"]]
            units_value = [str(u) for u in point_params.get("UNITS", {}).get("value", [])]
            rate = float(c3d["header"]["points"]["frame_rate"])
        except (RuntimeError, ValueError, IndexError, KeyError, TypeError, OSError, UnicodeDecodeError, MemoryError) as exc:
            raise InputError(f"ezc3d cannot read this C3D file: {exc}.", source=label) from exc
    return points, residuals, labels, units_value, rate
