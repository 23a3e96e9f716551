"""Shared helpers of the core.io tests: fuzzing strategies, file writers, a small synthetic cohort.

No tests here; the test_io_* modules import what they need.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.io.export import continuous_emg  # noqa: F401  (shared with the tests)
from core.io.writers import write_c3d, write_edf  # noqa: F401  (shared with the tests)

# 40 malformed inputs per reader in `make test`, derandomized so CI sees the same ones every run;
# the >= 500-per-reader hunt is `python -m tests.bench_fuzz --fuzz` (tests/fuzz_support.py).
# NEUROPREDICT_FUZZ_EXAMPLES=5000 makes these tests a longer, randomized hunt too.
_DEEP = int(os.environ.get("NEUROPREDICT_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(
    max_examples=max(_DEEP, 40),
    derandomize=not _DEEP,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _flip(seed: bytes, edits) -> bytes:
    out = bytearray(seed)
    for at, value in edits:
        out[at % len(out)] = value
    return bytes(out)


def mutated(seed: bytes, hot: int | None = None):
    """Malformed variants of a valid file: byte flips (mostly in the first ``hot`` bytes, where
    headers live), truncation, insertion, deletion, overwritten headers, and random bytes."""
    n = len(seed)
    hot = max(1, min(hot or n, n))
    hot_pos = st.integers(0, hot - 1)
    any_pos = st.integers(0, n - 1)
    position = st.one_of(hot_pos, hot_pos, any_pos)
    return st.one_of(
        st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=6).map(lambda e: _flip(seed, e)),
        st.lists(st.tuples(position, st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF, 0x20, 0x30, 0x39, 0x2D])), min_size=1, max_size=3).map(lambda e: _flip(seed, e)),
        any_pos.map(lambda k: seed[:k]),
        st.tuples(position, st.binary(min_size=1, max_size=40)).map(lambda a: seed[: a[0]] + a[1] + seed[a[0] :]),
        st.tuples(position, st.integers(1, 40)).map(lambda a: seed[: a[0]] + seed[a[0] + a[1] :]),
        st.binary(min_size=1, max_size=64).map(lambda b: b + seed[len(b) :]),
        st.binary(max_size=400),
    )


_TEXT_NOISE = st.text(alphabet=list(",;\t\n\r\"' .-+eE0123456789naifxyzNA/\\\x00é"), min_size=1, max_size=12)


def text_mutated(seed: str):
    """Malformed variants of a text table: noise inserted or replacing a span, lines dropped or
    duplicated, truncation, and the byte-level mutations of :func:`mutated`."""
    n = len(seed)
    pos = st.integers(0, n - 1)
    lines = seed.splitlines(keepends=True)
    line = st.integers(0, len(lines) - 1)
    as_bytes = lambda s: s.encode("utf-8")  # noqa: E731
    return st.one_of(
        st.tuples(pos, _TEXT_NOISE).map(lambda a: as_bytes(seed[: a[0]] + a[1] + seed[a[0] :])),
        st.tuples(pos, st.integers(1, 20), _TEXT_NOISE).map(lambda a: as_bytes(seed[: a[0]] + a[2] + seed[a[0] + a[1] :])),
        line.map(lambda k: as_bytes("".join(lines[:k] + lines[k + 1 :]))),
        line.map(lambda k: as_bytes("".join(lines[: k + 1] + lines[k:]))),
        mutated(as_bytes(seed)),
    )


def assert_only_input_error(read, data) -> None:
    """Reading malformed data either works or raises InputError; nothing else may escape."""
    try:
        read(data)
    except InputError as exc:
        assert str(exc)  # a message for the user, never empty


# ---------------------------------------------------------------- a small synthetic cohort


@lru_cache(maxsize=1)
def synthetic_cohort():
    """10 patients, every modality present, both indications (one per test session)."""
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    config = CohortConfig(name="io-tests", n_patients=10, seed=5, missing_rate={"dti": 0.0, "emg": 0.0, "kin": 0.0})
    return generate_cohort(config, n_jobs=1)


# ---------------------------------------------------------------- writers


def nifti_bytes(data, affine, *, code: int = 4, version: int = 1, compress: bool = False, dtype=np.float32) -> bytes:
    import nibabel as nib

    klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    image = klass(np.asarray(data, dtype=dtype), affine)
    image.header.set_sform(affine, code)
    image.header.set_qform(affine, code)
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw


def csv_bytes(frame: pd.DataFrame, sep: str = ",") -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, sep=sep)
    return buffer.getvalue().encode()


def xlsx_bytes(rows) -> bytes:
    """An .xlsx workbook whose sheet "clinical" holds ``rows`` (the first is the header)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "clinical"
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# A diffusion series with one b = 0 volume and 6 directions (the fewest a tensor fit takes).
DWI_DIRECTIONS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float) / np.sqrt([1, 1, 1, 2, 2, 2])[:, None]
DWI_B_S_PER_MM2 = 1000.0


@lru_cache(maxsize=8)
def dwi_files(*, native: bool = False, stem: str = "sub-01_dwi") -> dict:
    """A 4-D diffusion series made from the MNI152 template on a 4 mm grid: the b0 is the template
    (x 1000), the diffusion-weighted volumes follow one tensor along x, eigenvalues 1.7, 0.3,
    0.3 x 10^-3 mm²/s (FA 0.80), inside the brain mask. Returns {file name: bytes} of the gzipped
    NIfTI, the ``.bval`` and the ``.bvec`` (FSL, 3 rows).

    ``native``: labelled scanner space and moved 6 / -6 / 4 mm, so that the b0 must be registered.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    from core.anatomy import load_anatomy

    anatomy = load_anatomy()
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-90.0, -126.0, -72.0]
    shape = (46, 55, 46)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_grid = lambda data: np.asarray(resample_img(  # noqa: E731
            nib.Nifti1Image(np.asarray(data, np.float32), anatomy.affine), target_affine=affine, target_shape=shape,
            interpolation="linear", force_resample=True, copy_header=True).get_fdata(), np.float32)
        b0 = 1000.0 * on_grid(anatomy.template)
        brain = on_grid(anatomy.brain_mask.astype(np.float32)) > 0.5
    tensor = np.diag([1.7e-3, 0.3e-3, 0.3e-3])
    attenuation = np.exp(-DWI_B_S_PER_MM2 * np.einsum("ni,ij,nj->n", DWI_DIRECTIONS, tensor, DWI_DIRECTIONS))
    weights = np.where(brain[..., None], attenuation, 1.0)
    series = np.concatenate([b0[..., None], b0[..., None] * weights], axis=-1).astype(np.float32)
    code = 4
    if native:
        affine[:3, 3] += [6.0, -6.0, 4.0]
        code = 1
    bvals = " ".join(f"{b:g}" for b in [0.0] + [DWI_B_S_PER_MM2] * len(DWI_DIRECTIONS)) + "\n"
    g = np.vstack([np.zeros(3), DWI_DIRECTIONS])
    bvecs = "\n".join(" ".join(f"{v:.8f}" for v in row) for row in g.T) + "\n"
    return {f"{stem}.nii.gz": nifti_bytes(series, affine, code=code, compress=True), f"{stem}.bval": bvals.encode(), f"{stem}.bvec": bvecs.encode()}
