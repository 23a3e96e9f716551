"""Decompression bombs are refused at their header, in bounded memory.

2 GiB gzip bombs (built on the fly, ~2 MB each) named like the files a clinic uploads: zeros named
``.nii.gz``, a valid NIfTI header declaring a small image followed by 2 GiB of zeros, a header
declaring an absurd image, a header declaring a 2 GiB image that 2 MB cannot hold, and the same for
``.edf.gz``. Each must raise the InputError that says why; the memory it costs is measured in a
subprocess (peak resident set above the peak before reading) and must stay under 100 MB, and
under 250 MB for ten read at once from ten threads. Timings are not asserted here: they are in
``python -m tests.bench_fuzz``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.io.emg import read_edf, read_emg
from core.io.safety import MAX_PLAUSIBLE_RATIO, GzipStream, UploadTree, read_declared
from core.io.volumes import nifti_declared_size, read_nifti
from tests.bomb_support import GiB, MiB, absurd_nifti_header, edf_header, gzip_bomb, nifti_header

# name -> (head before the zeros, reader, message the InputError must match)
BOMBS = {
    "zeros.nii.gz": (b"", "nifti", r"^zeros\.nii\.gz: \[magic\] not a NIfTI file: expected the magic bytes 'n\+1'.* found bytes 00 00 00 00"),
    "small_header.nii.gz": (
        nifti_header((8, 8, 8)),
        "nifti",
        r"^small_header\.nii\.gz: \[header\] decompresses to more than the 2400 bytes its header declares \(over 1\.0 MB more were found\); "
        r"this looks like a decompression bomb behind a valid header",
    ),
    "absurd_header.nii.gz": (
        absurd_nifti_header(),
        "nifti",
        r"^absurd_header\.nii\.gz: \[dim\] the image has 27000000000000 voxels \(shape \(30000, 30000, 30000\)\); at most 536870912 are accepted",
    ),
    "huge_header.nii.gz": (
        nifti_header((1024, 1024, 511)),
        "nifti",
        r"^huge_header\.nii\.gz: \[header\] its header declares 2044\.0 MB of data, 10\d\d times its compressed size of 2\.0 MB; "
        r"no scan or recording compresses better than 100:1",
    ),
    "emg.edf.gz": (
        edf_header(n_records=1, samples_per_record=1000),
        "edf",
        r"^emg\.edf\.gz: \[header\] decompresses to more than the 2512 bytes its header declares",
    ),
}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    return {name: gzip_bomb(folder / name, 2 * GiB, head) for name, (head, _, _) in BOMBS.items()}


def _read(kind, path, name):
    return read_nifti(path, name, dims="any") if kind == "nifti" else read_edf(path, name)


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_2_gib_bomb_is_refused_at_its_header(bombs, name):
    head, kind, message = BOMBS[name]
    assert bombs[name].stat().st_size < 2_200_000  # 2 GiB of output in ~2 MB
    with pytest.raises(InputError, match=message) as info:
        _read(kind, bombs[name], name)
    assert info.value.source == name


_MEMORY_PROBE = r"""
import json, resource, sys, threading
from core.errors import InputError
from core.io.emg import read_edf
from core.io.volumes import read_nifti
from tests.io_support import nifti_bytes
import numpy as np

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

cases = json.loads(sys.argv[1])
read_nifti(nifti_bytes(np.ones((8, 8, 8)), np.eye(4)), "warm.nii")  # imports and first-call caches
out = {}
for name, kind, path in cases:
    before = rss_mb()
    try:
        (read_nifti(path, name, dims="any") if kind == "nifti" else read_edf(path, name))
        out[name] = {"refused": False}
    except InputError:
        out[name] = {"refused": True, "extra_mb": rss_mb() - before}
