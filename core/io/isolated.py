"""The process :func:`core.io.safety.run_isolated` starts (``python -m core.io.isolated``), and the
format of its answer.

The process reads a pickled ``(function, args)`` on stdin (written by the calling process, which
it trusts) and writes its answer to what was stdout. While the function runs, file descriptor 1
points at stderr, so that a library printing to stdout cannot corrupt the answer.

The answer is *not* a pickle: the process handles a hostile file, and a parser exploited by it
must not be able to run code in the caller through what it sends back. It is an ``.npz`` archive
read with ``allow_pickle=False``: the result's arrays, and a JSON description of the rest
(lists, dicts with text keys, text, numbers, booleans, None; a tuple comes back as a list). An
:class:`~core.errors.InputError` comes back as one, with its source and field; any other
exception as a ``RuntimeError`` naming its type and message.
"""

import io
import json
import os
import pickle
import sys

import numpy as np

from core.errors import InputError

_META = "__answer__"


def encode_answer(outcome: str, value) -> bytes:
    """``outcome`` "returned" (``value`` the result) or "raised" (``value`` the exception), as bytes."""
    arrays = {}

    def plain(item):
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise TypeError("an array of Python objects cannot be sent back")
            name = f"a{len(arrays)}"
            arrays[name] = item
            return {"__array__": name}
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, np.generic):
            return item.item()
        if item is None or isinstance(item, (str, int, float, bool)):
            return item
        raise TypeError(f"a {type(item).__name__} cannot be sent back")

    if outcome == "raised":
        meta = {"raised": {"type": type(value).__name__, "message": str(value),
                           "source": getattr(value, "source", None) if isinstance(value, InputError) else None,
                           "field": getattr(value, "field", None) if isinstance(value, InputError) else None}}
    else:
        meta = {"returned": plain(value)}
    buffer = io.BytesIO()
    np.savez(buffer, **{_META: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}, **arrays)
    return buffer.getvalue()


def decode_answer(data: bytes):
    """The result :func:`encode_answer` wrote; raises the exception it wrote."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        meta = json.loads(archive[_META].tobytes())
        arrays = {name: archive[name] for name in archive.files if name != _META}
    if "raised" in meta:
        raised = meta["raised"]
        if raised["type"] == "InputError":
            error = InputError(raised["message"])  # the message already carries source and field
            error.source, error.field = raised["source"], raised["field"]
            raise error
        raise RuntimeError(f"{raised['type']}: {raised['message']}")

    def rebuilt(item):
        if isinstance(item, dict):
            if set(item) == {"__array__"}:
                return arrays[item["__array__"]]
            return {k: rebuilt(v) for k, v in item.items()}
        if isinstance(item, list):
            return [rebuilt(v) for v in item]
        return item

    return rebuilt(meta["returned"])


def main() -> None:
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    function, args = pickle.load(sys.stdin.buffer)
    try:
        data = encode_answer("returned", function(*args))
    except Exception as exc:  # noqa: BLE001 - said to the caller, which raises it
        data = encode_answer("raised", exc)
    answer.write(data)
    answer.close()


if __name__ == "__main__":
    main()
