"""Sticky mode (issue 12): with reuse_port and sticky, each client address (20 of them,
127.0.0.2-21) is always answered by one worker while all live; when a worker's slot goes dead
(it crash-loops), its addresses move to the others and every other address stays put."""

import collections
import http.client
import os
import signal
import tempfile
import unittest

from cluster import ClusterTest, wait_for

SLOW_RESTART = ("-s", "min_uptime=10s", "-s", "restart_backoff_initial=5s", "-s", "restart_backoff_max=5s")


def answered_by(port, source, requests):
    """The worker pids that answered `requests` new connections from `source`."""
    pids = []
    for _ in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        try:
            conn.request("GET", "/pid", headers={"Connection": "close"})
            pids.append(int(conn.getresponse().read()))
        finally:
            conn.close()
    return pids


class Sticky(ClusterTest):
    def test_each_address_keeps_its_worker_and_a_dead_workers_addresses_move(self):
        crash = os.path.join(tempfile.mkdtemp(prefix="clutch-sticky-"), "crash")
        c = self.start(workers=3, env={"PROBE_HTTP": "1", "PROBE_CRASH_FILE": crash},
                       args=("-s", "reuse_port=true", "-s", "sticky=true", *SLOW_RESTART))
        ready = c.wait_ready()
        port = ready["port"]
        sources = [f"127.0.0.{i}" for i in range(2, 22)]
        home = {}
        for s in sources:
            pids = set(answered_by(port, s, 30))
            self.assertEqual(len(pids), 1, f"{s} was answered by {pids}")
            home[s] = pids.pop()
        self.assertGreaterEqual(len(set(home.values())), 2, "every address on one worker")

        # Worker 0 dies and its replacements crash at start (5 s apart): its slot is dead.
        open(crash, "w").close()
        victim = [e["pid"] for e in c.events("start") if e["role"] == "worker" and e["slot"] == 0][0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: c.events("crash-at-start"), 20, "the replacement to crash")
        after = {}
        for s in sources:
            pids = set(answered_by(port, s, 20))
            self.assertEqual(len(pids), 1, f"{s} was answered by {pids} with one worker down")
            after[s] = pids.pop()
        for s in sources:
            if home[s] == victim:
                self.assertNotEqual(after[s], victim)
            else:
                self.assertEqual(after[s], home[s], f"{s} moved although its worker lives")
        self.assertTrue(any(home[s] == victim for s in sources), "no address had the victim")
        os.remove(crash)


if __name__ == "__main__":
    unittest.main()
