"""Diffusion MRI: dipy's shipped DWI sets, a tensor fit of known FA, the generator's DTI features."""

import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.anatomy import load_anatomy
from core.errors import InputError
from core.io.diffusion import diffusion_companions, diffusion_to_mni, dti_feature_row, fit_tensor, read_bvals, read_bvecs, read_diffusion
from core.io.volumes import read_nifti, to_mni
from tests.io_support import FUZZ, assert_only_input_error, dwi_files, mutated, nifti_bytes, synthetic_cohort, text_mutated


@pytest.fixture(scope="module")
def dipy_files():
    import dipy.data

    return pathlib.Path(dipy.data.__file__).parent / "files"


def _set(dipy_files, stem, ext):
    return dipy_files / f"{stem}{ext}", dipy_files / f"{stem}.bval", dipy_files / f"{stem}.bvec"


# ---------------------------------------------------------------- dipy's DWI sets (files in the wheel)


def test_dipy_small_64d_rows_of_directions_with_nan_b0(dipy_files):
    series = read_diffusion(*_set(dipy_files, "small_64D", ".nii"))
    assert series.data.shape == (10, 10, 10, 65) and series.n_volumes == 65
    assert int(series.b0_mask.sum()) == 1 and series.bvals[0] == 0
    assert series.bvals[1:].min() == pytest.approx(986.946, abs=1e-3) and series.bvals.max() == pytest.approx(1002.991, abs=1e-3)
    np.testing.assert_allclose(np.linalg.norm(series.bvecs[1:], axis=1), 1.0, atol=1e-6)
    assert not series.bvecs[0].any()  # the b0's NaN direction is set aside
    maps = fit_tensor(series)
    assert maps.fa.shape == (10, 10, 10) and int(maps.mask.sum()) == 997
    assert float(maps.fa[5, 5, 5]) == pytest.approx(0.6508, abs=1e-3)
    assert float(np.median(maps.fa[maps.mask])) == pytest.approx(0.3455, abs=1e-3)
    assert float(np.median(maps.md[maps.mask])) == pytest.approx(0.8397e-3, rel=1e-3)  # mm²/s


def test_dipy_small_101d_fsl_three_row_bvec(dipy_files):
    series = read_diffusion(*_set(dipy_files, "small_101D", ".nii.gz"))
    assert series.data.shape == (6, 10, 10, 102)
    assert series.bvals[0] == 15 and int(series.b0_mask.sum()) == 1  # b = 15 counts as b = 0
    assert read_bvecs(dipy_files / "small_101D.bvec").shape == (102, 3)
    maps = fit_tensor(series)
    assert int(maps.mask.sum()) == 600 and float(maps.fa[3, 5, 5]) == pytest.approx(0.3822, abs=1e-3)


def test_dipy_small_25_single_shell(dipy_files):
    series = read_diffusion(*_set(dipy_files, "small_25", ".nii.gz"))
    assert series.data.shape == (10, 8, 2, 26)
    assert set(np.unique(series.bvals)) == {0.0, 2000.0}
    assert series.report[-1].message == "26 volumes: 1 at b = 0, 25 diffusion-weighted (b = 2000-2000 s/mm²)."


def test_tensor_fit_recovers_a_known_fa_and_md(dipy_files):
    """Noise-free signal of a tensor with eigenvalues 1.7, 0.3, 0.3 x 10^-3 mm²/s rotated per voxel:
    FA = 0.7990 and MD = 0.7667 x 10^-3 mm²/s exactly."""
    from scipy.spatial.transform import Rotation

    bvecs = read_bvecs(dipy_files / "small_64D.bvec")[1:]
    bvals = np.r_[0.0, np.full(len(bvecs), 1000.0)]
    g = np.vstack([np.zeros(3), bvecs])
    rotations = Rotation.random(4 * 4 * 3, random_state=3).as_matrix()
    evals = np.diag([1.7e-3, 0.3e-3, 0.3e-3])
    tensors = rotations @ evals @ rotations.transpose(0, 2, 1)
    signal = 1000.0 * np.exp(-bvals[None, :] * np.einsum("ni,vij,nj->vn", g, tensors, g))
    dwi = nifti_bytes(signal.reshape(4, 4, 3, -1), np.diag([2.0, 2, 2, 1]), code=1)
    bval_text = " ".join(f"{b:g}" for b in bvals).encode()
    bvec_text = "\n".join(" ".join(f"{v:.8f}" for v in row) for row in g.T).encode()
    maps = fit_tensor(read_diffusion(dwi, bval_text, bvec_text, names=("sim_dwi.nii", "sim.bval", "sim.bvec")))
    np.testing.assert_allclose(maps.fa, 0.7990, atol=2e-4)
    np.testing.assert_allclose(maps.md, 0.7667e-3, rtol=1e-3)


