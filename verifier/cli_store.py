"""What every `lightfence verifier` command that edits the database directly shares (tokens,
revocations, channels, routes, mutes): the store of the `--config` file (or `--data-dir`,
`--database-url`), opened for one action and closed after; the result printed as JSON; errors
one line, exit 2.

The running verifier reads these tables on every use, so a change made here takes effect at
once, through the same domain functions (and checks) as the admin API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from verifier.config import load_config
from verifier.errors import VerifierError
from verifier.store import Store, open_store


def store_command(
    action: Callable[[Store, argparse.Namespace], object],
) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config, data_dir=args.data_dir,
                                 database_url=args.database_url)
            store = open_store(config)
            try:
                result = action(store, args)
            finally:
                store.close()
        except (VerifierError, OSError, json.JSONDecodeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0

    return handler
