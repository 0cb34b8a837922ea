#!/usr/bin/env bash
# PostgreSQL change capture benchmark: pg_recvlogical against syncfleet on
# the same WAL (1M single-row updates, 1M rows in large transactions),
# commit-to-sync-log latency at 5,000 changes/s, and the producer's peak
# memory. See bench_postgres.py for what is measured and how.
#
#   bench/bench_postgres.sh [--updates N] [--rows N] [--rate R] [--seconds S]
#
# Uses $SYNCFLEET, else build-rel/cli/syncfleet or build/cli/syncfleet
# (build a release build for meaningful figures:
#   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
#   cmake --build build-rel -j). Needs postgresql-15 and kcat.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

bin=${SYNCFLEET:-}
if [ -z "$bin" ]; then
  for dir in "${SF_BUILD_DIR:-}" "$root/build-rel" "$root/build"; do
    if [ -n "$dir" ] && [ -x "$dir/cli/syncfleet" ]; then
      bin=$dir/cli/syncfleet
      break
    fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "bench_postgres: no syncfleet binary: build first or set SYNCFLEET" >&2
  exit 2
fi
exec python3 "$here/bench_postgres.py" --syncfleet "$bin" "$@"
