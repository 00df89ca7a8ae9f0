"""Issue 11's acceptance run, as a user would do it: three instances of examples/orders (the seed's
app, unchanged but for its ORDERS_QUEUE) on one machine, on different ports, sharing one broker
(redis-server, then rabbitmq-server). 20,000 orders are posted to one instance's HTTP API (its
workers publish them through clutch::Producer, off their loops); one instance's whole process tree
is SIGKILLed mid-run, as a host crash would. Every order lands in some instance's ledger, the dead
instance's share is taken over within seconds, and duplicates are only what the dead instance had
in hand."""

import collections
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.request

from cluster import BUILD_DIR, ClusterTest, RabbitServer, RedisServer, wait_for

ORDERS = os.path.join(BUILD_DIR, "examples/orders/orders")
TOTAL = 20_000


class ThreeInstances:
    """Runs the scenario for one queue URL; `gone(victim)` says the broker no longer holds
    anything for the dead instance."""

    def run_scenario(self, url, gone):
        work = tempfile.mkdtemp(prefix="clutch-orders-many-")
        ledgers = [os.path.join(work, f"ledger-{i}.txt") for i in range(3)]
        clusters = [self.start(binary=ORDERS, workers=2,
                               env={"ORDERS_QUEUE": url, "ORDERS_LEDGER": ledger}) for ledger in ledgers]
        ports = [c.wait_ready()["port"] for c in clusters]
        req = urllib.request.Request(f"http://127.0.0.1:{ports[0]}/orders?count={TOTAL}", method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            self.assertEqual(r.status, 202)
            self.assertEqual(json.load(r)["published"], TOTAL)

        def lines(path):
            try:
                with open(path) as f:
                    return [line.split()[0] for line in f if line.strip()]
            except FileNotFoundError:
                return []
        a, b, c = clusters
        wait_for(lambda: len(lines(ledgers[1])) >= 1000, 120, "instance b to be busy")
        b.kill_tree()  # the whole tree at once, as a host crash
        killed_at = time.monotonic()
        # Bounded well past the mechanisms these tests tell apart (a 30 s visibility timeout, a
        # 60 s heartbeat timeout), so that a slow broker CLI on a busy machine only reads late.
        wait_for(lambda: gone(b), 90, "the dead instance's messages to be taken over")
        took = time.monotonic() - killed_at

        def handled():
            return collections.Counter(o for path in ledgers for o in lines(path))
        wait_for(lambda: len(handled()) >= TOTAL, 300, "every order in a ledger")
        counts = handled()
        self.assertEqual(len(counts), TOTAL, "orders that were never published were handled")
        duplicates = sum(n - 1 for n in counts.values())
        # What b held (its workers' 2 x 16 in flight, and what its agent had read ahead) and had
        # just handled may run again; nothing else.
        self.assertLessEqual(duplicates, 300, f"{duplicates} duplicates")
        for cl in (a, c):
            stats = json.load(urllib.request.urlopen(
                f"http://127.0.0.1:{cl.ready['port']}/orders/stats", timeout=10))
            self.assertEqual(stats["dead_letters"], 0)
        print(f"\n  taken over {took:.1f} s after the crash, {duplicates} duplicate(s) of {TOTAL}")
        return took


class RedisInstances(ThreeInstances, ClusterTest):
    def test_three_orders_instances_on_one_redis_stream_survive_one_crashing(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        url = redis.url(stream="orders", group="orders")

        def victim_pending(cluster):
            names = redis.cli("XINFO", "CONSUMERS", "orders", "orders").splitlines()
            mine = [names[i + 1] for i, v in enumerate(names) if v == "name"
                    and names[i + 1].endswith(f"-{cluster.ready['master']}")]
            if not mine:
                return True  # removed from the group by the survivor that took it over
            out = redis.cli("XPENDING", "orders", "orders", "-", "+", "100000", mine[0]).splitlines()
            return len(out) == 0
        took = self.run_scenario(url, victim_pending)
        # Liveness keys last 3 s and are checked each second; without them the entries would wait
        # for the 30 s visibility timeout (XAUTOCLAIM). Under 30 s is the liveness path at work.
        self.assertLess(took, 30, "taken over by the visibility timeout, not the liveness keys")


class AmqpInstances(ThreeInstances, ClusterTest):
    @classmethod
    def setUpClass(cls):
        cls.rabbit = RabbitServer()

    @classmethod
    def tearDownClass(cls):
        cls.rabbit.stop()

    def test_three_orders_instances_on_one_rabbitmq_queue_survive_one_crashing(self):
        url = self.rabbit.url("orders", prefetch=64)

        def consumers():
            info = self.rabbit.queue_info("orders", "consumers")
            return info and info[0]
        # The kernel closes the dead instance's connection and the broker requeues what it held.
        took = self.run_scenario(url, lambda _: consumers() == 2)
        # Without the closed connection, the broker would notice only after two missed 30 s
        # heartbeats: under 30 s is the requeue on close.
        self.assertLess(took, 30, "requeued at a heartbeat timeout, not when the connection closed")


if __name__ == "__main__":
    unittest.main()
