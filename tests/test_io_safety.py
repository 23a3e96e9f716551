"""Upload safety: size caps, gzip and zip bombs, truncated gzip, zip entries escaping the folder, readers that crash."""

import gzip
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from core.errors import InputError
from core.io.report import ReportEntry, attribute, bare_message, report_frame, worst_status
from core.io.safety import Budget, UploadLimits, UploadTree, gunzip_capped, read_source, run_isolated
from tests.io_support import FUZZ, assert_only_input_error, mutated


def _zip(entries: dict, *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---------------------------------------------------------------- gzip


def test_gzip_round_trip_with_two_members():
    data = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 10)
    assert gunzip_capped(data, "x.gz") == b"a" * 1000 + b"b" * 10


def test_truncated_gzip_is_an_input_error_naming_the_file():
    data = gzip.compress(os.urandom(5000))
    with pytest.raises(InputError, match=r"^scan\.nii\.gz: the gzip stream is truncated: it ends after 3000 compressed bytes") as info:
        gunzip_capped(data[:3000], "scan.nii.gz")
    assert info.value.source == "scan.nii.gz"


def test_gzip_bomb_stops_at_the_cap():
    bomb = gzip.compress(bytes(50 * 2**20), compresslevel=9)  # 50 MiB of zeros in ~50 kB
    assert len(bomb) < 100_000
    with pytest.raises(InputError, match=r"decompresses to more than the 10\.0 MB allowed for one upload; this looks like a decompression bomb"):
        gunzip_capped(bomb, "bomb.nii.gz", 10 * 2**20)


def test_corrupt_gzip_and_wrong_magic():
    data = bytearray(gzip.compress(b"hello world" * 100))
    data[20] ^= 0xFF
    with pytest.raises(InputError, match=r"x\.gz: the gzip stream is corrupt"):
        gunzip_capped(bytes(data), "x.gz")
    with pytest.raises(InputError, match=r"expected gzip data \(magic bytes 1f 8b\), found 50 4b"):
        gunzip_capped(b"PK\x03\x04", "x.gz")


# ---------------------------------------------------------------- upload size


def test_upload_cap_for_bytes_paths_and_file_objects(tmp_path):
    limits = UploadLimits(max_upload_bytes=1000)
    path = tmp_path / "big.edf"
    path.write_bytes(bytes(1001))
    for source in (bytes(1001), path, io.BytesIO(bytes(1001))):
        with pytest.raises(InputError, match=r"file is 1001 bytes; the upload limit is 1000 bytes"):
            read_source(source, "big.edf", limits)
    assert read_source(bytes(1000), "ok.edf", limits) == ("ok.edf", bytes(1000))


def test_default_limits_and_environment_override(monkeypatch):
    assert UploadLimits().max_upload_bytes == 2**30  # 1 GiB
    monkeypatch.setenv("NEUROPREDICT_MAX_UPLOAD_MB", "250")
    assert UploadLimits.from_env().max_upload_bytes == 250 * 2**20
    monkeypatch.setenv("NEUROPREDICT_MAX_UPLOAD_MB", "lots")
    with pytest.raises(InputError, match=r"\[NEUROPREDICT_MAX_UPLOAD_MB\] expected a number of MiB, found 'lots'"):
        UploadLimits.from_env()


def test_text_stream_and_unreadable_sources():
    with pytest.raises(InputError, match="expected a binary file object"):
        read_source(io.StringIO("text"), "t.csv")
    with pytest.raises(InputError, match="cannot read the file"):
        read_source("/nonexistent/file.nii", None)


# ---------------------------------------------------------------- zip


@pytest.mark.parametrize("entry", ["../evil.csv", "cohort/../../evil.csv", "/etc/passwd", "C:/windows/evil.csv", "..\\evil.csv"])
def test_zip_entry_escaping_the_folder_is_refused(entry):
    data = _zip({"participants.tsv": "participant_id\nsub-01\n", entry: "x"})
    with pytest.raises(InputError, match=r"^upload\.zip: \[.*\] zip entry .* has a path that escapes the archive's folder") as info:
        UploadTree.open(data, "upload.zip")
    assert info.value.field == entry


def test_zip_symlink_entry_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("sub-01/link")
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(InputError, match="is a symbolic link; links are refused"):
        UploadTree.open(buffer.getvalue(), "links.zip")


