"""The coroutine forms and lifetimes (issue 12), run under ASan in the dev build: co_await a
request, an acknowledged send_random, a sleep, a request whose replier dies; a queue handler that
is a coroutine; a middleware that calls next() from a timer."""

import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

from cluster import BUILD_DIR, ClusterTest, wait_for

CLUTCHCTL = os.path.join(BUILD_DIR, "clutchctl")


class Coroutines(ClusterTest):
    def test_request_ack_sleep_and_a_dead_replier(self):
        c = self.start(workers=2, env={"PROBE_CORO": "1"})
        c.wait_ready()
        wait_for(lambda: c.events("coro-dead-replier"), 30, "the coroutine to reach its end")
        (reply,) = c.events("coro-reply")
        self.assertEqual((reply["ok"], reply["data"]), (True, "hi"))
        (ack,) = c.events("coro-ack")
        self.assertTrue(ack["ok"])
        (slept,) = c.events("coro-slept")
        self.assertGreaterEqual(slept["ms"], 30)
        (dead,) = c.events("coro-dead-replier")
        self.assertFalse(dead["ok"])
        self.assertNotEqual(dead["error"], "")
        # What escaped the Task is an uncaught exception: logged, the agent goes on.
        wait_for(lambda: "the coroutine's end throws" in c.stderr(), 10, "the exception logged")
        self.assertIn("clutch::Task", c.stderr())
        self.assertNotIn("AddressSanitizer", c.stderr())

    def test_a_coroutine_queue_handler_acknowledges_when_it_ends(self):
        d = tempfile.mkdtemp(prefix="clutch-coro-")
        self.addCleanup(shutil.rmtree, d, True)
        url = f"sqlite:{d}/q.db"
        c = self.start(workers=2, env={"PROBE_QUEUE": url, "PROBE_ASYNC_MQ": "1"})
        c.wait_ready()
        subprocess.run([CLUTCHCTL, "publish", url, "m", "--count", "200"], check=True, capture_output=True)
        subprocess.run([CLUTCHCTL, "publish", url, "poison"], check=True, capture_output=True)
        wait_for(lambda: len(c.events("mq")) >= 200 and len(c.events("mq-poison")) == 3, 60, "all handled")
        bodies = sorted(e["body"] for e in c.events("mq"))
        self.assertEqual(bodies, sorted(f"m-{i}" for i in range(1, 201)))  # each once
        # The third failure's ack reaches the agent after the handler's event: wait for its log.
        wait_for(lambda: "dead-lettered: probe: poison message" in c.stderr(), 20, "the dead letter")

    def test_a_middleware_may_call_next_later(self):
        c = self.start(workers=1, env={"PROBE_HTTP": "1"})
        ready = c.wait_ready()
        for _ in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{ready['port']}/late-mw", timeout=10) as r:
                self.assertEqual(r.read(), b"late ok")
                self.assertEqual(r.headers["X-Probe"], "1")
        self.assertNotIn("AddressSanitizer", c.stderr())


if __name__ == "__main__":
    unittest.main()
