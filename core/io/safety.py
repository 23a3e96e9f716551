"""Size limits and safe unpacking for everything a user uploads.

What is enforced here, before any parser sees a byte:

- an upload (one file, a zip, or all files of a folder) is at most ``max_upload_bytes``
  (default 1 GiB; ``NEUROPREDICT_MAX_UPLOAD_MB`` overrides it);
- gzip streams and zip entries are decompressed in bounded chunks and abandoned as soon as
  their output passes ``max_decompressed_bytes``: a decompression bomb costs no more memory than
  the cap, whatever the archive's headers claim;
- a gzip stream that ends early is a truncated file, not a short one;
- **header first**: a reader whose format declares its size (NIfTI, EDF/BDF) decompresses only the
  first bytes (:data:`PROBE_BYTES`), judges the header (:func:`read_declared`), refuses a wrong one
  there, then decompresses exactly the declared size into one buffer and refuses the file when more
  than :data:`TRAILING_SLACK_BYTES` follow, or when the declared size is implausible for the
  compressed size (over :data:`PLAUSIBLE_FLOOR_BYTES` and more than :data:`MAX_PLAUSIBLE_RATIO`:1).
  A 2 GiB bomb is refused in milliseconds with a few MB of memory; formats without a declared size
  (CSV, TSV) keep the global cap;
- zip entries whose path is absolute, climbs out of the archive (``..``), names a drive, or is
  a symbolic link are rejected, as are encrypted entries; nothing is ever extracted to disk;
- a parser written in C or C++ that can crash on a damaged file (ezc3d) runs in a process of its
  own (:func:`run_isolated`): a crash ends that process, and the upload gets an error naming the file.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import signal
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from core.errors import InputError

MiB = 1 << 20
GiB = 1 << 30
_CHUNK = 1 << 20  # decompress in 1 MiB steps: the cap is checked after each


@dataclass(frozen=True)
class UploadLimits:
    """Caps on what an upload may cost.

    Parameters
    ----------
    max_upload_bytes : largest upload accepted, in bytes (a file, a zip, or a folder's files
        together). Default 1 GiB.
    max_decompressed_bytes : most bytes one upload may decompress to (gzip and zip together).
        Default 4 GiB; NIfTI and EDF rarely compress better than 5:1, bombs 1000:1.
    max_zip_entries : most files a zip (or folder) may hold.
    """

    max_upload_bytes: int = GiB
    max_decompressed_bytes: int = 4 * GiB
    max_zip_entries: int = 20_000

    @classmethod
    def from_env(cls) -> UploadLimits:
        """Defaults, with ``NEUROPREDICT_MAX_UPLOAD_MB`` (if set) as the upload cap in MiB."""
        value = os.environ.get("NEUROPREDICT_MAX_UPLOAD_MB")
        if not value:
            return cls()
        try:
            mb = float(value)
        except ValueError:
            raise InputError(f"expected a number of MiB, found {value!r}", field="NEUROPREDICT_MAX_UPLOAD_MB") from None
        if not mb > 0:
            raise InputError(f"expected a positive number of MiB, found {value!r}", field="NEUROPREDICT_MAX_UPLOAD_MB")
        upload = int(mb * MiB)
        return cls(max_upload_bytes=upload, max_decompressed_bytes=max(4 * upload, cls.max_decompressed_bytes))


DEFAULT_LIMITS = UploadLimits()


def _mb(n: int) -> str:
    return f"{n / MiB:.1f} MB" if n >= MiB else f"{n} bytes"


class Budget:
    """Decompressed bytes still allowed for one upload (shared by all its files)."""

    def __init__(self, limits: UploadLimits):
        self.limits = limits
        self.left = limits.max_decompressed_bytes

    def spend(self, n: int, source: str) -> None:
        self.left -= n
        if self.left < 0:
            raise InputError(
                f"decompresses to more than the {_mb(self.limits.max_decompressed_bytes)} allowed for one upload; "
                "this looks like a decompression bomb. Upload the files uncompressed or in smaller parts.",
                source=source,
            )


def source_name(source, name: str | None = None) -> str:
    """The file name to show for a source: ``name`` if given, else the path's or file object's name."""
    if name:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return Path(str(getattr(source, "name", "") or "upload")).name


def read_source(source, name: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> tuple[str, bytes]:
    """The bytes of an upload and its display name, refusing anything over the upload cap.

    Parameters
    ----------
    source : a path (str or PathLike), the bytes themselves, or a binary file object (e.g.
        Streamlit's ``UploadedFile``).
    name : name to show in messages; defaults to the path's or the file object's name.
    limits : :class:`UploadLimits`.

    Returns
    -------
    (name, bytes)
    """
    label = source_name(source, name)
    cap = limits.max_upload_bytes
    too_big = lambda n: InputError(  # noqa: E731
        f"file is {_mb(n)}; the upload limit is {_mb(cap)}. Split the upload or raise the limit.", source=label
    )
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > cap:
            raise too_big(len(data))
        return label, data
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise InputError("expected a file, found a folder or a special file.", source=label)
            if size > cap:
                raise too_big(size)
            return label, path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror or exc}.", source=label) from exc
    reader = getattr(source, "read", None)
    if reader is None:
        raise InputError(f"expected a file path, bytes or a binary file object, found {type(source).__name__}.", source=label)
    if hasattr(source, "seek"):
        try:
            source.seek(0)
        except (OSError, ValueError):
            pass
    try:
        data = reader(cap + 1)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the upload: {exc}.", source=label) from exc
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("expected a binary file object (opened in 'rb' mode), found a text stream.", source=label)
    if len(data) > cap:
        raise too_big(len(data))
    return label, bytes(data)


@contextlib.contextmanager
def bytes_as_path(data: bytes, suffix: str = ""):
    """A file path holding ``data``, for parsers that read only from a path (pyedflib, ezc3d).

    On Linux the file lives in memory (``memfd_create``), so an upload never touches a disk
    outside its user's workspace; elsewhere it is a temporary file, deleted afterwards.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(f"neuropredict-upload{suffix}", os.MFD_CLOEXEC)
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                out.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    handle, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def gunzip_capped(data: bytes, source: str, budget: Budget | int | None = None) -> bytes:
    """Decompress gzip data, at most ``budget`` bytes of output (a :class:`Budget` or a byte count).

    Raises
    ------
    InputError
        Not gzip, corrupt, truncated (the stream ends before its end marker), or decompressing
        past the cap (a decompression bomb).
    """
    if budget is None:
        budget = Budget(DEFAULT_LIMITS)
    elif isinstance(budget, int):
        budget = Budget(UploadLimits(max_decompressed_bytes=budget))
    stream = GzipStream(data, source)
    out = []
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        budget.spend(len(chunk), source)
        out.append(chunk)
    return b"".join(out)


# ---------------------------------------------------------------- header-first decompression

PROBE_BYTES = 2 * MiB  # decompressed before the header is judged: an EDF header of 4096 signals is 1 MiB
TRAILING_SLACK_BYTES = MiB  # bytes past the declared size still accepted (and ignored) after a file's data
PLAUSIBLE_FLOOR_BYTES = 256 * MiB  # a declared size up to this is never questioned for its compression ratio
MAX_PLAUSIBLE_RATIO = 100  # above the floor, no scan or recording compresses better than this (bombs do ~1000:1)
_PIECE = 64 * 1024  # compressed bytes fed to zlib at a time: copies of its unconsumed input stay this small


class GzipStream:
    """The decompressed bytes of gzip data, read in bounded pieces (``read(n)`` as a file would).

    Compressed input is fed to zlib ``_PIECE`` bytes at a time, so no step copies the rest of a
    large upload; several members follow each other; zero padding after the last member is
    accepted (tape blocks), anything else there is refused.

    Raises (from :meth:`read`)
    ------
    InputError
        Corrupt stream (with zlib's reason), or a stream that ends before its end marker.
    """

    def __init__(self, data, source: str):
        if not is_gzip(bytes(data[:2])):
            raise InputError(f"expected gzip data (magic bytes 1f 8b), found {bytes(data[:2]).hex(' ') or 'an empty file'}.", source=source)
        self.source = source
        self._view = memoryview(data).cast("B")
        self._pos = 0
        self._tail = b""
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._done = False

    def _take(self, n: int) -> bytes:
        piece = self._view[self._pos : self._pos + n]
        self._pos += len(piece)
        return piece

    def _next_member(self) -> None:
        """After a member's end: start the next one, or accept zero padding and stop."""
        rest = self._inflater.unused_data + self._tail
        self._tail = b""
        if len(rest) < 2:
            rest += bytes(self._take(2 - len(rest)))
        if is_gzip(rest):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._tail = rest
            return
        if rest.strip(b"\x00") or any(self._view[self._pos + i : self._pos + i + _PIECE].tobytes().strip(b"\x00") for i in range(0, len(self._view) - self._pos, _PIECE)):
            raise InputError("unexpected bytes after the end of the gzip stream.", source=self.source)
        self._done = True

    def read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes; ``b""`` at the end of the stream."""
        out = []
        got = 0
        while got < n and not self._done:
            if self._inflater.eof:
                self._next_member()
                continue
            piece = self._tail or self._take(_PIECE)
            if not len(piece):
                raise InputError(
                    f"the gzip stream is truncated: it ends after {len(self._view)} compressed bytes, before its end marker. "
                    "The file was cut short during copying or upload; upload the complete file.",
                    source=self.source,
                )
            try:
                chunk = self._inflater.decompress(piece, n - got)
            except zlib.error as exc:
                raise InputError(f"the gzip stream is corrupt ({exc}); upload the file again or uncompressed.", source=self.source) from exc
            # At a member's end zlib leaves what follows in unused_data *and*, when max_length cut
            # the call, in unconsumed_tail too: take it from unused_data only.
            self._tail = b"" if self._inflater.eof else self._inflater.unconsumed_tail
            if chunk:
                out.append(chunk)
                got += len(chunk)
        return b"".join(out)


@dataclass
class DeclaredBytes:
    """What :func:`read_declared` read.

    Attributes
    ----------
    data : uint8 array of the file's bytes, at most ``declared`` long (shorter when the stream
        ended early: a truncated file, for the reader to report with its own words).
    declared : the size the header declares, in bytes (None when the caller's check declared none).
    extra : bytes found after ``declared`` (at most the slack; more is refused).
    """

    data: np.ndarray
    declared: int | None
    extra: int = 0


def _read_upto(read, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = read(min(_CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_declared(read, source: str, declared_size, *, budget: Budget | None = None, compressed_bytes: int | None = None,
                  probe: int = PROBE_BYTES, slack: int = TRAILING_SLACK_BYTES) -> DeclaredBytes:
    """Decompress a file header first: judge its header, then read exactly the size it declares.

    Parameters
    ----------
    read : ``read(n)`` returning up to n decompressed bytes, ``b""`` at the end (a
        :class:`GzipStream`'s or a zip entry's).
    source : file name for messages.
    declared_size : ``declared_size(head)`` with the first ``probe`` decompressed bytes (fewer for
        a short file): the total size in bytes the file must have according to its header, or
        None when the format declares none; raises InputError for a header that is wrong.
    budget : the upload's decompression budget; the declared size is spent from it before a byte
        of the body is decompressed.
    compressed_bytes : size of the compressed input; a declared size over
        ``PLAUSIBLE_FLOOR_BYTES`` that is more than ``MAX_PLAUSIBLE_RATIO`` times it is refused.
    slack : bytes after the declared size still accepted (and dropped, counted in ``extra``).

    Returns
    -------
    DeclaredBytes
        The bytes in one uint8 array allocated once at the declared size (never held twice).

    Raises
    ------
    InputError
        The header's own, a declared size past the budget or implausible for the compressed size,
        or more than ``slack`` bytes after the declared size (a bomb behind a valid header).
    """
    budget = budget or Budget(DEFAULT_LIMITS)
    head = _read_upto(read, probe)
    total = declared_size(head)
    if total is None:
        budget.spend(len(head), source)
        parts = [head]
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            budget.spend(len(chunk), source)
            parts.append(chunk)
        return DeclaredBytes(np.frombuffer(b"".join(parts), np.uint8), None)
    total = int(total)
    if compressed_bytes is not None and total > max(PLAUSIBLE_FLOOR_BYTES, MAX_PLAUSIBLE_RATIO * compressed_bytes):
        raise InputError(
            f"its header declares {_mb(total)} of data, {total / max(compressed_bytes, 1):.0f} times its compressed size of "
            f"{_mb(compressed_bytes)}; no scan or recording compresses better than {MAX_PLAUSIBLE_RATIO}:1, "
            "so this looks like a decompression bomb. Upload the file uncompressed.",
            source=source,
            field="header",
        )
    budget.spend(total, source)
    buffer = np.empty(total, np.uint8)  # pages are only touched as bytes arrive
    kept = min(len(head), total)
    buffer[:kept] = np.frombuffer(head, np.uint8, count=kept)
    extra = len(head) - kept
    filled = kept
    while filled < total:
        chunk = read(min(_CHUNK, total - filled))
        if not chunk:
            budget.left += total - filled  # a truncated file costs what it held, not what it promised
            return DeclaredBytes(buffer[:filled], total, 0)
        buffer[filled : filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
        filled += len(chunk)
    while extra <= slack:
        chunk = read(min(_CHUNK, slack + 1 - extra))
        if not chunk:
            break
        extra += len(chunk)
    if extra > slack:
        raise InputError(
            f"decompresses to more than the {total} bytes its header declares (over {_mb(slack)} more were found); "
            "this looks like a decompression bomb behind a valid header.",
            source=source,
            field="header",
        )
    return DeclaredBytes(buffer, total, extra)


# ---------------------------------------------------------------- multi-file uploads


def _safe_member_path(raw_name: str, archive: str) -> str | None:
    """The normalised relative POSIX path of a zip entry; InputError if it could escape the folder.

    Returns None for directory entries.
    """
    name = raw_name.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or (parts and len(parts[0]) == 2 and parts[0][1] == ":") or any(p == ".." for p in parts):
        raise InputError(
            f"zip entry {raw_name!r} has a path that escapes the archive's folder (absolute, drive letter or '..'); "
            "such archives are refused. Re-create the zip from inside the cohort folder.",
            source=archive,
            field=raw_name,
        )
    if "\x00" in name:
        raise InputError(f"zip entry {raw_name!r} has a NUL character in its name.", source=archive, field=raw_name)
    clean = posixpath.normpath(name)
    if name.endswith("/") or clean in (".", ""):
        return None
    return clean


def _hidden(path: str) -> bool:
    """OS clutter that is never patient data: dot files, __MACOSX, Thumbs.db."""
    parts = PurePosixPath(path).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("thumbs.db", "desktop.ini")


class UploadTree:
    """The files of a multi-patient upload (a folder or a zip), by relative POSIX path.

    Files are read on demand, each through the upload's decompression budget, so memory holds
    one file at a time (plus the zip itself, when the zip was uploaded as bytes).

    Use :meth:`open` to make one.

    Attributes
    ----------
    name : display name of the folder or zip.
    paths : sorted relative paths of the regular files (OS clutter such as ``.DS_Store`` left out).
    """

    def __init__(self, name: str, files: dict, reader, limits: UploadLimits, budget: Budget):
        self.name = name
        self._files = files  # path -> size in bytes (uncompressed, as declared)
        self._reader = reader
        self.limits = limits
        self.budget = budget
        self.paths = sorted(files)
        self._members: dict = {}  # zip uploads: path -> ZipInfo (for streamed, header-first reads)
        self._archive = None

    @classmethod
    def open(cls, source, name: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> UploadTree:
        """A folder path, a zip path, or zip bytes / file object, checked and listed.

        Raises
        ------
        InputError
            Over the upload cap, too many files, not a zip, an entry escaping the folder, a symbolic
            link, an encrypted entry, or declared sizes past the decompression cap.
        """
        label = source_name(source, name)
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            return cls._open_folder(Path(source), label, limits)
        label, data = read_source(source, label, limits)
        return cls._open_zip(data, label, limits)

    @classmethod
    def _open_folder(cls, root: Path, label: str, limits: UploadLimits) -> UploadTree:
        root = root.resolve()
        files = {}
        total = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                rel = full.relative_to(root).as_posix()
                if _hidden(rel):
                    continue
                if full.is_symlink():
                    # A link may point anywhere on the server: only links staying inside the folder count.
                    target = full.resolve()
                    if root not in target.parents:
                        raise InputError(
                            f"{rel!r} is a link to a file outside the upload folder; copy the file in instead.",
                            source=label,
                            field=rel,
                        )
                if not full.is_file():
                    continue
                size = full.stat().st_size
                total += size
                if total > limits.max_upload_bytes:
                    raise InputError(
                        f"the folder's files add up to more than the upload limit of {_mb(limits.max_upload_bytes)}.",
                        source=label,
                    )
                files[rel] = size
                if len(files) > limits.max_zip_entries:
                    raise InputError(f"the folder holds more than {limits.max_zip_entries} files.", source=label)

        def reader(rel: str, cap: int) -> bytes:
            path = root / rel
            try:
                with open(path, "rb") as handle:
                    return handle.read(cap + 1)
            except OSError as exc:
                raise InputError(f"cannot read the file: {exc.strerror or exc}.", source=rel) from exc

        return cls(label, files, reader, limits, Budget(limits))

    @classmethod
    def _open_zip(cls, data: bytes, label: str, limits: UploadLimits) -> UploadTree:
        import io

        if data[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise InputError(
                f"expected a zip archive (magic bytes 50 4b 03 04) or a folder, found {data[:4].hex(' ') or 'an empty file'}.",
                source=label,
            )
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            infos = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise InputError(f"the zip archive is damaged or truncated ({exc}).", source=label) from exc
        if len(infos) > limits.max_zip_entries:
            raise InputError(f"the zip holds {len(infos)} entries; at most {limits.max_zip_entries} are accepted.", source=label)
        files, members = {}, {}
        declared = 0
        for info in infos:
            rel = _safe_member_path(info.filename, label)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise InputError(f"zip entry {info.filename!r} is a symbolic link; links are refused.", source=label, field=info.filename)
            if rel is None or info.is_dir() or _hidden(rel):
                continue
            if info.flag_bits & 0x1:
                raise InputError(f"zip entry {info.filename!r} is encrypted; upload an unencrypted zip.", source=label, field=info.filename)
            if rel in files:
                raise InputError(f"zip entry {rel!r} appears twice.", source=label, field=rel)
            declared += info.file_size
            files[rel] = info.file_size
            members[rel] = info
        if declared > limits.max_decompressed_bytes:
            raise InputError(
                f"the zip's entries declare {_mb(declared)} uncompressed, more than the "
                f"{_mb(limits.max_decompressed_bytes)} allowed; this looks like a decompression bomb.",
                source=label,
            )

        def reader(rel: str, cap: int) -> bytes:
            # Headers can lie about sizes: read at most cap + 1 bytes and let the caller judge.
            try:
                with archive.open(members[rel]) as handle:
                    return handle.read(cap + 1)
            except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise InputError(f"this zip entry is damaged ({exc}).", source=rel) from exc

        tree = cls(label, files, reader, limits, Budget(limits))
        tree._members, tree._archive = members, archive
        return tree

    def read_declared(self, path: str, declared_size) -> DeclaredBytes:
        """One file's bytes, header first (see :func:`read_declared`): a compressed zip entry is
        streamed and refused as soon as its header or its size gives it away; a stored entry or a
        folder's file (no decompression) is read as by :meth:`read`."""
        if path not in self._files:
            raise InputError(f"no file {path!r} in this upload.", source=self.name)
        member = self._members.get(path)
        if member is None or member.compress_type == zipfile.ZIP_STORED:
            data = self.read(path)
            return DeclaredBytes(np.frombuffer(data, np.uint8), None)
        try:
            with self._archive.open(member) as handle:
                def read(n):
                    try:
                        return handle.read(n)
                    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
                        raise InputError(f"this zip entry is damaged ({exc}).", source=path) from exc

                return read_declared(read, path, declared_size, budget=self.budget, compressed_bytes=member.compress_size)
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"this zip entry is damaged ({exc}).", source=path) from exc

    def size(self, path: str) -> int:
        """Declared size of a file in bytes."""
        return self._files[path]

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The bytes of one file, counted against the upload's decompression budget.

        ``max_bytes``: the most this kind of file can hold (e.g. 1 MiB for a ``.bval``): reading
        stops there, whatever the upload's budget would still allow.
        """
        if path not in self._files:
            raise InputError(f"no file {path!r} in this upload.", source=self.name)
        cap = min(self.limits.max_upload_bytes, max(self.budget.left, 0))
        if max_bytes is not None and max_bytes < cap:
            data = self._reader(path, max_bytes)
            if len(data) > max_bytes:
                raise InputError(f"the file holds more than {_mb(max_bytes)}; a file of this kind is far smaller. It is damaged or not what its name says.", source=path)
            self.budget.spend(len(data), path)
            return data
        data = self._reader(path, cap)
        if len(data) > cap:
            raise InputError(
                f"decompresses to more than the {_mb(cap)} this upload may still use; "
                "this looks like a decompression bomb.",
                source=path,
            )
        self.budget.spend(len(data), path)
        return data


# ---------------------------------------------------------------- parsers that may crash

ISOLATED_TIMEOUT_S = 300.0  # a reader in a child process taking longer is stopped


def run_isolated(function, *args, source: str, reader: str, timeout_s: float = ISOLATED_TIMEOUT_S):
    """``function(*args)`` run in a new Python process, so that a parser in C or C++ crashing on a
    damaged file ends that process instead of this one (the server, with every session on it).

    ``function`` is a module-level function; it and its arguments go to the process by pickle. Its
    result comes back in a format that cannot run code (:mod:`core.io.isolated`: arrays, lists, dicts,
    text and numbers), and so does an exception it raises, which is raised here (an
    :class:`InputError` as itself, any other as a ``RuntimeError``). An :class:`InputError` naming
    ``source`` when the process dies from a signal (``reader`` crashed) or runs past ``timeout_s``
    seconds (it is then killed). Each call starts Python afresh, about 0.1 s with numpy: no state is
    shared between files.
    """
    import pickle
    import subprocess
    import sys

    from core.io.isolated import decode_answer
    from core.parallel import child_python_env

    try:
        done = subprocess.run([sys.executable, "-m", "core.io.isolated"], input=pickle.dumps((function, args)), capture_output=True,
                              timeout=timeout_s, env=child_python_env())
    except subprocess.TimeoutExpired:
        raise InputError(f"{reader} took more than {timeout_s:g} s on this file and was stopped.", source=source) from None
    if done.returncode < 0:
        raise InputError(f"{reader} crashed on this file (its process was killed by {signal.Signals(-done.returncode).name}); the file is "
                         "damaged in a way the checks before it did not catch. Export it again from the recording software.", source=source)
    if not done.stdout:
        raise RuntimeError(f"the {reader} process ended with code {done.returncode} without an answer:\n{done.stderr.decode(errors='replace')[-4000:]}")
    return decode_answer(done.stdout)