# ---------------------------------------------------------------- one path to the MNI grid


def _step_by_step(files: dict):
    """Read, fit, then resample FA (MNI-space series) or register the b0 and carry FA along (native)."""
    series = read_diffusion(*files.values(), names=tuple(files))
    maps = fit_tensor(series)
    if series.volume.in_standard_space:
        placed = to_mni(maps.fa_volume(), space="mni")
        fa = placed.data
    else:
        placed = to_mni(maps.b0_volume(), space="native")
        fa = np.clip(placed.registration.apply(maps.fa_volume()), 0.0, 1.0)
    return fa, placed, series.report + maps.report + placed.report


@pytest.mark.parametrize("native", [False, True], ids=["mni", "native"])
def test_diffusion_to_mni_is_the_step_by_step_path(native):
    files = dwi_files(native=native)
    diffusion = diffusion_to_mni(*files.values(), names=tuple(files))
    fa, placed, report = _step_by_step(files)
    np.testing.assert_array_equal(diffusion.fa_mni, fa)
    assert diffusion.fa_mni.dtype == np.float32 and diffusion.fa_mni.shape == load_anatomy().shape
    assert [(e.status, e.source, e.message) for e in diffusion.report] == [(e.status, e.source, e.message) for e in report]
    assert diffusion.placed.method == placed.method == ("registered" if native else "resampled")
    assert diffusion.needs_review is native and (diffusion.registration is not None) is native
    # the series holds one tensor of FA 0.80 inside the brain: so does the map on the MNI grid
    assert float(np.median(diffusion.fa_mni[load_anatomy().brain_mask])) == pytest.approx(0.799, abs=2e-3)
    assert diffusion.fa_mni.min() >= 0.0 and diffusion.fa_mni.max() <= 1.0


def test_a_native_series_is_registered_through_its_b0():
    """The native series is the MNI one moved 6 / -6 / 4 mm: the registration finds that shift."""
    files = dwi_files(native=True)
    diffusion = diffusion_to_mni(*files.values(), names=tuple(files))
    transform = diffusion.registration.transform  # MNI mm -> native mm
    np.testing.assert_allclose(transform[:3, 3], [6.0, -6.0, 4.0], atol=0.5)
    np.testing.assert_allclose(transform[:3, :3], np.eye(3), atol=0.01)
    assert diffusion.registration.registered.max() > 500  # the b0 (x 1000), not FA, is what was registered
    assert diffusion.report[-1].status == "warning" and "check the overlay" in diffusion.report[-1].message
    in_mni = diffusion_to_mni(*dwi_files(native=False).values(), names=tuple(files))
    brain = load_anatomy().brain_mask
    assert np.abs(diffusion.fa_mni - in_mni.fa_mni)[brain].mean() < 0.01


def test_diffusion_to_mni_takes_a_volume_already_read():
    files = dwi_files()
    names = tuple(files)
    volume = read_nifti(files[names[0]], names[0], dims="4d")
    from_volume = diffusion_to_mni(volume, files[names[1]], files[names[2]], names=names)
    np.testing.assert_array_equal(from_volume.fa_mni, diffusion_to_mni(*files.values(), names=names).fa_mni)


# ---------------------------------------------------------------- which .bval and .bvec go with a series


