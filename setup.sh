#!/usr/bin/env bash
# syncfleet set-up: installs the Debian packages that are missing, builds,
# then runs what was asked for.
#
#   ./setup.sh example        build and run the example pipeline (webshop)
#   ./setup.sh test           build and run the whole test suite (ctest)
#   ./setup.sh test --sanitize   the same with -fsanitize=address,undefined
#   ./setup.sh build          install and build only
#   ./setup.sh bench          build and run the benchmarks
#   ./setup.sh fuzz [HARNESS [SECONDS [LIBFUZZER-OPTION...]]]
#                             build the libFuzzer harnesses (tests/fuzz/,
#                             clang, build-fuzz/) and run one, or each in
#                             turn, for SECONDS (default 600)
#
# `test` also builds the harnesses and runs each for SF_FUZZ_SECONDS
# (default 30; 0 leaves them out) after the suite: ctest label `fuzz`.
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

# clang with libFuzzer and the sanitizer runtimes, for the fuzz harnesses
# (`test` and `fuzz` only).
fuzz_packages=(clang-14 libclang-rt-14-dev)

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

# The harnesses of tests/fuzz/ in build-fuzz/: clang, -DSF_FUZZ=ON, each
# ctest run lasting $1 seconds.
build_fuzz() {
  CC=clang-14 build build-fuzz -DSF_FUZZ=ON -DSF_FUZZ_SECONDS="$1"
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
  fuzz_seconds=${SF_FUZZ_SECONDS:-30}
  [ "$fuzz_seconds" = 0 ] || packages+=("${fuzz_packages[@]}")
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
  log=$(mktemp)
  rc=0
  (cd "$dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600) 2>&1 |
    tee "$log" || rc=$?
  summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  if [ "$fuzz_seconds" != 0 ]; then
    # One fuzzer at a time: each takes a core for its whole run.
    build_fuzz "$fuzz_seconds"
    (cd build-fuzz && ctest --output-on-failure -L fuzz -j 1) 2>&1 |
      tee "$log" || rc=$?
    fuzz_summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
    # One line for both runs, in ctest's words and rounding.
    [ -z "$fuzz_summary" ] || summary=$(printf '%s\n%s\n' "$summary" \
      "$fuzz_summary" | awk '
      /tests passed/ { failed += $4; total += $NF; n++ }
      END {
        if (n != 2) exit 1
        pct = total ? (total - failed) * 100 / total : 0
        if (failed && pct > 99) pct = 99
        printf "%d%% tests passed, %d tests failed out of %d\n",
               int(pct + 0.5), failed, total
      }') || summary=$fuzz_summary
  fi
  rm -f "$log"
  # ctest ends with timing lines; repeat its summary as the last line.
  [ -n "$summary" ] && echo "$summary"
  exit "$rc"
  ;;
fuzz)
  packages+=("${fuzz_packages[@]}")
  install_missing
  harness=${1:-}
  seconds=${2:-600}
  shift 2 || shift $# || true
  build_fuzz 30
  exec tests/fuzz/run.sh build-fuzz "$seconds" "$harness" "$@"
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
