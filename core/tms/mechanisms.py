"""Compile and load the NMODL channel mechanisms in ``core/tms/mod/`` (NEURON ``nrnivmodl``).

The mechanisms are written for this project; each ``.mod`` file cites the published equations:

- ``nat``  transient Na (Colbert & Pan 2002, as formulated by Hay et al. 2011; Aberra et al. 2018)
- ``kv31`` Kv3.1 fast delayed rectifier K (Rettig et al. 1992, as fitted by Hay et al. 2011)
- ``xtra`` couples a quasipotential times the TMS waveform to ``e_extracellular`` (after
  Carnevale's xtra.mod, as used by Aberra et al. 2018/2020)

Build products go outside the source tree, into ``<repo>/.build/nrnmech/<digest>/`` (``.build/``
is git-ignored), or under ``$NEUROPREDICT_NRNMECH_DIR`` when that is set. ``<digest>`` is a
sha256 of the ``.mod`` files, so editing a mechanism gives a fresh build and a stale library is
never loaded. Compilation takes an exclusive file lock and publishes the build with an atomic
rename, so joblib workers that start together compile once. ``python -m core.tms.mechanisms``
compiles ahead of time (the ``make test`` set-up step) and prints the library path.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.store.locks import exclusive_lock

__all__ = ["MOD_DIR", "MECHANISMS", "build_dir", "compile_mechanisms", "load_mechanisms", "mod_digest"]

MOD_DIR = Path(__file__).resolve().parent / "mod"
MECHANISMS = ("nat", "kv31", "xtra")
COMPILE_LOCK_WAIT_S = 600.0  # a build takes under a minute; a holder stuck longer is named in the error
_ENV_DIR = "NEUROPREDICT_NRNMECH_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]

_loaded_library: Path | None = None


def mod_digest() -> str:
    """sha256 (first 16 hex digits) over the names and bytes of ``core/tms/mod/*.mod``."""
    digest = hashlib.sha256()
    for path in sorted(MOD_DIR.glob("*.mod")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    """Folder holding the build for the current ``.mod`` files (it may not exist yet)."""
    root = Path(os.environ[_ENV_DIR]) if os.environ.get(_ENV_DIR) else _REPO_ROOT / ".build" / "nrnmech"
    return root / mod_digest()


def _library_in(folder: Path) -> Path:
    return folder / platform.machine() / "libnrnmech.so"


def _nrnivmodl() -> str:
    beside_python = Path(sys.executable).with_name("nrnivmodl")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nrnivmodl")
    if found is None:
        raise RuntimeError("nrnivmodl not found: install NEURON (pip install neuron) in this environment.")
    return found


def compile_mechanisms(force: bool = False) -> Path:
    """Compile the ``.mod`` files unless a build for their digest exists; return ``libnrnmech.so``.

    Parameters
    ----------
    force : bool
        Rebuild even if a build for the current digest exists.
    """
    target = build_dir()
    library = _library_in(target)
    if library.exists() and not force:
        return library
    target.parent.mkdir(parents=True, exist_ok=True)
    # One compiler at a time; the others wait, then reuse its build.
    with exclusive_lock(target.parent / ".lock", COMPILE_LOCK_WAIT_S, "the build of the NEURON mechanisms is"):
        if library.exists() and not force:
            return library
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=target.parent))
        staging.chmod(0o755)
        for path in sorted(MOD_DIR.glob("*.mod")):
            shutil.copy2(path, staging / path.name)
        result = subprocess.run([_nrnivmodl(), "."], cwd=staging, capture_output=True, text=True)
        if result.returncode != 0 or not _library_in(staging).exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"nrnivmodl failed in {staging}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)  # atomic publish: a reader sees no build or a whole one
    return library


def _mechanisms_present(h) -> bool:
    names = set()
    for kind in (0, 1):  # distributed and point-process mechanism types
        mt = h.MechanismType(kind)
        name = h.ref("")
        for i in range(int(mt.count())):
            mt.select(i)
            mt.selected(name)
            names.add(name[0])
    return all(m in names for m in MECHANISMS)


def load_mechanisms() -> Path:
    """Compile if needed and load the mechanisms into this process's NEURON, once.

    Safe to call many times and from each joblib worker (each process loads its own copy).
    Also loads ``stdrun.hoc``. Returns the path of the loaded library.
    """
    global _loaded_library
    if _loaded_library is not None:
        return _loaded_library
    from neuron import h

    library = compile_mechanisms()
    if not _mechanisms_present(h):
        if not h.nrn_load_dll(str(library)):
            raise RuntimeError(f"NEURON could not load {library}")
    h.load_file("stdrun.hoc")
    _loaded_library = library
    return library


if __name__ == "__main__":
    print(compile_mechanisms(force="--force" in sys.argv))
