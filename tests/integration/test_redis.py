"""Redis Streams as the queue (issue 5, acceptance 1 and 4); redis-server on a free loopback port."""

import os
import subprocess
import time
import unittest

from test_control import ctl
from test_operations import ctl_json
from cluster import BUILD_DIR, ClusterTest, check_unstalled_while_broker_hangs, FAST_RESTARTS, RedisServer, alive, consume_under_kills, maps_library, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class RedisStreams(ClusterTest):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)

    def publish(self, prefix, count):
        subprocess.run([CLUTCHCTL, "publish", self.redis.url(), prefix, "--count", str(count)], check=True,
                       capture_output=True, timeout=600)

    def cluster(self, workers=3, args=()):
        return self.start(workers=workers, env={"PROBE_QUEUE": self.redis.url()}, args=args)

    def test_100k_messages_with_workers_and_the_agent_killed_none_lost(self):
        total = 100_000
        self.publish("r", total)
        c = self.cluster(args=FAST_RESTARTS)
        c.wait_ready()
        counts, killed_agent = consume_under_kills(c, total, seed=5, timeout=300)
        self.assertTrue(killed_agent)
        self.assertEqual(len(counts), total, f"{total - len(counts)} messages never handled")
        duplicates = sum(n - 1 for n in counts.values())
        self.assertLess(duplicates, total * 0.001, f"{duplicates} duplicates")
        wait_for(lambda: self.redis.cli("XPENDING", "jobs", "workers").splitlines()[0] == "0", 15,
                 "the stream's pending list to be empty")

    def test_broker_going_away_and_coming_back_loses_nothing(self):
        self.publish("before", 500)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 500, 30, "the first 500")
        self.redis.stop()
        time.sleep(1.5)
        self.assertIn("connection lost", c.stderr())
        self.redis.start()
        self.publish("after", 500)
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) >= 1000, 30, "all 1000 after the restart")
        self.assertIn("reconnected", c.stderr())
        self.assertTrue(alive(c.pid))

    def test_broker_restart_mid_stream_loses_nothing_and_needs_no_visibility_timeout(self):
        total = 30_000
        self.publish("mid", total)
        c = self.start(workers=2, env={"PROBE_QUEUE": self.redis.url(), "PROBE_WORK_US": "100"})
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 3000, 60, "consumption to be under way")
        self.redis.stop()  # reads, read-aheads and acks are in flight right now
        time.sleep(1.0)
        self.redis.start()  # the append-only file brings back the stream and its pending list
        # Well under the 30 s visibility timeout: entries whose read reply was lost with the
        # connection are found again at once, not by XAUTOCLAIM half a minute later.
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) >= total, 25,
                 "every message handled after the broker came back")
        wait_for(lambda: self.redis.cli("XPENDING", "jobs", "workers").splitlines()[0] == "0", 10,
                 "the pending list to be empty (the acks held during the outage were sent)")
        self.assertIn("reconnected", c.stderr())

    def test_a_stalled_broker_never_stalls_the_agent_or_http_and_loses_nothing(self):
        self.publish("before", 300)
        c = self.start(workers=2, env={"PROBE_QUEUE": self.redis.url(), "PROBE_JOBS": "every200",
                                       "PROBE_HTTP": "1"})
        port = c.wait_ready()["port"]
        wait_for(lambda: len(c.events("mq")) >= 300, 30, "the first 300")
        check_unstalled_while_broker_hangs(self, c, port, self.redis.proc.pid)
        self.publish("after", 300)
        wait_for(lambda: len({e["body"] for e in c.events("mq")}) >= 600, 60, "all 600 after the stall")
        self.assertTrue(alive(c.pid))

    def test_poison_message_goes_to_the_dead_letter_stream(self):
        self.publish("poison", 1)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: self.redis.cli("XLEN", "jobs:dead") == "1", 20, "the dead letter")
        self.assertEqual(len(c.events("mq-poison")), 3)
        wait_for(lambda: self.redis.cli("XPENDING", "jobs", "workers").splitlines()[0] == "0", 10,
                 "nothing pending")

    def test_an_entrys_fields_reach_the_handler_and_survive_dead_letter_and_requeue(self):
        self.redis.cli("XADD", "jobs", "*", "body", "plain", "tenant", "t1", "trace", "abc")
        self.redis.cli("XADD", "jobs", "*", "body", "poison-with-fields", "tenant", "t2")
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: self.redis.cli("XLEN", "jobs:dead") == "1", 20, "the poison's dead letter")
        plain = [e for e in c.events("mq") if e["body"] == "plain"]
        self.assertEqual(len(plain), 1)
        self.assertEqual(plain[0]["headers"], [["tenant", "t1"], ["trace", "abc"]])
        dead = ctl_json(c, "queue", "dead", "probe")[1]["dead"]
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0]["headers"], [["tenant", "t2"]])
        self.assertNotEqual(dead[0]["message_id"], dead[0]["id"], "the stream's id and the dead id")
        self.assertIn(dead[0]["message_id"], c.stderr(), "the id the agent logged")
        listing = ctl(c, "queue", "dead", "probe").stdout
        self.assertIn("MESSAGE ID", listing)
        self.assertIn("tenant=t2", listing)
        # Requeued, it comes back with its field (and fails again: three more attempts).
        self.assertEqual(ctl(c, "queue", "requeue", "probe", dead[0]["id"]).returncode, 0)
        wait_for(lambda: len(c.events("mq-poison")) == 6, 20, "the requeued poison's attempts")
        wait_for(lambda: self.redis.cli("XLEN", "jobs:dead") == "1", 20, "it to be dead again")
        again = ctl_json(c, "queue", "dead", "probe")[1]["dead"]
        self.assertEqual(again[0]["headers"], [["tenant", "t2"]])

    def test_an_entry_without_a_body_is_dead_lettered_with_the_reason_not_handled(self):
        self.redis.cli("XADD", "jobs", "*", "payload", "oops", "tenant", "t3")
        self.redis.cli("XADD", "jobs", "*", "body", "after")
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: [e["body"] for e in c.events("mq")] == ["after"], 20, "the next entry")
        wait_for(lambda: self.redis.cli("XLEN", "jobs:dead") == "1", 20, "the dead letter")
        self.assertIn("has no 'body' field (its fields: payload, tenant)", c.stderr())
        dead = ctl_json(c, "queue", "dead", "probe")[1]["dead"]
        self.assertEqual(dead[0]["headers"], [["payload", "oops"], ["tenant", "t3"]])
        self.assertIn("no 'body' field", dead[0]["error"])
        wait_for(lambda: self.redis.cli("XPENDING", "jobs", "workers").splitlines()[0] == "0", 10,
                 "nothing pending")
        # Requeued, it goes back as the producer wrote it: still without a body field.
        self.assertEqual(ctl(c, "queue", "requeue", "probe", "--all").returncode, 0)
        wait_for(lambda: self.redis.cli("XLEN", "jobs:dead") == "1" and
                 ctl_json(c, "queue", "dead", "probe")[1]["dead"][0]["id"] != dead[0]["id"],
                 20, "it to be dead-lettered again")
        self.assertEqual([e["body"] for e in c.events("mq")], ["after"], "never handled")

    def test_hiredis_is_mapped_only_by_the_agent_and_its_absence_fails_the_start(self):
        # hiredis is loaded when the first Redis connection opens: the agent's source here; the
        # master and the workers do not pay for its pages.
        self.publish("lib", 3)
        c = self.cluster(workers=2)
        c.wait_ready()
        wait_for(lambda: len(c.events("mq")) >= 3, 20, "3 handlings")
        ready = {e["pid"]: e["role"] for e in c.events("ready")}
        self.assertEqual(sorted(ready.values()), ["agent", "worker", "worker"])
        self.assertEqual({role for pid, role in ready.items() if maps_library(pid, "libhiredis")},
                         {"agent"})
        self.assertFalse(maps_library(c.pid, "libhiredis"), "the master never opens a queue")
        c.close()

        missing = "/nonexistent/libhiredis.so.0.14"
        c = self.start(workers=1, env={"PROBE_QUEUE": self.redis.url(), "CLUTCH_HIREDIS_LIBRARY": missing})
        self.assertEqual(c.wait_exit(), 1)
        self.assertIn(f"Redis needs hiredis ({missing}; Debian package libhiredis0.14", c.stderr())

    def test_bad_redis_url_fails_the_start(self):
        c = self.start(workers=1, env={"PROBE_QUEUE": "redis://127.0.0.1:notaport/jobs"})
        self.assertEqual(c.wait_exit(), 2)  # a ConfigError in the setup
        self.assertIn("bad Redis URL", c.stderr())


