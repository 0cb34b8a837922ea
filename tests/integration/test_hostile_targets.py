"""Hostile record values and hostile targets.

Paths: a message PUTs every new row of items(id, mode) to the receiver at
base_url RECEIVER/api under "/{{mode}}/x/{{id}}". Values that are dot
segments (".", "..", and "%2e" / "%2E%2E" as text) reach the receiver as
data, percent-encoded; a value that would take the request out of /api,
even for a target that decodes %2E and %2F before it resolves dot
segments, is refused: the row is a dead letter saying so, and no request
leaves.

Answers: a raw HTTP server (it can answer what no real server would) gets
one request per message for a new customer: a 200 with a body over the
1 MiB answer cap is done; a 503 with such a body is retried; an answer
without an HTTP status line is retried; a 503 with Retry-After: 3600 is
retried after the connector's max_backoff_ms; a 400 whose body is not
UTF-8 is a dead letter whose error, like the log line, is valid UTF-8
with the bytes written \\xNN.

Records: on PREFIX.outbound.message of a `syncfleet broker`, a record of
kind "webservice", an insert with "record": null, and a record holding a
NUL character in a string are dead letters with their reason; none runs.
"""

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import unittest

import sftest
from sftest import kcat_consume, kcat_produce

PATHS_PIPELINE = """
version: 1
name: confine
kafka: { brokers: embedded, topic_prefix: co, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  items: { key: [id] }
  notes: { key: [id] }
connectors:
  api:
    type: http
    base_url: "%s/api"
    retry: { max_attempts: 3, initial_backoff_ms: 20, max_backoff_ms: 200 }
messages:
  item-paths:
    trigger: { table: items, events: [insert] }
    target: { connector: api, method: PUT, path: "/{{mode}}/x/{{id}}" }
    mapping: { id: "{{id}}" }
  note-paths:
    trigger: { table: notes, events: [insert] }
    target: { connector: api, method: PUT, path: "/lit/./{{id}}/../{{id}}" }
    mapping: { id: "{{id}}" }
"""

# (id, mode, the path the receiver gets; None: refused, a dead letter)
ROWS = [
    (".", "ok", "/api/ok/x/%2E"),
    ("..", "ok", "/api/ok/x/%2E%2E"),
    ("%2e", "ok", "/api/ok/x/%252e"),
    ("%2E%2E", "ok", "/api/ok/x/%252E%252E"),
    ("../..", "ok", "/api/ok/x/%2E%2E%2F%2E%2E"),
    ("...", "ok", "/api/ok/x/..."),
    ("a.b", "ok", "/api/ok/x/a.b"),
    ("a", "..", None),
    ("b", "%2E%2E", "/api/%252E%252E/x/b"),
    ("../../..", "ok", None),
]

ANSWERS_PIPELINE = """
version: 1
name: answers
kafka: { brokers: embedded, topic_prefix: an, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  raw:
    type: http
    base_url: "%s"
    retry: { max_attempts: 3, initial_backoff_ms: 20, max_backoff_ms: 200 }
messages:
%s
"""

MESSAGE = """  %(name)s:
    trigger: { table: customers, events: [insert] }
    target: { connector: raw, method: PUT, path: "/%(name)s/{{id}}" }
    mapping: { id: "{{id}}" }
"""


def answer(status, body=b"", headers=()):
    head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n" % (
        status, len(body))
    for h in headers:
        head += h + b"\r\n"
    return head + b"\r\n" + body


OK = answer(200, b'{"ok":true}')
BIG = b'{"pad":"' + b"x" * (1536 * 1024) + b'"}'
BAD_UTF8 = b'{"error":"\xff\xfe caf\xc3 \xed\xa0\x80"}'
# path prefix -> answers in turn (the last one repeats)
SCRIPT = {
    "/big-ok/": [answer(200, BIG)],
    "/big-5xx/": [answer(503, BIG), OK],
    "/garbage/": [b"HTTP/1.1 abc garbage\r\n\r\n", OK],
    "/bad-utf8/": [answer(400, BAD_UTF8)],
    "/slow/": [answer(503, b"{}", [b"Retry-After: 3600"]), OK],
}


