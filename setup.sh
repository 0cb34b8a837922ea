#!/usr/bin/env bash
# syncfleet set-up: installs the Debian packages that are missing, builds,
# then runs what was asked for.
#
#   ./setup.sh example        build and run the example pipeline (webshop)
#   ./setup.sh test           build and run the whole test suite (ctest)
#   ./setup.sh test --sanitize   the same with -fsanitize=address,undefined
#   ./setup.sh build          install and build only
#   ./setup.sh bench          build and run the benchmarks
#
# Idempotent: packages already installed are not touched, apt-get update
# runs only when something has to be installed, and the build is
# incremental.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

packages=(
  build-essential cmake pkg-config
  librdkafka-dev libcurl4-openssl-dev libcjson-dev libyaml-dev
  libsqlite3-dev libpq-dev libmicrohttpd-dev libcmocka-dev
  kcat python3 sqlite3 curl postgresql-15
)

# Java and Maven run the Apache Kafka brokers the tests start (the
# jars come from Maven Central, see tests/kafka/pom.xml); a machine that
# has both already (any vendor's) gets neither package.
command -v java >/dev/null 2>&1 || packages+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)

install_missing() {
  local missing=() p
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "setup: installing ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null ||
    cmake --build "$dir" -j 1
}

cmd=${1:-build}
shift || true
case "$cmd" in
build)
  install_missing
  build build
  ;;
example)
  install_missing
  build build
  exec "$here/examples/webshop/run.sh" "$@"
  ;;
test)
  install_missing
  # The Kafka broker's jars, once into a cache (a no-op when there).
  python3 tests/kafka/cluster.py fetch --all >/dev/null
  dir=build
  if [ "${1:-}" = "--sanitize" ]; then
    dir=build-sanitize
    build "$dir" -DSANITIZE=ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  else
    build "$dir"
  fi
  cd "$dir"
  log=$(mktemp)
  rc=0
  ctest --output-on-failure -j "$(nproc)" --timeout 600 2>&1 | tee "$log" ||
    rc=$?
  # ctest ends with timing lines; repeat its summary as the last line.
  grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true
  rm -f "$log"
  exit "$rc"
  ;;
bench)
  install_missing
  build build
  exec "$here/bench/run.sh" "$@"
  ;;
*)
  sed -n '2,12p' "$0" >&2
  exit 2
  ;;
esac
