"""Pure logic of the retention-segments policy: no WIT imports, so it is
tested with plain `python3 -m unittest` (see test_policy.py).

Keep at most `max.segments` closed segments per partition: the oldest closed
segments beyond that count are deleted. The active segment is never counted
and never named. Setting: `max.segments` from the topic configuration, else
the plugin's init parameter, else -1 (unlimited).
"""

KEY = "max.segments"


class PolicyError(Exception):
    """A bad parameter or topic setting; its message is the call's `err`."""


def parse_limit(value, source):
    """A non-negative integer, or -1 for unlimited (returned as None)."""
    try:
        limit = int(value.strip())
    except ValueError:
        raise PolicyError(f"{source}: `{KEY}` = {value!r}: expected a non-negative integer or -1 (unlimited)") from None
    if limit == -1:
        return None
    if limit < 0:
        raise PolicyError(f"{source}: `{KEY}` = {limit}: expected a non-negative integer or -1 (unlimited)")
    return limit


def parse_params(pairs):
    """Validates init params (a list of (key, value) pairs): only `max.segments`."""
    params = {}
    for key, value in pairs:
        if key != KEY:
            raise PolicyError(f"unknown parameter `{key}` (accepted: {KEY})")
        if key in params:
            raise PolicyError(f"parameter `{key}` given twice")
        parse_limit(value, "params")
        params[key] = value
    return params


def effective_limit(config, params):
    """The topic configuration's `max.segments` (last occurrence wins), else
    the init parameter, else unlimited."""
    for key, value in reversed(config):
        if key == KEY:
            return parse_limit(value, "topic config")
    if KEY in params:
        return parse_limit(params[KEY], "params")
    return None


def select(config, params, segments):
    """Returns [(base_offset, reason)] for the segments to delete, oldest
    first. `segments` are objects with `base_offset` and `active`, oldest
    first. Only a prefix of the closed segments is ever named."""
    limit = effective_limit(config, params)
    if limit is None:
        return []
    closed = []
    for segment in segments:
        if segment.active:
            break
        closed.append(segment)
    excess = len(closed) - limit
    return [
        (segment.base_offset, f"{len(closed)} closed segments, over {KEY}={limit}")
        for segment in closed[:max(excess, 0)]
    ]
