"""Scheduled jobs on a real cluster (issue: schedules, acceptance 1-5)."""

import collections
import os
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

    def test_worker_job_every_200ms_runs_once_per_tick_never_overlapping(self):
        c = self.cluster("every200")
        wait_for(lambda: self.runs(c, "every200"), 5, "the first run")
        t0 = self.runs(c, "every200")[0]["t"]
        time.sleep(5.3)
        in_window = [e for e in self.runs(c, "every200") if t0 <= e["t"] < t0 + 5.0]
        self.assertLessEqual(abs(len(in_window) - 25), 2, f"{len(in_window)} runs in 5 s")
        self.assertEqual(c.events("overlap"), [])
        self.assertGreater(len({e["pid"] for e in in_window}), 1, "all runs on one worker")

    def test_all_job_runs_on_every_worker_every_tick(self):
        c = self.cluster("all500", workers=3)
        wait_for(lambda: len(self.runs(c, "all500")) >= 9, 5, "three ticks")
        time.sleep(0.2)
        per_worker = collections.Counter(e["pid"] for e in self.runs(c, "all500"))
        self.assertEqual(set(per_worker), set(c.ready["workers"]))
        counts = sorted(per_worker.values())
        self.assertLessEqual(counts[-1] - counts[0], 1, per_worker)

    def test_slow_job_with_skip_never_overlaps_and_logs_skips(self):
        c = self.cluster("slowskip", workers=3)
        wait_for(lambda: len(self.runs(c, "slowskip")) >= 4, 5, "four runs")
        self.assertEqual(c.events("overlap"), [])
        self.assertIn("skipped: the previous run is still going", c.stderr())

    def test_slow_job_with_queue_runs_back_to_back_without_overlap(self):
        c = self.cluster("slowqueue", workers=3)
        wait_for(lambda: len(self.runs(c, "slowqueue")) >= 5, 5, "five runs")
        self.assertEqual(c.events("overlap"), [])
        self.assertIn("queued behind the running one", c.stderr())
        starts = [e["t"] for e in self.runs(c, "slowqueue")]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        # Queued ticks start as soon as the previous run ends (250 ms of work), not a tick later.
        self.assertLess(max(gaps[1:4]), 0.4, gaps)

    def test_killed_worker_has_its_tick_run_once_more_elsewhere(self):
        c = self.cluster("victim", workers=3)
        first = wait_for(lambda: self.runs(c, "victim"), 6, "the victim job to start")[0]
        os.kill(first["pid"], signal.SIGKILL)
        retry = wait_for(lambda: [e for e in self.runs(c, "victim") if e["pid"] != first["pid"]], 2,
                         "the tick to run again on another worker")[0]
        self.assertLess(retry["t"] - first["t"], 2.5, "that was the next tick, not the redelivery")
        wait_for(lambda: [e for e in c.events("job-end") if e["pid"] == retry["pid"]], 2, "the rerun to end")
        time.sleep(0.3)
        # Before the next tick (3 s after the first): exactly the killed run and one rerun.
        before_next = [e for e in self.runs(c, "victim") if e["t"] < first["t"] + 2.9]
        self.assertEqual(len(before_next), 2, before_next)

    def test_immediate_runs_once_at_ready_and_disabled_never(self):
        c = self.cluster("immediate,disabled", workers=2)
        wait_for(lambda: self.runs(c, "immediate"), 5, "the immediate run")
        time.sleep(0.5)
        self.assertEqual(len(self.runs(c, "immediate")), 1)
        self.assertEqual(self.runs(c, "disabled"), [])
        # A restarted agent does not fire immediate jobs again.
        os.kill(c.ready["agent"], signal.SIGKILL)
        wait_for(lambda: len([e for e in c.events("ready") if e["role"] == "agent"]) == 2, 10, "a new agent")
        time.sleep(0.5)
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

    def test_bad_cron_fails_the_start_naming_the_job_and_field(self):
        c = self.start(workers=1, env={"PROBE_JOBS": "badcron"})
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn("job 'badcron'", c.stderr())
        self.assertIn("field 2 (hour) '25'", c.stderr())


if __name__ == "__main__":
    unittest.main()
