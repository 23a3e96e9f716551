"""Fuzz targets of the upload readers: a valid seed file per reader, how to mutate it, how to read it.

Each :class:`FuzzTarget` pairs a seed (written by the repo's own test writers, see
``tests/io_support.py``) with a hypothesis strategy of malformed variants (byte flips,
truncations, insertions, deletions, and *header-field* mutations that put boundary values into the
fields a reader trusts: NIfTI dims, datatype, vox_offset, scaling and affines; EDF/BDF record
counts, durations, sample counts and physical ranges; table cells) and with the read that must
either work or raise :class:`~core.errors.InputError`.

Used by ``tests/test_io_fuzz.py`` (a small derandomized run plus the corpus replay, in
``make test``) and ``tests/bench_fuzz.py`` (>= 500 examples per reader, the bug hunt). Files that
once broke a reader live in ``tests/fuzz_corpus/<reader>/``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tempfile
import traceback
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from core.errors import InputError
from tests.io_support import DWI_DIRECTIONS, mutated, nifti_bytes, text_mutated, write_c3d, write_edf, xlsx_bytes

CORPUS = Path(__file__).parent / "fuzz_corpus"


@dataclass(frozen=True)
class FuzzTarget:
    """One reader under fuzz: ``strategy`` draws inputs, ``read(input)`` reads one."""

    name: str
    strategy: object
    read: object
    suffix: str  # corpus file extension

    def encode(self, value) -> bytes:
        """The bytes saved in the corpus for a drawn input (a DWI set is saved as a zip of its three files)."""
        if isinstance(value, tuple):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for name, data in zip(("dwi.nii.gz", "dwi.bval", "dwi.bvec"), value):
                    archive.writestr(name, data)
            return buffer.getvalue()
        return bytes(value)

    def decode(self, data: bytes):
        if self.name == "dwi":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return tuple(archive.read(n) for n in ("dwi.nii.gz", "dwi.bval", "dwi.bvec"))
        return data


# ---------------------------------------------------------------- header-field mutations

_INT_EDGES = [0, 1, -1, 2, 3, 7, 255, 256, 32767, -32768, 65535, 2**31 - 1, -(2**31)]
_FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 1e-38, 1e-45, 3.4e38, -3.4e38, float("nan"), float("inf"), float("-inf"), 0.5, 1e6, 351.0, 352.0, 353.0, 1e9]

# NIfTI-1 fields: (offset, struct code, count)
_NIFTI1_FIELDS = {
    "sizeof_hdr": (0, "i", 1), "dim": (40, "h", 8), "intent_code": (68, "h", 1), "datatype": (70, "h", 1), "bitpix": (72, "h", 1),
    "pixdim": (76, "f", 8), "vox_offset": (108, "f", 1), "scl_slope": (112, "f", 1), "scl_inter": (116, "f", 1),
    "xyzt_units": (123, "b", 1), "qform_code": (252, "h", 1), "sform_code": (254, "h", 1), "quatern": (256, "f", 6),
    "srow": (280, "f", 12), "extension": (348, "b", 4),
}
_NIFTI_DATATYPES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 255, 3]


def _pack(code: str, value) -> bytes:
    if code == "f":
        return struct.pack("<f", value)
    if code == "b":
        return struct.pack("<B", int(value) & 0xFF)
    bits = {"h": 16, "i": 32}[code]
    value = int(value)
    value = max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, value))
    return struct.pack("<" + code, value)


def _set_field(seed: bytes, offset: int, code: str, index: int, value) -> bytes:
    size = struct.calcsize("<" + code)
    at = offset + index * size
    return seed[:at] + _pack(code, value) + seed[at + size :]


def nifti_field_mutations(seed: bytes):
    """A NIfTI-1 seed with one to three header fields set to boundary values."""
    one = st.sampled_from(sorted(_NIFTI1_FIELDS)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.integers(0, _NIFTI1_FIELDS[name][2] - 1),
            st.sampled_from(_FLOAT_EDGES) if _NIFTI1_FIELDS[name][1] == "f" else st.sampled_from(_INT_EDGES + (_NIFTI_DATATYPES if name == "datatype" else [])),
        )
    )

    def apply(edits):
        out = seed
        for name, index, value in edits:
            offset, code, _ = _NIFTI1_FIELDS[name]
            out = _set_field(out, offset, code, index, value)
        return out

    return st.lists(one, min_size=1, max_size=3).map(apply)


# C3D header words (16-bit, 1-based word numbers of the C3D spec): parameter block, points, analogs
# per frame, first / last frame, max gap; then scale (float, words 7-8), data block (word 9),
# analog samples per frame (10), frame rate (float, words 11-12).
_C3D_WORDS = {"parameter_block": (0, "b"), "n_points": (2, "h"), "analogs_per_frame": (4, "h"), "first_frame": (6, "h"), "last_frame": (8, "h"),
              "max_gap": (10, "h"), "scale": (12, "f"), "data_block": (16, "h"), "analog_samples": (18, "h"), "frame_rate": (20, "f")}


def c3d_field_mutations(seed: bytes):
    """A C3D seed with one to three header words set to boundary values, or one 16-bit word of its
    parameter section (where group, parameter and dimension records live) overwritten."""
    header = st.sampled_from(sorted(_C3D_WORDS)).flatmap(
        lambda name: st.tuples(st.just(_C3D_WORDS[name]), st.sampled_from(_FLOAT_EDGES) if _C3D_WORDS[name][1] == "f" else st.sampled_from(_INT_EDGES))
    ).map(lambda a: (a[0][0], a[0][1], a[1]))
    parameters = st.tuples(st.integers(512, min(len(seed), 2048) - 2).map(lambda k: k & ~1), st.just("h"), st.sampled_from(_INT_EDGES))

    def apply(edits):
        out = seed
        for offset, code, value in edits:
            out = _set_field(out, offset, code, 0, value)
        return out

    return st.lists(st.one_of(header, parameters), min_size=1, max_size=3).map(apply)


_EDF_TEXT_EDGES = ["0", "-1", "1", "2", "99999999", "1e308", "-1e308", "nan", "inf", "-inf", "", "abc", "0.000001", "1.5", "-0", "+3", "1e-300", "\xff\xfe", "3 4", "0x10"]


def _edf_fields(seed: bytes) -> list:
    """(offset, width) of every ASCII field of an EDF/BDF header after the patient/recording text."""
    n = int(seed[252:256].decode().strip())
    fields = [(168, 8), (176, 8), (184, 8), (236, 8), (244, 8), (252, 4)]
    widths = [16, 80, 8, 8, 8, 8, 8, 80, 8, 32]
    start = 256
    for width in widths:
        fields += [(start + i * width, width) for i in range(n)]
        start += n * width
    return fields


def edf_field_mutations(seed: bytes):
    """An EDF/BDF seed with one to three ASCII header fields overwritten (padded with spaces)."""
    fields = _edf_fields(seed)

    def apply(edits):
        out = bytearray(seed)
        for k, text in edits:
            offset, width = fields[k % len(fields)]
            out[offset : offset + width] = text.encode("latin-1")[:width].ljust(width)
        return bytes(out)

    return st.lists(st.tuples(st.integers(0, len(fields) - 1), st.sampled_from(_EDF_TEXT_EDGES)), min_size=1, max_size=3).map(apply)


_CELL_EDGES = ["1e999", "-1e999", "nan", "NaN", "inf", "-inf", "1,5", "1.5.2", "\u0663", "٣٫٥", "0x1F", "1_000", "  ", "", "n/a", "\x00", "'", '"', "1e-400",
               "999999999999999999999999", "-0", "+", "e5", "TRUE", "yes", "M", "sub-01", "=1+1", "1;2", "\t", "\r", "é"]


def cell_mutations(text: str, sep: str):
    """A table with one to three cells (not the header) replaced by awkward values."""
    lines = text.splitlines()
    rows = [line.split(sep) for line in lines]

    def apply(edits):
        out = [list(r) for r in rows]
        for r, c, value in edits:
            row = out[1 + r % (len(out) - 1)]
            row[c % len(row)] = value
        return ("\n".join(sep.join(r) for r in out) + "\n").encode("utf-8")

    return st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20), st.sampled_from(_CELL_EDGES)), min_size=1, max_size=3).map(apply)


# ---------------------------------------------------------------- seeds

PARTICIPANTS = (
    "participant_id\tage\tsex\tdiagnosis\tsite\taffected_side\tnihss\tfm_ue\tmrs\timprovement_pct\tnotes\n"
    "sub-01\t61\tM\tstroke\tA\tL\t7\t30\t3\t62.5\tfirst visit\n"
    "sub-02\t74\tF\tStroke\tA\tR\tn/a\t41\t2\t12.0\tmoved\n"
    "sub-03\t58\tM\tParkinson's disease\tB\tR\t3\t55\t1\t55\tok\n"
    "sub-04\t66\tF\tPD\tB\tleft\t5\t12\t4\tn/a\tlate\n"
    "sub-05\t70\tM\tstroke\tA\tLH\t12\t22\t3\t30.5\tnone given\n"
)


def _small_nifti() -> bytes:
    return nifti_bytes(np.arange(512, dtype=np.float32).reshape(8, 8, 8) / 512, np.diag([2.0, 2, 2, 1]))


@lru_cache(maxsize=1)
def _other_niftis() -> tuple:
    """A NIfTI-2 file and a big-endian int16 NIfTI-1 with scaling (slope 0.5, intercept 10)."""
    import nibabel as nib

    data = np.arange(512, dtype=np.float32).reshape(8, 8, 8) / 512
    affine = np.diag([2.0, 2, 2, 1])
    v2 = nifti_bytes(data, affine, version=2)
    header = nib.Nifti1Header(endianness=">")
    image = nib.Nifti1Image(np.arange(512, dtype=np.int16).reshape(8, 8, 8), affine, header)
    image.header.set_data_dtype(np.dtype(">i2"))
    image.header.set_slope_inter(0.5, 10.0)
    image.header.set_sform(affine, 4)
    return v2, image.to_bytes()


@lru_cache(maxsize=1)
def _library_seeds() -> dict:
    """Test files shipped with the libraries: nibabel's big-endian ``anatomical.nii`` and its
    ``example_nifti2.nii.gz``, and dipy's ``small_25`` diffusion set (nii.gz, bval, bvec)."""
    import dipy.data
    import nibabel.testing

    nib_data = Path(nibabel.testing.data_path)
    dipy_data = Path(dipy.data.__file__).parent / "files"
    return {
        "anatomical.nii": (nib_data / "anatomical.nii").read_bytes(),
        "example_nifti2.nii.gz": (nib_data / "example_nifti2.nii.gz").read_bytes(),
        "small_25": tuple((dipy_data / f"small_25{ext}").read_bytes() for ext in (".nii.gz", ".bval", ".bvec")),
    }


