"""Process hygiene: what a child starts does not outlive the cluster or keep its port, and nothing
the master passed a child leaks into the programs it runs (issue 8, item 2)."""

import os
import signal
import tempfile
import socket
import unittest

from cluster import ClusterTest, alive, wait_for


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Hygiene(ClusterTest):
    def start_with_grandchild(self):
        c = self.start(workers=1, env={"PROBE_HTTP": "1", "PROBE_GRANDCHILD": "1"})
        port = c.wait_ready()["port"]
        grandchild = wait_for(lambda: c.events("grandchild"), 10, "the worker's background job")[0]["child"]
        self.addCleanup(lambda: alive(grandchild) and os.kill(grandchild, signal.SIGKILL))
        self.assertTrue(alive(grandchild))
        return c, port, grandchild

    def test_a_background_job_inherits_no_channel_port_or_internal_variables(self):
        c, port, grandchild = self.start_with_grandchild()
        with open(f"/proc/{grandchild}/environ", "rb") as f:
            environ = f.read().split(b"\0")
        self.assertEqual([v for v in environ if v.startswith(b"CLUTCH_INTERNAL_")], [])
        targets = [os.readlink(f"/proc/{grandchild}/fd/{fd}") for fd in os.listdir(f"/proc/{grandchild}/fd")]
        self.assertEqual([t for t in targets if t.startswith("socket:")], [], targets)
        # The worker leads its own process group, and its background job is in it.
        worker = c.ready["workers"][0]
        self.assertEqual(os.getpgid(worker), worker)
        self.assertEqual(os.getpgid(grandchild), worker)

    def test_a_workers_helpers_get_sigterm_first_then_sigkill_after_kill_timeout(self):
        # Issue 22.6: what a worker started got SIGKILL alone when the worker stopped; helpers
        # that clean up on SIGTERM (as egg users' do) never could.
        marker = os.path.join(tempfile.mkdtemp(prefix="clutch-helper-"), "cleaned")
        c = self.start(workers=1, args=("-s", "kill_timeout=2s"), env={"PROBE_HELPER_MARKER": marker})
        c.wait_ready()
        helpers = wait_for(lambda: c.events("helpers"), 10, "the worker's helpers")[0]
        polite, stubborn = helpers["cleans_up"], helpers["ignores_term"]
        self.addCleanup(lambda: [alive(p) and os.kill(p, signal.SIGKILL) for p in (polite, stubborn)])
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(30), 0, c.stderr())
        # The polite one ran its SIGTERM trap; the stubborn one was SIGKILLed after kill_timeout.
        with open(marker) as f:
            self.assertEqual(f.read().strip(), "term")
        self.assertFalse(alive(polite))
        self.assertFalse(alive(stubborn))
        self.assertIn("still running 2000 ms after SIGTERM (kill_timeout): SIGKILL", c.stderr())

    def test_graceful_stop_takes_the_background_job_and_frees_the_port(self):
        c, port, grandchild = self.start_with_grandchild()
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0, c.stderr())
        wait_for(lambda: not alive(grandchild), 5, "the background job to be gone")
        wait_for(lambda: port_is_free(port), 5, f"port {port} to be free")

    def test_master_sigkill_takes_children_and_their_background_jobs(self):
        c, port, grandchild = self.start_with_grandchild()
        children = c.child_pids()
        os.kill(c.pid, signal.SIGKILL)
        c.wait_exit()
        wait_for(lambda: not alive(grandchild), 5, "the background job to be gone")
        wait_for(lambda: not any(alive(p) for p in children), 5, "every child to be gone")
        wait_for(lambda: port_is_free(port), 5, f"port {port} to be free")

    def test_master_sigkill_leaves_no_background_job_in_any_of_eight_trials(self):
        # Issue 22.2: a child that read its channel's end before its death signal exited 1 and
        # left its group behind (4 of 20 trials on a quiet machine).
        survivors = []
        for trial in range(8):
            c = self.start(workers=2, env={"PROBE_HTTP": "1", "PROBE_GRANDCHILD": "1"})
            c.wait_ready()
            wait_for(lambda: len(c.events("grandchild")) >= 2, 10, "each worker's background job")
            jobs = [e["child"] for e in c.events("grandchild")]
            self.addCleanup(lambda jobs=jobs: [alive(p) and os.kill(p, signal.SIGKILL) for p in jobs])
            os.kill(c.pid, signal.SIGKILL)
            c.wait_exit()
            try:
                wait_for(lambda: not any(alive(p) for p in jobs), 5, "the background jobs to be gone")
            except AssertionError:
                survivors.append((trial, [p for p in jobs if alive(p)]))
        self.assertEqual(survivors, [])

    def test_a_dead_worker_takes_its_background_job(self):
        c, port, grandchild = self.start_with_grandchild()
        os.kill(c.ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: not alive(grandchild), 5, "the dead worker's background job to be gone")


