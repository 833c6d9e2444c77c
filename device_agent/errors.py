"""Errors of the device agent; the message is user-facing."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error raised by `device_agent`."""


class AgentConfigError(AgentError):
    """The agent configuration file is missing, malformed or inconsistent."""


class NvmlUnavailableError(AgentError):
    """nvidia-ml-py is not installed or no NVIDIA driver/GPU answered."""


class GpuAttestationUnavailableError(AgentError):
    """The GPU gave no attestation (not in confidential-computing mode, old driver, no GPU), or
    the verifier refused it; the message carries NVML's or the verifier's words."""
