"""No secret of the pipeline in anything syncfleet writes for people.

Targets that echo what they received (the receiver's "echo" rule answers
422 with the Authorization header, the query and the body) put a bearer
token, basic credentials, an OAuth2 client secret and the access token
fetched at run time, and a URL's userinfo password and query key into the
error of every record. Every secret comes from ${VAR}; the test greps for
each, in every form it takes on the wire (as is, percent-encoded, and the
base64 of user:password a basic Authorization header carries), in every log
line of `syncfleet run` at debug level, in every syncfleet-error header of
the DLQ and in everything `syncfleet validate` prints. The receiver's own
log proves the secrets did go out, and each DLQ error shows "***" where the
echo had one."""

import base64
import json
import os
import re
import secrets
import sqlite3
import subprocess
import unittest
import urllib.parse

import sftest

PIPELINE = """
version: 1
name: secrets
kafka:
  brokers: ${SF_BROKERS}
  topic_prefix: sec
  partitions: 1
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  bearer:
    type: http
    base_url: ${RCV_URL}/bearer
    auth: { type: bearer, token: "${TOKEN}" }
  basic:
    type: http
    base_url: ${RCV_URL}/basic
    auth: { type: basic, username: alice, password: "${BASIC_PW}" }
  oauth:
    type: http
    base_url: ${RCV_URL}/oauth
    auth: { type: oauth2, token_url: "${RCV_URL}/token", client_id: app,
            client_secret: "${CLIENT_SECRET}" }
  oauth-echo:
    type: http
    base_url: ${RCV_URL}/never
    auth: { type: oauth2, token_url: "${RCV_URL}/token-echo", client_id: app,
            client_secret: "${CLIENT_SECRET}" }
  userinfo:
    type: http
    base_url: ${USERINFO_URL}
    tls_verify: false
  failures: { type: file, dir: ./failures, format: jsonl }
messages:
  to-bearer:
    trigger: { table: customers, events: [insert] }
    target: { connector: bearer, method: POST, path: /x }
    mapping: { id: "{{id}}", name: "{{name}}" }
  to-basic:
    trigger: { table: customers, events: [insert] }
    target: { connector: basic, method: POST, path: /x }
    mapping: { id: "{{id}}" }
  to-oauth:
    trigger: { table: customers, events: [insert] }
    target: { connector: oauth, method: POST, path: /x }
    mapping: { id: "{{id}}" }
  to-oauth-echo:
    trigger: { table: customers, events: [insert] }
    target: { connector: oauth-echo, method: POST, path: /x }
    mapping: { id: "{{id}}" }
  to-userinfo:
    trigger: { table: customers, events: [insert] }
    target: { connector: userinfo, method: POST }
    mapping: { id: "{{id}}" }
web_service_actions:
  check-userinfo:
    trigger: { table: customers, events: [insert] }
    request: { connector: userinfo, method: POST }
    error:
      target: { connector: failures }
      mapping: { id: "{{id}}", message: "{{@error.message}}" }
"""

# to-oauth-echo never reaches the DLQ: a token endpoint that refuses is not
# the record's fault, and its requests wait (the log says why).
ACTIONS = ["to-bearer", "to-basic", "to-oauth", "to-userinfo"]


def _secret(prefix):
    # '/', '+' and '=' take another form percent-encoded and in JSON
    return "%s-%s/+=%s" % (prefix, secrets.token_hex(6), secrets.token_hex(4))


