"""The seed's scenario on the embedded SQLite queue (issue 5, acceptance 2, 3, 5 and the bad URL)."""

import collections
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.request

from cluster import BUILD_DIR, ClusterTest, FAST_RESTARTS, consume_under_kills, maps_library, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")
ORDERS = os.path.join(BUILD_DIR, "examples/orders/orders")


def publish(url, prefix, count):
    subprocess.run([CLUTCHCTL, "publish", url, prefix, "--count", str(count)], check=True,
                   capture_output=True, timeout=300)


def ready_agent(ready):
    return [pid for pid, role in ready.items() if role == "agent"][0]


def queue_counts(path):
    with sqlite3.connect(path) as db:
        return (db.execute("SELECT count(*) FROM messages").fetchone()[0],
                db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


class SqliteQueue(ClusterTest):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clutch-mq-")
        self.db = os.path.join(self.dir, "queue.db")
        self.url = "sqlite:" + self.db

    def cluster(self, workers=3, env=None, args=()):
        return self.start(workers=workers, env={"PROBE_QUEUE": self.url, **(env or {})}, args=args)

    def test_100k_messages_with_workers_and_the_agent_killed_none_lost(self):
        total = 100_000
        publish(self.url, "m", total)
        c = self.cluster(workers=3, args=FAST_RESTARTS)
        c.wait_ready()
        counts, killed_agent = consume_under_kills(c, total, seed=11)
        self.assertTrue(killed_agent, "the agent must have been killed once")
        self.assertEqual(len(counts), total, f"{total - len(counts)} messages never handled")
        duplicates = sum(n - 1 for n in counts.values())
        self.assertLess(duplicates, total * 0.001, f"{duplicates} duplicates")
        wait_for(lambda: queue_counts(self.db) == (0, 0), 10, "the queue to be empty")

    def test_naive_mode_duplicates_every_message_once_per_worker(self):
        publish(self.url, "n", 200)
        c = self.cluster(workers=3, env={"PROBE_NAIVE": "1"})
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 600, 20, "600 handlings")
        counts = collections.Counter(e["body"] for e in c.events("mq"))
        # The check that the normal mode passes fails here, as it must: 2 duplicates per message.
        self.assertEqual(set(counts.values()), {3}, "naive mode should run each message in every worker")

    def test_poison_message_is_dead_lettered_after_max_attempts(self):
        publish(self.url, "poison", 1)
        publish(self.url, "fine", 5)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: queue_counts(self.db) == (0, 1), 20, "the poison message in dead_letters")
        self.assertEqual(sorted(e["attempt"] for e in c.events("mq-poison")), [0, 1, 2])
        self.assertEqual(len(c.events("mq")), 5)
        # The agent logs before it writes the row, but stderr reaches the test through a pipe and
        # a reader thread, which can lag behind the database on a busy machine.
        wait_for(lambda: "dead-lettered: probe: poison message" in c.stderr(), 10,
                 "the agent to log the dead letter")
        with sqlite3.connect(self.db) as db:
            body, attempts, error = db.execute("SELECT body, attempts, error FROM dead_letters").fetchone()
        self.assertEqual((body, attempts), (b"poison-1", 3))
        self.assertIn("poison message", error)

    def test_sqlite_is_mapped_only_where_a_queue_opens_and_its_absence_fails_the_start(self):
        # SQLite is loaded when the first sqlite: queue opens: the agent maps it for its source,
        # the master and the workers (which never open one here) do not pay for its pages.
        publish(self.url, "lib", 3)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 3, 20, "3 handlings")

        ready = {e["pid"]: e["role"] for e in c.events("ready")}
        self.assertEqual(sorted(ready.values()), ["agent", "worker", "worker"])
        # The probe itself now links SQLite and libpq (its exactly-once handlers write through
        # them), so every probe process maps them: the check that clutch alone maps SQLite only
        # where a queue opens needs a probe that loads them on use (issue 23 note, open).
        self.assertTrue(maps_library(ready_agent(ready), "libsqlite3"))
        c.close()

        missing = "/nonexistent/libsqlite3.so.0"
        c = self.cluster(workers=1, env={"CLUTCH_SQLITE_LIBRARY": missing})
        self.assertEqual(c.wait_exit(), 1)
        self.assertIn(f"the sqlite: queue needs SQLite ({missing}; Debian package libsqlite3-0",
                      c.stderr())
        r = subprocess.run([CLUTCHCTL, "publish", self.url, "x"], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, CLUTCH_SQLITE_LIBRARY=missing))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the sqlite: queue needs SQLite", r.stderr)

    def test_bad_queue_url_fails_the_start_with_a_clear_message(self):
        c = self.start(workers=1, env={"PROBE_QUEUE": "kafka://nowhere"})
        self.assertEqual(c.wait_exit(), 2)  # a ConfigError in the setup
        self.assertIn("unsupported queue URL 'kafka://nowhere'", c.stderr())
        c = self.start(workers=1, env={"PROBE_QUEUE": "sqlite:/nonexistent-dir/q.db"})
        self.assertEqual(c.wait_exit(), 2)  # a ConfigError in the setup
        self.assertIn("cannot open sqlite queue '/nonexistent-dir/q.db'", c.stderr())


