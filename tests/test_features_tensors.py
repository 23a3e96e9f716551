"""core.features.tensors: each patient's raw data as fixed-size arrays, and their cache in the workspace."""

from dataclasses import replace

import numpy as np
import pytest

from core.errors import InputError
from core.features.tensors import FA_CROP_SHAPE, MEP_SHAPE, REACH_SHAPE, VOLUNTARY_SHAPE, fa_crop, fa_crop_index, inputs_from_raw, mep_tensor, reach_tensor, voluntary_tensor
from core.store.workspace import Workspace, fusion_inputs_key


def test_the_fa_crop_averages_2mm_voxels_into_4mm_ones_around_both_tracts():
    from core.anatomy import load_anatomy

    volume = np.random.default_rng(0).random((99, 117, 95)).astype(np.float32)
    crop = fa_crop(volume)
    assert crop.shape == FA_CROP_SHAPE == (24, 11, 28)
    np.testing.assert_allclose(crop[0, 0, 0], volume[25:27, 45:47, 16:18].mean(), rtol=1e-6)
    np.testing.assert_array_equal(fa_crop(volume.ravel()[fa_crop_index()]), crop)
    anatomy = load_anatomy()
    both = set(anatomy.cst_index["left"]) | set(anatomy.cst_index["right"])
    assert both <= set(fa_crop_index())  # every voxel of both CSTs is inside the crop
    with pytest.raises(InputError, match=r"expected FA on the MNI152 2 mm grid"):
        fa_crop(np.zeros((10, 10, 10)))


def test_signals_are_brought_to_one_grid_whatever_their_rate():
    rng = np.random.default_rng(1)
    sweeps = rng.normal(size=(2, 10, 200))
    at_2k = mep_tensor(sweeps, 2000.0, -20.0, ("fdi", "ecr"))
    assert at_2k.shape == MEP_SHAPE
    np.testing.assert_allclose(at_2k[0], sweeps[0].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(at_2k[3], sweeps[1].std(axis=0), atol=1e-5)
    # The same sweeps at 4 kHz (every other sample interpolated) land on the same 2 kHz grid.
    fine = np.stack([[np.interp(np.arange(399) / 2, np.arange(200), trial) for trial in muscle] for muscle in sweeps])
    np.testing.assert_allclose(mep_tensor(fine, 4000.0, -20.0, ("FDI", "ECR")), at_2k, atol=1e-5)
    with pytest.raises(InputError, match=r"EMG lacks muscle\(s\) \['ecr'\]"):
        mep_tensor(sweeps, 2000.0, -20.0, ("fdi", "apb"))
    burst = np.zeros((2, 6000))
    burst[:, 3000:5000] = rng.normal(size=(2, 2000))
    np.testing.assert_array_equal(voluntary_tensor(burst, 2000.0, ("fdi", "ecr")), burst[:, 3000:5000].astype(np.float32))
    assert voluntary_tensor(burst, 2000.0, ("fdi", "ecr")).shape == VOLUNTARY_SHAPE
    t = np.arange(300) / 100.0
    line = np.stack([100 * t, 0 * t, 0 * t], axis=1) + 5.0
    reach = reach_tensor(line, 100.0)
    assert reach.shape == REACH_SHAPE
    np.testing.assert_allclose(reach[0], np.linspace(0, 299, 512))  # position from the first sample, mm
    np.testing.assert_allclose(reach[3], 0.1, atol=1e-6)  # 100 mm/s = 0.1 m/s


def test_the_synthetic_batch_path_equals_the_one_patient_path_and_masks_missing_modalities(small_cohort):
    ids = list(small_cohort.patients.index[:30])
    fast = small_cohort.raw.fusion_inputs(ids)
    slow = inputs_from_raw([small_cohort.raw_data(p) for p in ids])
    for name in ("fa", "mep", "voluntary", "reach"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    availability = small_cohort.modality_availability().loc[ids]
    for modality in ("dti", "emg", "kin"):
        np.testing.assert_array_equal(fast.mask[modality], availability[modality].to_numpy())
        assert not fast.mask[modality].all() or modality == "kin"  # some patients lack it
    absent = ~fast.mask["dti"]
    assert absent.any() and not fast.fa[absent].any()  # zeros and a mask, never a made-up map


def test_the_cache_is_built_in_chunks_resumed_and_rebuilt_for_another_cohort(small_cohort, tmp_path):
    ws = Workspace(tmp_path)
    calls = []
    built = ws.fusion_inputs(small_cohort, chunk_size=100, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (3, 3) and list(built.patient_ids) == list(small_cohort.patients.index)
    folder = tmp_path / "tensors" / fusion_inputs_key(small_cohort)
    assert sorted(p.name for p in folder.iterdir()) == ["chunk_0000.npz", "chunk_0001.npz", "chunk_0002.npz"]
    (folder / "chunk_0001.npz").unlink()  # as if stopped after the first chunk: resumes, rebuilds only that one
    with pytest.raises(InputError, match="stopped after 1 of 3 chunks"):
        ws.fusion_inputs(small_cohort, chunk_size=100, should_stop=lambda: True)
    again = ws.fusion_inputs(small_cohort, chunk_size=100)
    np.testing.assert_array_equal(again.fa, built.fa)
    changed = replace(small_cohort, outcomes=small_cohort.outcomes.assign(responder=~small_cohort.outcomes["responder"]))
    assert fusion_inputs_key(changed) != fusion_inputs_key(small_cohort)  # another cohort, another cache
    with pytest.raises(InputError, match="no raw data"):
        ws.fusion_inputs(replace(small_cohort, raw=None))