@lru_cache(maxsize=1)
def _dwi_seed() -> tuple:
    rng = np.random.default_rng(3)
    g = np.vstack([np.zeros(3), DWI_DIRECTIONS])
    b = np.array([0.0] + [1000.0] * len(DWI_DIRECTIONS))
    s0 = 1000 + 50 * rng.random((5, 5, 5))
    series = s0[..., None] * np.exp(-b * 0.8e-3)[None, None, None, :]
    nii = nifti_bytes(series.astype(np.float32), np.diag([2.0, 2, 2, 1]), compress=True)
    bval = (" ".join(f"{v:g}" for v in b) + "\n").encode()
    bvec = ("\n".join(" ".join(f"{v:.6f}" for v in row) for row in g.T) + "\n").encode()
    return nii, bval, bvec


@lru_cache(maxsize=2)
def _edf_seed(bdf: bool = False) -> bytes:
    x = np.sin(np.arange(2000) / 7) * 200
    with tempfile.TemporaryDirectory() as folder:
        return write_edf(Path(folder) / ("s.bdf" if bdf else "s.edf"), {"FDI": x, "ECR": -x}, 2000.0, bdf=bdf, annotations=[(0.5, -1, "TMS")]).read_bytes()


@lru_cache(maxsize=1)
def _c3d_seed() -> bytes:
    t = np.arange(60) / 100.0
    with tempfile.TemporaryDirectory() as folder:
        return write_c3d(Path(folder) / "s.c3d", {"hand": np.c_[t, 2 * t, 3 * t] * 100, "elbow": np.ones((60, 3))}, 100.0).read_bytes()


