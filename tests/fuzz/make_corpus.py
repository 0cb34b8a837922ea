#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ from the project's test
data: the pipeline files of examples/ and tests/data/config/, the string
literals of the unit tests (pipelines, templates, records), and
pgoutput streams and HTTP answers built here like the unit tests build
them. Seeds are named by what they hold; regression inputs for fixed
crashes live next to them as regress-*, which this script leaves alone.

    tests/fuzz/make_corpus.py          # rewrites every seed-* file
"""
import hashlib
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
MAX_SEED = 8192  # libFuzzer takes the largest seed as -max_len


def c_literals(path):
    """Every run of adjacent C string literals in PATH, decoded."""
    src = open(path, encoding="utf-8").read()
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    out = []
    for m in re.finditer(r'(?:"(?:[^"\\\n]|\\.)*"\s*)+', src):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(0))
        raw = "".join(parts)
        try:
            out.append(raw.encode("latin-1", "backslashreplace")
                       .decode("unicode_escape").encode("latin-1"))
        except (UnicodeError, ValueError):
            continue
    return out


class Seeds:
    def __init__(self, name):
        self.dir = os.path.join(CORPUS, name)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            if f.startswith("seed-"):
                os.unlink(os.path.join(self.dir, f))
        self.seen = set()

    def add(self, label, data):
        if isinstance(data, str):
            data = data.encode()
        if not data or len(data) > MAX_SEED or data in self.seen:
            return
        self.seen.add(data)
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        h = hashlib.sha1(data).hexdigest()[:8]
        with open(os.path.join(self.dir, f"seed-{label}-{h}"), "wb") as f:
            f.write(data)


def unit(name):
    return os.path.join(ROOT, "tests", "unit", name)


def json_object(b):
    try:
        v = json.loads(b)
    except (ValueError, UnicodeError):
        return None
    return v if isinstance(v, dict) else None


def config_seeds():
    s = Seeds("config")
    for d in ("examples/webshop", "examples/reference"):
        s.add(d.split("/")[1], open(os.path.join(ROOT, d, "pipeline.yaml"),
                                    "rb").read())
    bad = os.path.join(ROOT, "tests", "data", "config", "bad")
    for f in sorted(os.listdir(bad)):
        if f.endswith(".yaml"):
            s.add("bad_" + f[:-5], open(os.path.join(bad, f), "rb").read())
    for t in ("test_config.c", "test_render.c", "test_router.c",
              "test_dlq.c", "test_capture_sqlite.c"):
        for lit in c_literals(unit(t)):
            if b"version:" in lit or b"connectors:" in lit:
                s.add(t[5:-2], lit)


def synclog_seeds():
    s = Seeds("synclog")
    change = {"op": "u", "ts_ms": 1764150000000,
              "source": {"connector": "sqlite", "db": "erp", "table": "customers",
                         "seq": 17, "txid": 4, "lsn": "0/16B3748"},
              "before": {"id": 1, "name": "Ada"},
              "after": {"id": 1, "name": "Ada Lovelace"},
              "key": {"id": 1}}
    for label, v in variants(change):
        s.add(label, v)
    for label, v in variants(change["source"]):
        s.add("source_" + label, json.dumps(dict(change, source="@@"))
              .replace('"@@"', v))
    for t in ("test_envelope.c", "test_router.c", "test_pgoutput.c"):
        for lit in c_literals(unit(t)):
            v = json_object(lit)
            if v is None or "op" not in v:
                continue
            s.add(t[5:-2] + "_value", lit)
            src = v.get("source") if isinstance(v.get("source"), dict) else {}
            img = v.get("after") or v.get("before") or {}
            if isinstance(img, dict) and "table" in src:
                key = {"key": {k: img[k] for k in list(img)[:1]},
                       "table": src["table"]}
                s.add(t[5:-2] + "_keyed", lit + b"\0" +
                      json.dumps(key, separators=(",", ":")).encode())
                s.add(t[5:-2] + "_id", lit + b"\0" +
                      json.dumps(key, separators=(",", ":")).encode() +
                      b"\0sqlite:erp:17")


def variants(rec):
    """REC with each member missing, null, or of another type, as the
    unit tests' error cases make them."""
    for name in list(rec):
        for label, val in (("missing", None), ("null", "null"), ("num", "1"),
                           ("str", '"x"'), ("obj", "{}"), ("arr", "[]"),
                           ("big", "1e300")):
            r = dict(rec)
            if val is None:
                del r[name]
                yield f"{name}_{label}", json.dumps(r)
            else:
                r[name] = "@@"
                yield f"{name}_{label}", json.dumps(r).replace('"@@"', val)


