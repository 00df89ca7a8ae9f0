"""Start-up, ready, failed starts, graceful and forced stops, orphans (acceptance 1, 5, 6)."""

import collections
import os
import signal
import time
import unittest

from cluster import ClusterTest, alive, wait_for


class Lifecycle(ClusterTest):
    def cluster(self, **kw):
        return self.start(**kw)

    def test_every_process_gets_ready_exactly_once(self):
        c = self.cluster(workers=4, env={"PROBE_MARKS": "1"})
        ready = c.wait_ready()
        self.assertEqual(len(ready["workers"]), 4)
        wait_for(lambda: len(c.events("ready")) >= 5, 10, "5 ready events")
        # A second ready the master sent any of them would be handled before this mark.
        c.mark([ready["agent"], *ready["workers"]])
        counts = collections.Counter(e["pid"] for e in c.events("ready"))
        self.assertEqual(set(counts), {ready["agent"], *ready["workers"]})
        self.assertTrue(all(n == 1 for n in counts.values()), counts)
        self.assertEqual(len(set(ready["workers"]) | {ready["agent"], ready["master"]}), 6)

    def test_worker_setup_that_throws_fails_the_start_and_leaves_nothing(self):
        c = self.cluster(workers=4, env={"PROBE_FAIL_WORKER": "1"})
        self.assertEqual(c.wait_exit(), 1)
        self.assertIn("probe: worker setup failed on purpose", c.stderr())
        self.assertRegex(c.stderr(), r"worker 1 \(pid \d+\) failed to start")
        # The stop hook its setup registered before throwing ran (and finished) before it left.
        self.assertEqual(len(c.events("setup-stop-hook")), 1)
        started = c.child_pids()
        self.assertGreaterEqual(len(started), 2)
        for pid in started:
            self.assertFalse(alive(pid), f"pid {pid} outlived its master")

    def test_a_slot_past_max_restarts_stops_the_cluster_with_exit_1(self):
        import tempfile
        crash_file = os.path.join(tempfile.mkdtemp(prefix="clutch-crash-"), "crash")
        c = self.cluster(workers=2, env={"PROBE_CRASH_FILE": crash_file},
                         args=("-s", "min_uptime=50ms", "-s", "restart_backoff_initial=10ms",
                               "-s", "restart_backoff_max=50ms", "-s", "max_restarts=3",
                               "-s", "max_restarts_window=60s"))
        ready = c.wait_ready()
        open(crash_file, "w").close()  # worker 0's replacements now exit 3 at start
        os.kill(ready["workers"][0], signal.SIGKILL)
        self.assertEqual(c.wait_exit(timeout=60), 1, c.stderr())
        self.assertRegex(c.stderr(), r"worker 0 died 4 times within 60000 ms \(max_restarts = 3\); "
                                     r"last: worker 0 \(pid \d+\) exited with code 3")
        self.assertGreaterEqual(len(c.events("crash-at-start")), 3)
        for pid in c.child_pids():
            self.assertFalse(alive(pid), f"pid {pid} outlived its master")

    def test_without_max_restarts_a_crashing_slot_is_retried_and_the_cluster_stays_up(self):
        import tempfile
        crash_file = os.path.join(tempfile.mkdtemp(prefix="clutch-crash-"), "crash")
        c = self.cluster(workers=2, env={"PROBE_CRASH_FILE": crash_file},
                         args=("-s", "min_uptime=50ms", "-s", "restart_backoff_initial=10ms",
                               "-s", "restart_backoff_max=50ms"))
        ready = c.wait_ready()
        open(crash_file, "w").close()
        os.kill(ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: len(c.events("crash-at-start")) >= 8, 30, "8 crashed restarts")
        self.assertIsNone(c.proc.poll(), "the master gave up without max_restarts")

    def test_bad_config_value_names_the_key(self):
        c = self.cluster(args=("-s", "kill_timeout=never"))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("kill_timeout", c.stderr())
        self.assertEqual(c.child_pids(), [])

    def test_a_clutch_key_under_a_table_fails_the_start_with_exit_2(self):
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="clutch-config-"), "app.toml")
        with open(path, "w") as f:
            f.write("[cluster]\nworkers = 4\n")
        c = self.cluster(args=("--config", path))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("unknown table [cluster]", c.stderr())
        self.assertEqual(c.child_pids(), [])

    def test_port_in_use_fails_the_start_naming_the_port(self):
        first = self.cluster(workers=1)
        port = first.wait_ready()["port"]
        second = self.cluster(workers=1, args=("--port", str(port)))
        self.assertEqual(second.wait_exit(), 1)
        self.assertIn(f"port {port}", second.stderr())
        self.assertIn("in use", second.stderr())

    def test_sigterm_lets_a_running_handler_finish_then_exits_0(self):
        c = self.cluster(workers=2, env={"PROBE_SCENARIO": "slow"})
        c.wait_ready()
        wait_for(lambda: c.events("slow-start"), 10, "the slow handler to start")
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0, c.stderr())
        self.assertEqual(len(c.events("slow-end")), 1)
        for pid in c.child_pids():
            self.assertFalse(alive(pid))

    def test_child_ignoring_sigterm_is_killed_after_kill_timeout(self):
        c = self.cluster(workers=2, env={"PROBE_IGNORE_TERM": "1"}, args=("-s", "kill_timeout=500ms"))
        c.wait_ready()
        started = time.monotonic()
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)
        self.assertLess(time.monotonic() - started, 8)
        self.assertIn("kill_timeout", c.stderr())
        for pid in c.child_pids():
            self.assertFalse(alive(pid))

    def test_second_sigint_stops_at_once(self):
        c = self.cluster(workers=2, env={"PROBE_IGNORE_TERM": "1"}, args=("-s", "kill_timeout=60s"))
        c.wait_ready()
        c.signal(signal.SIGINT)
        # The second one counts only once the first was taken: the master says so.
        wait_for(lambda: "stopping (received Interrupt)" in c.stderr(), 10, "the first SIGINT to be taken")
        c.signal(signal.SIGINT)
        self.assertEqual(c.wait_exit(timeout=5), 3)
        for pid in c.child_pids():
            wait_for(lambda: not alive(pid), 2, f"pid {pid} to die")

    def test_sighup_reloads_the_master_and_is_ignored_by_children(self):
        c = self.cluster(workers=2, env={"PROBE_MARKS": "1"})
        ready = c.wait_ready()
        children = [ready["agent"], *ready["workers"]]
        for pid in children:
            os.kill(pid, signal.SIGHUP)  # e.g. a terminal hang-up reaching the process group
        # Each child handles a message after the signal was sent (a signal is delivered before
        # the process next returns from the kernel): one the hang-up killed would not.
        c.mark(children)
        self.assertTrue(all(alive(p) for p in children))
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload 1 complete" in c.stderr(), 20, "the reload")
        self.assertIsNone(c.proc.poll())
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)

    def test_sigkill_of_the_master_takes_every_child_within_1s(self):
        c = self.cluster(workers=3)
        ready = c.wait_ready()
        children = [ready["agent"], *ready["workers"]]
        os.kill(ready["master"], signal.SIGKILL)
        c.proc.wait()
        killed_at = time.monotonic()
        wait_for(lambda: not any(alive(p) for p in children), 1.0, "every child to exit", interval=0.01)
        self.assertLess(time.monotonic() - killed_at, 1.0)

    def test_sigkill_of_the_agent_starts_a_new_agent_that_gets_the_pids(self):
        c = self.cluster(workers=2)
        ready = c.wait_ready()
        wait_for(lambda: c.events("pids") and [e for e in c.events("ready") if e["role"] == "agent"], 5,
                 "the first agent's clutch:pids and ready")
        os.kill(ready["agent"], signal.SIGKILL)
        def new_agent_pids():
            return [e for e in c.events("pids") if e["pid"] != ready["agent"]]
        got = wait_for(new_agent_pids, 10, "clutch:pids in the new agent")
        self.assertEqual(sorted(got[-1]["workers"]), sorted(ready["workers"]))
        wait_for(lambda: len([e for e in c.events("ready") if e["role"] == "agent"]) == 2, 5,
                 "the new agent's clutch:ready")
        # Once, not twice: a later change (a worker replaced) is the proof that nothing else came.
        os.kill(ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: any(ready["workers"][0] not in e["workers"] and len(e["workers"]) == 2
                             for e in new_agent_pids()), 20, "the replacement in clutch:pids")
        lists = [sorted(e["workers"]) for e in new_agent_pids()]
        self.assertEqual(lists[0], sorted(ready["workers"]))
        self.assertTrue(all(a != b for a, b in zip(lists, lists[1:])),
                        f"the new agent got one list twice: {lists}")

    def test_agent_hanging_in_setup_fails_the_start_after_startup_timeout(self):
        c = self.cluster(workers=2, env={"PROBE_HANG_ROLE": "agent"}, args=("-s", "startup_timeout=700ms"))
        wait_for(lambda: c.events("hang"), 10, "the agent to hang in its setup")
        started = time.monotonic()
        self.assertEqual(c.wait_exit(), 1, c.stderr())
        self.assertLess(time.monotonic() - started, 5, "the master waited far past startup_timeout")
        self.assertRegex(c.stderr(), r"agent \(pid \d+\).*not ready within startup_timeout \(700 ms\)")
        for pid in c.child_pids():
            self.assertFalse(alive(pid), f"pid {pid} outlived its master")

    def test_replacement_worker_hanging_in_setup_is_killed_and_retried(self):
        flag = os.path.join("/tmp", f"clutch-hang-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.cluster(workers=2, env={"PROBE_HANG_ROLE": "worker", "PROBE_HANG_FLAG": flag},
                         args=("-s", "startup_timeout=500ms", "-s", "restart_backoff_initial=50ms"))
        ready = c.wait_ready()
        open(flag, "w").close()
        os.kill(ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: len(c.events("hang")) >= 2, 15, "two hanging replacements in a row")
        hung = [e["pid"] for e in c.events("hang")]
        wait_for(lambda: not alive(hung[0]), 5, "the first hanging replacement to be killed")
        self.assertIn("not ready within startup_timeout (500 ms)", c.stderr())
        os.remove(flag)
        def replacement_ready():
            return [e for e in c.events("ready") if e["role"] == "worker" and e["pid"] not in ready["workers"]]
        got = wait_for(replacement_ready, 15, "a replacement worker that boots once the flag is gone")
        self.assertTrue(alive(got[0]["pid"]))
        self.assertTrue(alive(ready["workers"][1]), "the healthy worker was disturbed")
        self.assertTrue(alive(c.pid))


if __name__ == "__main__":
    unittest.main()
