#!/usr/bin/env bash
# syncfleet broker: prints its bootstrap address, serves the four topics
# with the partitions asked for, keeps what kcat produces and hands it back,
# and exits 0 on SIGTERM.
set -euo pipefail

: "${SYNCFLEET:?SYNCFLEET must name the syncfleet binary}"
command -v kcat >/dev/null || { echo "test_broker: kcat is not installed" >&2; exit 1; }

work=$(mktemp -d)
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -KILL "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "test_broker: FAIL: $*" >&2
  if [ -s "$work/broker.err" ]; then
    echo "--- broker stderr:" >&2
    cat "$work/broker.err" >&2
  fi
  exit 1
}

# Usage errors exit 2.
set +e
"$SYNCFLEET" broker --partitions 0 >/dev/null 2>"$work/usage.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--partitions 0 exited $rc, not 2"
grep -qx "syncfleet broker: --partitions must be a number from 1 to 10000, not '0'" \
  "$work/usage.err" || fail "unexpected usage error: $(cat "$work/usage.err")"

mkfifo "$work/out"
"$SYNCFLEET" broker --partitions 4 --topic-prefix itest \
  >"$work/out" 2>"$work/broker.err" &
broker_pid=$!
exec 3<"$work/out"
addr=
read -r -t 20 addr <&3 || fail "no bootstrap address within 20 s"
[[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bootstrap line is '$addr'"

# The four topics, four partitions each, nothing else of ours.
kcat -L -b "$addr" -J -m 10 >"$work/md.json" || fail "kcat -L failed"
/usr/bin/python3 - "$work/md.json" <<'EOF' || fail "metadata check"
import json, sys
md = json.load(open(sys.argv[1]))
got = {t["topic"]: len(t["partitions"]) for t in md["topics"]
       if t["topic"].startswith("itest.")}
want = {t: 4 for t in ["itest.sync-log", "itest.outbound.message",
                       "itest.outbound.webservice", "itest.dlq"]}
if got != want:
    sys.exit("topics %r, expected %r" % (got, want))
EOF

# Keyed records, partitioned by key: every one comes back, with its key.
printf '%s\n' 'order-1:{"id":1}' 'order-2:{"id":2}' 'order-3:{"id":3}' \
  'customer-7:{"name":"Ann"}' 'customer-8:{"name":"Bob"}' >"$work/keyed.in"
kcat -P -b "$addr" -t itest.sync-log -K: <"$work/keyed.in" ||
  fail "kcat -P (keyed) failed"
kcat -C -b "$addr" -t itest.sync-log -o beginning -e -q -m 10 -f '%k:%s\n' |
  sort >"$work/keyed.out" || fail "kcat -C (keyed) failed"
sort "$work/keyed.in" | diff -u - "$work/keyed.out" ||
  fail "keyed records differ"

# One partition keeps the order records were produced in.
printf '%s\n' first second third fourth >"$work/ordered.in"
kcat -P -b "$addr" -t itest.dlq -p 2 <"$work/ordered.in" ||
  fail "kcat -P (ordered) failed"
kcat -C -b "$addr" -t itest.dlq -p 2 -o beginning -e -q -m 10 \
  -f '%p %o %s\n' >"$work/ordered.out" || fail "kcat -C (ordered) failed"
printf '%s\n' '2 0 first' '2 1 second' '2 2 third' '2 3 fourth' |
  diff -u - "$work/ordered.out" || fail "ordered records differ"

# SIGTERM: the broker stops and exits 0.
kill -TERM "$broker_pid"
rc=0
wait "$broker_pid" || rc=$?
broker_pid=
[ "$rc" -eq 0 ] || fail "broker exited $rc after SIGTERM"
grep -q "stopping" "$work/broker.err" || fail "no stop message on stderr"
echo "test_broker: ok"
