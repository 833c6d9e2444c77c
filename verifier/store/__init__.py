"""Storage: the `Store` protocol and its backends.

- `interface`: the protocol domain code talks to (`Store`, with `OpsStore`, `RevocationStore`);
- `schema`: the tables as numbered migrations, one source for both engines;
- `core`, `ops`, `revocations`, `fleet` (set-based bulk writes): the tables' SQL, which
  SQLite and PostgreSQL both run;
- `sqlite`: `SqliteStore`, the embedded default; `postgres`: `PostgresStore`;
- `open`: `open_store(config)`, the backend `database_url` names.
"""

from verifier.store.errors import ConstraintError, DuplicateKeyError, StoreError
from verifier.store.interface import OpsStore, RevocationStore, Store, TokenInfo
from verifier.store.open import open_store
from verifier.store.sqlite import SqliteStore

__all__ = ["ConstraintError", "DuplicateKeyError", "OpsStore", "RevocationStore", "SqliteStore",
           "Store", "StoreError", "TokenInfo", "open_store"]
