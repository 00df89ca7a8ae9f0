"""Operating a running cluster (issue 9): application metrics summed over the workers, the
children's own figures, clutchctl jobs / jobs run, queue / dead / requeue / purge, and logs."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest
import urllib.request

from cluster import BUILD_DIR, ClusterTest, RedisServer, wait_for
from test_control import ctl

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


def scrape(c):
    address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        return r.read().decode()


def value(text, series):
    """The value of one exact series line in a scrape, or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[-1])
    return None


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def ctl_json(c, *args, timeout=120):
    out = ctl(c, *args, "--json", timeout=timeout)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else {}


class AppMetrics(ClusterTest):
    def test_a_counter_incremented_once_in_each_of_4_workers_reads_4_and_survives_a_restart(self):
        c = self.start(workers=4, args=("-s", "metrics_listen=127.0.0.1:0"),
                       env={"PROBE_METRICS": "1", "PROBE_HTTP": "1"})
        ready = c.wait_ready()
        wait_for(lambda: value(scrape(c), "probe_started_total") == 4, 20, "4 starts in one scrape")
        text = scrape(c)
        if shutil.which("promtool") is None:
            self.fail("promtool is not installed (scripts/deps installs prometheus)")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # Gauges merge by their rule; histograms add up bucket by bucket.
        for slot in range(4):
            self.assertEqual(value(text, f'probe_worker_index{{role="worker",slot="{slot}"}}'), slot)
        self.assertEqual(value(text, "probe_highest_slot"), 3)
        self.assertEqual(value(text, "probe_setup_seconds_count"), 4)
        self.assertEqual(value(text, 'probe_setup_seconds_bucket{le="0.1"}'), 4)
        self.assertEqual(value(text, 'probe_setup_seconds_bucket{le="0.01"}'), 0)

        # Requests land on whichever worker: the scrape counts them all, and so does status.
        for _ in range(30):
            self.assertEqual(http_get(ready["port"], "/count"), "counted")
        wait_for(lambda: value(scrape(c), 'probe_hits_total{route="count"}') == 30, 20, "30 hits summed")
        text = scrape(c)
        self.assertGreaterEqual(value(text, 'clutch_http_requests_total{code="2xx"}'), 30)
        self.assertGreaterEqual(value(text, "clutch_http_request_duration_seconds_count"), 30)
        # From 50 us: a fast handler's requests are told apart below a millisecond.
        self.assertIsNotNone(re.search(r'clutch_http_request_duration_seconds_bucket\{le="(5e-05|0\.00005)"\}',
                                       text), text)
        code, status = ctl_json(c, "status")
        self.assertEqual(code, 0)
        self.assertGreaterEqual(sum(p["http_requests"] for p in status["processes"]), 30)

        # A worker killed outright: its counts stay in the totals, its successor adds its own.
        os.kill(ready["workers"][0], signal.SIGKILL)
        wait_for(lambda: value(scrape(c), "probe_started_total") == 5, 30, "the successor's start counted")
        text = scrape(c)
        self.assertEqual(value(text, 'probe_hits_total{route="count"}'), 30)
        self.assertEqual(value(text, "probe_highest_slot"), 3)


class Jobs(ClusterTest):
    def test_jobs_lists_every_schedule_and_jobs_run_runs_one_tick_and_reports_it(self):
        c = self.start(workers=2, args=("-s", "metrics_listen=127.0.0.1:0"),
                       env={"PROBE_JOBS": "manual,failing,every200"})
        c.wait_ready()
        code, listing = ctl_json(c, "jobs")
        self.assertEqual(code, 0, listing)
        jobs = {j["name"]: j for j in listing["jobs"]}
        self.assertEqual(set(jobs), {"manual", "failing", "every200"})
        self.assertEqual(jobs["manual"]["schedule"], "1h")
        self.assertEqual(jobs["manual"]["runs_ok"], 0)
        self.assertNotEqual(jobs["manual"]["next_fire"], "")

        out = ctl(c, "jobs", "run", "manual")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"job manual: tick 1 ok on worker \d+ in \d+ ms")
        self.assertEqual(len([e for e in c.events("job-start") if e["job"] == "manual"]), 1)

        out = ctl(c, "jobs", "run", "failing")
        self.assertEqual(out.returncode, 1)
        self.assertIn("this job always fails", out.stderr)
        out = ctl(c, "jobs", "run", "nope")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no job named 'nope'", out.stderr)

        jobs = {j["name"]: j for j in ctl_json(c, "jobs")[1]["jobs"]}
        self.assertEqual((jobs["manual"]["runs_ok"], jobs["manual"]["last_result"]), (1, "ok"))
        self.assertNotEqual(jobs["manual"]["last_run"], "")
        self.assertEqual(jobs["failing"]["runs_failed"], 1)
        self.assertIn("always fails", jobs["failing"]["last_result"])
        table = ctl(c, "jobs").stdout
        self.assertIn("NEXT RUN", table)
        self.assertRegex(table, r"manual\s+1h\s+worker")
        wait_for(lambda: value(scrape(c), 'clutch_schedule_runs_total{job="failing",result="failed"}') == 1,
                 20, "the failed run in the metrics")
        wait_for(lambda: (value(scrape(c), 'clutch_schedule_runs_total{job="every200",result="ok"}') or 0) >= 2,
                 20, "every200's runs in the metrics")


