"""Once-only through agent crashes (issue 8, item 1): an agent killed while the master holds its
messages, or while workers are handling them, must not get any message handled twice, on the
SQLite queue and on Redis Streams."""

import collections
import os
import signal
import sqlite3
import subprocess
import tempfile
import unittest

from cluster import BUILD_DIR, ClusterTest, FAST_RESTARTS, RedisServer, alive, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")
# A killed process stays down for 4 s: long enough that the master holds what the agent sent.
SLOW_RESTARTS = ("-s", "min_uptime=5s", "-s", "restart_backoff_initial=4s", "-s", "restart_backoff_max=4s")


class OnceOnly:
    """The scenarios; a subclass says which queue."""

    def publish(self, prefix, count):
        subprocess.run([CLUTCHCTL, "publish", self.url, prefix, "--count", str(count)], check=True,
                       capture_output=True, timeout=300)

    def cluster(self, workers, args=(), env=None):
        return self.start(workers=workers, args=args, env={"PROBE_QUEUE": self.url, **(env or {})})

    def live_agent(self, c):
        agents = [e["pid"] for e in c.events("ready") if e["role"] == "agent" and alive(e["pid"])]
        return agents[-1] if agents else None

    def assert_each_handled_once(self, c, bodies):
        wait_for(lambda: {e["body"] for e in c.events("mq")} >= bodies, 120, f"all {len(bodies)} messages handled")
        wait_for(lambda: self.queue_empty(), 30, "the queue to be empty")
        counts = collections.Counter(e["body"] for e in c.events("mq"))
        twice = {body: n for body, n in counts.items() if n > 1}
        self.assertEqual(twice, {}, f"{len(twice)} message(s) handled more than once\n{c.stderr()}")

    def test_agent_killed_while_the_master_holds_its_messages(self):
        c = self.cluster(workers=1, args=SLOW_RESTARTS)
        ready = c.wait_ready()
        os.kill(ready["workers"][0], signal.SIGKILL)  # no worker for 4 s
        wait_for(lambda: "restarting in" in c.stderr(), 10, "the master to see the worker die")
        self.publish("held", 2000)
        # The agent has taken a window of messages and sent them; the master holds them.
        wait_for(lambda: self.taken() >= 16, 20, "the agent to take a window of messages")
        os.kill(ready["agent"], signal.SIGKILL)
        self.assert_each_handled_once(c, {f"held-{i}" for i in range(1, 2001)})
        self.assertIn("no worker had taken yet: dropped", c.stderr())

    def test_agent_killed_while_workers_handle_its_messages(self):
        self.publish("busy", 60)
        c = self.cluster(workers=2, args=FAST_RESTARTS, env={"PROBE_WORK_US": "150000"})
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 4, 30, "the first messages to be handled")
        agent = self.live_agent(c)
        os.kill(agent, signal.SIGKILL)
        wait_for(lambda: self.live_agent(c) not in (None, agent), 20, "the replacement agent")
        self.assert_each_handled_once(c, {f"busy-{i}" for i in range(1, 61)})


class SqliteOnce(OnceOnly, ClusterTest):
    def setUp(self):
        self.db = os.path.join(tempfile.mkdtemp(prefix="clutch-once-"), "queue.db")
        self.url = "sqlite:" + self.db

    def query(self, sql):
        with sqlite3.connect(self.db) as db:
            return db.execute(sql).fetchone()[0]

    def taken(self):
        return self.query("SELECT count(*) FROM messages WHERE visible_at > 0")

    def queue_empty(self):
        return self.query("SELECT count(*) FROM messages") == 0


class RedisOnce(OnceOnly, ClusterTest):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.url = self.redis.url()

    def taken(self):
        return int(self.redis.cli("XPENDING", "jobs", "workers").splitlines()[0] or 0)

    def queue_empty(self):
        return self.taken() == 0



if __name__ == "__main__":
    unittest.main()
