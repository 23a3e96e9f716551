"""core.features (EMG and kinematics): features recover the parameters planted in signals built here, batch == one by one."""

import numpy as np
import pytest
from scipy import signal

from core.errors import InputError
from core.features.emg import bandpass, emg_rms_uv, median_frequency_hz, mep_features
from core.features.kinematics import kinematic_features, movement_segments, reach_segments, sparc, speed_mm_s

EMG_FS = 2000.0
KIN_FS = 100.0
SWEEP_START_MS = -20.0
SWEEP_MS = SWEEP_START_MS + np.arange(200) * 1000.0 / EMG_FS  # -20 .. 79.5 ms


def band_noise(rng, shape, low_hz, high_hz, rms_uv, fs=EMG_FS):
    """Gaussian noise with a flat spectrum between low_hz and high_hz, scaled to rms_uv per record."""
    n = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum[..., (freqs < low_hz) | (freqs > high_hz)] = 0.0
    x = np.fft.irfft(spectrum, n, axis=-1)
    return x * rms_uv / x.std(axis=-1, keepdims=True)


def mep_wave(onset_ms, ptp_uv):
    """Biphasic MEP of the given peak-to-peak amplitude starting smoothly at onset_ms, 12 ms long."""
    u = np.clip((SWEEP_MS - np.asarray(onset_ms)[..., None]) / 12.0, 0.0, 1.0)
    wave = np.sin(2 * np.pi * u) * np.sin(np.pi * u)
    return np.asarray(ptp_uv)[..., None] * wave / np.ptp(np.sin(2 * np.pi * np.linspace(0, 1, 4001)) * np.sin(np.pi * np.linspace(0, 1, 4001)))


def tms_artefact():
    return 2000.0 * np.exp(-np.clip(SWEEP_MS, 0, None) / 0.5) * (SWEEP_MS >= 0)


def minimum_jerk_reach(distance_mm, duration_s, rest_before_s=1.0, rest_after_s=1.0, direction=(0.6, 0.8, 0.0)):
    """Positions (n, 3) in mm of one minimum-jerk reach between two rests."""
    t = np.arange(int(round((rest_before_s + duration_s + rest_after_s) * KIN_FS)) + 1) / KIN_FS
    tau = np.clip((t - rest_before_s) / duration_s, 0.0, 1.0)
    progress = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
    return progress[:, None] * distance_mm * np.asarray(direction)[None, :]


def minimum_jerk_speed(duration_s, fs=KIN_FS):
    tau = np.arange(int(round(duration_s * fs)) + 1) / (duration_s * fs)
    return 30 * tau**2 * (1 - tau) ** 2 / duration_s


def tremor(n_samples, amplitude_mm, hz=5.0, axes=(0,), phase=0.3):
    t = np.arange(n_samples) / KIN_FS
    out = np.zeros((n_samples, 3))
    out[:, list(axes)] = amplitude_mm * np.sin(2 * np.pi * hz * t + phase)[:, None]
    return out


# ---------------------------------------------------------------- EMG


def test_bandpass_keeps_the_band_removes_the_rest_and_adds_no_lag():
    t = np.arange(4000) / EMG_FS
    in_band = 100.0 * np.sin(2 * np.pi * 97.0 * t)
    x = in_band + 300.0 * np.sin(2 * np.pi * 2.0 * t) + 100.0 * np.sin(2 * np.pi * 800.0 * t)
    y = bandpass(np.stack([x, 2 * x]), EMG_FS, 20.0, 450.0)
    middle = slice(400, -400)  # away from the edges' transients
    assert np.max(np.abs(y[0, middle] - in_band[middle])) < 1.0  # < 1% of the amplitude: no lag, no loss
    np.testing.assert_allclose(y[1], 2 * y[0], rtol=1e-12, atol=1e-9)