def outbound_seeds():
    s = Seeds("outbound")
    for t in ("test_envelope.c", "test_render.c", "test_router.c",
              "test_settle.c"):
        for lit in c_literals(unit(t)):
            v = json_object(lit)
            if v is not None and "kind" in v:
                s.add(t[5:-2], lit)
    rec = {"kind": "message", "action": "customer-to-webshop",
           "event": "update", "table": "addresses", "key": {"id": 3},
           "root": {"table": "customers", "key": {"id": 1}},
           "record": {"id": 1, "name": "Ada", "lines": [{"n": 1.5}]},
           "before": None, "event_id": "sqlite:erp:42",
           "source_ts_ms": 1764150000000, "routed_ts_ms": 1764150000123}
    s.add("built", json.dumps(rec))
    for label, v in variants(rec):
        s.add(label, v)
    rec.update(kind="webservice", event="delete", record=None,
               before={"id": 1, "big": 9007199254740993, "s": "\u00e9\n"})
    s.add("built_delete", json.dumps(rec))


def template_seeds():
    s = Seeds("template")
    for t in ("test_template.c", "test_mapping.c", "test_render.c"):
        for lit in c_literals(unit(t)):
            if b"{{" in lit and len(lit) < 300:
                s.add(t[5:-2], lit)
    for d in ("examples/webshop", "examples/reference"):
        for m in re.finditer(r'"([^"\n]*\{\{[^"\n]*)"',
                             open(os.path.join(ROOT, d, "pipeline.yaml"))
                             .read()):
            s.add(d.split("/")[1], m.group(1))
    s.add("record", b"{{name | upper}} {{n}}\0"
          b'{"name":"x","n":18446744073709551615,"lines":[{"a":1}]}')


# --- pgoutput (proto_version 1), as tests/unit/test_pgoutput.c builds it ---

def pg_str(s):
    return s.encode() + b"\0"


def pg_tuple(cols):
    out = struct.pack(">H", len(cols))
    for c in cols:
        if c in ("n", "u"):
            out += c.encode()
        else:
            c = c.encode() if isinstance(c, str) else c
            out += b"t" + struct.pack(">I", len(c)) + c
    return out


def pg_begin(lsn=0x100001000, xid=731):
    return b"B" + struct.pack(">QQI", lsn, 86400000000, xid)


def pg_commit(lsn=0x100001000, end=0x100001050):
    return b"C\0" + struct.pack(">QQQ", lsn, end, 86400000000)


def pg_relation(relid, schema, name, ident, cols):
    out = b"R" + struct.pack(">I", relid) + pg_str(schema) + pg_str(name)
    out += ident.encode() + struct.pack(">H", len(cols))
    for cname, ctype, key in cols:
        out += bytes([1 if key else 0]) + pg_str(cname)
        out += struct.pack(">Ii", ctype, -1)
    return out


CUST = [("id", 23, 1), ("name", 25, 0), ("notes", 25, 0), ("active", 16, 0)]
LINES = [("order_id", 20, 1), ("line", 21, 1), ("qty", 1700, 0)]
TYPES = [("id", 20, 1), ("b", 16, 0), ("by", 17, 0), ("i2", 21, 0),
         ("o", 26, 0), ("j", 114, 0), ("f4", 700, 0), ("f8", 701, 0),
         ("d", 1082, 0), ("t", 1083, 0), ("ts", 1114, 0), ("tz", 1184, 0),
         ("ttz", 1266, 0), ("num", 1700, 0), ("jb", 3802, 0)]


def stream(*msgs):
    return b"".join(struct.pack(">H", len(m)) + m for m in msgs)


