"""Container and unit health checks, standard library only (the images carry no curl).

    healthcheck.py verifier URL        exit 0 when GET URL (the verifier's /healthz) is 200
    healthcheck.py landmark TOML       exit 0 when the landmark's challenge UDP port is held

A landmark has no HTTP side; its challenge socket is bound without SO_REUSEADDR/PORT, so a
second bind of that port fails exactly while the landmark is running and listening.
"""

from __future__ import annotations

import errno
import socket
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path


def verifier_healthy(url: str, timeout_s: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def landmark_healthy(config_path: Path) -> bool:
    table = tomllib.loads(config_path.read_text(encoding="utf-8"))["landmark"]
    host, port = str(table.get("host", "0.0.0.0")), int(table["challenge_port"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False  # the port was free: nobody is listening


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("verifier", "landmark"):
        print("usage: healthcheck.py verifier URL | landmark CONFIG.toml", file=sys.stderr)
        return 2
    healthy = (verifier_healthy(argv[1]) if argv[0] == "verifier"
               else landmark_healthy(Path(argv[1])))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
