"""max_rss (issue 10, item 5): a worker whose memory grows past the limit is replaced gracefully,
its replacement ready before it drains, so requests under load do not fail."""

import threading
import unittest
import urllib.error
import urllib.request

from cluster import ClusterTest, alive, wait_for


class MemoryLimit(ClusterTest):
    def test_a_worker_over_max_rss_is_replaced_without_failing_a_request(self):
        # The ASan build's workers start near 90 MiB; the leak adds 128 MiB.
        c = self.start(workers=2, env={"PROBE_HTTP": "1"}, args=("-s", "max_rss=170MiB"))
        ready = c.wait_ready()
        port = ready["port"]
        results = {"ok": 0, "failed": []}
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                        r.read()
                        results["ok"] += 1
                except (urllib.error.URLError, ConnectionError, OSError) as e:
                    results["failed"].append(repr(e))
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: results["ok"] >= 50, 30, "the load to run")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/grow", timeout=30) as r:
                self.assertEqual(r.read(), b"grown")
            wait_for(lambda: "is over max_rss" in c.stderr(), 20, "the master to see the memory")
            wait_for(lambda: "replaced (pid" in c.stderr(), 30, "the replacement to take over")
            over = [int(l.split("(pid ")[1].split(")")[0]) for l in c.stderr_lines if "starting its replacement" in l][0]
            wait_for(lambda: not alive(over), 20, "the grown worker to drain and exit")
            served_before = results["ok"]
            wait_for(lambda: results["ok"] >= served_before + 50, 30, "the load to go on after")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(results["failed"], [], f"{len(results['failed'])} of {results['ok']} failed")
        self.assertRegex(c.stderr(), r"resident memory \d+\.\d MiB is over max_rss \(170\.0 MiB\)")


if __name__ == "__main__":
    unittest.main()