def test_clean_meps_give_latency_within_1_ms_and_amplitude_within_10_percent():
    rng = np.random.default_rng(1)
    n_patients, n_trials = 40, 10
    latency = rng.uniform(16.0, 30.0, n_patients)
    ptp = rng.uniform(150.0, 3000.0, n_patients)
    trial_latency = latency[:, None] + rng.normal(0.0, 0.3, (n_patients, n_trials))
    sweeps = mep_wave(trial_latency, ptp[:, None]) + band_noise(rng, (n_patients, n_trials, 200), 20, 450, 10.0) + tms_artefact()
    mep = mep_features(sweeps, EMG_FS, SWEEP_START_MS)
    assert mep["present"].all()
    assert np.max(np.abs(mep["latency_ms"] - np.median(trial_latency, axis=1))) <= 1.0
    np.testing.assert_allclose(mep["amplitude_uv"], ptp, rtol=0.10)
    assert mep["trial_amplitude_uv"].shape == (n_patients, n_trials)


def test_background_noise_of_20_uv_rms_is_no_mep_although_its_peak_to_peak_tops_50_uv():
    rng = np.random.default_rng(2)
    sweeps = band_noise(rng, (200, 10, 200), 20, 450, 20.0) + tms_artefact()
    mep = mep_features(sweeps, EMG_FS, SWEEP_START_MS)
    assert np.median(mep["trial_amplitude_uv"]) > 50.0  # a peak-to-peak criterion alone would say "present"
    assert not mep["present"].any()
    assert np.isnan(mep["latency_ms"]).all()


@pytest.mark.parametrize("n_with_mep, present", [(5, True), (4, False)])
def test_mep_presence_is_50_uv_in_5_of_10_trials(n_with_mep, present):
    rng = np.random.default_rng(3)
    ptp = np.where(np.arange(10) < n_with_mep, 400.0, 0.0)
    sweeps = mep_wave(np.full(10, 21.0), ptp) + band_noise(rng, (10, 200), 20, 450, 5.0)
    mep = mep_features(sweeps, EMG_FS, SWEEP_START_MS)
    assert mep["present"] == present
    if present:
        assert mep["latency_ms"] == pytest.approx(21.0, abs=1.0)  # from the trials that show a MEP
    else:
        assert np.isnan(mep["latency_ms"])


def test_rms_of_a_sine_is_its_amplitude_over_root_two_and_out_of_band_power_is_ignored():
    t = np.arange(3000) / EMG_FS
    amplitude = np.array([[50.0], [120.0]])
    x = amplitude * np.sin(2 * np.pi * 87.3 * t) + 500.0 * np.sin(2 * np.pi * 3.0 * t) + 40.0 * t
    np.testing.assert_allclose(emg_rms_uv(x, EMG_FS), amplitude[:, 0] / np.sqrt(2), rtol=0.02)


def test_rms_equals_time_domain_bandpass_then_rms():
    x = band_noise(np.random.default_rng(4), (5, 4000), 5, 900, 80.0)
    reference = np.sqrt(np.mean(bandpass(x, EMG_FS, 20.0, 450.0) ** 2, axis=-1))
    np.testing.assert_allclose(emg_rms_uv(x, EMG_FS), reference, rtol=0.02)  # they differ at the edges only


def test_median_frequency_of_band_limited_noise_is_the_middle_of_the_band():
    rng = np.random.default_rng(5)
    centres = np.array([60.0, 100.0, 150.0])
    x = np.stack([band_noise(rng, (4000,), c - 30, c + 30, 50.0) for c in centres])
    np.testing.assert_allclose(median_frequency_hz(x, EMG_FS), centres, rtol=0.10)


def test_median_frequency_agrees_with_welch_after_time_domain_bandpass():
    x = band_noise(np.random.default_rng(6), (4, 4000), 10, 300, 50.0)
    freqs, psd = signal.welch(bandpass(x, EMG_FS, 20.0, 450.0), fs=EMG_FS, nperseg=256)
    cumulative = np.cumsum(psd, axis=-1)
    reference = [np.interp(c[-1] / 2, c, freqs) for c in cumulative]
    np.testing.assert_allclose(median_frequency_hz(x, EMG_FS), reference, rtol=0.05)


