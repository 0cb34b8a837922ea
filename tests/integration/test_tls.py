"""ca_file: an HTTPS target and its OAuth2 token URL signed by a private CA
(made by the test with openssl) are verified against the connector's
ca_file, for the token request and the call alike; the same target without
ca_file fails verification against the system's CAs (libcurl's reason in
the log, once its circuit opened), and it never sees the request. The
target is a small Python HTTPS server: it records what it was sent."""

import os
import sqlite3
import ssl
import subprocess
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sftest

PIPELINE = """
version: 1
name: tls
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: tls
  partitions: 1
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  verified:
    type: http
    base_url: ${TLS_URL}/v
    ca_file: ./ca.pem
    auth: { type: oauth2, token_url: "${TLS_URL}/token", client_id: app,
            client_secret: "${CLIENT_SECRET}" }
  unverified:
    type: http
    base_url: ${TLS_URL}/u
messages:
  to-verified:
    trigger: { table: customers, events: [insert] }
    target: { connector: verified, method: POST, path: /x }
    mapping: { id: "{{id}}" }
  to-unverified:
    trigger: { table: customers, events: [insert] }
    target: { connector: unverified, method: POST, path: /x }
    mapping: { id: "{{id}}" }
"""


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca_and_server_cert(d):
    """ca.pem (a CA), server.pem and server.key (127.0.0.1, signed by it)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=syncfleet test CA", "-keyout", "ca.key", "-out", "ca.pem",
            cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=d)


class TlsTarget:
    """An HTTPS server on loopback answering 200; /token gives a token."""

    def __init__(self, cert, key):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode()
                outer.requests.append((self.path, dict(self.headers), body))
                answer = b'{"ok":true}'
                if self.path == "/token":
                    answer = b'{"access_token":"tls-token-1","expires_in":3600}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class TlsTest(sftest.TestCase):
    def test_ca_file_verifies_target_and_token_url(self):
        d = self.tmp.path
        make_ca_and_server_cert(d)
        target = TlsTarget(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        self.addCleanup(target.stop)
        broker = self.broker(partitions=1, prefix="tls")
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        env = dict(os.environ, SF_BROKERS=broker.bootstrap, TLS_URL=target.url,
                   CLIENT_SECRET="tls-client-secret")
        run = self.start([sftest.env_path("SYNCFLEET"), "run", "-c", pipeline], "run",
                         env=env)
        run.wait_line(r"running pipeline tls", timeout=20, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_customers_%'").fetchone()[0] >= 1,
            timeout=10, what="capture triggers installed")
        db.execute("INSERT INTO customers (id, name) VALUES (1, 'Ada')")
        run.wait_line(r"connector unverified cannot work as configured: POST %s/u/x: "
                      r"SSL peer certificate or SSH remote key was not OK \(SSL "
                      r"certificate problem: unable to get local issuer certificate\); "
                      r"fix the connector's configuration"
                      % target.url, timeout=30, stream="stderr")
        sftest.wait_for(lambda: any(p == "/v/x" for p, _, _ in target.requests),
                        timeout=30, what="the verified call")
        run.stop(timeout=20)

        paths = sorted(p for p, _, _ in target.requests)
        self.assertEqual(paths, ["/token", "/v/x"])
        headers = dict((p, h) for p, h, _ in target.requests)
        self.assertEqual(headers["/v/x"]["Authorization"], "Bearer tls-token-1")
        self.assertIn("client_secret=tls-client-secret", dict(
            (p, b) for p, _, b in target.requests)["/token"])


if __name__ == "__main__":
    unittest.main()
