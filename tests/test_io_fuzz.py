"""Every reader under fuzz: malformed files give InputError and nothing else.

The regular suite runs a short derandomized fuzz per reader (40 examples; the same ones every run,
``NEUROPREDICT_FUZZ_SMALL`` changes the count) and replays every file that once broke a reader
(``tests/fuzz_corpus/<reader>/``). The hunt with >= 500 randomized examples per reader is
``python -m tests.bench_fuzz --fuzz``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_support import CORPUS, corpus_files, targets, try_read

SMALL = settings(
    max_examples=int(os.environ.get("NEUROPREDICT_FUZZ_SMALL", "40") or 40),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("reader", sorted(targets()))
def test_short_fuzz_of_each_reader_gives_only_input_errors(reader):
    target = targets()[reader]

    @SMALL
    @given(target.strategy)
    def check(value):
        exc = try_read(target, value)
        assert exc is None, f"{reader}: {type(exc).__name__}: {exc}"

    check()


_CORPUS = corpus_files()


@pytest.mark.parametrize("reader, path", _CORPUS, ids=[f"{r}/{p.name}" for r, p in _CORPUS])
def test_files_that_once_broke_a_reader_give_only_input_errors(reader, path):
    target = targets()[reader]
    exc = try_read(target, target.decode(path.read_bytes()))
    assert exc is None, f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}"


def test_the_corpus_holds_a_file_for_each_bug_found():
    # Bugs found by the hunt (see tests/fuzz_corpus/*/*.txt for the exception each one raised).
    readers = {reader for reader, _ in _CORPUS}
    assert readers <= set(targets())
    for _, path in _CORPUS:
        assert path.with_name(path.name.split(".")[0] + ".txt").exists(), path
