#!/usr/bin/env bash
# The webshop example: an ERP database (SQLite) whose customers go to a
# webshop HTTP API and whose orders go to files, through Kafka, with
# nothing else to start.
#
#   examples/webshop/run.sh           make some changes, show what arrived
#   examples/webshop/run.sh --watch   keep running; change rows yourself:
#       sqlite3 -cmd ".timeout 5000" examples/webshop/erp.db \
#         "UPDATE customers SET name = 'Ada King' WHERE id = 1"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
syncfleet=${SYNCFLEET:-$top/build/cli/syncfleet}
watch=0
[ "${1:-}" = "--watch" ] && watch=1

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# A fresh ERP database and output directory on every run.
rm -rf "$here/erp.db" "$here/erp.db-wal" "$here/erp.db-shm" "$here/out"
sqlite3 -cmd ".timeout 5000" "$here/erp.db" < "$here/schema.sql"

touch "$work/webshop.log"
python3 "$here/webshop_api.py" "$work/port" "$work/webshop.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
export WEBSHOP_URL="http://127.0.0.1:$(cat "$work/port")"

echo "== the pipeline"
"$syncfleet" validate -c "$here/pipeline.yaml"

echo "== syncfleet run (embedded broker, producer, router, workers)"
"$syncfleet" run -c "$here/pipeline.yaml" 2> "$work/syncfleet.log" &
sf=$!
pids+=($sf)
for _ in $(seq 100); do
  grep -q "running" "$work/syncfleet.log" 2>/dev/null && break
  kill -0 "$sf" 2>/dev/null || { cat "$work/syncfleet.log"; exit 1; }
  sleep 0.1
done

echo "== changing rows in $here/erp.db"
sed -n 's/^\(INSERT\|UPDATE\|DELETE\).*/  &/p' "$here/changes.sql"
sqlite3 -cmd ".timeout 5000" "$here/erp.db" < "$here/changes.sql"

if [ "$watch" = 1 ]; then
  echo "== watching; change rows with: sqlite3 -cmd \".timeout 5000\" $here/erp.db, Ctrl-C to stop"
  tail -f "$work/webshop.log" &
  pids+=($!)
  wait "$sf"
  exit 0
fi

# Wait for the documents. Changes to one record within router.coalesce_ms
# are combined (last image wins), so the webshop sees Ada once, in
# Cambridge, and customer 3, inserted and deleted at once, only as a
# DELETE; the order file gets the order with both lines, qty 750.
arrived() {
  grep -q '"city":"Cambridge"' "$work/webshop.log" &&
    grep -q 'Grace Hopper' "$work/webshop.log" &&
    grep -q 'DELETE /customers/3' "$work/webshop.log" &&
    grep -qs '"qty":750' "$here"/out/orders/*.jsonl
}
for _ in $(seq 300); do
  arrived && break
  sleep 0.1
done

echo "== what the webshop API received"
cat "$work/webshop.log"
echo "== what arrived in $here/out/orders"
for f in "$here"/out/orders/*; do echo "$f:"; cat "$f"; done

kill -TERM "$sf"
wait "$sf" && status=0 || status=$?
echo "== syncfleet stopped (exit $status)"
if ! arrived; then
  echo "example: not every document arrived; syncfleet's log:" >&2
  cat "$work/syncfleet.log" >&2
  exit 1
fi
exit "$status"
