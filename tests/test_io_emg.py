"""EMG readers: pyedflib's shipped EDF/BDF files, round trips of synthetic recordings, triggers."""

import pathlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given

from core.errors import InputError
from core.io.emg import emg_feature_row, emg_recording, read_edf, read_emg, read_emg_csv
from tests.io_support import FUZZ, assert_only_input_error, continuous_emg, csv_bytes, mutated, synthetic_cohort, text_mutated, write_edf

PYEDFLIB = pathlib.Path(__import__("pyedflib").__file__).parent


# ---------------------------------------------------------------- pyedflib's test files


def test_pyedflib_test_generator_edf():
    signals = read_edf(PYEDFLIB / "data" / "test_generator.edf")
    assert len(signals.labels) == 11 and signals.labels[:3] == ["squarewave", "ramp", "pulse"]
    assert set(signals.fs_hz.values()) == {200.0}
    assert len(signals.channels["sine 1 Hz"]) == 120_000  # 600 s at 200 Hz
    assert set(signals.units.values()) == {"uV"}
    assert signals.channels["sine 1 Hz"][50] == pytest.approx(99.9619, abs=1e-3)  # peak of the 1 Hz sine at 0.25 s
    assert signals.channels["squarewave"].max() == pytest.approx(99.9924, abs=1e-3)
    assert signals.annotations[0] == (0.0, pytest.approx(np.nan, nan_ok=True), "Recording starts")
    assert signals.annotations[1][0] == 600.0
    assert signals.report[0].message == "EDF: 11 channels at 200 Hz, 600 s, 2 annotations."


def test_pyedflib_subsecond_and_utf8_annotations():
    signals = read_edf(PYEDFLIB / "tests" / "data" / "test_subsecond.edf")
    assert signals.labels == ["Fp1"] and signals.fs_hz["Fp1"] == 128.0
    assert [round(a[0], 7) for a in signals.annotations] == [1.9511719, 3.4921875, 290.5019531, 583.5722656]
    utf8 = read_edf(PYEDFLIB / "tests" / "data" / "test_utf8.edf")
    assert utf8.annotations[2][2] == "中文测试八个字"


def test_pyedflib_legacy_edf_annotation_channel_is_not_a_signal():
    signals = read_edf(PYEDFLIB / "tests" / "data" / "test_legacy.edf")
    assert len(signals.labels) == 11 and "EDF Annotations" not in signals.labels


def test_edf_channels_with_mismatched_sampling_rates():
    signals = read_edf(PYEDFLIB / "tests" / "data" / "test_generator.bdf")
    assert signals.fs_hz == {"sine 5Hz": 1000.0, "square 13Hz": 800.0, "ramp 7Hz": 500.0, "pink noise": 975.0, "white noise": 999.0}
    with pytest.raises(InputError, match=r"^test_generator\.bdf: \[sine 5Hz, square 13Hz\] channels 'sine 5Hz' \(1000 Hz\) and 'square 13Hz' \(800 Hz\) have different sampling rates"):
        emg_recording(signals, muscles={"fdi": "sine 5Hz", "ecr": "square 13Hz"})


def test_edf_sampled_too_slowly_for_meps():
    signals = read_edf(PYEDFLIB / "data" / "test_generator.edf")
    with pytest.raises(InputError, match=r"EMG sampled at 200 Hz; MEP onsets need at least 1000 Hz"):
        emg_recording(signals, muscles={"fdi": "sine 8 Hz", "ecr": "sine 15 Hz"})


# ---------------------------------------------------------------- round trips of synthetic patients


def _patient(k=0):
    cohort = synthetic_cohort()
    pid = cohort.patients.index[k]
    return cohort, pid, cohort.raw_data(pid).emg


