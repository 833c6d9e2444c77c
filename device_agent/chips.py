"""The chips this agent answers for: discovered through NVML, or simulated in software.

Each chip signs through a `Signer`. Until chips expose a hardware root of trust through a driver
API, the stand-in is a per-chip software key file named `<chip_id>.key` in the key directory,
created at enrolment (`lightfence keys enrol`).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from device_agent.errors import NvmlUnavailableError
from keystore.key_files import generate_key_file, load_signer
from protocol.errors import KeyFileError
from protocol.keys import Signer, SoftwareSigner

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chip:
    chip_id: str
    model: str
    serial: str
    signer: Signer


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def nvml_chip_id(uuid: str) -> str:
    """NVML UUIDs ("GPU-1a2b…") are already valid ids; anything else is made one, predictably."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", uuid)[:64]


def discover_nvml(key_dir: Path, nvml: ModuleType | None = None) -> list[Chip]:
    """Chips reported by NVML that have an enrolled key in `key_dir`; unenrolled GPUs are logged
    and skipped. NvmlUnavailableError when the library or driver is missing."""
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError as exc:
            raise NvmlUnavailableError(
                "nvidia-ml-py is not installed (pip install 'lightfence[nvml]'); "
                "use --simulate N for software chips"
            ) from exc
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses generated at run time
        raise NvmlUnavailableError(f"NVML did not initialise (no driver or GPU?): {exc}") from exc
    chips: list[Chip] = []
    try:
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            chip_id = nvml_chip_id(_text(nvml.nvmlDeviceGetUUID(handle)))
            model = _text(nvml.nvmlDeviceGetName(handle))
            try:
                serial = _text(nvml.nvmlDeviceGetSerial(handle))
            except Exception:  # consumer boards have no serial; NVML says NOT_SUPPORTED
                serial = "unknown"
            key_path = key_dir / f"{chip_id}.key"
            try:
                signer = load_signer(key_path)
            except KeyFileError as exc:
                logger.warning(
                    "GPU %d (%s, %s) not enrolled, skipped: %s", index, chip_id, model, exc
                )
                continue
            chips.append(Chip(chip_id, model, serial, signer))
    finally:
        nvml.nvmlShutdown()
    return chips


def simulated_chips(count: int, key_dir: Path | None) -> list[Chip]:
    """`count` software chips `sim-0`…; keys are loaded from (or created 0600 in) `key_dir`, or
    kept in memory only when `key_dir` is None."""
    chips: list[Chip] = []
    for index in range(count):
        chip_id = f"sim-{index}"
        signer: SoftwareSigner
        if key_dir is None:
            signer = SoftwareSigner.generate()
        else:
            key_path = key_dir / f"{chip_id}.key"
            signer = load_signer(key_path) if key_path.exists() else generate_key_file(key_path)
        chips.append(Chip(chip_id, "simulated", f"SIM{index:06d}", signer))
    return chips


def software_chips(chip_ids: Sequence[str], key_dir: Path) -> list[Chip]:
    """Chips whose keys were enrolled as files (`lightfence keys enrol`); a missing key is an
    error, never silently replaced by a new one."""
    return [
        Chip(chip_id, "software", chip_id, load_signer(key_dir / f"{chip_id}.key"))
        for chip_id in chip_ids
    ]
