"""A real clutch cluster for the integration tests: starts an example binary, reads the master's
ready line and the JSON events the probe app appends to its log, and always stops every process it
started, by pid."""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

BUILD_DIR = os.environ.get("CLUTCH_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/dev"))
PROBE = os.path.join(BUILD_DIR, "tests/integration/probe")
HELLO = os.path.join(BUILD_DIR, "examples/hello/hello")

READY_LINE = re.compile(
    r"ready in (\d+) ms: master (\d+), agent (\d+), workers \[([\d,]*)\], listening on ([^:]+):(\d+)")


def alive(pid):
    """True while pid runs (a zombie counts as gone: it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def maps_library(pid, name):
    """True if the process has a shared library whose path contains `name` mapped."""
    with open(f"/proc/{pid}/maps") as f:
        return name in f.read()


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    def __init__(self, binary=PROBE, workers=2, args=(), env=None, open_files=None):
        self.dir = tempfile.mkdtemp(prefix="clutch-test-")
        self.log_path = os.path.join(self.dir, "events.jsonl")
        full_env = dict(os.environ)
        full_env.update({"PROBE_LOG": self.log_path, "CLUTCH_LOG_LEVEL": "info"})
        full_env.update(env or {})
        port = [] if "--port" in args else ["--port", "0"]
        host = [] if "--host" in args else ["--host", "127.0.0.1"]
        self.cmd = [binary, "--workers", str(workers), *port, *host, *args]
        def limit_open_files():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        self.proc = subprocess.Popen(self.cmd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=limit_open_files if open_files else None)
        self.stdout_lines, self.stderr_lines = [], []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.ready = None

    @staticmethod
    def _pump(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=30):
        def find():
            for line in self.stdout_lines:
                m = READY_LINE.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                raise AssertionError(f"master exited with {self.proc.returncode} before ready:\n{self.stderr()}")
            return None
        m = wait_for(find, timeout, "the cluster's ready line")
        self.ready = {
            "ms": int(m.group(1)), "master": int(m.group(2)), "agent": int(m.group(3)),
            "workers": [int(p) for p in m.group(4).split(",") if p], "port": int(m.group(6)),
        }
        return self.ready

    def events(self, ev=None):
        try:
            with open(self.log_path) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        # A child may be in the middle of its write(2) while we read: only lines that already
        # end in a newline are complete, so the unterminated tail is left for the next call.
        lines = text.split("\n")[:-1]
        out = [json.loads(line) for line in lines if line]
        return [e for e in out if ev is None or e["ev"] == ev]

    def mark(self, pids, timeout=30):
        """A proof event (probe with PROBE_MARKS=1): the agent broadcasts a new mark through the
        master and this returns once each of `pids` has logged it. The channels are FIFO, so
        whatever the master had sent those processes before is handled by then: an absence
        (no duplicate, no second ready) is proven by the mark, not by a sleep."""
        self._marks = getattr(self, "_marks", 0) + 1
        n = self._marks
        request = self.log_path + ".mark"
        with open(request + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(request + ".tmp", request)  # the agent never reads half a number
        wait_for(lambda: {e["pid"] for e in self.events("mark") if e["n"] == n} >= set(pids),
                 timeout, f"mark {n} at pids {sorted(pids)}")

    def stderr(self):
        return "\n".join(self.stderr_lines)

    def child_pids(self):
        return sorted({e["pid"] for e in self.events("start")})

    def kill_tree(self):
        """SIGKILLs the master and every child it started, at once, as a host crash would."""
        for pid in [self.pid, *self.child_pids()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"master did not exit within {timeout}s:\n{self.stderr()}")

    def close(self):
        """Stops the master and every child it reported, by pid, whatever state they are in."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.child_pids():
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for t in self._readers:
            t.join(timeout=2)
        self.proc.stdout.close()
        self.proc.stderr.close()


