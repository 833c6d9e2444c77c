"""NVIDIA GPU attestation reports: DMTF SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS response.

This is the layout `nvmlDeviceGetConfComputeGpuAttestationReport` returns in
`attestationReport[:attestationReportSize]`, as NVIDIA's own verifier parses it
(github.com/NVIDIA/nvtrust, guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/
attestation/spdm_msrt_req_msg.py and spdm_msrt_resp_msg.py):

request (37 bytes): SPDMVersion(1) RequestResponseCode(1, 0xE0) Param1(1) Param2(1)
    Nonce(32, chosen by the requester) SlotIDParam(1)
response: SPDMVersion(1) RequestResponseCode(1, 0x60) Param1(1) Param2(1) NumberOfBlocks(1)
    MeasurementRecordLength(3, little-endian) MeasurementRecord(L1) Nonce(32, the GPU's)
    OpaqueLength(2, LE) OpaqueData(L2) Signature(96: ECDSA P-384 r || s, big-endian)
measurement block: Index(1) MeasurementSpecification(1, 1 = DMTF) MeasurementSize(2, LE)
    then DMTFSpecMeasurementValueType(1) DMTFSpecMeasurementValueSize(2, LE) value
opaque data: repeated DataType(2, LE) DataSize(2, LE) Data (OPAQUE_FIELD_ID_* below)

The signature covers request || response without its signature, hashed with SHA-384 (NVIDIA's
HopperSettings / BlackwellSettings: signature_length 96, HashFunction sha384). Parsing is strict:
every length must add up exactly, so a truncated or padded report is refused, not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import ProtocolError

REQUEST_BYTES = 37
NONCE_BYTES = 32
SIGNATURE_BYTES = 96  # ECDSA P-384: 48-byte r, 48-byte s
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
DMTF_MEASUREMENT_SPECIFICATION = 1

# OPAQUE_FIELD_ID_* numbers from NVIDIA's OpaqueData.OPAQUE_DATA_TYPES (the ones read here).
OPAQUE_DRIVER_VERSION = 3
OPAQUE_GPU_INFO = 4
OPAQUE_VBIOS_VERSION = 6
OPAQUE_CHIP_SKU = 15
OPAQUE_PROJECT = 17
OPAQUE_FWID = 20


class SpdmError(ProtocolError):
    """An attestation report that is not a well-formed SPDM GET_MEASUREMENTS exchange."""


@dataclass(frozen=True, slots=True)
class MeasurementBlock:
    index: int
    value_type: int  # DMTFSpecMeasurementValueType
    value: bytes


@dataclass(frozen=True, slots=True)
class AttestationReport:
    request: bytes  # the exact 37 request bytes
    response: bytes  # the exact response bytes, signature included
    spdm_version: int
    request_param1: int
    request_param2: int
    request_nonce: bytes  # the nonce the requester chose (what a verifier checks)
    slot_id: int
    response_nonce: bytes  # the GPU's own nonce
    blocks: tuple[MeasurementBlock, ...]
    opaque: tuple[tuple[int, bytes], ...]  # (OPAQUE_FIELD_ID, data), in report order
    signature: bytes  # 96 bytes, r || s

    def signed_bytes(self) -> bytes:
        """What the GPU's attestation key signed: request || response minus its signature."""
        return self.request + self.response[:-SIGNATURE_BYTES]

    def opaque_field(self, field_id: int) -> bytes | None:
        for number, data in self.opaque:
            if number == field_id:
                return data
        return None

    def opaque_text(self, field_id: int) -> str | None:
        """A NUL-terminated text field (driver version, project, SKU), without its padding."""
        data = self.opaque_field(field_id)
        return None if data is None else data.split(b"\x00", 1)[0].decode("ascii", "replace")


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._offset = 0
        self._what = what

    def take(self, count: int, field: str) -> bytes:
        end = self._offset + count
        if end > len(self._data):
            raise SpdmError(f"{self._what} truncated: {field} needs {count} bytes at offset "
                            f"{self._offset}, {len(self._data) - self._offset} left")
        chunk = self._data[self._offset:end]
        self._offset = end
        return chunk

    def uint(self, count: int, field: str) -> int:
        return int.from_bytes(self.take(count, field), "little")

    @property
    def at_end(self) -> bool:
        return self._offset >= len(self._data)

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise SpdmError(f"{self._what} has {len(self._data) - self._offset} trailing bytes")


def _blocks(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    reader = _Reader(record, "measurement record")
    blocks = []
    for _ in range(count):
        index = reader.uint(1, "Index")
        spec = reader.uint(1, "MeasurementSpecification")
        if spec != DMTF_MEASUREMENT_SPECIFICATION:
            raise SpdmError(f"measurement block {index} is not in DMTF format (spec {spec})")
        block = _Reader(reader.take(reader.uint(2, "MeasurementSize"), "Measurement"),
                        f"measurement block {index}")
        value_type = block.uint(1, "DMTFSpecMeasurementValueType")
        value = block.take(block.uint(2, "DMTFSpecMeasurementValueSize"),
                           "DMTFSpecMeasurementValue")
        block.finish()
        blocks.append(MeasurementBlock(index, value_type, value))
    reader.finish()
    if not blocks:
        raise SpdmError("the response holds no measurement block")
    return tuple(blocks)


def _opaque(data: bytes) -> tuple[tuple[int, bytes], ...]:
    reader = _Reader(data, "opaque data")
    fields = []
    while not reader.at_end:
        field_id = reader.uint(2, "DataType")
        fields.append((field_id, reader.take(reader.uint(2, "DataSize"), "Data")))
    return tuple(fields)


def parse_attestation_report(report: bytes) -> AttestationReport:
    """Parse the bytes NVML returns (exactly `attestationReportSize` of them); SpdmError if they
    are not one GET_MEASUREMENTS request followed by one signed MEASUREMENTS response."""
    if len(report) <= REQUEST_BYTES + SIGNATURE_BYTES:
        raise SpdmError(f"attestation report of {len(report)} bytes is too short")
    request, response = report[:REQUEST_BYTES], report[REQUEST_BYTES:]
    req = _Reader(request, "GET_MEASUREMENTS request")
    version = req.uint(1, "SPDMVersion")
    if req.uint(1, "RequestResponseCode") != GET_MEASUREMENTS:
        raise SpdmError("the report does not start with an SPDM GET_MEASUREMENTS request")
    param1, param2 = req.uint(1, "Param1"), req.uint(1, "Param2")
    request_nonce = req.take(NONCE_BYTES, "Nonce")
    slot_id = req.uint(1, "SlotIDParam")
    resp = _Reader(response, "MEASUREMENTS response")
    if resp.uint(1, "SPDMVersion") != version:
        raise SpdmError("request and response SPDM versions differ")
    if resp.uint(1, "RequestResponseCode") != MEASUREMENTS:
        raise SpdmError("the response is not an SPDM MEASUREMENTS response")
    resp.take(2, "Param1/Param2")
    count = resp.uint(1, "NumberOfBlocks")
    blocks = _blocks(resp.take(resp.uint(3, "MeasurementRecordLength"), "MeasurementRecord"),
                     count)
    response_nonce = resp.take(NONCE_BYTES, "Nonce")
    opaque = _opaque(resp.take(resp.uint(2, "OpaqueLength"), "OpaqueData"))
    signature = resp.take(SIGNATURE_BYTES, "Signature")
    resp.finish()
    return AttestationReport(request, response, version, param1, param2, request_nonce, slot_id,
                             response_nonce, blocks, opaque, signature)
