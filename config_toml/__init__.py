"""One TOML config loader for every part (verifier, landmark, agent).

Each part declares its fields by reading them from a `Table` (or, for a flat table, by its
config dataclass); every part then refuses the same bad input with the same words: the file,
the table and the key are named for an unknown key, a wrong type and a missing required key.
Standard library only, so any part may import it without pulling in another part.
"""

from config_toml.errors import ConfigFileError
from config_toml.reader import Table, load_file, read_document

__all__ = ["ConfigFileError", "Table", "load_file", "read_document"]
