"""Raw per-patient recordings of the synthetic cohort: surface EMG with TMS MEPs, and reaching.

Each generator takes per-patient parameters as arrays (leading axis = patients) and one
``numpy.random.Generator`` per patient, seeded from (cohort seed, patient number, modality), so a
patient's recording is the same whether it is made alone for display or in a batch of 10,000.
"""

from __future__ import annotations

import numpy as np

EMG_FS_HZ = 2000.0
EMG_MUSCLES = ("fdi", "ecr")  # first dorsal interosseous, extensor carpi radialis
SWEEP_START_MS = -20.0
SWEEP_SAMPLES = 200  # 100 ms sweeps: -20 .. 80 ms around the TMS pulse
N_TRIALS = 10
VOLUNTARY_SAMPLES = 2000  # 1 s of voluntary contraction
MEP_TRIAL_CV = 0.35  # trial-to-trial log-amplitude SD of MEPs
MEP_LATENCY_JITTER_MS = 0.4
KIN_FS_HZ = 100.0
N_REACHES = 5
REACH_SLOT_S = 3.0  # each reach starts 0.5 s into its own 3 s slot
KIN_NOISE_MM = 0.1


def patient_rng(seed: int, patient_number: int, stream: int) -> np.random.Generator:
    """The generator for one patient's data stream (1 = EMG, 2 = kinematics)."""
    return np.random.default_rng([int(seed), int(patient_number), int(stream)])


def _mep_waveform(t_ms: np.ndarray) -> np.ndarray:
    """Biphasic MEP of unit peak-to-peak starting at t = 0 ms (positive then negative phase)."""
    shape = np.exp(-(((t_ms - 3.5) / 1.5) ** 2)) - 0.9 * np.exp(-(((t_ms - 8.0) / 2.2) ** 2))
    return shape


_T_FINE = np.linspace(-5, 30, 35001)
_MEP_PP = float(np.ptp(_mep_waveform(_T_FINE)))


def emg_spectrum_gain(freq_hz: np.ndarray, peak_hz: np.ndarray) -> np.ndarray:
    """Amplitude spectrum of voluntary surface EMG: Rayleigh-shaped, peaking at ``peak_hz``."""
    x = freq_hz / peak_hz
    return x * np.exp(-0.5 * x**2)


def true_median_frequency_hz(peak_hz: np.ndarray, band_hz=(20.0, 450.0)) -> np.ndarray:
    """Median frequency of the band-limited power spectrum that ``emg_spectrum_gain`` defines."""
    freq = np.linspace(band_hz[0], band_hz[1], 4000)
    power = emg_spectrum_gain(freq[None, :], np.atleast_1d(peak_hz)[:, None]) ** 2
    cumulative = np.cumsum(power, axis=1)
    half = cumulative[:, -1:] / 2
    return freq[np.argmax(cumulative >= half, axis=1)]


