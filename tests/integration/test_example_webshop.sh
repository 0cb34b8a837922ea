#!/usr/bin/env bash
# The README's main command: the webshop example through `syncfleet run`
# on the embedded broker. Asserts on what the webshop API received and what
# arrived in the order files: coalesced customer documents (last image
# wins), a delete as DELETE, an unmapped-field update filtered out, and the
# order read back with its lines (query mode) after line events were
# redirected to it.
set -euo pipefail
: "${SYNCFLEET:?}" "${SF_SOURCE_DIR:?}"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! SYNCFLEET="$SYNCFLEET" "$SF_SOURCE_DIR/examples/webshop/run.sh" >"$out" 2>&1; then
  cat "$out"
  echo "FAIL: the example exited non-zero" >&2
  exit 1
fi

fail() { cat "$out"; echo "FAIL: $*" >&2; exit 1; }
received=$(sed -n '/^== what the webshop API received/,/^== what arrived/p' "$out" | grep '^webshop:' || true)
ada='webshop: PUT /customers/1 {"externalId":1,"name":"Ada Lovelace","email":"ada@example.org","address":{"street":"12 Analytical Row","city":"Cambridge"},"label":"Customer 1: Ada Lovelace"}'
grace='webshop: PUT /customers/2 {"externalId":2,"name":"Grace Hopper","email":"grace@example.org","address":{"street":"1 Cobol Way","city":"Arlington"},"label":"Customer 2: Grace Hopper"}'
grep -qxF "$ada" <<<"$received" || fail "Ada's last image (Cambridge, lower-cased email) did not arrive"
grep -qxF "$grace" <<<"$received" || fail "Grace's document did not arrive"
grep -qxF 'webshop: DELETE /customers/3' <<<"$received" || fail "customer 3's delete did not arrive as DELETE"
# Grace's credit_limit update touches no mapped field: no second request.
[ "$(grep -c '/customers/2' <<<"$received")" = 1 ] || fail "an update of an unmapped field was exported"
order='{"orderId":100,"customer":1,"status":"open","lines":[{"item":"difference engine","qty":1},{"item":"punched cards","qty":750}]}'
tail -n 1 "$SF_SOURCE_DIR/examples/webshop/out/orders/order-to-archive.jsonl" | grep -qxF "$order" ||
  fail "the archived order is not the current order with its two lines"
grep -q '^== syncfleet stopped (exit 0)' "$out" || fail "syncfleet did not stop cleanly"
echo "example ok: $(wc -l <<<"$received") requests, order archived"
