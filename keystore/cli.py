"""`lightfence keys …`: create the vendor CA, enrol chips, create landmark keys and certificates."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from keystore.cert_files import write_certificate
from keystore.key_files import generate_key_file, load_signer
from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.codec import to_b64
from protocol.errors import ProtocolError

DAY_S = 86_400


def _ca(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ca = generate_key_file(out / "ca.key")
    (out / "ca.pub.json").write_text(
        json.dumps({"public_key_b64": to_b64(ca.public_key())}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"CA key {out / 'ca.key'} (0600), public key {out / 'ca.pub.json'}")
    return 0


def _validity(args: argparse.Namespace) -> tuple[int, int]:
    now_s = int(time.time())
    return now_s - 300, now_s + args.days * DAY_S  # 5 min back-dating absorbs clock skew


def _enrol(args: argparse.Namespace) -> int:
    ca = load_signer(args.ca_key)
    args.key_dir.mkdir(parents=True, exist_ok=True)
    args.cert_dir.mkdir(parents=True, exist_ok=True)
    chip_ids = (
        [f"sim-{i}" for i in range(args.simulate)] if args.simulate is not None else [args.chip_id]
    )
    if not chip_ids or None in chip_ids:
        print("error: give --chip-id or --simulate N", file=sys.stderr)
        return 2
    not_before, not_after = _validity(args)
    for chip_id in chip_ids:
        key_path = args.key_dir / f"{chip_id}.key"
        chip = load_signer(key_path) if key_path.exists() else generate_key_file(key_path)
        cert = issue_chip_certificate(
            ca, chip_id=chip_id, public_key=chip.public_key(), model=args.model,
            serial=args.serial or f"SIM{chip_id}", not_before_unix_s=not_before,
            not_after_unix_s=not_after,
        )
        write_certificate(args.cert_dir / f"{chip_id}.json", cert)
    print(f"enrolled {len(chip_ids)} chip(s): keys in {args.key_dir}, certificates in "
          f"{args.cert_dir}; key protection: software (a key file the host owner can copy)")
    return 0


def _landmark(args: argparse.Namespace) -> int:
    ca = load_signer(args.ca_key)
    args.key_dir.mkdir(parents=True, exist_ok=True)
    args.cert_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key_file(args.key_dir / f"{args.id}.key")
    not_before, not_after = _validity(args)
    cert = issue_landmark_certificate(
        ca, landmark_id=args.id, public_key=key.public_key(), lat_deg=args.lat, lon_deg=args.lon,
        not_before_unix_s=not_before, not_after_unix_s=not_after,
    )
    write_certificate(args.cert_dir / f"{args.id}.json", cert)
    print(f"landmark {args.id}: key {args.key_dir / (args.id + '.key')}, certificate "
          f"{args.cert_dir / (args.id + '.json')}")
    return 0


def _guarded(handler: object) -> object:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))  # type: ignore[operator]
        except ProtocolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="create the CA, enrol chips, create landmark keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    ca = sub.add_parser("ca", help="create the vendor CA key (ca.key, ca.pub.json)")
    ca.add_argument("--out", type=Path, required=True, help="directory for ca.key/ca.pub.json")
    ca.set_defaults(handler=_guarded(_ca))

    enrol = sub.add_parser("enrol", help="create a chip key and its CA-signed certificate")
    enrol.add_argument("--ca-key", type=Path, required=True)
    group = enrol.add_mutually_exclusive_group(required=True)
    group.add_argument("--chip-id", help="chip id (NVML UUID for real GPUs)")
    group.add_argument("--simulate", type=int, metavar="N", help="enrol sim-0 … sim-(N-1)")
    enrol.add_argument("--model", default="simulated")
    enrol.add_argument("--serial", default="")
    enrol.add_argument("--key-dir", type=Path, required=True, help="<chip_id>.key goes here")
    enrol.add_argument("--cert-dir", type=Path, required=True, help="<chip_id>.json goes here")
    enrol.add_argument("--days", type=int, default=365)
    enrol.set_defaults(handler=_guarded(_enrol))

    landmark = sub.add_parser("landmark", help="create a landmark key and certificate")
    landmark.add_argument("--ca-key", type=Path, required=True)
    landmark.add_argument("--id", required=True)
    landmark.add_argument("--lat", type=float, required=True, help="latitude, degrees")
    landmark.add_argument("--lon", type=float, required=True, help="longitude, degrees")
    landmark.add_argument("--key-dir", type=Path, required=True)
    landmark.add_argument("--cert-dir", type=Path, required=True)
    landmark.add_argument("--days", type=int, default=365)
    landmark.set_defaults(handler=_guarded(_landmark))
