"""Signal-processing features computed from raw EMG and kinematic recordings.

Every function takes raw samples in physical units (µV for EMG, mm for marker positions) and,
unless it says it takes one recording, works over any leading batch axes, so one call covers a
whole cohort. The synthetic generator's recordings and uploaded files (EDF, CSV, C3D) go through
the same code.

How the batch functions stay fast
---------------------------------
Time-domain IIR filtering (``scipy.signal.sosfiltfilt``) costs several seconds per 10,000
recordings, so the batch functions filter in the frequency domain instead: each record's FFT is
multiplied by the amplitude response of the same zero-phase (forward-backward) Butterworth filter,
which is what ``sosfiltfilt`` applies away from the record's ends. The straight line through a
record's first and last samples is taken out first (exactly, in the frequency domain) and, where
the filtered signal is returned, put back, so the FFT's periodic extension has no jump at the ends.

Spectra are periodograms of the whole record, not Welch averages: the features read from them
(median frequency, band power) are integrals of the spectrum and need no Welch smoothing. The
tests check both against the ``sosfiltfilt`` + Welch route.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from core.errors import InputError

# Records are processed in blocks of about this many samples: big enough for numpy to be
# efficient, small enough that temporaries stay in cache and memory stays flat for any cohort.
BLOCK_SAMPLES = 1 << 20


def check_rate(fs_hz):
    fs = check_number(fs_hz, "fs_hz", "the sampling rate in Hz as a number")
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"expected a positive sampling rate in Hz, found {fs_hz!r}", field="fs_hz")
    return fs


def check_number(value, field, expected):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected {expected}, found {value!r}", field=field) from None


def as_samples(x, field, unit=None):
    """Floating-point array of finite samples, or InputError naming the field and what was found.

    Float32 stays float32 (callers convert block by block, which saves a copy of a whole cohort).
    """
    unit_text = f" in {unit}" if unit else ""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise InputError(f"expected numeric samples{unit_text}, found data of type {a.dtype}", field=field)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    n_bad = int(np.count_nonzero(~np.isfinite(a)))
    if n_bad:
        plural = "s" if n_bad != 1 else ""
        raise InputError(
            f"expected finite samples{unit_text}; found {n_bad} NaN or infinite sample{plural} "
            f"out of {a.size}. Remove or interpolate them before computing features.",
            field=field,
        )
    return a


def require_length(n, need, fs, field, why):
    if n < need:
        raise InputError(
            f"recording too short {why}: expected at least {need} samples "
            f"({need / fs:g} s at {fs:g} Hz), found {n}",
            field=field,
        )


def check_band(band_hz, fs, field="band_hz"):
    try:
        low, high = (float(v) for v in band_hz)
    except (TypeError, ValueError):
        raise InputError(f"expected a band as (low, high) in Hz, found {band_hz!r}", field=field) from None
    if not 0 < low < high:
        raise InputError(f"expected band edges 0 < low < high in Hz, found low={low:g}, high={high:g}", field=field)
    if high >= fs / 2:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for the {low:g}-{high:g} Hz band: "
            f"expected more than {2 * high:g} Hz (twice the band's upper edge)",
            field="fs_hz",
        )
    return low, high


def check_fraction(value, field, *, allow_one=True):
    v = check_number(value, field, "a fraction between 0 and 1")
    if not (0 < v <= 1 if allow_one else 0 < v < 1):
        raise InputError(f"expected a fraction between 0 and 1, found {value!r}", field=field)
    return v


def row_blocks(n_rows, samples_per_row):
    step = max(1, BLOCK_SAMPLES // max(samples_per_row, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


@lru_cache(maxsize=64)
def ramp_spectrum(n):
    """rfft of the ramp 0, 1, ..., n - 1."""
    ramp = np.fft.rfft(np.arange(float(n)))
    ramp.flags.writeable = False
    return ramp


def one_sided_weights(n):
    """Weights turning |rfft|^2 into power per bin, so that the bins sum to the mean square."""
    w = np.full(n // 2 + 1, 2.0 / n**2)
    w[0] = 1.0 / n**2
    if n % 2 == 0:
        w[-1] = 1.0 / n**2
    return w


@lru_cache(maxsize=64)
def butter_sos(order, cutoff, fs, btype):
    return signal.butter(order, cutoff, btype=btype, fs=fs, output="sos")


@lru_cache(maxsize=64)
def zero_phase_gain(n, fs, order, cutoff, btype):
    """Amplitude response |H(f)|^2 of forward-backward Butterworth filtering at the rfft bins."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    _, h = signal.sosfreqz(butter_sos(order, cutoff, fs, btype), worN=freqs, fs=fs)
    gain = np.abs(h) ** 2
    gain.flags.writeable = False
    return gain


def nan_median(a):
    """Median over the last axis ignoring NaN; NaN where a row holds no number (no warning)."""
    s = np.sort(a, axis=-1)  # NaN sorts last
    k = np.count_nonzero(~np.isnan(a), axis=-1)
    lo = np.take_along_axis(s, np.maximum((k - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, np.maximum(k // 2, 0)[..., None], axis=-1)[..., 0]
    return np.where(k > 0, (lo + hi) / 2, np.nan)
