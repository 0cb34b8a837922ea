#!/usr/bin/env python3
"""What a refusing OAuth2 token endpoint costs (standard library only).

Starts sf-receiver as both the token endpoint and the target, and
`syncfleet run` (embedded broker, SQLite source, one message POST /x/<id>
through an oauth2 http connector with retry 5 / 50 ms / 2000 ms). It
commits --records changes while the token endpoint answers 401
invalid_client, waits --refuse-s seconds, then lets the endpoint hand out a
token and waits until every record arrived. For each of --runs runs it
prints, and then min/median/max over the runs:

  - token requests the receiver got while it refused (from its first
    token request on), and per second;
  - log lines `syncfleet run` wrote meanwhile, and per second (all of
    them, and those naming the token endpoint);
  - records dead-lettered (`syncfleet dlq list`) and records delivered.

It asserts nothing; the exit status is non-zero only when no figures could
be taken.

    bench/bench_auth_outage.py                    # 3 runs of 10 s
    bench/bench_auth_outage.py --runs 1 --refuse-s 30
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

PIPELINE = """\
version: 1
name: authbench
kafka: { brokers: embedded, topic_prefix: ab, partitions: 2 }
source: { type: sqlite, path: ./erp.db, poll_interval_ms: 20 }
tables:
  customers: { key: [id] }
connectors:
  api:
    type: http
    base_url: %(url)s/api
    retry: { max_attempts: 5, initial_backoff_ms: 50, max_backoff_ms: 2000 }
    auth: { type: oauth2, token_url: "%(url)s/token", client_id: app,
            client_secret: "${BENCH_SECRET}" }
messages:
  to-api:
    trigger: { table: customers, events: [insert] }
    target: { connector: api, method: POST, path: "/x/{{id}}" }
    mapping: { id: "{{id}}" }
"""

REFUSE = [{"path": "/token", "status": 401,
           "body": '{"error":"invalid_client"}'}]
GRANT = [{"path": "/token",
          "body": '{"access_token":"bench-token","expires_in":3600}'}]


def build_path(*parts):
    root = os.environ.get("SF_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build")
    return os.path.join(root, *parts)


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def requests_of(log, path):
    out = []
    for line in read_lines(log):
        try:
            r = json.loads(line)
        except ValueError:
            break
        if r["path"] == path or (path.endswith("*") and r["path"].startswith(path[:-1])):
            out.append(r)
    return out


def set_rules(url, rules):
    req = urllib.request.Request(url + "/__rules", data=json.dumps(rules).encode(),
                                 method="PUT")
    urllib.request.urlopen(req, timeout=10).read()


def one_run(args, d):
    rcv_log = os.path.join(d, "receiver.jsonl")
    port_file = os.path.join(d, "receiver.port")
    rules = os.path.join(d, "rules.json")
    with open(rules, "w") as f:
        json.dump(REFUSE, f)
    rcv = subprocess.Popen([args.receiver, "--log", rcv_log, "--port", "0",
                            "--port-file", port_file, "--rules", rules],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = None
    try:
        port = wait_for(lambda: open(port_file).read().strip()
                        if os.path.exists(port_file) else None, 10, "the receiver")
        url = "http://127.0.0.1:%s" % port
        with open(os.path.join(d, "pipeline.yaml"), "w") as f:
            f.write(PIPELINE % {"url": url})
        db = sqlite3.connect(os.path.join(d, "erp.db"), isolation_level=None)
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        err_path = os.path.join(d, "run.stderr")
        with open(err_path, "w") as err:
            run = subprocess.Popen([args.syncfleet, "run", "-c", "pipeline.yaml"],
                                   cwd=d, stdout=subprocess.DEVNULL, stderr=err,
                                   env=dict(os.environ, BENCH_SECRET="bench-secret"))
        wait_for(lambda: any("running pipeline" in l for l in read_lines(err_path)),
                 30, "syncfleet run")
        wait_for(lambda: db.execute("SELECT count(*) FROM sqlite_master WHERE name "
                                    "LIKE '_syncfleet_customers_%'").fetchone()[0],
                 20, "capture triggers")
        lines0 = len(read_lines(err_path))
        for i in range(1, args.records + 1):
            db.execute("INSERT INTO customers (id, name) VALUES (?, 'n')", (i,))
        wait_for(lambda: requests_of(rcv_log, "/token"), 30, "the first token request")
        t0 = time.time()
        time.sleep(args.refuse_s)
        tokens = len(requests_of(rcv_log, "/token"))
        log = read_lines(err_path)[lines0:]
        span = time.time() - t0
        set_rules(url, GRANT)
        t1 = time.time()
        wait_for(lambda: len({r["path"] for r in requests_of(rcv_log, "/api/x/*")
                              if r["status"] == 200}) >= args.records,
                 120, "every record at the target")
        recovered = time.time() - t1
        run.terminate()
        run.wait(20)
        run = None
        dlq = subprocess.run([args.syncfleet, "dlq", "list", "--json", "-c",
                              "pipeline.yaml"], cwd=d, capture_output=True, text=True,
                             env=dict(os.environ, BENCH_SECRET="bench-secret"))
        return {
            "token_requests": tokens,
            "token_per_s": tokens / span,
            "log_lines": len(log),
            "log_per_s": len(log) / span,
            "token_lines": sum(1 for l in log if "/token" in l),
            "dead": len(dlq.stdout.splitlines()),
            "recovered_s": recovered,
        }
    finally:
        if run:
            run.kill()
            run.wait()
        rcv.terminate()
        rcv.wait(10)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--records", type=int, default=20)
    p.add_argument("--refuse-s", type=float, default=10.0)
    p.add_argument("--syncfleet", default=build_path("cli", "syncfleet"))
    p.add_argument("--receiver", default=build_path("tests", "tools", "sf-receiver"))
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    results = []
    for n in range(args.runs):
        d = tempfile.mkdtemp(prefix="sf-authbench-")
        try:
            r = one_run(args, d)
        finally:
            if args.keep:
                print("kept", d)
            else:
                shutil.rmtree(d, ignore_errors=True)
        results.append(r)
        print("run %d: %s" % (n + 1, json.dumps(
            {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})))
    if not results:
        return 1
    print("%-16s %10s %10s %10s" % ("figure", "min", "median", "max"))
    for k in results[0]:
        vals = [r[k] for r in results]
        print("%-16s %10.1f %10.1f %10.1f" % (k, min(vals), statistics.median(vals),
                                              max(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
