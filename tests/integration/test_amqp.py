"""RabbitMQ as the queue (issue 11): a real rabbitmq-server on free loopback ports, its own data
directory, node name and epmd, shared by the tests of this file (it takes seconds to start); each
test uses its own queue. Acks go to the broker only after the worker's handler returned; failures
are republished with their attempt count in a header, then dead-lettered; a broker that stops
answering never stalls the agent's loop or HTTP; a whole instance that dies is taken over by the
others at once (the broker requeues a closed connection's deliveries)."""

import collections
import os
import signal
import subprocess
import tempfile
import time
import unittest

from cluster import BUILD_DIR, ClusterTest, check_unstalled_while_broker_hangs, debian_module, FAST_RESTARTS, RabbitServer, alive, consume_under_kills, wait_for
from test_operations import ctl_json

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class Amqp(ClusterTest):
    @classmethod
    def setUpClass(cls):
        cls.rabbit = RabbitServer()

    @classmethod
    def tearDownClass(cls):
        cls.rabbit.stop()

    def publish(self, url, prefix, count):
        subprocess.run([CLUTCHCTL, "publish", url, prefix, "--count", str(count)], check=True,
                       capture_output=True, timeout=600)

    def queue_counts(self, queue):
        """(ready, unacknowledged) as the broker sees them."""
        return self.rabbit.queue_info(queue, "messages_ready", "messages_unacknowledged")

    def test_20k_messages_with_workers_and_the_agent_killed_none_lost(self):
        url = self.rabbit.url("kills")
        total = 20_000
        self.publish(url, "k", total)
        c = self.start(workers=3, env={"PROBE_QUEUE": url}, args=FAST_RESTARTS)
        c.wait_ready()
        counts, killed_agent = consume_under_kills(c, total, seed=11, timeout=300)
        self.assertTrue(killed_agent)
        self.assertEqual(len(counts), total, f"{total - len(counts)} messages never handled")
        self.assertEqual(set(counts), {f"k-{i}" for i in range(1, total + 1)})
        duplicates = sum(n - 1 for n in counts.values())
        self.assertLess(duplicates, total * 0.01, f"{duplicates} duplicates")
        # Every ack reached the broker: nothing ready, nothing held.
        wait_for(lambda: self.queue_counts("kills") == (0, 0), 30, "the queue to be empty and settled")

    def test_a_poison_message_counts_its_attempts_across_redeliveries_then_is_dead_lettered(self):
        url = self.rabbit.url("poison")
        c = self.start(workers=2, env={"PROBE_QUEUE": url})
        c.wait_ready()
        self.publish(url, "poison", 2)
        self.publish(url, "fine", 5)
        wait_for(lambda: self.queue_counts("poison.dead") == (2, 0), 30, "two dead letters")
        # Attempts 0, 1, 2 for each: the count travels in the x-clutch-attempts header.
        attempts = collections.Counter(e["attempt"] for e in c.events("mq-poison"))
        self.assertEqual(attempts, {0: 2, 1: 2, 2: 2})
        self.assertEqual(sorted(e["body"] for e in c.events("mq")), [f"fine-{i}" for i in range(1, 6)])

        code, dead = ctl_json(c, "queue", "dead", "probe")
        self.assertEqual(code, 0, dead)
        self.assertEqual(sorted(d["body"] for d in dead["dead"]), ["poison-1", "poison-2"])
        self.assertTrue(all("poison message" in d["error"] and d["attempts"] == 3 for d in dead["dead"]),
                        dead)
        self.assertTrue(all(d["failed_at_ms"] > 0 for d in dead["dead"]))
        # Listing is only looking: both are still there.
        self.assertEqual(self.queue_counts("poison.dead"), (2, 0))

        first = next(d["id"] for d in dead["dead"] if d["body"] == "poison-1")
        code, moved = ctl_json(c, "queue", "requeue", "probe", first)
        self.assertEqual((code, moved["requeued"]), (0, 1))
        wait_for(lambda: len(c.events("mq-poison")) == 9, 30, "the requeued message tried three more times")
        wait_for(lambda: self.queue_counts("poison.dead") == (2, 0), 30, "dead again")
        code, purged = ctl_json(c, "queue", "purge", "probe", "--all")
        self.assertEqual((code, purged["purged"]), (0, 2))
        self.assertEqual(self.queue_counts("poison.dead"), (0, 0))
        self.assertEqual(self.queue_counts("poison"), (0, 0))

    def test_headers_and_properties_reach_the_handler_and_survive_dead_letter_and_requeue(self):
        url = self.rabbit.url("headers")
        c = self.start(workers=2, env={"PROBE_QUEUE": url})
        c.wait_ready()
        for body, tenant in (("plain", "t1"), ("poison-h", "t2")):
            subprocess.run([CLUTCHCTL, "publish", url, body, "--header", f"tenant={tenant}",
                            "--header", "amqp.content_type=text/plain"], check=True,
                           capture_output=True, timeout=60)
        wait_for(lambda: self.queue_counts("headers.dead") == (1, 0), 30, "the dead letter")
        plain = [e for e in c.events("mq") if e["body"] == "plain"]
        self.assertEqual(len(plain), 1)
        self.assertEqual(plain[0]["headers"], [["amqp.content_type", "text/plain"], ["tenant", "t1"]])
        code, dead = ctl_json(c, "queue", "dead", "probe")
        self.assertEqual(code, 0, dead)
        self.assertEqual(dead["dead"][0]["headers"],
                         [["amqp.content_type", "text/plain"], ["tenant", "t2"]],
                         "kept through two retries and the dead letter")
        code, moved = ctl_json(c, "queue", "requeue", "probe", "--all")
        self.assertEqual((code, moved["requeued"]), (0, 1))
        wait_for(lambda: len(c.events("mq-poison")) == 6, 30, "the requeued message's attempts")
        wait_for(lambda: self.queue_counts("headers.dead") == (1, 0), 30, "dead again")
        code, dead = ctl_json(c, "queue", "dead", "probe")
        self.assertEqual(dead["dead"][0]["headers"], [["amqp.content_type", "text/plain"], ["tenant", "t2"]])

    def test_a_stalled_broker_never_stalls_the_agent_or_http_and_loses_nothing(self):
        url = self.rabbit.url("stall")
        self.publish(url, "before", 300)
        c = self.start(workers=2, env={"PROBE_QUEUE": url, "PROBE_JOBS": "every200", "PROBE_HTTP": "1"})
        port = c.wait_ready()["port"]
        wait_for(lambda: len(c.events("mq")) >= 300, 30, "the first 300")
        check_unstalled_while_broker_hangs(self, c, port, self.rabbit.beam_pid())
        self.publish(url, "after", 300)
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) >= 600, 60, "all 600 after the stall")
        self.assertTrue(alive(c.pid))

    def test_connections_closed_by_the_broker_are_reopened_and_nothing_is_lost(self):
        url = self.rabbit.url("closed")
        total = 4000
        self.publish(url, "c", total)
        c = self.start(workers=2, env={"PROBE_QUEUE": url, "PROBE_WORK_US": "200"})
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 500, 60, "consumption to be under way")
        self.rabbit.ctl("close_all_connections", "clutch test")
        wait_for(lambda: "reconnected" in c.stderr(), 30, "the agent to reconnect")
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) >= total, 60, "every message handled")
        self.assertIn("connection lost", c.stderr())
        wait_for(lambda: self.queue_counts("closed") == (0, 0), 30, "the queue settled")

    def test_three_instances_share_a_queue_and_a_killed_one_is_taken_over_at_once(self):
        url = self.rabbit.url("shared", prefetch=64)
        total = 20_000
        self.publish(url, "s", total)
        env = {"PROBE_QUEUE": url, "PROBE_WORK_US": "1000"}
        a, b, c = (self.start(workers=2, env=env) for _ in range(3))
        for cluster in (a, b, c):
            cluster.wait_ready()
        wait_for(lambda: len(b.events("mq")) >= 1000, 120, "instance b to be busy")
        b.kill_tree()  # the whole tree at once, as a host crash
        killed_at = time.monotonic()
        # The kernel closes the dead instance's connection; the broker requeues its deliveries.
        wait_for(lambda: self.consumer_count("shared") == 2, 5, "the dead instance's consumer gone")
        took = time.monotonic() - killed_at

        def handled():
            return collections.Counter(e["body"] for cl in (a, b, c) for e in cl.events("mq"))
        wait_for(lambda: len(handled()) == total, 300, "every message handled")
        counts = handled()
        self.assertEqual(set(counts), {f"s-{i}" for i in range(1, total + 1)})
        duplicates = sum(n - 1 for n in counts.values())
        # Only b's deliveries in hand (its prefetch) could run twice.
        self.assertLessEqual(duplicates, 64, f"{duplicates} duplicates")
        wait_for(lambda: self.queue_counts("shared") == (0, 0), 30, "the queue settled")
        print(f"\n  dead consumer gone after {took:.1f} s, {duplicates} duplicate(s) of {total}")

    def consumer_count(self, queue):
        info = self.rabbit.queue_info(queue, "consumers")
        return info and info[0]

    def publish_without_message_id(self, queue, prefix, count):
        """As a plain client (pika) does by default: no message_id property."""
        pika = debian_module("pika")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.rabbit.port))
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            for i in range(1, count + 1):
                channel.basic_publish("", queue, f"{prefix}-{i}".encode(),
                                      pika.BasicProperties(delivery_mode=2))
        finally:
            conn.close()

    def restart_agent(self, c):
        agents = [e["pid"] for e in c.events("ready") if e["role"] == "agent"]
        os.kill(agents[-1], signal.SIGKILL)
        wait_for(lambda: len([e for e in c.events("ready") if e["role"] == "agent"]) > len(agents),
                 30, "a new agent")

    def test_messages_without_a_message_id_after_an_agent_restart_are_all_handled(self):
        # Such deliveries are named by the agent; a restarted agent's names must not repeat the
        # old one's, which the master remembers as handled (it would ack them unrun).
        url = self.rabbit.url("unnamed")
        c = self.start(workers=2, env={"PROBE_QUEUE": url}, args=FAST_RESTARTS)
        c.wait_ready()
        wait_for(lambda: self.queue_counts("unnamed") is not None, 30, "the queue declared")
        self.publish_without_message_id("unnamed", "a", 50)
        wait_for(lambda: len(c.events("mq")) >= 50, 30, "the first 50 handled")
        self.restart_agent(c)
        self.publish_without_message_id("unnamed", "b", 50)
        wait_for(lambda: {f"b-{i}" for i in range(1, 51)} <= {e["body"] for e in c.events("mq")},
                 30, "the 50 published after the agent's restart handled")

    def test_an_exactly_once_consumer_names_messages_that_have_no_message_id(self):
        import sqlite3
        app_db = os.path.join(tempfile.mkdtemp(prefix="clutch-once-"), "app.db")
        url = self.rabbit.url("unnamed-once")
        c = self.start(workers=2, env={"PROBE_QUEUE": url, "PROBE_INBOX": "sqlite:" + app_db},
                       args=FAST_RESTARTS)
        c.wait_ready()
        wait_for(lambda: self.queue_counts("unnamed-once") is not None, 30, "the queue declared")
        self.publish_without_message_id("unnamed-once", "u", 40)

        def effects():
            with sqlite3.connect(app_db, timeout=10) as db:
                return collections.Counter(b for (b,) in db.execute("SELECT body FROM effects"))
        wait_for(lambda: len(effects()) == 40, 30, "40 effects")
        self.assertIn("messages without a message_id are republished with one", c.stderr())
        # Every handled message had an id of its own, from clutch (32 hex digits).
        ids = [e["id"] for e in c.events("mq")]
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(len(i) == 32 for i in ids), ids[:3])
        self.assertEqual(set(effects().values()), {1})
        wait_for(lambda: self.queue_counts("unnamed-once") == (0, 0), 30, "the queue settled")

    def test_bad_amqp_url_fails_the_start(self):
        c = self.start(workers=1, env={"PROBE_QUEUE": "amqp://127.0.0.1:5672/%2F"})
        self.assertEqual(c.wait_exit(), 2)  # a ConfigError in the setup
        self.assertIn("no queue (add ?queue=NAME)", c.stderr())

    def test_a_missing_rabbitmq_library_fails_the_start_with_its_reason(self):
        # rabbitmq-c is loaded when AMQP is first used; without it the start fails and says why.
        missing = "/nonexistent/librabbitmq.so.4"
        url = f"amqp://guest:guest@127.0.0.1:{self.rabbit.port}/%2F?queue=nolib"
        c = self.start(workers=1, env={"PROBE_QUEUE": url, "CLUTCH_RABBITMQ_LIBRARY": missing})
        self.assertEqual(c.wait_exit(), 1)
        self.assertIn(f"AMQP needs rabbitmq-c ({missing}", c.stderr())
        r = subprocess.run([CLUTCHCTL, "publish", url, "x"], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, CLUTCH_RABBITMQ_LIBRARY=missing))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("AMQP needs rabbitmq-c", r.stderr)


if __name__ == "__main__":
    unittest.main()
