"""Tests of the retention-segments decision, run natively:
`cd plugins/python/retention-segments && python3 -m unittest`."""

import unittest
from types import SimpleNamespace

import policy


def segments(closed, active=True):
    segs = [SimpleNamespace(base_offset=i * 10, active=False) for i in range(closed)]
    if active:
        segs.append(SimpleNamespace(base_offset=closed * 10, active=True))
    return segs


class SelectTest(unittest.TestCase):
    def test_keeps_the_newest_closed_segments(self):
        chosen = policy.select([("max.segments", "2")], {}, segments(5))
        self.assertEqual([base for base, _ in chosen], [0, 10, 20])

    def test_never_names_the_active_segment(self):
        self.assertEqual(policy.select([("max.segments", "0")], {}, segments(0)), [])
        chosen = policy.select([("max.segments", "0")], {}, segments(2))
        self.assertEqual([base for base, _ in chosen], [0, 10])

    def test_topic_config_overrides_params(self):
        params = policy.parse_params([("max.segments", "4")])
        self.assertEqual(len(policy.select([], params, segments(5))), 1)
        self.assertEqual(len(policy.select([("max.segments", "1")], params, segments(5))), 4)
        self.assertEqual(policy.select([("max.segments", "-1")], params, segments(5)), [])
        self.assertEqual(policy.select([], {}, segments(5)), [])

    def test_rejects_bad_settings(self):
        with self.assertRaises(policy.PolicyError):
            policy.parse_params([("max.segment", "1")])
        with self.assertRaises(policy.PolicyError):
            policy.parse_params([("max.segments", "-2")])
        with self.assertRaises(policy.PolicyError):
            policy.parse_params([("max.segments", "1"), ("max.segments", "2")])
        with self.assertRaises(policy.PolicyError):
            policy.select([("max.segments", "many")], {}, segments(1))


if __name__ == "__main__":
    unittest.main()
