"""examples/egg_port (issue 12): the egg app ported side by side works as its README says: the
agent's config reaches every worker (pushed, and asked for with co_await at start), routes answer,
a schedule runs from code (runSchedule), the immediate-only job ran once, queue orders are each
handled once by a coroutine handler, and the app's metrics are summed by the master."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from cluster import BUILD_DIR, ClusterTest, wait_for

EGG_PORT = os.path.join(BUILD_DIR, "examples/egg_port/egg_port")
CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


def value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[-1])
    return None


class EggPort(ClusterTest):
    def test_the_ported_app_behaves_as_its_readme_says(self):
        d = tempfile.mkdtemp(prefix="clutch-egg-")
        self.addCleanup(shutil.rmtree, d, True)
        url = f"sqlite:{d}/q.db"
        c = self.start(binary=EGG_PORT, workers=2, args=("-s", "metrics_listen=127.0.0.1:0"),
                       env={"EGG_PORT_QUEUE": url})
        ready = c.wait_ready()
        base = f"http://127.0.0.1:{ready['port']}"
        metrics = "http://" + re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1) + "/metrics"

        def get(path, method="GET"):
            req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()

        def scrape(series):
            with urllib.request.urlopen(metrics, timeout=10) as r:
                return value(r.read().decode(), series)

        # Every worker gets the agent's config just after ready; until then /config says 503.
        def config_everywhere():
            try:
                return all(re.fullmatch(r'\{"version":\d+\}', get("/config")[1]) for _ in range(10))
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 503)
                return False
        wait_for(config_everywhere, 20, "the config in every worker")
        self.assertEqual(get("/jobs/report", "POST"), (200, "report started\n"))
        for _ in range(5):
            get("/hits")
        subprocess.run([CLUTCHCTL, "publish", url, "order", "--count", "20"], check=True,
                       capture_output=True, timeout=60)
        wait_for(lambda: scrape("egg_port_orders_total") == 20, 30, "20 orders handled")
        wait_for(lambda: scrape("egg_port_hits_total") == 5, 20, "5 hits summed over the workers")
        wait_for(lambda: (scrape("egg_port_reports_total") or 0) >= 1, 20, "the report run from code")
        self.assertEqual(scrape("egg_port_warmups_total"), 1)


if __name__ == "__main__":
    unittest.main()