def test_zip_bomb_by_declared_size_and_by_lying_headers():
    bomb = _zip({"a.nii": bytes(30 * 2**20)})  # 30 MiB of zeros -> ~30 kB
    limits = UploadLimits(max_decompressed_bytes=10 * 2**20)
    with pytest.raises(InputError, match=r"declare 30\.0 MB uncompressed, more than the 10\.0 MB allowed; this looks like a decompression bomb"):
        UploadTree.open(bomb, "bomb.zip", limits)
    # Headers that lie (claiming 1 kB): zipfile inflates no more than the declared size, and the
    # checksum of that prefix fails, so the entry is refused as damaged.
    liar = bytearray(bomb)
    for marker, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = bytes(liar).index(marker)
        liar[at + offset : at + offset + 4] = (1024).to_bytes(4, "little")
    tree = UploadTree.open(bytes(liar), "liar.zip", limits)
    with pytest.raises(InputError, match=r"^a\.nii: this zip entry is damaged \(Bad CRC-32"):
        tree.read("a.nii")


def test_decompression_budget_is_shared_across_files(tmp_path):
    limits = UploadLimits(max_decompressed_bytes=10 * 2**20 + 1)
    with pytest.raises(InputError, match=r"entries declare 12\.0 MB uncompressed, more than the 10\.0 MB allowed"):
        UploadTree.open(_zip({f"f{i}.bin": bytes(4 * 2**20) for i in range(3)}), "three.zip", limits)
    for i in range(3):
        (tmp_path / f"f{i}.bin").write_bytes(bytes(4 * 2**20))
    tree = UploadTree.open(tmp_path, limits=limits)
    tree.read("f0.bin")
    tree.read("f1.bin")
    with pytest.raises(InputError, match=r"^f2\.bin: decompresses to more than the 2\.0 MB this upload may still use"):
        tree.read("f2.bin")


def test_zip_listing_skips_os_clutter_and_strips_nothing_else():
    data = _zip({"cohort/participants.tsv": "x", "cohort/.DS_Store": "x", "__MACOSX/cohort/._x": "x", "cohort/sub-01/": ""})
    tree = UploadTree.open(data, "c.zip")
    assert tree.paths == ["cohort/participants.tsv"]
    assert tree.read("cohort/participants.tsv") == b"x"


def test_not_a_zip_and_damaged_zip():
    with pytest.raises(InputError, match=r"expected a zip archive \(magic bytes 50 4b 03 04\) or a folder, found 1f 8b"):
        UploadTree.open(gzip.compress(b"x"), "c.zip")
    with pytest.raises(InputError, match="the zip archive is damaged or truncated"):
        UploadTree.open(_zip({"a": "b" * 100})[:60], "c.zip")