class RawServer:
    """An HTTP server on loopback that answers each request with the next
    bytes of SCRIPT for its path and closes the connection; it records
    (method, path) in arrival order."""

    def __init__(self, script):
        self.script = {k: list(v) for k, v in script.items()}
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self.lock:
                self.requests.append((method, path))
                answers = next(v for k, v in self.script.items() if path.startswith(k))
                reply = answers.pop(0) if len(answers) > 1 else answers[0]
            try:
                conn.sendall(reply)
            except OSError:
                pass  # the client stopped reading at its cap

    def paths(self, prefix):
        with self.lock:
            return [p for _, p in self.requests if p.startswith(prefix)]

    def stop(self):
        self.stopping = True
        self.sock.close()


class HostileTest(sftest.TestCase):
    def setUp(self):
        self.syncfleet = sftest.env_path("SYNCFLEET")

    def run_pipeline(self, text, name, table_sql):
        config = self.tmp.write(name + ".yaml", text)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None, timeout=20)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(table_sql)
        self.addCleanup(db.close)
        run = self.start([self.syncfleet, "run", "-c", config], name,
                         env=dict(os.environ, SYNCFLEET_LOG="info"))
        run.wait_line(r"running pipeline %s" % name, timeout=30, stream="stderr")
        return config, db, run

    def dead_letters(self, config):
        res = subprocess.run([self.syncfleet, "dlq", "list", "--json", "-c", config],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        return [json.loads(line) for line in res.stdout.splitlines()]

    def test_dot_segments_in_values_do_not_move_requests(self):
        rcv = self.receiver()
        config, db, run = self.run_pipeline(PATHS_PIPELINE % rcv.url, "confine",
                                            "CREATE TABLE items (id TEXT PRIMARY KEY, mode TEXT); "
                                            "CREATE TABLE notes (id TEXT PRIMARY KEY)")
        for cid, mode, _ in ROWS:
            db.execute("INSERT INTO items VALUES (?, ?)", (cid, mode))
        # dot segments the pipeline itself wrote go out as written: libcurl
        # does not resolve them (and the path stays under /api)
        db.execute("INSERT INTO notes VALUES ('n1')")
        sent = [path for _, _, path in ROWS if path] + ["/api/lit/./n1/../n1"]
        refused = [(cid, mode) for cid, mode, path in ROWS if not path]
        rcv.wait_requests(len(sent), timeout=30)
        sftest.wait_for(lambda: len(self.dead_letters(config)) >= len(refused), timeout=30,
                        what="the refused rows in the DLQ")
        got = sorted((r["method"], r["path"]) for r in rcv.requests())
        self.assertEqual(got, sorted(("PUT", p) for p in sent))
        dead = self.dead_letters(config)
        self.assertEqual(sorted(json.loads(d["key"])["key"]["id"] for d in dead),
                         sorted(cid for cid, _ in refused))
        for d in dead:
            self.assertRegex(d["error"], r'^item-paths: path "/[^"]*" of "/\{\{mode\}\}/x/'
                             r'\{\{id\}\}" leaves the base path of connector api$', d)
        run.stop(timeout=20)

    def test_answers_over_the_cap_garbage_and_retry_after(self):
        raw = RawServer(SCRIPT)
        self.addCleanup(raw.stop)
        names = [p.strip("/") for p in SCRIPT]
        text = ANSWERS_PIPELINE % (raw.url, "".join(MESSAGE % {"name": n} for n in names))
        config, db, run = self.run_pipeline(text, "answers",
                                            "CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO customers VALUES (7)")
        want = {"/big-ok/": 1, "/big-5xx/": 2, "/garbage/": 2, "/slow/": 2, "/bad-utf8/": 1}
        sftest.wait_for(lambda: all(len(raw.paths(p)) >= n for p, n in want.items()),
                        timeout=30, what="the requests %s" % want)
        sftest.wait_for(lambda: self.dead_letters(config), timeout=30, what="a dead letter")
        run.stop(timeout=20)
        self.assertEqual({p: len(raw.paths(p)) for p in want}, want)

        dead = self.dead_letters(config)
        self.assertEqual([d["action"] for d in dead], ["bad-utf8"],
                         "only the 400 is a dead letter: %s" % [(d["action"], d["error"])
                                                                 for d in dead])
        self.assertRegex(dead[0]["error"], r'^bad-utf8: HTTP 400 from PUT http://127\.0\.0\.1:'
                         r'\d+/bad-utf8/7: \{"error":"\\xFF\\xFE caf\\xC3 \\xED\\xA0\\x80"\}$')
        with open(run.err_path, "rb") as f:
            log = f.read()
        log.decode("utf-8")  # raises on any byte that is not UTF-8
        self.assertIn(b'\\xFF\\xFE caf\\xC3', log)
        self.assertIn(b"HTTP 200, answer over 1048576 bytes, not read", log)


ACTION = "customer-to-webshop"


def outbound(cid, **fields):
    now = int(time.time() * 1000)
    value = {
        "kind": "message", "action": ACTION, "event": "insert", "table": "customers",
        "key": {"id": cid}, "root": {"table": "customers", "key": {"id": cid}},
        "record": {"id": cid, "name": "N", "email": "e@x.test", "version": 1},
        "before": None, "event_id": "hostile-%d" % cid,
        "source_ts_ms": now, "routed_ts_ms": now}
    value.update(fields)
    return json.dumps(value, separators=(",", ":"))


def outbound_key(cid):
    return '{"action":"%s","key":{"id":%d},"table":"customers"}' % (ACTION, cid)


class HostileRecordsTest(sftest.TestCase):
    def test_wrong_kind_null_record_and_nul_are_dead_letters(self):
        rcv = self.receiver()
        pipe = self.pipeline("hr%d" % os.getpid(), rcv, partitions=1)
        worker = pipe.worker()
        worker.wait_line(r"assigned 1 partition", timeout=30, stream="stderr")
        topic = pipe.topic("outbound.message")
        records = [
            (9101, outbound(9101, kind="webservice"),
             'a record of kind "webservice" on %s, which carries kind "message": not run'
             % topic),
            (9102, outbound(9102, record=None),
             "insert of customers without its image (record is null or missing)"),
            (9103, outbound(9103, record={"id": 9103, "name": "a\u0000b", "email": "e",
                                          "version": 1}),
             "value has a NUL character at byte "),
            (9104, outbound(9104), None),
        ]
        kcat_produce(pipe.bootstrap, topic, [(outbound_key(c), v) for c, v, _ in records],
                     partition=0)
        rcv.wait_requests(1, path="/customers/9104", timeout=30)
        dlq = kcat_consume(pipe.bootstrap, pipe.topic("dlq"), count=3, timeout=30)
        by_key = {r["key"]: r for r in dlq}
        for cid, value, reason in records:
            with self.subTest(id=cid):
                if reason is None:
                    self.assertNotIn(outbound_key(cid), by_key)
                    continue
                rec = by_key[outbound_key(cid)]
                self.assertEqual(rec["value"], value, "the record is dead-lettered unchanged")
                self.assertIn(reason, rec["headers"]["syncfleet-error"])
                self.assertEqual(rec["headers"]["syncfleet-stage"], "message")
        self.assertEqual([r["path"] for r in rcv.requests()], ["/customers/9104"],
                         "none of the refused records ran")
        sftest.stop_cleanly(self, [worker])


if __name__ == "__main__":
    unittest.main()