class PrivilegeDrop(ClusterTest):
    def uid_of(self, pid):
        with open(f"/proc/{pid}/status") as f:
            return int([l for l in f if l.startswith("Uid:")][0].split()[1])

    def test_children_run_as_the_configured_user_and_still_serve(self):
        import pwd
        import urllib.request
        if os.geteuid() != 0:
            self.skipTest("needs root to start the master")
        nobody = pwd.getpwnam("nobody")
        c = self.start(workers=2, env={"PROBE_HTTP": "1"}, args=("-s", "user=nobody"))
        ready = c.wait_ready()
        self.assertEqual(self.uid_of(ready["master"]), 0, "the master keeps root to supervise")
        for pid in [ready["agent"], *ready["workers"]]:
            self.assertEqual(self.uid_of(pid), nobody.pw_uid, f"pid {pid}")
        with urllib.request.urlopen(f"http://127.0.0.1:{ready['port']}/", timeout=10) as r:
            self.assertEqual(r.read(), b"hello world")
        # Dropping privileges must not have cleared the death signal: a master SIGKILL takes them.
        os.kill(c.pid, signal.SIGKILL)
        c.wait_exit()
        wait_for(lambda: not any(alive(p) for p in [ready["agent"], *ready["workers"]]), 5,
                 "the children to die with the master")

    def log_dir_owned_by(self, uid):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="clutch-logs-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        os.chown(d, uid, -1)
        return d

    def test_a_log_dir_the_user_cannot_write_stops_the_start_with_exit_2(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to start the master")
        log_dir = self.log_dir_owned_by(0)  # root's, 0755: root may write, nobody may not
        c = self.start(workers=1, args=("-s", "user=nobody", "-s", f"log_dir={log_dir}"))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn(f"log_dir: user 'nobody' cannot write {log_dir}/", c.stderr())
        self.assertIn("Permission denied", c.stderr())
        self.assertEqual(c.events("ready"), [], "no child may have started")

    def test_a_log_dir_the_user_owns_gets_every_childs_log(self):
        import pwd
        if os.geteuid() != 0:
            self.skipTest("needs root to start the master")
        nobody = pwd.getpwnam("nobody")
        log_dir = self.log_dir_owned_by(nobody.pw_uid)
        c = self.start(workers=1, args=("-s", "user=nobody", "-s", f"log_dir={log_dir}"))
        ready = c.wait_ready()
        for role in ("agent", "worker"):
            path = os.path.join(log_dir, f"probe.{role}.log")
            self.assertEqual(os.stat(path).st_uid, nobody.pw_uid, path)
        wait_for(lambda: "set up" in open(os.path.join(log_dir, "probe.worker.log")).read(), 10,
                 "the worker to log into its file")
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)

    def test_an_unknown_user_stops_the_start_with_exit_2(self):
        c = self.start(workers=1, args=("-s", "user=no-such-user-here"))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("user 'no-such-user-here' does not exist", c.stderr())


if __name__ == "__main__":
    unittest.main()
