"""Exactly-once effects (issue 23): App::consume_exactly_once runs the handler's writes and the
record of its message in one transaction on the app's own SQLite database (the inbox), and a
redelivered message the inbox has is acknowledged without running again. The effects are counted
from rows the handlers wrote into a table with no unique constraint, so a message run twice shows
as two rows."""

import collections
import os
import random
import re
import signal
import sqlite3
import subprocess
import tempfile
import time

from cluster import BUILD_DIR, ClusterTest, FAST_RESTARTS, PostgresServer, RedisServer, alive, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


def publish(url, prefix, count):
    subprocess.run([CLUTCHCTL, "publish", url, prefix, "--count", str(count)], check=True,
                   capture_output=True, timeout=300)


def effects(path):
    """How many rows each body has in the probe's effects table."""
    with sqlite3.connect(path, timeout=10) as db:
        return collections.Counter(body for (body,) in db.execute("SELECT body FROM effects"))


def kill_workers_until(c, done, seed, timeout, kill_agent=True):
    """SIGKILLs a random worker every 200 ms (and the agent once) until `done()`; returns whether
    the agent was killed."""
    rng = random.Random(seed)
    killed_agent = False
    deadline = time.monotonic() + timeout
    rounds = 0
    while time.monotonic() < deadline and not done():
        workers = [e["pid"] for e in c.events("ready") if e["role"] == "worker" and alive(e["pid"])]
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)
        rounds += 1
        if kill_agent and not killed_agent and rounds == 3:
            agent = [e["pid"] for e in c.events("ready") if e["role"] == "agent"][-1]
            os.kill(agent, signal.SIGKILL)
            killed_agent = True
        time.sleep(0.2)
    return killed_agent


class FailingHandler:
    """For either inbox: a handler that throws leaves no effect (its writes roll back with it),
    and the message is dead-lettered after its attempts."""

    def test_a_failing_handler_leaves_no_effect_and_is_dead_lettered(self):
        publish(self.queue, "poison", 1)
        publish(self.queue, "fine", 5)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: "dead-lettered: probe: poison message" in c.stderr(), 30,
                 "the poison message dead-lettered")
        wait_for(lambda: len(self.effects()) == 5, 20, "the good messages' effects")
        self.assertEqual(sorted(e["attempt"] for e in c.events("mq-poison")), [0, 1, 2])
        self.assertNotIn("poison-1", self.effects(), "a throw must roll its writes back")


