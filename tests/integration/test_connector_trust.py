"""A connector that cannot get a token or trust its target is down, not hot.

An http connector whose OAuth2 token endpoint answers 401 invalid_client,
and one whose HTTPS target shows a certificate the connector's ca_file does
not vouch for, each for about 10 s before it mends (the endpoint hands out
a token; the target's certificate is replaced by one the CA signed). While
it fails, its circuit opens and one probe at a time goes out, after
initial_backoff_ms (50) doubling up to max_backoff_ms (2000).

Asserted, on what came out: the token requests the receiver got (and the
TLS handshakes the target saw) while failing are no more than the circuit's
schedule allows in that span (OPEN_AFTER failures before it opens, then
one probe per backoff step; a request per record and try would be
hundreds); nothing is dead-lettered; every record arrives once the
connector mends; the log names the reason (the token endpoint's status and
body, the TLS error) in one line, logged once when the circuit opened,
not once per try."""

import json
import os
import re
import sqlite3
import ssl
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sftest
from test_tls import openssl

OPEN_AFTER = 5          # SF_SCHED_OPEN_AFTER
INITIAL_MS, MAX_MS = 50, 2000
FAIL_S = 10.0
IDS = range(1, 21)

PIPELINE = """
version: 1
name: trust
kafka: { brokers: embedded, topic_prefix: trust, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  api:
    type: http
    base_url: ${API_URL}/api
    max_in_flight: 1
    retry: { max_attempts: 3, initial_backoff_ms: %d, max_backoff_ms: %d }
%s
messages:
  to-api:
    trigger: { table: customers, events: [insert] }
    target: { connector: api, method: POST, path: "/x/{{id}}" }
    mapping: { id: "{{id}}" }
""" % (INITIAL_MS, MAX_MS, "%s")

OAUTH = """    auth: { type: oauth2, token_url: "${API_URL}/token", client_id: app,
            client_secret: "${CLIENT_SECRET}" }"""
CA_FILE = "    ca_file: ./ca.pem"


def allowed_tries(span_ms):
    """The most requests the circuit lets out in SPAN_MS of failing: the
    OPEN_AFTER failures that open it, then a probe after each backoff step
    (each counted from the previous probe's failure, so no sooner)."""
    n, at, wait = OPEN_AFTER, 0, INITIAL_MS
    while at + wait <= span_ms:
        at += wait
        n += 1
        wait = min(wait * 2, MAX_MS)
    return n


def loud_lines(log, word):
    """Lines at warn or error that contain WORD."""
    return [line for line in log.splitlines()
            if re.match(r"^\S+ (warn|error) ", line) and word in line]


