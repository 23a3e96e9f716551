"""Benchmarks of the upload readers (``python -m tests.bench_io``): one JSON line per figure.

Not tests: nothing here asserts a time. Each figure is the median of repeated runs, with a
baseline measured in the same run (the bare library call without the checks) and the ratio.

- ``fa_volume_to_viewer``: a 2 mm FA map (.nii.gz on disk, MNI space) to the viewer-ready
  array on the MNI152 grid: read, gunzip with caps, header and voxel checks, grid check.
  Bar 2 s. Baseline: ``nibabel.load(path).get_fdata()``.
- ``tensor_fit_64_directions``: dipy's ``small_64D`` set (10 x 10 x 10 x 65) read with its
  bval/bvec, checked, tensor fitted, FA and MD maps. Bar 5 s. Baseline: dipy's
  ``gradient_table`` + ``TensorModel(...).fit`` on arrays already in memory.
- ``native_registration``: a 2.5 mm native-space T1 (the template moved by 10 degrees and 11 mm)
  registered to MNI (rigid + affine). No bar; the page shows its progress.
- ``c3d_read_15s`` / ``c3d_read_300s``: a 3-marker C3D recording of 15 s / 300 s at 100 Hz read by
  ``c3d_from_bytes`` (header check, ezc3d in a process of its own, conversion). No bar. Baseline:
  the same ezc3d call (``core.io.c3d.ezc3d_points``) in this process, as before the isolation.
- ``cohort_upload_5_patients``: the 5-patient BIDS-like folder of the upload tests (FA maps, EDF /
  BDF / CSV EMG, C3D / CSV trajectories, one diffusion set) scanned and built into a Cohort.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import tempfile
import time


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _figure(name, seconds, bar, baseline=None, **extra) -> dict:
    row = {"name": name, "seconds": round(seconds, 4), "bar_seconds": bar}
    if baseline is not None:
        row["baseline_seconds"] = round(baseline, 4)
        row["ratio_to_baseline"] = round(seconds / baseline, 2) if baseline > 0 else None
    if bar is not None:
        row["meets_bar"] = seconds <= bar
    row.update(extra)
    return row


def bench_fa_volume(folder: pathlib.Path) -> dict:
    import nibabel as nib
    import numpy as np

    from core.anatomy import load_anatomy
    from core.io.volumes import read_nifti, to_mni
    from core.synth.fa_phantom import FAParameters, fa_volume

    anatomy = load_anatomy()
    fa = fa_volume(FAParameters(noise_key=7, wm_scale=1.0, offset=0.0, affected_hemisphere="left",
                                lesion_center_mm=(-24.0, -14.0, 20.0), lesion_radii_mm=(8.0, 9.0, 8.0), transection=0.6))
    image = nib.Nifti1Image(fa, anatomy.affine)
    image.header.set_sform(anatomy.affine, 4)
    path = folder / "sub-01_desc-FA_dwimap.nii.gz"
    nib.save(image, path)

    def ours():
        mni = to_mni(read_nifti(path))
        assert mni.data.shape == (99, 117, 95)

    ours()  # warm: imports, anatomy
    seconds = median_seconds(ours, 7)
    baseline = median_seconds(lambda: np.asarray(nib.load(path).get_fdata()), 7)
    return _figure("fa_volume_to_viewer", seconds, 2.0, baseline, file_bytes=path.stat().st_size, shape=[99, 117, 95])


def bench_tensor_fit() -> dict:
    import dipy.data
    import nibabel as nib
    import numpy as np
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from core.io.diffusion import fit_tensor, read_diffusion

    files = pathlib.Path(dipy.data.__file__).parent / "files"
    parts = (files / "small_64D.nii", files / "small_64D.bval", files / "small_64D.bvec")

    def ours():
        maps = fit_tensor(read_diffusion(*parts))
        assert maps.fa.shape == (10, 10, 10)

    ours()
    seconds = median_seconds(ours, 7)
    data = np.asarray(nib.load(parts[0]).get_fdata())
    bvals, bvecs = np.loadtxt(parts[1]), np.nan_to_num(np.loadtxt(parts[2]))
    bare = lambda: TensorModel(gradient_table(bvals, bvecs=bvecs, b0_threshold=50)).fit(data).fa  # noqa: E731
    bare()
    baseline = median_seconds(bare, 7)
    return _figure("tensor_fit_64_directions", seconds, 5.0, baseline, volumes=65, voxels=1000)


def bench_registration() -> dict:
    import nibabel as nib
    import numpy as np
    from nilearn.image import resample_img
    from scipy.spatial.transform import Rotation

    from core.anatomy import load_anatomy
    from core.io.volumes import Volume, to_mni

    anatomy = load_anatomy()
    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_euler("xyz", [8, -5, 10], degrees=True).as_matrix()
    truth[:3, 3] = [6, -9, 5]
    affine = np.diag([2.5, 2.5, 2.5, 1.0])
    affine[:3, 3] = [-90, -120, -75]
    moved = resample_img(nib.Nifti1Image(anatomy.template, truth @ anatomy.affine), target_affine=affine, target_shape=(72, 88, 70),
                         interpolation="linear", force_resample=True, copy_header=True)
    volume = Volume(np.asarray(moved.get_fdata(), np.float32), affine, "t1.nii", 1, "scanner", "RAS", (2.5, 2.5, 2.5), [])
    result = {}

    def ours():
        result["mni"] = to_mni(volume)

    seconds = median_seconds(ours, 3)
    registration = result["mni"].registration
    cst = anatomy.voxel_mm(anatomy.cst_index["right"])
    error = np.linalg.norm((cst @ registration.transform[:3, :3].T + registration.transform[:3, 3]) - (cst @ truth[:3, :3].T + truth[:3, 3]), axis=1).max()
    return _figure("native_registration", seconds, None, max_cst_error_mm=round(float(error), 2), similarity=round(registration.similarity, 3))


def bench_c3d(folder: pathlib.Path, seconds_recorded: int) -> dict:
    import numpy as np

    from core.io.c3d import ezc3d_points
    from core.io.kinematics import c3d_from_bytes
    from core.io.writers import write_c3d

    t = np.linspace(0.0, 1.0, 100 * seconds_recorded)
    markers = {"hand": np.c_[t, 2 * t, 3 * t] * 100, "elbow": np.ones((len(t), 3)), "shoulder": np.ones((len(t), 3))}
    raw = write_c3d(folder / f"reach-{seconds_recorded}s.c3d", markers, 100.0).read_bytes()
    c3d_from_bytes("reach.c3d", raw)  # warm: imports
    seconds = median_seconds(lambda: c3d_from_bytes("reach.c3d", raw), 15)
    baseline = median_seconds(lambda: ezc3d_points("reach.c3d", raw), 15)
    return _figure(f"c3d_read_{seconds_recorded}s", seconds, None, baseline, file_bytes=len(raw), note="baseline: ezc3d in this process")


def bench_cohort_upload(folder: pathlib.Path) -> dict:
    from core.io.upload import read_cohort
    from tests.test_io_upload import _make_folder

    root = folder / "cohort"
    _make_folder(root)
    read_cohort(root)  # warm
    result = {}

    def ours():
        result["upload"] = read_cohort(root)

    seconds = median_seconds(ours, 3)
    return _figure("cohort_upload_5_patients", seconds, None, patients=result["upload"].cohort.n_patients,
                   report_entries=len(result["upload"].report))


def bench() -> list[dict]:
    """All figures, one dict each: name, seconds, bar_seconds (None = no bar), extras."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        return [bench_fa_volume(folder), bench_tensor_fit(), bench_registration(), bench_c3d(folder, 15), bench_c3d(folder, 300), bench_cohort_upload(folder)]


if __name__ == "__main__":
    for figure in bench():
        print(json.dumps(figure), flush=True)
