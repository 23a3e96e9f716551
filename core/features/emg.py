"""EMG features: MEPs from TMS sweeps, and the voluntary burst's RMS and median frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal

from core.errors import InputError
from core.features.dsp import as_samples, butter_sos, check_band, check_fraction, check_number, check_rate, nan_median, one_sided_weights, ramp_spectrum, require_length, row_blocks, zero_phase_gain

_MEP_MIN_RATE_HZ = 1000.0  # onset must be resolved to 1 ms
_MEP_BASELINE_END_MS = -1.0  # baseline stops short of the pulse and its artefact
_MEP_MIN_BASELINE_MS = 5.0
_MEP_ONSET_SD = 5.0
_EMG_BANDPASS_ORDER = 4
_EMG_MIN_PERIODS = 10  # periods of the band's lower edge a record must span


def _require_ndim(a, min_ndim, field, shape):
    if a.ndim < min_ndim:
        raise InputError(f"expected an array of shape {shape}, found shape {a.shape}", field=field)


def _joined_spectrum(x):
    """rfft over the last axis of x minus the line through its first and last samples. The
    line's offset only touches the 0 Hz bin, which is left as is: every caller discards it."""
    n = x.shape[-1]
    slope = (x[..., -1] - x[..., 0]) / max(n - 1, 1)
    return np.fft.rfft(x, axis=-1) - slope[..., None] * ramp_spectrum(n)


def bandpass(x, fs_hz, low_hz, high_hz, order=4, axis=-1):
    """Zero-phase Butterworth band-pass filter.

    Parameters
    ----------
    x : array_like, any shape
        Samples (any unit; the output has the same unit), time along ``axis``.
    fs_hz : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Pass band edges in Hz, ``0 < low_hz < high_hz < fs_hz / 2``.
    order : int
        Butterworth order; run forward and backward, the roll-off is twice as steep.
    axis : int
        Time axis.

    Returns
    -------
    ndarray, same shape as ``x``
        Filtered samples (``scipy.signal.sosfiltfilt`` with odd padding of ``3 * (2 * n_sections + 1)``
        samples at each end).

    Raises
    ------
    InputError
        Bad band or sampling rate, non-finite samples, or fewer samples than the padding needs.
    """
    fs = check_rate(fs_hz)
    low, high = check_band((low_hz, high_hz), fs, field="low_hz, high_hz")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise InputError(f"expected a positive integer filter order, found {order!r}", field="order")
    a = as_samples(x, "x").astype(np.float64, copy=False)
    if not isinstance(axis, (int, np.integer)) or not -a.ndim <= axis < max(a.ndim, 1):
        raise InputError(f"expected a time axis within the array's {a.ndim} dimensions, found axis={axis}", field="axis")
    sos = butter_sos(int(order), (low, high), fs, "bandpass")
    padlen = 3 * (2 * len(sos) + 1)
    n = a.shape[axis] if a.ndim else 0
    if n <= padlen:
        raise InputError(
            f"recording too short for an order-{order} zero-phase filter: expected more than "
            f"{padlen} samples along axis {axis}, found {n}",
            field="x",
        )
    return signal.sosfiltfilt(sos, a, axis=axis, padlen=padlen)