@pytest.mark.parametrize("bdf, rtol", [(False, 2e-4), (True, 1e-6)])
def test_synthetic_emg_through_edf_gives_the_generators_features(tmp_path, bdf, rtol):
    for k in range(3):
        cohort, pid, emg = _patient(k)
        x, pulses, onset, duration = continuous_emg(emg)
        notes = [(p, -1, "TMS pulse") for p in pulses] + [(onset, duration, "voluntary contraction")]
        path = write_edf(tmp_path / f"{pid}.{'bdf' if bdf else 'edf'}", {"EMG FDI": x[0], "EMG ECR": x[1]}, emg.fs_hz, bdf=bdf, annotations=notes)
        extraction = emg_recording(read_edf(path))
        assert extraction.pulse_source == "annotations" and len(extraction.pulse_times_s) == 10
        assert extraction.voluntary_window_s == pytest.approx((onset, onset + duration))
        row = emg_feature_row(extraction, pid)
        expected = cohort.features.loc[pid, row.columns].to_numpy(dtype=float)
        np.testing.assert_allclose(row.loc[pid].to_numpy(dtype=float), expected, rtol=rtol, atol=1e-6)


def test_synthetic_emg_through_csv_with_trigger_and_voluntary_channels():
    cohort, pid, emg = _patient(1)
    x, pulses, onset, duration = continuous_emg(emg)
    t = np.arange(x.shape[1]) / emg.fs_hz
    trigger = np.zeros_like(t)
    for p in pulses:
        trigger[int(round(p * emg.fs_hz)) : int(round(p * emg.fs_hz)) + 4] = 5.0  # 2 ms TTL pulses
    voluntary = ((t >= onset) & (t < onset + duration)).astype(float)
    # mV in the file: converted back to µV on reading.
    table = pd.DataFrame({"time_ms": t * 1000, "FDI [mV]": x[0] / 1000, "ECR [mV]": x[1] / 1000, "trigger": trigger, "voluntary": voluntary})
    signals = read_emg_csv(csv_bytes(table), f"{pid}_emg.csv")
    assert signals.fs_hz["FDI"] == pytest.approx(2000.0) and signals.units["FDI"] == "mV"
    extraction = emg_recording(signals)
    assert extraction.pulse_source == "channel trigger"
    np.testing.assert_allclose(extraction.pulse_times_s, pulses, atol=1e-9)
    row = emg_feature_row(extraction, pid)
    np.testing.assert_allclose(row.loc[pid].to_numpy(dtype=float), cohort.features.loc[pid, row.columns].to_numpy(dtype=float), rtol=1e-9)


def test_pulse_list_from_the_caller_and_missing_parts_are_nan():
    cohort, pid, emg = _patient(2)
    x, pulses, onset, duration = continuous_emg(emg)
    table = pd.DataFrame({"time": np.arange(x.shape[1]) / emg.fs_hz, "fdi_uv": x[0], "ecr_uv": x[1]})
    signals = read_emg(csv_bytes(table), "p.csv")
    extraction = emg_recording(signals, pulse_times_s=pulses, voluntary_window_s=(onset, onset + duration))
    row = emg_feature_row(extraction, pid)
    np.testing.assert_allclose(row.loc[pid].to_numpy(dtype=float), cohort.features.loc[pid, row.columns].to_numpy(dtype=float), rtol=1e-9)
    # No pulses anywhere: MEP features NaN, voluntary features from the whole recording, both with warnings.
    bare = emg_recording(signals)
    assert bare.pulse_source == "none" and bare.voluntary_window_s == pytest.approx((0.0, 13.0))
    row = emg_feature_row(bare, pid)
    assert row.filter(like="emg.mep_").isna().all(axis=None) and row["emg.rms_fdi_uv"].notna().all()
    assert [e.status for e in bare.report] == ["warning", "warning"]


def test_channels_found_by_muscle_name_and_errors_naming_them():
    t = np.arange(4000) / 2000
    table = pd.DataFrame({"time": t, "EMG_FDI_R": np.sin(t), "Biceps": np.cos(t)})
    with pytest.raises(InputError, match=r"^s\.csv: \[ecr\] no channel for muscle ECR: expected a label containing 'ECR', found \['EMG_FDI_R', 'Biceps'\]"):
        emg_recording(read_emg_csv(csv_bytes(table), "s.csv"))
    with pytest.raises(InputError, match=r"\[Biceps\] channel 'Biceps' is in 'degC'; expected a voltage"):
        signals = read_emg_csv(csv_bytes(table), "s.csv")
        signals.units["Biceps"] = "degC"
        emg_recording(signals, muscles={"ecr": "Biceps"})


