#!/usr/bin/env bash
# syncfleet validate: the shipped examples are valid and summarised; a
# broken file and an unset ${VAR} exit 2 with the exact error lines.
set -uo pipefail

: "${SYNCFLEET:?path of the syncfleet binary}"
: "${SF_SOURCE_DIR:?source directory}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run NAME ARGS...: runs syncfleet, leaving stdout, stderr and the exit code
# in $tmp/NAME.out, $tmp/NAME.err and $rc.
run() {
  local name=$1
  shift
  "$SYNCFLEET" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
}

expect_rc() {
  [ "$rc" -eq "$2" ] || fail "$1: exit $rc, expected $2; stderr: $(cat "$tmp/$1.err")"
}

# expect_line NAME FILE LINE: LINE is one whole line of the output.
expect_line() {
  grep -Fxq -- "$3" "$tmp/$1.$2" || fail "$1: no line '$3' in:
$(cat "$tmp/$1.$2")"
}

expect_file() {
  diff -u <(printf '%s' "$3") "$tmp/$1.$2" >"$tmp/diff" ||
    fail "$1: $2 differs from the expected text:
$(cat "$tmp/diff")"
}

export WEBSHOP_URL=http://127.0.0.1:18080
export WEBSHOP_TOKEN=shop-token
export CRM_URL=https://crm.example.com
export CRM_TOKEN_URL=https://crm.example.com/oauth/token
export CRM_CLIENT_ID=syncfleet
export CRM_CLIENT_SECRET=crm-secret

webshop=$SF_SOURCE_DIR/examples/webshop/pipeline.yaml
reference=$SF_SOURCE_DIR/examples/reference/pipeline.yaml

run webshop validate -c "$webshop"
expect_rc webshop 0
expect_file webshop err ""
expect_line webshop out "pipeline webshop-sync: valid"
expect_line webshop out "kafka: embedded; topics webshop.sync-log, webshop.outbound.message, webshop.outbound.webservice, webshop.dlq (3 partitions)"
expect_line webshop out "source: sqlite $SF_SOURCE_DIR/examples/webshop/erp.db"
expect_line webshop out "  customers: insert, update, delete"
expect_line webshop out "    update -> message customer-to-webshop (when any of city, email, id, name, street changed)"
expect_line webshop out "  sales_orders: insert, update"
expect_line webshop out "  sales_lines: insert, update, delete (redirected to sales_orders)"
expect_line webshop out "  webshop: http http://127.0.0.1:18080, no auth, timeout 5000 ms"
expect_line webshop out "  archive: file $SF_SOURCE_DIR/examples/webshop/out/orders (jsonl)"

run reference validate -c "$reference"
expect_rc reference 0
expect_file reference err ""
expect_line reference out "pipeline webshop-sync: valid"
expect_line reference out "kafka: embedded; topics erp.sync-log, erp.outbound.message, erp.outbound.webservice, erp.dlq (6 partitions)"
expect_line reference out "source: sqlite $SF_SOURCE_DIR/examples/reference/erp.db"
expect_line reference out "    insert -> message customer-to-webshop, web service action credit-check"
expect_line reference out "    delete -> message customer-to-webshop"
expect_line reference out "  crm: http https://crm.example.com, oauth2 auth, timeout 5000 ms"
expect_line reference out "  credit-check: customers insert -> crm POST /credit-checks; response -> erp update customers; error -> archive"
# secrets are never printed
grep -q -e shop-token -e crm-secret "$tmp/reference.out" &&
  fail "reference: the summary shows a secret"

cat >"$tmp/broken.yaml" <<'EOF'
version: 1
name: broken
tables:
  customers: { key: [id] }
connectors:
  shop: { type: http, base_url: "http://localhost:1", timeout_ms: 0 }
messages:
  customer-to-webshop:
    trigger: { table: custmers }
    target:
      conector: shop
    mapping:
      email: "{{email | lowr}}"
EOF
run broken validate -c "$tmp/broken.yaml"
expect_rc broken 2
expect_file broken out ""
expect_file broken err "$tmp/broken.yaml:6:67: expected a number >= 1 for connectors.shop.timeout_ms, got 0
$tmp/broken.yaml:9:23: unknown table 'custmers' in messages.customer-to-webshop.trigger.table (did you mean 'customers'?)
$tmp/broken.yaml:11:7: unknown key 'conector' in messages.customer-to-webshop.target (did you mean 'connector'?)
$tmp/broken.yaml:11:7: missing required key 'connector' in messages.customer-to-webshop.target
$tmp/broken.yaml:13:25: invalid template in messages.customer-to-webshop.mapping.email: unknown filter 'lowr' (known: lower, upper, trim, number, string, bool, json, default, date)
"

# A web service action written before syncfleet's names moved under '@':
# the reply names of its response and error handling are refused with what
# to write; its plain columns pass, status in the request among them.
cat >"$tmp/old-names.yaml" <<'EOF'
version: 1
name: old-names
source: { type: sqlite, path: ./erp.db }
tables:
  customers: { key: [id] }
