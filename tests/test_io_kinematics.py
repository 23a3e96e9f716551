"""Kinematics readers: C3D (ezc3d) and CSV round trips of synthetic reaching, gaps, damaged files."""

import pathlib
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given

from core.errors import InputError
from core.io.kinematics import check_c3d, hand_trajectory, kinematic_feature_row, read_c3d, read_kinematics, read_trajectory_csv
from tests.io_support import FUZZ, assert_only_input_error, csv_bytes, mutated, synthetic_cohort, text_mutated, write_c3d


def _patient(k=0):
    cohort = synthetic_cohort()
    pid = cohort.patients.index[k]
    return cohort, pid, cohort.raw_data(pid).trajectory


def _features(markers, pid, marker=None):
    trajectory, report = hand_trajectory(markers, marker)
    return kinematic_feature_row(trajectory, pid), report


# ---------------------------------------------------------------- round trips


def test_synthetic_reaching_through_c3d_in_metres_gives_the_generators_features(tmp_path):
    for k in range(3):
        cohort, pid, trajectory = _patient(k)
        shoulder = np.tile([0.1, -0.2, 0.3], (len(trajectory.position_mm), 1))
        path = write_c3d(tmp_path / f"{pid}.c3d", {"RSHO": shoulder, "RHAND": trajectory.position_mm / 1000}, trajectory.fs_hz, unit="m")
        markers = read_c3d(path)
        assert markers.labels == ["RSHO", "RHAND"] and markers.fs_hz == 100.0
        assert markers.markers["RHAND"].shape == (1500, 3)  # 15 s at 100 Hz
        row, report = _features(markers, pid)
        assert report[0].message == "hand marker: 'RHAND'."
        # float32 storage of metres: the features agree to 1e-5.
        np.testing.assert_allclose(row.loc[pid].to_numpy(dtype=float), cohort.features.loc[pid, row.columns].to_numpy(dtype=float), rtol=1e-5, atol=1e-6)


def test_synthetic_reaching_through_csv_with_a_filled_gap():
    cohort, pid, trajectory = _patient(1)
    p = trajectory.position_mm.astype(np.float64)  # float64 text round-trips exactly
    table = pd.DataFrame({"time_s": np.arange(len(p)) / trajectory.fs_hz, "hand_x_mm": p[:, 0], "hand_y_mm": p[:, 1], "hand_z_mm": p[:, 2]})
    exact, _ = _features(read_trajectory_csv(csv_bytes(table), f"{pid}_motion.csv"), pid)
    np.testing.assert_allclose(exact.loc[pid].to_numpy(dtype=float), cohort.features.loc[pid, exact.columns].to_numpy(dtype=float), rtol=1e-9)
    table.loc[700:709, ["hand_x_mm", "hand_y_mm", "hand_z_mm"]] = np.nan  # 0.1 s gap, mid-reach
    gapped, report = _features(read_kinematics(csv_bytes(table), f"{pid}_motion.csv"), pid)
    assert report[-1].status == "warning" and "1 gap(s) of marker 'hand' (up to 0.2 s) filled" in report[-1].message
    np.testing.assert_allclose(gapped.loc[pid, ["kin.peak_velocity_m_s", "kin.movement_time_s"]], exact.loc[pid, ["kin.peak_velocity_m_s", "kin.movement_time_s"]], rtol=0.02)


def test_c3d_with_analog_channels_and_a_default_unit(tmp_path):
    _, _, trajectory = _patient(0)
    n = len(trajectory.position_mm)
    analogs = np.random.default_rng(0).normal(size=(2, n * 10))
    path = write_c3d(tmp_path / "a.c3d", {"wrist": trajectory.position_mm}, 100.0, analogs=analogs, analog_rate_hz=1000.0)
    info = check_c3d(path.read_bytes(), "a.c3d")
    assert info["n_points"] == 1 and info["n_frames"] == 1500 and info["rate_hz"] == 100.0 and info["float_data"]
    markers = read_c3d(path)
    np.testing.assert_allclose(markers.markers["wrist"], trajectory.position_mm, rtol=1e-6, atol=1e-4)


