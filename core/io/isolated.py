"""The process :func:`core.io.safety.run_isolated` starts: ``python -m core.io.isolated``.

Reads a pickled ``(function, args)`` on stdin, calls it, and writes the pickled
``("returned", value)`` or ``("raised", exception)`` to what was stdout. While the function runs,
file descriptor 1 points at stderr, so that a library printing to stdout cannot corrupt the answer.
"""

import os
import pickle
import sys


def main() -> None:
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    function, args = pickle.load(sys.stdin.buffer)
    try:
        result = ("returned", function(*args))
    except Exception as exc:  # noqa: BLE001 - raised again in the caller
        result = ("raised", exc)
    try:
        data = pickle.dumps(result)
    except Exception:  # noqa: BLE001 - an exception or result that does not pickle: said as text
        data = pickle.dumps(("raised", RuntimeError(f"{type(result[1]).__name__}: {result[1]}")))
    answer.write(data)
    answer.close()


if __name__ == "__main__":
    main()
