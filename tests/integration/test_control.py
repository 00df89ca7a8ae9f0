"""The control socket and clutchctl (issue 9): status, scale, reload, stop against a live cluster;
who may talk to it; what a bad client gets; a cluster whose socket cannot be made still starts."""

import json
import os
import pwd
import shutil
import signal
import re
import socket
import stat
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

from cluster import BUILD_DIR, ClusterTest, alive, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


def control_path(c):
    return re.search(r", control ([^,\s]+)", c.stdout_lines[0]).group(1)


def ctl(c, *args, timeout=120, user=None):
    def drop():
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    return subprocess.run([CLUTCHCTL, *args, "--socket", control_path(c)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=drop)


def raw_request(path, data, timeout=10):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the master stopped reading a line that is too long; its answer is there
        out = b""
        while b'"done":true' not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return [json.loads(line) for line in out.decode().splitlines() if line]


class Load:
    """HTTP clients in a loop, each request on a new connection; counts what failed."""

    def __init__(self, port, threads=4):
        self.port, self.ok, self.failed = port, 0, []
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=10) as r:
                    r.read()
                    self.ok += 1
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                self.failed.append(repr(e))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()


class Control(ClusterTest):
    def test_status_shows_every_process_as_a_table_and_as_json(self):
        c = self.start(workers=2)
        ready = c.wait_ready()
        table = ctl(c, "status")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertRegex(table.stdout, r"probe: ready, generation 0")
        for pid in [ready["agent"], *ready["workers"]]:
            self.assertIn(str(pid), table.stdout)
        self.assertIn("ROLE", table.stdout.splitlines()[1])
        status = json.loads(ctl(c, "status", "--json").stdout)
        self.assertEqual(status["master"], ready["master"])
        rows = {p["pid"]: p for p in status["processes"]}
        self.assertEqual(set(rows), {ready["agent"], *ready["workers"]})
        self.assertTrue(all(p["state"] == "ready" and p["rss_bytes"] > 0 for p in rows.values()))
        # The socket is the user's alone.
        self.assertEqual(stat.S_IMODE(os.stat(control_path(c)).st_mode), 0o600)

    def test_scale_up_and_down_under_load_fails_no_request(self):
        c = self.start(workers=2, env={"PROBE_HTTP": "1"})
        port = c.wait_ready()["port"]
        load = Load(port)
        try:
            wait_for(lambda: load.ok >= 20, 30, "the load to run")
            up = ctl(c, "scale", "4")
            self.assertEqual((up.returncode, up.stdout.strip()), (0, "scaled to 4 worker(s)"), up.stderr)
            workers = [p for p in json.loads(ctl(c, "status", "--json").stdout)["processes"] if p["role"] == "worker"]
            self.assertEqual([p["slot"] for p in workers], [0, 1, 2, 3])
            self.assertTrue(all(p["state"] == "ready" for p in workers))
            # Added workers replace no one: Context::replacement() is false for them.
            added = [e for e in c.events("start") if e["role"] == "worker" and e["slot"] >= 2]
            self.assertEqual([e["replacement"] for e in added], [False, False])
            served = load.ok
            wait_for(lambda: load.ok >= served + 20, 30, "requests on 4 workers")
            down = ctl(c, "scale", "-3")
            self.assertEqual((down.returncode, down.stdout.strip()), (0, "scaled to 1 worker(s)"), down.stderr)
            served = load.ok
            wait_for(lambda: load.ok >= served + 20, 30, "requests on 1 worker")
        finally:
            load.stop()
        self.assertEqual(load.failed, [], f"{len(load.failed)} of {load.ok} requests failed")
        workers = [p for p in json.loads(ctl(c, "status", "--json").stdout)["processes"] if p["role"] == "worker"]
        self.assertEqual(len(workers), 1)
        self.assertIn("(scaled down)", c.stderr())

    def test_while_a_scale_runs_every_entry_point_refuses_the_others_alike(self):
        # Issue 24: SIGHUP and clutchctl reload once ignored a running scale or upgrade, and the
        # dashboard refused with another reason. One rule now, naming the operation in progress.
        flag = os.path.join(tempfile.mkdtemp(prefix="clutch-admit-"), "hang")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.start(workers=1, env={"PROBE_HANG_ROLE": "worker", "PROBE_HANG_FLAG": flag},
                       args=("-s", "startup_timeout=60s", "-s", "kill_timeout=2s"))
        c.wait_ready()
        open(flag, "w").close()  # the added worker's setup hangs: the scale stays in progress
        scale = subprocess.Popen([CLUTCHCTL, "scale", "2", "--socket", control_path(c)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        def finish_scale():
            if scale.poll() is None:
                scale.kill()
            scale.communicate()
        self.addCleanup(finish_scale)
        wait_for(lambda: c.events("hang"), 30, "the added worker to hang in its setup")
        for args in (("reload",), ("restart", "0"), ("scale", "3"), ("upgrade",)):
            r = ctl(c, *args)
            self.assertEqual(r.returncode, 1, (args, r.stdout))
            self.assertIn("a scale is in progress", r.stderr, args)
        c.signal(signal.SIGHUP)
        wait_for(lambda: "reload (SIGHUP) refused: a scale is in progress" in c.stderr(), 10,
                 "the SIGHUP to be refused")
        self.assertNotIn("reload 1 (", c.stderr())
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(timeout=30), 0)

    def test_reload_reports_progress_and_a_failed_reload_exits_1_with_the_old_workers_serving(self):
        flag = os.path.join(tempfile.mkdtemp(prefix="clutch-reload-"), "fail")
        c = self.start(workers=2, env={"PROBE_HTTP": "1", "PROBE_FAIL_FLAG": flag})
        ready = c.wait_ready()
        ok = ctl(c, "reload")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertRegex(ok.stdout, r"reload 1: worker 0 replaced \(pid \d+ -> \d+\)")
        self.assertRegex(ok.stdout, r"reload 1 complete in \d+ ms")
        serving = [p["pid"] for p in json.loads(ctl(c, "status", "--json").stdout)["processes"]
                   if p["role"] == "worker"]
        open(flag, "w").close()  # the new build's workers fail at start
        failed = ctl(c, "reload")
        self.assertEqual(failed.returncode, 1)
        self.assertIn("reload 2 failed", failed.stderr)
        self.assertIn("the running generation keeps serving", failed.stderr)
        self.assertTrue(all(alive(pid) for pid in serving))
        with urllib.request.urlopen(f"http://127.0.0.1:{ready['port']}/", timeout=10) as r:
            self.assertEqual(r.status, 200)

    def test_restart_replaces_one_worker_with_its_successor_ready_first_and_the_agent(self):
        c = self.start(workers=2, env={"PROBE_HTTP": "1"})
        ready = c.wait_ready()
        load = Load(ready["port"])
        try:
            wait_for(lambda: load.ok >= 20, 30, "the load to run")
            r = ctl(c, "restart", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, rf"worker 1 replaced \(pid {ready['workers'][1]} -> \d+\): clutchctl restart")
            r = ctl(c, "restart", f"pid:{ready['workers'][0]}")
            self.assertEqual(r.returncode, 0, r.stderr)
            successors = [e for e in c.events("start") if e["role"] == "worker" and e["pid"] not in ready["workers"]]
            self.assertEqual([e["replacement"] for e in successors], [True, True])
            served = load.ok
            wait_for(lambda: load.ok >= served + 20, 30, "requests after the restarts")
        finally:
            load.stop()
        self.assertEqual(load.failed, [], f"{len(load.failed)} of {load.ok} requests failed")
        r = ctl(c, "restart", "agent")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("agent restarted", r.stdout)
        pids = {p["pid"] for p in json.loads(ctl(c, "status", "--json").stdout)["processes"]}
        self.assertFalse(pids & {ready["agent"], *ready["workers"]}, "a process was not replaced")
        bad = ctl(c, "restart", "7")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no ready process there", bad.stderr)

    def test_stop_stops_the_cluster_gracefully(self):
        # A path of its own: the default name is shared by every probe cluster, and one started
        # by a concurrent test right after this one exits would take it over.
        own = tempfile.mkdtemp(prefix="clutch-ctl-")
        self.addCleanup(shutil.rmtree, own, True)
        c = self.start(workers=2, args=("-s", f"control_socket={own}/probe.sock"))
        ready = c.wait_ready()
        path = control_path(c)
        self.assertEqual(path, f"{own}/probe.sock")
        r = ctl(c, "stop")
        # It returns once the master is gone: `stop && start` finds the port free.
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, f"stopping gracefully... stopped (master {c.pid} exited)"))
        self.assertIsNotNone(c.proc.poll(), "clutchctl stop returned before the master exited")
        self.assertEqual(c.wait_exit(), 0)
        self.assertFalse(any(alive(p) for p in [ready["agent"], *ready["workers"]]))
        with socket.socket() as s:
            s.bind(("127.0.0.1", ready["port"]))  # free
        self.assertFalse(os.path.exists(path), "the socket file outlived the master")

    def test_a_client_of_another_user_is_refused(self):
        c = self.start(workers=1)
        c.wait_ready()
        if os.geteuid() != 0:
            self.skipTest("needs root to run a client as another user")
        nobody = pwd.getpwnam("nobody")
        # The socket's mode already keeps others out...
        r = ctl(c, "status", user=nobody)
        self.assertEqual(r.returncode, 2)
        self.assertIn("Permission denied", r.stderr)
        # ...and should the file be opened up, the peer's uid is checked as well.
        path = control_path(c)
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o666)
        self.addCleanup(os.chmod, os.path.dirname(path), 0o700)
        r = ctl(c, "status", user=nobody)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("permission denied: run as the cluster's user or root", r.stderr)
        self.assertIn("refused a client running as uid", c.stderr())

    def test_malformed_and_oversized_requests_get_errors_and_the_master_serves_on(self):
        c = self.start(workers=1)
        c.wait_ready()
        path = control_path(c)
        answers = raw_request(path, b"this is not json\n")
        self.assertFalse(answers[-1]["ok"])
        self.assertIn("expected one JSON object a line", answers[-1]["error"])
        self.assertIn("unknown command", raw_request(path, b'{"v":1,"cmd":"dance"}\n')[-1]["error"])
        self.assertIn("protocol version 7", raw_request(path, b'{"v":7,"cmd":"status"}\n')[-1]["error"])
        answers = raw_request(path, b"x" * (1 << 20) + b"\n")
        self.assertIn("over 64 KiB", answers[-1]["error"])
        self.assertEqual(ctl(c, "status").returncode, 0)
        self.assertIsNone(c.proc.poll())

    def test_without_a_usable_control_socket_the_cluster_starts_and_says_so_once(self):
        c = self.start(workers=1, args=("-s", "control_socket=/nonexistent/dir/x.sock"))
        c.wait_ready()
        self.assertEqual(c.stderr().count("control socket not opened"), 1)
        self.assertNotIn(", control ", c.stdout_lines[0])


if __name__ == "__main__":
    unittest.main()