class TrustTest(sftest.TestCase):

    def start_run(self, connector_extra, api_url):
        self.config = self.tmp.write("pipeline.yaml", PIPELINE % connector_extra)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        self.env = dict(os.environ, API_URL=api_url, CLIENT_SECRET="trust-secret")
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", self.config], "run",
                         env=self.env)
        run.wait_line(r"running pipeline trust", timeout=30, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_customers_%'").fetchone()[0] >= 1,
            timeout=10, what="capture triggers installed")
        for i in IDS:
            db.execute("INSERT INTO customers (id, name) VALUES (?, 'n')", (i,))
        db.close()
        return run

    def assert_nothing_dead(self, run):
        res = subprocess.run([sftest.env_path("SYNCFLEET"), "dlq", "list", "--json",
                              "-c", self.config], capture_output=True, text=True,
                             env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual([], res.stdout.splitlines(), "nothing went to the DLQ")
        self.assertNotRegex(run.stderr(), r" to the DLQ: ")

    def test_token_endpoint_refusing(self):
        rcv = self.receiver([
            {"path": "/token", "status": 401, "body": '{"error":"invalid_client"}'},
            {"path": "/api/*"},
        ])
        run = self.start_run(OAUTH, rcv.url)
        first = rcv.wait_requests(1, "/token", timeout=30)[0]
        # the endpoint refuses for FAIL_S from its first token request
        time.sleep(max(0.0, first["ts_ms"] / 1000.0 + FAIL_S - time.time()))
        rcv.set_rules([
            {"path": "/token", "body": '{"access_token":"t-1","expires_in":3600}'},
            {"path": "/api/*"},
        ])
        sftest.wait_for(lambda: {r["path"] for r in rcv.requests("/api/*")
                                 if r["status"] == 200} >= {"/api/x/%d" % i for i in IDS},
                        timeout=60, what="every record at the target")
        run.stop(timeout=20)

        refused = [r for r in rcv.requests("/token") if r["status"] == 401]
        span = refused[-1]["ts_ms"] - refused[0]["ts_ms"]
        self.assertGreaterEqual(span, 1000, "the endpoint refused for a while")
        self.assertLessEqual(len(refused), allowed_tries(span),
                             "token requests in %d ms of refusal" % span)
        self.assert_nothing_dead(run)
        log = run.stderr()
        lines = loud_lines(log, "/token")
        self.assertEqual(1, len(lines), "one line for the refusing endpoint:\n" +
                         "\n".join(lines[:10]))
        self.assertRegex(lines[0], r" error +message: connector api cannot work as "
                         r"configured: oauth2 token from POST %s/token: HTTP 401: "
                         r"\{\"error\":\"invalid_client\"\}; fix the connector's "
                         r"configuration" % re.escape(rcv.url))
        self.assertNotIn("trust-secret", log)
        self.assertRegex(log, r"connector api is up again")

    def test_target_certificate_not_trusted(self):
        d = self.tmp.path
        # ca.pem is the connector's; the target first shows a certificate
        # of another CA, then one of ca.pem
        for ca in ("ca", "other"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=syncfleet %s" % ca, "-keyout", ca + ".key",
                    "-out", ca + ".pem", cwd=d)
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", "server.key", "-out", "server.csr", cwd=d)
        for ca in ("ca", "other"):
            openssl("x509", "-req", "-in", "server.csr", "-CA", ca + ".pem", "-CAkey",
                    ca + ".key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                    "-out", "server-%s.pem" % ca, cwd=d)
        target = Target(os.path.join(d, "server-other.pem"), os.path.join(d, "server.key"))
        self.addCleanup(target.stop)
        run = self.start_run(CA_FILE, target.url)
        sftest.wait_for(lambda: target.handshakes, timeout=30, what="a TLS handshake")
        first = target.handshakes[0]
        time.sleep(max(0.0, first + FAIL_S - time.time()))
        target.use_cert(os.path.join(d, "server-ca.pem"), os.path.join(d, "server.key"))
        sftest.wait_for(lambda: {p for p in target.paths} >= {"/api/x/%d" % i for i in IDS},
                        timeout=60, what="every record at the target")
        run.stop(timeout=20)

        failed = target.failed_handshakes()
        span = (failed[-1] - failed[0]) * 1000
        self.assertGreaterEqual(span, 1000, "verification failed for a while")
        self.assertLessEqual(len(failed), allowed_tries(span),
                             "handshakes in %d ms of failed verification" % span)
        self.assertEqual(len(target.paths), len(set(target.paths)),
                         "each record once")
        self.assert_nothing_dead(run)
        lines = loud_lines(run.stderr(), "certificate")
        self.assertEqual(1, len(lines), "one line for the untrusted target:\n" +
                         "\n".join(lines[:10]))
        self.assertRegex(lines[0], r" error +message: connector api cannot work as "
                         r"configured: POST %s/api/x/\d+: SSL peer certificate or SSH "
                         r"remote key was not OK \(SSL certificate problem: unable to "
                         r"get local issuer certificate\); fix the connector's "
                         r"configuration" % re.escape(target.url))


class Target:
    """An HTTPS server on loopback answering 200, counting handshakes (the
    time of each, and whether it failed) and the paths it was sent."""

    def __init__(self, cert, key):
        self.paths = []
        self.handshakes = []
        self.failed = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.paths.append(self.path)
                answer = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def get_request(self):
                # the listening socket is wrapped: accept() shakes hands
                at = time.time()
                outer.handshakes.append(at)
                try:
                    return super().get_request()
                except OSError:
                    outer.failed.append(at)
                    raise

        self.server = Server(("127.0.0.1", 0), Handler)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.server.socket = self.ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def use_cert(self, cert, key):
        """Handshakes from now on show CERT."""
        self.ctx.load_cert_chain(cert, key)

    def failed_handshakes(self):
        return list(self.failed)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


if __name__ == "__main__":
    unittest.main()