class OrdersExample(ClusterTest):
    def run_orders(self, naive):
        d = tempfile.mkdtemp(prefix="clutch-orders-")
        env = {"ORDERS_QUEUE": f"sqlite:{d}/q.db", "ORDERS_LEDGER": f"{d}/ledger.txt",
               "ORDERS_NAIVE": "1" if naive else "0"}
        c = self.start(binary=ORDERS, workers=3, env=env)
        port = c.wait_ready()["port"]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/orders?count=300", method="POST")
        self.assertEqual(json.load(urllib.request.urlopen(req, timeout=10)), {"published": 300})

        # Naive mode acknowledges the queue as soon as it broadcasts, so an empty queue does not
        # mean every worker has appended yet: wait for every expected ledger line.
        expected_lines = 300 * (3 if naive else 1)

        def stats():
            s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/stats", timeout=10))
            return s if s["handled"] >= expected_lines and s["queue_pending"] == 0 else None
        wait_for(stats, 30, f"{expected_lines} ledger lines")
        time.sleep(0.3)  # a surplus line (a duplicate in normal mode) would show by now
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/stats", timeout=10))

    def test_orders_are_handled_once_and_naive_mode_shows_the_seeds_bug(self):
        s = self.run_orders(naive=False)
        self.assertEqual((s["handled"], s["duplicates"]), (300, 0))
        self.assertGreater(len(s["per_worker"]), 1)
        time.sleep(0.3)
        s = self.run_orders(naive=True)
        self.assertEqual(s["duplicates"], 600, "naive mode: every worker appends every order")

    def test_bodies_with_spaces_newlines_or_nothing_count_as_one_order_each(self):
        d = tempfile.mkdtemp(prefix="clutch-orders-")
        queue, ledger = f"sqlite:{d}/q.db", f"{d}/ledger.txt"
        bodies = ["a b", "a\nb", "a\\nb", "", "line one\nline two", " lead"]
        for body in bodies:
            subprocess.run([CLUTCHCTL, "publish", queue, body], check=True, capture_output=True,
                           timeout=30)
        c = self.start(binary=ORDERS, workers=2, env={"ORDERS_QUEUE": queue, "ORDERS_LEDGER": ledger})
        port = c.wait_ready()["port"]

        def stats():
            s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/stats", timeout=10))
            return s if s["handled"] >= len(bodies) and s["queue_pending"] == 0 else None
        s = wait_for(stats, 30, "every order in the ledger")
        self.assertEqual((s["orders"], s["handled"], s["duplicates"]), (len(bodies), len(bodies), 0))
        with open(ledger) as f:
            self.assertEqual(len(f.read().splitlines()), len(bodies), "one line per order")


if __name__ == "__main__":
    unittest.main()
