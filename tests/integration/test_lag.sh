#!/usr/bin/env bash
# syncfleet lag: per group and partition, the committed offset against the
# partition's end. Records nobody consumed are all lag; once a consumer of
# the group has committed them, the lag is zero.
set -euo pipefail
: "${SYNCFLEET:?}"

work=$(mktemp -d)
broker_pid=
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SYNCFLEET" broker --partitions 2 --topic-prefix lagt >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -n 1 "$work/broker.out")
[ -n "$bootstrap" ] || fail "the broker printed no address"

cat >"$work/pipeline.yaml" <<'YAML'
version: 1
name: lagt
kafka: { brokers: embedded, topic_prefix: lagt, partitions: 2 }
tables:
  customers: { key: [id] }
connectors:
  out: { type: file, dir: ./out }
messages:
  m:
    trigger: { table: customers }
    target: { connector: out }
    mapping: { id: "{{id}}" }
YAML

# 5 records on partition 0 and 3 on partition 1 of the sync-log
for i in 1 2 3 4 5; do echo "k$i:v$i"; done | kcat -P -b "$bootstrap" -t lagt.sync-log -p 0 -K:
for i in 6 7 8; do echo "k$i:v$i"; done | kcat -P -b "$bootstrap" -t lagt.sync-log -p 1 -K:

"$SYNCFLEET" lag -c "$work/pipeline.yaml" --brokers "$bootstrap" >"$work/lag1.txt" ||
  fail "lag exited $?"
grep -Eq '^lagt\.router +lagt\.sync-log +0 +-1 +5 +5$' "$work/lag1.txt" || { cat "$work/lag1.txt"; fail "partition 0 should lag 5"; }
grep -Eq '^lagt\.router +lagt\.sync-log +1 +-1 +3 +3$' "$work/lag1.txt" || { cat "$work/lag1.txt"; fail "partition 1 should lag 3"; }
grep -Eq '^lagt\.router +lagt\.sync-log +total +8$' "$work/lag1.txt" || { cat "$work/lag1.txt"; fail "the router group should lag 8 in all"; }
grep -Eq '^lagt\.message-workers +lagt\.outbound\.message +total +0$' "$work/lag1.txt" || { cat "$work/lag1.txt"; fail "an empty topic lags 0"; }

# A consumer in the router's group reads and commits everything.
timeout 60 kcat -b "$bootstrap" -G lagt.router -X auto.offset.reset=earliest \
  -X session.timeout.ms=6000 -o beginning -c 8 -e -q lagt.sync-log >/dev/null 2>"$work/kcat.err" ||
  { cat "$work/kcat.err"; fail "kcat could not consume as the router group"; }

"$SYNCFLEET" lag -c "$work/pipeline.yaml" --brokers "$bootstrap" --json >"$work/lag2.json" ||
  fail "lag --json exited $?"
python3 - "$work/lag2.json" <<'PY' || fail "after the group committed, lag should be 0"
import json, sys
doc = json.load(open(sys.argv[1]))
router = [g for g in doc["groups"] if g["group"] == "lagt.router"][0]
parts = {p["partition"]: (p["committed"], p["end"], p["lag"]) for p in router["partitions"]}
assert router["lag"] == 0, router
assert parts == {0: (5, 5, 0), 1: (3, 3, 0)}, parts
PY
echo "lag ok"