def test_companions_named_after_the_series_win():
    folder = ["sub-01/dwi/sub-01_dwi.bval", "sub-01/dwi/sub-01_dwi.bvec", "sub-01/dwi/sub-01_run-2_dwi.bval",
              "sub-01/dwi/sub-01_run-2_dwi.bvec", "sub-01/anat/sub-01_T1w.nii.gz"]
    assert diffusion_companions("sub-01/dwi/sub-01_dwi.nii.gz", folder) == ("sub-01/dwi/sub-01_dwi.bval", "sub-01/dwi/sub-01_dwi.bvec")
    assert diffusion_companions("sub-01/dwi/sub-01_run-2_dwi.nii", folder) == ("sub-01/dwi/sub-01_run-2_dwi.bval", "sub-01/dwi/sub-01_run-2_dwi.bvec")
    assert diffusion_companions("scan.NII.GZ", ["scan.bvals", "scan.bvecs"]) == ("scan.bvals", "scan.bvecs")


def test_the_only_companions_beside_a_series_are_its_own():
    assert diffusion_companions("dwi.nii.gz", ["bvals.bval", "bvecs.bvec", "notes.txt"]) == ("bvals.bval", "bvecs.bvec")
    # files in another folder do not count
    with pytest.raises(InputError) as found:
        diffusion_companions("P1/dwi/P1_dwi.nii.gz", ["P1/P1_dwi.bval", "P1/dwi/P1_dwi.bvec"])
    assert str(found.value) == ("P1/dwi/P1_dwi.nii.gz: [bval] found no .bval file for this diffusion series; "
                                "expected P1_dwi.bval beside it (upload the series, its .bval and its .bvec together).")


def test_unpaired_and_ambiguous_series_give_the_exact_input_error():
    with pytest.raises(InputError) as found:
        diffusion_companions("sub-01_dwi.nii.gz", ["sub-01_dwi.bval"])
    assert str(found.value) == ("sub-01_dwi.nii.gz: [bvec] found no .bvec file for this diffusion series; "
                                "expected sub-01_dwi.bvec beside it (upload the series, its .bval and its .bvec together).")
    assert (found.value.source, found.value.field) == ("sub-01_dwi.nii.gz", "bvec")
    with pytest.raises(InputError) as found:
        diffusion_companions("sub-01_dwi.nii.gz", ["a.bval", "b.bval", "sub-01_dwi.bvec"])
    assert str(found.value) == ("sub-01_dwi.nii.gz: [bval] found 2 .bval files (a.bval, b.bval) and cannot tell which belongs to "
                                "this diffusion series; expected exactly one, or one named sub-01_dwi.bval.")
    with pytest.raises(InputError) as found:
        diffusion_companions("s.nii", ["s.bval", "s.bvec", "s.bvecs"])
    assert str(found.value) == ("s.nii: [bvec] found 2 .bvec files (s.bvec, s.bvecs) and cannot tell which belongs to "
                                "this diffusion series; expected exactly one, or one named s.bvec.")


# ---------------------------------------------------------------- the generator's DTI features


def test_synthetic_fa_map_through_nifti_gives_the_generators_features():
    from core.synth.config import CohortConfig
    from core.synth.fa_phantom import fa_volume
    from core.synth.latents import fa_parameters

    cohort = synthetic_cohort()
    config = CohortConfig.from_dict(cohort.provenance["config"])
    latents = cohort.ground_truth.latents
    columns = [c for c in cohort.features.columns if c.startswith("dti.")]
    for pid in cohort.patients.index[:3]:
        params = fa_parameters(latents.loc[pid], config)
        raw = nifti_bytes(fa_volume(params), load_anatomy().affine, compress=True)
        mni = to_mni(read_nifti(raw, f"{pid}_FA.nii.gz"))
        row = dti_feature_row(mni.data, latents.at[pid, "affected_hemisphere"], pid)
        assert list(row.columns) == columns
        np.testing.assert_allclose(row.loc[pid].to_numpy(dtype=float), cohort.features.loc[pid, columns].to_numpy(dtype=float), rtol=1e-6)


