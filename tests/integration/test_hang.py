"""Hung workers (issue 10, item 1): a worker whose loop stops turning is found within hang_timeout,
its backtrace is written to its log (naming where it is stuck), and it is replaced."""

import os
import signal
import unittest

from cluster import ClusterTest, alive, wait_for

HANG = ("-s", "hang_timeout=1s")


class Hang(ClusterTest):
    def test_detection_off_starts_and_serves(self):
        # "0 turns the check off": the children read the master's config back, and a 0 once came
        # back as "0ms", under the minimum, so every child aborted at start.
        c = self.start(workers=1, env={"PROBE_HTTP": "1"},
                       args=("-s", "hang_timeout=0", "-s", "http_handler_timeout=0"))
        ready = c.wait_ready()
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{ready['port']}/", timeout=10) as r:
            self.assertEqual(r.status, 200)
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)

    def test_a_stopped_worker_is_named_and_replaced(self):
        c = self.start(workers=2, args=HANG)
        ready = c.wait_ready()
        victim = ready["workers"][0]
        os.kill(victim, signal.SIGSTOP)
        self.addCleanup(lambda: alive(victim) and os.kill(victim, signal.SIGKILL))
        wait_for(lambda: f"(pid {victim}) is stopped (SIGSTOP or a debugger)" in c.stderr(), 15,
                 "the master to name the stopped worker")
        wait_for(lambda: not alive(victim), 5, "the stopped worker to be killed")
        # A worker that is not one of the first two says it is ready. (Counting every worker's
        # "ready" missed it: the victim may be stopped before it handles the cluster's ready.)
        def replacement_ready():
            return any(e["role"] == "worker" and e["pid"] not in ready["workers"]
                       for e in c.events("ready"))
        try:
            wait_for(replacement_ready, 30, "its replacement to be ready")
        except AssertionError as e:  # say what the master saw
            raise AssertionError(f"{e}; the master's last lines:\n" + "\n".join(c.stderr().splitlines()[-25:]))
        self.assertIn("worker 0", c.stderr())
        self.assertTrue(alive(ready["workers"][1]), "the other worker was left alone")

    def test_a_worker_in_a_busy_loop_leaves_a_backtrace_naming_the_loop_and_is_replaced(self):
        c = self.start(workers=2, args=HANG, env={"PROBE_SCENARIO": "spin"})
        ready = c.wait_ready()
        spinner = wait_for(lambda: c.events("spin"), 10, "a worker to start spinning")[0]["pid"]
        wait_for(lambda: f"(pid {spinner}) is hung: its loop has not turned for" in c.stderr(), 15,
                 "the master to find the hung worker")
        wait_for(lambda: "clutch: end of backtrace" in c.stderr(), 10, "the backtrace")
        trace = c.stderr().split(f"clutch: backtrace of pid {spinner}")[1].split("clutch: end of backtrace")[0]
        self.assertIn("probe_spin_forever", trace)
        wait_for(lambda: not alive(spinner), 5, "the hung worker to be killed")
        wait_for(lambda: any(e["role"] == "worker" and e["pid"] not in ready["workers"]
                             for e in c.events("ready")), 30, "its replacement to be ready")

    def test_busy_but_turning_workers_are_not_hung(self):
        # 300 ms handlers, one after another, for longer than hang_timeout: the loop turns between
        # them, so nothing is killed.
        c = self.start(workers=2, args=HANG, env={"PROBE_SCENARIO": "acked", "PROBE_COUNT": "40",
                                                  "PROBE_BATCH": "2", "PROBE_WORK_US": "300000"})
        c.wait_ready()
        wait_for(lambda: len(c.events("ack")) >= 40, 60, "40 acknowledged messages")
        self.assertNotIn("is hung", c.stderr())
        self.assertNotIn("is stopped", c.stderr())


if __name__ == "__main__":
    unittest.main()
