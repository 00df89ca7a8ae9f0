"""clutchctl cron: what an operator sees when checking an expression before deploying it."""

import os
import subprocess
import unittest

from cluster import BUILD_DIR

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


def run(*args):
    return subprocess.run([CLUTCHCTL, *args], capture_output=True, text=True, timeout=30)


class ClutchctlCron(unittest.TestCase):
    def test_prints_next_fire_times_with_offsets_across_spring_forward(self):
        r = run("cron", "30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T00:00:00", "--next", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00",
                                            "2026-03-09T02:30:00-04:00"])

    def test_from_with_offset_and_six_fields(self):
        r = run("cron", "*/20 * * * * *", "--tz", "UTC", "--from", "2026-01-01T01:00:00+01:00", "--next", "2")
        self.assertEqual(r.stdout.split(), ["2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00"])

    def test_invalid_expression_exits_non_zero_pointing_at_the_field(self):
        r = run("cron", "0 25 * * *")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("field 2 (hour) '25'", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_unknown_zone_and_never_firing_expression_are_errors(self):
        r = run("cron", "* * * * *", "--tz", "Nowhere/City")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown time zone 'Nowhere/City'", r.stderr)
        r = run("cron", "0 0 30 2 *")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("never fires", r.stderr)


if __name__ == "__main__":
    unittest.main()
