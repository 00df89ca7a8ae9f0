"""The live dashboard (issue 9), in a real browser: headless Chromium loads the page from the
metrics listener, its script fills in every process; after a worker is killed and replaced, the
page shows the restart. A screenshot is kept as a test artifact."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request
import json
import pwd
import urllib.error

from cluster import BUILD_DIR, ClusterTest, wait_for

ARTIFACTS = os.path.join(BUILD_DIR, "test-artifacts")


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Dashboard(ClusterTest):
    def browse(self, url, profile, screenshot=None, budget_ms=4000):
        """The page's DOM once its script ran (Chromium's virtual time lets the polls happen)."""
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}", "--window-size=1400,1000"]
        if screenshot:
            args.append(f"--screenshot={screenshot}")
        else:
            args.append("--dump-dom")
        out = subprocess.run(args + [url], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return out.stdout

    def test_the_page_shows_every_process_and_a_restart_after_a_worker_is_killed(self):
        if chromium() is None:
            self.fail("chromium is not installed (scripts/deps installs it)")
        logs = tempfile.mkdtemp(prefix="clutch-dash-")
        profile = tempfile.mkdtemp(prefix="clutch-chromium-")
        self.addCleanup(shutil.rmtree, logs, True)
        self.addCleanup(shutil.rmtree, profile, True)
        c = self.start(workers=2, args=("-s", "metrics_listen=127.0.0.1:0", "-s", f"log_dir={logs}"),
                       env={"PROBE_JOBS": "manual"})
        ready = c.wait_ready()
        address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)
        url = f"http://{address}/"

        # The page is self-contained: no script or style from anywhere else.
        with urllib.request.urlopen(url, timeout=10) as r:
            page = r.read().decode()
        self.assertNotRegex(page, r'src="http|href="http')

        dom = self.browse(url, profile)
        for pid in ready["workers"]:
            self.assertRegex(dom, rf'data-slot="\d+" data-role="worker">.*?<td class="n">{pid}</td>')
        self.assertIn('<span id="state" class="ready">ready</span>', dom)
        self.assertIn("<td>manual</td>", dom)  # schedules, from the agent
        self.assertIn("probe master", dom)     # the log's last lines

        victim = ready["workers"][0]
        slot = 0
        os.kill(victim, signal.SIGKILL)

        def replaced():
            status = json.load(urllib.request.urlopen(f"http://{address}/api/status", timeout=10))
            row = [p for p in status["processes"] if p["role"] == "worker" and p["slot"] == slot][0]
            return row["pid"] not in (0, victim) and row["state"] == "ready" and status["state"] == "ready"
        wait_for(replaced, 30, "the killed worker replaced")

        dom = self.browse(url, profile)
        row = re.search(rf'<tr class="" data-slot="{slot}" data-role="worker">(.*?)</tr>', dom)
        self.assertIsNotNone(row, dom[-3000:])
        self.assertIn('<td class="n restarts">1</td>', row.group(1))
        self.assertNotIn(f">{victim}<", row.group(1))
        self.assertIn("killed by signal 9", row.group(1))
        # The log panel marks the warning the kill caused.
        self.assertRegex(dom, r'<span class="warn">[^<]*killed by signal 9[^<]*</span>')

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        self.browse(url, profile, screenshot=shot)
        self.assertGreater(os.path.getsize(shot), 10000)


    def test_a_first_look_after_nobody_watched_marks_the_agents_figures_as_old(self):
        if chromium() is None:
            self.fail("chromium is not installed (scripts/deps installs it)")
        profile = tempfile.mkdtemp(prefix="clutch-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        c = self.start(workers=1, args=("-s", "metrics_listen=127.0.0.1:0"), env={"PROBE_JOBS": "manual"})
        c.wait_ready()
        address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)

        def status():
            return json.load(urllib.request.urlopen(f"http://{address}/api/status", timeout=10))
        self.assertEqual(status()["agent_view_age_ms"], -1, "never asked before")
        wait_for(lambda: status()["jobs"] and 0 <= status()["agent_view_age_ms"] < 3000, 20,
                 "the agent's answer")
        time.sleep(3.5)  # nobody watches: the master asks the agent nothing, its view ages
        # One poll only (the first paint): what the agent said 3.5 s ago is marked, not shown as now.
        dom = self.browse(f"http://{address}/", profile, budget_ms=300)
        self.assertRegex(dom, r"asking the agent…\s*\(its last answer is [\d.]+s old\)")
        self.assertNotIn("<td>manual</td>", dom)
        # Watching again refreshes it.
        dom = self.browse(f"http://{address}/", profile)
        self.assertIn("<td>manual</td>", dom)


def post(address, path, header=True, extra=None):
    headers = {"X-Clutch-Action": "1"} if header else {}
    headers.update(extra or {})
    req = urllib.request.Request(f"http://{address}{path}", method="POST", data=b"", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

class DashboardControls(ClusterTest):
    def test_read_only_by_default(self):
        c = self.start(workers=1, args=("-s", "metrics_listen=127.0.0.1:0"))
        c.wait_ready()
        address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)
        status, answer = post(address, "/api/scale?delta=1")
        self.assertEqual(status, 403)
        self.assertIn("read-only", answer["error"])
        self.assertFalse(json.load(urllib.request.urlopen(f"http://{address}/api/status", timeout=10))["controls"])

    def test_with_controls_the_masters_user_may_scale_and_others_may_not(self):
        c = self.start(workers=1, args=("-s", "metrics_listen=127.0.0.1:0", "-s", "dashboard_controls=true"))
        c.wait_ready()
        address = re.search(r", metrics ([^,\s]+)", c.stdout_lines[0]).group(1)
        self.assertEqual(post(address, "/api/scale?delta=1", header=False)[0], 403)  # a cross-site form
        # Issue 22.4: a page on another site whose name resolves to 127.0.0.1 (DNS rebinding) is
        # same-origin to the browser, so its script may add the header; its Host and Origin name it.
        port = address.rsplit(":", 1)[1]
        status, answer = post(address, "/api/scale?delta=1",
                              extra={"Host": "evil.example", "Origin": "http://evil.example"})
        self.assertEqual(status, 403, answer)
        self.assertIn("Host 'evil.example' is not this dashboard's address", answer["error"])
        status, answer = post(address, "/api/scale?delta=1", extra={"Origin": "http://evil.example"})
        self.assertEqual(status, 403, answer)
        self.assertIn("a page from http://evil.example may not drive", answer["error"])
        # The dashboard's own names pass: its address, and localhost for a loopback listener.
        status, answer = post(address, "/api/scale?delta=0", extra={
            "Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
        self.assertNotEqual(status, 403, answer)
        if os.geteuid() == 0:
            # Another local user (nobody) is refused by the uid rule.
            nobody = pwd.getpwnam("nobody")
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                  "-H", "X-Clutch-Action: 1", f"http://{address}/api/scale?delta=1"],
                                 capture_output=True, text=True, timeout=30,
                                 preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
            self.assertEqual(out.stdout.strip(), "403", out.stderr)
        status, answer = post(address, "/api/scale?delta=1")
        self.assertEqual(status, 202, answer)

        def workers():
            s = json.load(urllib.request.urlopen(f"http://{address}/api/status", timeout=10))
            return len([p for p in s["processes"] if p["role"] == "worker" and p["state"] == "ready"]), s["state"]
        wait_for(lambda: workers() == (2, "ready"), 30, "2 ready workers")
        status, answer = post(address, "/api/reload")
        self.assertEqual(status, 202, answer)
        wait_for(lambda: "reload 1 complete" in c.stderr(), 60, "the reload to finish")


if __name__ == "__main__":
    unittest.main()