def pgoutput_seeds():
    s = Seeds("pgoutput")
    rc = pg_relation(16384, "public", "customers", "d", CUST)
    rl = pg_relation(16390, "shop", "lines", "d", LINES)
    rf = pg_relation(16384, "public", "customers", "f", CUST)
    s.add("insert", stream(pg_begin(), rc, rl,
                           b"I" + struct.pack(">I", 16384) + b"N" +
                           pg_tuple(["42", 'Ann "A"', "n", "t"]),
                           b"I" + struct.pack(">I", 16390) + b"N" +
                           pg_tuple(["7", "3", "1.50"]), pg_commit()))
    s.add("update_key", stream(pg_begin(), rc,
                               b"U" + struct.pack(">I", 16384) + b"K" +
                               pg_tuple(["1", "n", "n", "n"]) + b"N" +
                               pg_tuple(["2", "b", "u", "f"]), pg_commit()))
    s.add("update_full", stream(pg_begin(), rf,
                                b"U" + struct.pack(">I", 16384) + b"O" +
                                pg_tuple(["1", "a", "long", "t"]) + b"N" +
                                pg_tuple(["1", "b", "u", "f"]), pg_commit()))
    s.add("delete", stream(pg_begin(), rc,
                           b"D" + struct.pack(">I", 16384) + b"K" +
                           pg_tuple(["5", "n", "n", "n"]), pg_commit()))
    s.add("origin", stream(pg_begin(), b"O" + struct.pack(">Q", 0x42) +
                           pg_str("syncfleet.2"), rc,
                           b"I" + struct.pack(">I", 16384) + b"N" +
                           pg_tuple(["9", "x", "n", "f"]), pg_commit()))
    s.add("truncate", stream(pg_begin(), rc, rl, b"T" +
                             struct.pack(">IBII", 2, 0, 16384, 16390),
                             pg_commit()))
    s.add("type_message", stream(b"Y" + struct.pack(">I", 99) +
                                 pg_str("public") + pg_str("t"),
                                 b"M\0" + struct.pack(">Q", 1) +
                                 pg_str("p") + struct.pack(">I", 1) + b"x"))
    rt = pg_relation(16384, "public", "customers", "d", TYPES)
    values = ["9223372036854775807", "t", "\\x00ff10", "-0", "4294967295",
              '{"a":[1,2.5,null]}', "NaN", "-1.5e-300", "2026-11-26",
              "10:00:00.5", "2026-11-26 10:00:00", "2026-11-26 10:00:00+01",
              "10:00:00-05:30", "12345678901234567890.5", '[true,"x"]']
    s.add("types", stream(pg_begin(), rt, b"I" + struct.pack(">I", 16384) +
                          b"N" + pg_tuple(values), pg_commit()))
    odd = ["-9223372036854775808", "f", "a\\\\b\\001", "007", "x",
           "not json", "Infinity", "1e400", "infinity", "24:00:00",
           "2026-11-26 10:00:00 BC", "-infinity", "00:00:00+00:00", "NaN",
           "{"]
    s.add("types_odd", stream(pg_begin(), rt, b"I" + struct.pack(">I", 16384)
                              + b"N" + pg_tuple(odd), pg_commit()))
    for i, lit in enumerate(c_literals(unit("test_pgoutput.c"))):
        if lit[:1] in (b"B", b"R", b"I", b"U", b"D", b"T") and len(lit) > 4:
            s.add("literal", stream(lit))


def http_seeds():
    s = Seeds("http_answer")
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 15\r\n\r\n{\"id\":\"w-1\"}\r\n",
        b"HTTP/1.1 201 Created\r\nLocation: /customers/7\r\nETag: \"x\"\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
        b"Connection: close\r\n\r\nno such customer\n\x01\xc3\xa9",
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 99999999999\r\n"
        b"\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n5\r\nerror\r\n0\r\n\r\n",
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere/\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 408 Request Timeout\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"
        b"X-A: 1\r\nX-A: 2\r\nx-a: 3\r\nFolded: a\r\n b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 999 Odd\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/2 200\r\ncontent-length: 2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 3\r\n\r\nabc",
    ]
    for i, a in enumerate(answers):
        status = a.split(b" ")[1] if b" " in a else b"x"
        s.add(f"{i % 4}_{status.decode('latin-1')}", bytes([i % 4]) + a)


def main():
    config_seeds()
    synclog_seeds()
    outbound_seeds()
    template_seeds()
    pgoutput_seeds()
    http_seeds()
    for d in sorted(os.listdir(CORPUS)):
        print(d, len(os.listdir(os.path.join(CORPUS, d))), file=sys.stderr)


if __name__ == "__main__":
    main()