def mep_features(
    sweeps_uv,
    fs_hz,
    sweep_start_ms,
    window_ms=(10.0, 60.0),
    present_threshold_uv=50.0,
    min_trials_present=0.5,
):
    """Motor evoked potential (MEP) amplitude, onset latency and presence from TMS sweeps.

    Each sweep is referenced to its own pre-stimulus mean (from the sweep start to -1 ms, which
    leaves out the TMS artefact). The background level is the mean and SD of the rectified
    pre-stimulus samples of all the recording's sweeps together. Per trial:

    * amplitude: peak-to-peak of the sweep within ``window_ms``;
    * onset: the first sample in the window where the rectified sweep exceeds the background
      mean + 5 SD, moved back to the start of the rise: the time, interpolated between
      samples, at which the rectified sweep last rose through the background mean before that
      crossing. A fixed threshold alone would report small MEPs late, by the time they take to
      climb 5 SD;
    * the trial shows a MEP when its amplitude reaches ``present_threshold_uv`` *and* the 5 SD
      crossing happened, so that a noisy background (whose peak-to-peak easily tops 50 µV at
      20 µV RMS) is not counted as a response.

    Parameters
    ----------
    sweeps_uv : array_like, shape (..., n_trials, n_sweep_samples)
        EMG sweeps in µV, one per TMS pulse.
    fs_hz : float
        Sampling rate in Hz, at least 1000.
    sweep_start_ms : float
        Time of each sweep's first sample relative to the pulse, in ms (e.g. -20.0). The sweeps
        must start at least 6 ms before the pulse, to leave a 5 ms baseline.
    window_ms : (float, float)
        Response window in ms after the pulse, ``0 <= start < end <= end of sweep``.
    present_threshold_uv : float
        Peak-to-peak amplitude, in µV, a trial must reach to show a MEP.
    min_trials_present : float
        Fraction of trials that must show a MEP for ``present`` (0.5: "5 of 10 trials").

    Returns
    -------
    dict of ndarray
        With ``batch = sweeps_uv.shape[:-2]``:

        ``amplitude_uv`` : float, shape batch
            Mean over all trials of the peak-to-peak amplitude, µV.
        ``latency_ms`` : float, shape batch
            Median onset latency over the trials that show a MEP, ms; NaN when the MEP is not
            ``present`` (a stray trial in background noise gives no latency).
        ``present`` : bool, shape batch
            At least ``min_trials_present`` of the trials show a MEP.
        ``trial_amplitude_uv`` : float, shape batch + (n_trials,)
            Peak-to-peak amplitude of each trial, µV.

    Raises
    ------
    InputError
        Wrong shape, non-finite samples, sampling rate below 1000 Hz, too short a baseline, or a
        window outside the sweep.
    """
    fs = check_rate(fs_hz)
    if fs < _MEP_MIN_RATE_HZ:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for MEP onsets: expected at least {_MEP_MIN_RATE_HZ:g} Hz",
            field="fs_hz",
        )
    x = as_samples(sweeps_uv, "sweeps_uv", "µV")
    _require_ndim(x, 2, "sweeps_uv", "(..., n_trials, n_sweep_samples)")
    threshold_uv = check_number(present_threshold_uv, "present_threshold_uv", "an amplitude in µV")
    if not threshold_uv > 0:
        raise InputError(f"expected a positive amplitude in µV, found {present_threshold_uv!r}", field="present_threshold_uv")
    min_fraction = check_fraction(min_trials_present, "min_trials_present")

    n_trials, n = x.shape[-2:]
    start_ms = check_number(sweep_start_ms, "sweep_start_ms", "the sweep start in ms")
    t_ms = start_ms + np.arange(n) * (1000.0 / fs)
    tol = 1e-9
    n_base = int(np.searchsorted(t_ms, _MEP_BASELINE_END_MS + tol))
    need = int(np.ceil(_MEP_MIN_BASELINE_MS * fs / 1000.0))
    if n_base < need:
        raise InputError(
            f"expected at least {_MEP_MIN_BASELINE_MS:g} ms of pre-stimulus baseline (sweeps starting at "
            f"{_MEP_BASELINE_END_MS - _MEP_MIN_BASELINE_MS:g} ms or earlier), found sweeps starting at {start_ms:g} ms",
            field="sweep_start_ms",
        )
    try:
        w0, w1 = (float(v) for v in window_ms)
    except (TypeError, ValueError):
        raise InputError(f"expected a response window as (start, end) in ms, found {window_ms!r}", field="window_ms") from None
    if not 0 <= w0 < w1 or w1 > t_ms[-1] + tol:
        raise InputError(
            f"expected a response window 0 <= start < end <= {t_ms[-1]:g} ms (the sweep's end), "
            f"found {w0:g}-{w1:g} ms",
            field="window_ms",
        )
    i0 = int(np.searchsorted(t_ms, w0 - tol))
    i1 = int(np.searchsorted(t_ms, w1 + tol))

    batch = x.shape[:-2]
    recordings = x.reshape(-1, n_trials, n)
    ptp = np.empty(recordings.shape[:2])
    onset_ms = np.empty(recordings.shape[:2])
    shows_mep = np.empty(recordings.shape[:2], dtype=bool)
    lag = np.arange(i1 - i0)
    for sl in row_blocks(len(recordings), n_trials * n):
        block = recordings[sl].astype(np.float64)
        base = block[..., :n_base]
        level = base.mean(axis=-1, keepdims=True)
        win = block[..., i0:i1] - level
        ptp[sl] = win.max(axis=-1) - win.min(axis=-1)
        # Rectified background statistics pooled over the recording's sweeps: a single 19 ms
        # baseline gives so unsteady an SD that background noise would pass for a MEP in about
        # one sweep in ten.
        rect_base = np.abs(base - level).reshape(len(block), -1)
        rest = rect_base.mean(axis=-1)[:, None, None]
        rect = np.abs(win)
        above = rect > rest + _MEP_ONSET_SD * rect_base.std(axis=-1, ddof=1)[:, None, None]
        crossing = above.argmax(axis=-1)
        at_rest = (rect <= rest) & (lag < crossing[..., None])
        last_rest = np.where(at_rest, lag, -1).max(axis=-1)
        # Sub-sample: where the rectified sweep passes the background mean between the last sample
        # at rest and the next one (or the window start when it never rests).
        before = np.take_along_axis(rect, np.maximum(last_rest, 0)[..., None], axis=-1)[..., 0]
        after = np.take_along_axis(rect, (last_rest + 1)[..., None], axis=-1)[..., 0]
        share = np.divide(rest[..., 0] - before, after - before, out=np.ones_like(before), where=last_rest >= 0)
        onset_ms[sl] = t_ms[i0] + (np.maximum(last_rest, 0) + share) * (1000.0 / fs)
        shows_mep[sl] = above.any(axis=-1) & (ptp[sl] >= threshold_uv)

    ptp = ptp.reshape(batch + (n_trials,))
    shows_mep = shows_mep.reshape(ptp.shape)
    onset_ms = np.where(shows_mep, onset_ms.reshape(ptp.shape), np.nan)
    present = shows_mep.sum(axis=-1) >= min_fraction * n_trials - 1e-9
    return {
        "amplitude_uv": ptp.mean(axis=-1),
        "latency_ms": np.where(present, nan_median(onset_ms), np.nan),
        "present": present,
        "trial_amplitude_uv": ptp,
    }


