"""protocol/ is pure: no sockets, no clocks, no file or network I/O (the I/O lives in udp_io/,
keystore/ and the services). The rule is checked on the source's syntax tree, so an import or a
call that would do I/O fails the test before it ever runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"

# Modules that reach the outside world: sockets and event loops, clocks, files and processes.
FORBIDDEN_MODULES = frozenset({
    "asyncio", "fcntl", "glob", "http", "httpx", "importlib", "io", "mmap", "multiprocessing",
    "os", "pathlib", "select", "selectors", "shutil", "signal", "socket", "socketserver",
    "sqlite3", "ssl", "subprocess", "tempfile", "threading", "time", "urllib",
})
FORBIDDEN_BUILTINS = frozenset({"open", "input", "__import__"})
# Method names that read a clock (datetime.now, date.today) or touch files (pathlib-style).
FORBIDDEN_METHODS = frozenset({
    "now", "utcnow", "today", "read_text", "read_bytes", "write_text", "write_bytes", "mkdir",
    "unlink", "iterdir", "glob", "rglob", "touch",
})


def impurities(source: str) -> list[str]:
    """Each forbidden import or call in `source`, as 'line N: what'."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module] if node.level == 0 and node.module else [])
            found.extend(f"line {node.lineno}: import {module}" for module in modules
                         if module.split(".")[0] in FORBIDDEN_MODULES)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                found.append(f"line {node.lineno}: {func.id}()")
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_METHODS:
                found.append(f"line {node.lineno}: .{func.attr}()")
    return found


def protocol_modules() -> list[Path]:
    return sorted(PROTOCOL_DIR.rglob("*.py"))


def test_every_protocol_module_is_checked() -> None:
    names = {path.name for path in protocol_modules()}
    assert {"wire.py", "records.py", "keys.py", "certs.py", "challenger.py"} <= names


@pytest.mark.parametrize("path", protocol_modules(), ids=lambda p: p.name)
def test_protocol_module_is_pure(path: Path) -> None:
    assert impurities(path.read_text(encoding="utf-8")) == []


def test_protocol_ships_no_data_files() -> None:
    """Reading a shipped data file is file I/O too: constants live in modules."""
    assert [p.name for p in PROTOCOL_DIR.rglob("*") if p.is_file()
            and p.suffix not in (".py", ".pyc")] == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import socket\n", "line 1: import socket"),
    ("import time\n", "line 1: import time"),
    ("from time import time_ns\n", "line 1: import time"),
    ("import os.path\n", "line 1: import os.path"),
    ("from pathlib import Path\n", "line 1: import pathlib"),
    ("from importlib import resources\n", "line 1: import importlib"),
    ("x = 1\nwith open('k') as f:\n    pass\n", "line 2: open()"),
    ("import datetime\nt = datetime.datetime.now()\n", "line 2: .now()"),
    ("def f(p):\n    return p.read_bytes()\n", "line 2: .read_bytes()"),
    ("def f(p):\n    p.write_text('x')\n", "line 2: .write_text()"),
])
def test_the_check_catches_io(source: str, expected: str) -> None:
    assert impurities(source) == [expected]


def test_pure_code_passes() -> None:
    source = ("import hashlib\nimport datetime\nfrom protocol.codec import Writer\n"
              "def f(now: datetime.datetime) -> bytes:\n"
              "    return hashlib.sha256(now.isoformat().encode()).digest()\n")
    assert impurities(source) == []
