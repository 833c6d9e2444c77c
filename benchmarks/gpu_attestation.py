"""How long one NVIDIA GPU attestation takes, through the same NVML calls the agent makes.

    python -m benchmarks.gpu_attestation [--calls 100] [--gpu-index 0]

Run on a GPU host in confidential-computing mode (needs `nvidia-ml-py`). Each call asks for a
report over a fresh random nonce (`nvmlDeviceGetConfComputeGpuAttestationReport`, timed alone)
and, once, the certificate chain. Prints JSON: median, p99, min and max in ms over the calls, the
report size, the driver version the report names, and on failure NVML's exact error. These are
the figures docs/protocol.md ("Could the GPU's attestation be the timed response?") asks for: a
measured minimum is still not a guaranteed floor.
"""

from __future__ import annotations

import argparse
import importlib
import json
import secrets
import statistics
import time
from types import ModuleType
from typing import Any

from protocol.spdm import OPAQUE_DRIVER_VERSION, parse_attestation_report


def measure(nvml: ModuleType, gpu_index: int, calls: int) -> dict[str, Any]:
    """Time `calls` attestation reports on GPU `gpu_index`; NVML errors end up in the result."""
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses generated at run time
        return {"ok": False, "error": f"nvmlInit: {exc}"}
    durations_ms: list[float] = []
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
        chain = nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
        report = b""
        for _ in range(calls):
            nonce = secrets.token_bytes(32)
            start_ns = time.perf_counter_ns()
            raw = nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
            durations_ms.append((time.perf_counter_ns() - start_ns) / 1e6)
            report = bytes(raw.attestationReport[: int(raw.attestationReportSize)])
    except Exception as exc:
        return {"ok": False, "calls_done": len(durations_ms),
                "error": f"{type(exc).__name__}: {exc}"}
    finally:
        nvml.nvmlShutdown()
    ordered = sorted(durations_ms)
    return {
        "ok": True,
        "calls": calls,
        "median_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "report_bytes": len(report),
        "cert_chain_bytes": int(chain.attestationCertChainSize),
        "driver_version": parse_attestation_report(report).opaque_text(OPAQUE_DRIVER_VERSION),
    }


def main(argv: list[str] | None = None, nvml: ModuleType | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--gpu-index", type=int, default=0)
    args = parser.parse_args(argv)
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            print(json.dumps({"ok": False, "error": "nvidia-ml-py is not installed"}))
            return 1
    result = measure(nvml, args.gpu_index, max(1, args.calls))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
