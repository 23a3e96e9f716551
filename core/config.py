"""Settings objects that read and write themselves: one way from a mapping, YAML or JSON file to a
frozen dataclass of settings and back, with errors that name the file and the unknown field."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar

from core.errors import InputError

__all__ = ["Settings"]


def _plain(value):
    """JSON types all the way down: tuples become lists, so a stored config equals a fresh one."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Settings:
    """Mixin for frozen dataclasses of settings (cohort, ablation and TMS dataset configs).

    A subclass sets ``SOURCE`` (how messages name it, e.g. "cohort config") and validates itself
    in ``__post_init__`` by raising :class:`~core.errors.InputError`. It may override
    :meth:`_completed` to fill partial tables from its defaults before construction.
    """

    SOURCE: ClassVar[str] = "settings"

    def to_dict(self) -> dict:
        """Plain JSON types (lists, not tuples)."""
        return _plain(dataclasses.asdict(self))

    def digest(self) -> str:
        """Short sha256 of :meth:`to_dict`: a cache key of everything derived from these settings."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def _completed(cls, data: dict) -> dict:
        return data

    @classmethod
    def from_dict(cls, data, source: str | None = None):
        """Settings from a mapping; InputError for a non-mapping, an unknown field or a bad value."""
        source = source or cls.SOURCE
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of config fields, found {type(data).__name__}.", source=source)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}.", source=source)
        try:
            return cls(**cls._completed(data))
        except InputError as exc:
            if source == cls.SOURCE:
                raise
            raise InputError(str(exc).removeprefix(f"{cls.SOURCE}: "), source=source) from exc

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of the settings; also written to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of the settings; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_file(cls, path: str | Path):
        """Settings from a ``.json`` file, or else a YAML file; InputError naming the file when unreadable."""
        import yaml

        path = Path(path)
        is_json = path.suffix.lower() == ".json"
        try:
            text = path.read_text()
            data = json.loads(text) if is_json else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the {cls.SOURCE}: {exc}", source=path.name) from exc
        return cls.from_dict({} if data is None else data, source=path.name)

    @classmethod
    def from_yaml(cls, path: str | Path):
        """Settings from a YAML file (see :meth:`from_file`)."""
        return cls.from_file(path)