class SecretsTest(sftest.TestCase):
    def setUp(self):
        self.token = _secret("tok")
        self.basic_pw = _secret("bpw")
        self.client_secret = _secret("cs")
        self.access_token = "at-" + secrets.token_hex(12)
        self.url_pw = "upw" + secrets.token_hex(6)
        self.qkey = "qk" + secrets.token_hex(8)

    def forms(self):
        """Every form of every secret that must not be printed."""
        out = {}
        for name, v in (("token", self.token), ("basic password", self.basic_pw),
                        ("client secret", self.client_secret),
                        ("access token", self.access_token),
                        ("url password", self.url_pw), ("query key", self.qkey)):
            out[name] = v
            out[name + " (percent-encoded)"] = urllib.parse.quote(v, safe="-._~")
            out[name + " (JSON)"] = json.dumps(v)[1:-1]
        for name, user, pw in (("basic", "alice", self.basic_pw),
                               ("userinfo", "carol", self.url_pw)):
            out[name + " (base64)"] = base64.b64encode(
                ("%s:%s" % (user, pw)).encode()).decode()
        return out

    def assert_clean(self, text, where):
        for name, form in self.forms().items():
            at = text.find(form)
            if at >= 0:
                self.fail("%s in %s: ...%s..." % (name, where, text[max(0, at - 300):at + 100]))

    def assert_line(self, pattern, text):
        """One line of TEXT matches PATTERN (without printing all of TEXT)."""
        regex = re.compile(pattern)
        if not any(regex.search(line) for line in text.splitlines()):
            self.fail("no line matches %r; the first lines:\n%s" % (
                pattern, "\n".join(text.splitlines()[:40])))

    def test_no_secret_in_logs_dlq_or_validate(self):
        syncfleet = sftest.env_path("SYNCFLEET")
        rcv = self.receiver([
            {"path": "/token", "method": "POST",
             "body": json.dumps({"access_token": self.access_token,
                                 "expires_in": 3600})},
            {"path": "/token-echo", "status": 401, "echo": True},
            {"path": "/*", "status": 422, "echo": True},
        ])
        broker = self.broker(partitions=1, prefix="sec")
        pipeline = self.tmp.write("pipeline.yaml", PIPELINE)
        db = sqlite3.connect(self.tmp.join("erp.db"), isolation_level=None)
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        userinfo_url = "http://carol:%s@127.0.0.1:%d/ui?api_key=%s" % (
            self.url_pw, rcv.port, self.qkey)
        env = dict(os.environ, SF_BROKERS=broker.bootstrap, RCV_URL=rcv.url,
                   USERINFO_URL=userinfo_url, TOKEN=self.token,
                   BASIC_PW=self.basic_pw, CLIENT_SECRET=self.client_secret,
                   SYNCFLEET_LOG="debug")

        run = self.start([syncfleet, "run", "-c", pipeline], "run", env=env)
        run.wait_line(r"running pipeline secrets", timeout=20, stream="stderr")
        sftest.wait_for(
            lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE "
                               "name LIKE '_syncfleet_customers_%'").fetchone()[0] >= 1,
            timeout=10, what="capture triggers installed")
        db.execute("INSERT INTO customers (id, name) VALUES (7, 'Ada')")
        dlq = sftest.kcat_consume(broker.bootstrap, "sec.dlq", count=len(ACTIONS),
                                  timeout=60)
        run.wait_line(r"oauth2 token from POST .*/token-echo: HTTP 401: ",
                      timeout=30, stream="stderr")
        failures = self.tmp.join("failures", "check-userinfo.jsonl")
        sftest.wait_for(lambda: os.path.exists(failures), timeout=30,
                        what="the error mapping's file")
        run.stop(timeout=20)

        # The secrets did go out, each where it belongs.
        got = {r["path"]: r for r in rcv.requests()}
        self.assertEqual(got["/bearer/x"]["headers"]["authorization"],
                         "Bearer " + self.token)
        self.assertEqual(got["/basic/x"]["headers"]["authorization"],
                         "Basic " + self.forms()["basic (base64)"])
        self.assertEqual(got["/oauth/x"]["headers"]["authorization"],
                         "Bearer " + self.access_token)
        self.assertIn("client_secret=" + self.forms()["client secret (percent-encoded)"],
                      got["/token-echo"]["body"])
        self.assertEqual(got["/ui"]["query"], "api_key=" + self.qkey)
        self.assertEqual(got["/ui"]["headers"]["authorization"],
                         "Basic " + self.forms()["userinfo (base64)"])

        # Each DLQ error quotes the echo, with "***" for what it held.
        errors = {}
        for rec in dlq:
            headers = rec["headers"]
            self.assert_clean(json.dumps(headers), "the DLQ headers")
            action = json.loads(rec["value"])["action"]
            errors[action] = headers["syncfleet-error"]
        self.assertEqual(sorted(errors), sorted(ACTIONS))
        self.assertIn('{"authorization":"Bearer ***"', errors["to-bearer"])
        self.assertIn('{"authorization":"Basic ***"', errors["to-basic"])
        self.assertIn('{"authorization":"Bearer ***"', errors["to-oauth"])
        self.assertIn("http://carol:***@127.0.0.1:%d/ui?api_key=***" % rcv.port,
                      errors["to-userinfo"])
        self.assertIn('"query":"api_key=***"', errors["to-userinfo"])

        # What the error step wrote: @error.message is redacted too.
        with open(failures) as f:
            written = f.read()
        self.assert_clean(written, "the error mapping's file")
        self.assertEqual(len(written.splitlines()), 1, written)
        self.assertIn("HTTP 422 from POST http://carol:***@127.0.0.1:%d/ui?api_key=***: "
                      '{"authorization":"Basic ***"' % rcv.port,
                      json.loads(written)["message"])

        # Every log line, at debug level.
        log = run.stderr()
        self.assertIn("HTTP 422 from POST", log)
        self.assert_line(r"debug http: connector oauth-echo: oauth2 token "
                         r"from POST .*/token-echo: HTTP 401: .*client_secret=\*\*\*", log)
        self.assertIn("***", log)
        self.assert_clean(log, "the log of syncfleet run")
        # tls_verify: false is loud at start.
        self.assert_line(r"warn  config: .*pipeline\.yaml:33:17: warning: "
                         r"connectors\.userinfo\.tls_verify is false", log)

        # validate: the summary and a dry run, which print URLs and bodies.
        event = self.tmp.write("event.json", json.dumps(
            {"op": "c", "table": "customers",
             "after": {"id": 7, "name": self.token + " " + self.client_secret}}))
        for argv in ([], ["--event", event]):
            p = subprocess.run([syncfleet, "validate", "-c", pipeline] + argv,
                               env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assert_clean(p.stdout + p.stderr, "validate %s" % argv)
            self.assertIn("http://carol:***@127.0.0.1:%d/ui?api_key=***" % rcv.port,
                          p.stdout)
            self.assertIn("pipeline.yaml:33:17: warning: connectors.userinfo."
                          "tls_verify is false", p.stderr)
        self.assertIn('"name": "*** ***"', p.stdout)


if __name__ == "__main__":
    unittest.main()
