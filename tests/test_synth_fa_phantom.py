import numpy as np
import pytest

from core.anatomy import load_anatomy
from core.errors import InputError
from core.features.dti import dti_features_from_volume
from core.synth import fa_phantom as dti


@pytest.fixture(scope="module")
def anatomy():
    return load_anatomy()


def stroke_params(**overrides):
    base = dict(noise_key=1234, wm_scale=1.0, offset=0.0, affected_hemisphere="left", lesion_center_mm=(-25.0, -16.0, 20.0), lesion_radii_mm=(8.0, 10.0, 9.0), transection=0.8)
    return dti.FAParameters(**{**base, **overrides})


def test_cst_tracts_are_exact_mirrors(anatomy):
    left = anatomy.voxel_mm(anatomy.cst_index["left"])
    right = anatomy.voxel_mm(anatomy.cst_index["right"])
    np.testing.assert_array_equal(left[:, 0], -right[:, 0])
    np.testing.assert_array_equal(left[:, 1:], right[:, 1:])
    assert 1000 < len(left) < 3000


def test_features_from_the_voxels_they_read_equal_features_of_the_full_volume(anatomy):
    params = stroke_params()
    from_subset = dti.dti_features_for(params, anatomy)
    from_volume = dti_features_from_volume(dti.fa_volume(params, anatomy), "left", anatomy)
    for key in from_subset:
        assert from_subset[key] == from_volume[key], key


def test_lesion_load_is_recovered_and_a_healthy_brain_is_symmetric(anatomy):
    params = stroke_params()
    true_load, transection = dti.true_cst_lesion(params, anatomy)
    measured = dti.dti_features_for(params, anatomy)
    assert true_load > 1.0
    assert measured["cst_lesion_load_ml"] == pytest.approx(true_load, rel=0.15)
    assert measured["cst_fa_asymmetry"] > 0.05
    healthy = dti.dti_features_for(stroke_params(lesion_center_mm=None, lesion_radii_mm=None, transection=0.0), anatomy)
    assert healthy["cst_lesion_load_ml"] == 0.0
    assert abs(healthy["cst_fa_asymmetry"]) < 0.01
    assert 0.5 < healthy["cst_fa_affected"] < 0.7  # the CST is among the most anisotropic tracts


def test_fa_stays_within_its_physical_range(anatomy):
    volume = dti.fa_volume(stroke_params(noise_scale=3.0, offset=0.05), anatomy)
    assert volume.min() >= 0.0 and volume.max() <= 1.0
    assert volume[~anatomy.brain_mask].max() == 0.0


def test_noise_depends_only_on_patient_and_voxel():
    idx = np.array([5, 17, 400_000])
    np.testing.assert_array_equal(dti.voxel_noise(9, idx), dti.voxel_noise(9, np.arange(400_001))[idx])
    assert not np.allclose(dti.voxel_noise(9, idx), dti.voxel_noise(10, idx))
    sample = dti.voxel_noise(3, np.arange(200_000))
    assert abs(sample.mean()) < 0.01 and sample.std() == pytest.approx(1.0, abs=0.01)


def test_bad_volumes_are_refused_with_clear_messages(anatomy):
    with pytest.raises(InputError, match=r"FA volume has shape \(10, 10, 10\); expected the MNI152 2 mm grid \(99, 117, 95\)"):
        dti_features_from_volume(np.zeros((10, 10, 10)), "left", anatomy)
    volume = np.full(anatomy.shape, 0.4)
    volume[tuple(np.unravel_index(anatomy.cst_index["left"][0], anatomy.shape))] = np.nan
    with pytest.raises(InputError, match="affected CST FA contains NaN or infinite voxels"):
        dti_features_from_volume(volume, "left", anatomy)
    with pytest.raises(InputError, match="affected hemisphere must be 'left' or 'right', found 'up'"):
        dti_features_from_volume(volume, "up", anatomy)