connectors:
  crm: { type: http, base_url: "http://localhost:1" }
  erp: { type: database }
  archive: { type: file, dir: ./out }
web_service_actions:
  credit-check:
    trigger: { table: customers, events: [insert] }
    request: { connector: crm, path: /credit-checks, body: { status: "{{status}}" } }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: { id: "{{record.id}}", credit_limit: "{{response.limit}}" }
    error:
      target: { connector: archive }
      mapping: { customer: "{{id}}", status: "{{error.status}}" }
EOF
run old-names validate -c "$tmp/old-names.yaml"
expect_rc old-names 2
expect_file old-names out ""
expect_file old-names err "$tmp/old-names.yaml:16:23: {{record.id}} in web_service_actions.credit-check.response.mapping.id reads a column named record; the record's fields are read by their own names: write {{id}}
$tmp/old-names.yaml:16:54: {{response.limit}} in web_service_actions.credit-check.response.mapping.credit_limit reads a column named response, not syncfleet's reply; write {{@response.limit}}
$tmp/old-names.yaml:19:47: {{error.status}} in web_service_actions.credit-check.error.mapping.status reads a column named error, not syncfleet's failure; write {{@error.status}}
"

unset WEBSHOP_TOKEN
run unset validate -c "$reference"
expect_rc unset 2
expect_file unset out ""
expect_file unset err "$reference:40:34: environment variable WEBSHOP_TOKEN is not set
"

run missing validate -c "$tmp/nope.yaml"
expect_rc missing 2
expect_file missing err "$tmp/nope.yaml: No such file or directory
"

# A PostgreSQL source: the summary says what check_used_fields can see.
cat > "$tmp/pg.yaml" <<'YAML'
version: 1
name: pg
source: { type: postgres, dsn: "host=db.invalid dbname=erp" }
tables:
  customers: { key: [id] }
connectors:
  out: { type: file, dir: ./out }
messages:
  m:
    trigger: { table: customers, events: [update] }
    target: { connector: out }
    mapping: { name: "{{name}}" }
YAML
run pg validate -c "$tmp/pg.yaml"
expect_rc pg 0
if ! grep -qxF "note: PostgreSQL sends an update's whole before image only for tables with" "$tmp/pg.out" ||
   ! grep -qxF "  REPLICA IDENTITY FULL; otherwise it sends the key, a used field missing" "$tmp/pg.out"; then
  echo "FAIL pg: the summary does not explain partial before images" >&2
  cat "$tmp/pg.out" >&2
  failures=$((failures + 1))
fi

# What `syncfleet run` would refuse is refused here, each at its place, and
# no message quotes a secret: the token (a newline in it), the DSN's
# password and a secret put in a number's place come from ${VAR}.
export BAD_TOKEN=$'tok-5ecret\nsecond-line' BAD_HEADER=$'key-5ecret\r\nX-Injected: 1'
export DSN_PW=dsn-5ecret NUM_SECRET=9500
cat >"$tmp/refused.yaml" <<'EOF'
version: 1
name: refused
kafka:
  partitions: 1000000
  config: { message.max.bytes: "2000000000", sasl.password: "${DSN_PW}" }
source: { type: postgres, dsn: "postgresql://bob:${DSN_PW}%zz@db.invalid/erp" }
tables:
  customers: { key: [id] }
connectors:
  api:
    type: http
    base_url: https://api.example.com
    timeout_ms: ${BAD_TOKEN}
    max_in_flight: "${NUM_SECRET}1e3"
    headers: { X-Api-Key: "${BAD_HEADER}" }
    auth: { type: bearer, token: "${BAD_TOKEN}" }
    ca_file: ./no-such-ca.pem
  idp:
    type: http
    base_url: https://api.example.com
    auth: { type: oauth2, token_url: "idp.example.com/token", client_id: a, client_secret: "${DSN_PW}" }
messages:
  m:
    trigger: { table: customers }
    target: { connector: api }
    mapping: { name: "{{name}}" }
EOF
run refused validate -c "$tmp/refused.yaml"
expect_rc refused 2
expect_file refused out ""
expect_file refused err "$tmp/refused.yaml:4:15: expected at most 100000 for kafka.partitions (the most partitions a topic can have: Kafka's clients refuse more), got 1000000
$tmp/refused.yaml:5:32: kafka.config.message.max.bytes: librdkafka refuses it: Configuration property \"message.max.bytes\" value 2000000000 is outside allowed range 1000..1000000000
$tmp/refused.yaml:6:32: source.dsn is not a PostgreSQL connection string libpq can read: invalid percent-encoded token: \"...\"
$tmp/refused.yaml:13:17: expected a number for connectors.api.timeout_ms, got the value of \${BAD_TOKEN}
$tmp/refused.yaml:14:20: expected a whole number for connectors.api.max_in_flight, got the value of \${NUM_SECRET}1e3
$tmp/refused.yaml:15:27: connectors.api.headers.X-Api-Key holds a control character (byte 0x0d at offset 10), which cannot go into an HTTP header
$tmp/refused.yaml:16:34: connectors.api.auth.token holds a control character (byte 0x0a at offset 10), which cannot go into an HTTP header; a trailing newline of a secret file is dropped, any other is part of the value
$tmp/refused.yaml:17:14: cannot read connectors.api.ca_file $tmp/no-such-ca.pem: No such file or directory
$tmp/refused.yaml:21:38: expected an http:// or https:// URL for connectors.idp.auth.token_url
"
grep -q -e 5ecret "$tmp/refused.err" && fail "refused: an error quotes a secret"