class RedisServer:
    """A redis-server on a free loopback port, with an append-only file so that a restart keeps
    the data; stopped by its pid."""

    def __init__(self):
        import shutil
        import socket
        if shutil.which("redis-server") is None:
            raise AssertionError("redis-server is not installed (scripts/deps installs it)")
        self.dir = tempfile.mkdtemp(prefix="clutch-redis-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
             "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli("PING") == "PONG", 10, "redis-server to answer")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, stream="jobs", group="workers"):
        return f"redis://127.0.0.1:{self.port}/{stream}?group={group}"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A PostgreSQL server (Debian's postgresql) in its own temporary data directory on a free
    loopback port, made with initdb and run as the `postgres` user when the tests run as root
    (the server refuses root); stopped by its pid. Trust authentication, loopback only."""

    def __init__(self):
        import glob
        import pwd
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not bins:
            raise AssertionError("postgresql is not installed (scripts/deps installs it)")
        self.bin = os.path.dirname(bins[-1])
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="clutch-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        subprocess.run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, timeout=120, user=self.user, cwd=self.dir)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=self.log, stderr=subprocess.STDOUT, user=self.user, cwd=self.dir)
        wait_for(lambda: self.proc.poll() is not None or self.ready(), 30, "postgres to answer")
        if self.proc.poll() is not None:
            raise AssertionError("postgres exited:\n" + open(self.log.name).read()[-3000:])

    def ready(self):
        return subprocess.run([os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1", "-p",
                               str(self.port)], capture_output=True).returncode == 0

    def sql(self, statement):
        """Runs `statement` with psql; returns its rows as lists of text."""
        r = subprocess.run([os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", "postgres", "-AtX", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-c", statement],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"psql: {statement}: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines()]

    def url(self, db="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self, mode=signal.SIGINT):
        """SIGINT: a fast shutdown (pg_ctl -m fast); SIGQUIT: an immediate one, as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(mode)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RabbitServer:
    """A rabbitmq-server on free loopback ports with its own data directory, node name, Erlang
    cookie and epmd (started in the foreground, so that it too is stopped by its pid). Starting
    takes several seconds: share one per test class."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self):
        if not os.path.exists(self.SERVER):
            raise AssertionError("rabbitmq-server is not installed (scripts/deps installs it)")
        self.dir = tempfile.mkdtemp(prefix="clutch-rabbit-")
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.node = f"clutch{self.port}@localhost"
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("loopback_users = none\n")
        self.env = dict(os.environ, HOME=self.dir, ERL_EPMD_ADDRESS="127.0.0.1",
                        ERL_EPMD_PORT=str(self.epmd_port), RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
                        RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"), RABBITMQ_LOGS="-")
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "w")
        # Its own session: the script starts beam.smp and helpers, all stopped through its group.
        self.proc = subprocess.Popen([self.SERVER], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: "Server startup complete" in self.output() or self.proc.poll() is not None,
                     90, "rabbitmq-server to start")
            if self.proc.poll() is not None:
                raise AssertionError("rabbitmq-server exited:\n" + self.output()[-3000:])
        except BaseException:
            self.stop()
            raise

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def url(self, queue, **params):
        query = "&".join([f"queue={queue}"] + [f"{k}={v}" for k, v in params.items()])
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F?{query}"

    def beam_pid(self):
        """The Erlang VM's pid (to SIGSTOP it as a hung broker)."""
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid), "beam.smp"], capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) if out else None

    def ctl(self, *args):
        r = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *args], env=self.env,
                           capture_output=True, text=True, timeout=60)
        return r.stdout

    def queue_info(self, queue, *fields):
        """The broker's integer `fields` (list_queues columns) for `queue` as a tuple, or None
        while the queue does not exist."""
        for line in self.ctl("list_queues", "name", *fields).splitlines():
            parts = line.split("\t")
            if parts[0] == queue:
                return tuple(int(v) for v in parts[1:])
        return None

    def stop(self):
        if self.proc.poll() is None:
            beam = self.beam_pid()
            if beam:
                os.kill(beam, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # helpers (erl_child_setup, inet_gethost)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        if self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait()
        self.log.close()


# Restart settings that let killed children come back within the test's time.
FAST_RESTARTS = ("-s", "min_uptime=50ms", "-s", "restart_backoff_initial=10ms", "-s", "restart_backoff_max=200ms")


def debian_module(name):
    """Imports a Python module that scripts/deps installs from Debian (python3-NAME), also when
    the python3 running the tests is not Debian's own (pyenv, a venv) and does not look in
    Debian's dist-packages."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        import sys
        sys.path.append("/usr/lib/python3/dist-packages")
        return importlib.import_module(name)


def consume_under_kills(c, total, seed, timeout=240):
    """Waits until `total` distinct queue messages were handled (probe "mq" events) while a random
    worker is SIGKILLed every 200 ms and the agent once, a third of the way through. Returns
    (handled counts by body, whether the agent was killed)."""
    import collections
    import random
    rng = random.Random(seed)
    killed_agent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled = {e["body"] for e in c.events("mq")}
        if len(handled) >= total:
            break
        workers = [e["pid"] for e in c.events("ready") if e["role"] == "worker" and alive(e["pid"])]
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)
        if not killed_agent and len(handled) > total // 3:
            agent = [e["pid"] for e in c.events("ready") if e["role"] == "agent"][-1]
            os.kill(agent, signal.SIGKILL)
            killed_agent = True
        time.sleep(0.2)
    return collections.Counter(e["body"] for e in c.events("mq")), killed_agent


def check_unstalled_while_broker_hangs(test, c, port, broker_pid, seconds=4):
    """SIGSTOPs the broker (it accepts connections and answers nothing, as a hung broker does) for
    `seconds` and checks that HTTP kept answering and the agent's `every200` schedule kept its
    clock, i.e. no broker call blocked a loop; then resumes the broker."""
    import urllib.request
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        stalled_at = time.time()
        answered = 0
        while time.time() - stalled_at < seconds:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                answered += r.status == 200
            time.sleep(0.05)
        test.assertGreater(answered, 0)
        ticks = sorted(e["t"] for e in c.events("job-start")
                       if e["job"] == "every200" and e["t"] >= stalled_at - 0.2)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        test.assertTrue(ticks and ticks[-1] > stalled_at + seconds - 1, "no ticks during the stall")
        # A broker call on the agent's loop would hold the ticks for the whole stall (or for a
        # call's timeout, 1 s and more, again and again); a busy machine alone delays a 200 ms
        # tick by up to about a second (seen beside a build: 1.00 s). So: ticks all through the
        # stall, none held for half of it.
        test.assertLess(max(gaps), seconds / 2,
                        f"the agent's loop stalled: tick gaps up to {max(gaps):.2f} s")
        test.assertGreater(len([t for t in ticks if stalled_at + 1 < t < stalled_at + seconds]), 0,
                           "no ticks in the middle of the stall")
    finally:
        os.kill(broker_pid, signal.SIGCONT)


class ClusterTest(unittest.TestCase):
    """A test case whose clusters are always stopped, by pid, when the test ends."""

    def start(self, **kw):
        c = Cluster(**kw)
        self.addCleanup(c.close)
        return c