@lru_cache(maxsize=1)
def _xlsx_seed() -> bytes:
    return xlsx_bytes([["participant_id", "age", "sex", "nihss", "improvement"], ["sub-01", 61, "M", 7, 55.0], ["sub-02", 70, "F", 12, 20.5], ["sub-03", None, "M", 3, 80]])


def _xlsx_cells():
    values = st.one_of(st.sampled_from([c for c in _CELL_EDGES if "\x00" not in c and "\r" not in c]), st.floats(allow_nan=False), st.integers(-(2**40), 2**40))

    def apply(edits):
        rows = [["participant_id", "age", "sex", "nihss", "improvement"], ["sub-01", 61, "M", 7, 55.0], ["sub-02", 70, "F", 12, 20.5], ["sub-03", None, "M", 3, 80]]
        for r, c, v in edits:
            rows[1 + r % 3][c % 5] = v
        return xlsx_bytes(rows)

    return st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9), values), min_size=1, max_size=3).map(apply)


@lru_cache(maxsize=1)
def _zip_seed() -> bytes:
    buffer = io.BytesIO()
    x = "time,FDI,ECR,trigger\n" + "".join(f"{i / 2000},{np.sin(i):.2f},{np.cos(i):.2f},{int(i == 100)}\n" for i in range(1200))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("c/participants.tsv", "participant_id\timprovement\taffected_side\tnihss\nsub-01\t60\tL\t4\nsub-02\t20\tR\t9\n")
        archive.writestr("c/sub-01/emg/sub-01_emg.csv", x)
        archive.writestr("c/sub-02/motion/sub-02_reach.csv", "time,x,y,z\n" + "".join(f"{i / 100},{i},{0},{0}\n" for i in range(300)))
        archive.writestr("c/sub-02/anat/sub-02_FA.nii", _small_nifti())
    return buffer.getvalue()


