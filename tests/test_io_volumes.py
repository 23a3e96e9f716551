"""NIfTI volumes: nibabel's shipped test images, round trips, the MNI grid, registration, bad input."""

import gzip
import os
import time

import numpy as np
import pytest
from hypothesis import given

from core.anatomy import load_anatomy
from core.errors import InputError
from core.io.volumes import normalised_mutual_information, read_nifti, register_to_mni, to_mni
from tests.io_support import FUZZ, assert_only_input_error, mutated, nifti_bytes


@pytest.fixture(scope="module")
def nibabel_data():
    from nibabel.testing import data_path

    return data_path


# ---------------------------------------------------------------- real files shipped with nibabel


def test_nibabel_example4d_nifti1_gz(nibabel_data):
    volume = read_nifti(os.path.join(nibabel_data, "example4d.nii.gz"), dims="any")
    assert volume.shape == (128, 96, 24, 2)
    assert volume.nifti_version == 1
    assert volume.orientation == "LAS"
    assert volume.space == "scanner"
    np.testing.assert_allclose(volume.voxel_size_mm, (2.0, 2.0, 2.2), atol=1e-5)
    np.testing.assert_allclose(volume.affine[:3, 3], (117.8551, -35.7229, -7.2488), atol=1e-3)
    assert volume.data.dtype == np.float32 and float(volume.data.max()) == 1162.0
    assert [e.status for e in volume.report] == ["ok", "warning"]  # oblique by 9.3 degrees
    assert "oblique acquisition (9.3 degrees" in volume.report[1].message


def test_nibabel_example_nifti2(nibabel_data):
    volume = read_nifti(os.path.join(nibabel_data, "example_nifti2.nii.gz"), dims="4d")
    assert volume.nifti_version == 2
    assert volume.shape == (32, 20, 12, 2)
    assert float(volume.data[10, 10, 6, 0]) == 432.0
    assert volume.report[0].message.startswith("NIfTI-2, 32 x 20 x 12 x 2 voxels of 2 x 2 x 2.2 mm, orientation LAS")


def test_nibabel_big_endian_anatomical(nibabel_data):
    volume = read_nifti(os.path.join(nibabel_data, "anatomical.nii"))
    assert volume.shape == (33, 41, 25)
    assert volume.space == "aligned"
    np.testing.assert_array_equal(volume.affine, [[-2, 0, 0, 32], [0, 2, 0, -40], [0, 0, 2, -16], [0, 0, 0, 1]])
    assert float(volume.data.max()) == 30393.0 and float(volume.data.min()) == -610.0


def test_a_4d_series_where_one_volume_is_needed(nibabel_data):
    with pytest.raises(InputError, match=r"^example4d\.nii\.gz: \[dim\] expected a 3-D image \(one volume\), found a 4-D series of 2 volumes"):
        read_nifti(os.path.join(nibabel_data, "example4d.nii.gz"))


# ---------------------------------------------------------------- round trips and the MNI grid


def test_fa_map_on_the_mni_grid_round_trips_exactly():
    anatomy = load_anatomy()
    fa = (anatomy.wm_probability * 0.6).astype(np.float32)
    for compress in (False, True):
        volume = read_nifti(nifti_bytes(fa, anatomy.affine, compress=compress), "fa.nii.gz" if compress else "fa.nii")
        assert volume.space == "mni" and volume.orientation == "RAS"
        mni = to_mni(volume)
        assert mni.method == "identity" and mni.coverage == 1.0 and not mni.needs_review
        np.testing.assert_array_equal(mni.data, fa)


def test_one_mm_mni_image_is_resampled_onto_the_2mm_grid():
    from nilearn import datasets

    anatomy = load_anatomy()
    template_1mm = datasets.load_mni152_template(resolution=1)
    data = np.asarray(template_1mm.get_fdata(), np.float32)
    volume = read_nifti(nifti_bytes(data, template_1mm.affine, code=2), "t1_1mm.nii")
    assert volume.shape == (197, 233, 189) and volume.space == "aligned"
    mni = to_mni(volume)  # decided MNI from the grid, despite sform code 2
    assert mni.method == "resampled" and mni.data.shape == (99, 117, 95)
    assert "known MNI grid (197 x 233 x 189)" in " ".join(e.message for e in mni.report)
    r = np.corrcoef(mni.data[anatomy.brain_mask], anatomy.template[anatomy.brain_mask])[0, 1]
    assert r > 0.999


def test_mni_image_covering_too_little_of_the_brain():
    anatomy = load_anatomy()
    affine = anatomy.affine.copy()
    with pytest.raises(InputError, match=r"^slab\.nii: \[space\] the image covers only 5% of the MNI brain; expected an MNI-space image"):
        to_mni(read_nifti(nifti_bytes(np.ones((99, 117, 15), np.float32), affine), "slab.nii"))