class UnreachableBroker(ClusterTest):
    def black_hole(self):
        """A loopback port whose connects hang, like a broker host that went off the network: a
        listener with a full accept queue that never accepts drops every new SYN."""
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            self.addCleanup(filler.close)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        with self.assertRaises(socket.timeout, msg="could not make a black-holed port"):
            probe.connect(("127.0.0.1", port))
        probe.close()
        return port

    def test_reconnecting_to_a_black_holed_broker_never_stalls_the_agent(self):
        port = self.black_hole()
        c = self.start(workers=2, env={"PROBE_QUEUE": f"redis://127.0.0.1:{port}/jobs", "PROBE_JOBS": "every200"})
        c.wait_ready()
        started = time.monotonic()
        wait_for(lambda: time.monotonic() - started > 4, 6, "4 s of reconnect attempts")
        self.assertIn("cannot connect", c.stderr())
        # The agent keeps the schedule's clock: if connecting blocked its loop, ticks would bunch up
        # behind each attempt's 1 s connect timeout.
        times = sorted(e["t"] for e in c.events("job-start") if e["job"] == "every200")
        self.assertGreaterEqual(len(times), 15, f"only {len(times)} ticks in 4 s")
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLess(max(gaps), 0.7, f"the agent's loop stalled: tick gaps up to {max(gaps):.2f} s")


if __name__ == "__main__":
    unittest.main()