def test_dti_feature_row_checks_grid_and_hemisphere():
    with pytest.raises(InputError, match=r"^fa\.nii: \[dim\] FA volume has shape \(10, 10, 10\); expected the MNI152 2 mm grid"):
        dti_feature_row(np.zeros((10, 10, 10)), "left", "P1", source="fa.nii")
    with pytest.raises(InputError, match=r"affected hemisphere must be 'left' or 'right', found 'up'"):
        dti_feature_row(np.zeros(load_anatomy().shape), "up", "P1", source="fa.nii")


# ---------------------------------------------------------------- bad input


def test_bval_count_not_matching_the_volumes(dipy_files):
    nii, bval, bvec = _set(dipy_files, "small_64D", ".nii")
    short_bval = " ".join(bval.read_text().split()[:64]).encode()
    with pytest.raises(InputError, match=r"^small_64D\.bval: lists 64 b-values but small_64D\.nii holds 65 volumes; expected one b-value per volume"):
        read_diffusion(nii, short_bval, bvec, names=(None, "small_64D.bval", None))
    rows = bvec.read_text().strip().splitlines()
    with pytest.raises(InputError, match=r"^small_64D\.bvec: lists 66 gradient directions but small_64D\.nii holds 65 volumes"):
        read_diffusion(nii, bval, "\n".join(rows + rows[-1:]).encode(), names=(None, None, "small_64D.bvec"))


def test_3d_image_given_as_the_diffusion_series(dipy_files):
    _, bval, bvec = _set(dipy_files, "small_64D", ".nii")
    fa = nifti_bytes(np.ones((10, 10, 10)), np.diag([2.0, 2, 2, 1]))
    with pytest.raises(InputError, match=r"^sub-01_FA\.nii: \[dim\] expected a 4-D diffusion series \(x, y, z, volumes\), found a 3-D image of shape \(10, 10, 10\)"):
        read_diffusion(fa, bval, bvec, names=("sub-01_FA.nii", None, None))


def test_bad_gradient_tables(dipy_files):
    nii, bval, bvec = _set(dipy_files, "small_25", ".nii.gz")
    values = bval.read_text().split()
    with pytest.raises(InputError, match=r"^x\.bval: \[line 1\] line 1: expected numbers separated by spaces, found 'b=1000'"):
        read_bvals(("0 b=1000 " + " ".join(values[2:])).encode(), "x.bval")
    with pytest.raises(InputError, match=r"no b = 0 volume \(b <= 50 s/mm²\)"):
        read_diffusion(nii, " ".join(["2000"] * 26).encode(), bvec)
    collinear = "\n".join(" ".join(["1"] * 26) if axis == 0 else " ".join(["0"] * 26) for axis in range(3)).encode()
    with pytest.raises(InputError, match="span fewer than 6 independent tensor components"):
        read_diffusion(nii, bval, collinear)
    with pytest.raises(InputError, match=r"found a negative b-value \(-5\)"):
        read_bvals(b"0 -5 1000")


# ---------------------------------------------------------------- property test


def _small_25(dipy_files_path):
    return tuple(p.read_bytes() for p in _set(dipy_files_path, "small_25", ".nii.gz"))


def _dipy_files_path():
    import dipy.data

    return pathlib.Path(dipy.data.__file__).parent / "files"


_NII, _BVAL, _BVEC = _small_25(_dipy_files_path())


@FUZZ
@given(st.one_of(
    mutated(_NII).map(lambda b: (b, _BVAL, _BVEC)),
    text_mutated(_BVAL.decode()).map(lambda b: (_NII, b, _BVEC)),
    text_mutated(_BVEC.decode()).map(lambda b: (_NII, _BVAL, b)),
))
def test_malformed_diffusion_sets_give_only_input_errors(files):
    def read_and_fit(parts):
        fit_tensor(read_diffusion(*parts, names=("fuzz_dwi.nii.gz", "fuzz.bval", "fuzz.bvec")))

    assert_only_input_error(read_and_fit, files)
