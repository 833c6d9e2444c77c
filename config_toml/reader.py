"""`read_document(path, part)` → the file's top level as a `Table`; a part reads each key it
knows with the method of its type, then `finish` refuses every key nobody read."""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final, TypeVar

from config_toml.errors import ConfigFileError


class _Required:
    """The default of a key the file must give."""


REQUIRED: Final = _Required()
T = TypeVar("T")
_NO_CUSTOM: Mapping[str, Callable[[Table, str], object]] = {}


def read_document(path: Path, part: str) -> Table:
    """The parsed file; relative paths in it are relative to its folder. `part` names the
    config in the messages ("agent" → "cannot read agent config")."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read {part} config: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read {part} config: {exc}") from exc
    return Table(values, source=path, base_dir=path.parent)


def load_file(
    path: Path, part: str, read: Callable[[Table], T], error: Callable[[str], Exception]
) -> T:
    """`read` over the file at `path`; a refusal comes out as the part's own `error` type, with
    the same message."""
    try:
        return read(read_document(path, part))
    except ConfigFileError as exc:
        raise error(str(exc)) from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is no number


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class Table:
    """One TOML table. Each read names the key's type; a missing key without a default, a
    value of another type, and (at `finish`) a key nobody read are `ConfigFileError`s that
    name the file, the table and the key."""

    def __init__(
        self,
        values: Mapping[str, Any],
        *,
        source: Path | None = None,
        base_dir: Path | None = None,
        label: str = "",
    ) -> None:
        self._values = dict(values)
        self._source = source
        self._base_dir = base_dir
        self._label = label  # "[agent]", "[[landmarks]] 2"; "" for the top level
        self._read: set[str] = set()

    def error(self, message: str) -> ConfigFileError:
        """An error about this table, for a part's own checks (ranges, combinations)."""
        where = f"{self._source}: " if self._source is not None else ""
        table = f"{self._label} " if self._label else ""
        return ConfigFileError(f"{where}{table}{message}")

    def has(self, key: str) -> bool:
        return key in self._values

    def _value(
        self, key: str, default: object, expected: str, fits: Callable[[object], bool]
    ) -> object:
        self._read.add(key)
        if key not in self._values:
            if default is REQUIRED:
                raise self.error(f"needs {key} ({expected})")
            return default
        value = self._values[key]
        if not fits(value):
            raise self.error(f"{key} must be {expected}, not {value!r}")
        return value

    def text(self, key: str, default: str | _Required = REQUIRED) -> str:
        return str(self._value(key, default, "a string", lambda v: isinstance(v, str)))

    def integer(self, key: str, default: int | _Required = REQUIRED) -> int:
        value = self._value(key, default, "an integer", _is_int)
        assert isinstance(value, int)
        return value

    def number(self, key: str, default: float | _Required = REQUIRED) -> float:
        value = self._value(key, default, "a number", _is_number)
        assert isinstance(value, int | float)
        return float(value)

    def flag(self, key: str, default: bool | _Required = REQUIRED) -> bool:
        return bool(self._value(key, default, "true or false", lambda v: isinstance(v, bool)))

    def path(self, key: str) -> Path:
        """A required path, relative to the file's folder unless absolute."""
        found = self.optional_path(key, required=True)
        assert found is not None
        return found

    def optional_path(self, key: str, *, required: bool = False) -> Path | None:
        value = self._value(
            key,
            REQUIRED if required else None,
            "a path",
            lambda v: isinstance(v, str) and v != "",
        )
        if value is None:
            return None
        path = Path(str(value))
        return path if self._base_dir is None else self._base_dir / path

    def text_list(self, key: str, what: str = "strings") -> tuple[str, ...]:
        value = self._value(key, [], f"a list of {what}", _is_text_list)
        assert isinstance(value, list)
        return tuple(str(item) for item in value)

    def table(self, name: str, *, required: bool = False) -> Table:
        """The sub-table `[name]`; an empty one when it is absent and not required."""
        self._read.add(name)
        value = self._values.get(name)
        if value is None and required:
            raise self.error(f"missing [{name}] table")
        if value is not None and not isinstance(value, dict):
            raise self.error(f"[{name}] must be a table, not {value!r}")
        return self._child(value or {}, f"[{name}]")

    def tables(self, name: str) -> list[Table]:
        """The array of tables `[[name]]`, each read like a table of its own."""
        return [
            self._child(entry, f"[[{name}]] {number}")
            for number, entry in enumerate(self.raw_tables(name), start=1)
        ]

    def raw_tables(self, name: str) -> list[dict[str, Any]]:
        """`[[name]]` as plain mappings, for a part that checks their keys itself."""
        value = self._value(
            name,
            [],
            "an array of tables",
            lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
        )
        assert isinstance(value, list)
        return value

    def into(
        self,
        cls: type[Any],
        custom: Mapping[str, Callable[[Table, str], object]] = _NO_CUSTOM,
    ) -> dict[str, Any]:
        """The keys given, read by the types of `cls`'s dataclass fields (str, int, float,
        bool, Path, tuple[str, ...], or one of these or None); `custom` reads the others. The
        fields are the table's keys: any other key is refused."""
        hints = typing.get_type_hints(cls)
        given: dict[str, Any] = {}
        for field in fields(cls):
            if field.name in self._values:
                reader = custom.get(field.name) or _reader_for(hints[field.name])
                given[field.name] = reader(self, field.name)
        self.finish()
        return given

    def finish(self) -> None:
        """Refuse every key of this table that no read asked for."""
        unknown = sorted(set(self._values) - self._read)
        if unknown:
            raise self.error(f"has unknown keys {unknown}")

    def _child(self, values: Mapping[str, Any], label: str) -> Table:
        return Table(values, source=self._source, base_dir=self._base_dir, label=label)


_READERS: dict[object, Callable[[Table, str], object]] = {
    str: Table.text,
    int: Table.integer,
    float: Table.number,
    bool: Table.flag,
    Path: Table.optional_path,
    tuple[str, ...]: Table.text_list,
}


def _reader_for(hint: object) -> Callable[[Table, str], object]:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
        if len(kinds) == 1:
            hint = kinds[0]  # `X | None`: a value given is an X
    reader = _READERS.get(hint)
    if reader is None:
        raise TypeError(f"no TOML reader for {hint!r}: pass one in `custom`")
    return reader