def test_registration_recovers_a_known_rigid_misalignment():
    """A native image made by moving the template 8 / -5 / 10 degrees and 6 / -9 / 5 mm, on a
    2.5 mm grid: registration must bring the corticospinal tract back within 1.5 mm."""
    import nibabel as nib
    from nilearn.image import resample_img
    from scipy.spatial.transform import Rotation

    anatomy = load_anatomy()
    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_euler("xyz", [8, -5, 10], degrees=True).as_matrix()
    truth[:3, 3] = [6, -9, 5]
    native_affine = np.diag([2.5, 2.5, 2.5, 1.0])
    native_affine[:3, 3] = [-90, -120, -75]
    moved = resample_img(nib.Nifti1Image(anatomy.template, truth @ anatomy.affine), target_affine=native_affine,
                         target_shape=(72, 88, 70), interpolation="linear", force_resample=True, copy_header=True)
    volume = read_nifti(nifti_bytes(np.asarray(moved.get_fdata(), np.float32), native_affine, code=1), "t1_native.nii")
    assert volume.space == "scanner"
    start = time.perf_counter()
    mni = to_mni(volume)
    seconds = time.perf_counter() - start
    assert mni.method == "registered" and mni.needs_review
    registration = mni.registration
    cst = anatomy.voxel_mm(anatomy.cst_index["right"])
    found = cst @ registration.transform[:3, :3].T + registration.transform[:3, 3]
    expected = cst @ truth[:3, :3].T + truth[:3, 3]
    assert np.linalg.norm(found - expected, axis=1).max() < 1.5
    assert registration.similarity > 1.2  # normalised mutual information: 1 unrelated, 2 identical
    assert registration.template.shape == registration.registered.shape == (99, 117, 95)
    assert any(e.status == "warning" and "check the overlay" in e.message for e in mni.report)
    assert seconds < 15


def test_registration_refuses_a_small_field_of_view():
    volume = read_nifti(nifti_bytes(np.random.default_rng(0).random((10, 10, 10)), np.diag([2.0, 2, 2, 1]), code=1), "tiny.nii")
    with pytest.raises(InputError, match=r"^tiny\.nii: \[dim\] the field of view is \[20, 20, 20\] mm; registration .* needs at least 60 mm"):
        register_to_mni(volume)


def test_normalised_mutual_information_bounds():
    a = np.random.default_rng(1).random(10000)
    assert normalised_mutual_information(a, a) == pytest.approx(2.0)
    assert normalised_mutual_information(a, np.random.default_rng(2).random(10000)) < 1.05


# ---------------------------------------------------------------- bad input, one message each


def _small(compress=False, **kw):
    return nifti_bytes(np.arange(512, dtype=np.float32).reshape(8, 8, 8) / 512, np.diag([2.0, 2, 2, 1]), compress=compress, **kw)


def test_truncated_gzip_nifti():
    data = _small(compress=True)
    with pytest.raises(InputError, match=r"^fa\.nii\.gz: the gzip stream is truncated") as info:
        read_nifti(data[: len(data) // 2], "fa.nii.gz")
    assert info.value.source == "fa.nii.gz"


def test_wrong_magic_bytes():
    data = bytearray(_small())
    data[344:348] = b"xx1\x00"
    with pytest.raises(InputError, match=r"^fa\.nii: \[magic\] not a NIfTI file: expected the magic bytes 'n\+1'"):
        read_nifti(bytes(data), "fa.nii")
    with pytest.raises(InputError, match=r"found a DICOM file \(convert it to NIfTI"):
        read_nifti(bytes(128) + b"DICM" + bytes(400), "scan.nii")
    with pytest.raises(InputError, match=r"^fa\.nii\.gz: expected gzip data \(magic bytes 1f 8b\)"):
        read_nifti(_small(), "fa.nii.gz")


def test_3d_image_where_4d_is_needed():
    with pytest.raises(InputError, match=r"^fa\.nii: \[dim\] expected a 4-D diffusion series \(x, y, z, volumes\), found a 3-D image of shape \(8, 8, 8\)"):
        read_nifti(_small(), "fa.nii", dims="4d")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_voxels(bad):
    data = np.ones((8, 8, 8), np.float32)
    data[1, 2, 3] = bad
    data[4, 4, 4] = bad
    with pytest.raises(InputError, match=r"^fa\.nii: \[voxels\] found 2 NaN or infinite voxels out of 512; expected finite values"):
        read_nifti(nifti_bytes(data, np.diag([2.0, 2, 2, 1])), "fa.nii")


def test_truncated_voxel_data_and_broken_affine():
    data = _small()
    with pytest.raises(InputError, match=r"\[vox_offset\] the file is truncated: its header promises 2048 bytes of voxel data from byte 352, but the file holds 1352 bytes"):
        read_nifti(data[:1352], "fa.nii")
    with pytest.raises(InputError, match=r"\[pixdim\] voxel sizes of \[500\.0, 2\.0, 2\.0\] mm are implausible"):
        read_nifti(nifti_bytes(np.ones((8, 8, 8)), np.diag([500.0, 2, 2, 1])), "fa.nii")


def test_gzip_bomb_in_a_nifti():
    from core.io.safety import UploadLimits

    # Zeros: refused at the header (no magic), whatever the cap.
    bomb = gzip.compress(bytes(20 * 2**20), compresslevel=9)
    with pytest.raises(InputError, match=r"^bomb\.nii\.gz: \[magic\] not a NIfTI file"):
        read_nifti(bomb, "bomb.nii.gz", limits=UploadLimits(max_decompressed_bytes=5 * 2**20))
    # A valid header declaring an 8 MB image: the declared size is spent from the budget first.
    big = nifti_bytes(np.zeros((128, 128, 128), np.float32), np.diag([2.0, 2, 2, 1]), compress=True)
    with pytest.raises(InputError, match=r"^bomb\.nii\.gz: decompresses to more than the 5\.0 MB allowed for one upload"):
        read_nifti(big, "bomb.nii.gz", limits=UploadLimits(max_decompressed_bytes=5 * 2**20))


# ---------------------------------------------------------------- property tests


_SEED = _small()
_SEED_GZ = _small(compress=True)


@FUZZ
@given(mutated(_SEED, hot=400))
def test_malformed_nifti_gives_only_input_errors(data):
    assert_only_input_error(lambda raw: read_nifti(raw, "fuzz.nii", dims="any"), data)


@FUZZ
@given(mutated(_SEED_GZ))
def test_malformed_nifti_gz_gives_only_input_errors(data):
    assert_only_input_error(lambda raw: read_nifti(raw, "fuzz.nii.gz"), data)
