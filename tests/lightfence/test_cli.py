import subprocess
import sys

import pytest

from lightfence.cli import main


def test_version_flag_prints_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "lightfence 0.1.0" in capsys.readouterr().out


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: lightfence" in capsys.readouterr().err


def test_bench_hands_its_arguments_to_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "plan", "--countries", "ATA", "-k", "3"]) == 2
    assert "lightfence bench plan: no chip site in ATA" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "usage: lightfence bench" in capsys.readouterr().out


def test_bench_without_the_simulator_names_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sim.cli", None)  # as if the package were not installed
    assert main(["bench", "sim", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "the simulator is not installed (sim.cli is missing)" in err
    assert "pip install 'lightfence[sim]'" in err


def test_the_product_cli_loads_neither_simulator_nor_benchmarks() -> None:
    probe = (
        "import sys; from lightfence.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sim', 'benchmarks')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
