"""Log files (issue 9): log_dir gives each role its file, log_format=json one JSON object a line,
and SIGUSR1 to the master reopens every process's file, as logrotate's postrotate does."""

import json
import os
import signal
import tempfile
import unittest

from cluster import ClusterTest, wait_for


def lines(path):
    try:
        with open(path) as f:
            return [line for line in f.read().split("\n")[:-1] if line]
    except FileNotFoundError:
        return []


class Logs(ClusterTest):
    def test_json_log_files_per_role_reopened_on_sigusr1(self):
        d = tempfile.mkdtemp(prefix="clutch-logs-")
        c = self.start(workers=2, args=("-s", f"log_dir={d}", "-s", "log_format=json"))
        ready = c.wait_ready()
        files = {role: os.path.join(d, f"probe.{role}.log") for role in ("master", "agent", "worker")}
        wait_for(lambda: all(lines(p) for p in (files["master"],)), 10, "the master's log file")
        for line in lines(files["master"]):
            entry = json.loads(line)
            self.assertEqual(set(entry), {"time", "proc", "pid", "level", "msg"})
            self.assertEqual(entry["pid"], ready["master"])
        self.assertNotIn("starting probe", c.stderr(), "with log_dir, nothing goes to stderr")
        # logrotate moves the files, then signals the master.
        for role, path in files.items():
            os.rename(path, path + ".1")
        c.signal(signal.SIGUSR1)
        for role in ("master", "agent", "worker"):
            wait_for(lambda: any(json.loads(l)["msg"] == "log file reopened" for l in lines(files[role])), 10,
                     f"the {role} to reopen its file")
        reopened = {json.loads(l)["pid"] for l in lines(files["worker"]) if json.loads(l)["msg"] == "log file reopened"}
        wait_for(lambda: {json.loads(l)["pid"] for l in lines(files["worker"])} >= set(ready["workers"]), 10,
                 "both workers in the new file")
        self.assertLessEqual(reopened, set(ready["workers"]))
        c.signal(signal.SIGTERM)
        self.assertEqual(c.wait_exit(), 0)
        self.assertTrue(any("stopped (exit code 0)" in json.loads(l)["msg"] for l in lines(files["master"])))
        self.assertFalse(any("stopped" in json.loads(l)["msg"] for l in lines(files["master"] + ".1")))

    def test_a_log_dir_that_cannot_be_written_stops_the_start_with_exit_2(self):
        # A directory that cannot exist: its parent is a file.
        parent = tempfile.NamedTemporaryFile(prefix="clutch-notadir-", delete=False).name
        self.addCleanup(os.remove, parent)
        c = self.start(workers=1, args=("-s", f"log_dir={parent}/logs"))
        self.assertEqual(c.wait_exit(), 2)
        self.assertIn(f"log_dir: cannot open {parent}/logs/probe.master.log", c.stderr())


if __name__ == "__main__":
    unittest.main()