# ---------------------------------------------------------------- reads


def _read_nifti(raw, name):
    from core.io.volumes import read_nifti

    read_nifti(raw, name, dims="any")


def _read_dwi(parts):
    from core.io.diffusion import fit_tensor, read_diffusion

    fit_tensor(read_diffusion(*parts, names=("fuzz_dwi.nii.gz", "fuzz.bval", "fuzz.bvec")))


def _read_edf(raw, name):
    from core.io.emg import emg_recording, read_emg

    emg_recording(read_emg(raw, name))


def _read_c3d(raw):
    from core.io.kinematics import hand_trajectory, read_c3d

    hand_trajectory(read_c3d(raw, "fuzz.c3d"))


def _read_table(raw, name):
    from core.io.tables import apply_column_mapping, infer_column_mapping, read_table

    table = read_table(raw, name)
    apply_column_mapping(table, infer_column_mapping(table))


def _read_zip(raw):
    from core.io.upload import read_cohort

    read_cohort(raw, "fuzz.zip")


@lru_cache(maxsize=1)
def targets() -> dict:
    """name -> :class:`FuzzTarget` for every reader."""
    nii = _small_nifti()
    nii_gz = gzip.compress(nii, mtime=0)
    dwi_nii, bval, bvec = _dwi_seed()
    dwi_raw = gzip.decompress(dwi_nii)
    edf, bdf = _edf_seed(False), _edf_seed(True)
    csv = PARTICIPANTS.replace("\t", ",")
    library = _library_seeds()
    dipy_nii, dipy_bval, dipy_bvec = library["small_25"]
    out = [
        FuzzTarget(
            "nifti",
            st.one_of(mutated(nii, hot=400), nifti_field_mutations(nii), mutated(_other_niftis()[0], hot=560), mutated(_other_niftis()[1], hot=400),
                      mutated(library["anatomical.nii"], hot=400)),
            lambda raw: _read_nifti(raw, "fuzz.nii"),
            ".nii",
        ),
        FuzzTarget(
            "nifti_gz",
            st.one_of(
                mutated(nii_gz),
                mutated(gzip.compress(nii[:200], mtime=0) + gzip.compress(nii[200:], mtime=0)),  # two members, as bgzip/pigz write
                mutated(library["example_nifti2.nii.gz"]),
                nifti_field_mutations(nii).map(lambda b: gzip.compress(b, mtime=0)),
                mutated(nii, hot=400).map(lambda b: gzip.compress(b, mtime=0)),
            ),
            lambda raw: _read_nifti(raw, "fuzz.nii.gz"),
            ".nii.gz",
        ),
        FuzzTarget(
            "dwi",
            st.one_of(
                mutated(dwi_nii).map(lambda b: (b, bval, bvec)),
                nifti_field_mutations(dwi_raw).map(lambda b: (gzip.compress(b, mtime=0), bval, bvec)),
                text_mutated(bval.decode()).map(lambda b: (dwi_nii, b, bvec)),
                text_mutated(bvec.decode()).map(lambda b: (dwi_nii, bval, b)),
                mutated(dipy_nii).map(lambda b: (b, dipy_bval, dipy_bvec)),
                text_mutated(dipy_bvec.decode()).map(lambda b: (dipy_nii, dipy_bval, b)),
            ),
            _read_dwi,
            ".zip",
        ),
        FuzzTarget("edf", st.one_of(mutated(edf, hot=1100), edf_field_mutations(edf)), lambda raw: _read_edf(raw, "fuzz.edf"), ".edf"),
        FuzzTarget("bdf", st.one_of(mutated(bdf, hot=1100), edf_field_mutations(bdf)), lambda raw: _read_edf(raw, "fuzz.bdf"), ".bdf"),
        FuzzTarget(
            "edf_gz",
            st.one_of(mutated(gzip.compress(edf, mtime=0)), edf_field_mutations(edf).map(lambda b: gzip.compress(b, mtime=0))),
            lambda raw: _read_edf(raw, "fuzz.edf.gz"),
            ".edf.gz",
        ),
        FuzzTarget("c3d", st.one_of(mutated(_c3d_seed(), hot=1600), c3d_field_mutations(_c3d_seed())), _read_c3d, ".c3d"),
        FuzzTarget("csv", st.one_of(text_mutated(csv), cell_mutations(csv, ",")), lambda raw: _read_table(raw, "fuzz.csv"), ".csv"),
        FuzzTarget("tsv", st.one_of(text_mutated(PARTICIPANTS), cell_mutations(PARTICIPANTS, "\t")), lambda raw: _read_table(raw, "participants.tsv"), ".tsv"),
        FuzzTarget("xlsx", st.one_of(mutated(_xlsx_seed()), _xlsx_cells()), lambda raw: _read_table(raw, "fuzz.xlsx"), ".xlsx"),
        FuzzTarget("zip", mutated(_zip_seed(), hot=len(_zip_seed())), _read_zip, ".zip"),
    ]
    return {t.name: t for t in out}


