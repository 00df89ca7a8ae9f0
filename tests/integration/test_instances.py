"""Many instances on one queue (issue 11): three clusters of the probe share one Redis stream and
consumer group; one instance's whole process tree is SIGKILLed mid-run, as a host crash would.
Every message is handled, the dead instance's unacknowledged entries are taken over by the
survivors within seconds (its liveness key expires) rather than after the 30 s visibility
timeout, and only what was in flight at the crash may run twice."""

import collections
import json
import math
import os
import re
import subprocess
import time
import unittest

from cluster import BUILD_DIR, ClusterTest, RedisServer, check_unstalled_while_broker_hangs, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class ManyInstances(ClusterTest):
    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.url = self.redis.url(stream="orders", group="workers")

    def test_a_crashed_instance_is_taken_over_within_seconds(self):
        total = 3000
        env = {"PROBE_QUEUE": self.url, "PROBE_WORK_US": "10000"}
        a, b, c = (self.start(workers=2, env=env) for _ in range(3))
        for cluster in (a, b, c):
            cluster.wait_ready()
        subprocess.run([CLUTCHCTL, "publish", self.url, "o", "--count", str(total)], check=True,
                       capture_output=True, timeout=120)
        # Consumer names are unique per instance (each master's pid), so none shares another's
        # pending list.
        wait_for(lambda: len(self.consumers()) == 3, 20, "three consumers in the group")
        names = self.consumers()
        self.assertEqual(len(set(names)), 3)
        for cluster in (a, b, c):
            self.assertTrue(any(n.endswith(f"-{cluster.ready['master']}") for n in names), names)

        wait_for(lambda: len(b.events("mq")) >= 200, 60, "instance b to be busy")
        victim = next(n for n in names if n.endswith(f"-{b.ready['master']}"))
        b.kill_tree()  # the whole tree at once, as a host crash
        killed_at = time.monotonic()
        wait_for(lambda: self.pending_of(victim) == 0, 20,
                 "the dead instance's entries to be taken over (well before the 30 s visibility timeout)")
        took = time.monotonic() - killed_at

        def handled():
            return collections.Counter(e["body"] for cl in (a, b, c) for e in cl.events("mq"))
        wait_for(lambda: len(handled()) == total, 120, "every message handled")
        counts = handled()
        self.assertEqual(set(counts), {f"o-{i}" for i in range(1, total + 1)})  # none lost
        duplicates = sum(n - 1 for n in counts.values())
        # Only what b's workers had in hand (2 x 16 at most) or had just finished (acks leave
        # within ~5 ms, later on a loaded machine) may run again: two windows' worth at most.
        self.assertLessEqual(duplicates, 64, f"{duplicates} duplicates")
        wait_for(lambda: "took over its" in a.stderr() + c.stderr(), 10, "the takeover logged")
        print(f"\n  takeover after {took:.1f} s, {duplicates} duplicate(s) of {total}")

    def consumers(self):
        out = self.redis.cli("XINFO", "CONSUMERS", "orders", "workers").splitlines()
        return [out[i + 1] for i, line in enumerate(out) if line == "name"]

    def pending_of(self, consumer):
        out = self.redis.cli("XPENDING", "orders", "workers", "-", "+", "100000", consumer).splitlines()
        return len(out) // 4


