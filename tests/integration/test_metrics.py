"""The metrics listener (issue 9): a live scrape passes promtool's check, the figures are the
cluster's, and /healthz and /readyz follow its state."""

import os
import re
import shutil
import signal
import subprocess
import unittest
import urllib.error
import urllib.request

from cluster import ClusterTest, wait_for

SLOW_RESTART = ("-s", "min_uptime=10s", "-s", "restart_backoff_initial=3s", "-s", "restart_backoff_max=3s")


def get(address, path):
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Metrics(ClusterTest):
    def cluster(self, **kw):
        c = self.start(args=("-s", "metrics_listen=127.0.0.1:0", *kw.pop("args", ())), **kw)
        c.wait_ready()
        return c, re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)

    def test_a_scrape_passes_promtool_and_counts_the_cluster(self):
        c, address = self.cluster(workers=2, env={"PROBE_SCENARIO": "random", "PROBE_COUNT": "500"})
        wait_for(lambda: len(c.events("handled")) >= 500, 30, "500 messages handled")
        status, text = get(address, "/metrics")
        self.assertEqual(status, 200)
        if shutil.which("promtool") is None:
            self.fail("promtool is not installed (scripts/deps installs prometheus)")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("clutch_cluster_ready 1", text)
        self.assertIn('clutch_process_up{role="worker",slot="1"} 1', text)
        self.assertRegex(text, r'clutch_messenger_messages_total\{route="send_random"\} (\d+)')
        routed = int(re.search(r'clutch_messenger_messages_total\{route="send_random"\} (\d+)', text).group(1))
        self.assertGreaterEqual(routed, 500)
        self.assertRegex(text, r'clutch_process_resident_memory_bytes\{role="agent",slot="agent"\} [1-9]')

    def test_healthz_and_readyz_follow_the_cluster(self):
        c, address = self.cluster(workers=2, args=SLOW_RESTART)
        self.assertEqual(get(address, "/healthz"), (200, "ok\n"))
        self.assertEqual(get(address, "/readyz"), (200, "ready\n"))
        # A worker that died young is restarted after 3 s: meanwhile the cluster is degraded.
        os.kill(c.ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: get(address, "/readyz")[0] == 503, 10, "readyz to say not ready")
        self.assertEqual(get(address, "/readyz"), (503, "degraded\n"))
        self.assertEqual(get(address, "/healthz")[0], 200)
        status, text = get(address, "/metrics")
        self.assertIn('clutch_cluster_state{state="degraded"} 1', text)
        self.assertEqual(get(address, "/nope")[0], 404)

    def test_a_bad_metrics_listen_is_reported_once_and_the_cluster_runs(self):
        c = self.start(workers=1, args=("-s", "metrics_listen=10.255.255.1:1"))
        c.wait_ready()
        self.assertEqual(c.stderr().count("metrics listener not opened"), 1)


if __name__ == "__main__":
    unittest.main()
