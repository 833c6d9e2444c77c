"""`lightfence verifier chips set-site|clear-site|baseline|reset-baseline`: a chip's declared
site and learned RTT baseline, through the running verifier's HTTP API (the same checks, the
same transaction, and the running service sees the change at once).

The token is an admin token (a reader's for `baseline`) read from `--token-file` or the
`LIGHTFENCE_TOKEN` environment variable; the answer is printed as JSON. Exit status 0 on
success, 2 when the verifier refuses (its error printed) or cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

_TIMEOUT_S = 30.0


def register(sub: Any) -> None:
    chips = sub.add_parser("chips", help="a chip's declared site and learned RTT baseline "
                           "(through the verifier's HTTP API)")
    csub = chips.add_subparsers(dest="chips_command", metavar="ACTION", required=True)
    set_site = csub.add_parser("set-site", help="declare the data centre the chip is licensed "
                               "at (resets its learned RTT baseline)")
    set_site.add_argument("chip_id")
    set_site.add_argument("--lat-deg", type=float, required=True)
    set_site.add_argument("--lon-deg", type=float, required=True)
    set_site.set_defaults(handler=_set_site)
    clear = csub.add_parser("clear-site", help="remove the chip's declared site")
    clear.add_argument("chip_id")
    clear.set_defaults(handler=_clear_site)
    show = csub.add_parser("baseline", help="print the chip's learned best RTT per landmark")
    show.add_argument("chip_id")
    show.set_defaults(handler=_baseline)
    reset = csub.add_parser("reset-baseline", help="forget the chip's learned RTTs (after a "
                            "legitimate move or a lasting route change)")
    reset.add_argument("chip_id")
    reset.set_defaults(handler=_reset_baseline)
    for parser in (set_site, clear, show, reset):
        parser.add_argument("--url", required=True, help="the verifier, e.g. http://host:8080")
        parser.add_argument("--token-file", type=Path,
                            help="file holding the API token (default: $LIGHTFENCE_TOKEN)")


class _Refused(Exception):
    """The verifier could not be reached or refused the request (message printable)."""


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        path: Path = args.token_file
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _Refused(f"cannot read the token file: {exc}") from exc
    token = os.environ.get("LIGHTFENCE_TOKEN", "").strip()
    if not token:
        raise _Refused("no token: pass --token-file or set LIGHTFENCE_TOKEN")
    return token


def _call(args: argparse.Namespace, method: str, path: str, body: object | None = None) -> Any:
    url = args.url.rstrip("/") + path
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise _Refused(f"--url must be http:// or https://, got {args.url!r}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {_token(args)}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _Refused(f"{exc.code}: {_detail(exc.read())}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _Refused(f"cannot reach the verifier at {args.url}: {exc}") from exc


def _detail(raw: bytes) -> str:
    try:
        detail = json.loads(raw).get("detail", raw.decode(errors="replace"))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")
    if isinstance(detail, list):  # pydantic's list of field errors
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', ())[1:])}: {d.get('msg')}"
                         for d in detail if isinstance(d, dict))
    return str(detail)


def _run(args: argparse.Namespace, method: str, path: str, body: object | None = None) -> int:
    try:
        answer = _call(args, method, path, body)
    except _Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0


def _chip_path(args: argparse.Namespace, tail: str) -> str:
    return f"/v1/chips/{urllib.parse.quote(args.chip_id, safe='')}/{tail}"


def _set_site(args: argparse.Namespace) -> int:
    return _run(args, "PUT", _chip_path(args, "site"),
                {"lat_deg": args.lat_deg, "lon_deg": args.lon_deg})


def _clear_site(args: argparse.Namespace) -> int:
    return _run(args, "DELETE", _chip_path(args, "site"))


def _baseline(args: argparse.Namespace) -> int:
    return _run(args, "GET", _chip_path(args, "rtt-baseline"))


def _reset_baseline(args: argparse.Namespace) -> int:
    return _run(args, "DELETE", _chip_path(args, "rtt-baseline"))
