"""Decompression bombs for the tests and benchmarks of core.io, built on the fly.

A gzip bomb of N bytes of zeros behind an optional header is written in well under a second: the
deflate stream is flushed (Z_FULL_FLUSH) after the header and after every 1 MiB of zeros, so every
1 MiB block compresses to the same ~1 kB, written N / 1 MiB times; the gzip trailer (CRC-32 and
size) is computed so that the file is a valid gzip stream of exactly ``header + zeros``.

No tests here; test_io_bombs.py and bench_fuzz.py import what they need.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

MiB = 1 << 20
GiB = 1 << 30
_ZEROS = bytes(MiB)


@lru_cache(maxsize=1)
def _zeros_crc_operator() -> tuple[int, tuple]:
    """CRC-32 over 1 MiB of zeros as an affine map of the starting value: f(v) = L(v) ^ f(0)."""
    base = zlib.crc32(_ZEROS, 0)
    return base, tuple(zlib.crc32(_ZEROS, 1 << i) ^ base for i in range(32))


def _crc_after_zeros(crc: int) -> int:
    """``zlib.crc32(bytes(MiB), crc)`` without hashing a MiB (the bomb builder calls it 2048 times)."""
    base, columns = _zeros_crc_operator()
    out = base
    for i in range(32):
        if crc >> i & 1:
            out ^= columns[i]
    return out


def gzip_bomb(path, zero_bytes: int, head: bytes = b"") -> Path:
    """Write a gzip file that decompresses to ``head`` followed by ``zero_bytes`` zeros.

    ``zero_bytes`` must be a multiple of 1 MiB. The file is ~1/1000 of what it decompresses to
    (2 GiB -> ~2 MB).
    """
    zeros = zero_bytes
    total_bytes = len(head) + zeros
    if zeros < 0 or zeros % MiB:
        raise ValueError("zero_bytes must be a non-negative multiple of 1 MiB")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head_block = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(_ZEROS) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    n_blocks = zeros // MiB
    for _ in range(n_blocks):
        crc = _crc_after_zeros(crc)
    path = Path(path)
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header: deflate, no name, mtime 0
        out.write(head_block)
        for _ in range(n_blocks):
            out.write(block)
        out.write(end)
        out.write(struct.pack("<II", crc & 0xFFFFFFFF, total_bytes & 0xFFFFFFFF))
    return path


def nifti_header(shape, dtype=np.float32) -> bytes:
    """The 352 bytes of a valid NIfTI-1 header (and empty extension flag) for an image of ``shape``."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    header.set_sform(affine, 4)
    header.set_qform(affine, 4)
    header.set_data_offset(352)
    raw = header.binaryblock + b"\x00" * 4
    assert len(raw) == 352
    return raw


def absurd_nifti_header() -> bytes:
    """A NIfTI-1 header declaring 30000 x 30000 x 30000 float32 voxels (2.7 x 10^13 voxels)."""
    raw = bytearray(nifti_header((8, 8, 8)))
    raw[40:56] = struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1)
    return bytes(raw)


def edf_header(n_records: int = 1, samples_per_record: int = 1000) -> bytes:
    """A valid one-signal EDF header (512 bytes) declaring ``n_records`` 1 s records."""
    def field(text, width):
        return str(text).ljust(width)[:width].encode("ascii")

    main = (field("0", 8) + field("X X X X", 80) + field("Startdate X X X X", 80) + field("01.01.26", 8) + field("00.00.00", 8)
            + field(512, 8) + field("", 44) + field(n_records, 8) + field(1, 8) + field(1, 4))
    signal = (field("EMG FDI", 16) + field("", 80) + field("uV", 8) + field(-1000, 8) + field(1000, 8) + field(-32768, 8)
              + field(32767, 8) + field("", 80) + field(samples_per_record, 8) + field("", 32))
    raw = main + signal
    assert len(raw) == 512
    return raw