# ---------------------------------------------------------------- kinematics


def test_minimum_jerk_reach_gives_its_peak_speed_and_duration():
    distance, duration = 250.0, 1.2
    position = minimum_jerk_reach(distance, duration)
    peak = 1.875 * distance / duration  # mm/s
    assert speed_mm_s(position, KIN_FS).max() == pytest.approx(peak, rel=0.05)
    (start, stop), = movement_segments(speed_mm_s(position, KIN_FS), KIN_FS)
    assert (stop - 1 - start) / KIN_FS == pytest.approx(duration, rel=0.05)
    kin = kinematic_features(position, KIN_FS)
    assert kin["n_movements"] == 1
    assert kin["peak_velocity_m_s"] == pytest.approx(peak / 1000.0, rel=0.05)
    assert kin["movement_time_s"] == pytest.approx(duration, rel=0.05)


def test_reaches_are_counted_and_their_median_duration_found_despite_rest_tremor():
    durations = [0.6, 1.0, 1.5, 2.2, 0.8]
    out_and_back = [minimum_jerk_reach(200.0 * (-1) ** k, d, 0.8, 0.7) for k, d in enumerate(durations)]
    position = np.concatenate([p - p[0] + sum(q[-1] - q[0] for q in out_and_back[:k]) for k, p in enumerate(out_and_back)])
    # Rest tremor blurs where a movement starts and ends: documented, about +0.1 s here.
    for amplitude, tolerance in ((0.0, 0.05), (2.0, 0.15)):
        kin = kinematic_features(position + tremor(len(position), amplitude, axes=(0, 2)), KIN_FS)
        assert kin["n_movements"] == len(durations)
        assert kin["movement_time_s"] == pytest.approx(np.median(durations), rel=tolerance)


def test_movement_segments_merges_short_gaps_and_drops_blips():
    speed = np.zeros(400)
    speed[50:100] = 100.0  # a movement ...
    speed[105:150] = 100.0  # ... that pauses for 0.05 s
    speed[250:260] = 100.0  # a 0.1 s blip
    speed[300:350] = 100.0
    # Each movement is bounded by the rest samples (speed minima) on either side.
    assert movement_segments(speed, KIN_FS) == [(49, 151), (299, 351)]


@pytest.mark.parametrize("duration_s, fs", [(0.5, 100.0), (1.0, 100.0), (2.0, 250.0)])
def test_sparc_of_minimum_jerk_is_its_known_value_whatever_the_duration(duration_s, fs):
    # The 2015 definition (adaptive cut-off at 5% of the 0 Hz magnitude) gives -1.41 for one
    # minimum-jerk movement; it is dimensionless, so duration and sampling rate do not matter.
    assert sparc(minimum_jerk_speed(duration_s, fs), fs) == pytest.approx(-1.41, abs=0.02)


def test_sparc_falls_with_tremor_and_with_sub_movements():
    smooth = sparc(minimum_jerk_speed(1.0), KIN_FS)
    reach = minimum_jerk_reach(250.0, 1.0, 0.0, 0.0)
    shaky = speed_mm_s(reach + tremor(len(reach), 3.0, axes=(0, 1)), KIN_FS)
    # 70% of the distance in 1 s, a corrective 30% in 0.6 s starting at 0.55 s (same direction).
    t = np.arange(116) / KIN_FS
    bell = lambda tau: np.where((tau >= 0) & (tau <= 1), 30 * tau**2 * (1 - tau) ** 2, 0.0)  # noqa: E731
    corrected = 0.7 * bell(t / 1.0) / 1.0 + 0.3 * bell((t - 0.55) / 0.6) / 0.6
    assert sparc(shaky, KIN_FS) < smooth - 0.1
    assert sparc(corrected, KIN_FS) < smooth - 0.1


