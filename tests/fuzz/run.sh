#!/usr/bin/env bash
# Runs the fuzz harnesses of BUILD_DIR (configured with -DSF_FUZZ=ON) for
# longer than the tests do, one after the other:
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS [LIBFUZZER-OPTION...]]
#
# HARNESS is a name (config, synclog, ...; empty or "all": each in turn).
# New inputs go to BUILD_DIR/tests/fuzz/corpus/HARNESS/, crashes, leaks
# and timeouts to BUILD_DIR/tests/fuzz/artifacts/HARNESS/.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: run.sh BUILD_DIR SECONDS [HARNESS [OPTION...]]}
seconds=${2:-600}
harness=${3:-all}
shift 3 || shift $#
fuzz=$(cd "$build/tests/fuzz" && pwd)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

names=()
if [ "$harness" = all ]; then
  for f in "$src"/fuzz_*.c; do
    n=$(basename "$f" .c)
    names+=("${n#fuzz_}")
  done
else
  names=("$harness")
fi

rc=0
for n in "${names[@]}"; do
  bin=$fuzz/fuzz_$n
  if [ ! -x "$bin" ]; then
    echo "run.sh: no harness $n in $fuzz" >&2
    exit 2
  fi
  dict=()
  [ -f "$src/dict/$n.dict" ] && dict=(-dict="$src/dict/$n.dict")
  mkdir -p "$fuzz/corpus/$n" "$fuzz/artifacts/$n"
  echo "== fuzz_$n: $seconds s" >&2
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$n/" \
    "${dict[@]}" "$@" "$fuzz/corpus/$n" "$src/corpus/$n" || rc=$?
done
exit "$rc"
