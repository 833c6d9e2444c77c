"""`lightfence locate`: JSON Lines of measurements in, JSON Lines of assessments out.

A bad record yields {"id": ..., "error": "..."} and processing continues; the exit status is
1 if any record failed, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from geo.assess import assess
from geo.calibration import CalibrationModel, CalibrationSample
from geo.errors import GeoError, InvalidMeasurementError
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt

logger = logging.getLogger(__name__)

_RECORD_KEYS = frozenset({"id", "measurements", "calibration", "license", "licence"})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "locate",
        help="sound regions, estimates and licence verdicts for JSON Lines of RTTs",
        description="Read one target per JSON line (id, measurements, optional calibration "
        "and license); write one assessment per line. See docs/geo.md.",
    )
    parser.add_argument("--in", dest="input", default="-", help="input JSON Lines (default stdin)")
    parser.add_argument("--out", dest="output", default="-", help="output file (default stdout)")
    parser.set_defaults(handler=run_locate)


def _list_of_objects(value: object, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(x, Mapping) for x in value):
        raise InvalidMeasurementError(f"{where} must be a list of objects")
    return value


def _field(item: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in item:
        raise InvalidMeasurementError(f"{where}: missing {key!r}")
    return item[key]


def _measurements(value: object) -> list[LandmarkRtt]:
    result = []
    for i, item in enumerate(_list_of_objects(value, "measurements")):
        where = f"measurements[{i}]"
        result.append(
            LandmarkRtt(
                landmark_id=_field(item, "landmark", where),
                lat_deg=_field(item, "lat", where),
                lon_deg=_field(item, "lon", where),
                rtt_ms=_field(item, "rtt_ms", where),
            )
        )
    return result


def _calibration(value: object) -> CalibrationModel:
    samples = []
    for i, item in enumerate(_list_of_objects(value, "calibration")):
        where = f"calibration[{i}]"
        landmark = _field(item, "landmark", where)
        if not isinstance(landmark, str):
            raise InvalidMeasurementError(f"{where}: landmark must be a string")
        samples.append(
            CalibrationSample(
                landmark_id=landmark,
                distance_km=_field(item, "distance_km", where),
                rtt_ms=_field(item, "rtt_ms", where),
            )
        )
    return CalibrationModel.fit(samples)


def locate_record(record: object) -> dict[str, Any]:
    """Assess one input record; raises GeoError for bad input."""
    if not isinstance(record, Mapping):
        raise InvalidMeasurementError("record must be a JSON object")
    unknown = set(record) - _RECORD_KEYS
    if unknown:
        raise InvalidMeasurementError(f"unknown record keys: {', '.join(sorted(unknown))}")
    if "license" in record and "licence" in record:
        raise InvalidMeasurementError("give either 'license' or 'licence', not both")
    measurements = _measurements(_field(record, "measurements", "record"))
    calibration = _calibration(record["calibration"]) if "calibration" in record else None
    licence_obj = record.get("license", record.get("licence"))
    licence = licence_from_json(licence_obj) if licence_obj is not None else None
    assessment = assess(measurements, licence=licence, calibration=calibration)
    return {"id": record.get("id"), **assessment.to_json()}


def _error_line(record_id: object, line_number: int, message: str) -> str:
    logger.warning("record %r on line %d: %s", record_id, line_number, message)
    return json.dumps({"id": record_id, "line": line_number, "error": message})


def locate_lines(lines: Iterable[str], out: IO[str]) -> int:
    """Process JSON Lines; returns the number of failed records."""
    failures = 0
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record_id: object = None
        failed = True
        try:
            record = json.loads(line)
            if isinstance(record, Mapping):
                record_id = record.get("id")
            text = json.dumps(locate_record(record), allow_nan=False)
            failed = False
        except json.JSONDecodeError as exc:
            text = _error_line(None, line_number, f"invalid JSON: {exc}")
        except GeoError as exc:
            text = _error_line(record_id, line_number, str(exc))
        except Exception as exc:  # one broken record must not stop the batch
            logger.exception("record on line %d failed unexpectedly", line_number)
            text = _error_line(record_id, line_number, f"internal error: {exc!r}")
        failures += failed
        out.write(text + "\n")
    return failures


def run_locate(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        try:
            source = (
                sys.stdin
                if args.input == "-"
                else stack.enter_context(open(args.input, encoding="utf-8"))
            )
            sink = (
                sys.stdout
                if args.output == "-"
                else stack.enter_context(open(args.output, "w", encoding="utf-8"))
            )
        except OSError as exc:
            print(f"lightfence locate: {exc}", file=sys.stderr)
            return 2
        failures = locate_lines(source, sink)
    return 1 if failures else 0
