"""Upgrading the master itself (issue 9): clutchctl upgrade and SIGUSR2 exec the binary on disk
as a new master that takes over the listening, control and metrics sockets; under load no
request fails; a new master that cannot start leaves the old one serving. And systemd socket
activation (LISTEN_FDS): the socket outlives the master."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from cluster import PROBE, READY_LINE, ClusterTest, alive, wait_for
from test_control import CLUTCHCTL, Load, ctl


def masters(c):
    """Every master that printed a ready line on this cluster's stdout, in order."""
    return [int(m.group(2)) for m in (READY_LINE.search(l) for l in list(c.stdout_lines)) if m]


def stop_pid(pid):
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not alive(pid), 15, f"pid {pid} to stop")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)


def get(port, path="/pid"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


class Upgrade(ClusterTest):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clutch-upgrade-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.binary = os.path.join(self.dir, "app")
        self.install(PROBE)

    def install(self, source):
        """Replaces the binary on disk as a deploy would: a new file renamed over the old."""
        shutil.copy(source, self.binary + ".new")
        os.chmod(self.binary + ".new", 0o755)
        os.rename(self.binary + ".new", self.binary)

    def cluster(self, **kw):
        env = {"PROBE_HTTP": "1", **kw.pop("env", {})}
        c = self.start(binary=self.binary, workers=2, env=env,
                       args=("-s", "metrics_listen=127.0.0.1:0", *kw.pop("args", ())))
        # Whatever masters the upgrades started are stopped by pid too.
        self.addCleanup(lambda: [stop_pid(p) for p in masters(c)[1:]])
        c.wait_ready()
        return c

    def test_upgrade_under_load_fails_no_request_and_the_new_binary_serves(self):
        c = self.cluster()
        old = c.ready["master"]
        self.install(PROBE)  # a rebuilt binary: same path, new file
        self.assertTrue(os.readlink(f"/proc/{old}/exe").endswith("(deleted)"))
        load = Load(c.ready["port"])
        try:
            wait_for(lambda: load.ok >= 50, 30, "requests before the upgrade")
            out = ctl(c, "upgrade", "--json")
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            answer = json.loads(out.stdout)
            new = answer["master"]
            self.assertEqual(answer["old_master"], old)
            self.assertEqual(c.wait_exit(30), 0)  # the old master drained and left
            served = load.ok
            wait_for(lambda: load.ok >= served + 50, 30, "requests after the upgrade")
        finally:
            load.stop()
        self.assertEqual(load.failed, [])
        self.assertEqual(os.readlink(f"/proc/{new}/exe"), self.binary)
        self.assertEqual(masters(c), [old, new])
        # The new master answers on the same control socket, port and metrics listener.
        status = json.loads(ctl(c, "status", "--json").stdout)
        self.assertEqual(status["master"], new)
        self.assertEqual(status["state"], "ready")
        new_workers = {p["pid"] for p in status["processes"] if p["role"] == "worker"}
        self.assertIn(int(get(c.ready["port"])), new_workers)
        address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[-1]).group(1)
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=10) as r:
            self.assertEqual(r.status, 200)

        # SIGUSR2 does the same, as with nginx and gunicorn.
        os.kill(new, signal.SIGUSR2)
        wait_for(lambda: len(masters(c)) == 3, 60, "a third master after SIGUSR2")
        wait_for(lambda: not alive(new), 30, "the second master to leave")
        third = masters(c)[2]
        self.assertEqual(json.loads(ctl(c, "status", "--json").stdout)["master"], third)

    def test_under_systemd_the_old_master_hands_over_and_says_nothing_that_stops_the_unit(self):
        # Issue 22.3: after handing over, the old master sent STOPPING=1, which systemd (with
        # NotifyAccess=all) takes as the service stopping. A fake NOTIFY_SOCKET records who sent
        # what (SO_PASSCRED gives the sender's pid).
        path = os.path.join(self.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(path)
        sock.settimeout(0.2)
        self.addCleanup(sock.close)
        received = []  # (sender pid, datagram)

        def drain():
            while True:
                try:
                    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
                except socket.timeout:
                    return
                pid = next(int.from_bytes(d[:4], "little") for level, kind, d in ancillary
                           if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
                received.append((pid, data.decode()))

        # WATCHDOG_PID names a pid other than the first master, as it names the old main pid
        # once the new master runs.
        c = self.cluster(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000",
                              "WATCHDOG_PID": "0"})
        old = c.ready["master"]
        out = ctl(c, "upgrade", "--json")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        new = json.loads(out.stdout)["master"]
        self.assertEqual(c.wait_exit(30), 0)
        drain()
        # The new master feeds the watchdog once it is the main pid.
        wait_for(lambda: drain() or any(p == new and m == "WATCHDOG=1" for p, m in received), 20,
                 "a watchdog ping from the new master")
        from_old = [m for p, m in received if p == old]
        from_new = [m for p, m in received if p == new]
        self.assertTrue(any("READY=1" in m and f"MAINPID={new}" in m for m in from_new), received)
        handover = [i for i, m in enumerate(from_old) if f"MAINPID={new}" in m]
        self.assertEqual(len(handover), 1, from_old)
        # Nothing from the old pid after the hand-over, and never a STOPPING=1.
        self.assertEqual(from_old[handover[0] + 1:], [], from_old)
        self.assertFalse(any("STOPPING=1" in m for m in from_old), from_old)

    def test_the_pid_file_names_whichever_master_serves(self):
        pid_file = os.path.join(self.dir, "app.pid")

        def held():
            with open(pid_file) as f:
                return int(f.read())
        c = self.cluster(args=("-s", f"pid_file={pid_file}"))
        self.assertEqual(held(), c.ready["master"])
        out = ctl(c, "upgrade", "--json")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        new = json.loads(out.stdout)["master"]
        self.assertEqual(held(), new, "the new master names itself once it serves")
        self.assertEqual(c.wait_exit(30), 0)
        self.assertEqual(held(), new, "the old master's exit left the new pid in place")
        # logrotate's `kill -USR1 $(cat FILE)` reaches the serving master.
        os.kill(held(), signal.SIGUSR1)
        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not alive(new), 30, "the new master to stop")
        self.assertFalse(os.path.exists(pid_file), "removed by the master it named")

    def test_a_pid_file_that_cannot_be_written_stops_the_start_with_exit_2(self):
        c = self.start(binary=self.binary, workers=1,
                       args=("-s", "pid_file=/nonexistent-dir/app.pid"))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("pid_file: cannot write /nonexistent-dir/app.pid: No such file or directory",
                      c.stderr())

    def test_a_new_master_whose_workers_fail_leaves_the_old_one_serving_with_its_agent(self):
        flag = os.path.join(self.dir, "fail")
        c = self.cluster(env={"PROBE_FAIL_FLAG": flag}, args=("-s", "startup_timeout=10s"))
        old = c.ready["master"]
        old_workers = set(c.ready["workers"])
        open(flag, "w").close()  # from now on a starting worker fails: the new master cannot start
        load = Load(c.ready["port"])
        try:
            out = ctl(c, "upgrade")
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn("upgrade failed", out.stderr)
            self.assertIn("the old master keeps serving", out.stderr)
        finally:
            load.stop()
        self.assertEqual(load.failed, [])
        self.assertTrue(alive(old))
        status = json.loads(ctl(c, "status", "--json").stdout)
        self.assertEqual(status["master"], old)
        # Its agent was stopped for the new master; it is back, and the workers never changed.
        wait_for(lambda: json.loads(ctl(c, "status", "--json").stdout)["state"] == "ready", 30,
                 "the old cluster ready again")
        status = json.loads(ctl(c, "status", "--json").stdout)
        self.assertEqual({p["pid"] for p in status["processes"] if p["role"] == "worker"}, old_workers)
        wait_for(lambda: "starting the agent again" in c.stderr(), 10, "the agent restart logged")
        self.assertIn(int(get(c.ready["port"])), old_workers)

    def test_a_binary_that_fails_at_once_is_reported_and_nothing_changes(self):
        c = self.cluster()
        old = c.ready["master"]
        with open(self.binary + ".new", "w") as f:
            f.write("#!/bin/sh\necho 'broken build' >&2\nexit 1\n")
        os.chmod(self.binary + ".new", 0o755)
        os.rename(self.binary + ".new", self.binary)
        out = ctl(c, "upgrade")
        self.assertEqual(out.returncode, 1)
        self.assertIn("the new master exited with code 1", out.stderr)
        self.assertEqual(json.loads(ctl(c, "status", "--json").stdout)["master"], old)
        self.assertIn(int(get(c.ready["port"])), c.ready["workers"])


class SocketActivation(ClusterTest):
    def test_a_passed_socket_is_served_and_outlives_the_master(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        self.addCleanup(listener.close)

        def start():
            # As systemd does: the socket at fd 3, LISTEN_PID the master's own pid.
            def at_fd_3():
                os.dup2(listener.fileno(), 3)
            proc = subprocess.Popen(
                ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" "$@"', PROBE,
                 "--workers", "2", "--port", "0", "--host", "127.0.0.1", "-s", "control_socket=off"],
                env={**os.environ, "PROBE_HTTP": "1", "PROBE_LOG": os.path.join(tempfile.gettempdir(), "sa.jsonl")},
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=at_fd_3,
                pass_fds=(3,))
            self.addCleanup(proc.stdout.close)
            self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
            line = proc.stdout.readline()
            self.assertRegex(line, rf"listening on 127\.0\.0\.1:{port}\b")
            return proc

        first = start()
        self.assertTrue(get(port).isdigit())
        first.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait(timeout=30), 0)
        # No master now: a client's connection waits in the socket's queue, not refused.
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(client.close)
        client.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        second = start()
        reply = b""
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
        second.send_signal(signal.SIGTERM)
        self.assertEqual(second.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()
