"""The messenger's promises on a real cluster (acceptance 2, 3, 4, 7, 8)."""

import collections
import os
import random
import signal
import time
import unittest

from cluster import ClusterTest, alive, wait_for
from test_operations import ctl_json


class Messenger(ClusterTest):
    def cluster(self, **kw):
        return self.start(**kw)

    def test_send_random_reaches_exactly_one_worker_each_time(self):
        c = self.cluster(workers=4, env={"PROBE_SCENARIO": "random", "PROBE_COUNT": "10000",
                                         "PROBE_MARKS": "1"})
        ready = c.wait_ready()
        wait_for(lambda: len(c.events("handled")) >= 10000, 60, "10,000 handled messages")
        # The agent sent every message before the mark: a second delivery of any would reach its
        # worker before the mark does.
        c.mark(ready["workers"])
        handled = c.events("handled")
        by_id = collections.Counter(e["id"] for e in handled)
        self.assertEqual(set(by_id), set(range(10000)))
        self.assertEqual(max(by_id.values()), 1, "a message was handled twice")
        per_worker = collections.Counter(e["pid"] for e in handled)
        self.assertEqual(set(per_worker), set(ready["workers"]), f"not every worker got some: {per_worker}")

    def test_messages_for_the_workers_sent_before_they_exist_reach_each_once(self):
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "early"})
        ready = c.wait_ready()
        agent, workers = ready["agent"], ready["workers"]
        # The marker is sent after ready: once every worker has it, all that was held came first.
        wait_for(lambda: len([e for e in c.events("got") if e["action"] == "direct"]) >= 3, 10,
                 "the after-ready marker at every worker")
        got = collections.defaultdict(list)
        for e in c.events("got"):
            got[e["action"]].append(e["pid"])
        self.assertEqual(sorted(got["b"]), sorted([agent, *workers]), "early broadcast")
        self.assertEqual(sorted(got["app"]), sorted(workers), "early send_to_app")
        self.assertEqual(sorted(got["others"]), sorted(workers), "early send_to_others")
        self.assertEqual(sorted(got["direct"]), sorted(workers))

    def test_a_hung_worker_slows_no_other_workers_messages(self):
        # 75 MiB for each worker: more than the master queues for one that is stuck (64 MiB, with
        # messages of at most 1 MiB). In the socket (128 KiB) and as shared memory (320 KiB).
        for kib, total in ((128, 600), (320, 240)):
            with self.subTest(kib=kib):
                self.check_a_hung_worker_slows_no_other(kib, total)

    def check_a_hung_worker_slows_no_other(self, kib, total):
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "flood", "PROBE_COUNT": str(total),
                                         "PROBE_FLOOD_KIB": str(kib)},
                         args=("-s", "max_message_size=1MiB"))
        ready = c.wait_ready()
        hung, *others = ready["workers"]
        os.kill(hung, signal.SIGSTOP)
        self.addCleanup(lambda: alive(hung) and os.kill(hung, signal.SIGCONT))

        def received(pid):
            return sum(1 for e in c.events("got") if e["pid"] == pid and e["action"] == "app")
        wait_for(lambda: all(received(pid) == total for pid in others), 60,
                 f"the {total} messages at each worker that is not hung")
        # What could not be queued for the hung one was reported to the sender, not dropped silently.
        wait_for(lambda: c.events("delivery-error"), 10, "the sender to hear of the refused messages")
        self.assertIn(f"(pid {hung}) is not reading its messages", c.stderr())
        os.kill(hung, signal.SIGCONT)
        refused = len(c.events("delivery-error"))
        wait_for(lambda: received(hung) == total - refused, 30, "the hung worker to catch up once resumed")

    def test_each_route_reaches_exactly_the_processes_of_the_table(self):
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "routes", "PROBE_MARKS": "1"})
        ready = c.wait_ready()
        agent, workers = ready["agent"], ready["workers"]
        wait_for(lambda: c.events("delivery-error"), 10, "the unknown-pid error")
        # Every route's message was sent before the mark, so any copy too many arrives before it.
        c.mark([agent, *workers])
        got = collections.defaultdict(list)
        for e in c.events("got"):
            got[e["action"]].append(e["pid"])
        self.assertEqual(sorted(got["b"]), sorted([agent, *workers]), "broadcast")
        self.assertEqual(sorted(got["app"]), sorted(workers), "send_to_app")
        self.assertEqual(got["ag"], [agent], "send_to_agent")
        worker0 = next(e["pid"] for e in c.events("start") if e["slot"] == 0)
        self.assertEqual(sorted(got["others"]), sorted(w for w in workers if w != worker0), "send_to_others")
        self.assertEqual(len(got["direct"]), 1, "send_to(pid)")
        self.assertIn(got["direct"][0], workers)
        self.assertNotEqual(got["direct"][0], worker0)
        senders = {(e["action"], e["from_role"]) for e in c.events("got")}
        self.assertIn(("b", "agent"), senders, "handlers see who sent a message")
        self.assertIn(("direct", "worker"), senders)
        errors = c.events("delivery-error")
        self.assertEqual([(e["pid"], e["action"]) for e in errors], [(worker0, "direct")])
        self.assertIn("no process with pid 999999", c.stderr())

    def test_acknowledged_messages_survive_a_worker_killed_every_100ms(self):
        c = self.cluster(
            workers=4,
            env={"PROBE_SCENARIO": "acked", "PROBE_COUNT": "10000", "PROBE_BATCH": "100",
                 "PROBE_PACE_MS": "25", "PROBE_WORK_US": "300"},
            args=("-s", "min_uptime=50ms", "-s", "restart_backoff_initial=10ms",
                  "-s", "restart_backoff_max=200ms"))
        ready = c.wait_ready()
        rng = random.Random(7)
        killed = []
        deadline = time.monotonic() + 60
        while len(c.events("ack")) < 10000 and time.monotonic() < deadline:
            workers = [e["pid"] for e in c.events("ready") if e["role"] == "worker"
                       and alive(e["pid"]) and e["pid"] not in killed]
            if workers:
                victim = rng.choice(workers)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            time.sleep(0.1)
        acks = c.events("ack")
        self.assertGreaterEqual(len(killed), 10, "the test must really kill workers")
        self.assertEqual(len(acks), 10000, f"only {len(acks)} of 10000 acknowledged")
        self.assertTrue(all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:3])
        self.assertEqual({a["id"] for a in acks}, set(range(10000)))
        handled = {e["id"] for e in c.events("handled")}
        self.assertEqual(handled, set(range(10000)), "a message was never handled")
        self.assertIn("unacknowledged message(s): handing them to other workers", c.stderr())
        # The killed workers were replaced and the agent's clutch:pids followed.
        def pids_caught_up():
            pids = c.events("pids")
            live = sorted(p for p in pids[-1]["workers"] if alive(p)) if pids else []
            return pids and len(live) == 4 and not set(pids[-1]["workers"]) & set(killed)
        wait_for(pids_caught_up, 10, "clutch:pids to list 4 live replacement workers")

    def test_payloads_of_megabytes_arrive_whole(self):
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "big"})  # the default 64 MiB limit
        c.wait_ready()
        # Three send_random (100 KiB, 3 MiB, 20 MiB) to one worker each, one 5 MiB send_to_app to all.
        wait_for(lambda: len(c.events("big")) >= 6 and len(c.events("big-ack")) >= 3, 30,
                 "every large payload delivered")
        sent = {e["size"]: e["sum"] for e in c.events("big-sent")}
        got = c.events("big")
        for e in got:
            self.assertEqual(e["sum"], sent[e["size"]], f"a {e['size']}-byte payload arrived changed")
        sizes = sorted(e["size"] for e in got)
        self.assertEqual(sizes, sorted([100 << 10, 3 << 20, 20 << 20] + [5 << 20] * 3))
        self.assertTrue(all(e["ok"] for e in c.events("big-ack")))
        # The 20 MiB region stays mapped in its reader for the sender's next payload, yet the
        # resident memory clutchctl status shows (and max_rss checks) is the process's own: that
        # reader reports about what a worker that never saw the 20 MiB does.
        reader = next(e["pid"] for e in got if e["size"] == 20 << 20)
        other = next(e["pid"] for e in got if e["pid"] != reader)
        with open(f"/proc/{reader}/maps") as maps:
            self.assertIn("memfd:clutch-payload", maps.read())
        _, status = ctl_json(c, "status")
        rss = {p["pid"]: p["rss_bytes"] for p in status["processes"]}
        self.assertLess(rss[reader] - rss[other], 10 << 20,
                        f"shared payload memory counted as the reader's own: {rss}")

    def test_a_large_message_to_a_worker_killed_mid_read_is_redelivered_whole(self):
        # 20 MiB takes the shared-memory path (a sealed memfd passed with a small frame).
        c = self.cluster(workers=2, env={"PROBE_SCENARIO": "bigkill"})
        ready = c.wait_ready()
        first = wait_for(lambda: c.events("big-start"), 30, "a worker reading the message")[0]
        os.kill(first["pid"], signal.SIGKILL)
        ack = wait_for(lambda: c.events("big-ack"), 30, "the message handled by another worker")[0]
        sent = c.events("big-sent")[0]
        done = c.events("big")
        self.assertTrue(ack["ok"], ack)
        self.assertEqual([(e["size"], e["sum"]) for e in done], [(sent["size"], sent["sum"])])
        self.assertNotEqual(done[0]["pid"], first["pid"])
        self.assertEqual(ack["by"], done[0]["pid"])
        # No region outlives its use: once it is acknowledged the master and the workers hold none,
        # and the sender only its pool of regions for reuse (which dies with it).
        def regions(pid):
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                return 0  # exited meanwhile
            return sum("memfd:clutch-payload" in link for link in links)
        wait_for(lambda: all(regions(pid) == 0 for pid in [c.pid, *ready["workers"], done[0]["pid"]]),
                 10, "the master and the workers to let go of the message's memfd")
        self.assertLessEqual(regions(ready["agent"]), 8)
        self.assertIn("exited with 1 unacknowledged message(s)", c.stderr())

    def test_crash_looping_worker_backs_off_while_the_others_serve(self):
        crash_file = os.path.join("/tmp", f"clutch-crash-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(crash_file) and os.remove(crash_file))
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "ping", "PROBE_CRASH_FILE": crash_file},
                         # min_uptime is generous: an ASan child on a loaded CI machine can take
                         # over a second to boot and crash, which would count as a stable run.
                         args=("-s", "min_uptime=5s", "-s", "restart_backoff_initial=50ms",
                               "-s", "restart_backoff_max=800ms"))
        c.wait_ready()
        slot0 = next(e["pid"] for e in c.events("start") if e["slot"] == 0)
        open(crash_file, "w").close()
        os.kill(slot0, signal.SIGKILL)
        wait_for(lambda: len(c.events("crash-at-start")) >= 5, 20, "five crash-looping starts")
        handled_before = len(c.events("handled"))
        # The agent sends a message every 50 ms: the other workers keep handling them.
        wait_for(lambda: len(c.events("handled")) > handled_before + 5, 20,
                 "the other workers to keep serving")
        delays = [int(m) for m in __import__("re").findall(r"restarting in (\d+) ms", c.stderr())]
        self.assertGreaterEqual(len(delays), 4)
        self.assertEqual(delays[:4], sorted(delays[:4]), c.stderr())
        self.assertGreater(delays[3], delays[0], f"restart delays did not grow: {delays}")
        self.assertIn("cluster degraded", c.stderr())
        # The master still answers: a graceful stop completes promptly.
        os.remove(crash_file)
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(timeout=10), 0)

    def test_child_writing_garbage_is_disconnected_and_replaced(self):
        flag = os.path.join("/tmp", f"clutch-garbage-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.cluster(workers=3, env={"PROBE_SCENARIO": "ping", "PROBE_GARBAGE_FLAG": flag})
        c.wait_ready()
        wait_for(lambda: c.events("garbage"), 10, "the garbage write")
        offender = c.events("garbage")[0]["pid"]
        wait_for(lambda: not alive(offender), 5, "the offender to be killed")
        self.assertIn("sent a bad frame", c.stderr())
        wait_for(lambda: any(e["role"] == "worker" and e["pid"] != offender and
                             e["pid"] not in c.ready["workers"] for e in c.events("ready")),
                 10, "a replacement worker")
        handled_before = len(c.events("handled"))
        wait_for(lambda: len(c.events("handled")) > handled_before + 5, 5, "the cluster to carry on")
        self.assertTrue(alive(c.pid))

    def test_half_written_frame_gets_the_child_restarted_and_its_messages_redelivered(self):
        # Issue 28.1: a header promising 8 MiB and nothing more. The master used to read the
        # worker's later acks and beats as that body, refresh its last-seen time at each read, and
        # leave it "ready" with its messages in flight for good.
        flag = os.path.join("/tmp", f"clutch-half-frame-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.cluster(workers=3, args=("-s", "hang_timeout=2s"),
                         env={"PROBE_SCENARIO": "acked", "PROBE_COUNT": "3000", "PROBE_BATCH": "20",
                              "PROBE_HALF_FRAME_FLAG": flag})
        c.wait_ready()
        offender = wait_for(lambda: c.events("half-frame"), 10, "the half-written frame")[0]["pid"]
        wait_for(lambda: not alive(offender), 30, "the offender to be killed")
        self.assertIn("broke the messenger protocol: a frame of 8388644 bytes has been incomplete",
                      c.stderr())
        self.assertNotIn("is hung", c.stderr())
        wait_for(lambda: any(e["role"] == "worker" and e["pid"] != offender and
                             e["pid"] not in c.ready["workers"] for e in c.events("ready")),
                 30, "a replacement worker")
        # Nothing lost: every message is acknowledged as handled, the offender's included.
        wait_for(lambda: len({e["id"] for e in c.events("ack")}) == 3000, 60, "3,000 acknowledged ids")
        self.assertEqual([e for e in c.events("ack") if not e["ok"]], [])

    def test_forged_draining_control_has_a_deadline_then_the_slot_is_refilled(self):
        # Issue 28.2: a worker that says "draining" and goes on held its slot draining for good.
        flag = os.path.join("/tmp", f"clutch-forge-draining-{os.getpid()}")
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        c = self.cluster(workers=2, args=("-s", "kill_timeout=1s"),
                         env={"PROBE_SCENARIO": "ping", "PROBE_FORGE_DRAINING_FLAG": flag})
        c.wait_ready()
        offender = wait_for(lambda: c.events("forged-draining"), 10, "the forged control")[0]["pid"]
        wait_for(lambda: not alive(offender), 30, "the draining worker to be killed")
        self.assertIn("said it was draining 1000 ms ago and still runs", c.stderr())
        wait_for(lambda: any(e["role"] == "worker" and e["pid"] not in c.ready["workers"]
                             for e in c.events("ready")), 30, "its slot refilled")
        handled_before = len(c.events("handled"))
        wait_for(lambda: len(c.events("handled")) > handled_before + 5, 10, "the cluster to carry on")


if __name__ == "__main__":
    unittest.main()


class Requests(ClusterTest):
    def test_requests_replies_timeouts_and_refused_sends(self):
        c = self.start(workers=2, env={"PROBE_SCENARIO": "requests"}, args=("-s", "max_message_size=4KiB"))
        c.wait_ready()
        ready = c.ready
        wait_for(lambda: len(c.events("reply")) >= 7, 10, "seven request outcomes")
        replies = {e["name"]: e for e in c.events("reply")}
        self.assertEqual((replies["ask"]["ok"], replies["ask"]["data"]), (True, "answer to life"))
        self.assertEqual(replies["ask"]["from_role"], "agent")
        self.assertEqual((replies["later"]["ok"], replies["later"]["data"]), (True, "later"))
        self.assertFalse(replies["never"]["ok"])
        self.assertIn("timed out after 300 ms", replies["never"]["error"])
        self.assertFalse(replies["nohandler"]["ok"])
        self.assertIn("no handler for 'no-such-handler'", replies["nohandler"]["error"])
        self.assertFalse(replies["nopid"]["ok"])
        self.assertIn("no process with pid 999999", replies["nopid"]["error"])
        refused = {e["name"]: e["error"] for e in c.events("refused")}
        self.assertIn("reserved for the clutch runtime", refused["reserved"])
        self.assertIn("over max_message_size (4096 bytes)", refused["too-large"])
        # An oversized reply is the replier's error, reported to the requester; the replier lives.
        self.assertFalse(replies["big"]["ok"])
        self.assertIn("reply of 4097 bytes is over max_message_size", replies["big"]["error"])
        self.assertNotIn("broke the messenger protocol", c.stderr())
        self.assertTrue(alive(ready["agent"]))
        # A reply callback that threw did not take the worker down: its next request came back.
        self.assertEqual((replies["after"]["ok"], replies["after"]["data"]), (True, "answer to after"))
        self.assertIn("request reply callback threw: probe: callback bug", c.stderr())
        self.assertTrue(all(alive(pid) for pid in ready["workers"]))


class Systemd(ClusterTest):
    def notify_socket(self):
        """A fake NOTIFY_SOCKET that records systemd's datagrams: (its path, the socket)."""
        import socket
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="clutch-notify-"), "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        self.addCleanup(sock.close)
        return path, sock

    def test_ready_and_stopping_reach_notify_socket(self):
        path, sock = self.notify_socket()
        c = self.start(workers=1, env={"NOTIFY_SOCKET": path})
        c.wait_ready()
        first = sock.recv(4096).decode()
        self.assertIn("READY=1", first)
        self.assertIn(f"MAINPID={c.pid}", first)
        c.signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", sock.recv(4096).decode())
        self.assertEqual(c.wait_exit(), 0)

    def test_reloads_status_and_the_watchdog_reach_notify_socket(self):
        path, sock = self.notify_socket()
        c = self.start(workers=1, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        c.wait_ready()

        def until(predicate, what):
            for _ in range(200):  # bounded: watchdog pings arrive every 100 ms meanwhile
                message = sock.recv(4096).decode()
                if predicate(message):
                    return message
            self.fail(f"no {what} among 200 datagrams")
        until(lambda m: m == "WATCHDOG=1", "watchdog ping")
        c.signal(signal.SIGHUP)
        reloading = until(lambda m: "RELOADING=1" in m, "RELOADING=1")
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        self.assertIn("STATUS=reloading (generation 1)", reloading)
        ready = until(lambda m: "READY=1" in m, "READY=1 after the reload")
        self.assertIn("STATUS=serving on 127.0.0.1:", ready)
        self.assertIn("(generation 1)", ready)
