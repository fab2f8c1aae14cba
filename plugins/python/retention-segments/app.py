"""retention-segments: a retention policy written in Python.

Keeps at most `max.segments` closed segments per partition (see policy.py).
Built by plugins/build.sh with componentize-py (world retention-plugin).
"""

from wit_world import exports
from componentize_py_types import Err
from wit_world.exports import retention
from wit_world.imports import host, types

import policy


class Retention(exports.Retention):
    params = {}

    def init(self, params):
        try:
            Retention.params = policy.parse_params(params)
        except policy.PolicyError as error:
            raise Err(str(error))
        limit = Retention.params.get(policy.KEY, "-1")
        host.log(types.Level.DEBUG, f"retention-segments ready: default {policy.KEY}={limit}")

    def select_deletions(self, partition, segments, now_ms):
        try:
            chosen = policy.select(partition.config, Retention.params, segments)
        except policy.PolicyError as error:
            raise Err(str(error))
        return [retention.Deletion(base_offset=base, reason=reason) for base, reason in chosen]