class ClusterSchedules(ClusterTest):
    def start_three(self, job):
        """A Redis for the tick locks and three ready instances running the cluster-scope `job`."""
        redis = RedisServer()
        self.addCleanup(redis.stop)
        env = {"PROBE_JOBS": job, "PROBE_LOCK_URL": f"redis://127.0.0.1:{redis.port}"}
        instances = [self.start(workers=2, env=env) for _ in range(3)]
        for c in instances:
            c.wait_ready()
        return instances

    def test_a_cluster_scope_job_runs_each_tick_once_across_instances_and_survives_one_dying(self):
        instances = self.start_three("cluster200")

        def runs():
            return [e for c in instances for e in c.events("job-start") if e["job"] == "cluster200"]
        wait_for(lambda: len(runs()) >= 10, 30, "ten ticks across the instances")
        victim = instances[0]
        victim.kill_tree()
        before = len(runs())
        wait_for(lambda: len(runs()) >= before + 10, 30, "ticks going on without the dead instance")
        # Each 200 ms tick ran once in the whole cluster: no two runs share a tick slot (a run
        # starts just after its tick's instant, a multiple of 200 ms since the epoch).
        slots = collections.Counter(math.floor(e["t"] / 0.2) for e in runs())
        twice = {s: n for s, n in slots.items() if n > 1}
        self.assertEqual(twice, {}, "ticks run by more than one instance")
        self.assertGreaterEqual(len({e["master"] for e in runs()}), 2)  # spread, not one leader
        self.assertIn('"scope":"cluster"', ctl_json(instances[1]))

    def test_a_tick_whose_claimer_dies_before_it_ends_is_reported_lost_once(self):
        instances = self.start_three("clusterslow")
        # The victim is chosen in a run that started once all three were ready and ticking (a
        # second later: a few 300 ms ticks), so the others were claiming beside it; an instance
        # dying while no other runs is the next test.
        ticking_since = time.time() + 1.0

        def mid_run():  # an instance running such a tick now: a start with no end after it
            for c in instances:
                ev = [e for e in c.events()
                      if e["ev"] in ("job-start", "job-end") and e.get("job") == "clusterslow"]
                if ev and ev[-1]["ev"] == "job-start" and ev[-1]["t"] >= ticking_since:
                    return c
            return None
        victim = wait_for(mid_run, 30, "an instance running a cluster tick")
        victim.kill_tree()
        survivors = [c for c in instances if c is not victim]

        last = [e["ev"] for e in victim.events() if e.get("job") == "clusterslow"][-1]
        self.assertEqual(last, "job-start", "the kill missed the run it aimed at (the machine stalled)")
        self.assert_reported_lost_once(victim, survivors)

    def test_a_tick_lost_while_no_other_instance_ran_is_reported_by_the_next_ones(self):
        # The only instance dies mid-tick (one host's crash); the instances started afterwards
        # never tried to claim that tick, and still find and report it.
        redis = RedisServer()
        self.addCleanup(redis.stop)
        env = {"PROBE_JOBS": "clusterslow", "PROBE_LOCK_URL": f"redis://127.0.0.1:{redis.port}"}
        first = self.start(workers=2, env=env)
        first.wait_ready()
        wait_for(lambda: [e for e in first.events("job-start") if e.get("job") == "clusterslow"], 30,
                 "the first instance running a tick")
        first.kill_tree()
        last = [e["ev"] for e in first.events() if e.get("job") == "clusterslow"][-1]
        self.assertEqual(last, "job-start", "the kill missed the run it aimed at (the machine stalled)")
        later = [self.start(workers=2, env=env) for _ in range(2)]
        for c in later:
            c.wait_ready()
        self.assert_reported_lost_once(first, later)

    def assert_reported_lost_once(self, victim, survivors):
        """The survivors report the victim's unfinished ticks, each once, and count them."""
        def reports():
            return [line for c in survivors for line in c.stderr().splitlines()
                    if "which stopped before the tick ended" in line]
        try:
            wait_for(lambda: reports(), 60, "the dead instance's tick reported lost")
        except AssertionError:
            logs = "\n".join(line for c in survivors for line in c.stderr().splitlines()[-20:])
            raise AssertionError(f"no lost tick reported; the survivors' last lines:\n{logs}")
        # Both survivors keep auditing; give them a few more rounds in which to double-report.
        runs = lambda: sum(len(c.events("job-start")) for c in survivors)
        seen = runs()
        wait_for(lambda: runs() >= seen + 4, 30, "the survivors running more ticks")
        lost = reports()
        victim_owner = re.compile(rf"claimed by [^/\s]+/{victim.pid}/\d+,")
        self.assertTrue(all(victim_owner.search(line) for line in lost), lost)
        keys = [re.search(r"tick (\S+) was claimed", line).group(1) for line in lost]
        self.assertEqual(len(keys), len(set(keys)), f"a lost tick reported twice: {lost}")
        counted = sum(j["lost"] for c in survivors for j in json.loads(ctl_json(c))["jobs"])
        self.assertEqual(counted, len(lost))

    def test_a_hung_lock_broker_skips_cluster_ticks_without_stalling_the_agent(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        c = self.start(workers=2, env={"PROBE_JOBS": "cluster200,every200", "PROBE_HTTP": "1",
                                       "PROBE_LOCK_URL": f"redis://127.0.0.1:{redis.port}"})
        port = c.wait_ready()["port"]
        wait_for(lambda: sum(e["job"] == "cluster200" for e in c.events("job-start")) >= 3, 30,
                 "cluster ticks claimed and run")
        # Claims wait on the lock's own thread; the agent's local schedule and HTTP go on.
        check_unstalled_while_broker_hangs(self, c, port, redis.proc.pid)
        wait_for(lambda: "skipped: cannot claim it" in c.stderr(), 10, "unclaimed ticks reported")
        resumed = time.time()
        wait_for(lambda: any(e["job"] == "cluster200" and e["t"] > resumed for e in c.events("job-start")),
                 30, "cluster ticks again once the broker answers")


def ctl_json(c):
    from test_control import ctl
    return ctl(c, "jobs", "--json").stdout


if __name__ == "__main__":
    unittest.main()
