"""What egg users port (issue 12): a job with only `immediate` runs once; send_to(the master) is
refused with the reason and the master's pid is known to every process; an exception from a timer
is logged, or replaces the worker as egg does (on_uncaught_exception = exit); cron L, W and #."""

import os
import re
import subprocess
import time
import unittest

from cluster import BUILD_DIR, ClusterTest, wait_for
from test_control import ctl

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class Parity(ClusterTest):
    def test_a_job_with_only_immediate_runs_once_at_start(self):
        c = self.start(workers=2, env={"PROBE_JOBS": "once,every200"})
        c.wait_ready()
        # every200 ticking five times shows the clock runs; "once" must have run exactly once.
        wait_for(lambda: len([e for e in c.events("job-start") if e["job"] == "every200"]) >= 5, 30,
                 "every200 to tick")
        self.assertEqual(len([e for e in c.events("job-start") if e["job"] == "once"]), 1)
        listing = ctl(c, "jobs").stdout
        self.assertRegex(listing, r"once\s+once at start")

    def test_user_code_cannot_handle_or_send_the_reserved_schedule_and_queue_actions(self):
        c = self.start(workers=1, env={"PROBE_PARITY": "1", "PROBE_JOBS": "every200"})
        c.wait_ready()
        wait_for(lambda: len(c.events("reserved-refused")) == 6, 20, "both processes to try")
        self.assertEqual(c.events("reserved-allowed"), [])
        refused = [e for e in c.events("reserved-refused") if e["action"] == "schedule:run:report"]
        self.assertIn("reserved for clutch's schedules and queues", refused[0]["error"])
        # The runtime itself still uses them: the job ticks.
        wait_for(lambda: len([e for e in c.events("job-start") if e["job"] == "every200"]) >= 2, 20,
                 "every200 to run")

    def test_sending_to_the_master_is_refused_with_the_reason(self):
        c = self.start(workers=2, env={"PROBE_PARITY": "1"})
        ready = c.wait_ready()
        wait_for(lambda: len(c.events("master-refused")) == 3, 20, "every process to try")
        for e in c.events("master-refused"):
            self.assertEqual(e["master"], ready["master"])
            self.assertIn("that is the master, which takes no messages", e["error"])

    def test_an_exception_from_a_timer_is_logged_by_default(self):
        c = self.start(workers=2, env={"PROBE_PARITY": "1"})
        ready = c.wait_ready()
        wait_for(lambda: "timer threw: probe: a timer threw" in c.stderr(), 20, "the exception logged")
        time.sleep(0.5)  # nothing to wait for: the worker must simply still be there
        status = ctl(c, "status", "--json")
        self.assertIn(str(ready["workers"][0]), status.stdout)
        self.assertNotIn("exited with code 70", c.stderr())

    def test_with_exit_the_worker_is_replaced(self):
        c = self.start(workers=2, env={"PROBE_PARITY": "1"}, args=("-s", "on_uncaught_exception=exit"))
        ready = c.wait_ready()
        wait_for(lambda: "exited with code 70" in c.stderr(), 20, "the worker to exit")
        self.assertIn("exiting (on_uncaught_exception = exit)", c.stderr())
        wait_for(lambda: any(e["replacement"] for e in c.events("start")), 20, "its replacement")
        self.assertEqual(len(c.events("throwing")), 1)  # the replacement does not throw again

    def test_with_exit_the_requests_in_flight_are_answered_before_the_worker_goes(self):
        import concurrent.futures
        import urllib.request
        c = self.start(workers=1, env={"PROBE_HTTP": "1"},
                       args=("-s", "on_uncaught_exception=exit", "-s", "kill_timeout=20s"))
        ready = c.wait_ready()
        url = f"http://127.0.0.1:{ready['port']}"

        def get(path):
            with urllib.request.urlopen(url + path, timeout=30) as r:
                return r.status, r.read().decode()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            slow = [pool.submit(get, "/slow") for _ in range(4)]
            wait_for(lambda: len(c.events("slow-http-start")) == 4, 20, "four requests in flight")
            throwing = pool.submit(get, "/throw-later")
            # The timer throws 50 ms in; the request that set it is answered 400 ms in, by the
            # worker that is already stopping. Every request in flight gets its answer.
            self.assertEqual(throwing.result(), (200, "answered after the throw"))
            self.assertEqual([f.result() for f in slow], [(200, "slow done")] * 4)
        wait_for(lambda: "exited with code 70" in c.stderr(), 20, "the worker to exit with 70")
        self.assertIn("exiting (on_uncaught_exception = exit)", c.stderr())
        self.assertNotIn("SIGKILL", c.stderr(), "it drained on its own, within kill_timeout")
        wait_for(lambda: any(e["replacement"] for e in c.events("start")), 20, "its replacement")
        self.assertEqual(get("/"), (200, "hello world"))

    def test_the_hello_example_starts_without_a_warning(self):
        from cluster import HELLO
        c = self.start(binary=HELLO, workers=2)
        c.wait_ready()
        # The broadcast reached both workers and the agent (its sender), the greeting the others.
        wait_for(lambda: c.stderr().count("says: the cluster is ready") == 2 and
                 "agent hears: the cluster is ready" in c.stderr() and
                 "got greeting: hi from worker 0" in c.stderr(), 20, "the greetings")
        wait_for(lambda: "the agent has ticked" in c.stderr(), 20, "a tick's round trip")
        self.assertNotIn("warning", c.stderr())
        self.assertNotIn("error", c.stderr())

    def test_ipv6_loopback(self):
        proc = subprocess.Popen([os.path.join(BUILD_DIR, "tests/integration/probe"), "--workers", "1", "--port", "0",
                                 "--host", "::1", "-s", "control_socket=off"],
                                env={**os.environ, "PROBE_HTTP": "1", "PROBE_LOG": os.devnull},
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: (proc.poll() is None and proc.terminate(), proc.wait(30), proc.stdout.close()))
        line = proc.stdout.readline()
        port = re.search(r"listening on \[::1\]:(\d+)", line)
        self.assertIsNotNone(port, line)
        out = subprocess.run(["curl", "-sg", f"http://[::1]:{port.group(1)}/"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.stdout, "hello world")

    def test_cron_last_day_nearest_weekday_and_nth_weekday(self):
        def fires(expr):
            out = subprocess.run([CLUTCHCTL, "cron", expr, "--tz", "UTC", "--from", "2026-01-15T00:00:00Z",
                                  "--next", "2"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            return out.stdout.split()
        self.assertEqual(fires("0 0 L * *"), ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00"])
        self.assertEqual(fires("0 0 LW * *"), ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"])
        self.assertEqual(fires("0 0 * * FRI#1"), ["2026-02-06T00:00:00+00:00", "2026-03-06T00:00:00+00:00"])


if __name__ == "__main__":
    unittest.main()


class UnixSocket(ClusterTest):
    def test_listen_on_a_unix_socket(self):
        import stat
        import tempfile
        d = tempfile.mkdtemp(prefix="clutch-unix-")
        path = os.path.join(d, "app.sock")
        c = self.start(workers=2, args=("--host", f"unix:{path}", "-s", "socket_mode=0600"),
                       env={"PROBE_HTTP": "1"})
        line = wait_for(lambda: next((l for l in c.stdout_lines if "ready in" in l), None), 30, "ready")
        self.assertIn(f"listening on unix:{path}", line)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        for _ in range(10):
            out = subprocess.run(["curl", "-s", "--unix-socket", path, "http://localhost/"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.stdout, "hello world")
        c.signal(__import__("signal").SIGTERM)
        self.assertEqual(c.wait_exit(30), 0)
        self.assertFalse(os.path.exists(path))  # the file goes with the master
        os.rmdir(d)
