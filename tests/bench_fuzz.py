"""Hostile input: bomb refusal and the fuzz hunt (``python -m tests.bench_fuzz``): one JSON line per figure.

Not tests: nothing here asserts a time.

Bombs (each measured in a fresh subprocess, so that its peak memory is its own):

- ``bomb_refusal/<case>``: a 2 GiB gzip bomb (~2 MB on disk) read by ``read_nifti`` /
  ``read_edf``: seconds to the InputError and peak extra resident memory (MB above the peak
  before the read, imports done). Cases: zeros named ``.nii.gz``; a valid NIfTI header declaring
  an 8 x 8 x 8 image followed by 2 GiB of zeros; a header declaring 30000^3 voxels; a header
  declaring a 2 GiB image; a valid EDF header followed by 2 GiB of zeros (``.edf.gz``).
- ``bomb_refusal/ten_at_once``: ten of those bombs read at once by ten threads of one process:
  wall seconds until all ten are refused, the slowest single refusal, and peak extra memory.
- ``bomb_refusal/old_path_256mib`` vs ``new_path_256mib``: the baseline measured in the same run,
  the old path (decompress with the 4 GiB cap, then look at the header; the code as it was before
  header-first reading, kept verbatim below) on a 256 MiB zeros bomb (a 2 GiB one takes the old
  path ~10 s and ~4 GB, so 256 MiB keeps the run short), against the new path on the same file.

Fuzz (``fuzz/<reader>``): hypothesis draws ``NEUROPREDICT_FUZZ_EXAMPLES`` (default 500) malformed
files per reader from valid seeds (see ``tests/fuzz_support.py``; randomized, a new hunt each run;
``--seed N`` to repeat one) and reads each; any exception other than InputError is a failure and
the file is saved to ``tests/fuzz_corpus/<reader>/``. Prints examples run, failures, seconds, and how
many mutated files were still read (a harmless mutation) or refused with an InputError.
Run one part with ``--bombs`` or ``--fuzz [reader ...]``; ``--old-2gib`` measures the old path on the
full 2 GiB bomb (not in the default run: it takes ~18 s and ~4 GB of memory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

_CHUNK = 1 << 20


def _old_gunzip_capped(data: bytes, source: str, cap: int) -> bytes:
    """The gzip reader before header-first decompression (core/io/safety.py at 4a1b878), verbatim
    but for the Budget, inlined as a byte count."""
    from core.errors import InputError

    left = cap
    out = []
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while True:
                chunk = inflater.decompress(pending, _CHUNK)
                left -= len(chunk)
                if left < 0:
                    raise InputError("decompresses to more than the cap; this looks like a decompression bomb.", source=source)
                out.append(chunk)
                pending = inflater.unconsumed_tail
                if inflater.eof or not pending and not chunk:
                    break
        except zlib.error as exc:
            raise InputError(f"the gzip stream is corrupt ({exc}).", source=source) from exc
        if not inflater.eof:
            raise InputError("the gzip stream is truncated.", source=source)
        rest = inflater.unused_data
        if rest and rest[:2] != b"\x1f\x8b":
            if rest.strip(b"\x00"):
                raise InputError("unexpected bytes after the end of the gzip stream.", source=source)
            break
    return b"".join(out)


def _old_path(path: str, name: str):
    """Old ``read_nifti`` order: the whole gzip stream (4 GiB cap), then the magic bytes."""
    from core.io.volumes import _nifti_class

    raw = _old_gunzip_capped(Path(path).read_bytes(), name, 4 << 30)
    _nifti_class(raw, name)


def _probe(mode: str, kind: str, paths: list[str], names: list[str]) -> dict:
    """Run in a subprocess: refuse the bomb(s), report seconds and peak extra memory."""
    import resource
    import threading

    import numpy as np

    from core.errors import InputError
    from core.io.emg import read_edf
    from core.io.volumes import read_nifti
    from tests.io_support import nifti_bytes

    def read(kind, path, name):
        if mode == "old":
            return _old_path(path, name)
        if kind == "edf":
            return read_edf(path, name)
        return read_nifti(path, name, dims="any")

    read_nifti(nifti_bytes(np.ones((8, 8, 8)), np.eye(4)), "warm.nii")
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - MB on Linux
    before = rss()
    times, refused, errors = [], [], []

    def one(k, p, n):
        start = time.perf_counter()
        try:
            read(k, p, n)
            refused.append(False)
        except InputError as exc:
            refused.append(True)
            errors.append(str(exc)[:160])
        times.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(kind[i] if isinstance(kind, list) else kind, p, n)) for i, (p, n) in enumerate(zip(paths, names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"wall_seconds": round(wall, 4), "slowest_seconds": round(max(times), 4), "extra_mb": round(rss() - before, 1),
            "all_refused": all(refused) and len(refused) == len(paths), "message": errors[0] if errors else None}


def _run_probe(mode, kind, paths, names) -> dict:
    args = json.dumps([mode, kind, [str(p) for p in paths], names])
    run = subprocess.run([sys.executable, "-m", "tests.bench_fuzz", "--probe", args], capture_output=True, text=True, timeout=600, check=False)
    if run.returncode:
        return {"error": run.stderr[-500:]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def bench_old_path_2gib() -> list[dict]:
    """The old path on the full 2 GiB zeros bomb (``--old-2gib``; ~18 s and ~4 GB on the 2-core dev box)."""
    from tests.bomb_support import GiB, gzip_bomb

    with tempfile.TemporaryDirectory() as folder:
        path = gzip_bomb(Path(folder) / "zeros.nii.gz", 2 * GiB)
        old = _run_probe("old", "nifti", [path], ["zeros.nii.gz"])
        new = _run_probe("new", "nifti", [path], ["zeros.nii.gz"])
    ratio = round(old["wall_seconds"] / new["wall_seconds"], 1) if new.get("wall_seconds") and old.get("wall_seconds") else None
    return [{"name": "bomb_refusal/old_path_2gib", **old},
            {"name": "bomb_refusal/new_path_2gib", **new, "baseline_seconds": old.get("wall_seconds"), "baseline_extra_mb": old.get("extra_mb"), "speedup_over_baseline": ratio}]


def bench_bombs() -> list[dict]:
    from tests.bomb_support import GiB, MiB, absurd_nifti_header, edf_header, gzip_bomb, nifti_header

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        cases = {
            "zeros.nii.gz": (b"", "nifti"),
            "small_header.nii.gz": (nifti_header((8, 8, 8)), "nifti"),
            "absurd_header.nii.gz": (absurd_nifti_header(), "nifti"),
            "huge_header.nii.gz": (nifti_header((1024, 1024, 511)), "nifti"),
            "emg.edf.gz": (edf_header(), "edf"),
        }
        paths = {name: gzip_bomb(folder / name, 2 * GiB, head) for name, (head, _) in cases.items()}
        for name, (_, kind) in cases.items():
            result = _run_probe("new", kind, [paths[name]], [name])
            rows.append({"name": f"bomb_refusal/{name}", "decompressed_gib": 2, "compressed_mb": round(paths[name].stat().st_size / MiB, 2), **result,
                         "bar_seconds": 1.0, "bar_extra_mb": 100})
        names = [list(cases)[i % len(cases)] for i in range(10)]
        kinds = [cases[n][1] for n in names]
        result = _run_probe("new", kinds, [paths[n] for n in names], names)
        rows.append({"name": "bomb_refusal/ten_at_once", "threads": 10, **result, "bar_seconds": 1.0})
        small = gzip_bomb(folder / "zeros256.nii.gz", 256 * MiB)
        old = _run_probe("old", "nifti", [small], ["zeros256.nii.gz"])
        new = _run_probe("new", "nifti", [small], ["zeros256.nii.gz"])
        rows.append({"name": "bomb_refusal/old_path_256mib", **old})
        ratio = round(old["wall_seconds"] / new["wall_seconds"], 1) if new.get("wall_seconds") else None
        rows.append({"name": "bomb_refusal/new_path_256mib", **new, "baseline_seconds": old.get("wall_seconds"), "baseline_extra_mb": old.get("extra_mb"),
                     "speedup_over_baseline": ratio})
    return rows


def bench_fuzz(readers=None, examples: int | None = None, seed: int | None = None) -> list[dict]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.fuzz_support import outcome, save_to_corpus, targets

    examples = examples or int(os.environ.get("NEUROPREDICT_FUZZ_EXAMPLES", "500") or 500)
    rows = []
    for name, target in targets().items():
        if readers and name not in readers:
            continue
        count, failures, saved, kinds = [0], [], [], {"read": 0, "refused": 0}

        @settings(max_examples=examples, derandomize=False, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(target.strategy)
        def hunt(value):
            count[0] += 1
            exc = outcome(target, value)
            if isinstance(exc, str):
                kinds[exc] += 1
            else:
                failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                saved.append(str(save_to_corpus(target, value, exc).relative_to(Path(__file__).parent.parent)))

        if seed is not None:
            hunt = hypothesis_seed(seed)(hunt)
        start = time.perf_counter()
        hunt()
        seconds = time.perf_counter() - start
        row = {"name": f"fuzz/{name}", "examples": count[0], "failures": len(failures), "seconds": round(seconds, 2),
               "read_anyway": kinds["read"], "refused_with_input_error": kinds["refused"]}
        if failures:
            row["kinds"] = sorted(set(failures))[:5]
            row["saved"] = saved[:10]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv) -> None:
    if argv[:1] == ["--probe"]:
        mode, kind, paths, names = json.loads(argv[1])
        print(json.dumps(_probe(mode, kind, paths, names)))
        return
    seed = None
    if "--seed" in argv:
        k = argv.index("--seed")
        seed = int(argv[k + 1])
        argv = argv[:k] + argv[k + 2 :]
    if "--old-2gib" in argv:
        for row in bench_old_path_2gib():
            print(json.dumps(row), flush=True)
        return
    do_bombs = not argv or "--bombs" in argv
    do_fuzz = not argv or "--fuzz" in argv
    readers = [a for a in argv if not a.startswith("--")] or None
    if do_bombs:
        for row in bench_bombs():
            print(json.dumps(row), flush=True)
    if do_fuzz:
        bench_fuzz(readers, seed=seed)


if __name__ == "__main__":
    main(sys.argv[1:])