def _band_power_spectra(x_uv, fs_hz, band_hz):
    """Yield (block slice, power per rfft bin after zero-phase band-pass) for each block of records."""
    fs = check_rate(fs_hz)
    low, high = check_band(band_hz, fs)
    x = as_samples(x_uv, "x_uv", "µV")
    _require_ndim(x, 1, "x_uv", "(..., n_samples)")
    n = x.shape[-1]
    require_length(n, int(np.ceil(_EMG_MIN_PERIODS * fs / low)), fs, "x_uv", f"for the {low:g}-{high:g} Hz band")
    # Forward-backward filtering scales the amplitude by |H|^2, hence the power by |H|^4.
    weight = zero_phase_gain(n, fs, _EMG_BANDPASS_ORDER, (low, high), "bandpass") ** 2 * one_sided_weights(n)
    rows = x.reshape(-1, n)
    for sl in row_blocks(len(rows), n):
        spectrum = _joined_spectrum(rows[sl].astype(np.float64))
        yield sl, (spectrum.real**2 + spectrum.imag**2) * weight


def emg_rms_uv(x_uv, fs_hz, band_hz=(20.0, 450.0)):
    """Root-mean-square amplitude of band-passed EMG.

    The band-pass is the zero-phase order-4 Butterworth of :func:`bandpass`, applied in the
    frequency domain (see the module notes); the RMS is read from the spectrum (Parseval).

    Parameters
    ----------
    x_uv : array_like, shape (..., n_samples)
        EMG in µV, e.g. a voluntary-contraction segment. At least 10 periods of the band's lower
        edge long (0.5 s for 20 Hz).
    fs_hz : float
        Sampling rate in Hz, above twice the band's upper edge (900 Hz for 450 Hz).
    band_hz : (float, float)
        Pass band in Hz.

    Returns
    -------
    ndarray, shape x_uv.shape[:-1]
        RMS in µV.

    Raises
    ------
    InputError
        Non-finite samples, too short a record, or a sampling rate too low for the band.
    """
    x_shape = np.shape(x_uv)
    out = np.empty(int(np.prod(x_shape[:-1])))
    for sl, power in _band_power_spectra(x_uv, fs_hz, band_hz):
        out[sl] = np.sqrt(power.sum(axis=-1))
    return out.reshape(x_shape[:-1])