@pytest.mark.parametrize("n_axes", [1, 3])
def test_tremor_band_power_of_a_sinusoid_is_k_a_squared_over_two(n_axes):
    amplitude = 1.5
    reach = minimum_jerk_reach(200.0, 1.0, 3.0, 4.0)
    position = reach + tremor(len(reach), amplitude, hz=5.0, axes=range(n_axes))
    kin = kinematic_features(position, KIN_FS)
    assert kin["tremor_band_power_mm2"] == pytest.approx(n_axes * amplitude**2 / 2, rel=0.10)
    # Same as Welch's estimate of the high-passed positions, integrated over 4-6 Hz.
    high_passed = signal.sosfiltfilt(signal.butter(4, 2.0, "highpass", fs=KIN_FS, output="sos"), position, axis=0)
    freqs, psd = signal.welch(high_passed, fs=KIN_FS, nperseg=256, axis=0)
    band = (freqs >= 4.0) & (freqs <= 6.0)
    welch_power = psd[band].sum() * (freqs[1] - freqs[0])
    assert kin["tremor_band_power_mm2"] == pytest.approx(welch_power, rel=0.10)


def test_a_record_without_movement_gives_nan_movement_features_and_its_tremor():
    rest = np.full((1000, 3), 40.0) + tremor(1000, 2.0)
    kin = kinematic_features(rest, KIN_FS)
    assert kin["n_movements"] == 0
    for name in ("peak_velocity_m_s", "movement_time_s", "sparc"):
        assert np.isnan(kin[name])
    assert kin["tremor_band_power_mm2"] == pytest.approx(2.0, rel=0.10)


# ---------------------------------------------------------------- batches


def test_batch_results_equal_patient_by_patient_results_exactly():
    rng = np.random.default_rng(7)
    sweeps = mep_wave(rng.uniform(18, 26, (2, 3, 1)) + np.zeros((2, 3, 10)), 500.0) + band_noise(rng, (2, 3, 10, 200), 20, 450, 10.0)
    voluntary = band_noise(rng, (2, 3, 2000), 20, 400, 60.0).astype(np.float32)
    reaches = [minimum_jerk_reach(150.0 + 50 * k, 0.6 + 0.4 * k, 1.0, 2.0 - 0.4 * k) for k in range(3)]
    positions = np.stack([r + tremor(len(r), k, axes=(k,)) for k, r in enumerate(reaches)])
    positions += rng.normal(0.0, 0.1, positions.shape)

    batch = mep_features(sweeps, EMG_FS, SWEEP_START_MS)
    rms, mdf = emg_rms_uv(voluntary, EMG_FS), median_frequency_hz(voluntary, EMG_FS)
    for i in np.ndindex(2, 3):
        one = mep_features(sweeps[i], EMG_FS, SWEEP_START_MS)
        for key, value in one.items():
            np.testing.assert_array_equal(batch[key][i], value)
        assert rms[i] == emg_rms_uv(voluntary[i], EMG_FS)
        assert mdf[i] == median_frequency_hz(voluntary[i], EMG_FS)

    speed = speed_mm_s(positions, KIN_FS)
    kin = kinematic_features(positions, KIN_FS)
    assert kin["n_movements"].tolist() == [1, 1, 1]
    for i in range(3):
        np.testing.assert_array_equal(speed[i], speed_mm_s(positions[i], KIN_FS))
        for key, value in kinematic_features(positions[i], KIN_FS).items():
            np.testing.assert_array_equal(kin[key][i], value)


# ---------------------------------------------------------------- errors for people


