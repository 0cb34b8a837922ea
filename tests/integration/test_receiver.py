"""sf-receiver answers on cue and logs every request it got.

The other integration tests trust the receiver's log and rules; this test
holds it to that: the logged fields (the count of requests in progress
included), each way of choosing requests (times, nth, every, per path and
per rule), each action (status, body, Retry-After, delay, drop), runtime
rule replacement and the control endpoints.
"""

import http.client
import json
import threading
import time
import unittest
import urllib.error
import urllib.request

import sftest
from sftest import http_request


class ReceiverTest(sftest.TestCase):

    def statuses(self, rcv, path, n, method="GET"):
        return [http_request(rcv.url + path, method)[0] for _ in range(n)]

    def test_default_answer_and_logged_fields(self):
        rcv = self.receiver()
        status, headers, body = http_request(
            rcv.url + "/customers/42?full=1&x=%20y", "POST", '{"id":42,"name":"Ann"}',
            {"Content-Type": "application/json", "X-Request-ID": "Abc-1",
             "Idempotency-Key": "ev-42"})
        self.assertEqual((status, body), (200, '{"ok":true}'))
        self.assertEqual(headers["content-type"], "application/json")
        http_request(rcv.url + "/orders", "DELETE")
        http_request(rcv.url + "/orders/7/lines", "GET")

        reqs = rcv.requests()
        self.assertEqual([r["seq"] for r in reqs], [1, 2, 3])
        self.assertEqual([(r["method"], r["path"]) for r in reqs], [
            ("POST", "/customers/42"), ("DELETE", "/orders"), ("GET", "/orders/7/lines")])
        first = reqs[0]
        self.assertEqual(first["query"], "full=1&x=%20y")
        self.assertEqual(first["body"], '{"id":42,"name":"Ann"}')
        self.assertEqual(first["body_size"], len(first["body"]))
        self.assertEqual(first["status"], 200)
        self.assertEqual([r["active"] for r in reqs], [1, 1, 1])
        self.assertEqual(first["headers"]["content-type"], "application/json")
        self.assertEqual(first["headers"]["x-request-id"], "Abc-1")
        self.assertEqual(first["headers"]["idempotency-key"], "ev-42")
        self.assertTrue(all(k == k.lower() for k in first["headers"]), first["headers"])
        self.assertEqual(reqs[1]["query"], "")
        self.assertEqual(reqs[1]["body"], "")
        now = time.time() * 1000
        self.assertTrue(all(now - 60000 < r["ts_ms"] <= now for r in reqs), reqs)
        self.assertLessEqual(reqs[0]["ts_ms"], reqs[2]["ts_ms"])
        self.assertEqual(rcv.requests("/orders*"), reqs[1:])

    def test_times_then_default(self):
        rcv = self.receiver([{"path": "/orders", "method": "POST", "times": 2, "status": 500}])
        self.assertEqual(self.statuses(rcv, "/orders", 4, "POST"), [500, 500, 200, 200])
        # The rule's method does not match, so GET is neither failed nor counted.
        self.assertEqual(self.statuses(rcv, "/orders", 1), [200])
        self.assertEqual([r["status"] for r in rcv.requests()], [500, 500, 200, 200, 200])

    def test_times_counts_per_path_unless_scope_rule(self):
        rcv = self.receiver([{"path": "/customers/*", "times": 2, "status": 503},
                             {"path": "/orders/*", "times": 2, "status": 503,
                              "scope": "rule"}])
        got = [http_request(rcv.url + p)[0] for p in
               ("/customers/1", "/customers/2", "/customers/1", "/customers/2",
                "/customers/1", "/customers/2")]
        self.assertEqual(got, [503, 503, 503, 503, 200, 200])
        got = [http_request(rcv.url + p)[0] for p in ("/orders/1", "/orders/2", "/orders/1")]
        self.assertEqual(got, [503, 503, 200])

    def test_nth_and_every(self):
        rcv = self.receiver([{"path": "/a", "nth": [2, 4], "status": 502},
                             {"path": "/b", "every": 3, "status": 504}])
        self.assertEqual(self.statuses(rcv, "/a", 5), [200, 502, 200, 502, 200])
        self.assertEqual(self.statuses(rcv, "/b", 7), [200, 200, 504, 200, 200, 504, 200])

    def test_rules_fall_through_in_order(self):
        rcv = self.receiver([{"path": "/x", "times": 1, "status": 500},
                             {"path": "/*", "nth": [1], "status": 409}])
        # 1st /x: rule 1; 2nd /x is the first request to reach rule 2.
        self.assertEqual(self.statuses(rcv, "/x", 3), [500, 409, 200])

    def test_429_with_retry_after_and_error_bodies(self):
        rcv = self.receiver([
            {"path": "/limited", "status": 429, "retry_after": 7},
            {"path": "/bad", "status": 422, "body": '{"error":"name missing"}'},
            {"path": "/plain", "status": 400},
            {"path": "/text", "status": 201, "body": "made", "content_type": "text/plain",
             "headers": {"Location": "/text/1"}},
        ])
        status, headers, body = http_request(rcv.url + "/limited", "POST", "{}")
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("retry-after"), "7")
        self.assertEqual(json.loads(body), {"error": "Too Many Requests"})
        self.assertEqual(http_request(rcv.url + "/bad", "POST", "{}")[::2],
                         (422, '{"error":"name missing"}'))
        self.assertEqual(http_request(rcv.url + "/plain")[::2], (400, '{"error":"Bad Request"}'))
        status, headers, body = http_request(rcv.url + "/text", "PUT", "x")
        self.assertEqual((status, body, headers["content-type"], headers["location"]),
                         (201, "made", "text/plain", "/text/1"))
        self.assertNotIn("retry-after", headers)
        self.assertEqual([r["status"] for r in rcv.requests()], [429, 422, 400, 201])

    def test_delay_does_not_hold_up_other_connections(self):
        rcv = self.receiver([{"path": "/slow", "delay_ms": 1500, "status": 202}])
        slow = {}

        def call_slow():
            start = time.monotonic()
            slow["status"] = http_request(rcv.url + "/slow")[0]
            slow["seconds"] = time.monotonic() - start

        t = threading.Thread(target=call_slow)
        t.start()
        rcv.wait_requests(1, "/slow")  # logged on arrival, before the delay
        start = time.monotonic()
        fast = http_request(rcv.url + "/fast")[0]
        fast_seconds = time.monotonic() - start
        t.join(10)
        self.assertFalse(t.is_alive(), "the slow request never finished")
        self.assertEqual(fast, 200)
        self.assertLess(fast_seconds, 0.5, "a delayed request held up another one")
        self.assertEqual(slow["status"], 202)
        self.assertGreaterEqual(slow["seconds"], 1.5)
        self.assertEqual([(r["path"], r["active"]) for r in rcv.requests()],
                         [("/slow", 1), ("/fast", 2)],
                         "active counts the requests in progress when one arrives")
        http_request(rcv.url + "/after")
        self.assertEqual(rcv.requests()[-1]["active"], 1,
                         "an answered request no longer counts as active")

    def test_drop_closes_without_answer(self):
        rcv = self.receiver([{"path": "/gone", "drop": True}])
        with self.assertRaises((urllib.error.URLError, ConnectionError,
                                http.client.HTTPException)) as cm:
            urllib.request.urlopen(rcv.url + "/gone", timeout=10)
        self.assertNotIsInstance(cm.exception, urllib.error.HTTPError)
        self.assertEqual(http_request(rcv.url + "/after")[0], 200)
        reqs = rcv.requests()
        self.assertEqual([(r["path"], r["status"]) for r in reqs], [("/gone", 0), ("/after", 200)])
        self.assertEqual(reqs[1]["active"], 1, "a dropped request no longer counts as active")

    def test_rules_replaced_at_runtime(self):
        rcv = self.receiver([{"path": "/p", "times": 2, "status": 500}])
        self.assertEqual(self.statuses(rcv, "/p", 1), [500])
        rcv.set_rules([{"path": "/p", "status": 503, "times": 1}])
        # New rules start with fresh counts.
        self.assertEqual(self.statuses(rcv, "/p", 2), [503, 200])
        self.assertEqual(json.loads(http_request(rcv.url + "/__rules")[2]),
                         [{"path": "/p", "status": 503, "times": 1}])
        status, _, body = http_request(rcv.url + "/__rules", "PUT", '[{"path":"/p","stauts":500}]')
        self.assertEqual((status, json.loads(body)),
                         (400, {"error": 'rule 1: unknown key "stauts"'}))
        status, _, body = http_request(rcv.url + "/__rules", "PUT", '{"path":"/p"}')
        self.assertEqual((status, json.loads(body)),
                         (400, {"error": "rules must be a JSON array of objects"}))
        self.assertEqual(self.statuses(rcv, "/p", 1), [200])  # old rules kept
        rcv.set_rules([])
        self.assertEqual([r["status"] for r in rcv.requests("/p")], [500, 503, 200, 200])

    def test_control_endpoints_not_logged(self):
        rcv = self.receiver()
        self.assertEqual(http_request(rcv.url + "/__health")[::2], (200, '{"ok":true}'))
        rcv.set_rules([{"path": "/x", "status": 500}])
        self.assertEqual(http_request(rcv.url + "/x")[0], 500)
        self.assertEqual(http_request(rcv.url + "/__health")[0], 200)
        self.assertEqual([r["path"] for r in rcv.requests()], ["/x"])
        self.assertEqual(rcv.requests()[0]["seq"], 1)

    def test_oversized_body_and_binary_body(self):
        rcv = self.receiver()
        big = b"a" * (4 * 1024 * 1024 + 1)
        self.assertEqual(http_request(rcv.url + "/big", "POST", big)[0], 413)
        self.assertEqual(http_request(rcv.url + "/bin", "POST", b"ok\xff\x00!")[0], 200)
        big_req, bin_req = rcv.requests()
        self.assertEqual((big_req["status"], big_req["body"], big_req["body_size"]),
                         (413, "", len(big)))
        self.assertEqual((bin_req["body"], bin_req["body_size"]), ("ok\ufffd\ufffd!", 5))

    def test_bad_rules_file_refused(self):
        path = self.tmp.write("bad.json", '[{"path":"/x","times":0}]')
        proc = self.start([sftest.env_path("SF_RECEIVER"), "--log", self.tmp.join("l"),
                           "--rules", path], "bad-receiver")
        sftest.wait_for(lambda: not proc.running(), 10, "sf-receiver to refuse bad rules")
        self.assertEqual(proc.popen.returncode, 2)
        self.assertIn('rule 1: "times" must be a whole number from 1', proc.stderr())

    def test_keep_alive_throughput_and_clean_stop(self):
        rcv = self.receiver([{"path": "/every10", "every": 10, "status": 500}])
        per_thread, threads = 500, 4
        errors = []

        def client():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
                for i in range(per_thread):
                    conn.request("POST", "/every10", body='{"i":%d}' % i,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                conn.close()
            except Exception as e:  # reported below, in the test's thread
                errors.append(e)

        start = time.monotonic()
        workers = [threading.Thread(target=client) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        seconds = time.monotonic() - start
        self.assertEqual(errors, [])
        reqs = rcv.requests()
        total = per_thread * threads
        self.assertEqual([r["seq"] for r in reqs], list(range(1, total + 1)))
        self.assertEqual(sum(r["status"] == 500 for r in reqs), total // 10)
        self.assertLess(seconds, 20, "%d keep-alive requests took %.1fs" % (total, seconds))
        rcv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