def test_marker_choice():
    t = np.arange(300) / 100.0
    table = pd.DataFrame({"time": t, "elbow_x": t, "elbow_y": t, "elbow_z": t, "knee_x": t, "knee_y": t, "knee_z": t})
    markers = read_trajectory_csv(csv_bytes(table), "m.csv")
    assert markers.labels == ["elbow", "knee"]
    with pytest.raises(InputError, match=r"^m\.csv: \[marker\] cannot tell which marker is the hand among \['elbow', 'knee'\]"):
        hand_trajectory(markers)
    trajectory, _ = hand_trajectory(markers, "knee")
    assert trajectory.position_mm.shape == (300, 3)
    assert any("no unit in the header" in e.message for e in markers.report)


# ---------------------------------------------------------------- bad input


def test_long_gap_and_non_numeric_cells():
    t = np.arange(400) / 100.0
    table = pd.DataFrame({"time": t, "x": np.sin(t), "y": t, "z": t})
    table.loc[100:149, "x"] = np.nan  # 0.5 s
    with pytest.raises(InputError, match=r"^k\.csv: \[marker\] marker 'marker' is missing for 0\.5 s from t = 1 s; gaps up to 0\.2 s are filled"):
        hand_trajectory(read_trajectory_csv(csv_bytes(table), "k.csv"))
    text = "time,x,y,z\n0,1,2,3\n0.01,1,2,three\n0.02,1,2,3\n"
    with pytest.raises(InputError, match=r"^k\.csv: \[z\] non-numeric value in numeric column 'z', line 3: expected a number, found 'three'"):
        read_trajectory_csv(text.encode(), "k.csv")
    with pytest.raises(InputError, match=r"\[hand\] marker 'hand' lacks its z column\(s\); expected x, y and z"):
        read_trajectory_csv(b"time,hand_x,hand_y\n0,1,2\n0.01,1,2\n", "k.csv")


def test_wrong_magic_and_truncated_c3d(tmp_path):
    _, _, trajectory = _patient(0)
    raw = write_c3d(tmp_path / "a.c3d", {"hand": trajectory.position_mm}, 100.0).read_bytes()
    with pytest.raises(InputError, match=r"^a\.c3d: \[magic\] not a C3D file: expected the key byte 0x50 as the file's second byte, found 0x51"):
        read_c3d(raw[:1] + b"\x51" + raw[2:], "a.c3d")
    with pytest.raises(InputError, match=r"^a\.c3d: \[data\] the file is truncated: 1500 frames of 1 points and 0 analog samples need \d+ bytes"):
        read_c3d(raw[: len(raw) // 2], "a.c3d")


def test_parameter_types_that_would_crash_ezc3d_are_refused(tmp_path):
    _, _, trajectory = _patient(0)
    raw = bytearray(write_c3d(tmp_path / "a.c3d", {"hand": trajectory.position_mm}, 100.0).read_bytes())
    at = bytes(raw).index(b"RATE", bytes(raw).index(b"ANALOG"))  # ANALOG:RATE, a float (0.0 here)
    raw[at + 6] = 2  # its type byte -> int16
    with pytest.raises(InputError, match=r"\[ANALOG:RATE\] parameter ANALOG:RATE has type 2; expected 4"):
        read_c3d(bytes(raw), "a.c3d")


# ---------------------------------------------------------------- property tests


def _seed_c3d():
    t = np.arange(60) / 100.0
    with tempfile.TemporaryDirectory() as folder:
        return write_c3d(pathlib.Path(folder) / "s.c3d", {"hand": np.c_[t, 2 * t, 3 * t] * 100, "elbow": np.ones((60, 3))}, 100.0).read_bytes()


_C3D = _seed_c3d()
_CSV = "time_s,hand_x_mm,hand_y_mm,hand_z_mm\n" + "".join(f"{i / 100:.2f},{np.sin(i / 10):.3f},{i:.1f},{np.cos(i / 10):.3f}\n" for i in range(40))


@FUZZ
@given(mutated(_C3D, hot=1600))
def test_malformed_c3d_gives_only_input_errors(data):
    assert_only_input_error(lambda raw: hand_trajectory(read_c3d(raw, "fuzz.c3d")), data)


@FUZZ
@given(text_mutated(_CSV))
def test_malformed_trajectory_csv_gives_only_input_errors(data):
    assert_only_input_error(lambda raw: hand_trajectory(read_trajectory_csv(raw, "fuzz.csv")), data)