def test_folder_upload_refuses_links_leaving_it(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    root = tmp_path / "cohort"
    (root / "sub-01").mkdir(parents=True)
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    (root / "sub-01" / "emg.edf").symlink_to(outside)
    with pytest.raises(InputError, match=r"'sub-01/emg\.edf' is a link to a file outside the upload folder"):
        UploadTree.open(root)


def test_folder_upload_total_size_is_capped(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(600))
    (tmp_path / "b.bin").write_bytes(bytes(600))
    with pytest.raises(InputError, match="the folder's files add up to more than the upload limit of 1000 bytes"):
        UploadTree.open(tmp_path, limits=UploadLimits(max_upload_bytes=1000))


# ---------------------------------------------------------------- report


def test_report_entries_from_errors_and_the_table():
    exc = InputError("expected 4-D, found 3-D", source="dwi.nii.gz", field="dim")
    entry = ReportEntry.from_error(exc, patient_id="P01", modality="dti")
    assert (entry.source, entry.status, entry.field, entry.message) == ("dwi.nii.gz", "error", "dim", "expected 4-D, found 3-D")
    assert bare_message(exc) == "expected 4-D, found 3-D"
    plain = attribute(InputError("too short", field="x_uv"), "emg.edf")
    assert str(plain) == "emg.edf: [x_uv] too short"
    assert worst_status([ReportEntry.ok("a", "fine"), entry]) == "error"
    assert list(report_frame([entry]).columns) == ["source", "patient_id", "modality", "status", "field", "message"]
    with pytest.raises(ValueError):
        ReportEntry("a", "fatal", "no such status")


# ---------------------------------------------------------------- property test


_SEED_ZIP = _zip(
    {
        "cohort/participants.tsv": "participant_id\tage\timprovement\nsub-01\t60\t55\nsub-02\t70\t20\n",
        "cohort/sub-01/emg/sub-01_emg.csv": "time,FDI\n0,1\n0.001,2\n",
        "cohort/sub-02/x.txt": "hello",
    }
)


@FUZZ
@given(mutated(_SEED_ZIP, hot=len(_SEED_ZIP)))
def test_malformed_zips_give_only_input_errors(data):
    def open_and_read_everything(raw):
        tree = UploadTree.open(raw, "fuzz.zip", UploadLimits(max_decompressed_bytes=2**20))
        for path in tree.paths:
            tree.read(path)

    assert_only_input_error(open_and_read_everything, data)


@FUZZ
@given(mutated(gzip.compress(b"NIfTI bytes " * 200, mtime=0)))
def test_malformed_gzip_gives_only_input_errors(data):
    assert_only_input_error(lambda raw: gunzip_capped(raw, "fuzz.nii.gz", Budget(UploadLimits(max_decompressed_bytes=2**20))), data)


# --- run_isolated: readers that may crash run in a process of their own --------------------------------

def _crash_like_a_damaged_parser(name):
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a C++ parser does on a bad offset


def _refuse(name):
    raise InputError("the marker count is negative.", source=name, field="POINT:USED")


def _print_then_answer(n):
    os.write(1, b"a library writing to stdout\n")
    print("and Python's print")
    return np.arange(n, dtype=np.float64)


def _sleep(seconds):
    time.sleep(seconds)


def test_a_reader_that_crashes_ends_only_its_own_process_and_names_the_file():
    with pytest.raises(InputError) as crashed:
        run_isolated(_crash_like_a_damaged_parser, "walk.c3d", source="walk.c3d", reader="ezc3d")
    assert str(crashed.value) == ("walk.c3d: ezc3d crashed on this file (its process was killed by SIGSEGV); the file is damaged in a way the "
                                  "checks before it did not catch. Export it again from the recording software.")
    assert run_isolated(_print_then_answer, 3, source="x", reader="r").tolist() == [0.0, 1.0, 2.0]  # this process carries on


def test_what_an_isolated_reader_raises_or_prints_comes_back_intact():
    with pytest.raises(InputError) as refused:
        run_isolated(_refuse, "walk.c3d", source="walk.c3d", reader="ezc3d")
    assert (str(refused.value), refused.value.source, refused.value.field) == (
        "walk.c3d: [POINT:USED] the marker count is negative.", "walk.c3d", "POINT:USED")
    np.testing.assert_array_equal(run_isolated(_print_then_answer, 100_000, source="x", reader="r"), np.arange(100_000))


def test_a_reader_past_its_time_is_stopped():
    started = time.monotonic()
    with pytest.raises(InputError, match=r"^walk.c3d: ezc3d took more than 1 s on this file and was stopped\.$"):
        run_isolated(_sleep, 60, source="walk.c3d", reader="ezc3d", timeout_s=1)
    assert time.monotonic() - started < 10


def _raise_a_bug(name):
    raise KeyError(name)


class _WouldWriteAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "ran"))


def test_an_isolated_readers_answer_cannot_run_code_in_the_caller(tmp_path):
    """The process reads a hostile file: what it sends back is data (npz without pickles), never code."""
    import pickle

    from core.io.isolated import decode_answer, encode_answer

    target = tmp_path / "written-by-the-answer"
    with pytest.raises(ValueError, match="pickled"):
        decode_answer(pickle.dumps(_WouldWriteAFile(target)))
    assert not target.exists()
    sent = (np.array([[1.0, np.nan]]), ["hand", "elbow"], {"rate_hz": 100.0, "unit": None}, np.float32(2.5), True)
    back = decode_answer(encode_answer("returned", sent))
    np.testing.assert_array_equal(back[0], sent[0])
    assert back[1:] == [["hand", "elbow"], {"rate_hz": 100.0, "unit": None}, 2.5, True]
    with pytest.raises(RuntimeError, match=r"^KeyError: 'walk.c3d'$"):  # not an InputError: a bug, said as one
        run_isolated(_raise_a_bug, "walk.c3d", source="walk.c3d", reader="ezc3d")