errors = []
def one(name, kind, path):
    try:
        (read_nifti(path, name, dims="any") if kind == "nifti" else read_edf(path, name))
        errors.append("read " + name)
    except InputError:
        pass
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=one, args=cases[i % len(cases)]) for i in range(10)]
before = rss_mb()
for t in threads: t.start()
for t in threads: t.join()
out["ten_at_once"] = {"extra_mb": rss_mb() - before, "errors": errors}
print(json.dumps(out))
"""


def test_bombs_cost_under_100_mb_each_and_ten_at_once_stay_bounded(bombs):
    cases = [[name, kind, str(bombs[name])] for name, (_, kind, _) in BOMBS.items()]
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(cases)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for name in BOMBS:
        assert result[name]["refused"], name
        assert result[name]["extra_mb"] < 100, (name, result[name])
    assert result["ten_at_once"]["errors"] == []
    assert result["ten_at_once"]["extra_mb"] < 250, result["ten_at_once"]


def test_a_bomb_inside_a_zip_upload_is_refused_at_its_header():
    # A .nii entry deflated inside the zip: the entry is streamed, its header judged, then its size.
    from core.io.upload import _nifti_entry

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("participants.tsv", "participant_id\timprovement\nsub-01\t40\n")
        with archive.open("sub-01/sub-01_FA.nii", "w", force_zip64=True) as entry:
            entry.write(nifti_header((8, 8, 8)))
            for _ in range(64):
                entry.write(bytes(MiB))
    tree = UploadTree.open(buffer.getvalue(), "cohort.zip")
    with pytest.raises(InputError, match=r"^sub-01/sub-01_FA\.nii: \[header\] decompresses to more than the 2400 bytes its header declares"):
        _nifti_entry(tree, "sub-01/sub-01_FA.nii", "3d")
    # The declared size was spent from the upload's budget, not the 64 MiB of zeros.
    assert tree.limits.max_decompressed_bytes - tree.budget.left < 2 * MiB


def test_declared_size_is_spent_first_and_a_short_stream_comes_back_short():
    import gzip

    from core.io.safety import Budget, UploadLimits

    raw = gzip.compress(nifti_header((16, 16, 16)) + bytes(100))
    loaded = read_declared(GzipStream(raw, "t.nii.gz").read, "t.nii.gz", lambda head: nifti_declared_size(head, "t.nii.gz"))
    assert loaded.declared == 352 + 16**3 * 4
    assert len(loaded.data) == 452  # what the stream held; the reader reports the truncation
    budget = Budget(UploadLimits(max_decompressed_bytes=100_000))
    read_declared(GzipStream(raw, "t.nii.gz").read, "t.nii.gz", lambda head: nifti_declared_size(head, "t.nii.gz"), budget=budget)
    assert budget.left == 100_000 - 452  # the promised 16736 bytes are not kept from the other files
    with pytest.raises(InputError, match=r"^t\.nii\.gz: \[vox_offset\] the file is truncated: its header promises 16384 bytes of voxel data from byte 352, but the file holds 452 bytes"):
        read_nifti(raw, "t.nii.gz")
    budget = Budget(UploadLimits(max_decompressed_bytes=10_000))
    with pytest.raises(InputError, match=r"decompresses to more than the 10000 bytes allowed for one upload"):
        read_declared(GzipStream(raw, "t.nii.gz").read, "t.nii.gz", lambda head: nifti_declared_size(head, "t.nii.gz"), budget=budget)


def test_plausible_ratio_rule_spares_small_and_real_files():
    # A 2 MiB image of zeros compresses ~1000:1, but is under the floor: read as it is.
    raw = gzip_compress_nifti(np.zeros((128, 64, 64), np.float32))
    assert 2 * MiB / len(raw) > MAX_PLAUSIBLE_RATIO
    volume = read_nifti(raw, "zeros_fa.nii.gz")
    assert volume.shape == (128, 64, 64) and float(volume.data.max()) == 0.0


def gzip_compress_nifti(data):
    from tests.io_support import nifti_bytes

    return nifti_bytes(data, np.diag([2.0, 2, 2, 1]), compress=True)


def test_gzipped_edf_reads_like_the_edf(tmp_path):
    import gzip

    from tests.io_support import write_edf

    rng = np.random.default_rng(0)
    signal = rng.normal(0, 50, 2000)
    path = write_edf(tmp_path / "r.edf", {"EMG FDI": signal}, 1000.0)
    plain = read_edf(path)
    packed = read_emg(gzip.compress(path.read_bytes()), "r.edf.gz")
    np.testing.assert_array_equal(packed.channels["EMG FDI"], plain.channels["EMG FDI"])
    assert packed.fs_hz == plain.fs_hz == {"EMG FDI": 1000.0}
    from core.io.upload import classify_file

    assert classify_file("sub-01/emg/sub-01_emg.edf.gz") == classify_file("P01_tms.BDF.GZ") == "emg"
    longer = gzip.compress(path.read_bytes() + b"x" * 10)
    with pytest.raises(InputError, match=r"^r\.edf\.gz: \[file size\] the file is longer than its header says"):
        read_emg(longer, "r.edf.gz")


def test_a_gradient_file_bomb_inside_a_zip_stops_at_1_mib():
    from core.io.upload import MAX_GRADIENT_FILE_BYTES

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("sub-01/dwi/sub-01_dwi.bval", "w", force_zip64=True) as entry:
            for _ in range(32):
                entry.write(b" " * MiB)
    tree = UploadTree.open(buffer.getvalue(), "cohort.zip")
    with pytest.raises(InputError, match=r"^sub-01/dwi/sub-01_dwi\.bval: the file holds more than 1\.0 MB; a file of this kind is far smaller"):
        tree.read("sub-01/dwi/sub-01_dwi.bval", max_bytes=MAX_GRADIENT_FILE_BYTES)
    assert tree.limits.max_decompressed_bytes - tree.budget.left == 0


def test_gzip_stream_reads_members_padding_and_refuses_trailing_bytes():
    import gzip
    import os

    from core.io.safety import gunzip_capped

    payload = os.urandom(300_000)  # incompressible: the input spans several 64 KiB pieces
    data = gzip.compress(payload) + gzip.compress(b"tail")
    stream = GzipStream(data + bytes(5000), "x.gz")  # zero padding after the last member is legal
    pieces = []
    while chunk := stream.read(70_001):
        assert len(chunk) <= 70_001
        pieces.append(chunk)
    assert b"".join(pieces) == payload + b"tail"
    with pytest.raises(InputError, match=r"^x\.gz: unexpected bytes after the end of the gzip stream"):
        gunzip_capped(data + bytes(70_000) + b"junk", "x.gz")
    with pytest.raises(InputError, match=r"^x\.gz: the gzip stream is truncated: it ends after 200000 compressed bytes"):
        gunzip_capped(data[:200_000], "x.gz")


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=4), st.integers(1, 5000), st.integers(0, 3))
def test_gzip_stream_equals_gzip_decompress_for_any_members_and_read_size(members, read_size, padding):
    import gzip

    data = b"".join(gzip.compress(m * 50, compresslevel=1) for m in members)
    stream = GzipStream(data + bytes(padding), "x.gz")
    pieces = []
    while chunk := stream.read(read_size):
        pieces.append(chunk)
    assert b"".join(pieces) == gzip.decompress(data)


def test_an_edf_bomb_inside_a_zip_upload_is_refused_at_its_header():
    from core.io.upload import _emg_entry

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("sub-01/emg/sub-01_emg.edf", "w", force_zip64=True) as entry:
            entry.write(edf_header(n_records=1, samples_per_record=1000))
            for _ in range(64):
                entry.write(bytes(MiB))
    tree = UploadTree.open(buffer.getvalue(), "cohort.zip")
    with pytest.raises(InputError, match=r"^sub-01/emg/sub-01_emg\.edf: \[header\] decompresses to more than the 2512 bytes its header declares"):
        _emg_entry(tree, "sub-01/emg/sub-01_emg.edf")