def test_nan_samples_are_refused_with_a_message_that_says_what_and_where():
    x = np.zeros((2, 2000))
    x[1, 17] = np.nan
    with pytest.raises(InputError) as err:
        emg_rms_uv(x, EMG_FS)
    assert str(err.value) == (
        "[x_uv] expected finite samples in µV; found 1 NaN or infinite sample out of 4000. "
        "Remove or interpolate them before computing features."
    )
    position = np.zeros((300, 3))
    position[5:7, 1] = np.inf
    with pytest.raises(InputError) as err:
        kinematic_features(position, KIN_FS)
    assert str(err.value) == (
        "[position_mm] expected finite samples in mm; found 2 NaN or infinite samples out of 900. "
        "Remove or interpolate them before computing features."
    )


def test_too_low_a_sampling_rate_is_refused_with_the_rate_needed():
    with pytest.raises(InputError) as err:
        median_frequency_hz(np.zeros(2000), 500.0)
    assert str(err.value) == (
        "[fs_hz] sampling rate 500 Hz is too low for the 20-450 Hz band: expected more than 900 Hz "
        "(twice the band's upper edge)"
    )
    with pytest.raises(InputError) as err:
        speed_mm_s(np.zeros((100, 3)), 25.0)
    assert str(err.value) == (
        "[fs_hz] sampling rate 25 Hz is too low for a 15 Hz cut-off: expected more than 30 Hz (twice the cut-off)"
    )
    with pytest.raises(InputError) as err:
        mep_features(np.zeros((10, 100)), 500.0, -20.0)
    assert str(err.value) == "[fs_hz] sampling rate 500 Hz is too low for MEP onsets: expected at least 1000 Hz"


@pytest.mark.parametrize(
    "call",
    [
        lambda: bandpass(np.zeros(100), EMG_FS, 450.0, 20.0),
        lambda: bandpass(np.zeros(20), EMG_FS, 20.0, 450.0),
        lambda: emg_rms_uv(np.zeros(200), EMG_FS),  # 0.1 s: too short for a 20 Hz edge
        lambda: emg_rms_uv(np.array(["a", "b"]), EMG_FS),
        lambda: emg_rms_uv(np.zeros(2000), "fast"),
        lambda: emg_rms_uv(np.zeros(2000), EMG_FS, band_hz=(20.0,)),
        lambda: mep_features(np.zeros(200), EMG_FS, -20.0),  # no trial axis
        lambda: mep_features(np.zeros((10, 200)), EMG_FS, -3.0),  # no baseline
        lambda: mep_features(np.zeros((10, 200)), EMG_FS, -20.0, window_ms=(10.0, 90.0)),
        lambda: speed_mm_s(np.zeros((100, 2)), KIN_FS),
        lambda: kinematic_features(np.zeros((100, 3)), KIN_FS),  # 1 s: too short for the tremor band
        lambda: movement_segments(np.zeros((10, 2)), KIN_FS),
        lambda: sparc(-minimum_jerk_speed(1.0), KIN_FS),
        lambda: sparc(np.zeros(50), KIN_FS),
        lambda: sparc(minimum_jerk_speed(1.0), KIN_FS, fc_hz=80.0),
    ],
)
def test_bad_input_raises_input_error(call):
    with pytest.raises(InputError):
        call()


def test_reach_segments_match_kinematic_features_under_tremor():
    from core.synth import recordings

    rng = [recordings.patient_rng(0, 1, 2)]
    position = recordings.make_reaching(rng, np.array([300.0]), np.array([1.0]), np.array([0.0]), np.array([2.0]))[0]
    segments = reach_segments(position, recordings.KIN_FS_HZ)
    features = kinematic_features(position, recordings.KIN_FS_HZ)
    assert len(segments) == recordings.N_REACHES == features["n_movements"]
    durations = [(stop - 1 - start) / recordings.KIN_FS_HZ for start, stop in segments]
    assert np.median(durations) == features["movement_time_s"]
    # The raw-speed segmentation merges everything into one movement when tremor is this strong.
    assert len(movement_segments(speed_mm_s(position, recordings.KIN_FS_HZ), recordings.KIN_FS_HZ)) < recordings.N_REACHES