# ---------------------------------------------------------------- running and the corpus


def outcome(target: FuzzTarget, value):
    """``"read"`` (the file was read), ``"refused"`` (InputError with a message), or the other
    exception reading ``value`` raised."""
    try:
        target.read(value)
    except InputError as exc:
        return "refused" if str(exc) else AssertionError("an InputError with an empty message")
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        return exc
    return "read"


def try_read(target: FuzzTarget, value) -> BaseException | None:
    """The exception other than InputError that reading ``value`` raised, or None."""
    result = outcome(target, value)
    return None if isinstance(result, str) else result


def save_to_corpus(target: FuzzTarget, value, exc: BaseException, folder: Path = CORPUS) -> Path:
    """Keep an input that broke a reader: ``<folder>/<reader>/<sha256[:16]><suffix>`` plus a note."""
    data = target.encode(value)
    digest = hashlib.sha256(data).hexdigest()[:16]
    where = folder / target.name
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{digest}{target.suffix}"
    path.write_bytes(data)
    note = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    (where / f"{digest}.txt").write_text(note[:2000] + "\n")
    return path


def corpus_files(folder: Path = CORPUS) -> list[tuple[str, Path]]:
    """(reader, file) of every saved input, notes (.txt) left out."""
    if not folder.is_dir():
        return []
    return [(p.parent.name, p) for p in sorted(folder.glob("*/*")) if p.suffix != ".txt" and p.parent.name in targets()]
