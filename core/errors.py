"""Errors meant for people: bad input, said so that a clinician can act on it."""


class InputError(ValueError):
    """Bad input: names the file, the field, what was expected and what was found."""

    def __init__(self, message, *, source=None, field=None):
        self.source = source
        self.field = field
        prefix = " ".join(p for p in (f"{source}:" if source else "", f"[{field}]" if field else "") if p)
        super().__init__(f"{prefix} {message}".strip())
