"""A starter compaction key extractor in Python.

The key of a record is its record key, lower-cased when the parameter
`ignore-case` is `true` (so `User-1` and `user-1` compact together). Records
without a key have no compaction key (None: they are kept).

Rules of wit/plugin.wit: return exactly one entry per record; raise
`Err(message)` for errors (an uncaught exception traps the instance).
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types


class Compaction(exports.Compaction):
    ignore_case = False

    def init(self, params):
        for key, value in params:
            if key != "ignore-case":
                raise Err(f"unknown parameter `{key}` (accepted: ignore-case)")
            if value not in ("true", "false"):
                raise Err(f"`ignore-case` = {value!r}: expected true or false")
            Compaction.ignore_case = value == "true"
        host.log(types.Level.INFO, f"my-keys ready: ignore-case={Compaction.ignore_case}")

    def extract_keys(self, records):
        return [key_of(record.key, Compaction.ignore_case) for record in records]


def key_of(key, ignore_case):
    """The compaction key for a record key (bytes or None)."""
    if key is None:
        return None
    return bytes(key).lower() if ignore_case else bytes(key)
