"""The short chaos run (issue 8): examples/orders with 4 workers on SQLite and on Redis, 4,000
orders published in paced batches while a random worker is SIGKILLed every 100-200 ms and the agent
twice. Nothing may be lost, and every duplicate must come from a handler that was killed after
its side effect (bench/chaos/run says which); bench/chaos/run --check asserts both."""

import os
import subprocess
import sys
import unittest

from cluster import BUILD_DIR

RUN = os.path.join(os.path.dirname(__file__), "../../bench/chaos/run")


class Chaos(unittest.TestCase):
    def test_orders_under_kills_lose_nothing_and_duplicate_only_killed_handlers(self):
        r = subprocess.run([sys.executable, RUN, "--orders", "4000", "--no-http", "--build-dir", BUILD_DIR,
                            "--check"], capture_output=True, text=True, timeout=600)
        print(r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("| sqlite | 4000 | 4000 | 0 |", r.stdout)
        self.assertIn("| redis | 4000 | 4000 | 0 |", r.stdout)


if __name__ == "__main__":
    unittest.main()
