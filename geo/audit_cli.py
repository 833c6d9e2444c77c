"""`lightfence landmarks audit`: check landmark coordinates against the mesh RTTs."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from geo.audit import audit_landmarks
from geo.errors import GeoError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("landmarks", help="landmark fleet tools")
    commands = group.add_subparsers(dest="landmarks_command", metavar="COMMAND")
    audit = commands.add_parser(
        "audit",
        help="flag landmarks whose claimed coordinates contradict the mesh RTTs",
        description="Prints JSON: per landmark ok / suspect / impossible with the evidence.",
    )
    audit.add_argument("--landmarks", type=Path, required=True, help="CSV with id,lat,lon")
    audit.add_argument("--mesh", type=Path, required=True, help="CSV with a,b,rtt_ms")
    audit.set_defaults(handler=run_audit)


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise GeoError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def _number(value: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GeoError(f"{where}: {value!r} is not a number") from None


def run_audit(args: argparse.Namespace) -> int:
    try:
        positions: dict[str, tuple[float, float]] = {}
        for line, row in enumerate(_read_csv(args.landmarks, ("id", "lat", "lon")), start=2):
            where = f"{args.landmarks}:{line}"
            if row["id"] in positions:
                raise GeoError(f"{where}: duplicate landmark id {row['id']!r}")
            positions[row["id"]] = (_number(row["lat"], where), _number(row["lon"], where))
        mesh = [
            (row["a"], row["b"], _number(row["rtt_ms"], f"{args.mesh}:{line}"))
            for line, row in enumerate(_read_csv(args.mesh, ("a", "b", "rtt_ms")), start=2)
        ]
        result = audit_landmarks(positions, mesh)
    except (OSError, GeoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {landmark_id: audit.to_json() for landmark_id, audit in sorted(result.items())}
    flagged = sum(1 for audit in result.values() if audit.status != "ok")
    logger.info("audited %d landmarks, %d flagged", len(result), flagged)
    json.dump({"landmarks": report, "flagged": flagged}, sys.stdout, indent=2)
    print()
    return 0
