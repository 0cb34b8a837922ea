#!/usr/bin/env bash
# syncfleet benchmarks: prints figures, asserts nothing. `./setup.sh bench`
# builds first and then execs this script with its own arguments.
#
#   bench/run.sh                    the default run (under a minute)
#   bench/run.sh --changes 50000 --rate 2000 --duration 20
#   bench/run.sh --help             every option
#
# Uses build/cli/syncfleet and build/tests/tools/sf-receiver, or the build
# directory named by SF_BUILD_DIR. See bench/README.md for what each figure
# means.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
export SF_BUILD_DIR=${SF_BUILD_DIR:-$top/build}

python=/usr/bin/python3
[ -x "$python" ] || python=python3
exec "$python" "$here/bench_e2e.py" "$@"