def make_emg(
    rngs: list[np.random.Generator],
    mep_amplitude_uv: np.ndarray,
    mep_latency_ms: np.ndarray,
    rest_rms_uv: np.ndarray,
    voluntary_rms_uv: np.ndarray,
    spectrum_peak_hz: np.ndarray,
    gain: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """EMG of a batch of patients.

    Parameters
    ----------
    rngs : one generator per patient (``patient_rng(seed, number, 1)``).
    mep_amplitude_uv, mep_latency_ms : (n, n_muscles) mean MEP peak-to-peak amplitude (0 = absent)
        and onset latency.
    rest_rms_uv : (n,) background noise at rest.
    voluntary_rms_uv : (n, n_muscles) RMS of the voluntary burst at its plateau.
    spectrum_peak_hz : (n,) peak of the voluntary EMG amplitude spectrum.
    gain : (n,) amplifier/electrode gain of the recording site (1 = nominal).

    Returns
    -------
    sweeps_uv : (n, n_muscles, N_TRIALS, SWEEP_SAMPLES); voluntary_uv : (n, n_muscles, VOLUNTARY_SAMPLES).
    """
    n, n_muscles = mep_amplitude_uv.shape
    sweep_noise = np.empty((n, n_muscles, N_TRIALS, SWEEP_SAMPLES), np.float32)
    trial_z = np.empty((n, n_muscles, N_TRIALS, 2), np.float32)
    n_freq = VOLUNTARY_SAMPLES // 2 + 1
    burst_spectrum = np.empty((n, n_muscles, n_freq, 2), np.float32)  # (real, imaginary) pairs
    rest_noise = np.empty((n, n_muscles, VOLUNTARY_SAMPLES), np.float32)
    for i, r in enumerate(rngs):
        for out in (sweep_noise, trial_z, burst_spectrum, rest_noise):
            r.standard_normal(dtype=np.float32, out=out[i])

    t_ms = (SWEEP_START_MS + np.arange(SWEEP_SAMPLES) * 1000.0 / EMG_FS_HZ).astype(np.float32)
    mep_amplitude_uv = mep_amplitude_uv.astype(np.float32)
    mep_latency_ms = mep_latency_ms.astype(np.float32)
    trial_amp = mep_amplitude_uv[..., None] * np.exp(MEP_TRIAL_CV * trial_z[..., 0] - MEP_TRIAL_CV**2 / 2)
    trial_lat = mep_latency_ms[..., None] + MEP_LATENCY_JITTER_MS * trial_z[..., 1]
    mep = trial_amp[..., None] / _MEP_PP * _mep_waveform(t_ms - trial_lat[..., None])
    artefact = 150.0 * np.exp(-np.clip(t_ms, 0, None) / 0.6) * (t_ms >= 0)  # TMS pulse artefact
    sweeps = rest_rms_uv[:, None, None, None].astype(np.float32) * sweep_noise + mep + artefact.astype(np.float32)

    # Voluntary burst: Gaussian noise drawn directly as a spectrum, shaped, under a trapezoid envelope.
    freq = np.fft.rfftfreq(VOLUNTARY_SAMPLES, 1.0 / EMG_FS_HZ)
    shaping = emg_spectrum_gain(freq[None, :], spectrum_peak_hz[:, None])
    shaping /= np.sqrt((shaping**2).sum(axis=1, keepdims=True) / VOLUNTARY_SAMPLES)  # unit variance
    spectrum = burst_spectrum.view(np.complex64)[..., 0] * shaping[:, None, :].astype(np.float32)
    coloured = np.fft.irfft(spectrum, n=VOLUNTARY_SAMPLES, axis=-1) * np.float32(np.sqrt(VOLUNTARY_SAMPLES) / 2)  # var(irfft) = 4 sum(H^2) / N^2 = 4 / N
    t_s = np.arange(VOLUNTARY_SAMPLES) / EMG_FS_HZ
    envelope = np.clip(np.minimum((t_s - 0.1) / 0.1, (0.9 - t_s) / 0.1), 0.0, 1.0).astype(np.float32)
    voluntary = voluntary_rms_uv[..., None].astype(np.float32) * envelope * coloured + rest_rms_uv[:, None, None].astype(np.float32) * rest_noise
    g = gain[:, None, None]
    return (sweeps * g[..., None]).astype(np.float32), (voluntary * g).astype(np.float32)


def minimum_jerk(tau: np.ndarray) -> np.ndarray:
    """Normalised minimum-jerk position profile (0 -> 1) for tau in [0, 1] (Flash & Hogan 1985)."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau))  # Horner: powers are slow


def make_reaching(
    rngs: list[np.random.Generator],
    distance_mm: np.ndarray,
    duration_s: np.ndarray,
    submovement_fraction: np.ndarray,
    tremor_amplitude_mm: np.ndarray,
) -> np.ndarray:
    """Reaching trajectories of a batch of patients, shape (n, N_REACHES * slot samples, 3) in mm.

    Each reach is a minimum-jerk movement out (even reaches) or back (odd reaches). A fraction
    ``submovement_fraction`` of the distance is covered by a second, overlapping corrective
    sub-movement (typical after stroke; it lowers smoothness). Tremor is a sinusoid at 4.5-5.5 Hz
    along a random direction with constant amplitude ``tremor_amplitude_mm``, so its band power
    summed over axes is ``amplitude**2 / 2`` mm^2.
    """
    n = len(rngs)
    slot = int(REACH_SLOT_S * KIN_FS_HZ)
    n_samples = N_REACHES * slot
    t = np.arange(n_samples) / KIN_FS_HZ
    reach_z = np.empty((n, N_REACHES, 2))
    misc_z = np.empty((n, 5))
    sensor_noise = np.empty((n, n_samples, 3), np.float32)
    for i, r in enumerate(rngs):
        r.standard_normal(out=reach_z[i])
        r.standard_normal(out=misc_z[i])
        r.standard_normal(dtype=np.float32, out=sensor_noise[i])

    direction = np.stack([0.15 * misc_z[:, 0], np.ones(n), 0.10 * misc_z[:, 1]], axis=1)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    # Progress from start (0) to target (1); reach k stays within slot k, out on even k, back on odd.
    progress = np.empty((n, n_samples))
    t_slot = t[:slot] - 0.5
    c = submovement_fraction[:, None]
    for k in range(N_REACHES):
        duration = (duration_s * np.exp(0.08 * reach_z[:, k, 0]))[:, None]
        primary = minimum_jerk(t_slot[None, :] / duration)
        secondary = minimum_jerk((t_slot[None, :] - 0.55 * duration) / (0.6 * duration))
        step = (1 - c) * primary + c * secondary
        progress[:, k * slot : (k + 1) * slot] = step if k % 2 == 0 else 1.0 - step
    position = progress[..., None] * distance_mm[:, None, None] * direction[:, None, :]

    tremor_dir = np.stack([misc_z[:, 2], misc_z[:, 3], misc_z[:, 4]], axis=1)
    tremor_dir /= np.linalg.norm(tremor_dir, axis=1, keepdims=True)
    tremor_hz = 5.0 + 0.25 * np.tanh(reach_z[:, 0, 1])
    phase = 2 * np.pi * (misc_z[:, 0] % 1.0)
    tremor = tremor_amplitude_mm[:, None] * np.sin(2 * np.pi * tremor_hz[:, None] * t[None, :] + phase[:, None])
    position = position + tremor[..., None] * tremor_dir[:, None, :] + KIN_NOISE_MM * sensor_noise
    return position.astype(np.float32)
