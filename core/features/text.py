"""Text embeddings of outcome descriptions, computed offline from the weights that ship inside the
``wordllama`` wheel (nothing is downloaded: a missing file is an error, not a fetch).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputError

EMBEDDING_SIZE = 256


@lru_cache(maxsize=1)
def _model():
    import wordllama

    package = Path(wordllama.__file__).parent  # holds weights/ and tokenizers/, laid out as wordllama's cache
    try:
        return wordllama.WordLlama.load(config="l2_supercat", cache_dir=package, dim=EMBEDDING_SIZE, disable_download=True)
    except FileNotFoundError as error:
        raise InputError(f"the text model's files are not inside the installed wordllama package ({error}); reinstall the pinned requirements.",
                         source="wordllama") from None


def embed_texts(texts) -> np.ndarray:
    """Unit-length embeddings (n, 256) of the given texts; the same text always gives the same vector."""
    texts = [str(t) for t in texts]
    if any(not t.strip() for t in texts):
        raise InputError("an outcome description is empty; describe the measure in a sentence.", field="description")
    new = sorted({t for t in texts if t not in _CACHE})
    if new:
        vectors = np.asarray(_model().embed(new, norm=True), dtype=np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        _CACHE.update(zip(new, vectors))
    return np.stack([_CACHE[t] for t in texts]) if texts else np.zeros((0, EMBEDDING_SIZE))


_CACHE: dict = {}  # text -> embedding; descriptions recur in every fold of an evaluation
