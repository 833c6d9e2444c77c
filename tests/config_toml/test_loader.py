"""One loader, the same refusals for every part: an unknown key, a wrong type, a missing
required key, an unknown table, a file that is not TOML or not there. Each message names the
file, the table and the key; the part raises its own config error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config_toml import ConfigFileError, Table, read_document
from device_agent.config import load_agent_config
from device_agent.errors import AgentConfigError
from landmark_node.config import load_landmark_config
from landmark_node.errors import LandmarkConfigError
from verifier.config import load_config
from verifier.errors import ConfigError


@dataclass(frozen=True)
class Part:
    name: str
    load: Callable[[Path], Any]
    error: type[Exception]
    text: str  # a valid config
    int_key: str  # an integer key of `table`
    required_key: str | None  # a key `table` must have (every verifier key has a default)

    @property
    def table(self) -> str:
        return f"[{self.name}]"


PARTS = [
    Part("agent", load_agent_config, AgentConfigError,
         '[agent]\nca_public_key = "c"\nlandmark_certs_dir = "l"\nkey_dir = "k"\nport = 7500\n',
         "port", "key_dir"),
    Part("landmark", load_landmark_config, LandmarkConfigError,
         '[landmark]\nid = "lm"\nkey_file = "k"\nca_public_key = "c"\nchip_certs_dir = "d"\n'
         'landmark_certs_dir = "e"\nspool_path = "s"\noutbox_dir = "o"\nchallenge_port = 7400\n',
         "challenge_port", "key_file"),
    Part("verifier", load_config, ConfigError, '[verifier]\ndata_dir = "v"\nport = 8080\n',
         "port", None),
]


@pytest.fixture(params=PARTS, ids=[p.name for p in PARTS])
def part(request: pytest.FixtureRequest) -> Part:
    return request.param  # type: ignore[no-any-return]


def refusal(part: Part, path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(part.error) as caught:
        part.load(path)
    assert isinstance(caught.value.__cause__, ConfigFileError)
    assert path.read_text(encoding="utf-8") == text  # the file is left as it was
    return str(caught.value)


def test_the_valid_config_loads(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    path.write_text(part.text, encoding="utf-8")
    assert part.load(path) is not None


def test_unknown_key_is_named(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    message = refusal(part, path, part.text.replace("\n", "\nprot = 7\n", 1))
    assert message == f"{path}: {part.table} has unknown keys ['prot']"


def test_unknown_table_is_named(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    message = refusal(part, path, part.text + "[extras]\nx = 1\n")
    assert message == f"{path}: has unknown keys ['extras']"


def test_wrong_type_is_named(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    text = "\n".join(
        f'{line.split(" = ")[0]} = "{line.split(" = ")[1]}"'
        if line.startswith(f"{part.int_key} = ") else line
        for line in part.text.splitlines()
    )
    message = refusal(part, path, text)
    assert message.startswith(f"{path}: {part.table} {part.int_key} must be an integer, not '")


def test_true_is_not_a_number(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    text = "\n".join(
        f"{part.int_key} = true" if line.startswith(f"{part.int_key} = ") else line
        for line in part.text.splitlines()
    )
    assert f"{part.int_key} must be an integer, not True" in refusal(part, path, text)


@pytest.mark.parametrize("part", [p for p in PARTS if p.required_key], ids=lambda p: p.name)
def test_missing_required_key_is_named(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    text = "\n".join(
        line for line in part.text.splitlines() if not line.startswith(f"{part.required_key} =")
    )
    message = refusal(part, path, text)
    assert message == f"{path}: {part.table} needs {part.required_key} (a path)"


def test_not_toml_and_no_file(part: Part, tmp_path: Path) -> None:
    path = tmp_path / f"{part.name}.toml"
    assert refusal(part, path, "port = [").startswith(f"{path}: cannot read {part.name} config:")
    with pytest.raises(part.error, match=f"cannot read {part.name} config: No such file"):
        part.load(tmp_path / "absent.toml")


def test_array_of_tables_entries_are_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        PARTS[0].text
        + '[[landmarks]]\nid = "a"\nhost = "h"\nport = 1\n[[landmarks]]\nid = "b"\nhost = "h"\n'
    )
    with pytest.raises(AgentConfigError) as caught:
        load_agent_config(path)
    assert str(caught.value) == f"{path}: [[landmarks]] 2 needs port (an integer)"


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "x.toml"
    path.parent.mkdir()
    path.write_text(f'[t]\nrel = "keys/a"\nabs = "{tmp_path / "b"}"\nempty = ""\n')
    table = read_document(path, "x").table("t")
    assert table.path("rel") == tmp_path / "etc" / "keys" / "a"
    assert table.path("abs") == tmp_path / "b"
    with pytest.raises(ConfigFileError, match=r"\[t\] empty must be a path, not ''"):
        table.path("empty")


def test_into_reads_by_the_dataclass_types() -> None:
    @dataclass(frozen=True, slots=True)
    class Settings:
        name: str = "x"
        count: int = 1
        ratio_s: float = 1.0
        on: bool = False
        where: Path | None = None
        tags: tuple[str, ...] = ()

    given = Table({"count": 3, "ratio_s": 2, "where": "w", "tags": ["a"]}, base_dir=Path("/b"))
    assert given.into(Settings) == {
        "count": 3, "ratio_s": 2.0, "where": Path("/b/w"), "tags": ("a",)
    }
    with pytest.raises(ConfigFileError, match=r"^has unknown keys \['colour'\]$"):
        Table({"colour": "red"}).into(Settings)
    with pytest.raises(ConfigFileError, match=r"^tags must be a list of strings, not \[1\]$"):
        Table({"tags": [1]}).into(Settings)
