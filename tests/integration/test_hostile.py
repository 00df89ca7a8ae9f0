"""A hostile client against a live cluster (issue 10, item 3): a corpus of raw requests, each with
the status nginx answers (or a better one, said where it differs), request smuggling, oversized and
injected headers, pipelining, timeouts for handlers that never answer and clients that never read,
and slowloris beside a client that must still be served."""

import socket
import statistics
import time
import unittest

from cluster import Cluster, alive, wait_for
from test_http import exchange, read_all, statuses

H = b"Host: x\r\n"

# (what, raw request, the status of each response in order). The connection is read until the
# server closes it or goes quiet.
CORPUS = [
    # Upgrades are declined by answering as plain HTTP; the connection goes on as HTTP/1.1.
    ("websocket upgrade, then a request", b"GET / HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
     [200, 200]),
    ("h2c upgrade, then a request", b"GET / HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", [200, 200]),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", [400]),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", [200]),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", [400]),
    ("absolute-form target routed by its path", b"GET http://example.com/orders/7 HTTP/1.1\r\n" + H + b"\r\n", [200]),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\n" + H + b"\r\n", [505]),
    ("HTTP/9.9 request line", b"GET / HTTP/9.9\r\n" + H + b"\r\n", [505]),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", [400]),
    ("space in a header name", b"GET / HTTP/1.1\r\n" + H + b"Bad Name: 1\r\n\r\n", [400]),
    ("space before the colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", [400]),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", [400]),
    ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", [400]),
    # Request smuggling.
    ("Content-Length with Transfer-Encoding", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", [400]),
    ("two different Content-Lengths", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", [400]),
    ("Transfer-Encoding not ending in chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", [400]),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", [400]),
    ("chunk size overflow", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"fffffffffffffffff\r\nabc\r\n", [400]),
    ("negative Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", [400]),
    ("Content-Length past the limit", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 999999\r\n\r\n", [413]),
    # Sizes and injection.
    ("1 MiB header", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n", [431]),
    ("10,000 headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: 1\r\n" % i for i in range(10000)) + b"\r\n", [431]),
    ("NUL in a header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", [400]),
    ("bare CR in a header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rInjected: 1\r\n\r\n", [400]),
    # Stricter than nginx (which takes a bare LF as a line end, as RFC 9112 2.2 allows): llhttp,
    # Node's parser, rejects it, which leaves no room for a proxy in front to read the lines
    # differently (a smuggling vector).
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n", [400]),
    ("NUL in the target", b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n", [400]),
    ("binary garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" * 20, [400]),
]


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(workers=2, env={"PROBE_HTTP": "1", "PROBE_HTTP_READ_TIMEOUT_MS": "1000",
                                        "PROBE_HTTP_HANDLER_TIMEOUT_MS": "500",
                                        "PROBE_HTTP_WRITE_TIMEOUT_MS": "1000"})
        cls.port = cls.c.wait_ready()["port"]

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_each_request_of_the_corpus_gets_its_status(self):
        wrong = []
        for what, raw, want in CORPUS:
            got = statuses(exchange(self.port, raw, timeout=3))
            if got != want:
                wrong.append(f"{what}: got {got}, want {want}")
        self.assertEqual(wrong, [])
        for pid in self.c.ready["workers"]:
            self.assertTrue(alive(pid), "a worker died on hostile input")

    def test_1000_pipelined_requests_are_answered_in_order(self):
        reqs = b"".join(b"GET /orders/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(1000))
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(reqs)
            data = b""
            while data.count(b"HTTP/1.1 200") < 1000:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(statuses(data), [200] * 1000)
        self.assertLess(data.index(b'"id":"998"'), data.index(b'"id":"999"'))

    def test_a_handler_that_never_answers_gets_503_and_the_connection_closes(self):
        data = exchange(self.port, b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5, read_until_close=True)
        self.assertEqual(statuses(data), [503])
        self.assertIn(b"Connection: close", data)
        wait_for(lambda: "the handler did not answer within 500 ms" in self.c.stderr(), 5, "the log line")

    def test_a_client_that_never_reads_its_response_is_disconnected(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 32 MiB that nobody reads
        time.sleep(2.5)  # the write timeout (1 s) passes while the client reads nothing
        s.settimeout(10)
        received = 0
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
        except ConnectionResetError:
            pass
        self.assertLess(received, 32 << 20, "the whole response was written to a client that did not read")

    def test_slowloris_beside_a_normal_client(self):
        slow = []
        self.addCleanup(lambda: [s.close() for s in slow])
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
            slow.append(s)
        latencies = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            for _ in range(200):
                t0 = time.monotonic()
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"hello world" not in data:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "the normal client was disconnected")
                    data += chunk
                latencies.append(time.monotonic() - t0)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(f"slowloris: 500 slow connections held; a normal client's p99 {p99 * 1000:.1f} ms over 200 requests")
        # Every slow connection is answered 408 once its read timeout (1 s) passes.
        answered = sum(1 for s in slow if statuses(read_all(s, 5)) == [408])
        self.assertEqual(answered, 500)


if __name__ == "__main__":
    unittest.main()