# ---------------------------------------------------------------- bad input


def test_non_numeric_value_in_a_numeric_column():
    text = "time,FDI,ECR\n0,1.5,2\n0.0005,abc,3\n0.001,1,2\n"
    with pytest.raises(InputError, match=r"^emg\.csv: \[FDI\] non-numeric value in numeric column 'FDI', line 3: expected a number, found 'abc'"):
        read_emg_csv(text.encode(), "emg.csv")


def test_uneven_time_and_missing_time_column():
    with pytest.raises(InputError, match=r"\[time\] time is not evenly sampled"):
        read_emg_csv(b"time,FDI\n0,1\n0.001,2\n0.0025,3\n0.003,4\n", "emg.csv")
    with pytest.raises(InputError, match=r"\[time\] no time column; expected a first column named 'time'"):
        read_emg_csv(b"FDI,ECR\n0,1\n1,2\n2,3\n", "emg.csv")


def test_wrong_magic_and_truncated_edf(tmp_path):
    x = np.sin(np.arange(4000) / 10) * 100
    raw = write_edf(tmp_path / "a.edf", {"FDI": x, "ECR": x}, 2000.0).read_bytes()
    with pytest.raises(InputError, match=r"^a\.edf: \[magic\] not an EDF or BDF file: expected the magic bytes '0' followed by 7 spaces"):
        read_edf(b"1" + raw[1:], "a.edf")
    with pytest.raises(InputError, match=r"^a\.edf: \[file size\] the file is truncated: 2 records of 4057 samples need 17252 bytes, found 9000"):
        read_edf(raw[:9000], "a.edf")


# ---------------------------------------------------------------- property tests


def _seed_edf():
    import tempfile

    x = np.sin(np.arange(2000) / 7) * 200
    with tempfile.TemporaryDirectory() as folder:
        return write_edf(pathlib.Path(folder) / "s.edf", {"FDI": x, "ECR": -x}, 2000.0, annotations=[(0.5, -1, "TMS")]).read_bytes()


_EDF = _seed_edf()
_CSV = "time,FDI [uV],ECR [uV],trigger\n" + "".join(f"{i / 2000:.4f},{np.sin(i):.3f},{np.cos(i):.3f},{int(i % 50 == 0)}\n" for i in range(60))


@FUZZ
@given(mutated(_EDF, hot=800))
def test_malformed_edf_gives_only_input_errors(data):
    def read_and_extract(raw):
        emg_recording(read_edf(raw, "fuzz.edf"))

    assert_only_input_error(read_and_extract, data)


@FUZZ
@given(text_mutated(_CSV))
def test_malformed_emg_csv_gives_only_input_errors(data):
    def read_and_extract(raw):
        emg_recording(read_emg_csv(raw, "fuzz.csv"))

    assert_only_input_error(read_and_extract, data)


def test_uploaded_edf_and_c3d_bytes_never_touch_the_disk(monkeypatch, tmp_path):
    """pyedflib and ezc3d read from a path: an upload's bytes go to an in-memory file, not the system temp folder."""
    import tempfile

    from core.io.kinematics import read_kinematics
    from tests.io_support import write_c3d

    edf = (PYEDFLIB / "data" / "test_generator.edf").read_bytes()
    cohort = synthetic_cohort()
    trajectory = cohort.raw_data(cohort.patients.index[0]).trajectory
    c3d = write_c3d(tmp_path / "reach.c3d", {"RHAND": trajectory.position_mm}, trajectory.fs_hz).read_bytes()

    def no_temporary_files(*args, **kwargs):
        raise AssertionError("an upload was written to the system temp folder")

    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_files)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_temporary_files)
    signals = read_edf(edf, name="upload.edf")
    assert len(signals.labels) == 11 and signals.channels["sine 1 Hz"][50] == pytest.approx(99.9619, abs=1e-3)
    markers = read_kinematics(c3d, name="upload.c3d")
    np.testing.assert_allclose(markers.markers["RHAND"], trajectory.position_mm, atol=1e-3)
