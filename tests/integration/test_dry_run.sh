#!/usr/bin/env bash
# syncfleet validate --event: the dry run prints, for one change, the
# routing decision of every subscriber and the request or document each
# would produce, reading query-mode records from the source database, and
# sends nothing.
set -euo pipefail
: "${SYNCFLEET:?}" "${SF_SOURCE_DIR:?}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$SF_SOURCE_DIR/examples/webshop/pipeline.yaml" "$work/"
sqlite3 "$work/erp.db" < "$SF_SOURCE_DIR/examples/webshop/schema.sql"
sqlite3 "$work/erp.db" "INSERT INTO customers VALUES (1, 'Ada', 'a@x.org', 's', 'London', NULL);
  INSERT INTO sales_orders VALUES (100, 1, '2026-11-26', 'open');
  INSERT INTO sales_lines VALUES (1000, 100, 'engine', 1, 10), (1001, 100, 'cards', 500, 0.02);"
export WEBSHOP_URL=http://shop.invalid

check() { # name, event, expected output
  local got
  got=$("$SYNCFLEET" validate -c "$work/pipeline.yaml" --event - <<<"$2" 2>&1) || {
    echo "FAIL: $1: exit $?"; echo "$got"; exit 1; }
  if [ "$got" != "$3" ]; then
    echo "FAIL: $1"; diff <(echo "$3") <(echo "$got") || true; exit 1
  fi
  echo "ok: $1"
}

check "update of a mapped field" \
  '{"op":"u","table":"customers","before":{"id":1,"name":"Ada","email":"A@X.org","street":"s","city":"London"},"after":{"id":1,"name":"Ada","email":"A@X.org","street":"s","city":"Cambridge"}}' \
'event: update on customers, key {"id":1} (dry run: nothing is sent)
routing:
  message customer-to-webshop: triggered by update (city changed)
message customer-to-webshop:
  PUT http://shop.invalid/customers/1
  Idempotency-Key: dry-run
    {
      "externalId": 1,
      "name": "Ada",
      "email": "a@x.org",
      "address": {
        "street": "s",
        "city": "Cambridge"
      },
      "label": "Customer 1: Ada"
    }'

check "update of an unmapped field" \
  '{"op":"u","table":"customers","before":{"id":1,"name":"Ada","email":"a","street":"s","city":"c","credit_limit":1},"after":{"id":1,"name":"Ada","email":"a","street":"s","city":"c","credit_limit":2}}' \
'event: update on customers, key {"id":1} (dry run: nothing is sent)
routing:
  message customer-to-webshop: skipped, no field it uses changed'

check "a line redirected to its order, read in query mode" \
  '{"op":"c","table":"sales_lines","after":{"id":1001,"order_id":100,"item":"cards","qty":500}}' \
'event: insert on sales_lines, key {"id":1001} (dry run: nothing is sent)
routing:
  message order-to-archive: insert on sales_lines redirected to sales_orders as an update
message order-to-archive:
  record: read from the source database (redirected event)
  append a line to '"$work"'/out/orders/order-to-archive.jsonl
    {
      "orderId": 100,
      "customer": 1,
      "status": "open",
      "lines": [{
          "item": "engine",
          "qty": 1
        }, {
          "item": "cards",
          "qty": 500
        }]
    }'

check "a delete" \
  '{"op":"d","table":"customers","before":{"id":7,"name":"Gone"}}' \
'event: delete on customers, key {"id":7} (dry run: nothing is sent)
routing:
  message customer-to-webshop: triggered by delete
message customer-to-webshop:
  DELETE http://shop.invalid/customers/7
  Idempotency-Key: dry-run'

check "integers beyond 2^53 exact in the key, the path and the document" \
  '{"op":"u","table":"customers","before":{"id":9007199254740993,"name":"Ada","email":"a","street":"s","city":"c"},"after":{"id":9007199254740993,"name":"Ada","email":"a","street":"s","city":18446744073709551615}}' \
'event: update on customers, key {"id":9007199254740993} (dry run: nothing is sent)
routing:
  message customer-to-webshop: triggered by update (city changed)
message customer-to-webshop:
  PUT http://shop.invalid/customers/9007199254740993
  Idempotency-Key: dry-run
    {
      "externalId": 9007199254740993,
      "name": "Ada",
      "email": "a",
      "address": {
        "street": "s",
        "city": 18446744073709551615
      },
      "label": "Customer 9007199254740993: Ada"
    }'

check "a record the mapping cannot render" \
  '{"op":"c","table":"customers","after":{"id":5,"name":"Bob"}}' \
'event: insert on customers, key {"id":5} (dry run: nothing is sent)
routing:
  message customer-to-webshop: triggered by insert
message customer-to-webshop:
  would go to the DLQ: email: missing field '"'"'email'"'"' in "{{email | lower}}"'

# a record without a field named like one of syncfleet's names: the
# reason says how syncfleet's is written
cat >"$work/names.yaml" <<'YAML'
version: 1
name: names
tables:
  customers: { key: [id] }
connectors:
  out: { type: file, dir: ./out }
messages:
  m:
    trigger: { table: customers }
    target: { connector: out }
    mapping: { id: "{{id}}", what: "{{event}}" }
YAML
got=$("$SYNCFLEET" validate -c "$work/names.yaml" --event - <<<'{"op":"c","table":"customers","after":{"id":5}}' 2>&1) || {
  echo "FAIL: names: exit $?"; echo "$got"; exit 1; }
want='  would go to the DLQ: what: missing field '"'"'event'"'"' in "{{event}}" (syncfleet'"'"'s own names start with @: {{@event}})'
grep -qxF "$want" <<<"$got" || { echo "FAIL: names: no line '$want' in:"; echo "$got"; exit 1; }
echo "ok: a missing field named like one of syncfleet's"

# a malformed event is a usage error naming the problem
if out=$("$SYNCFLEET" validate -c "$work/pipeline.yaml" --event - <<<'{"op":"x","table":"customers","after":{"id":1}}' 2>&1); then
  echo "FAIL: a bad op was accepted"; exit 1
fi
[ "$out" = 'syncfleet validate: op "x" is not one of c, u, d, r' ] || { echo "FAIL: bad op message: $out"; exit 1; }
echo "ok: bad event"
# nothing was written anywhere
[ ! -e "$work/out" ] || { echo "FAIL: the dry run wrote files"; exit 1; }
echo "dry run ok"