class Queue(ClusterTest):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clutch-ops-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.url = f"sqlite:{self.dir}/q.db"

    def publish(self, prefix, count):
        subprocess.run([CLUTCHCTL, "publish", self.url, prefix, "--count", str(count)], check=True,
                       capture_output=True, timeout=60)

    def test_queue_shows_each_consumer_and_dead_letters_can_be_listed_requeued_and_purged(self):
        c = self.start(workers=2, env={"PROBE_QUEUE": self.url})
        c.wait_ready()
        self.publish("poison", 3)
        self.publish("fine", 5)
        wait_for(lambda: ctl_json(c, "queue")[1]["queues"][0]["dead_letters"] == 3, 30, "3 dead letters")
        code, answer = ctl_json(c, "queue")
        self.assertEqual(code, 0, answer)
        (q,) = answer["queues"]
        self.assertEqual(q["name"], "probe")
        self.assertEqual(q["handled"], 5)
        self.assertEqual(q["failed"], 9)  # 3 poison messages x max_attempts 3
        self.assertEqual(q["pending"], 0)
        self.assertIn("PENDING", ctl(c, "queue").stdout)

        code, dead = ctl_json(c, "queue", "dead", "probe")
        self.assertEqual(code, 0)
        self.assertEqual(sorted(d["body"] for d in dead["dead"]), ["poison-1", "poison-2", "poison-3"])
        self.assertTrue(all("poison message" in d["error"] and d["attempts"] == 3 for d in dead["dead"]))

        # One back to the queue: it is fetched and fails again, three more attempts.
        first = dead["dead"][0]["id"]
        code, moved = ctl_json(c, "queue", "requeue", "probe", first)
        self.assertEqual((code, moved["requeued"]), (0, 1))
        wait_for(lambda: len(c.events("mq-poison")) == 12, 30, "the requeued message tried again")
        wait_for(lambda: ctl_json(c, "queue")[1]["queues"][0]["dead_letters"] == 3, 30, "dead again")

        out = ctl(c, "queue", "requeue", "probe", "no-such-id")
        self.assertEqual(out.returncode, 1, "an id that matches nothing is an error")
        self.assertIn("1 of the 1 id(s) given are not dead letters of probe", out.stderr)
        self.assertEqual(ctl(c, "queue", "purge", "probe", "12345678").returncode, 1)
        self.assertEqual(ctl(c, "queue", "purge", "probe").returncode, 2)  # ids or --all
        code, purged = ctl_json(c, "queue", "purge", "probe", "--all")
        self.assertEqual((code, purged["purged"]), (0, 3))
        self.assertEqual(ctl_json(c, "queue", "dead", "probe")[1]["dead"], [])
        out = ctl(c, "queue", "dead", "nope")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no consumer named 'nope'", out.stderr)

    def test_queue_shows_the_oldest_waiting_message(self):
        c = self.start(workers=1, env={"PROBE_QUEUE": self.url, "PROBE_WORK_US": "300000"})
        c.wait_ready()
        self.publish("slow", 20)
        wait_for(lambda: ctl_json(c, "queue")[1]["queues"][0]["oldest_age_ms"] >= 500, 30,
                 "the oldest message to show its age")
        (q,) = ctl_json(c, "queue")[1]["queues"]
        self.assertGreater(q["pending"], 0)
        self.assertGreater(q["in_flight"], 0)

    def test_without_consumers_or_jobs_the_agent_says_so(self):
        c = self.start(workers=1)
        c.wait_ready()
        self.assertEqual(ctl_json(c, "queue")[1]["queues"], [])
        self.assertEqual(ctl_json(c, "jobs")[1]["jobs"], [])
        self.assertIn("no queue consumers", ctl(c, "queue").stdout)


class RedisQueue(Queue):
    """The same commands on Redis Streams (dead letters in STREAM:dead)."""

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.url = self.redis.url()


class Logs(ClusterTest):
    def test_logs_merges_the_log_files_by_time_filters_by_role_and_follows(self):
        logs = tempfile.mkdtemp(prefix="clutch-logs-")
        self.addCleanup(shutil.rmtree, logs, True)
        c = self.start(workers=2, args=("-s", f"log_dir={logs}"))
        ready = c.wait_ready()
        out = ctl(c, "logs", "-n", "1000")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertTrue(any("probe master" in l for l in lines))
        self.assertTrue(any("probe agent" in l for l in lines))
        self.assertTrue(any("probe worker" in l for l in lines))
        self.assertEqual([l[:23] for l in lines], sorted(l[:23] for l in lines))
        agent_only = ctl(c, "logs", "--role", "agent").stdout.splitlines()
        self.assertTrue(agent_only and all("probe agent" in l for l in agent_only), agent_only)

        follow = subprocess.Popen([CLUTCHCTL, "logs", "-f", "-n", "0", "--socket",
                                   re.search(r", control ([^,\s]+)", c.stdout_lines[0]).group(1)],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(follow.stdout.close)
        self.addCleanup(follow.wait, 10)
        self.addCleanup(follow.kill)
        seen = []
        reader = threading.Thread(target=lambda: seen.extend(follow.stdout), daemon=True)
        reader.start()
        self.assertEqual(ctl(c, "restart", "0").returncode, 0)
        wait_for(lambda: any("clutchctl restart" in l for l in list(seen)), 20, "the restart in logs -f")

    def test_without_log_dir_logs_says_where_the_log_is(self):
        c = self.start(workers=1)
        c.wait_ready()
        out = ctl(c, "logs")
        self.assertEqual(out.returncode, 1)
        self.assertIn("journalctl", out.stderr)


if __name__ == "__main__":
    unittest.main()
