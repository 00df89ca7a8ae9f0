"""Scheduled jobs on a real cluster (issue: schedules, acceptance 1-5)."""

import collections
import os
import re
import signal
import time
import unittest

from cluster import ClusterTest, alive, wait_for


class Schedule(ClusterTest):
    def cluster(self, jobs, workers=4, **kw):
        c = self.start(workers=workers, env={"PROBE_JOBS": jobs, **kw.pop("env", {})}, **kw)
        c.wait_ready()
        return c

    def runs(self, c, job):
        return [e for e in c.events("job-start") if e["job"] == job]

    def ticks_ok(self, c, job):
        """(worker pid, tick) of every run the workers logged as done, in log order."""
        pattern = re.compile(r"\[probe worker \d+ (\d+)\] info: job " + job + r": tick (\d+) ok")
        return [(int(m.group(1)), int(m.group(2))) for m in map(pattern.search, c.stderr_lines) if m]

    def ticks_skipped(self, c, job):
        pattern = re.compile(r"job " + job + r": tick (\d+) skipped")
        return {int(m.group(1)) for m in map(pattern.search, c.stderr_lines) if m}

    def test_worker_job_every_200ms_runs_each_tick_once_never_overlapping(self):
        c = self.cluster("every200")
        wait_for(lambda: max((t for _, t in self.ticks_ok(c, "every200")), default=0) >= 20, 60,
                 "tick 20 to be done")
        done = self.ticks_ok(c, "every200")
        last = max(t for _, t in done)
        per_tick = collections.Counter(t for _, t in done)
        self.assertEqual([t for t, n in per_tick.items() if n > 1], [], "a tick ran twice")
        # Every tick up to the last one done either ran or was skipped (and said so): none lost.
        skipped = self.ticks_skipped(c, "every200")
        self.assertEqual(set(range(1, last + 1)) - set(per_tick) - skipped, set())
        self.assertEqual(c.events("overlap"), [])
        self.assertGreater(len({pid for pid, _ in done}), 1, "all runs on one worker")

    def test_all_job_runs_on_every_worker_every_tick(self):
        c = self.cluster("all500", workers=3)
        workers = set(c.ready["workers"])

        def first_three_everywhere():
            done = {(pid, t) for pid, t in self.ticks_ok(c, "all500") if t <= 3}
            return done == {(pid, t) for pid in workers for t in (1, 2, 3)}
        wait_for(first_three_everywhere, 30, "ticks 1-3 on every worker")
        per_run = collections.Counter(self.ticks_ok(c, "all500"))
        self.assertEqual([run for run, n in per_run.items() if n > 1], [], "a worker ran a tick twice")

    def test_slow_job_with_skip_never_overlaps_and_logs_skips(self):
        c = self.cluster("slowskip", workers=3)
        wait_for(lambda: len(self.runs(c, "slowskip")) >= 4, 5, "four runs")
        self.assertEqual(c.events("overlap"), [])
        self.assertIn("skipped: the previous run is still going", c.stderr())

    def test_slow_job_with_queue_runs_every_tick_back_to_back_without_overlap(self):
        c = self.cluster("slowqueue", workers=3)
        wait_for(lambda: len(self.ticks_ok(c, "slowqueue")) >= 5, 30, "five runs")
        self.assertEqual(c.events("overlap"), [])
        self.assertIn("queued behind the running one", c.stderr())
        # Queued, not skipped: ticks run in order, one after the other, none twice or lost.
        done = [t for _, t in self.ticks_ok(c, "slowqueue")]
        self.assertEqual(done, list(range(1, len(done) + 1)))
        self.assertEqual(self.ticks_skipped(c, "slowqueue"), set())

    def test_killed_worker_has_its_tick_run_once_more_elsewhere(self):
        c = self.cluster("victim", workers=3)
        first = wait_for(lambda: self.runs(c, "victim"), 10, "the victim job to start")[0]
        os.kill(first["pid"], signal.SIGKILL)
        # Tick 1 died with its worker: the master hands it to another worker, which finishes it.
        wait_for(lambda: [p for p, t in self.ticks_ok(c, "victim") if t == 1], 20, "tick 1 to be done elsewhere")
        self.assertIn("unacknowledged message(s): handing them to other workers", c.stderr())
        # Once tick 2 is done (runs never overlap), a second rerun of tick 1 would have shown.
        wait_for(lambda: [p for p, t in self.ticks_ok(c, "victim") if t == 2], 20, "tick 2 to be done")
        runs_of_1 = [p for p, t in self.ticks_ok(c, "victim") if t == 1]
        self.assertEqual(len(runs_of_1), 1, runs_of_1)
        self.assertNotEqual(runs_of_1[0], first["pid"])

    def test_immediate_runs_once_at_ready_and_disabled_never(self):
        c = self.cluster("immediate,disabled", workers=2, env={"PROBE_MARKS": "1"})
        wait_for(lambda: self.runs(c, "immediate"), 5, "the immediate run")
        # The agent fires immediate jobs at ready, before it sends this mark: a second run would
        # reach its worker first.
        c.mark(c.ready["workers"])
        self.assertEqual(len(self.runs(c, "immediate")), 1)
        self.assertEqual(self.runs(c, "disabled"), [])
        # A restarted agent does not fire immediate jobs again.
        os.kill(c.ready["agent"], signal.SIGKILL)
        wait_for(lambda: len([e for e in c.events("ready") if e["role"] == "agent"]) == 2, 10, "a new agent")
        c.mark(c.ready["workers"])  # sent by the new agent, after its ready
        self.assertEqual(len(self.runs(c, "immediate")), 1)
        self.assertIn("immediate jobs do not run again", c.stderr())

    def test_list_and_run_now(self):
        c = self.cluster("listed,disabled", workers=2, env={"PROBE_SCENARIO": "jobs-api"})
        wait_for(lambda: len(c.events("run-now")) == 2 and c.events("job-listed"), 5, "the API answers")
        listed = {e["name"]: e for e in c.events("job-listed")}
        self.assertRegex(listed["listed"]["next"], r"T03:00:00\+0[12]:00$")
        self.assertTrue(listed["disabled"]["disabled"])
        outcomes = sorted((e["ok"], e["error"]) for e in c.events("run-now"))
        self.assertEqual(outcomes[1], (True, ""))
        self.assertIn("no job named 'nonexistent'", outcomes[0][1])
        wait_for(lambda: self.runs(c, "listed"), 5, "the job run now")

    def test_per_second_crons_in_a_zone_leave_the_agent_idle_and_stop_cleanly(self):
        # Issue 22.1: ten "*/1 * * * * *" jobs in Asia/Tokyo pinned the agent at a core (each
        # fire time scanned three hours of candidates, switching the process's TZ each time).
        c = self.cluster("tokyo10", workers=2)
        agent = c.ready["agent"]
        names = [f"tokyo{i}" for i in range(10)]

        def runs_of_each():
            counts = collections.Counter(e["job"] for e in c.events("job-start"))
            return min(counts[n] for n in names)

        wait_for(lambda: runs_of_each() >= 2, 60, "every job to run twice")
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds():
            with open(f"/proc/{agent}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        cpu0, wall0, runs0 = cpu_seconds(), time.monotonic(), runs_of_each()
        wait_for(lambda: runs_of_each() >= runs0 + 4, 60, "four more runs of every job")
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        # Today's cost is well under 1% of a core (bench/cron); the old one was 90-100%.
        self.assertLess(cpu / wall, 0.25, f"agent used {cpu:.2f} s of CPU in {wall:.1f} s")
        # A stop ends the agent by itself (it had to be SIGKILLed when pinned).
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)
        self.assertNotIn("SIGKILL", c.stderr())

    def test_bad_cron_fails_the_start_naming_the_job_and_field(self):
        c = self.start(workers=1, env={"PROBE_JOBS": "badcron"})
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("job 'badcron'", c.stderr())
        self.assertIn("field 2 (hour) '25'", c.stderr())


class NoWorker(ClusterTest):
    def test_a_tick_while_no_worker_is_alive_says_so_and_runs_once_one_is(self):
        flag = os.path.join("/tmp", f"clutch-noworker-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.start(workers=1, env={"PROBE_JOBS": "every200", "PROBE_HANG_ROLE": "worker",
                                       "PROBE_HANG_FLAG": flag},
                       args=("-s", "startup_timeout=1s", "-s", "restart_backoff_initial=50ms"))
        ready = c.wait_ready()
        wait_for(lambda: len(c.events("job-start")) >= 2, 20, "every200 to run")
        open(flag, "w").close()  # the replacement's setup waits while this exists
        os.kill(ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: "skipped: no worker is alive (tick" in c.stderr(), 20,
                 "a tick skipped for want of a worker")
        self.assertNotIn("the previous run is still going", c.stderr())
        before = len(c.events("job-start"))
        os.remove(flag)
        wait_for(lambda: len(c.events("job-start")) >= before + 2, 30, "ticks again on the replacement")


if __name__ == "__main__":
    unittest.main()