class SqliteInbox(FailingHandler, ClusterTest):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clutch-once-")
        self.app_db = os.path.join(self.dir, "app.db")
        self.queue = "sqlite:" + os.path.join(self.dir, "queue.db")

    def effects(self):
        return effects(self.app_db)

    def cluster(self, url=None, workers=3, env=None, args=()):
        env = {"PROBE_QUEUE": url or self.queue, "PROBE_INBOX": "sqlite:" + self.app_db,
               **(env or {})}
        return self.start(workers=workers, env=env, args=args)

    def test_a_worker_killed_between_its_commit_and_its_ack_does_not_run_the_message_again(self):
        publish(self.queue, "fine", 20)
        publish(self.queue, "die", 1)
        publish(self.queue, "after", 20)
        c = self.cluster(workers=2, env={"PROBE_EXIT_AFTER_COMMIT": "die"}, args=FAST_RESTARTS)
        c.wait_ready()
        wait_for(lambda: "message " in c.stderr() and "is already done" in c.stderr(), 30,
                 "the redelivery of the message whose worker died after its commit")
        wait_for(lambda: len(effects(self.app_db)) == 41, 30, "every message's effect")
        self.assertEqual(len(c.events("exit-after-commit")), 1)
        counts = effects(self.app_db)
        self.assertEqual(counts["die-1"], 1, "the message was run again after its commit")
        self.assertEqual(set(counts.values()), {1}, f"duplicated effects: {counts.most_common(3)}")
        # The handler itself ran once for it: the redelivery was acknowledged without a run.
        self.assertEqual([e["body"] for e in c.events("mq")].count("die-1"), 1)
        wait_for(lambda: queue_rows(self.queue) == 0, 20, "the queue to be empty")

    def test_the_outbox_publishes_what_committed_and_a_dead_workers_share_later(self):
        # Published to another queue file through the outbox: relayed after each commit; the
        # worker that dies after its commit leaves the entries it had not relayed, which another
        # worker's sweep publishes once their claim runs out (30 s). The relay publishes, then
        # removes, one entry at a time on its own thread: a death repeats at most the one entry
        # between the two.
        out = "sqlite:" + os.path.join(self.dir, "out.db")
        publish(self.queue, "fine", 20)
        publish(self.queue, "die", 1)
        publish(self.queue, "poison", 1)
        c = self.cluster(workers=2, env={"PROBE_EXIT_AFTER_COMMIT": "die", "PROBE_OUTBOX": out},
                         args=FAST_RESTARTS)
        c.wait_ready()
        wait_for(lambda: len(effects(self.app_db)) == 21, 30, "every message's effect")

        def outbox_rows():
            with sqlite3.connect(self.app_db, timeout=10) as db:
                return db.execute("SELECT count(*) FROM clutch_outbox").fetchone()[0]
        wait_for(lambda: outbox_rows() == 0, 90,
                 "the outbox relayed, the dead worker's entries after their claim ran out")
        # die-1's own entry at least: its worker died in the commit, before any relay of it.
        self.assertRegex(c.stderr(), r"outbox: publishing \d+ message\(s\) staged more than 30 s ago")
        with sqlite3.connect(out[7:], timeout=10) as db:
            bodies = collections.Counter(b.decode() for (b,) in db.execute("SELECT body FROM messages"))
        # Every committed message's publication, and none of the rolled-back poison's.
        self.assertEqual(set(bodies), {f"out-fine-{i}" for i in range(1, 21)} | {"out-die-1"})
        self.assertLessEqual(sum(bodies.values()) - 21, 1, f"repeated: {bodies.most_common(3)}")

    def test_a_job_tick_whose_worker_died_after_its_commit_is_not_run_again(self):
        # App::schedule_exactly_once: the master hands the dead worker's tick to another worker,
        # whose inbox has it: not run again.
        marker = os.path.join(self.dir, "died")
        c = self.start(workers=2, env={"PROBE_JOBS": "once300", "PROBE_INBOX": "sqlite:" + self.app_db,
                                       "PROBE_JOB_EXIT_ONCE": marker}, args=FAST_RESTARTS)
        c.wait_ready()
        wait_for(lambda: "is already done (the inbox has it): not run again" in c.stderr(), 30,
                 "the hand-over of the tick whose worker died after its commit")
        died = re.search(r"job once300: tick (\d+) is already done", c.stderr()).group(1)
        wait_for(lambda: len(re.findall(r"job once300: tick \d+ ok", c.stderr())) >= 3, 30,
                 "ticks after it")
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)
        ran = set(re.findall(r"job once300: tick (\d+) ok", c.stderr()))
        self.assertNotIn(died, ran, "the tick whose commit was in ran again")
        # One row per tick that ran, and one for the tick whose worker died after committing.
        self.assertEqual(effects(self.app_db)["tick"], len(ran) + 1)

    def test_workers_and_the_agent_killed_under_load_leave_each_effect_exactly_once(self):
        total = 20_000
        publish(self.queue, "m", total)
        c = self.cluster(workers=3, args=FAST_RESTARTS)
        c.wait_ready()
        killed_agent = kill_workers_until(c, lambda: len(effects(self.app_db)) >= total, seed=23,
                                          timeout=240)
        self.assertTrue(killed_agent)
        wait_for(lambda: len(effects(self.app_db)) == total, 60, "every message's effect")
        wait_for(lambda: queue_rows(self.queue) == 0, 30, "the queue to be empty")
        counts = effects(self.app_db)
        self.assertEqual(set(counts), {f"m-{i}" for i in range(1, total + 1)})
        self.assertEqual(sum(counts.values()) - total, 0,
                         f"duplicated effects: {counts.most_common(3)}")

    def test_a_queue_file_made_anew_is_not_taken_for_the_old_one(self):
        # Ids count from 1 again in a new queue file: the inbox must not skip them as done.
        publish(self.queue, "first", 5)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: len(effects(self.app_db)) == 5, 30, "the first queue's effects")
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)
        for suffix in ("", "-wal", "-shm"):
            path = self.queue[len("sqlite:"):] + suffix
            if os.path.exists(path):
                os.remove(path)
        publish(self.queue, "second", 5)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: len(effects(self.app_db)) == 10, 30, "the new queue's effects")
        self.assertNotIn("is already done", c.stderr())

    def test_the_redis_source_under_kills_leaves_each_effect_exactly_once(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        url = redis.url("once")
        total = 20_000
        publish(url, "r", total)
        c = self.cluster(url=url, workers=3, args=FAST_RESTARTS)
        c.wait_ready()
        self.assertTrue(kill_workers_until(c, lambda: len(effects(self.app_db)) >= total,
                                           seed=5, timeout=240))
        wait_for(lambda: len(effects(self.app_db)) == total, 60, "every message's effect")
        counts = effects(self.app_db)
        self.assertEqual(sum(counts.values()) - total, 0,
                         f"duplicated effects: {counts.most_common(3)}")

    def test_bad_declarations_fail_the_start_naming_the_key(self):
        c = self.start(workers=1, env={"PROBE_QUEUE": self.queue, "PROBE_INBOX": "mysql://x"})
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("inbox 'mysql://x' is neither sqlite:PATH nor postgres://", c.stderr())
        c = self.start(workers=1, env={"PROBE_QUEUE": self.queue,
                                       "PROBE_INBOX": "sqlite:/nonexistent-dir/app.db"})
        self.assertNotEqual(c.wait_exit(), 0)
        self.assertIn("inbox: cannot open sqlite database '/nonexistent-dir/app.db'", c.stderr())


def queue_rows(url):
    with sqlite3.connect(url[len("sqlite:"):], timeout=10) as db:
        return db.execute("SELECT count(*) FROM messages").fetchone()[0]


class OnePostgres:
    """One PostgreSQL server per test class (initdb + postgres on a free loopback port), and the
    effects table every test starts with: no unique constraint, so a message run twice shows as
    two rows; the inbox's and outbox's tables are dropped with it."""

    @classmethod
    def setUpClass(cls):
        cls.pg = PostgresServer()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def make_effects_table(self):
        self.pg.sql("DROP TABLE IF EXISTS effects, clutch_inbox, clutch_outbox;"
                    " CREATE TABLE effects (body TEXT NOT NULL, pid INTEGER)")

    def effects(self):
        return collections.Counter({body: int(n) for body, n in
                                    self.pg.sql("SELECT body, count(*) FROM effects GROUP BY body")})


class PostgresInbox(OnePostgres, FailingHandler, ClusterTest):
    """The inbox on a real PostgreSQL server."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clutch-once-")
        self.queue = "sqlite:" + os.path.join(self.dir, "queue.db")
        self.make_effects_table()

    def cluster(self, url=None, workers=3, env=None, args=FAST_RESTARTS):
        env = {"PROBE_QUEUE": url or self.queue, "PROBE_INBOX": self.pg.url(), **(env or {})}
        return self.start(workers=workers, env=env, args=args)

    def test_workers_and_the_agent_killed_under_load_leave_each_effect_exactly_once(self):
        total = 10_000
        publish(self.queue, "p", total)
        c = self.cluster(workers=3)
        c.wait_ready()
        self.assertTrue(kill_workers_until(c, lambda: len(self.effects()) >= total, seed=7,
                                           timeout=240))
        wait_for(lambda: len(self.effects()) == total, 60, "every message's effect")
        wait_for(lambda: queue_rows(self.queue) == 0, 30, "the queue to be empty")
        counts = self.effects()
        self.assertEqual(set(counts), {f"p-{i}" for i in range(1, total + 1)})
        self.assertEqual(sum(counts.values()) - total, 0,
                         f"duplicated effects: {counts.most_common(3)}")
        self.assertEqual(int(self.pg.sql("SELECT count(*) FROM clutch_inbox")[0][0]), total)

    def test_the_database_stopped_at_once_mid_run_loses_and_doubles_nothing(self):
        import urllib.request
        total = 6000
        publish(self.queue, "d", total)
        c = self.cluster(workers=3, env={"PROBE_WORK_US": "200", "PROBE_HTTP": "1"})
        port = c.wait_ready()["port"]
        wait_for(lambda: len(self.effects()) > 500, 60, "a start on the messages")
        self.pg.stop(signal.SIGQUIT)  # pg_ctl stop -m immediate: no shutdown checkpoint
        wait_for(lambda: "inbox unavailable" in c.stderr(), 30, "the outage noticed")
        # HTTP goes on while the database is away; no message is failed for it.
        for _ in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                self.assertEqual(r.status, 200)
        self.pg.start()
        wait_for(lambda: len(self.effects()) == total, 120, "every message's effect")
        wait_for(lambda: queue_rows(self.queue) == 0, 30, "the queue to be empty")
        counts = self.effects()
        self.assertEqual(sum(counts.values()) - total, 0,
                         f"duplicated effects: {counts.most_common(3)}")
        self.assertNotIn("dead-lettered", c.stderr())

    def test_an_unreachable_database_fails_the_start_naming_it(self):
        port = self.pg.port
        c = self.start(workers=1, env={"PROBE_QUEUE": self.queue,
                                       "PROBE_INBOX": f"postgres://postgres:secret@127.0.0.1:1/x"})
        self.assertNotEqual(c.wait_exit(), 0)
        self.assertIn("inbox: 'postgres://postgres:***@127.0.0.1:1/x': cannot connect", c.stderr())
        self.assertNotIn("secret", c.stderr())
        c = self.start(workers=1, env={"PROBE_QUEUE": self.queue,
                                       "PROBE_INBOX": f"postgres://postgres@127.0.0.1:{port}/nodb"})
        self.assertNotEqual(c.wait_exit(), 0)
        self.assertIn('database "nodb" does not exist', c.stderr())
