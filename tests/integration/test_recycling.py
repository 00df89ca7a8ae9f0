"""Issue 27: a drain that load balancers understand (drain_grace: /readyz says 503 first while the
workers keep serving, then the normal stop) and worker recycling after max_requests (with its
jitter), both without a failed request."""

import http.client
import re
import signal
import unittest

from cluster import ClusterTest, wait_for
from test_metrics import get


def app_get(port, path="/"):
    """One request on a new connection: (status, body), or (None, error) if it failed."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        r = conn.getresponse()
        out = (r.status, r.read().decode())
        conn.close()
        return out
    except OSError as e:
        return None, str(e)


class DrainGrace(ClusterTest):
    def cluster(self, grace):
        c = self.start(workers=2, env={"PROBE_HTTP": "1"},
                       args=("-s", "metrics_listen=127.0.0.1:0", "-s", f"drain_grace={grace}"))
        ready = c.wait_ready()
        return c, ready["port"], re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)

    def test_readyz_says_503_first_while_requests_are_still_served_then_the_stop(self):
        c, port, metrics = self.cluster("3s")
        self.assertEqual(get(metrics, "/readyz"), (200, "ready\n"))
        c.signal(signal.SIGTERM)
        wait_for(lambda: get(metrics, "/readyz") == (503, "draining\n"), 10, "/readyz to say draining")
        # The balancer has been told; clients that still come are served, not refused.
        served_while_draining = 0
        for _ in range(500):  # bounded: the grace is 3 s
            if "workers first, then the agent" in c.stderr():
                break
            self.assertEqual(app_get(port)[0], 200, "a request during the grace failed")
            served_while_draining += 1
        self.assertGreater(served_while_draining, 0)
        self.assertEqual(c.wait_exit(timeout=30), 0)
        log = c.stderr()
        grace_at = log.index("/readyz answers 503 and the workers keep serving for drain_grace (3000 ms)")
        self.assertLess(grace_at, log.index("workers first, then the agent"), log)

    def test_operations_are_refused_during_the_grace_and_a_second_signal_ends_it(self):
        c, port, metrics = self.cluster("300s")
        c.signal(signal.SIGTERM)
        wait_for(lambda: get(metrics, "/readyz")[0] == 503, 10, "/readyz to say draining")
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload (SIGHUP) refused: the cluster is draining" in c.stderr(), 10,
                 "the reload to be refused")
        c.signal(signal.SIGTERM)  # without it this cluster would serve for 300 s more
        self.assertEqual(c.wait_exit(timeout=30), 0)
        self.assertIn("during drain_grace: the stop begins now", c.stderr())


class MaxRequests(ClusterTest):
    def test_a_worker_past_its_request_limit_is_replaced_with_no_failed_request(self):
        c = self.start(workers=1, env={"PROBE_HTTP": "1"},
                       args=("-s", "max_requests=30", "-s", "max_requests_jitter=10"))
        ready = c.wait_ready()
        first = ready["workers"][0]
        replaced = re.compile(r"worker 0 replaced \(pid (\d+) -> (\d+)\): served (\d+) requests "
                              r"\(max_requests 30, this worker's limit (\d+)\)")
        failed = []
        for _ in range(2000):  # bounded; the limit is judged at the worker's once-a-second report
            if replaced.search(c.stderr()):
                break
            status, body = app_get(ready["port"])
            if status != 200:
                failed.append(body)
        m = wait_for(lambda: replaced.search(c.stderr()), 30, "the worker's replacement")
        self.assertEqual(failed, [], "requests failed across the replacement")
        old, new, served, limit = (int(g) for g in m.groups())
        self.assertEqual(old, first)
        self.assertTrue(30 <= limit <= 40, limit)
        self.assertGreaterEqual(served, limit)
        # The successor serves, with a limit of its own; the old worker drained and left.
        wait_for(lambda: app_get(ready["port"])[0] == 200, 10, "the successor to serve")
        self.assertIn("starting its replacement, then draining it", c.stderr())
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)

    def test_bad_values_fail_the_start_naming_the_key(self):
        for args, needle in ((("-s", "max_requests=lots"), "max_requests"),
                             (("-s", "max_requests_jitter=9"), "max_requests_jitter needs max_requests"),
                             (("-s", "drain_grace=10"), "drain_grace")):
            c = self.start(workers=1, args=args)
            self.assertEqual(c.wait_exit(), 2, args)
            self.assertIn(needle, c.stderr(), args)


if __name__ == "__main__":
    unittest.main()
