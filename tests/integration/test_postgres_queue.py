"""The PostgreSQL queue source (issue 23): postgres://USER@HOST:PORT/DB?table=T on a real
postgres (initdb + postgres on a free loopback port). Claims with FOR UPDATE SKIP LOCKED and a
lease, wakes on NOTIFY, retries and dead-letters into T_dead, is shared by several cluster
instances, survives a database restart; with the inbox on the same database nothing is handled
twice. Effects are counted from rows in a table with no unique constraint."""

import collections
import os
import signal
import subprocess
import unittest
import urllib.request

from cluster import BUILD_DIR, ClusterTest, FAST_RESTARTS, wait_for
from test_control import ctl
from test_exactly_once import OnePostgres, kill_workers_until
from test_operations import ctl_json

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class PostgresQueue(OnePostgres, ClusterTest):
    def setUp(self):
        # A table per test: a test's leftovers never feed the next.
        self.table = "q_" + self._testMethodName[5:35]
        self.url = self.pg.url() + "?table=" + self.table
        self.make_effects_table()

    def publish(self, prefix, count):
        subprocess.run([CLUTCHCTL, "publish", self.url, prefix, "--count", str(count)], check=True,
                       capture_output=True, timeout=300)

    def rows(self, table=None):
        return int(self.pg.sql(f"SELECT count(*) FROM {table or self.table}")[0][0])

    def cluster(self, workers=2, inbox=True, env=None, args=FAST_RESTARTS):
        env = {"PROBE_QUEUE": self.url, **({"PROBE_INBOX": self.pg.url()} if inbox else {}),
               **(env or {})}
        return self.start(workers=workers, env=env, args=args)

    def assert_each_once(self, prefix, total):
        counts = self.effects()
        self.assertEqual(set(counts), {f"{prefix}-{i}" for i in range(1, total + 1)})
        self.assertEqual(sum(counts.values()) - total, 0,
                         f"duplicated effects: {counts.most_common(3)}")

    def test_every_message_is_handled_and_an_insert_from_any_client_wakes_the_consumer(self):
        self.publish("m", 2000)
        c = self.cluster(inbox=False)
        c.wait_ready()
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) == 2000, 60, "every message")
        handled = collections.Counter(e["body"] for e in c.events("mq"))
        self.assertEqual(set(handled.values()), {1})
        wait_for(lambda: self.rows() == 0, 20, "the table to be empty")
        # A plain INSERT from psql is a publication: its trigger's NOTIFY wakes the consumer.
        self.pg.sql(f"INSERT INTO {self.table} (body) VALUES ('from-psql')")
        wait_for(lambda: "from-psql" in {e["body"] for e in c.events("mq")}, 20,
                 "the row psql inserted to be handled")
        # The table's token names the queue in an inbox: a stable, random identity.
        comment = self.pg.sql(f"SELECT obj_description('{self.table}'::regclass, 'pg_class')")
        self.assertRegex(comment[0][0], r"^clutch-queue:[0-9a-f]{32}$")

    def test_retries_then_dead_letters_and_clutchctl_requeues_them(self):
        self.publish("poison", 1)
        self.publish("fine", 3)
        c = self.cluster(inbox=False)
        c.wait_ready()
        wait_for(lambda: self.rows(self.table + "_dead") == 1, 30, "the dead letter")
        self.assertEqual(sorted(e["attempt"] for e in c.events("mq-poison")), [0, 1, 2])
        code, listing = ctl_json(c, "queue", "dead", "probe")
        self.assertEqual(code, 0)
        dead = listing["dead"]
        self.assertEqual([(d["body"], d["attempts"]) for d in dead], [("poison-1", 3)])
        self.assertIn("probe: poison message", dead[0]["error"])
        self.assertEqual(ctl(c, "queue", "requeue", "probe", dead[0]["id"]).returncode, 0)
        wait_for(lambda: len(c.events("mq-poison")) == 6, 30, "the requeued message's attempts")
        wait_for(lambda: self.rows(self.table + "_dead") == 1, 30, "it to be dead again")
        self.assertEqual(ctl(c, "queue", "purge", "probe", "--all").returncode, 0)
        self.assertEqual(self.rows(self.table + "_dead"), 0)
        self.assertEqual(self.rows(), 0)

    def test_killed_workers_and_agent_with_the_inbox_on_the_same_database_leave_each_effect_once(self):
        # The handler also publishes to a second queue table in the same database (the outbox's
        # direct case): that row commits with its writes, so it too exists exactly once.
        out = "out_" + self.table
        self.pg.sql(f"DROP TABLE IF EXISTS {out}, {out}_dead, {out}_consumers")
        total = 6000
        self.publish("k", total)
        c = self.cluster(workers=3, env={"PROBE_OUTBOX": f"{self.pg.url()}?table={out}"})
        c.wait_ready()
        self.assertTrue(kill_workers_until(c, lambda: len(self.effects()) >= total, seed=11,
                                           timeout=240))
        wait_for(lambda: len(self.effects()) == total, 60, "every message's effect")
        wait_for(lambda: self.rows() == 0, 30, "the table to be empty")
        self.assert_each_once("k", total)
        published = collections.Counter(body for (body,) in self.pg.sql(
            f"SELECT convert_from(body, 'UTF8') FROM {out}"))
        self.assertEqual(set(published), {f"out-k-{i}" for i in range(1, total + 1)})
        self.assertEqual(set(published.values()), {1}, f"doubled: {published.most_common(3)}")
        self.assertEqual(self.rows("clutch_outbox"), 0, "nothing relayed: it went in directly")

    def test_two_instances_share_one_table_and_one_killed_whole_is_taken_over(self):
        total = 6000
        self.publish("s", total)
        first = self.cluster(workers=2, env={"PROBE_WORK_US": "300"})
        second = self.cluster(workers=2, env={"PROBE_WORK_US": "300"})
        first.wait_ready()
        second.wait_ready()
        wait_for(lambda: len(self.effects()) > total // 4, 120, "a start on the messages")
        handled_by = {int(pid) for (pid,) in self.pg.sql("SELECT DISTINCT pid FROM effects")}
        self.assertTrue(handled_by & set(first.ready["workers"]) and
                        handled_by & set(second.ready["workers"]), "both instances consume")
        first.kill_tree()  # a host's crash: its leases are taken over once it is silent
        wait_for(lambda: len(self.effects()) == total, 180, "every message's effect")
        wait_for(lambda: self.rows() == 0, 60, "the table to be empty")
        self.assert_each_once("s", total)
        self.assertIn("took over", second.stderr(), first.stderr()[-3000:])

    def test_the_database_stopped_at_once_mid_run_loses_and_doubles_nothing(self):
        total = 4000
        self.publish("d", total)
        c = self.cluster(workers=3, env={"PROBE_WORK_US": "300", "PROBE_HTTP": "1"})
        port = c.wait_ready()["port"]
        wait_for(lambda: len(self.effects()) > 400, 60, "a start on the messages")
        self.pg.stop(signal.SIGQUIT)  # pg_ctl stop -m immediate
        try:
            wait_for(lambda: "connection lost" in c.stderr() or "cannot connect" in c.stderr(), 30,
                     "the outage noticed")
            for _ in range(20):  # the agent's loop and the workers go on meanwhile
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    self.assertEqual(r.status, 200)
        finally:
            self.pg.start()
        wait_for(lambda: len(self.effects()) == total, 180, "every message's effect")
        wait_for(lambda: self.rows() == 0, 60, "the table to be empty")
        self.assert_each_once("d", total)
        self.assertIn("reconnected", c.stderr())
        self.assertEqual(self.rows(self.table + "_dead"), 0, "none dead-lettered for the outage")

    def test_bad_urls_a_missing_database_and_a_foreign_table_fail_the_start_naming_them(self):
        def fails(url, expected):
            c = self.start(workers=1, env={"PROBE_QUEUE": url})
            self.assertEqual(c.wait_exit(), 2, c.stderr())
            self.assertIn(expected, c.stderr())
            self.assertNotIn("secret", c.stderr())
        base = f"postgres://postgres:secret@127.0.0.1:{self.pg.port}"
        fails(base + "/postgres?table=no-dashes", "table 'no-dashes' is not a plain name")
        fails(base + "/nodb?table=t", 'database "nodb" does not exist')
        fails(base + "/nodb?table=t", "postgres://postgres:***@")
        self.pg.sql("DROP TABLE IF EXISTS orders; CREATE TABLE orders (id INT, customer TEXT)")
        fails(base + "/postgres?table=orders", "table orders is not a clutch queue table")


if __name__ == "__main__":
    unittest.main()