def median_frequency_hz(x_uv, fs_hz, band_hz=(20.0, 450.0)):
    """Median frequency of band-passed EMG: the frequency splitting its power into equal halves.

    The power spectrum is the periodogram of the whole record after the zero-phase band-pass of
    :func:`emg_rms_uv`; each bin's power is spread evenly over the bin's width, so the result is
    not quantised to the bin grid.

    Parameters
    ----------
    x_uv : array_like, shape (..., n_samples)
        EMG in µV, at least 10 periods of the band's lower edge long.
    fs_hz : float
        Sampling rate in Hz, above twice the band's upper edge.
    band_hz : (float, float)
        Pass band in Hz.

    Returns
    -------
    ndarray, shape x_uv.shape[:-1]
        Median frequency in Hz; NaN for a record with no power in the band (all zeros).

    Raises
    ------
    InputError
        Non-finite samples, too short a record, or a sampling rate too low for the band.
    """
    x_shape = np.shape(x_uv)
    fs = check_rate(fs_hz)
    n = x_shape[-1] if x_shape else 0
    out = np.empty(int(np.prod(x_shape[:-1])))
    for sl, power in _band_power_spectra(x_uv, fs_hz, band_hz):
        cumulative = np.cumsum(power, axis=-1)
        half = cumulative[:, -1] / 2
        k = np.argmax(cumulative >= half[:, None], axis=-1)
        in_bin = np.take_along_axis(power, k[:, None], axis=-1)[:, 0]
        before = np.take_along_axis(cumulative, k[:, None], axis=-1)[:, 0] - in_bin
        share = np.divide(half - before, in_bin, out=np.full_like(half, np.nan), where=in_bin > 0)
        out[sl] = (k - 0.5 + share) * (fs / n)
    return out.reshape(x_shape[:-1])


def emg_feature_table(sweeps_uv, voluntary_uv, fs_hz, sweep_start_ms, muscles, index) -> pd.DataFrame:
    """EMG features of a batch: sweeps (n, n_muscles, n_trials, n_samples), voluntary (n, n_muscles, n_samples)."""
    muscles = list(muscles)
    mep = mep_features(sweeps_uv, fs_hz, sweep_start_ms)
    rms = emg_rms_uv(voluntary_uv, fs_hz)
    mdf = median_frequency_hz(voluntary_uv, fs_hz)
    fdi, ecr = muscles.index("fdi"), muscles.index("ecr")
    return pd.DataFrame(
        {
            "emg.mep_present": mep["present"].any(axis=1).astype(float),
            "emg.mep_amplitude_fdi_uv": mep["amplitude_uv"][:, fdi],
            "emg.mep_latency_fdi_ms": mep["latency_ms"][:, fdi],
            "emg.mep_amplitude_ecr_uv": mep["amplitude_uv"][:, ecr],
            "emg.rms_fdi_uv": rms[:, fdi],
            "emg.median_freq_fdi_hz": mdf[:, fdi],
        },
        index=index,
    )