# Sizes librdkafka only checks against each other, in a whole producer or
# consumer configuration.
cat >"$tmp/sizes.yaml" <<'EOF'
version: 1
name: sizes
kafka:
  config: { message.max.bytes: "2000000", fetch.max.bytes: "1000000" }
tables:
  customers: { key: [id] }
connectors:
  out: { type: file, dir: ./out }
messages:
  m:
    trigger: { table: customers }
    target: { connector: out }
    mapping: { name: "{{name}}" }
EOF
run sizes validate -c "$tmp/sizes.yaml"
expect_rc sizes 2
expect_file sizes out ""
expect_file sizes err "$tmp/sizes.yaml:4:11: kafka.config: librdkafka refuses it for a consumer: \`fetch.max.bytes\` must be >= \`message.max.bytes\`
"

# What runs but deserves attention: warnings on stderr, exit 0.
cat >"$tmp/loud.yaml" <<'EOF'
version: 1
name: loud
source: { type: sqlite, path: ./erp.db }
tables:
  customers: { key: [id] }
connectors:
  api:
    type: http
    base_url: http://api.example.com/v1
    tls_verify: false
    auth: { type: bearer, token: "${DSN_PW}" }
  keyed: { type: http, base_url: "http://api.example.com/v1?api_key=${DSN_PW}" }
  local: { type: http, base_url: "http://127.0.0.1:1", auth: { type: bearer, token: "${DSN_PW}" } }
  idp:
    type: http
    base_url: https://api.example.com
    auth: { type: oauth2, token_url: "http://idp.example.com/token", client_id: a, client_secret: "${DSN_PW}" }
  erp: { type: database }
web_service_actions:
  w:
    trigger: { table: customers, events: [insert] }
    request: { connector: api, method: POST, path: /x }
    response:
      target: { connector: erp, table: customers, operation: update, key: [id] }
      mapping: "{{@response | default('x')}}"
EOF
run loud validate -c "$tmp/loud.yaml"
expect_rc loud 0
expect_file loud err "$tmp/loud.yaml:10:17: warning: connectors.api.tls_verify is false: syncfleet does not check who answers, so anyone on the way can read and change the requests and the credentials they carry; give the private CA as ca_file instead
$tmp/loud.yaml:9:15: warning: connectors.api.base_url is http://: a bearer token travels in clear text to another machine with every request; use https://
$tmp/loud.yaml:12:34: warning: connectors.keyed.base_url is http://: the credentials in the URL travel in clear text to another machine with every request; use https://
$tmp/loud.yaml:17:38: warning: connectors.idp.auth.token_url is http://: the client secret and the access token travel in clear text to another machine; use https://
$tmp/loud.yaml:25:16: warning: web_service_actions.w.response.mapping copies the whole reply into table customers: the web service decides which columns are written; map the columns one by one (the key comes from the record unless the mapping names it)
"
expect_line loud out "  keyed: http http://api.example.com/v1?api_key=***, no auth, timeout 5000 ms"
grep -q -e 5ecret "$tmp/loud.out" "$tmp/loud.err" && fail "loud: validate prints a secret"

# ca_file: a CA the test makes is accepted, and quiets the warning.
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=test-ca -days 2 \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
  sed 's|^    tls_verify: false$|    ca_file: ./ca.pem|' "$tmp/loud.yaml" >"$tmp/ca.yaml"
  run ca validate -c "$tmp/ca.yaml"
  expect_rc ca 0
  grep -q "tls_verify" "$tmp/ca.err" && fail "ca: a warning about tls_verify"
  mkdir "$tmp/ca-dir.pem"
  sed 's|^    tls_verify: false$|    ca_file: ./ca-dir.pem|' "$tmp/loud.yaml" >"$tmp/ca-dir.yaml"
  run ca-dir validate -c "$tmp/ca-dir.yaml"
  expect_rc ca-dir 2
  expect_line ca-dir err "$tmp/ca-dir.yaml:10:14: connectors.api.ca_file $tmp/ca-dir.pem is not a file"
else
  fail "openssl is needed to make a test CA"
fi

if [ "$failures" -ne 0 ]; then
  echo "test_validate: $failures failure(s)" >&2
  exit 1
fi
echo "test_validate: ok"
