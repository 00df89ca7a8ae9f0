"""Rolling reloads under load (issue 3, acceptance 1 and 2)."""

import http.client
import json
import os
import re
import signal
import threading
import time
import unittest

from cluster import ClusterTest, wait_for
from test_control import ctl


class Load:
    """N keep-alive clients hammering GET /pid until stopped (bounded by max_seconds)."""

    def __init__(self, port, connections=64, max_seconds=90):
        self.port, self.stop_at = port, time.monotonic() + max_seconds
        self.ok = self.bad_status = self.errors = 0
        self.error_samples, self.pids = [], set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(connections)]
        for t in self.threads:
            t.start()

    def client(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            try:
                conn.request("GET", "/pid")
                r = conn.getresponse()
                body = r.read()
                with self.lock:
                    if 200 <= r.status < 300:
                        self.ok += 1
                        self.pids.add(int(body))
                    else:
                        self.bad_status += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()  # the next request opens a new connection
            except Exception as e:  # any socket error is a failed request
                with self.lock:
                    self.errors += 1
                    self.error_samples.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def finish(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)
        return self


class Reload(ClusterTest):
    def cluster(self, **kw):
        return self.start(env={"PROBE_HTTP": "1", **kw.pop("env", {})}, **kw)

    def test_three_rolling_reloads_under_load_drop_nothing(self):
        c = self.cluster(workers=2)
        ready = c.wait_ready()
        load = Load(ready["port"])
        wait_for(lambda: load.ok > 200, 20, "the load to get going")
        for n in (1, 2, 3):
            c.signal(signal.SIGHUP)
            wait_for(lambda: f"reload {n} complete" in c.stderr(), 30, f"reload {n} to complete")
            time.sleep(0.3)
        load.finish()
        self.assertEqual(load.errors, 0, load.error_samples[:5])
        self.assertEqual(load.bad_status, 0)
        self.assertGreater(load.ok, 1000)
        final = re.findall(r"reload 3 complete in \d+ ms: agent (\d+), workers \[([\d,]+)\]", c.stderr())[0]
        final_workers = {int(p) for p in final[1].split(",")}
        self.assertFalse(final_workers & set(ready["workers"]), "a worker pid survived the reloads")
        self.assertNotEqual(int(final[0]), ready["agent"], "the agent was not restarted")
        self.assertTrue(final_workers <= load.pids, "the new workers did not serve")

    def test_after_a_reload_every_process_knows_exactly_the_new_workers(self):
        # During a reload the master gathers membership news (one delta per 50 ms, not one per
        # step to every process); at its end everyone must know the whole new set, no old pid.
        c = self.cluster(workers=6)
        ready = c.wait_ready()
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload 1 complete" in c.stderr(), 60, "reload 1 to complete")
        final = re.findall(r"reload 1 complete in \d+ ms: agent (\d+), workers \[([\d,]+)\]", c.stderr())[0]
        agent, workers = int(final[0]), {int(p) for p in final[1].split(",")}
        self.assertFalse(workers & set(ready["workers"]))

        def view_of(pid):
            known = set()
            for e in c.events("member"):
                if e["pid"] == pid and e["of"] == "worker":
                    (known.add if e["joined"] else known.discard)(e["member"])
            return known

        # Each process's view, from the events it was told (its first list counts as joins).
        def everyone_agrees():
            return all(view_of(pid) == workers for pid in [agent, *workers])
        wait_for(everyone_agrees, 10, "every process to see the new workers and none of the old")

        # One rule for every process a reload replaces: not a restart, not a warning.
        status = json.loads(ctl(c, "status", "--json").stdout)
        self.assertEqual({(p["role"], p["restarts"]) for p in status["processes"]},
                         {("agent", 0), ("worker", 0)}, status["processes"])
        self.assertNotIn("restarting it", c.stderr())
        self.assertIn("(replaced by reload 1)", c.stderr())

    def test_reload_to_a_failing_build_keeps_the_old_workers_serving(self):
        flag = os.path.join("/tmp", f"clutch-failflag-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.cluster(workers=2, env={"PROBE_FAIL_FLAG": flag})
        ready = c.wait_ready()
        load = Load(ready["port"])
        wait_for(lambda: load.ok > 200, 20, "the load to get going")
        open(flag, "w").close()
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload 1 failed" in c.stderr(), 30, "the reload to fail")
        before = load.ok
        wait_for(lambda: load.ok > before + 200, 10, "the old generation to keep serving")
        load.finish()
        self.assertIn("this build's workers fail at start", c.stderr())
        self.assertIn("the running generation keeps serving", c.stderr())
        self.assertEqual(load.errors, 0, load.error_samples[:5])
        self.assertEqual(load.bad_status, 0)
        self.assertEqual(load.pids, set(ready["workers"]))


if __name__ == "__main__":
    unittest.main()


class ReusePort(ClusterTest):
    def test_reuse_port_serves_on_every_worker_survives_a_reload_and_refuses_a_second_instance(self):
        c = self.start(workers=3, env={"PROBE_HTTP": "1"}, args=("-s", "reuse_port=true"))
        ready = c.wait_ready()
        load = Load(ready["port"], connections=32)
        wait_for(lambda: load.pids >= set(ready["workers"]), 20, "every worker to serve")
        second = self.start(workers=1, env={"PROBE_HTTP": "1"},
                            args=("--port", str(ready["port"]), "-s", "reuse_port=true"))
        self.assertEqual(second.wait_exit(), 1)
        self.assertIn("already in use", second.stderr())
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload 1 complete" in c.stderr(), 30, "the reload")
        time.sleep(0.3)
        load.finish()
        self.assertEqual(load.errors, 0, load.error_samples[:5])
        self.assertEqual(load.bad_status, 0)
